//! `POST /link/sync` (a re-sync now) and `GET /link/sync` (the sync history) of one MULTIPLE authorization.
//!
//! Both take the secret key (`Authorization: Bearer sk_…`, HTTP Basic `pk:sk`, or `secret_key` in a POST body)
//! and name the authorization by `access_token` (a patient access token of that app) or `authorization_id`.
//! An authorization of another app or mode is answered exactly like an unknown one (404 `not_found`).

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse as _, Response},
};
use serde_json::json;

use crate::{
    domain::{AuthorizationState, Usage},
    server::{
        services::sync,
        state::AppState,
        surfaces::integrator_api::{
            clients::{app_by_secret_header, app_of, audit_event, authorization_of, parse_params},
            error::{no_store, ApiResult, OAuthError},
            grants::sync_json,
        },
    },
};

/// `POST /link/sync` `{access_token | authorization_id}` → `202 {job_id, authorization_id, queued, sync}`: asks
/// for a re-sync of a live MULTIPLE authorization now (the job refreshes the payer token first when it has to).
/// A job already pending, syncing or delayed is returned (`queued: false`) instead of a second one; queuing is
/// rate-limited per authorization (`--rate-limit-resync`, 429 `temporarily_unavailable` with `Retry-After`).
/// The FHIR API keeps serving the previous data meanwhile.
///
/// Errors (RFC 6749 §5.2 JSON): 401 `invalid_client` (secret key), 400 `invalid_request` (parameters, or a
/// `ONE_TIME` authorization), 404 `not_found`, 409 `invalid_grant` (revoked, expired or `NEEDS_REAUTH`).
pub async fn request(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let params = parse_params(&headers, &body)?;
    let (app, mode) = app_of(&state, &headers, &params).await?;
    let a = authorization_of(&state, &app, mode, &params).await?;
    let now = state.clock.now();
    if a.usage != Usage::Multiple {
        return Err(OAuthError::invalid_request(
            "re-sync is for MULTIPLE authorizations; this one is ONE_TIME (its data was synced once)",
        ));
    }
    if !a.is_live(now) || a.state == AuthorizationState::NeedsReauth {
        let why = if a.state == AuthorizationState::NeedsReauth {
            "the payer ended this grant: the patient must link again".to_string()
        } else {
            format!("the authorization is {}", a.state.as_str().to_lowercase())
        };
        return Err(OAuthError::new(StatusCode::CONFLICT, "invalid_grant", why));
    }
    let (job_id, queued) = match crate::server::store::sync_jobs::unfinished(&state.db.pool, &a.id).await? {
        Some(id) => (id, false),
        None => {
            state.limits.resync.check(Some(a.id.clone())).map_err(|l| OAuthError::rate_limited(l, "to re-sync this authorization"))?;
            (sync::request_resync(&state.db, &a.id, now).await?, true)
        }
    };
    if queued {
        audit_event(&state, &headers, "sync.requested", &app.id, Some(&a.id), Some(json!({"job_id": job_id}))).await;
    }
    let status = sync::status(&state.db, &a.id).await?;
    let mut resp: Response = no_store(json!({
        "job_id": job_id,
        "authorization_id": a.id,
        "queued": queued,
        "sync": status.as_ref().map(sync_json),
    }));
    *resp.status_mut() = StatusCode::ACCEPTED;
    Ok(resp.into_response())
}

/// `GET /link/sync?authorization_id=…` (or `access_token=…`) → `{authorization_id, sync_history: [Run]}`: the
/// authorization's last [`sync::HISTORY_RUNS`] sync runs, newest first, whatever its usage and state. The secret
/// key comes in `Authorization` only (Bearer `sk_…` or Basic); prefer `authorization_id`, which keeps tokens out
/// of URLs.
pub async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let (app, mode) = app_by_secret_header(&state, &headers).await?;
    let a = authorization_of(&state, &app, mode, &query).await?;
    let runs = sync::history(&state.db, &a.id).await?;
    Ok(no_store(json!({"authorization_id": a.id, "sync_history": runs})))
}
