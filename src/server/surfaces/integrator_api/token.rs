//! `POST /link/token`: the OAuth 2.0 token endpoint (RFC 6749 §4.1.3, §4.4, §6; PKCE RFC 7636).

use std::collections::HashMap;

use axum::{
    extract::State,
    http::HeaderMap,
};
use serde_json::{json, Value};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use sha2::{Digest as _, Sha256};

use crate::{
    domain::AuthorizationState,
    server::{
        platform::crypto,
        state::AppState,
        store::{
            apps, authorizations,
            tokens::{self, ConsumeError, TokenKind, APP_TOKEN_TTL_SECS},
        },
        surfaces::integrator_api::{
            clients::{
                audit_event, authenticate_client, basic_credentials, check_owner, load_authorization,
                TokenRequest, required,
            },
            error::{no_store, ApiResult, OAuthError},
            grants::grant_response,
        },
    },
};

// POST /link/token
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/token` (form or JSON), RFC 6749 §4.1.3 / §4.4 / §6:
/// - `grant_type=refresh_token&refresh_token=…` with HTTP Basic `publishableKey:secretKey`: a new
///   `access_token` and a rotated `refresh_token` (the old one is spent). The spent one presented again within
///   `REFRESH_REUSE_GRACE_SECS` (30 s) of its use, while the new refresh token is still unused, answers the
///   same new pair again (a network retry); any other reuse revokes the authorization's tokens (reuse
///   detection, RFC 9700 §4.14.2).
/// - `grant_type=client_credentials` with HTTP Basic: an application token (1800 s).
/// - `grant_type=authorization_code&code&code_verifier&redirect_uri`: the redirect flow (PKCE S256, RFC 7636,
///   always). A confidential client authenticates (RFC 6749 §2.3.1): HTTP Basic `publishableKey:secretKey`, or
///   `client_id` + `client_secret` in the body; a public client (an app without its secret key, e.g. a mobile
///   app) sends only `client_id`, and PKCE is its proof.
///
/// Rate limited per client address (`--rate-limit-token`): 429 `temporarily_unavailable` with `Retry-After`.
pub async fn token(
    State(state): State<AppState>,
    TokenRequest { headers, params }: TokenRequest,
) -> ApiResult {
    match required(&params, "grant_type")? {
        "refresh_token" => refresh_grant(&state, &headers, &params).await,
        "client_credentials" => client_credentials_grant(&state, &headers, &params).await,
        "authorization_code" => authorization_code_grant(&state, &headers, &params).await,
        _ => Err(OAuthError::unsupported_grant_type(
            "grant_type must be refresh_token, client_credentials or authorization_code",
        )),
    }
}

async fn refresh_grant(state: &AppState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult {
    let (app, mode) = authenticate_client(state, headers, params).await?;
    let presented = required(params, "refresh_token")?;
    let now = state.clock.now();
    if let Some(row) = tokens::verify(&state.db, now, TokenKind::Refresh, presented).await? {
        check_owner(state, &row, &app, mode, "refresh_token").await?;
    }
    let row = match tokens::consume(&state.db, now, TokenKind::Refresh, presented).await? {
        Ok(row) => row,
        Err(ConsumeError::AlreadyUsed) => {
            if let Some(again) = retried_answer(state, presented).await? {
                audit_event(state, headers, "token.refresh_retried", &app.id, None, None).await;
                return Ok(no_store(again));
            }
            // Otherwise a spent refresh token presented again means it leaked: end every token of that grant.
            if let Some(a) = tokens::authorization_of(&state.db, TokenKind::Refresh, presented).await? {
                tokens::revoke_for_authorization(&state.db.pool, now, &a).await?;
                tracing::warn!(authorization_id = %a, "refresh token reuse detected; tokens revoked");
            }
            return Err(OAuthError::invalid_grant("refresh_token has already been used"));
        }
        Err(ConsumeError::Expired) => return Err(OAuthError::invalid_grant("refresh_token has expired")),
        Err(ConsumeError::Revoked) => return Err(OAuthError::invalid_grant("refresh_token has been revoked")),
        Err(ConsumeError::Unknown) => return Err(OAuthError::invalid_grant("refresh_token is invalid")),
    };
    let authorization = load_authorization(state, &row).await?;
    if authorization.mode != mode {
        return Err(OAuthError::invalid_grant("refresh_token belongs to the other mode (test/live)"));
    }
    if authorization.state == AuthorizationState::NeedsReauth {
        return Err(OAuthError::invalid_grant("the payer ended this grant: the patient must link again"));
    }
    let family = row.detail.get("family").and_then(Value::as_str).map(str::to_owned);
    let response = grant_response(state, &authorization, family.as_deref()).await?;
    tokens::keep_reissue(&state.db, &state.cipher, &row.id, &response.to_string()).await?;
    // A refresh fetches the patient's latest data (FHIR reads answer 429 until that sync is done).
    crate::server::services::sync::request_resync(&state.db, &authorization.id, now).await?;
    audit_event(state, headers, "token.refreshed", &app.id, Some(&authorization.id), None).await;
    Ok(no_store(response))
}

/// The answer a spent refresh token's use produced, when this is a retry of that use: within the grace window
/// ([`tokens::REFRESH_REUSE_GRACE_SECS`]) and its new refresh token not used yet (a client that used the new one
/// got the answer; presenting the old one again is a replay). Waits briefly while the first request is still
/// writing its answer.
async fn retried_answer(state: &AppState, presented: &str) -> anyhow::Result<Option<Value>> {
    for _ in 0..40 {
        let now = state.clock.now();
        match tokens::reissue(&state.db, &state.cipher, now, TokenKind::Refresh, presented).await? {
            tokens::Reissue::No => return Ok(None),
            tokens::Reissue::NotYet => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            tokens::Reissue::Answer(text) => {
                let answer: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&text))?;
                let successor = answer.get("refresh_token").and_then(Value::as_str).unwrap_or("");
                let access = answer.get("access_token").and_then(Value::as_str).unwrap_or("");
                let live = tokens::is_unspent(&state.db, now, TokenKind::Refresh, successor).await?
                    && tokens::verify(&state.db, now, TokenKind::Access, access).await?.is_some();
                return Ok(live.then_some(answer));
            }
        }
    }
    Ok(None)
}

async fn client_credentials_grant(state: &AppState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult {
    let (app, mode) = authenticate_client(state, headers, params).await?;
    let now = state.clock.now();
    let token = tokens::issue(
        &state.db.pool,
        now,
        TokenKind::App,
        &app.id,
        None,
        Some(APP_TOKEN_TTL_SECS),
        json!({"mode": mode.as_str()}),
    )
    .await?;
    audit_event(state, headers, "token.application_issued", &app.id, None, None).await;
    Ok(no_store(json!({"access_token": token, "token_type": "Bearer", "expires_in": APP_TOKEN_TTL_SECS})))
}

/// `BASE64URL(SHA-256(code_verifier))` (RFC 7636 §4.2, S256).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn authorization_code_grant(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> ApiResult {
    let code = required(params, "code")?;
    let verifier = required(params, "code_verifier")?;
    let redirect_uri = required(params, "redirect_uri")?;
    if !valid_verifier(verifier) {
        return Err(OAuthError::invalid_request("code_verifier must be 43-128 unreserved characters (RFC 7636)"));
    }
    // A client that sends credentials is authenticated with them (a wrong secret is never ignored); one that
    // sends none is a public client, identified by client_id alone and held to PKCE below.
    let confidential = basic_credentials(headers)?.is_some() || params.contains_key("client_secret");
    let (app, mode, client_id) = if confidential {
        let (app, mode) = authenticate_client(state, headers, params).await?;
        let pk = apps::publishable_key(&state.db, &app.id, mode)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("the client has no publishable key of this mode"))?;
        if params.get("client_id").is_some_and(|c| c != &pk) {
            return Err(OAuthError::invalid_client("client_id does not match the authenticated client"));
        }
        (app, mode, pk)
    } else {
        let client_id = required(params, "client_id")?.to_string();
        let (app, mode) = apps::by_publishable_key(&state.db, &client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client_id"))?;
        (app, mode, client_id)
    };
    let now = state.clock.now();
    let row = match tokens::consume(&state.db, now, TokenKind::Code, code).await? {
        Ok(row) => row,
        Err(ConsumeError::AlreadyUsed) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it granted.
            if let Some(a) = tokens::authorization_of(&state.db, TokenKind::Code, code).await? {
                tokens::revoke_for_authorization(&state.db.pool, now, &a).await?;
            }
            return Err(OAuthError::invalid_grant("code has already been used"));
        }
        Err(ConsumeError::Expired) => return Err(OAuthError::invalid_grant("code has expired")),
        Err(_) => return Err(OAuthError::invalid_grant("code is invalid")),
    };
    let d = &row.detail;
    let ok_client = crypto::ct_eq(row.app_id.as_bytes(), app.id.as_bytes())
        && d.get("client_id").and_then(Value::as_str) == Some(client_id.as_str());
    if !ok_client {
        return Err(OAuthError::invalid_grant("code was not issued to this client_id"));
    }
    if d.get("redirect_uri").and_then(Value::as_str) != Some(redirect_uri) {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    let challenge = d.get("code_challenge").and_then(Value::as_str).unwrap_or_default();
    if !crypto::ct_eq(pkce_challenge(verifier).as_bytes(), challenge.as_bytes()) {
        return Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let authorization = load_authorization(state, &row).await?;
    if authorization.mode != mode {
        return Err(OAuthError::invalid_grant("code belongs to the other mode (test/live)"));
    }
    let response = grant_response(state, &authorization, None).await?;
    authorizations::mark_exchanged(&state.db, &authorization.id, now).await?;
    audit_event(state, headers, "token.exchanged", &app.id, Some(&authorization.id), Some(json!({"grant": "authorization_code"})))
        .await;
    Ok(no_store(response))
}



#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

