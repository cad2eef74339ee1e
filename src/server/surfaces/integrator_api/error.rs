//! The integrator API's one error type: an RFC 6749 §5.2 error response (RFC 6750 §3 for Bearer routes).

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use crate::server::{
    platform::rate_limit::Limited,
    services::access::{bearer_challenge, AccessError},
};

// ---------------------------------------------------------------------------------------------------------

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate` value to send (401 only).
    challenge: Option<String>,
    /// `Retry-After` seconds (429 only).
    retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError { status, error, description: description.into(), challenge: None, retry_after: None }
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
    /// 404 `not_found`: the thing named in the path does not exist for this caller.
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", d)
    }
    /// 429 `temporarily_unavailable` (RFC 6749 §4.1.2.1's code for an overloaded server) with `Retry-After`: a
    /// rate limit was exceeded.
    pub fn rate_limited(limited: Limited, what: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            format!("too many requests {what}: retry after {} s", limited.retry_after_secs),
        );
        e.retry_after = Some(limited.retry_after_secs);
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
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// What an integrator API handler returns.
pub type ApiResult<T = Response> = Result<T, OAuthError>;
// = Result<T, OAuthError>;

/// A JSON answer with `Cache-Control: no-store` (RFC 6749 §5.1).
pub fn no_store(body: Value) -> Response {
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

