//! Structured logs with `tracing`: text or JSON, and a request id on every request and log line.
//! Compiled only with `ssr`.
//!
//! Never record a token, a secret or patient-identifying data in a span or event: log opaque ids only.

use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use super::config::LogFormat;

/// The header carrying the request id (`x-request-id`), set on every request and echoed on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber. Safe to call more than once (later calls are ignored), so tests can call it.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true).with_current_span(true)).try_init(),
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
    };
}

/// Makes request ids: 16 random bytes, base64url. A client-supplied `x-request-id` is replaced, so log lines
/// cannot be forged or joined across tenants by a caller.
#[derive(Clone, Copy, Default)]
pub struct MakeRandomRequestId;

impl MakeRequestId for MakeRandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = super::crypto::random_id(12);
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
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
