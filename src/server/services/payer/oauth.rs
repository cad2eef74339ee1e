//! The OAuth 2.0 side of a payer (SMART App Launch 2.0, RFC 6749, RFC 7636), with the `oauth2` crate over our
//! HTTP client (no redirects followed, our timeouts): the authorize request with PKCE `S256`, the
//! `authorization_code` exchange, and the `refresh_token` grant. No database here: callers store what comes back.
//!
//! Every token-endpoint failure is classified once ([`TokenFailure`]): an RFC 6749 §5.2 `error` body under any
//! 4xx status is the payer's answer (`invalid_grant` on a refresh means the payer refused the grant for good);
//! 5xx, timeouts, connection errors and unparsable answers are transient.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc,
    },
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
use serde_json::Value;

use crate::{
    domain::{ExitCode, Usage},
    server::{
        platform::crypto,
        services::payer::discovery::SmartConfiguration,
        store::{authorizations::PayerTokens, endpoints::Endpoint},
    },
};

/// `expires_in` assumed when a token response has none, in seconds: short enough that we refresh before a
/// real short-lived token dies (RFC 6749 §5.1 makes `expires_in` only RECOMMENDED).
pub const DEFAULT_EXPIRES_IN_SECS: i64 = 3_600;

/// Query parameters of the payer's redirect to `{public_url}/link/callback` (RFC 6749 §4.1.2, RFC 9207).
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
    /// The issuer identifier of the authorization server that answered (RFC 9207 §2), when it sends one.
    pub iss: Option<String>,
}

/// SMART extras of a token response: `patient` (launch context), `id_token` (OpenID Connect) and
/// `refresh_expires_in` (how long the refresh grant lasts, when the payer says).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SmartTokenFields {
    /// Launch context `patient` (a FHIR id; some payers send a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Value>,
    /// OpenID Connect `id_token` (JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Seconds the refresh grant lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
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

fn client(endpoint: &Endpoint, token_url: &str) -> Result<SmartClient<EndpointNotSet>, url::ParseError> {
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

/// An `oauth2` HTTP client over `http` (no redirects, our timeouts) that remembers the last HTTP status,
/// because the crate's errors drop it and 5xx must be told apart from an `error` body, and that normalises a
/// successful token response the way real payers bend RFC 6749 §5.1 ([`normalise_token_response`]), logging each
/// kind of deviation once per endpoint.
fn oauth_http(
    http: reqwest::Client,
    status: Arc<AtomicU16>,
    endpoint_id: String,
) -> impl Fn(oauth2::HttpRequest) -> HttpFuture {
    move |req: oauth2::HttpRequest| {
        let http = http.clone();
        let status = status.clone();
        let endpoint_id = endpoint_id.clone();
        Box::pin(async move {
            let req = reqwest::Request::try_from(req).map_err(TransportError)?;
            let resp = http.execute(req).await.map_err(TransportError)?;
            status.store(resp.status().as_u16(), Ordering::SeqCst);
            let mut builder = oauth2::http::Response::builder().status(resp.status().as_u16());
            let success = resp.status().is_success();
            for (name, value) in resp.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = resp.bytes().await.map_err(TransportError)?.to_vec();
            if success {
                if let Some((normalised, notes)) = normalise_token_response(&body) {
                    for note in notes {
                        warn_once(&endpoint_id, note);
                    }
                    // The body is JSON now, whatever the payer labelled it (the crate insists on the label).
                    let mut resp = builder.body(normalised).expect("status and headers came from a valid response");
                    resp.headers_mut().insert(
                        oauth2::http::header::CONTENT_TYPE,
                        oauth2::http::HeaderValue::from_static("application/json"),
                    );
                    return Ok(resp);
                }
            }
            Ok(builder.body(body).expect("status and headers came from a valid response"))
        }) as HttpFuture
    }
}

/// Logs a deviation of an endpoint's token responses the first time this process sees it.
fn warn_once(endpoint_id: &str, note: &'static str) {
    static SEEN: std::sync::Mutex<Option<std::collections::HashSet<(String, &'static str)>>> = std::sync::Mutex::new(None);
    let first = SEEN
        .lock()
        .map(|mut seen| seen.get_or_insert_with(Default::default).insert((endpoint_id.to_string(), note)))
        .unwrap_or(true);
    if first {
        tracing::warn!(endpoint = %endpoint_id.escape_debug(), deviation = note, "payer token response normalised");
    }
}

/// Seconds from an `expires_in`-like value: a number (a float is rounded), a numeric string, or nothing usable.
fn lenient_seconds(v: &Value) -> Option<i64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (0.0..1e12).contains(&f).then(|| f.round() as i64)
}

/// Normalises a successful token response the way payers in the field send it, so that the `oauth2` crate reads
/// what RFC 6749 §5.1 describes. Returns the JSON to parse and what was changed (for the log), or `None` when
/// the body is not a JSON object with an `access_token` (then the crate's own error applies):
/// - `expires_in` / `refresh_expires_in` as a numeric string or a float → whole seconds; unusable → dropped
///   (then [`DEFAULT_EXPIRES_IN_SECS`] applies);
/// - `token_type` missing → `Bearer` (its case is already free);
/// - `scope` comma-separated → space-separated; an empty `scope` → dropped (then the requested one applies).
pub fn normalise_token_response(body: &[u8]) -> Option<(Vec<u8>, Vec<&'static str>)> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    obj.get("access_token")?.as_str()?;
    let mut notes = Vec::new();
    for field in ["expires_in", "refresh_expires_in"] {
        match obj.get(field) {
            None | Some(Value::Null) => {
                obj.remove(field);
                if field == "expires_in" {
                    notes.push("expires_in missing");
                }
            }
            Some(Value::Number(n)) if n.is_u64() => {}
            Some(other) => match lenient_seconds(other) {
                Some(secs) => {
                    obj.insert(field.into(), Value::from(secs));
                    notes.push(if field == "expires_in" { "expires_in not an integer" } else { "refresh_expires_in not an integer" });
                }
                None => {
                    obj.remove(field);
                    notes.push(if field == "expires_in" { "expires_in unusable" } else { "refresh_expires_in unusable" });
                }
            },
        }
    }
    if !obj.get("token_type").is_some_and(Value::is_string) {
        obj.insert("token_type".into(), Value::from("Bearer"));
        notes.push("token_type missing");
    }
    match obj.get("scope") {
        Some(Value::String(s)) if s.contains(',') => {
            let spaced = s.split([',', ' ']).filter(|x| !x.is_empty()).collect::<Vec<_>>().join(" ");
            obj.insert("scope".into(), Value::from(spaced));
            notes.push("scope comma-separated");
        }
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        None => {}
        Some(_) => {
            obj.remove("scope");
            notes.push("scope empty or not a string");
        }
    }
    Some((serde_json::to_vec(&v).ok()?, notes))
}

/// Why a token request failed.
#[derive(Debug, Clone)]
pub enum TokenFailure {
    /// No answer in time.
    Timeout,
    /// Connection refused, reset, TLS or DNS failure.
    Unreachable,
    /// A 5xx status (whatever the body).
    ServerError(u16),
    /// An RFC 6749 §5.2 `error` body under a non-5xx status (400, 401, 403, …).
    OAuth(BasicErrorResponseType),
    /// A success or error answer that is not a token response nor an error body.
    Invalid(String),
}

impl TokenFailure {
    /// The payer refused the grant itself (`invalid_grant`): retrying the same grant cannot succeed.
    pub fn is_refusal(&self) -> bool {
        matches!(self, TokenFailure::OAuth(BasicErrorResponseType::InvalidGrant))
    }

    /// The exit code a patient-facing flow ends with for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            TokenFailure::Timeout => ExitCode::PayerTimeout,
            TokenFailure::Unreachable | TokenFailure::ServerError(_) => ExitCode::PayerServerError,
            TokenFailure::OAuth(BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient) => {
                ExitCode::EndpointConfigurationError
            }
            TokenFailure::OAuth(BasicErrorResponseType::InvalidScope) => ExitCode::ScopeConfigurationError,
            TokenFailure::OAuth(_) | TokenFailure::Invalid(_) => ExitCode::PayerTokenExchangeFailed,
        }
    }
}

impl std::fmt::Display for TokenFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenFailure::Timeout => write!(f, "the token endpoint did not answer in time"),
            TokenFailure::Unreachable => write!(f, "the token endpoint is unreachable"),
            TokenFailure::ServerError(s) => write!(f, "the token endpoint answered HTTP {s}"),
            // Both may hold text from the payer's answer: escaped, so it can never forge a log line.
            TokenFailure::OAuth(e) => write!(f, "the token endpoint answered error={}", e.as_ref().escape_debug()),
            TokenFailure::Invalid(why) => write!(f, "the token endpoint's answer is unusable: {}", why.escape_debug()),
        }
    }
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

/// An authorization request ready to send the patient to (RFC 6749 §4.1.1 with PKCE, RFC 7636 §4.3).
pub struct AuthorizeRequest {
    /// The payer's full authorize URL.
    pub url: String,
    /// The `state` sent (256 random bits), to be stored only as a hash.
    pub state: String,
    /// The PKCE `code_verifier`, to be stored sealed.
    pub code_verifier: SecretString,
    /// The `scope` asked for, space-separated.
    pub scope: String,
}

/// Builds the authorize URL of `endpoint` (found by discovery) with a fresh `state`, PKCE `S256` challenge, the
/// SMART scopes and `aud` = the FHIR base (SMART App Launch 2.0 §2.1.2).
///
/// # Errors
/// `ENDPOINT_CONFIGURATION_ERROR` for unusable URLs (logged).
pub fn authorize_request(
    endpoint: &Endpoint,
    smart: &SmartConfiguration,
    redirect_uri: &str,
    usage: Usage,
    requested_resources: &[String],
) -> Result<AuthorizeRequest, ExitCode> {
    let config_err = |e: &dyn std::fmt::Display| {
        tracing::warn!(endpoint = %endpoint.id, error = %e, "unusable OAuth URL");
        ExitCode::EndpointConfigurationError
    };
    let c = client(endpoint, &smart.token_url)
        .map_err(|e| config_err(&e))?
        .set_auth_uri(AuthUrl::new(smart.authorize_url.clone()).map_err(|e| config_err(&e))?)
        .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).map_err(|e| config_err(&e))?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = crypto::random_token("");
    let scope = scopes(endpoint, usage, requested_resources);
    let csrf = state.clone();
    let (url, _) = c
        .authorize_url(move || CsrfToken::new(csrf))
        .add_scopes(scope.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge)
        .add_extra_param("aud", endpoint.fhir_base())
        .url();
    Ok(AuthorizeRequest {
        url: url.to_string(),
        state,
        code_verifier: SecretString::from(verifier.secret().clone()),
        scope: scope.join(" "),
    })
}

/// What a payer's token endpoint granted.
#[derive(Debug)]
pub struct TokenGrant {
    /// The payer tokens and their expiries, ready to store.
    pub tokens: PayerTokens,
    /// The launch context `patient`, from the response or else the `id_token`'s `fhirUser`.
    pub patient_id: Option<String>,
}

fn grant_of(token: SmartTokenResponse, now: i64, requested_scope: Option<&str>) -> TokenGrant {
    let extra = token.extra_fields();
    let patient_id = extra
        .patient
        .as_ref()
        .and_then(patient_from_value)
        .or_else(|| extra.id_token.as_deref().and_then(patient_from_id_token));
    let expires_in = token.expires_in().map_or(DEFAULT_EXPIRES_IN_SECS, |d| d.as_secs() as i64);
    TokenGrant {
        tokens: PayerTokens {
            access_token: SecretString::from(token.access_token().secret().clone()),
            refresh_token: token.refresh_token().map(|r| SecretString::from(r.secret().clone())),
            expires_at: Some(now + expires_in),
            refresh_expires_at: extra.refresh_expires_in.map(|s| now + s),
            // RFC 6749 §5.1: a response without `scope` granted what was requested.
            scope: token
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
                .or_else(|| requested_scope.map(str::to_string)),
        },
        patient_id,
    }
}

/// Exchanges an authorization code at the payer's token endpoint (RFC 6749 §4.1.3) with the PKCE
/// `code_verifier` and the same `redirect_uri`. `requested_scope` is what the authorize request asked for (the
/// grant when the response names no `scope`).
///
/// # Errors
/// See [`TokenFailure`]; an unusable token URL is `Invalid`.
#[allow(clippy::too_many_arguments)] // each is one part of the RFC 6749 §4.1.3 request
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    token_url: &str,
    redirect_uri: &str,
    code: &str,
    code_verifier: &SecretString,
    requested_scope: &str,
    now: i64,
) -> Result<TokenGrant, TokenFailure> {
    let status = Arc::new(AtomicU16::new(0));
    let c = client(endpoint, token_url)
        .and_then(|c| Ok(c.set_redirect_uri(RedirectUrl::new(redirect_uri.to_string())?)))
        .map_err(|e| TokenFailure::Invalid(format!("unusable URL: {e}")))?;
    let token = c
        .exchange_code(AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(PkceCodeVerifier::new(code_verifier.expose_secret().to_string()))
        .request_async(&oauth_http(http.clone(), status.clone(), endpoint.id.clone()))
        .await
        .map_err(|e| classify(e, status.load(Ordering::SeqCst)))?;
    Ok(grant_of(token, now, Some(requested_scope)))
}

/// Refreshes at the payer's token endpoint (RFC 6749 §6).
///
/// # Errors
/// See [`TokenFailure`]; [`TokenFailure::is_refusal`] when the payer refused the `refresh_token`.
pub async fn refresh_grant(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    token_url: &str,
    refresh_token: &SecretString,
    now: i64,
) -> Result<TokenGrant, TokenFailure> {
    let status = Arc::new(AtomicU16::new(0));
    let c = client(endpoint, token_url).map_err(|e| TokenFailure::Invalid(format!("unusable URL: {e}")))?;
    let token = c
        .exchange_refresh_token(&RefreshToken::new(refresh_token.expose_secret().to_string()))
        .request_async(&oauth_http(http.clone(), status.clone(), endpoint.id.clone()))
        .await
        .map_err(|e| classify(e, status.load(Ordering::SeqCst)))?;
    // No `scope` in a refresh response: the grant keeps the scope it had (the store keeps the known one).
    Ok(grant_of(token, now, None))
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

#[cfg(test)]
mod log_tests {
    use super::*;

    #[test]
    fn payer_text_in_a_failure_is_escaped() {
        let f = TokenFailure::OAuth(BasicErrorResponseType::Extension("x\nINFO forged line".into()));
        assert!(!f.to_string().contains('\n'), "{f}");
        let f = TokenFailure::Invalid("status 200: bad\r\nline".into());
        assert!(!f.to_string().contains('\r'), "{f}");
    }
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
    fn token_responses_from_the_field_are_normalised() {
        let norm = |v: Value| {
            let (bytes, notes) = normalise_token_response(v.to_string().as_bytes()).expect("a token response");
            (serde_json::from_slice::<Value>(&bytes).unwrap(), notes)
        };
        let (v, notes) = norm(serde_json::json!({"access_token": "a", "token_type": "bearer", "expires_in": "3600"}));
        assert_eq!((v["expires_in"].clone(), v["token_type"].clone()), (Value::from(3600), Value::from("bearer")));
        assert_eq!(notes, ["expires_in not an integer"]);
        let (v, _) = norm(serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 299.6}));
        assert_eq!(v["expires_in"], 300);
        let (v, notes) = norm(serde_json::json!({"access_token": "a", "expires_in": "soon", "scope": "a,b, c"}));
        assert!(v.get("expires_in").is_none());
        assert_eq!((v["token_type"].clone(), v["scope"].clone()), (Value::from("Bearer"), Value::from("a b c")));
        assert_eq!(notes, ["expires_in unusable", "token_type missing", "scope comma-separated"]);
        let (v, notes) = norm(serde_json::json!({"access_token": "a", "token_type": "Bearer", "scope": "", "extra": 1}));
        assert!(v.get("scope").is_none() && v["extra"] == 1);
        assert_eq!(notes, ["expires_in missing", "scope empty or not a string"]);
        assert!(normalise_token_response(b"<html>").is_none());
        assert!(normalise_token_response(br#"{"error":"invalid_grant"}"#).is_none());
    }

    #[test]
    fn refusal_is_invalid_grant_whatever_the_status() {
        assert!(TokenFailure::OAuth(BasicErrorResponseType::InvalidGrant).is_refusal());
        assert!(!TokenFailure::ServerError(503).is_refusal());
        assert!(!TokenFailure::Timeout.is_refusal());
        assert!(!TokenFailure::OAuth(BasicErrorResponseType::InvalidClient).is_refusal());
    }
}

