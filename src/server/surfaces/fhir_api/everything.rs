//! `GET /fhir/Patient/{id}/$everything` (FHIR R4 §Patient-everything): every resource of one patient's
//! authorizations, the Patient first, with `_type`, `_since`, `_count`, `_offset` and `endpoint` (the endpoint
//! the patient id is at, see `Caller::scope_for_patient`).

use axum::{
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
};

use super::{
    bundle::{bundle, Entry, Page, SearchMode},
    caller::{caller, check_id, gate_on_sync, parse_count, parse_endpoint, parse_offset, path_params, split_list},
    error::{fhir_response, FhirError},
    FhirResult, DEFAULT_EVERYTHING_COUNT, MAX_EVERYTHING_COUNT,
};
use crate::server::{fhir::search, state::AppState, store::resources};

pub(super) async fn everything(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    let (id, operation) = path_params(path)?;
    if operation != "$everything" {
        return Err(FhirError::not_found(format!("operation {operation} is not supported")));
    }
    let id = c.substitute(&id)?;
    check_id(&id)?;
    let params = c.query_params(raw.as_deref())?;
    let req = EverythingRequest::parse(&params)?;
    let scope = c.scope_for_patient(&state, &id, req.endpoint.as_deref()).await?;
    gate_on_sync(&state, &scope).await?;
    let query = resources::Everything {
        scope: &scope,
        types: req.types.as_deref(),
        since: req.since,
        count: req.count,
        offset: req.offset,
    };
    let found = resources::everything(&state.db, &state.cipher, &query).await?;
    let mut type_names: Vec<String> = found.rows.iter().map(|r| r.resource_type.clone()).collect();
    type_names.dedup();
    let entries: Vec<Entry> = found.rows.into_iter().map(|resource| Entry { resource, mode: SearchMode::Match }).collect();
    let path = format!("/fhir/Patient/{id}/$everything");
    let page = Page { base: &state.public_url, path: &path, params: &params, total: found.total, offset: req.offset, count: req.count };
    let entry_count = entries.len();
    let body = bundle(&page, entries, state.clock.now());
    let type_refs: Vec<&str> = type_names.iter().map(String::as_str).collect();
    c.audit_read(&state, &headers, "everything", &type_refs, entry_count).await;
    Ok(fhir_response(StatusCode::OK, body))
}

/// The parameters of `$everything`, parsed and checked.
struct EverythingRequest {
    /// `_type`: only these types.
    types: Option<Vec<String>>,
    /// `_since` (Unix s).
    since: Option<i64>,
    /// `endpoint`: the endpoint the patient id is qualified with.
    endpoint: Option<String>,
    count: usize,
    offset: usize,
}

impl EverythingRequest {
    /// Parses the query parameters in order; the first bad one (or one `$everything` does not take) is the error.
    fn parse(params: &[(String, String)]) -> Result<Self, FhirError> {
        let mut r = EverythingRequest { types: None, since: None, endpoint: None, count: DEFAULT_EVERYTHING_COUNT, offset: 0 };
        for (k, v) in params {
            match k.as_str() {
                "_format" | "_pretty" => {}
                "_count" => r.count = parse_count(v, MAX_EVERYTHING_COUNT)?,
                "_offset" => r.offset = parse_offset(v)?,
                "_type" => r.types = Some(parse_types(v)?),
                "endpoint" => r.endpoint = Some(parse_endpoint(v)?),
                "_since" => {
                    r.since = Some(search::parse_fhir_date(v).ok_or_else(|| FhirError::bad_param("_since must be a FHIR instant"))?.0)
                }
                other => return Err(FhirError::bad_param(format!("parameter {other} is not supported by $everything"))),
            }
        }
        Ok(r)
    }
}

/// `_type=A,B`: types this API serves.
fn parse_types(v: &str) -> Result<Vec<String>, FhirError> {
    let list: Vec<String> = split_list("_type", v)?.into_iter().map(|s| s.trim().to_string()).collect();
    if let Some(t) = list.iter().find(|t| !search::RESOURCE_TYPES.contains(&t.as_str())) {
        return Err(FhirError::bad_param(format!("_type: {t} is not a supported resource type")));
    }
    Ok(list)
}
