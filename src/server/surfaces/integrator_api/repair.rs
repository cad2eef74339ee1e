//! `POST /link/repair`: a repair token for one authorization, so the patient can renew its payer grant in Link
//! (`FlexpaLink.create({repairToken})`, see `services::repair`).
//!
//! Takes the secret key (`Authorization: Bearer sk_…`, HTTP Basic `pk:sk`, or `secret_key` in the body) and names
//! the authorization by `access_token` (a patient access token of that app) or `authorization_id`. An
//! authorization of another app or mode is answered exactly like an unknown one (404 `not_found`).

use axum::{
    extract::State,
    http::StatusCode,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::server::{
    platform::telemetry::request_id,
    services::repair,
    state::AppState,
    surfaces::integrator_api::{
        clients::{app_of, authorization_of, TokenRequest},
        error::{no_store, ApiResult, OAuthError},
    },
};

/// `POST /link/repair` `{access_token | authorization_id}` → `{repair_token, expires_in, authorization_id, state}`:
/// a single-use repair token (`rpt_…`, [`repair::REPAIR_TOKEN_TTL_SECS`] seconds) for a MULTIPLE authorization
/// that is `NEEDS_REAUTH` or still active and live (its payer grant is ending, or the patient wants to consent
/// again). Each call issues a new token; the one a session starts with is spent.
///
/// Errors (RFC 6749 §5.2 JSON): 401 `invalid_client` (secret key), 400 `invalid_request` (parameters), 404
/// `not_found`, 409 `invalid_grant` (ONE_TIME, revoked, expired or expunged: link again instead); 429
/// `temporarily_unavailable` with `Retry-After` over `--rate-limit-token` per client address.
pub async fn repair(
    State(state): State<AppState>,
    TokenRequest { headers, params }: TokenRequest,
) -> ApiResult {
    let (app, mode) = app_of(&state, &headers, &params).await?;
    let a = authorization_of(&state, &app, mode, &params).await?;
    if let Some(why) = repair::refusal(&a, state.clock.now()) {
        return Err(OAuthError::new(StatusCode::CONFLICT, "invalid_grant", why));
    }
    let token = repair::issue(&state, &a, request_id(&headers).as_deref()).await?;
    Ok(no_store(json!({
        "repair_token": token.expose_secret(),
        "expires_in": repair::REPAIR_TOKEN_TTL_SECS,
        "authorization_id": a.id,
        "state": a.state.as_str(),
    })))
}
