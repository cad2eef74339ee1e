//! `GET /fhir/{type}/{id}`: one resource, exactly as stored, with a weak `ETag` of its `meta.versionId`. A
//! Patient may be qualified with `endpoint=<endpoint id>` (see `Caller::scope_for_patient`); other query
//! parameters are ignored.

use axum::{
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
};

use super::{
    caller::{caller, check_id, check_type, gate_on_sync, parse_endpoint, path_params},
    error::{fhir_response, FhirError},
    FhirResult,
};
use crate::server::{state::AppState, store::resources};

pub(super) async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    let (rtype, id) = path_params(path)?;
    check_type(&rtype)?;
    let id = c.substitute(&id)?;
    check_id(&id)?;
    let endpoint = match c.query_params(raw.as_deref())?.iter().rev().find(|(k, _)| k == "endpoint") {
        Some((_, v)) => Some(parse_endpoint(v)?),
        None => None,
    };
    let scope = c.read_scope(&state, &rtype, &id, endpoint.as_deref()).await?;
    gate_on_sync(&state, &scope).await?;
    let Some(found) = resources::read(&state.db, &state.cipher, &scope, &rtype, &id).await? else {
        return Err(FhirError::not_found(format!("{rtype}/{id} is not known")));
    };
    c.audit_read(&state, &headers, "read", &[rtype.as_str()], 1).await;
    let mut resp = fhir_response(StatusCode::OK, found.body);
    if let Some(v) = found.version_id.and_then(|v| HeaderValue::from_str(&format!("W/\"{v}\"")).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}
