//! A server's CapabilityStatement (FHIR R4 §6.1.0, `GET [base]/metadata`) as data: which search parameters it
//! offers, per resource type and for every type.

use serde_json::Value;

/// The `rest` entries of a CapabilityStatement (a server usually has one, `mode: server`).
fn rests(cs: &Value) -> impl Iterator<Item = &Value> {
    cs.get("rest").and_then(Value::as_array).into_iter().flatten()
}

/// The `name`s of the `searchParam` array of `v` (a `rest` or a `rest.resource` entry).
fn search_param_names(v: &Value) -> impl Iterator<Item = &str> {
    v.get("searchParam").and_then(Value::as_array).into_iter().flatten().filter_map(|p| p.get("name").and_then(Value::as_str))
}

/// Whether `param` is a search parameter of `resource_type`: listed in that type's `rest.resource.searchParam`,
/// or in `rest.searchParam`, which applies to every type (FHIR R4 `CapabilityStatement.rest.searchParam`).
pub fn searches(cs: &Value, resource_type: &str, param: &str) -> bool {
    rests(cs).any(|rest| {
        search_param_names(rest).any(|n| n == param)
            || rest.get("resource").and_then(Value::as_array).into_iter().flatten().any(|r| {
                r.get("type").and_then(Value::as_str) == Some(resource_type) && search_param_names(r).any(|n| n == param)
            })
    })
}

/// Whether `param` is a search parameter of at least one type (or of every type).
pub fn searches_any(cs: &Value, param: &str) -> bool {
    rests(cs).any(|rest| {
        search_param_names(rest).any(|n| n == param)
            || rest.get("resource").and_then(Value::as_array).into_iter().flatten().any(|r| search_param_names(r).any(|n| n == param))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_type_and_server_wide_parameters() {
        let cs = json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "resource": [
            {"type": "ExplanationOfBenefit", "searchParam": [{"name": "patient"}, {"name": "_lastUpdated"}]},
            {"type": "Coverage", "searchParam": [{"name": "beneficiary"}]}]}]});
        assert!(searches(&cs, "ExplanationOfBenefit", "_lastUpdated"));
        assert!(!searches(&cs, "Coverage", "_lastUpdated"));
        assert!(!searches(&cs, "Condition", "_lastUpdated"));
        assert!(searches_any(&cs, "_lastUpdated"));
        let wide = json!({"rest": [{"searchParam": [{"name": "_lastUpdated", "type": "date"}]}]});
        assert!(searches(&wide, "Coverage", "_lastUpdated"));
        assert!(!searches_any(&json!({"resourceType": "CapabilityStatement"}), "_lastUpdated"));
    }
}
