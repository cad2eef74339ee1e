//! Payer OAuth (SMART App Launch 2.0): discovery, PKCE S256 authorize URL, code exchange, refresh.
//!
//! Compiled only with `ssr`.
//!
//! - Discovery reads `{fhir_base}/.well-known/smart-configuration` (SMART App Launch 2.0 §2.5) and falls back to
//!   the `oauth-uris` extension of `{fhir_base}/metadata`; an endpoint's `authorize_url`/`token_url` overrides win.
//! - [`begin`] stores a `payer_auth_requests` row: the `state` only as a SHA-256 hash, the PKCE `code_verifier`
//!   (RFC 7636, S256) sealed, the exact `redirect_uri` and the token endpoint; nothing lives only in memory, so
//!   the callback may land on any instance.
//! - [`complete`] handles `error` first (RFC 6749 §4.1.2.1), consumes `state` with one atomic conditional update,
//!   exchanges the code with the `oauth2` crate over `state.http` (no redirects), creates the Authorization
//!   with the payer tokens sealed, and enqueues the sync job.
//! - [`refresh`] refreshes the payer `access_token` one holder at a time per authorization (a lease column in
//!   the database, so it holds across instances); a rotated `refresh_token` is saved before the new
//!   `access_token` is handed out.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use oauth2::{
    basic::{BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType},
    AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse as _, TokenUrl,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::server::{
    platform::crypto,
    services::sync,
    state::AppState,
    store::{
        audit::{self, AuditEntry},
        authorizations::{self, NewAuthorization, PayerTokens},
        endpoints::{self, Endpoint},
    },
};
use crate::domain::{ExitCode, Usage};

/// How long a payer authorization request (`state`) stays valid, in seconds.
pub const AUTH_REQUEST_TTL_SECS: i64 = 600;
/// How long ONE_TIME data is kept after authorization, in seconds (24 h).
pub const ONE_TIME_TTL_SECS: i64 = 86_400;
/// How long one holder may keep the refresh lease of an authorization, in seconds.
const REFRESH_LEASE_SECS: i64 = 60;
/// Interval between scheduled re-syncs of a MULTIPLE authorization, in seconds (24 h).
pub const RESYNC_INTERVAL_SECS: i64 = 86_400;

/// Query parameters of the payer's redirect to `{public_url}/link/callback` (RFC 6749 §4.1.2).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` we sent.
    pub state: Option<String>,
    /// RFC 6749 §4.1.2.1 error code.
    pub error: Option<String>,
    /// Human-readable error text from the payer (logged, never shown).
    pub error_description: Option<String>,
}

/// A successful callback: the Link session and the new Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The Link session the request belonged to.
    pub link_session_id: String,
    /// The new Authorization's id.
    pub authorization_id: String,
}

/// The OAuth endpoints of a payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartConfiguration {
    /// `authorization_endpoint`.
    pub authorize_url: String,
    /// `token_endpoint`.
    pub token_url: String,
}

/// SMART extras of a token response: `patient` (launch context) and `id_token` (OpenID Connect).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SmartTokenFields {
    /// Launch context `patient` (a FHIR id; some payers send a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Value>,
    /// OpenID Connect `id_token` (JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl std::fmt::Debug for SmartTokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartTokenFields").field("patient", &self.patient.is_some()).finish_non_exhaustive()
    }
}

impl ExtraTokenFields for SmartTokenFields {}

type SmartTokenResponse = StandardTokenResponse<SmartTokenFields, BasicTokenType>;
type SmartClient<HasAuth> = Client<
    BasicErrorResponse,
    SmartTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuth,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn client(endpoint: &Endpoint, token_url: &str) -> anyhow::Result<SmartClient<EndpointNotSet>> {
    let mut c = Client::new(ClientId::new(endpoint.client_id.clone())).set_token_uri(TokenUrl::new(token_url.to_string())?);
    if let Some(secret) = endpoint.client_secret() {
        c = c.set_client_secret(ClientSecret::new(secret.expose_secret().to_string()));
    }
    Ok(c)
}

/// Transport failure of a request made for the `oauth2` crate.
#[derive(Debug, thiserror::Error)]
#[error("request to the payer's token endpoint failed")]
struct TransportError(#[source] reqwest::Error);

type HttpFuture = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send>>;

/// An `oauth2` HTTP client over `state.http` (no redirects, our timeouts) that remembers the last HTTP
/// status, because the crate's errors drop it and 5xx must map to `PAYER_SERVER_ERROR`.
fn oauth_http(http: reqwest::Client, status: Arc<AtomicU16>) -> impl Fn(oauth2::HttpRequest) -> HttpFuture {
    move |req: oauth2::HttpRequest| {
        let http = http.clone();
        let status = status.clone();
        Box::pin(async move {
            let req = reqwest::Request::try_from(req).map_err(TransportError)?;
            let resp = http.execute(req).await.map_err(TransportError)?;
            status.store(resp.status().as_u16(), Ordering::SeqCst);
            let mut builder = oauth2::http::Response::builder().status(resp.status().as_u16());
            for (name, value) in resp.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = resp.bytes().await.map_err(TransportError)?.to_vec();
            Ok(builder.body(body).expect("status and headers came from a valid response"))
        }) as HttpFuture
    }
}

/// Why a token request failed (the fields are read through `Debug` in logs).
#[derive(Debug)]
#[allow(dead_code)]
enum TokenFailure {
    Timeout,
    Unreachable,
    ServerError(u16),
    OAuth(BasicErrorResponseType),
    Invalid(String),
}

fn classify(err: RequestTokenError<TransportError, BasicErrorResponse>, status: u16) -> TokenFailure {
    match err {
        RequestTokenError::Request(TransportError(e)) if e.is_timeout() => TokenFailure::Timeout,
        RequestTokenError::Request(_) => TokenFailure::Unreachable,
        _ if status >= 500 => TokenFailure::ServerError(status),
        RequestTokenError::ServerResponse(r) => TokenFailure::OAuth(r.error().clone()),
        RequestTokenError::Parse(e, _) => TokenFailure::Invalid(format!("status {status}: {e}")),
        RequestTokenError::Other(e) => TokenFailure::Invalid(format!("status {status}: {e}")),
    }
}

fn token_failure_exit_code(f: &TokenFailure) -> ExitCode {
    match f {
        TokenFailure::Timeout => ExitCode::PayerTimeout,
        TokenFailure::Unreachable | TokenFailure::ServerError(_) => ExitCode::PayerServerError,
        TokenFailure::OAuth(BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient) => {
            ExitCode::EndpointConfigurationError
        }
        TokenFailure::OAuth(BasicErrorResponseType::InvalidScope) => ExitCode::ScopeConfigurationError,
        TokenFailure::OAuth(_) | TokenFailure::Invalid(_) => ExitCode::PayerTokenExchangeFailed,
    }
}

/// The exit code of an RFC 6749 §4.1.2.1 `error` on the callback.
pub fn callback_error_exit_code(error: &str) -> ExitCode {
    match error {
        "access_denied" => ExitCode::PayerAccessDenied,
        "invalid_scope" => ExitCode::ScopeConfigurationError,
        "invalid_request" | "unsupported_response_type" => ExitCode::PayerInvalidRequest,
        "server_error" | "temporarily_unavailable" => ExitCode::PayerServerError,
        // unauthorized_client and anything unknown: the endpoint's registration needs an admin.
        _ => ExitCode::EndpointConfigurationError,
    }
}

fn http_url(s: &str) -> Option<String> {
    let u = url::Url::parse(s).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

enum DiscoveryError {
    Timeout,
    Server,
    Invalid,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, DiscoveryError> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json, application/fhir+json")
        .send()
        .await
        .map_err(|e| if e.is_timeout() { DiscoveryError::Timeout } else { DiscoveryError::Server })?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(DiscoveryError::Server);
    }
    if !status.is_success() {
        return Err(DiscoveryError::Invalid);
    }
    let bytes = resp.bytes().await.map_err(|e| if e.is_timeout() { DiscoveryError::Timeout } else { DiscoveryError::Server })?;
    serde_json::from_slice(&bytes).map_err(|_| DiscoveryError::Invalid)
}

fn from_smart_configuration(v: &Value) -> Option<SmartConfiguration> {
    Some(SmartConfiguration {
        authorize_url: http_url(v.get("authorization_endpoint")?.as_str()?)?,
        token_url: http_url(v.get("token_endpoint")?.as_str()?)?,
    })
}

/// Reads the `http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris` extension of a
/// CapabilityStatement (`rest[].security.extension`).
fn from_capability_statement(v: &Value) -> Option<SmartConfiguration> {
    for rest in v.get("rest")?.as_array()? {
        let Some(exts) = rest.pointer("/security/extension").and_then(Value::as_array) else { continue };
        for ext in exts {
            if !ext.get("url").and_then(Value::as_str).is_some_and(|u| u.ends_with("/oauth-uris")) {
                continue;
            }
            let inner = ext.get("extension").and_then(Value::as_array)?;
            let find = |name: &str| {
                inner
                    .iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(name))
                    .and_then(|e| e.get("valueUri").and_then(Value::as_str))
                    .and_then(http_url)
            };
            if let (Some(a), Some(t)) = (find("authorize"), find("token")) {
                return Some(SmartConfiguration { authorize_url: a, token_url: t });
            }
        }
    }
    None
}

/// Finds the payer's OAuth endpoints: the endpoint's overrides, then `.well-known/smart-configuration`,
/// then `/metadata`.
///
/// # Errors
/// `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR` (5xx or unreachable) or `ENDPOINT_CONFIGURATION_ERROR`.
pub async fn discover(http: &reqwest::Client, endpoint: &Endpoint) -> Result<SmartConfiguration, ExitCode> {
    if let (Some(a), Some(t)) = (&endpoint.authorize_url, &endpoint.token_url) {
        return Ok(SmartConfiguration { authorize_url: a.clone(), token_url: t.clone() });
    }
    let base = endpoint.fhir_base_url.trim_end_matches('/');
    let found = match get_json(http, &format!("{base}/.well-known/smart-configuration")).await {
        Ok(v) => from_smart_configuration(&v).ok_or(DiscoveryError::Invalid),
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(c) => Ok(c),
        Err(first) => match get_json(http, &format!("{base}/metadata")).await {
            Ok(v) => from_capability_statement(&v).ok_or(first),
            Err(DiscoveryError::Invalid) => Err(first),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(mut c) => {
            if let Some(a) = &endpoint.authorize_url {
                c.authorize_url = a.clone();
            }
            if let Some(t) = &endpoint.token_url {
                c.token_url = t.clone();
            }
            Ok(c)
        }
        Err(e) => {
            tracing::warn!(endpoint = %endpoint.id, "SMART discovery failed");
            Err(match e {
                DiscoveryError::Timeout => ExitCode::PayerTimeout,
                DiscoveryError::Server => ExitCode::PayerServerError,
                DiscoveryError::Invalid => ExitCode::EndpointConfigurationError,
            })
        }
    }
}

/// SMART scopes for a link (SMART App Launch 2.0 §3): `launch/patient openid fhirUser`, one
/// `patient/{Type}.read` per requested resource type (plus `Patient`), or `patient/*.read` when none were
/// requested, `offline_access` only for MULTIPLE, and the endpoint's extra scopes.
pub fn scopes(endpoint: &Endpoint, usage: Usage, requested_resources: &[String]) -> Vec<String> {
    let mut s: Vec<String> = ["launch/patient", "openid", "fhirUser"].map(String::from).to_vec();
    if requested_resources.is_empty() {
        s.push("patient/*.read".into());
    } else {
        let mut types: Vec<&str> = requested_resources.iter().map(String::as_str).collect();
        if !types.contains(&"Patient") {
            types.insert(0, "Patient");
        }
        s.extend(types.into_iter().map(|t| format!("patient/{t}.read")));
    }
    if usage == Usage::Multiple {
        s.push("offline_access".into());
    }
    for extra in endpoint.scopes.as_deref().unwrap_or("").split_whitespace() {
        if !s.iter().any(|x| x == extra) {
            s.push(extra.to_string());
        }
    }
    s
}

/// Creates the PayerAuthRequest (state hash, sealed PKCE verifier, redirect_uri = {public_url}/link/callback,
/// expiry 10 min) and returns the payer's full authorize URL to redirect the popup to.
///
/// # Errors
/// Discovery failures (see [`discover`]); `ENDPOINT_CONFIGURATION_ERROR` for unusable URLs;
/// `PAYER_SERVER_ERROR` when our database fails (logged).
pub async fn begin(
    state: &AppState,
    link_session_id: &str,
    endpoint: &Endpoint,
    usage: Usage,
    requested_resources: &[String],
) -> Result<String, ExitCode> {
    let now = state.clock.now();
    let smart = discover(&state.http, endpoint).await?;
    let redirect_uri = format!("{}/link/callback", state.public_url);
    let config_err = |e: &dyn std::fmt::Display| {
        tracing::warn!(endpoint = %endpoint.id, error = %e, "unusable OAuth URL");
        ExitCode::EndpointConfigurationError
    };
    let c = client(endpoint, &smart.token_url)
        .map_err(|e| config_err(&e))?
        .set_auth_uri(AuthUrl::new(smart.authorize_url.clone()).map_err(|e| config_err(&e))?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.clone()).map_err(|e| config_err(&e))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state_value = crypto::random_token("");
    let scope = scopes(endpoint, usage, requested_resources);
    let csrf = state_value.clone();
    let (url, _) = c
        .authorize_url(move || CsrfToken::new(csrf))
        .add_scopes(scope.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("aud", endpoint.fhir_base_url.trim_end_matches('/'))
        .url();

    let id = uuid::Uuid::new_v4().to_string();
    let (verifier_enc, key_id) = state.cipher.seal_str(verifier.secret(), &verifier_aad(&id));
    sqlx::query(
        "INSERT INTO payer_auth_requests (id, link_session_id, endpoint_id, state_hash, code_verifier_enc, key_id, \
         redirect_uri, scope, token_url, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(link_session_id)
    .bind(&endpoint.id)
    .bind(crypto::hash_token(&state_value))
    .bind(verifier_enc)
    .bind(key_id)
    .bind(&redirect_uri)
    .bind(scope.join(" "))
    .bind(&smart.token_url)
    .bind(now + AUTH_REQUEST_TTL_SECS)
    .bind(now)
    .execute(&state.db.pool)
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "storing the payer authorization request failed");
        ExitCode::PayerServerError
    })?;
    Ok(url.to_string())
}

fn verifier_aad(request_id: &str) -> String {
    format!("payer_auth_request:{request_id}:code_verifier")
}

/// The link session a `state` belongs to, whatever its status (for error reporting only).
async fn session_of_state(state: &AppState, state_value: Option<&str>) -> Option<String> {
    let s = state_value?;
    sqlx::query("SELECT link_session_id FROM payer_auth_requests WHERE state_hash = $1")
        .bind(crypto::hash_token(s))
        .fetch_optional(&state.db.pool)
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<String, _>("link_session_id").ok())
}

/// The payer `Patient` id from an OpenID Connect `id_token`'s `fhirUser` claim (`…/Patient/{id}`).
///
/// The `id_token` came straight from the payer's token endpoint over TLS, which OpenID Connect Core §3.1.3.7
/// accepts in place of checking its signature; it is used for this hint only.
pub fn patient_from_id_token(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    crate::server::fhir::reference::fhir_user_patient(claims.get("fhirUser")?.as_str()?).map(str::to_owned)
}

fn patient_from_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Handles the payer's callback: `error` first, then `state` (single use), code exchange (oauth2 crate),
/// creates the Authorization with sealed payer tokens, enqueues the sync job.
/// Err carries the link session id when it could be identified.
///
/// # Errors
/// The exit code of the failure (see [`callback_error_exit_code`] for `error`; `MALFORMED_PAYER_CALLBACK`,
/// `INVALID_STATE`, `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`, `PAYER_TOKEN_EXCHANGE_FAILED`, …).
pub async fn complete(state: &AppState, params: CallbackParams) -> Result<Completed, (Option<String>, ExitCode)> {
    let now = state.clock.now();
    let state_value = params.state.as_deref().filter(|s| !s.is_empty());
    if let Some(error) = params.error.as_deref() {
        let session = session_of_state(state, state_value).await;
        if let Some(s) = state_value {
            // The request is over either way: an error callback must not leave a usable `state` behind.
            let _ = sqlx::query("UPDATE payer_auth_requests SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(crypto::hash_token(s))
                .execute(&state.db.pool)
                .await;
        }
        tracing::info!(error, has_description = params.error_description.is_some(), "payer returned an error");
        return Err((session, callback_error_exit_code(error)));
    }
    let Some(state_value) = state_value else {
        return Err((None, if params.code.is_some() { ExitCode::InvalidState } else { ExitCode::MalformedPayerCallback }));
    };
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err((session_of_state(state, Some(state_value)).await, ExitCode::MalformedPayerCallback));
    };

    // Single use: one conditional update consumes the request, whichever instance gets the callback.
    let row = sqlx::query(
        "UPDATE payer_auth_requests SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING id, link_session_id, endpoint_id, code_verifier_enc, key_id, redirect_uri, token_url",
    )
    .bind(now)
    .bind(crypto::hash_token(state_value))
    .fetch_optional(&state.db.pool)
    .await
    .map_err(|e| internal(None, &e))?;
    let Some(row) = row else {
        return Err((session_of_state(state, Some(state_value)).await, ExitCode::InvalidState));
    };
    let get = |c: &str| row.try_get::<String, _>(c);
    let (request_id, session_id, endpoint_id, redirect_uri, token_url) = (|| -> Result<_, sqlx::Error> {
        Ok((get("id")?, get("link_session_id")?, get("endpoint_id")?, get("redirect_uri")?, get("token_url")?))
    })()
    .map_err(|e| internal(None, &e))?;
    let sid = Some(session_id.clone());
    let verifier_enc: Vec<u8> = row.try_get("code_verifier_enc").map_err(|e| internal(sid.clone(), &e))?;
    let key_id = get("key_id").map_err(|e| internal(sid.clone(), &e))?;
    let verifier = state
        .cipher
        .open_str(&verifier_enc, &key_id, &verifier_aad(&request_id))
        .map_err(|e| internal(sid.clone(), &e))?;

    let endpoint = endpoints::get(&state.db, &endpoint_id)
        .await
        .map_err(|e| internal(sid.clone(), &e))?
        .ok_or((sid.clone(), ExitCode::InvalidEndpoint))?;
    let session = sqlx::query("SELECT app_id, mode, external_id, usage, options FROM link_sessions WHERE id = $1")
        .bind(&session_id)
        .fetch_optional(&state.db.pool)
        .await
        .map_err(|e| internal(sid.clone(), &e))?
        .ok_or_else(|| internal(sid.clone(), &"link session vanished"))?;

    // Exchange the code.
    let status = Arc::new(AtomicU16::new(0));
    let http = oauth_http(state.http.clone(), status.clone());
    let c = client(&endpoint, &token_url)
        .map_err(|e| {
            tracing::warn!(error = %e, "unusable token URL");
            (sid.clone(), ExitCode::EndpointConfigurationError)
        })?
        .set_redirect_uri(RedirectUrl::new(redirect_uri).map_err(|e| internal(sid.clone(), &e))?);
    let token = c
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_string()))
        .request_async(&http)
        .await
        .map_err(|e| {
            let f = classify(e, status.load(Ordering::SeqCst));
            tracing::warn!(failure = ?f, endpoint = %endpoint.id, "payer code exchange failed");
            (sid.clone(), token_failure_exit_code(&f))
        })?;

    // The session's choices.
    let s = |c: &str| session.try_get::<String, _>(c).map_err(|e| internal(sid.clone(), &e));
    let (app_id, mode, external_id, usage_s, options) = (s("app_id")?, s("mode")?, s("external_id")?, s("usage")?, s("options")?);
    let mode = crate::domain::Mode::parse(&mode).ok_or_else(|| internal(sid.clone(), &"bad mode"))?;
    let usage_requested = Usage::parse(&usage_s).unwrap_or(Usage::OneTime);
    let options: Value = serde_json::from_str(&options).unwrap_or(Value::Null);
    let requested: Vec<String> = options
        .get("requestedResources")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default();

    let refresh_token = token.refresh_token().map(|r| SecretString::from(r.secret().clone()));
    // The seed's rule: no refresh token (or a payer that cannot refresh) means ONE_TIME.
    let (usage, downgraded) = match usage_requested {
        Usage::Multiple if refresh_token.is_none() || !endpoint.refreshable => (Usage::OneTime, true),
        u => (u, false),
    };
    let extra = token.extra_fields();
    let patient_id = extra
        .patient
        .as_ref()
        .and_then(patient_from_value)
        .or_else(|| extra.id_token.as_deref().and_then(patient_from_id_token));
    let tokens = PayerTokens {
        access_token: SecretString::from(token.access_token().secret().clone()),
        refresh_token,
        expires_at: token.expires_in().map(|d| now + d.as_secs() as i64),
        scope: token.scopes().map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
    };
    let new = NewAuthorization {
        app_id: app_id.clone(),
        mode,
        external_id,
        endpoint_id: endpoint.id.clone(),
        link_session_id: Some(session_id.clone()),
        patient_id,
        usage_requested,
        usage,
        downgraded,
        fhir_base: endpoint.fhir_base_url.trim_end_matches('/').to_string(),
        token_url,
        resource_types: requested,
        expunge_at: (usage == Usage::OneTime).then_some(now + ONE_TIME_TTL_SECS),
        next_sync_at: (usage == Usage::Multiple).then_some(now + RESYNC_INTERVAL_SECS),
    };
    let authorization_id = authorizations::create(state, now, new, &tokens).await.map_err(|e| internal(sid.clone(), &e))?;
    sqlx::query("UPDATE link_sessions SET authorization_id = $1, step = 'authorized', updated_at = $2 WHERE id = $3")
        .bind(&authorization_id)
        .bind(now)
        .bind(&session_id)
        .execute(&state.db.pool)
        .await
        .map_err(|e| internal(sid.clone(), &e))?;
    sync::enqueue(&state.db, &authorization_id, now).await.map_err(|e| internal(sid.clone(), &e))?;
    let _ = audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "patient",
            action: "payer.authorized",
            app_id: Some(&app_id),
            authorization_id: Some(&authorization_id),
            request_id: None,
            detail: Some(json!({
                "endpoint_id": endpoint.id,
                "usage_requested": usage_requested.as_str(),
                "usage": usage.as_str(),
                "downgraded": downgraded,
            })),
        },
    )
    .await;
    Ok(Completed { link_session_id: session_id, authorization_id })
}

fn internal(session: Option<String>, e: &dyn std::fmt::Display) -> (Option<String>, ExitCode) {
    tracing::error!(error = %e, "payer callback failed internally");
    (session, ExitCode::PayerServerError)
}

/// Why a payer refresh did not give a new `access_token`.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The authorization has no payer `refresh_token`.
    #[error("no payer refresh_token")]
    NoRefreshToken,
    /// The payer refused the `refresh_token` (`invalid_grant`); the authorization is now `NEEDS_REAUTH`.
    #[error("payer refused the refresh_token")]
    InvalidGrant,
    /// The authorization does not exist or is revoked/expired.
    #[error("authorization not usable")]
    NotUsable,
    /// Transient or configuration failure; the exit code says which.
    #[error("payer refresh failed: {1}")]
    Failed(ExitCode, String),
}

/// Refreshes the payer `access_token` of an authorization and returns the new one (RFC 6749 §6).
///
/// `stale` is the `access_token` the caller found expired or refused (a 401). When the stored token already
/// differs from it, someone refreshed since the caller read it, and that token is returned without calling the
/// payer, even when the other refresh finished before this call began.
///
/// One refresh at a time per authorization across every instance: the caller that wins the lease in
/// `authorizations.refresh_lease_*` refreshes; the others wait for the lease, then find the token it stored.
/// A rotated `refresh_token` is stored (sealed) before the new `access_token` is returned.
/// `invalid_grant` sets the authorization to `NEEDS_REAUTH`.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh(
    state: &AppState,
    authorization_id: &str,
    stale: &SecretString,
) -> Result<SecretString, RefreshError> {
    let owner = crypto::random_id(12);
    let db_err = |e: &dyn std::fmt::Display| RefreshError::Failed(ExitCode::SyncFailed, e.to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = state.clock.now();
        let won = sqlx::query(
            "UPDATE authorizations SET refresh_lease_owner = $1, refresh_lease_until = $2 \
             WHERE id = $3 AND (refresh_lease_until IS NULL OR refresh_lease_until < $4)",
        )
        .bind(&owner)
        .bind(now + REFRESH_LEASE_SECS)
        .bind(authorization_id)
        .bind(now)
        .execute(&state.db.pool)
        .await
        .map_err(|e| db_err(&e))?
        .rows_affected()
            == 1;
        if won {
            break;
        }
        // Someone else is refreshing: wait for the lease (then `refresh_locked` finds the token it stored).
        if tokio::time::Instant::now() > deadline {
            return Err(RefreshError::Failed(ExitCode::PayerTimeout, "refresh lease held too long".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let free = sqlx::query("SELECT state FROM authorizations WHERE id = $1")
            .bind(authorization_id)
            .fetch_optional(&state.db.pool)
            .await
            .map_err(|e| db_err(&e))?;
        let Some(free) = free else { return Err(RefreshError::NotUsable) };
        let st: String = free.try_get("state").map_err(|e| db_err(&e))?;
        if st == authorizations::NEEDS_REAUTH {
            return Err(RefreshError::InvalidGrant);
        }
    }
    let result = refresh_locked(state, authorization_id, stale.expose_secret()).await;
    let _ = sqlx::query(
        "UPDATE authorizations SET refresh_lease_owner = NULL, refresh_lease_until = NULL WHERE id = $1 AND refresh_lease_owner = $2",
    )
    .bind(authorization_id)
    .bind(&owner)
    .execute(&state.db.pool)
    .await;
    result
}

async fn refresh_locked(
    state: &AppState,
    authorization_id: &str,
    stale: &str,
) -> Result<SecretString, RefreshError> {
    let fail = |code: ExitCode, e: &dyn std::fmt::Display| RefreshError::Failed(code, e.to_string());
    let auth = authorizations::get(&state.db, authorization_id)
        .await
        .map_err(|e| fail(ExitCode::SyncFailed, &e))?
        .ok_or(RefreshError::NotUsable)?;
    if auth.revoked_at.is_some() || matches!(auth.state.as_str(), authorizations::REVOKED | authorizations::EXPIRED) {
        return Err(RefreshError::NotUsable);
    }
    if auth.state == authorizations::NEEDS_REAUTH {
        return Err(RefreshError::InvalidGrant);
    }
    let creds = authorizations::payer_credentials(state, authorization_id)
        .await
        .map_err(|e| fail(ExitCode::SyncFailed, &e))?
        .ok_or(RefreshError::NotUsable)?;
    // A refresh that finished before we took the lease already replaced the token the caller found stale.
    if let Some(current) = &creds.access_token {
        if !crypto::ct_eq(stale.as_bytes(), current.expose_secret().as_bytes()) {
            return Ok(current.clone());
        }
    }
    let refresh_token = creds.refresh_token.ok_or(RefreshError::NoRefreshToken)?;
    let endpoint = endpoints::get(&state.db, &auth.endpoint_id)
        .await
        .map_err(|e| fail(ExitCode::SyncFailed, &e))?
        .ok_or_else(|| fail(ExitCode::InvalidEndpoint, &"endpoint removed"))?;
    let token_url = match creds.token_url {
        Some(t) => t,
        None => discover(&state.http, &endpoint).await.map_err(|c| fail(c, &"discovery failed"))?.token_url,
    };
    let status = Arc::new(AtomicU16::new(0));
    let http = oauth_http(state.http.clone(), status.clone());
    let c = client(&endpoint, &token_url).map_err(|e| fail(ExitCode::EndpointConfigurationError, &e))?;
    let now = state.clock.now();
    let token = match c
        .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_string()))
        .request_async(&http)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let f = classify(e, status.load(Ordering::SeqCst));
            tracing::warn!(failure = ?f, authorization = %authorization_id, "payer refresh failed");
            if matches!(f, TokenFailure::OAuth(BasicErrorResponseType::InvalidGrant)) {
                let _ = authorizations::set_state(&state.db, authorization_id, authorizations::NEEDS_REAUTH, now).await;
                let _ = audit::record(
                    &state.db,
                    now,
                    AuditEntry {
                        actor: "system",
                        action: "payer.refresh_refused",
                        app_id: Some(&auth.app_id),
                        authorization_id: Some(authorization_id),
                        request_id: None,
                        detail: None,
                    },
                )
                .await;
                return Err(RefreshError::InvalidGrant);
            }
            return Err(RefreshError::Failed(token_failure_exit_code(&f), format!("{f:?}")));
        }
    };
    let tokens = PayerTokens {
        access_token: SecretString::from(token.access_token().secret().clone()),
        refresh_token: token.refresh_token().map(|r| SecretString::from(r.secret().clone())),
        expires_at: token.expires_in().map(|d| now + d.as_secs() as i64),
        scope: token.scopes().map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
    };
    // Saved before anyone uses the new access token: a crash now cannot lose a rotated refresh token.
    authorizations::store_refreshed_tokens(state, authorization_id, now, &tokens)
        .await
        .map_err(|e| fail(ExitCode::SyncFailed, &e))?;
    Ok(tokens.access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_errors_map_to_exit_codes() {
        assert_eq!(callback_error_exit_code("access_denied"), ExitCode::PayerAccessDenied);
        assert_eq!(callback_error_exit_code("invalid_scope"), ExitCode::ScopeConfigurationError);
        assert_eq!(callback_error_exit_code("invalid_request"), ExitCode::PayerInvalidRequest);
        assert_eq!(callback_error_exit_code("unsupported_response_type"), ExitCode::PayerInvalidRequest);
        assert_eq!(callback_error_exit_code("server_error"), ExitCode::PayerServerError);
        assert_eq!(callback_error_exit_code("temporarily_unavailable"), ExitCode::PayerServerError);
        assert_eq!(callback_error_exit_code("unauthorized_client"), ExitCode::EndpointConfigurationError);
    }

    #[test]
    fn id_token_fhir_user() {
        let claims = URL_SAFE_NO_PAD.encode(br#"{"fhirUser":"https://payer.example/fhir/Patient/abc-1"}"#);
        assert_eq!(patient_from_id_token(&format!("e30.{claims}.sig")).as_deref(), Some("abc-1"));
        let claims = URL_SAFE_NO_PAD.encode(br#"{"fhirUser":"Practitioner/1"}"#);
        assert_eq!(patient_from_id_token(&format!("e30.{claims}.sig")), None);
    }

    #[test]
    fn capability_statement_oauth_uris() {
        let cs = json!({"rest": [{"security": {"extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "authorize", "valueUri": "https://p.example/auth"},
                          {"url": "token", "valueUri": "https://p.example/token"}]}]}}]});
        let c = from_capability_statement(&cs).unwrap();
        assert_eq!(c.authorize_url, "https://p.example/auth");
        assert_eq!(c.token_url, "https://p.example/token");
    }
}
