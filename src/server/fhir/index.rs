//! The index values read from a resource when it is stored: type, id, version, `meta.lastUpdated`, the patient
//! it belongs to, its main date, `status`, "system|code" tokens, the values of its search parameters, and every
//! reference it holds. The store writes them beside the JSON text (the `resources` table's columns and
//! `resource_params`), unchanged.

use std::collections::BTreeSet;

use serde_json::Value;

use super::reference;

/// A resource ready to be stored: its raw text and the index values read from it.
#[derive(Debug, Clone)]
pub struct Indexed {
    /// `resourceType`.
    pub resource_type: String,
    /// `id`.
    pub id: String,
    /// `meta.versionId`.
    pub version_id: Option<String>,
    /// `meta.lastUpdated` as sent.
    pub last_updated: Option<String>,
    /// `meta.lastUpdated` as Unix seconds, when it parses.
    pub last_updated_at: Option<i64>,
    /// `Patient/{id}` this resource belongs to.
    pub patient_ref: Option<String>,
    /// The resource's main date as sent (see [`main_date`]).
    pub date_value: Option<String>,
    /// Top-level `status`.
    pub status: Option<String>,
    /// "system|code" tokens of identifier, type, category, code, class.
    pub tokens: Vec<String>,
    /// The values of every search parameter of the type (`search::param_values`), filtered on in SQL.
    pub params: Vec<super::search::ParamValue>,
    /// The exact JSON text received.
    pub raw: String,
}

/// Reads the index values of a resource. `None` when it has no `resourceType` or `id` (cannot be stored).
pub fn index(raw: &str, value: &Value) -> Option<Indexed> {
    let resource_type = value.get("resourceType")?.as_str()?.to_string();
    let id = value.get("id")?.as_str().filter(|s| !s.is_empty())?.to_string();
    let meta_str = |k: &str| value.get("meta").and_then(|m| m.get(k)).and_then(Value::as_str).map(String::from);
    let last_updated = meta_str("lastUpdated");
    let last_updated_at = last_updated.as_deref().and_then(parse_instant);
    let patient_ref = if resource_type == "Patient" {
        Some(format!("Patient/{id}"))
    } else {
        ["patient", "subject", "beneficiary"]
            .iter()
            .filter_map(|f| value.get(*f)?.get("reference")?.as_str())
            .find_map(reference::patient_ref_of)
    };
    Some(Indexed {
        date_value: main_date(&resource_type, value),
        status: value.get("status").and_then(Value::as_str).map(String::from),
        tokens: search_tokens(value),
        params: super::search::param_values(&resource_type, value),
        version_id: meta_str("versionId"),
        last_updated,
        last_updated_at,
        patient_ref,
        resource_type,
        id,
        raw: raw.to_string(),
    })
}

fn parse_instant(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok().map(|t| t.unix_timestamp())
}

/// The main date of a resource (the one `date`-style searches use), as sent.
pub fn main_date(resource_type: &str, v: &Value) -> Option<String> {
    let paths: &[&str] = match resource_type {
        "ExplanationOfBenefit" | "Claim" => &["/billablePeriod/start", "/created"],
        "Coverage" | "Encounter" | "CarePlan" | "EpisodeOfCare" => &["/period/start"],
        "Observation" | "DiagnosticReport" => &["/effectiveDateTime", "/effectivePeriod/start", "/issued"],
        "Condition" => &["/recordedDate", "/onsetDateTime", "/onsetPeriod/start"],
        "Procedure" => &["/performedDateTime", "/performedPeriod/start"],
        "MedicationRequest" => &["/authoredOn"],
        "MedicationDispense" => &["/whenHandedOver", "/whenPrepared"],
        "Immunization" => &["/occurrenceDateTime"],
        "AllergyIntolerance" => &["/recordedDate", "/onsetDateTime"],
        "DocumentReference" | "Composition" => &["/date"],
        _ => &["/date", "/created", "/authoredOn", "/effectiveDateTime", "/period/start"],
    };
    paths.iter().find_map(|p| v.pointer(p).and_then(Value::as_str)).map(String::from)
}

/// "system|code" tokens (system empty when absent) of `identifier`, `type`, `category`, `code` and `class`.
pub fn search_tokens(v: &Value) -> Vec<String> {
    let mut out = BTreeSet::new();
    for field in ["identifier", "type", "category", "code", "class"] {
        let Some(x) = v.get(field) else { continue };
        let items: Vec<&Value> = match x {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            // Identifier: system|value.
            if let Some(value) = item.get("value").and_then(Value::as_str) {
                let system = item.get("system").and_then(Value::as_str).unwrap_or("");
                out.insert(format!("{system}|{value}"));
            }
            // CodeableConcept: coding[]; Coding: itself.
            let codings: Vec<&Value> = match item.get("coding") {
                Some(Value::Array(c)) => c.iter().collect(),
                _ => vec![item],
            };
            for c in codings {
                if let Some(code) = c.get("code").and_then(Value::as_str) {
                    let system = c.get("system").and_then(Value::as_str).unwrap_or("");
                    out.insert(format!("{system}|{code}"));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Every `reference` string inside a resource, at any depth (also inside `contained` resources). Used by the
/// sync to resolve references and by the FHIR API for `_include=Type:*`.
pub fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "reference" {
                    if let Value::String(s) = x {
                        out.push(s.clone());
                    }
                } else {
                    references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_and_dates() {
        let v = json!({"resourceType": "ExplanationOfBenefit", "id": "e1", "status": "active",
            "identifier": [{"system": "s", "value": "v"}],
            "type": {"coding": [{"system": "t", "code": "c"}, {"code": "bare"}]},
            "billablePeriod": {"start": "2020-01-01"}, "patient": {"reference": "Patient/p1"},
            "meta": {"lastUpdated": "2023-01-02T03:04:05.123+00:00"}});
        let i = index(&v.to_string(), &v).unwrap();
        assert_eq!(i.tokens, vec!["s|v", "t|c", "|bare"].into_iter().map(String::from).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>());
        assert_eq!(i.date_value.as_deref(), Some("2020-01-01"));
        assert_eq!(i.patient_ref.as_deref(), Some("Patient/p1"));
        assert!(i.last_updated_at.is_some());
    }
}
