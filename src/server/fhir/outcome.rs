//! FHIR R4 `OperationOutcome` (R4 §OperationOutcome): how the FHIR API reports an error.

use serde_json::{json, Value};

/// An `OperationOutcome` with one issue: `severity` (`fatal | error | warning | information`), `code` (the
/// R4 IssueType code, e.g. `invalid`, `not-found`) and a `diagnostics` text.
pub fn operation_outcome(severity: &str, code: &str, diagnostics: &str) -> Value {
    json!({"resourceType": "OperationOutcome",
           "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]})
}
