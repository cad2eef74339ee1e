//! What the FHIR API says about itself: the CapabilityStatement at `GET /fhir/metadata` and the OpenAPI
//! `paths` of the /fhir routes, both built from the tables the handlers use ([`search`]'s types, parameters
//! and includes), so the descriptions cannot drift from the behaviour.

use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use serde_json::{json, Value};

use super::{error::fhir_response, FHIR_JSON};
use crate::server::{
    fhir::search::{self, ParamKind},
    state::AppState,
};

/// `GET /fhir/metadata`.
pub(super) async fn metadata(State(state): State<AppState>) -> Response {
    let mut resp = fhir_response(StatusCode::OK, capability_statement(&state.public_url).to_string());
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// The CapabilityStatement: exactly the types, interactions, search parameters, includes and operation
/// this module implements (built from the same tables the handlers use).
pub fn capability_statement(public_url: &str) -> Value {
    let resources: Vec<Value> = search::RESOURCE_TYPES
        .iter()
        .map(|t| {
            let mut params = vec![
                json!({"name": "_id", "type": "token"}),
                json!({"name": "_lastUpdated", "type": "date"}),
            ];
            if search::patient_paths(t).is_some() {
                params.push(json!({"name": "patient", "type": "reference"}));
            }
            for p in search::params_for(t) {
                let ty = match p.kind {
                    ParamKind::Token => "token",
                    ParamKind::Date => "date",
                };
                params.push(json!({"name": p.name, "type": ty}));
            }
            let includes: Vec<String> = INCLUDE_NAMES
                .iter()
                .filter(|n| search::include_paths(t, n).is_some())
                .map(|n| format!("{t}:{n}"))
                .chain(std::iter::once(format!("{t}:*")))
                .collect();
            let mut r = json!({
                "type": t,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
                "searchInclude": includes,
            });
            if *t == "Patient" {
                r["operation"] = json!([{"name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-29",
        "kind": "instance",
        "software": {"name": "link-sdk", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Synced payer data (read-only)", "url": format!("{public_url}/fhir")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                          "code": "OAuth"}]}],
                "description": "Bearer access_token from /link/exchange (one patient) or an application token from /link/token client_credentials (every patient linked to the app)."
            },
            "resource": resources,
            "searchParam": [{"name": "_count", "type": "number"}, {"name": "_include", "type": "special"}]
        }]
    })
}

/// The `_include` parameter names, in the order the CapabilityStatement lists them.
const INCLUDE_NAMES: &[&str] = &[
    "patient",
    "beneficiary",
    "payor",
    "provider",
    "insurer",
    "care-team",
    "coverage",
    "facility",
    "general-practitioner",
    "organization",
    "medication",
    "requester",
    "practitioner",
    "service-provider",
    "performer",
];

/// The OpenAPI 3.1 `paths` of the /fhir routes, generated from the search-parameter tables.
pub fn openapi_paths() -> serde_json::Map<String, Value> {
    let mut paths = serde_json::Map::new();
    let fhir_resp = |d: &str| json!({"description": d, "content": {FHIR_JSON: {"schema": {"type": "object"}}}});
    let throttled = json!({"description": "OperationOutcome: the patient's sync is running, or too many requests with this access token (Retry-After, seconds)",
                           "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                           "content": {FHIR_JSON: {"schema": {"type": "object"}}}});
    let errors = json!({
        "400": fhir_resp("OperationOutcome: bad parameter"),
        "401": fhir_resp("OperationOutcome: no valid Bearer access token (with WWW-Authenticate, RFC 6750 §3)"),
        "403": fhir_resp("OperationOutcome: another patient's data"),
        "404": fhir_resp("OperationOutcome: not found"),
        "422": fhir_resp("OperationOutcome: the patient's sync failed"),
        "429": throttled.clone()
    });
    let with = |ok: Value| {
        let mut r = errors.clone();
        r["200"] = ok;
        r
    };
    paths.insert("/fhir/metadata".into(), json!({"get": {"summary": "CapabilityStatement", "responses": {"200": fhir_resp("CapabilityStatement"), "429": throttled}}}));
    for t in search::RESOURCE_TYPES {
        let mut params: Vec<Value> = ["_id", "_lastUpdated", "_count", "_offset", "_include"]
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string"}}))
            .collect();
        if search::patient_paths(t).is_some() || *t == "Patient" {
            params.push(json!({"name": "patient", "in": "query", "schema": {"type": "string"}, "description": "Patient/<id>, <id> or $PATIENT_ID"}));
        }
        for p in search::params_for(t) {
            let d = match p.kind {
                ParamKind::Token => "token: [system]|[code], comma = OR, :not",
                ParamKind::Date => "date with prefix eq|ne|gt|lt|ge|le|sa|eb|ap",
            };
            params.push(json!({"name": p.name, "in": "query", "schema": {"type": "string"}, "description": d}));
        }
        paths.insert(
            format!("/fhir/{t}"),
            json!({"get": {"summary": format!("Search {t}"), "security": [{"bearer": []}], "parameters": params,
                           "responses": with(fhir_resp("searchset Bundle with total and links"))}}),
        );
        paths.insert(
            format!("/fhir/{t}/{{id}}"),
            json!({"get": {"summary": format!("Read {t}"), "security": [{"bearer": []}],
                           "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                           "responses": with(fhir_resp(t))}}),
        );
    }
    paths.insert(
        "/fhir/Patient/{id}/$everything".into(),
        json!({"get": {"summary": "Everything about the patient", "security": [{"bearer": []}],
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "_type", "in": "query", "schema": {"type": "string"}},
                {"name": "_since", "in": "query", "schema": {"type": "string"}},
                {"name": "_count", "in": "query", "schema": {"type": "integer"}},
                {"name": "_offset", "in": "query", "schema": {"type": "integer"}}],
            "responses": with(fhir_resp("searchset Bundle"))}}),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_lists_everything_on_patient() {
        let cs = capability_statement("http://x");
        let patient = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
        assert_eq!(patient["operation"][0]["name"], "everything");
    }
}
