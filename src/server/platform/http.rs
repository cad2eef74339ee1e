//! Cross-cutting HTTP pieces: security headers (CSP with a per-request nonce and `frame-ancestors`,
//! `Cross-Origin-Opener-Policy`, `Permissions-Policy`, HSTS values). Compiled only with `ssr`.

use axum::{
    extract::Request,
    http::{header, HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};

/// The CSP nonce of the current request (16 random bytes, base64url), in the request's extensions.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Response header a handler sets to widen `frame-ancestors` for a hosted page (space-separated exact
/// origins). The security-headers middleware consumes it and never sends it to the client.
pub const FRAME_ANCESTORS_HEADER: HeaderName = HeaderName::from_static("x-link-frame-ancestors");

/// Response header a handler sets to let the page's forms end at one more target besides this server: the
/// CSP source of a hosted flow's registered `redirect_uri` (see [`csp_source_for_target`]). Chromium and
/// WebKit apply `form-action` to every redirect that follows a form submission, so without it the 303 that
/// ends a hosted flow (decline, close, exit) would be blocked. Consumed by the middleware, never sent.
pub const FORM_ACTION_HEADER: HeaderName = HeaderName::from_static("x-link-form-action");

/// `Cross-Origin-Opener-Policy` of pages that open no window: no other page keeps a handle on them.
pub const COOP_SAME_ORIGIN: HeaderValue = HeaderValue::from_static("same-origin");
/// `Cross-Origin-Opener-Policy` of pages that open Link's payer window (the demo, the test page): the window keeps
/// its opener, nothing else gets one.
pub const COOP_ALLOW_POPUPS: HeaderValue = HeaderValue::from_static("same-origin-allow-popups");
/// `Cross-Origin-Opener-Policy` of the payer window's own pages: they must keep their opener (the Link modal).
pub const COOP_UNSAFE_NONE: HeaderValue = HeaderValue::from_static("unsafe-none");
/// `Strict-Transport-Security` when HTTPS is served directly (one year).
pub const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");
/// `Permissions-Policy` of every response: none of the powerful features is used by any page.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), \
     gyroscope=(), hid=(), magnetometer=(), microphone=(), midi=(), payment=(), serial=(), usb=(), \
     xr-spatial-tracking=()";

/// Schemes a registered `redirect_uri` may never use: navigating to them runs script or reads local or
/// in-browser data instead of handing the result to the app.
const UNSAFE_NAVIGATION_SCHEMES: [&str; 7] = ["javascript", "vbscript", "data", "blob", "file", "filesystem", "about"];

/// Whether a URL scheme (lower case, without `:`) is one a redirect must never go to.
pub fn is_unsafe_navigation_scheme(scheme: &str) -> bool {
    UNSAFE_NAVIGATION_SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s))
}

/// Every `name=value` pair of the request's `Cookie` headers (RFC 6265 §5.4: pairs separated by `;`), in order;
/// a header that is not visible ASCII is skipped.
pub fn request_cookies(headers: &axum::http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

/// The narrowest CSP source expression (CSP3 §2.3.1) that browsers honour for navigating to `target`:
/// - `http(s)`: `scheme://host[:port]/path` (no query: a source never has one; after a redirect, browsers
///   compare the origin only, CSP3 §6.7.2.8, so a redirect inside the target's origin still passes);
/// - any other scheme (an app's `myapp://…` or `com.example.app:/…`): the scheme alone, `myapp:`. Chromium
///   matches no host-source against a non-network URL (`myapp://link-done` does not allow
///   `myapp://link-done?error=…`) and refuses a path after a bare scheme, so nothing narrower works.
///
/// `None` for an unparsable URL, an unsafe scheme ([`is_unsafe_navigation_scheme`]) or a part that cannot be
/// written safely inside a CSP header.
pub fn csp_source_for_target(target: &str) -> Option<String> {
    let u = url::Url::parse(target).ok()?;
    let scheme = u.scheme();
    let scheme_ok = scheme.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && scheme.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || is_unsafe_navigation_scheme(scheme) {
        return None;
    }
    if !matches!(scheme, "http" | "https") {
        return Some(format!("{scheme}:"));
    }
    let host = u.host_str()?;
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':')) {
        return None;
    }
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    // `;` and `,` separate directives and policies: a path-part carries them percent-encoded (CSP3 §2.3.1).
    let path = u.path().replace(';', "%3B").replace(',', "%2C");
    if path.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control() || matches!(c, '\'' | '"')) {
        return None;
    }
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// Builds the Content-Security-Policy of an HTML page: scripts only from us or with this request's nonce,
/// wasm allowed, no plugins, no `<base>` games, forms only to us (and to `form_targets`, space-separated CSP
/// sources, e.g. a hosted flow's `redirect_uri`), and framing only by `frame_ancestors` (`'none'` when empty).
pub fn content_security_policy(nonce: &str, frame_ancestors: &str, form_targets: &str) -> String {
    let ancestors = if frame_ancestors.trim().is_empty() { "'none'" } else { frame_ancestors };
    let forms = if form_targets.trim().is_empty() { String::new() } else { format!(" {}", form_targets.trim()) };
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data: https:; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'{forms}; frame-ancestors {ancestors}"
    )
}

/// Middleware: gives each request a CSP nonce and adds security headers to every response. HTML responses
/// get a CSP with that nonce unless the handler set its own (every other response gets
/// `default-src 'none'; frame-ancestors 'none'`) and `Cross-Origin-Opener-Policy: same-origin` unless the handler
/// set another (pages in the payer window keep `unsafe-none`); every response gets `Permissions-Policy`.
pub async fn security_headers(mut request: Request, next: Next) -> Response {
    let nonce = crate::server::platform::crypto::random_id(16);
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let ancestors = headers
        .remove(FRAME_ANCESTORS_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .unwrap_or_default();
    // A source list only: anything that could end the directive is dropped.
    let form_targets = headers
        .remove(FORM_ACTION_HEADER)
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .filter(|v| !v.contains([';', ',', '\'']))
        .unwrap_or_default();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if is_html {
            content_security_policy(&nonce, &ancestors, &form_targets)
        } else {
            "default-src 'none'; frame-ancestors 'none'".to_string()
        };
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    let coop = HeaderName::from_static("cross-origin-opener-policy");
    if is_html && !headers.contains_key(&coop) {
        headers.insert(coop, COOP_SAME_ORIGIN);
    }
    headers.insert(HeaderName::from_static("permissions-policy"), HeaderValue::from_static(PERMISSIONS_POLICY));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_defaults_to_no_framing() {
        let csp = content_security_policy("abc", "", "");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("'nonce-abc'"));
        assert!(csp.contains("form-action 'self';"));
        let csp = content_security_policy("abc", "https://app.example", "myapp:");
        assert!(csp.ends_with("frame-ancestors https://app.example"));
        assert!(csp.contains("form-action 'self' myapp:;"));
    }

    #[test]
    fn redirect_targets_become_narrow_csp_sources() {
        assert_eq!(csp_source_for_target("https://app.example/link/done?x=1").as_deref(), Some("https://app.example/link/done"));
        assert_eq!(csp_source_for_target("http://127.0.0.1:5173/cb").as_deref(), Some("http://127.0.0.1:5173/cb"));
        assert_eq!(csp_source_for_target("https://[::1]:8443/a;b,c").as_deref(), Some("https://[::1]:8443/a%3Bb%2Cc"));
        assert_eq!(csp_source_for_target("myapp://link-done").as_deref(), Some("myapp:"));
        assert_eq!(csp_source_for_target("com.example.app:/oauth2redirect").as_deref(), Some("com.example.app:"));
        for bad in ["javascript:alert(1)", "data:text/html,x", "blob:https://a.example/x", "file:///etc/passwd", "not a url"] {
            assert_eq!(csp_source_for_target(bad), None, "{bad}");
        }
    }
}
