//! How a browser carries a Link session's binding over HTTP (the rule itself is `services::link_flow::is_bound`):
//!
//! - **Binder cookie** `link_bind_{tag}` (`__Host-` prefixed on https), set once when the session is created
//!   (`GET /link`, `GET /link/auth`) on the response that sends the browser to its first screen. In the top-level
//!   hosted flow it is a first-party `SameSite=Lax` cookie; in the modal iframe a `SameSite=None; Secure;
//!   Partitioned` (CHIPS) cookie, kept by the browser under the host page's site.
//! - **The frame's copy**: the modal also gets the binder in its first screen's URL fragment (never sent to a
//!   server, never in a `Referer`); `frame.js` keeps it in `sessionStorage`, strips it from the URL, and sends it
//!   back as the `X-Link-Bind` header on its fetches and as the `bind` field of the forms it posts, so the
//!   modal works with third-party cookies blocked entirely.
//! - **Hand-off cookie** `link_handoff_{tag}` (`__Host-` on https), set on the payer window when the hand-off
//!   starts (10 minutes, `SameSite=Lax` so it comes back with the payer's top-level redirect): the callback
//!   requires the one its `state`'s request was given.
//!
//! Every cookie here is `HttpOnly`, `Path=/` and scoped by a name tag (a hash prefix, never the secret), so
//! several sessions in one browser never overwrite each other's.

use axum::http::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};

use crate::server::{
    platform::{crypto, http::request_cookies},
    state::AppState,
    store::{link_sessions::SESSION_TTL_SECS, payer_auth_requests::AUTH_REQUEST_TTL_SECS},
};

/// Header a modal's fetches carry the binder in.
pub const BIND_HEADER: &str = "x-link-bind";
/// Form field the modal's posted forms carry the binder in.
pub const BIND_FIELD: &str = "bind";
/// Name of the binder cookie, before its tag.
const BIND_COOKIE: &str = "link_bind_";
/// Name of a hand-off cookie, before its tag.
const HANDOFF_COOKIE: &str = "link_handoff_";

/// Whether the server is reached over https (then cookies are `Secure` and `__Host-` prefixed).
fn https(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

fn prefixed(state: &AppState, name: &str) -> String {
    if https(state) {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// A cookie-name tag for a secret: 16 hex characters of its SHA-256 (tells nothing about it).
fn tag(secret: &str) -> String {
    crypto::hash_token(secret)[..16].to_string()
}

/// The name of session `sid`'s binder cookie.
pub fn binder_cookie_name(state: &AppState, sid: &str) -> String {
    prefixed(state, &format!("{BIND_COOKIE}{}", tag(sid)))
}

/// The `Set-Cookie` value that hands session `sid`'s binder to the browser that opened it: `Partitioned`,
/// `SameSite=None` for the modal (a third-party iframe), first-party `SameSite=Lax` for the hosted flow.
pub fn binder_cookie(state: &AppState, sid: &str, binder: &SecretString, modal: bool) -> Option<HeaderValue> {
    let name = binder_cookie_name(state, sid);
    let value = binder.expose_secret();
    let attrs = if modal {
        // SameSite=None needs Secure; Chromium accepts Secure cookies from http://localhost and 127.0.0.1.
        "Secure; SameSite=None; Partitioned".to_string()
    } else if https(state) {
        "Secure; SameSite=Lax".to_string()
    } else {
        "SameSite=Lax".to_string()
    };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; Max-Age={SESSION_TTL_SECS}; HttpOnly; {attrs}")).ok()
}

/// The `Set-Cookie` value that gives the payer window hand-off value `binder` (a first-party cookie: the window
/// is top-level on our origin).
pub fn handoff_cookie(state: &AppState, binder: &SecretString) -> Option<HeaderValue> {
    let name = prefixed(state, &format!("{HANDOFF_COOKIE}{}", tag(binder.expose_secret())));
    let secure = if https(state) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={}; Path=/; Max-Age={AUTH_REQUEST_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        binder.expose_secret()
    ))
    .ok()
}

/// The `Set-Cookie` values that remove the hand-off cookies a callback presented (they are single use).
pub fn clear_handoff_cookies(state: &AppState, headers: &HeaderMap) -> Vec<HeaderValue> {
    let prefix = prefixed(state, HANDOFF_COOKIE);
    let secure = if https(state) { "; Secure" } else { "" };
    request_cookies(headers)
        .filter(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, _)| HeaderValue::from_str(&format!("{k}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}")).ok())
        .collect()
}

/// What a request presents as session `sid`'s binder: its binder cookie, the `X-Link-Bind` header and the `bind`
/// form field (`field`), whichever it has.
pub fn presented<'a>(state: &AppState, headers: &'a HeaderMap, sid: &str, field: Option<&'a str>) -> Vec<&'a str> {
    let name = binder_cookie_name(state, sid);
    let mut out: Vec<&str> = request_cookies(headers).filter(|(k, _)| *k == name).map(|(_, v)| v).collect();
    out.extend(headers.get(BIND_HEADER).and_then(|v| v.to_str().ok()));
    out.extend(field);
    out
}

/// The hand-off values a callback request presents (every hand-off cookie it carries).
pub fn handoff_binders<'a>(state: &AppState, headers: &'a HeaderMap) -> Vec<&'a str> {
    let prefix = prefixed(state, HANDOFF_COOKIE);
    request_cookies(headers).filter(|(k, _)| k.starts_with(&prefix)).map(|(_, v)| v).collect()
}

/// The `bind` field of a posted form (`application/x-www-form-urlencoded`, whatever the `Content-Type` says:
/// `navigator.sendBeacon` sends it as such).
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
