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
    domain::{AuthorizationState, Mode, Usage},
    server::{
        platform::crypto,
        services::sync,
        state::AppState,
        store::{
            apps::App,
            authorizations::{self, Authorization},
            tokens::{self, TokenKind},
        },
        surfaces::integrator_api::{
            clients::{app_by_secret, app_by_secret_header, audit_event, parse_params},
            error::{no_store, ApiResult, OAuthError},
            grants::sync_json,
        },
    },
};

/// The app of the secret key: from `Authorization` when sent, else from the `secret_key` parameter.
async fn app_of(state: &AppState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult<(App, Mode)> {
    match params.get("secret_key").filter(|_| !headers.contains_key(axum::http::header::AUTHORIZATION)) {
        Some(sk) => app_by_secret(state, sk).await,
        None => app_by_secret_header(state, headers).await,
    }
}

/// The authorization named by `access_token` or `authorization_id` (exactly one), when it is this app's in this
/// mode; 404 otherwise (never telling another app's apart from an unknown one).
async fn authorization_of(state: &AppState, app: &App, mode: Mode, params: &HashMap<String, String>) -> ApiResult<Authorization> {
    let named = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let not_found = || OAuthError::not_found("no such authorization for this key");
    let id = match (named("access_token"), named("authorization_id")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send access_token or authorization_id, not both"));
        }
        (None, None) => return Err(OAuthError::invalid_request("missing parameter access_token or authorization_id")),
        (Some(token), None) => {
            let row = tokens::verify(&state.db, state.clock.now(), TokenKind::Access, token)
                .await?
                .ok_or_else(|| OAuthError::invalid_grant("access_token is invalid, expired or revoked"))?;
            if !crypto::ct_eq(row.app_id.as_bytes(), app.id.as_bytes()) {
                return Err(not_found());
            }
            row.authorization_id.ok_or_else(|| OAuthError::invalid_request("access_token must be a patient access token"))?
        }
        (None, Some(id)) => id.to_string(),
    };
    let a = authorizations::get(&state.db, &id).await?.ok_or_else(not_found)?;
    if !crypto::ct_eq(a.app_id.as_bytes(), app.id.as_bytes()) || a.mode != mode {
        return Err(not_found());
    }
    Ok(a)
}

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
