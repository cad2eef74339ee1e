//! `POST /link/exchange` (the `public_token` for an access token) and `GET /link/introspect`.


use axum::{
    extract::State,
    http::HeaderMap,
};
use serde_json::json;

use crate::server::{
        services::access::{authenticate_bearer, Principal},
        state::AppState,
        store::{
            authorizations, endpoints,
            tokens::{self, ConsumeError, TokenKind},
        },
        surfaces::integrator_api::{
            clients::{app_by_secret, audit_event, check_owner, load_authorization, TokenRequest, required},
            error::{no_store, ApiResult, OAuthError},
            grants::{endpoint_json, grant_response, lifetime_json, patient_ref},
        },
    };

// POST /link/exchange
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/exchange` `{public_token, secret_key}` → `{access_token, token_type, expires_in (86400, or less
/// when the data is expunged sooner: ONE_TIME), refresh_token?,
/// refresh_expires_in?, patient, endpoint}`. The `public_token` is single use, 30 minutes, one app's. It may be
/// exchanged as soon as `onSyncing` delivers it; the Link modal still ends with `onSuccess` and the same token.
/// Rate limited per client address (`--rate-limit-token`) and per app (`--rate-limit-exchange`): 429
/// `temporarily_unavailable` with `Retry-After`.
pub async fn exchange(
    State(state): State<AppState>,
    TokenRequest { headers, params }: TokenRequest,
) -> ApiResult {
    let public_token = required(&params, "public_token")?;
    let secret_key = required(&params, "secret_key")?;
    let (app, mode) = app_by_secret(&state, secret_key).await?;
    state.limits.exchange.check(Some(app.id.clone())).map_err(|l| OAuthError::rate_limited(l, "for this app"))?;
    let now = state.clock.now();
    // Checked before consuming, so another app's (or the other mode's) key cannot burn a token that is not
    // its own.
    if let Some(row) = tokens::verify(&state.db, now, TokenKind::Public, public_token).await? {
        check_owner(&state, &row, &app, mode, "public_token").await?;
    }
    let row = match tokens::consume(&state.db, now, TokenKind::Public, public_token).await? {
        Ok(row) => row,
        Err(ConsumeError::AlreadyUsed) => {
            return Err(OAuthError::invalid_grant("public_token has already been exchanged"))
        }
        Err(ConsumeError::Expired) => return Err(OAuthError::invalid_grant("public_token has expired")),
        Err(ConsumeError::Revoked) => return Err(OAuthError::invalid_grant("public_token has been revoked")),
        Err(ConsumeError::Unknown) => return Err(OAuthError::invalid_grant("public_token is invalid")),
    };
    let authorization = load_authorization(&state, &row).await?;
    if authorization.mode != mode {
        return Err(OAuthError::invalid_grant("public_token belongs to the other mode (test/live) than this key"));
    }
    let response = grant_response(&state, &authorization, None).await?;
    authorizations::mark_exchanged(&state.db, &authorization.id, now).await?;
    // The Link session keeps its sealed copy of this (now spent) token until the modal has told the page:
    // exchanging early, e.g. in `onSyncing`, must not change what the page sees (`onSuccess` still fires with it).
    audit_event(&state, &headers, "token.exchanged", &app.id, Some(&authorization.id), None).await;
    Ok(no_store(response))
}


// GET /link/introspect
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/introspect` (Bearer) → `{active, jti, iat, exp, patient, endpoint, user: {externalId}, sub, usage,
/// state, expires_at, refresh_expires_at, last_synced_at, sync}` for a patient token (see
/// `grants::lifetime_json`); `{active, jti, iat, exp, sub (app id), token_type: "application"}` for an
/// application token.
pub async fn introspect(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let principal = authenticate_bearer(&state, &headers).await?;
    match principal {
        Principal::Patient { token, authorization } => {
            let endpoint = endpoints::get(&state.db, &authorization.endpoint_id).await?;
            let types = authorizations::resource_types(&state.db, &authorization.id).await?;
            let mut body = json!({
                "active": true,
                "jti": token.id,
                "iat": token.created_at,
                "exp": token.expires_at,
                "patient": patient_ref(&authorization),
                "endpoint": endpoint_json(endpoint.as_ref(), &authorization, &types),
                "user": {"externalId": authorization.external_id},
                "sub": authorization.id,
                "usage": authorization.usage.as_str(),
                "token_type": "patient",
            });
            if let Some(o) = body.as_object_mut() {
                o.extend(lifetime_json(&state, &authorization).await?);
            }
            Ok(no_store(body))
        }
        Principal::App { token, app_id, mode } => Ok(no_store(json!({
            "active": true,
            "jti": token.id,
            "iat": token.created_at,
            "exp": token.expires_at,
            "sub": app_id,
            "mode": mode.as_str(),
            "token_type": "application",
        }))),
    }
}

