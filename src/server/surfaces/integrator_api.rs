//! The integrator's /link/* API: exchange, introspect, token, revoke, users, auth, and the test-mode
//! `public_token` shortcut; plus `/openapi.json` describing them.
//!
//! Owner: [Integrator API]. Compiled only with `ssr`.
//!
//! - Token endpoint errors are RFC 6749 §5.2 JSON (`{error, error_description}`, `Cache-Control: no-store`);
//!   a failed HTTP Basic client authentication is 401 with `WWW-Authenticate: Basic`.
//! - Bearer-protected routes answer a missing or bad token with 401 and `WWW-Authenticate: Bearer`
//!   (RFC 6750 §3).
//! - Internal errors are logged with the request id and answered with `server_error` only.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::server::{
    platform::{crypto, telemetry::request_id},
    services::{
        access::{authenticate_bearer, bearer_challenge, bearer_token, AccessError, Principal},
        lifecycle,
    },
    state::AppState,
    store::{
        apps::{self, App},
        audit::{self, AuditEntry},
        authorizations::{self, Authorization},
        endpoints::{self, Endpoint},
        tokens::{self, ConsumeError, TokenKind, TokenRow},
    },
};
use crate::domain::{Mode, Usage};

/// Lifetime of a patient `access_token` (seconds).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 86_400;
/// Lifetime of an application access token from `client_credentials` (seconds).
pub const APP_TOKEN_TTL_SECS: i64 = 1_800;
/// Lifetime of a `public_token` (seconds).
pub const PUBLIC_TOKEN_TTL_SECS: i64 = 1_800;
/// Lifetime of an authorization code of the redirect flow (seconds; RFC 6749 §4.1.2 recommends ≤ 10 min).
pub const CODE_TTL_SECS: i64 = 600;

/// Route paths, shared by the router and the OpenAPI document so the two cannot drift apart.
pub mod paths {
    /// `POST` exchange a `public_token`.
    pub const EXCHANGE: &str = "/link/exchange";
    /// `GET` introspect a Bearer token.
    pub const INTROSPECT: &str = "/link/introspect";
    /// `POST` OAuth 2.0 token endpoint.
    pub const TOKEN: &str = "/link/token";
    /// `POST` revoke a patient's authorizations.
    pub const REVOKE: &str = "/link/revoke";
    /// `GET` one user's authorizations.
    pub const USERS: &str = "/link/users/{externalId}";
    /// `GET` OAuth 2.0 authorization endpoint (redirect flow).
    pub const AUTH: &str = "/link/auth";
    /// `POST` a short-lived URL of the connections page for one user.
    pub const CONNECTIONS_URL: &str = "/link/connections-url";
    /// `POST` test-mode shortcut minting a `public_token` for a sandbox member.
    pub const TEST_PUBLIC_TOKEN: &str = "/link/test/public_token";
}

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::EXCHANGE, post(exchange))
        .route(paths::INTROSPECT, get(introspect))
        .route(paths::TOKEN, post(token))
        .route(paths::REVOKE, post(revoke))
        .route(paths::USERS, get(users))
        .route(paths::AUTH, get(auth))
        .route(paths::TEST_PUBLIC_TOKEN, post(test_public_token))
        .route(paths::CONNECTIONS_URL, post(connections_url))
        // A wrong method gets the same RFC 6749 §5.2 JSON body as every other error here (axum keeps `Allow`).
        .method_not_allowed_fallback(|| async {
            OAuthError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this endpoint does not accept this HTTP method (see /openapi.json)",
            )
        })
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate` value to send (401 only).
    challenge: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, error, description: description.into(), challenge: None }
    }
    /// 400 `invalid_request`: a missing, repeated or malformed parameter.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// 400 `invalid_grant`: the grant (public_token, code, refresh_token) is invalid, expired, used or
    /// issued to another client.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    /// 401 `invalid_client` with a `Basic` challenge (RFC 6749 §5.2).
    pub fn invalid_client(d: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d);
        e.challenge = Some("Basic realm=\"link\"".into());
        e
    }
    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    /// 400 `unauthorized_client`: this client may not use this grant (e.g. a live key on a test-only route).
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// 401 `invalid_token` with a `Bearer` challenge (RFC 6750 §3.1).
    pub fn invalid_token(d: impl Into<String>) -> Self {
        let d = d.into();
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token", d.clone());
        e.challenge = Some(bearer_challenge(Some("invalid_token"), Some(&d)));
        e
    }
    /// 401 without an error code: no credentials were sent (RFC 6750 §3.1).
    pub fn missing_token() -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_request", "a Bearer access token is required");
        e.challenge = Some(bearer_challenge(None, None));
        e
    }
    /// 403 `insufficient_scope` (RFC 6750 §3.1).
    pub fn insufficient_scope(d: impl Into<String>) -> Self {
        let d = d.into();
        let mut e = Self::new(StatusCode::FORBIDDEN, "insufficient_scope", d.clone());
        e.challenge = Some(bearer_challenge(Some("insufficient_scope"), Some(&d)));
        e
    }
    /// 500 `server_error`; the cause is logged, never sent.
    pub fn internal(cause: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{cause:#}"), "internal error in the link API");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error")
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        self.error
    }
    /// The human-readable `error_description`.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The `WWW-Authenticate` challenge, if any.
    pub fn challenge(&self) -> Option<&str> {
        self.challenge.as_deref()
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(e: anyhow::Error) -> Self {
        OAuthError::internal(e)
    }
}

impl From<AccessError> for OAuthError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Missing => OAuthError::missing_token(),
            AccessError::Invalid(d) => OAuthError::invalid_token(d),
            AccessError::Internal(cause) => OAuthError::internal(cause),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp =
            (self.status, Json(json!({"error": self.error, "error_description": self.description}))).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

type ApiResult<T = Response> = Result<T, OAuthError>;

fn no_store(body: Value) -> Response {
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

// ---------------------------------------------------------------------------------------------------------
// Request parsing and client authentication
// ---------------------------------------------------------------------------------------------------------

/// Parameters of a POST body, as `application/x-www-form-urlencoded` or JSON (by `Content-Type`).
/// A parameter repeated in a form is an `invalid_request` (RFC 6749 §3.2).
fn parse_params(headers: &HeaderMap, body: &Bytes) -> ApiResult<HashMap<String, String>> {
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

fn required<'a>(params: &'a HashMap<String, String>, name: &str) -> ApiResult<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
}

/// `(publishableKey, secretKey)` from `Authorization: Basic` (RFC 6749 §2.3.1), if that header is Basic.
fn basic_credentials(headers: &HeaderMap) -> ApiResult<Option<(String, String)>> {
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
async fn app_by_secret(state: &AppState, sk: &str) -> ApiResult<(App, Mode)> {
    apps::by_secret_key(&state.db, state.clock.now(), sk)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown secret key"))
}

/// Authenticates a client by `publishableKey:secretKey` (HTTP Basic, or `client_id`/`client_secret` in the
/// body): both keys must belong to the same app and mode.
async fn authenticate_client(
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

// ---------------------------------------------------------------------------------------------------------
// Shared response pieces
// ---------------------------------------------------------------------------------------------------------

/// The `endpoint` object of exchange/introspect/users: `{id, name, label[], refreshable, resources[]}`.
pub fn endpoint_json(endpoint: Option<&Endpoint>, authorization: &Authorization, resource_types: &[String]) -> Value {
    match endpoint {
        Some(e) => {
            let resources: Vec<String> =
                if resource_types.is_empty() { e.resource_types.clone() } else { resource_types.to_vec() };
            json!({
                "id": e.id,
                "name": e.name,
                "label": e.aliases,
                "refreshable": e.refreshable,
                "resources": resources,
            })
        }
        None => json!({"id": authorization.endpoint_id, "name": null, "label": [], "refreshable": false,
                       "resources": resource_types}),
    }
}

fn patient_ref(a: &Authorization) -> Value {
    a.patient_id.as_ref().map(|p| Value::String(format!("Patient/{p}"))).unwrap_or(Value::Null)
}

/// Issues an access token (and a refresh token for MULTIPLE on a refreshable endpoint) for `authorization`,
/// and builds the exchange / token response.
async fn grant_response(state: &AppState, authorization: &Authorization, family: Option<&str>) -> ApiResult<Value> {
    let now = state.clock.now();
    let endpoint = endpoints::get(&state.db, &authorization.endpoint_id).await?;
    let types = authorizations::resource_types(&state.db, &authorization.id).await?;
    let refreshable = endpoint.as_ref().is_some_and(|e| e.refreshable) && authorization.usage == Usage::Multiple;
    // Never outlive the data: a ONE_TIME grant (or any scheduled expunge) ends the token with it.
    let mut ttl = ACCESS_TOKEN_TTL_SECS;
    if authorization.usage == Usage::OneTime {
        ttl = ttl.min(authorization.created_at + crate::server::services::payer::oauth::ONE_TIME_TTL_SECS - now);
    }
    if let Some(e) = authorization.expunge_at {
        ttl = ttl.min(e - now);
    }
    let ttl = ttl.max(1);
    let access = tokens::issue(
        &state.db,
        now,
        TokenKind::Access,
        &authorization.app_id,
        Some(&authorization.id),
        Some(ttl),
        json!({}),
    )
    .await?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "patient": patient_ref(authorization),
        "endpoint": endpoint_json(endpoint.as_ref(), authorization, &types),
    });
    if refreshable {
        // The refresh token lives as long as the payer's grant: we cannot refresh past it.
        let ttl = authorization.payer_refresh_expires_at.map(|e| (e - now).max(1));
        let family = family.map(str::to_owned).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let refresh = tokens::issue(
            &state.db,
            now,
            TokenKind::Refresh,
            &authorization.app_id,
            Some(&authorization.id),
            ttl,
            json!({"family": family}),
        )
        .await?;
        body["refresh_token"] = Value::String(refresh);
        body["refresh_expires_in"] = match ttl {
            Some(t) => json!(t),
            None => Value::Null,
        };
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------------------
// POST /link/exchange
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/exchange` `{public_token, secret_key}` → `{access_token, token_type, expires_in (86400, or less
/// when the data is expunged sooner: ONE_TIME), refresh_token?,
/// refresh_expires_in?, patient, endpoint}`. The `public_token` is single use, 30 minutes, one app's.
async fn exchange(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let params = parse_params(&headers, &body)?;
    let public_token = required(&params, "public_token")?;
    let secret_key = required(&params, "secret_key")?;
    let (app, mode) = app_by_secret(&state, secret_key).await?;
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
    if authorization.state == authorizations::AUTHORIZED {
        authorizations::set_state(&state.db, &authorization.id, authorizations::EXCHANGED, now).await?;
    }
    // The modal no longer needs its sealed copy of the public_token.
    sqlx::query("UPDATE link_sessions SET public_token_enc = NULL, public_token_key_id = NULL, updated_at = $1 WHERE authorization_id = $2")
        .bind(now)
        .bind(&authorization.id)
        .execute(&state.db.pool)
        .await
        .map_err(anyhow::Error::from)?;
    audit_event(&state, &headers, "token.exchanged", &app.id, Some(&authorization.id), None).await;
    Ok(no_store(response))
}

/// Refuses a grant issued to another app, or for an authorization of the other mode (test/live).
async fn check_owner(state: &AppState, row: &TokenRow, app: &App, mode: Mode, what: &str) -> ApiResult<()> {
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

async fn load_authorization(state: &AppState, row: &TokenRow) -> ApiResult<Authorization> {
    let id = row.authorization_id.as_deref().unwrap_or_default();
    let a = authorizations::get(&state.db, id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the authorization no longer exists"))?;
    if a.revoked_at.is_some() || a.state == authorizations::REVOKED || a.state == authorizations::EXPIRED {
        return Err(OAuthError::invalid_grant(format!("the authorization is {}", a.state.to_lowercase())));
    }
    Ok(a)
}

async fn audit_event(
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
        &state.db,
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

// ---------------------------------------------------------------------------------------------------------
// GET /link/introspect
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/introspect` (Bearer) → `{active, jti, iat, exp, patient, state, endpoint, user: {externalId}, sub,
/// usage}` for a patient token; `{active, jti, iat, exp, sub (app id), token_type: "application"}` for an
/// application token.
async fn introspect(State(state): State<AppState>, headers: HeaderMap) -> ApiResult {
    let principal = authenticate_bearer(&state, &headers).await?;
    match principal {
        Principal::Patient { token, authorization } => {
            let endpoint = endpoints::get(&state.db, &authorization.endpoint_id).await?;
            let types = authorizations::resource_types(&state.db, &authorization.id).await?;
            Ok(no_store(json!({
                "active": true,
                "jti": token.id,
                "iat": token.created_at,
                "exp": token.expires_at,
                "patient": patient_ref(&authorization),
                "state": authorization.state,
                "endpoint": endpoint_json(endpoint.as_ref(), &authorization, &types),
                "user": {"externalId": authorization.external_id},
                "sub": authorization.id,
                "usage": authorization.usage.as_str(),
                "token_type": "patient",
            })))
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

// ---------------------------------------------------------------------------------------------------------
// POST /link/token
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/token` (form or JSON), RFC 6749 §4.1.3 / §4.4 / §6:
/// - `grant_type=refresh_token&refresh_token=…` with HTTP Basic `publishableKey:secretKey`: a new
///   `access_token` and a rotated `refresh_token` (the old one is spent; presenting a spent one again revokes
///   the authorization's tokens, RFC 9700 §4.14.2).
/// - `grant_type=client_credentials` with HTTP Basic: an application token (1800 s).
/// - `grant_type=authorization_code&code&code_verifier&redirect_uri&client_id`: the redirect flow (PKCE S256,
///   RFC 7636).
async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let params = parse_params(&headers, &body)?;
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
            // A spent refresh token presented again means it leaked: end every token of that grant.
            if let Some(a) = spent_refresh_authorization(state, presented).await? {
                tokens::revoke_for_authorization(&state.db, now, &a).await?;
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
    if authorization.state == authorizations::NEEDS_REAUTH {
        return Err(OAuthError::invalid_grant("the payer ended this grant: the patient must link again"));
    }
    let family = row.detail.get("family").and_then(Value::as_str).map(str::to_owned);
    let response = grant_response(state, &authorization, family.as_deref()).await?;
    // A refresh fetches the patient's latest data (FHIR reads answer 429 until that sync is done).
    crate::server::services::sync::request_resync(&state.db, &authorization.id, now).await?;
    audit_event(state, headers, "token.refreshed", &app.id, Some(&authorization.id), None).await;
    Ok(no_store(response))
}

async fn spent_refresh_authorization(state: &AppState, presented: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT authorization_id FROM tokens WHERE token_hash = $1 AND kind = 'refresh'")
        .bind(crypto::hash_token(presented))
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<String>, _>("authorization_id").ok().flatten()))
}

async fn client_credentials_grant(state: &AppState, headers: &HeaderMap, params: &HashMap<String, String>) -> ApiResult {
    let (app, mode) = authenticate_client(state, headers, params).await?;
    let now = state.clock.now();
    let token = tokens::issue(
        &state.db,
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
    let client_id = match basic_credentials(headers)? {
        Some((pk, _)) => pk,
        None => required(params, "client_id")?.to_string(),
    };
    if !valid_verifier(verifier) {
        return Err(OAuthError::invalid_request("code_verifier must be 43-128 unreserved characters (RFC 7636)"));
    }
    let (app, mode) = apps::by_publishable_key(&state.db, &client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client_id"))?;
    let now = state.clock.now();
    let row = match tokens::consume(&state.db, now, TokenKind::Code, code).await? {
        Ok(row) => row,
        Err(ConsumeError::AlreadyUsed) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it granted.
            if let Some(a) = spent_code_authorization(state, code).await? {
                tokens::revoke_for_authorization(&state.db, now, &a).await?;
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
    if authorization.state == authorizations::AUTHORIZED {
        authorizations::set_state(&state.db, &authorization.id, authorizations::EXCHANGED, now).await?;
    }
    audit_event(state, headers, "token.exchanged", &app.id, Some(&authorization.id), Some(json!({"grant": "authorization_code"})))
        .await;
    Ok(no_store(response))
}

async fn spent_code_authorization(state: &AppState, code: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT authorization_id FROM tokens WHERE token_hash = $1 AND kind = 'code'")
        .bind(crypto::hash_token(code))
        .fetch_optional(&state.db.pool)
        .await?;
    Ok(row.and_then(|r| r.try_get::<Option<String>, _>("authorization_id").ok().flatten()))
}

// ---------------------------------------------------------------------------------------------------------
// POST /link/revoke
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/revoke` (Bearer patient access token) `{secret_key}` → `{count}`: every authorization of that
/// patient, endpoint and app (same mode) is revoked, its tokens revoked and its data expunged.
async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let principal = authenticate_bearer(&state, &headers).await?;
    let params = parse_params(&headers, &body)?;
    let secret_key = required(&params, "secret_key")?;
    let (app, _) = app_by_secret(&state, secret_key).await?;
    let Principal::Patient { authorization, .. } = principal else {
        return Err(OAuthError::insufficient_scope("revoke takes a patient access token, not an application token"));
    };
    if !crypto::ct_eq(authorization.app_id.as_bytes(), app.id.as_bytes()) {
        return Err(OAuthError::invalid_client("the access token was not issued to this application"));
    }
    let ids: Vec<String> = match &authorization.patient_id {
        Some(pid) => sqlx::query(
            "SELECT id FROM authorizations WHERE app_id = $1 AND mode = $2 AND endpoint_id = $3 AND patient_id = $4 \
             AND revoked_at IS NULL",
        )
        .bind(&app.id)
        .bind(authorization.mode.as_str())
        .bind(&authorization.endpoint_id)
        .bind(pid)
        .fetch_all(&state.db.pool)
        .await
        .map_err(anyhow::Error::from)?
        .iter()
        .filter_map(|r| r.try_get::<String, _>("id").ok())
        .collect(),
        None => vec![authorization.id.clone()],
    };
    for id in &ids {
        // Revokes our tokens, deletes the resources, destroys the payer tokens, audits and sends the
        // `authorization_revoked` webhook.
        crate::server::services::lifecycle::expunge_authorization(&state, id, crate::server::services::lifecycle::REASON_REVOKED_BY_APP).await?;
        audit_event(&state, &headers, "token.revoked", &app.id, Some(id), None).await;
    }
    Ok(no_store(json!({"count": ids.len()})))
}

// ---------------------------------------------------------------------------------------------------------
// GET /link/users/{externalId}
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/users/{externalId}` with the secret key (`Authorization: Bearer sk_…` or Basic `pk:sk`) →
/// `{externalId, authorizations: [{id, endpoint, usage, state, patient, created_at, sync}]}` (same mode as the key).
async fn users(State(state): State<AppState>, headers: HeaderMap, Path(external_id): Path<String>) -> ApiResult {
    let (app, mode) = match (basic_credentials(&headers)?, bearer_token(&headers)) {
        (Some(_), _) => authenticate_client(&state, &headers, &HashMap::new()).await?,
        (None, Some(sk)) => app_by_secret(&state, sk).await?,
        (None, None) => return Err(OAuthError::invalid_client("the secret key is required")),
    };
    let list = authorizations::list_for_user(&state.db, &app.id, &external_id).await?;
    let mut out = Vec::new();
    for a in list.into_iter().filter(|a| a.mode == mode) {
        let endpoint = endpoints::get(&state.db, &a.endpoint_id).await?;
        let types = authorizations::resource_types(&state.db, &a.id).await?;
        let sync = crate::server::services::sync::status(&state.db, &a.id).await?.map(|s| {
            json!({"status": s.status, "progress": s.progress, "skipped": s.skipped,
                   "exit_code": s.exit_code.map(|c| c.as_str()), "warnings": s.warnings})
        });
        out.push(json!({
            "id": a.id,
            "endpoint": endpoint_json(endpoint.as_ref(), &a, &types),
            "usage": a.usage.as_str(),
            "usage_requested": a.usage_requested.as_str(),
            "state": a.state,
            "patient": patient_ref(&a),
            "created_at": a.created_at,
            "sync": sync,
        }));
    }
    Ok(no_store(json!({"externalId": external_id, "authorizations": out})))
}

// ---------------------------------------------------------------------------------------------------------
// GET /link/auth (redirect flow)
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/auth`: the Link flow as an OAuth 2.0 authorization endpoint (RFC 6749 §4.1.1 + RFC 7636).
/// Parameters: `response_type=code`, `client_id` (publishable key), `redirect_uri` (exact match with the
/// app's list), `code_challenge` + `code_challenge_method=S256`, `state`, `flexpa_external_id`, optional
/// `flexpa_endpoint_id` and `usage` (default `ONE_TIME`). Errors before the `redirect_uri` is trusted are a
/// 400 page; after, a redirect with `error` and `state` (§4.1.2.1).
async fn auth(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let plain = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_string()).into_response();
    let Some(client_id) = get("client_id") else { return plain("client_id is required") };
    let (app, mode) = match apps::by_publishable_key(&state.db, client_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return plain("unknown client_id"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: app lookup");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let Some(redirect_uri) = get("redirect_uri") else { return plain("redirect_uri is required") };
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return plain("redirect_uri is not registered for this application");
    }
    let client_state = get("state");
    let fail = |error: &str, desc: &str| -> Response {
        let mut u = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => return plain("redirect_uri is not a URL"),
        };
        {
            let mut qp = u.query_pairs_mut();
            qp.append_pair("error", error).append_pair("error_description", desc);
            if let Some(s) = client_state {
                qp.append_pair("state", s);
            }
        }
        Redirect::to(u.as_str()).into_response()
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else { return fail("invalid_request", "code_challenge is required") };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return fail("invalid_request", "code_challenge must be BASE64URL(SHA-256(code_verifier))");
    }
    let Some(external_id) = get("flexpa_external_id").filter(|e| e.len() <= 256 && !e.chars().any(char::is_control))
    else {
        return fail("invalid_request", "flexpa_external_id is required (at most 256 characters)");
    };
    let usage = match get("usage") {
        None => Usage::OneTime,
        Some(u) => match Usage::parse(u) {
            Some(u) => u,
            None => return fail("invalid_request", "usage must be ONE_TIME or MULTIPLE"),
        },
    };
    let endpoint_id = get("flexpa_endpoint_id");
    if let Some(eid) = endpoint_id {
        match endpoints::get(&state.db, eid).await {
            Ok(Some(e)) if e.mode == mode => {}
            Ok(_) => return fail("invalid_request", "flexpa_endpoint_id is not an endpoint of this mode"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "link auth: endpoint lookup");
                return fail("server_error", "internal error");
            }
        }
    }
    let now = state.clock.now();
    let nonce = crypto::random_id(16);
    let created = crate::server::store::link_sessions::create(
        &state.db,
        now,
        crate::server::store::link_sessions::NewSession {
            app_id: &app.id,
            mode,
            external_id,
            usage,
            options: Default::default(),
            endpoint_id,
            host_origin: None,
            redirect_uri: Some(redirect_uri),
            client_state,
            nonce: &nonce,
        },
    )
    .await;
    let session_id = match created {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: creating the session");
            return fail("server_error", "internal error");
        }
    };
    // The PKCE challenge is kept beside the session (0300 migration) until the flow mints the code.
    if let Err(e) = sqlx::query("UPDATE link_sessions SET code_challenge = $1 WHERE id = $2")
        .bind(challenge)
        .bind(&session_id)
        .execute(&state.db.pool)
        .await
    {
        tracing::error!(error = %format!("{e:#}"), "link auth: storing the code_challenge");
        return fail("server_error", "internal error");
    }
    // Into the hosted Link screens; their end (`/link/s/{sid}/finish`) calls [`complete_redirect_flow`] for
    // sessions that carry a code_challenge.
    Redirect::to(&format!("/link/s/{session_id}")).into_response()
}

/// Ends a redirect-flow session that reached an authorization: mints the single-use authorization code
/// (10 minutes, bound to the session's `client_id`, `redirect_uri` and PKCE `code_challenge`) and returns
/// the URL to send the browser to: `{redirect_uri}?code=…&state=…`. Called by the hosted Link flow.
///
/// # Errors
/// A session without `redirect_uri`, `code_challenge` or authorization; database errors.
pub async fn complete_redirect_flow(state: &AppState, link_session_id: &str) -> anyhow::Result<String> {
    let row = sqlx::query(
        "SELECT s.app_id, s.mode, s.redirect_uri, s.client_state, s.code_challenge, s.authorization_id, \
         k.publishable_key FROM link_sessions s JOIN api_keys k ON k.app_id = s.app_id AND k.mode = s.mode \
         WHERE s.id = $1",
    )
    .bind(link_session_id)
    .fetch_optional(&state.db.pool)
    .await?
    .ok_or_else(|| anyhow::anyhow!("unknown link session"))?;
    let app_id: String = row.try_get("app_id")?;
    let redirect_uri: Option<String> = row.try_get("redirect_uri")?;
    let client_state: Option<String> = row.try_get("client_state")?;
    let challenge: Option<String> = row.try_get("code_challenge")?;
    let authorization_id: Option<String> = row.try_get("authorization_id")?;
    let pk: String = row.try_get("publishable_key")?;
    let (Some(redirect_uri), Some(challenge), Some(authorization_id)) = (redirect_uri, challenge, authorization_id)
    else {
        anyhow::bail!("the session is not a completed redirect flow");
    };
    let code = tokens::issue(
        &state.db,
        state.clock.now(),
        TokenKind::Code,
        &app_id,
        Some(&authorization_id),
        Some(CODE_TTL_SECS),
        json!({"client_id": pk, "redirect_uri": redirect_uri, "code_challenge": challenge}),
    )
    .await?;
    let mut u = url::Url::parse(&redirect_uri)?;
    {
        let mut qp = u.query_pairs_mut();
        qp.append_pair("code", &code);
        if let Some(s) = client_state {
            qp.append_pair("state", &s);
        }
    }
    Ok(u.to_string())
}

// ---------------------------------------------------------------------------------------------------------
// POST /link/test/public_token (test mode only)
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/test/public_token` `{secret_key (sk_test_…), external_id, endpoint_id?, member?, usage?}` →
/// `{public_token, authorization_id}`. Links a sandbox member without the UI: creates a Link session, runs
/// the real payer OAuth against the sandbox payer over HTTP (sign-in as `member` with the shared sandbox
/// password), stores the authorization and enqueues its sync exactly as the Link flow does, and mints the
/// `public_token`. Live keys are refused (`unauthorized_client`).
async fn test_public_token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let params = parse_params(&headers, &body)?;
    let (app, mode) = app_by_secret(&state, required(&params, "secret_key")?).await?;
    if mode != Mode::Test {
        return Err(OAuthError::unauthorized_client("this shortcut takes a test secret key (sk_test_…)"));
    }
    let external_id = required(&params, "external_id")?;
    let endpoint_id =
        params.get("endpoint_id").map(String::as_str).unwrap_or(crate::server::surfaces::sandbox::REFRESHABLE_ENDPOINT_ID).to_string();
    let member = params.get("member").map(String::as_str).unwrap_or(crate::server::surfaces::sandbox::MEMBER_TYPICAL).to_string();
    let usage = match params.get("usage") {
        None => Usage::OneTime,
        Some(u) => Usage::parse(u).ok_or_else(|| OAuthError::invalid_request("usage must be ONE_TIME or MULTIPLE"))?,
    };
    let endpoint = endpoints::get(&state.db, &endpoint_id)
        .await?
        .filter(|e| e.mode == Mode::Test)
        .ok_or_else(|| OAuthError::invalid_request("endpoint_id is not a test-mode endpoint"))?;
    let now = state.clock.now();
    let nonce = crypto::random_id(16);
    let session_id = crate::server::store::link_sessions::create(
        &state.db,
        now,
        crate::server::store::link_sessions::NewSession {
            app_id: &app.id,
            mode,
            external_id,
            usage,
            options: Default::default(),
            endpoint_id: Some(&endpoint.id),
            host_origin: None,
            redirect_uri: None,
            client_state: None,
            nonce: &nonce,
        },
    )
    .await?;
    let authorize_url = crate::server::services::payer::oauth::begin(&state, &session_id, &endpoint, usage, &[])
        .await
        .map_err(|code| OAuthError::invalid_request(format!("the payer authorization could not start: {}", code.as_str())))?;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(anyhow::Error::from)?;
    let callback = crate::server::surfaces::sandbox::drive_consent(&client, &authorize_url, &member, true)
        .await
        .map_err(|_| OAuthError::invalid_request("the sandbox payer refused the sign-in (unknown member?)"))?;
    let cb = url::Url::parse(&callback).map_err(anyhow::Error::from)?;
    let mut p = crate::server::services::payer::oauth::CallbackParams { code: None, state: None, error: None, error_description: None };
    for (k, v) in cb.query_pairs() {
        match k.as_ref() {
            "code" => p.code = Some(v.to_string()),
            "state" => p.state = Some(v.to_string()),
            "error" => p.error = Some(v.to_string()),
            "error_description" => p.error_description = Some(v.to_string()),
            _ => {}
        }
    }
    let done = crate::server::services::payer::oauth::complete(&state, p)
        .await
        .map_err(|(_, code)| OAuthError::invalid_request(format!("the payer authorization failed: {}", code.as_str())))?;
    let public_token = tokens::issue(
        &state.db,
        state.clock.now(),
        TokenKind::Public,
        &app.id,
        Some(&done.authorization_id),
        Some(PUBLIC_TOKEN_TTL_SECS),
        json!({"test_shortcut": true}),
    )
    .await?;
    audit_event(&state, &headers, "test.public_token", &app.id, Some(&done.authorization_id), None).await;
    Ok(no_store(json!({"public_token": public_token, "authorization_id": done.authorization_id})))
}

// ---------------------------------------------------------------------------------------------------------
// POST /link/connections-url
// ---------------------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct ConnectionsUrlRequest {
    #[serde(alias = "external_id", rename = "externalId")]
    external_id: String,
    /// The secret key, when not sent as `Authorization: Bearer` (as in the other `/link/*` calls).
    #[serde(default)]
    secret_key: Option<String>,
}

/// `POST /link/connections-url`: a signed, short-lived URL of the connections page for one user (see
/// `services::lifecycle::mint_connections_url`). The secret key comes as `Authorization: Bearer sk_…` or as
/// `secret_key` in the body. Body `{"externalId": "…"}`; answer `{"url", "expires_in", "expires_at"}`.
async fn connections_url(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let parsed = serde_json::from_slice::<ConnectionsUrlRequest>(&body);
    let key = bearer_token(&headers)
        .map(str::to_string)
        .or_else(|| parsed.as_ref().ok().and_then(|r| r.secret_key.clone()))
        .filter(|s| s.starts_with("sk_"));
    let Some(sk) = key else { return Err(OAuthError::invalid_token("A valid secret key (sk_…) is required.")) };
    let (app, mode) = apps::by_secret_key(&state.db, state.clock.now(), &sk)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("A valid secret key (sk_…) is required."))?;
    let req = parsed.map_err(|_| OAuthError::invalid_request("Body must be JSON {\"externalId\": \"…\"}."))?;
    let external_id = req.external_id.trim();
    if external_id.is_empty() || external_id.len() > 256 {
        return Err(OAuthError::invalid_request("externalId must be 1 to 256 characters."));
    }
    let (url, expires_at) = lifecycle::mint_connections_url(&state, &app.id, mode, external_id).await?;
    Ok(no_store(json!({"url": url, "expires_in": lifecycle::CONNECTIONS_GRANT_TTL_SECS, "expires_at": expires_at})))
}

// ---------------------------------------------------------------------------------------------------------
// OpenAPI description of these routes (served by `surfaces::openapi`)
// ---------------------------------------------------------------------------------------------------------

/// The OpenAPI 3.1 `paths` of the /link API, built from [`paths`] and the same constants the handlers use.
pub fn openapi_paths() -> serde_json::Map<String, Value> {
    let oauth_err = json!({"$ref": "#/components/responses/OAuthError"});
    let unauth = json!({"$ref": "#/components/responses/Unauthorized"});
    let mut p = serde_json::Map::new();
    p.insert(paths::EXCHANGE.into(), json!({"post": {
        "summary": "Exchange a public_token for a patient access token",
        "description": format!("The public_token is single use and expires {PUBLIC_TOKEN_TTL_SECS} s after it was minted; only the app it was issued to may exchange it."),
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
            "required": ["public_token", "secret_key"],
            "properties": {"public_token": {"type": "string"}, "secret_key": {"type": "string"}}}}}},
        "responses": {"200": {"description": "Access granted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                      "400": oauth_err, "401": oauth_err}}}));
    p.insert(paths::INTROSPECT.into(), json!({"get": {
        "summary": "Describe the Bearer token", "security": [{"bearer": []}],
        "responses": {"200": {"description": "Token metadata", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Introspection"}}}},
                      "401": unauth}}}));
    p.insert(paths::TOKEN.into(), json!({"post": {
        "summary": "OAuth 2.0 token endpoint: refresh_token, client_credentials, authorization_code",
        "security": [{"basic": []}, {}],
        "requestBody": {"required": true, "content": {
            "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/TokenRequest"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/TokenRequest"}}}},
        "responses": {"200": {"description": "Tokens", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TokenResponse"}}}},
                      "400": oauth_err, "401": oauth_err}}}));
    p.insert(paths::REVOKE.into(), json!({"post": {
        "summary": "Revoke every authorization of the token's patient, endpoint and app, and expunge the data",
        "security": [{"bearer": []}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
            "required": ["secret_key"], "properties": {"secret_key": {"type": "string"}}}}}},
        "responses": {"200": {"description": "Revoked", "content": {"application/json": {"schema": {"type": "object",
            "properties": {"count": {"type": "integer"}}}}}}, "401": unauth, "403": oauth_err}}}));
    p.insert(paths::USERS.into(), json!({"get": {
        "summary": "A user's authorizations with endpoint, usage, state and sync status",
        "security": [{"secretKey": []}, {"basic": []}],
        "parameters": [{"name": "externalId", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "Authorizations"}, "401": oauth_err}}}));
    let auth_params: Vec<Value> = [
        "response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state",
        "flexpa_external_id", "flexpa_endpoint_id", "usage",
    ]
    .iter()
    .map(|n| json!({"name": n, "in": "query", "required": !matches!(*n, "state" | "flexpa_endpoint_id" | "usage"),
                    "schema": {"type": "string"}}))
    .collect();
    p.insert(paths::AUTH.into(), json!({"get": {
        "summary": "OAuth 2.0 authorization endpoint running the Link flow (redirect flow, PKCE S256)",
        "parameters": auth_params,
        "responses": {"303": {"description": "To the hosted Link flow, or back to redirect_uri with error and state"},
                      "400": {"description": "client_id or redirect_uri invalid"}}}}));
    p.insert(paths::TEST_PUBLIC_TOKEN.into(), json!({"post": {
        "summary": "Test mode: link a sandbox member without the UI and return a public_token",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
            "required": ["secret_key", "external_id"],
            "properties": {"secret_key": {"type": "string"}, "external_id": {"type": "string"},
                           "endpoint_id": {"type": "string"}, "member": {"type": "string"},
                           "usage": {"type": "string", "enum": ["ONE_TIME", "MULTIPLE"]}}}}}},
        "responses": {"200": {"description": "public_token"}, "400": oauth_err, "401": oauth_err}}}));
    p
}

/// OpenAPI `components` shared by the /link paths.
pub fn openapi_components() -> Value {
    json!({
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Patient access token (at_…) or application token (app_…)"},
            "basic": {"type": "http", "scheme": "basic", "description": "publishableKey:secretKey"},
            "secretKey": {"type": "http", "scheme": "bearer", "description": "Secret key (sk_…) as a Bearer credential"}
        },
        "responses": {
            "OAuthError": {"description": "RFC 6749 §5.2 error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}},
            "Unauthorized": {"description": "RFC 6750 §3 (WWW-Authenticate: Bearer)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuthError"}}}}
        },
        "schemas": {
            "OAuthError": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "string", "enum": ["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                          "unsupported_grant_type", "invalid_token", "insufficient_scope", "server_error"]},
                "error_description": {"type": "string"}}},
            "TokenRequest": {"type": "object", "required": ["grant_type"], "properties": {
                "grant_type": {"type": "string", "enum": ["refresh_token", "client_credentials", "authorization_code"]},
                "refresh_token": {"type": "string"}, "code": {"type": "string"}, "code_verifier": {"type": "string"},
                "redirect_uri": {"type": "string"}, "client_id": {"type": "string"}}},
            "Endpoint": {"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                "label": {"type": "array", "items": {"type": "string"}}, "refreshable": {"type": "boolean"},
                "resources": {"type": "array", "items": {"type": "string"}}}},
            "TokenResponse": {"type": "object", "required": ["access_token", "token_type", "expires_in"], "properties": {
                "access_token": {"type": "string"}, "token_type": {"type": "string", "enum": ["Bearer"]},
                "expires_in": {"type": "integer", "description": format!("seconds ({ACCESS_TOKEN_TTL_SECS} for patient tokens, {APP_TOKEN_TTL_SECS} for application tokens)")},
                "refresh_token": {"type": "string", "description": "only for MULTIPLE on a refreshable endpoint"},
                "refresh_expires_in": {"type": ["integer", "null"], "description": "seconds left on the payer's long-term grant; null when the payer did not say"},
                "patient": {"type": ["string", "null"], "description": "Patient/<id>, the value behind $PATIENT_ID"},
                "endpoint": {"$ref": "#/components/schemas/Endpoint"}}},
            "Introspection": {"type": "object", "properties": {
                "active": {"type": "boolean"}, "jti": {"type": "string"}, "iat": {"type": "integer"}, "exp": {"type": ["integer", "null"]},
                "patient": {"type": ["string", "null"]}, "state": {"type": "string"}, "endpoint": {"$ref": "#/components/schemas/Endpoint"},
                "user": {"type": "object", "properties": {"externalId": {"type": "string"}}},
                "sub": {"type": "string"}, "usage": {"type": "string"}}}
        }
    })
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
