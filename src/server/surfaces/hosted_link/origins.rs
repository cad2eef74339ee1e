//! Which pages may open Link with an app's key and frame its screens: exact origins, with loopback pages and
//! this server itself allowed for test keys only (local development needs no registration).

use crate::{
    domain::Mode,
    server::{state::AppState, store::apps::App},
};

/// `scheme://host[:port]` with nothing else (no path, spaces or separators): safe inside a CSP and as a
/// postMessage target.
pub fn valid_origin(o: &str) -> bool {
    let Ok(u) = url::Url::parse(o) else { return false };
    matches!(u.scheme(), "http" | "https") && u.host_str().is_some() && u.origin().ascii_serialization() == o
}

/// Whether `origin` is a loopback origin (`http(s)://localhost:*`, `http(s)://127.0.0.0/8:*`,
/// `http(s)://[::1]:*`): a developer's own machine.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Ok(u) = url::Url::parse(origin) else { return false };
    matches!(u.scheme(), "http" | "https")
        && match u.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// Whether a page at `origin` may open Link with this app's key: one of the app's registered origins; in
/// test mode (`pk_test_`, sandbox plans only) also this server itself and any loopback origin, so local
/// development needs no registration. Live keys work only from registered origins.
pub fn origin_allowed(state: &AppState, app: &App, mode: Mode, origin: &str) -> bool {
    app.allowed_origins.iter().any(|o| o == origin)
        || (mode == Mode::Test && (origin == &*state.public_url || is_loopback_origin(origin)))
}

/// The developer-facing reason shown in the host page's console (via `link.js`) when its origin is refused.
/// Names only the page's own origin and the fix; nothing about the app.
pub fn origin_hint(origin: &str, mode: Mode) -> String {
    format!(
        "this page's origin {origin} is not an allowed origin of the app{live}. Register it with \
         `link-sdk apps update --app APP_ID --allowed-origin {origin}` (the flag replaces the list: repeat it for \
         every origin) and open Link again.",
        live = if mode == Mode::Live { " (live keys work only from registered origins)" } else { "" }
    )
}

/// The origins allowed to frame an app's hosted screens: its registered origins, plus in test mode this
/// server itself (the built-in test page and demo) and the session's own host page when it is a loopback
/// origin (accepted for test keys at the entry, see [`origin_allowed`]).
pub fn frame_ancestors(state: &AppState, app: &App, mode: Mode, host_origin: Option<&str>) -> String {
    let mut list: Vec<String> = app.allowed_origins.iter().filter(|o| valid_origin(o)).cloned().collect();
    let mut add = |o: &str| {
        if !list.iter().any(|x| x == o) {
            list.push(o.to_string());
        }
    };
    if mode == Mode::Test {
        add(&state.public_url);
        if let Some(o) = host_origin.filter(|o| valid_origin(o) && is_loopback_origin(o)) {
            add(o);
        }
    }
    list.join(" ")
}
