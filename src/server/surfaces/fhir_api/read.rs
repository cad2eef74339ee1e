//! `GET /fhir/{type}/{id}`: one resource, exactly as stored, with a weak `ETag` of its `meta.versionId`.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
};

use super::{
    caller::{caller, check_id, check_type, gate_on_sync},
    error::{fhir_response, FhirError},
    FhirResult,
};
use crate::server::{state::AppState, store::resources};

pub(super) async fn read(State(state): State<AppState>, headers: HeaderMap, Path((rtype, id)): Path<(String, String)>) -> FhirResult {
    let c = caller(&state, &headers).await?;
    check_type(&rtype)?;
    let id = c.substitute(&id)?;
    check_id(&id)?;
    let scope = c.read_scope(&state, &rtype, &id).await?;
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
