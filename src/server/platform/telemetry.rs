//! Structured logs with `tracing`: text or JSON, and a request id on every request and log line.
//! Compiled only with `ssr`.
//!
//! Never record a token, a secret or patient-identifying data in a span or event: log opaque ids only.

use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::server::settings::LogFormat;

/// The header carrying the request id (`x-request-id`), set on every request and echoed on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber, writing to stderr (stdout is for command output such as `audit export`).
/// The filter defaults to `info`. Safe to call more than once (later calls are ignored), so tests can call it.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(false).with_writer(std::io::stderr)).try_init(),
    };
}

/// Makes request ids: 16 random bytes, base64url. A client-supplied `x-request-id` is replaced, so log lines
/// cannot be forged or joined across tenants by a caller.
#[derive(Clone, Copy, Default)]
pub struct MakeRandomRequestId;

impl MakeRequestId for MakeRandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = crate::server::platform::crypto::random_id(12);
        axum::http::HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The span every request runs in: method, path (no query string: it may carry codes or tokens) and request id.
pub fn make_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %redact_path(request.uri().path()),
        request_id = %request_id,
    )
}

/// Prefixes of values that act as bearer capabilities when they appear in a path (Link session ids,
/// tokens we issue): they are replaced by `{redacted}` in logs.
const SECRET_SEGMENT_PREFIXES: [&str; 8] = ["ls_", "public-token-", "at_", "rt_", "app_", "ac_", "ct_", "hlt_"];

/// The path as it may be logged: segments that are session ids or tokens become `{redacted}`.
pub fn redact_path(path: &str) -> std::borrow::Cow<'_, str> {
    let secret = |seg: &str| SECRET_SEGMENT_PREFIXES.iter().any(|p| seg.starts_with(p) && seg.len() > p.len() + 8);
    if !path.split('/').any(secret) {
        return std::borrow::Cow::Borrowed(path);
    }
    path.split('/').map(|seg| if secret(seg) { "{redacted}" } else { seg }).collect::<Vec<_>>().join("/").into()
}

/// The request id our middleware set on this request (`x-request-id`), for audit records and logs.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_and_tokens_are_redacted_from_logged_paths() {
        assert_eq!(redact_path("/link/s/ls_abcdefghijklmnop/consent"), "/link/s/{redacted}/consent");
        assert_eq!(redact_path("/fhir/Patient/123"), "/fhir/Patient/123");
        assert_eq!(redact_path("/link/at_"), "/link/at_");
        assert_eq!(redact_path("/link/h/hlt_abcdefghijklmnop"), "/link/h/{redacted}");
    }
}
