//! Cross-cutting HTTP pieces: security headers (CSP with a per-request nonce and `frame-ancestors`),
//! `/healthz` and `/readyz`. Compiled only with `ssr`.

use axum::{
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::server::state::AppState;

/// The CSP nonce of the current request (16 random bytes, base64url), in the request's extensions.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Response header a handler sets to widen `frame-ancestors` for a hosted page (space-separated exact
/// origins). The security-headers middleware consumes it and never sends it to the client.
pub const FRAME_ANCESTORS_HEADER: HeaderName = HeaderName::from_static("x-link-frame-ancestors");

/// Builds the Content-Security-Policy of an HTML page: scripts only from us or with this request's nonce,
/// wasm allowed, no plugins, no `<base>` games, forms only to us, and framing only by `frame_ancestors`
/// (`'none'` when empty).
pub fn content_security_policy(nonce: &str, frame_ancestors: &str) -> String {
    let ancestors = if frame_ancestors.trim().is_empty() { "'none'" } else { frame_ancestors };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
    )
}

/// Middleware: gives each request a CSP nonce and adds security headers to every response. HTML responses
/// get a CSP with that nonce unless the handler set its own; every other response gets
/// `default-src 'none'; frame-ancestors 'none'`.
pub async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = crate::server::platform::crypto::random_id(16);
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let ancestors = headers
        .remove(FRAME_ANCESTORS_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .unwrap_or_default();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if is_html {
            content_security_policy(&nonce, &ancestors)
        } else {
            "default-src 'none'; frame-ancestors 'none'".to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if ancestors.is_empty() && !headers.contains_key(header::X_FRAME_OPTIONS) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if is_html && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Middleware: drops any client-supplied `x-request-id` so that ours is the only one in logs.
pub async fn strip_request_id(mut request: Request, next: Next) -> Response {
    request.headers_mut().remove(crate::server::platform::telemetry::REQUEST_ID_HEADER);
    next.run(request).await
}

/// `/healthz` (the process is up) and `/readyz` (the database answers).
pub fn health_router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.db.ping().await {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "database unreachable"}))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_defaults_to_no_framing() {
        let csp = content_security_policy("abc", "");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("'nonce-abc'"));
        let csp = content_security_policy("abc", "https://app.example");
        assert!(csp.ends_with("frame-ancestors https://app.example"));
    }
}
