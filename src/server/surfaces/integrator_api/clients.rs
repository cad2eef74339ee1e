//! Request parsing and who is calling: POST bodies as forms or JSON, the integrator's secret key, client
//! authentication (RFC 6749 §2.3.1), grants that must belong to the caller, and the audit record of a call.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use base64::{engine::general_purpose::STANDARD, Engine as _};

use crate::{
    domain::Mode,
    server::{
        platform::{crypto, telemetry::request_id, tls::ClientIp},
        state::AppState,
        store::{
            apps::{self, App},
            audit::{self, AuditEntry},
            authorizations::{self, Authorization},
            tokens::{self, TokenRow},
        },
        surfaces::integrator_api::error::{ApiResult, OAuthError},
    },
};

// Request parsing and client authentication
// ---------------------------------------------------------------------------------------------------------

/// Parameters of a POST body, as `application/x-www-form-urlencoded` or JSON (by `Content-Type`).
/// A parameter repeated in a form is an `invalid_request` (RFC 6749 §3.2).
pub fn parse_params(headers: &HeaderMap, body: &Bytes) -> ApiResult<HashMap<String, String>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut out = HashMap::new();
    if body.is_empty() {
        return Ok(out);
    }
    if ct.starts_with("application/json") || (ct.is_empty() && body.first() == Some(&b'{')) {
        let map: serde_json::Map<String, Value> =
            serde_json::from_slice(body).map_err(|_| OAuthError::invalid_request("the body is not a JSON object"))?;
        for (k, v) in map {
            match v {
                Value::String(s) => {
                    out.insert(k, s);
                }
                Value::Number(n) => {
                    out.insert(k, n.to_string());
                }
                Value::Bool(b) => {
                    out.insert(k, b.to_string());
                }
                Value::Null => {}
                _ => return Err(OAuthError::invalid_request(format!("parameter {k} must be a string"))),
            }
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            if out.insert(k.to_string(), v.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!("parameter {k} is repeated")));
            }
        }
    }
    Ok(out)
}

/// Counts a request to a token endpoint from `client` (`--rate-limit-token`): 429 when over the limit.
fn limit_token_endpoint(state: &AppState, client: Option<ClientIp>) -> ApiResult<()> {
    state.limits.token.check(client.map(|c| c.0)).map_err(|l| OAuthError::rate_limited(l, "from this address"))
}

/// The request of a token-style endpoint (`/link/exchange`, `/link/token`, `/link/repair`, `/link/hosted`,
/// `/link/test/public_token`), as its handler receives it: the body read (axum's body limit applies), the
/// per-address rate limit (`--rate-limit-token`) passed, and the parameters parsed by [`parse_params`].
///
/// Rejections, in that order: axum's own for an unreadable or oversized body (400/413), then RFC 6749 §5.2 JSON:
/// 429 `temporarily_unavailable` with `Retry-After`, 400 `invalid_request` for a malformed body.
pub struct TokenRequest {
    /// The request's headers (`Authorization` carries the secret key or client credentials).
    pub headers: HeaderMap,
    /// The body's parameters, form or JSON.
    pub params: HashMap<String, String>,
}

impl FromRequest<AppState> for TokenRequest {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let client = req.extensions().get::<ClientIp>().copied();
        let headers = req.headers().clone();
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        limit_token_endpoint(state, client).map_err(IntoResponse::into_response)?;
        let params = parse_params(&headers, &body).map_err(IntoResponse::into_response)?;
        Ok(TokenRequest { headers, params })
    }
}

/// A required parameter, non-empty (`invalid_request` otherwise).
pub fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
}

/// `(publishableKey, secretKey)` from `Authorization: Basic` (RFC 6749 §2.3.1), if that header is Basic.
pub fn basic_credentials(headers: &HeaderMap) -> ApiResult<Option<(String, String)>> {
    let Some(v) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let v = v.to_str().map_err(|_| OAuthError::invalid_client("malformed Authorization header"))?;
    let Some(b64) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) else { return Ok(None) };
    let raw = STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|r| String::from_utf8(r).ok())
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let (user, pass) = raw.split_once(':').ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
    let dec = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.to_string());
    Ok(Some((dec(user).unwrap_or_default(), dec(pass).unwrap_or_default())))
}

/// Authenticates an integrator backend by its secret key alone. 401 `invalid_client` when unknown.
pub async fn app_by_secret(state: &AppState, sk: &str) -> ApiResult<(App, Mode)> {
    apps::by_secret_key(&state.db, state.clock.now(), sk)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown secret key"))
}

/// Authenticates an integrator backend on a read route by its secret key: HTTP Basic `publishableKey:secretKey`,
/// or `Authorization: Bearer sk_…`. 401 `invalid_client` when missing or unknown.
pub async fn app_by_secret_header(state: &AppState, headers: &HeaderMap) -> ApiResult<(App, Mode)> {
    match (basic_credentials(headers)?, crate::server::services::access::bearer_token(headers)) {
        (Some(_), _) => authenticate_client(state, headers, &HashMap::new()).await,
        (None, Some(sk)) => app_by_secret(state, sk).await,
        (None, None) => Err(OAuthError::invalid_client("the secret key is required")),
    }
}

/// The app of the secret key on a route that takes it either way: from `Authorization` (Bearer `sk_…` or Basic
/// `pk:sk`) when sent, else from the `secret_key` parameter. 401 `invalid_client` when missing or unknown.
pub async fn app_of(state: &AppState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult<(App, Mode)> {
    match params.get("secret_key").filter(|_| !headers.contains_key(header::AUTHORIZATION)) {
        Some(sk) => app_by_secret(state, sk).await,
        None => app_by_secret_header(state, headers).await,
    }
}

/// The authorization named by `access_token` or `authorization_id` (exactly one), when it is this app's in this
/// mode; 404 otherwise (never telling another app's apart from an unknown one).
pub async fn authorization_of(state: &AppState, app: &App, mode: Mode, params: &HashMap<String, String>) -> ApiResult<Authorization> {
    let named = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let not_found = || OAuthError::not_found("no such authorization for this key");
    let a = match (named("access_token"), named("authorization_id")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request("send access_token or authorization_id, not both"));
        }
        (None, None) => return Err(OAuthError::invalid_request("missing parameter access_token or authorization_id")),
        (Some(token), None) => {
            // The token and its authorization in one statement, as on the FHIR API.
            let (row, a) = tokens::verify_access(&state.db, state.clock.now(), token)
                .await?
                .ok_or_else(|| OAuthError::invalid_grant("access_token is invalid, expired or revoked"))?;
            if !crypto::ct_eq(row.app_id.as_bytes(), app.id.as_bytes()) {
                return Err(not_found());
            }
            if row.authorization_id.is_none() {
                return Err(OAuthError::invalid_request("access_token must be a patient access token"));
            }
            a
        }
        (None, Some(id)) => authorizations::get(&state.db, id).await?,
    };
    let a = a.ok_or_else(not_found)?;
    if !crypto::ct_eq(a.app_id.as_bytes(), app.id.as_bytes()) || a.mode != mode {
        return Err(not_found());
    }
    Ok(a)
}

/// Authenticates a client by `publishableKey:secretKey` (HTTP Basic, or `client_id`/`client_secret` in the
/// body): both keys must belong to the same app and mode.
pub async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> ApiResult<(App, Mode)> {
    let (pk, sk) = match basic_credentials(headers)? {
        Some(c) => c,
        None => match (params.get("client_id"), params.get("client_secret")) {
            (Some(pk), Some(sk)) => (pk.clone(), sk.clone()),
            _ => return Err(OAuthError::invalid_client("HTTP Basic publishableKey:secretKey is required")),
        },
    };
    let by_pk = apps::by_publishable_key(&state.db, &pk).await?;
    let by_sk = apps::by_secret_key(&state.db, state.clock.now(), &sk).await?;
    match (by_pk, by_sk) {
        (Some((a, m)), Some((b, n))) if crypto::ct_eq(a.id.as_bytes(), b.id.as_bytes()) && m == n => Ok((a, m)),
        _ => Err(OAuthError::invalid_client("unknown or mismatched publishableKey and secretKey")),
    }
}


pub async fn check_owner(state: &AppState, row: &TokenRow, app: &App, mode: Mode, what: &str) -> ApiResult<()> {
    if !crypto::ct_eq(row.app_id.as_bytes(), app.id.as_bytes()) {
        return Err(OAuthError::invalid_grant(format!("{what} was not issued to this application")));
    }
    if let Some(a) = authorizations::get(&state.db, row.authorization_id.as_deref().unwrap_or_default()).await? {
        if a.mode != mode {
            return Err(OAuthError::invalid_grant(format!("{what} belongs to the other mode (test/live) than this key")));
        }
    }
    Ok(())
}

pub async fn load_authorization(state: &AppState, row: &TokenRow) -> ApiResult<Authorization> {
    let id = row.authorization_id.as_deref().unwrap_or_default();
    let a = authorizations::get(&state.db, id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the authorization no longer exists"))?;
    if a.revoked_at.is_some() || a.state.is_ended() {
        return Err(OAuthError::invalid_grant(format!("the authorization is {}", a.state.as_str().to_lowercase())));
    }
    Ok(a)
}

pub async fn audit_event(
    state: &AppState,
    headers: &HeaderMap,
    action: &str,
    app_id: &str,
    authorization_id: Option<&str>,
    detail: Option<Value>,
) {
    let rid = request_id(headers);
    let actor = format!("app:{app_id}");
    if let Err(e) = audit::record(
        &state.db.pool,
        state.clock.now(),
        AuditEntry {
            actor: &actor,
            action,
            app_id: Some(app_id),
            authorization_id,
            request_id: rid.as_deref(),
            detail,
        },
    )
    .await
    {
        tracing::error!(error = %format!("{e:#}"), action, "could not write an audit record");
    }
}

