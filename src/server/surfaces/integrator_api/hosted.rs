//! `POST /link/hosted`: a hosted (re-connect) link for one user, a URL the integrator sends by email or SMS. The
//! rules (single use, binding, expiry, the `link.completed` webhook) are `services::hosted_links`.

use std::collections::HashMap;

use axum::{
    extract::State,
    http::StatusCode,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::{
    domain::{ExitCode, Mode, Usage},
    server::{
        services::{
            hosted_links::{self, LinkRequest, DEFAULT_TTL_SECS, MAX_TTL_SECS},
            link_flow, repair,
        },
        state::AppState,
        store::endpoints,
        surfaces::integrator_api::{
            clients::{app_of, audit_event, TokenRequest, required},
            error::{no_store, ApiResult, OAuthError},
        },
    },
};

/// `POST /link/hosted` (secret key: `Authorization: Bearer sk_…`, Basic `pk:sk`, or `secret_key` in the body;
/// JSON or form) `{externalId, usage, endpoint?, repairToken?, expires_in?}` → `{hosted_link_id, url, expires_at,
/// expires_in}`.
///
/// `usage` is `ONE_TIME` or `MULTIPLE`; `endpoint` a plan of the key's mode (the flow then skips the plan search);
/// `expires_in` the link's lifetime in seconds, [`DEFAULT_TTL_SECS`] (7 days) when absent, at most
/// [`MAX_TTL_SECS`] (30 days). The flow ends at the app's first registered `redirect_uri` with `public_token`, or
/// on a "done" screen when the app has none; either way `link.completed` carries the `public_token` (an app with
/// neither a `redirect_uri` nor a webhook URL is refused: the token would reach no one).
/// `repairToken` (from `POST /link/repair`) makes it a repair link: the token is redeemed now (single use; the
/// link then lives its own `expires_in`), and the link renews that authorization in place, with its user, usage
/// and plan (`externalId`, `usage` and `endpoint` may be left out; when given they must be the same, else 400
/// `invalid_request` and the token stays unspent).
/// Rate-limited per client address like the token endpoints.
///
/// Errors (RFC 6749 §5.2 JSON): 401 `invalid_client`, 400 `invalid_request`, 400 `invalid_grant` (a repair token
/// that is malformed, unknown, another app's, expired, used, or whose authorization cannot be repaired), 429
/// `temporarily_unavailable`.
pub async fn create(
    State(state): State<AppState>,
    TokenRequest { headers, params }: TokenRequest,
) -> ApiResult {
    let (app, mode) = app_of(&state, &headers, &params).await?;
    if app.redirect_uris.is_empty() && app.webhook_url.is_none() {
        return Err(OAuthError::invalid_request(
            "the app has neither a registered redirect_uri nor a webhook URL: a hosted link's public_token would reach no one",
        ));
    }
    let repaired = match params.get("repairToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(token) => {
            let given = |k: &str| params.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
            let named = repair::Named { external_id: given("externalId"), usage: given("usage"), endpoint_id: given("endpoint") };
            // A mismatch leaves the token unspent.
            Some(repair::redeem(&state, token, &app.id, mode, named).await?.map_err(|code| match code {
                ExitCode::InvalidUser | ExitCode::InvalidUsage => {
                    OAuthError::invalid_request("externalId and usage, when given with repairToken, must be the authorization's")
                }
                ExitCode::InvalidEndpoint => OAuthError::invalid_request("endpoint, when given with repairToken, must be the authorization's"),
                _ => OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", "repairToken is invalid, expired, used or no longer repairable"),
            })?)
        }
    };
    let (external_id, usage, endpoint_id) = match &repaired {
        Some(a) => (a.external_id.as_str(), a.usage, Some(a.endpoint_id.clone())),
        None => {
            let external_id = required(&params, "externalId")?;
            if !link_flow::valid_external_id(external_id) {
                return Err(OAuthError::invalid_request("externalId must be 1 to 255 characters, without control characters"));
            }
            let usage = Usage::parse(required(&params, "usage")?)
                .ok_or_else(|| OAuthError::invalid_request("usage must be ONE_TIME or MULTIPLE"))?;
            (external_id.trim(), usage, endpoint_of(&state, mode, &params).await?)
        }
    };
    let ttl_secs = match params.get("expires_in") {
        None => DEFAULT_TTL_SECS,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|s| (1..=MAX_TTL_SECS).contains(s))
            .ok_or_else(|| OAuthError::invalid_request(format!("expires_in must be whole seconds from 1 to {MAX_TTL_SECS}")))?,
    };
    let repairs = repaired.as_ref().map(|a| a.id.as_str());
    let request = LinkRequest { external_id, usage, endpoint_id: endpoint_id.as_deref(), ttl_secs, repairs };
    let created = hosted_links::create(&state, &app.id, mode, app.redirect_uris.first().map(String::as_str), request).await?;
    let detail = json!({"hosted_link_id": created.id, "usage": usage.as_str(), "expires_at": created.expires_at, "repair": repairs.is_some()});
    audit_event(&state, &headers, "hosted_link.created", &app.id, repairs, Some(detail)).await;
    Ok(no_store(json!({
        "hosted_link_id": created.id,
        "url": created.url.expose_secret(),
        "expires_at": created.expires_at,
        "expires_in": ttl_secs,
    })))
}

/// The `endpoint` parameter: absent, or a plan of `mode` (400 `invalid_request` otherwise).
async fn endpoint_of(state: &AppState, mode: Mode, params: &HashMap<String, String>) -> ApiResult<Option<String>> {
    let Some(e) = params.get("endpoint").filter(|e| !e.is_empty()) else { return Ok(None) };
    let unknown = || OAuthError::invalid_request("endpoint is not a plan of this key's mode (see GET /link/endpoints)");
    if uuid::Uuid::parse_str(e).is_err() {
        return Err(unknown());
    }
    match endpoints::get(&state.db, e).await? {
        Some(ep) if ep.mode == mode => Ok(Some(ep.id)),
        _ => Err(unknown()),
    }
}
