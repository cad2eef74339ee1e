//! The small server-rendered pages of the hosted flow that need no Leptos: the page that ends a modal session at
//! once (bad options at `open()`), the payer popup's last page, a plain message, and the test integrator page.
//! `/link/frame.js` (loaded by each) does their messaging.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};

use crate::{
    domain::ExitCode,
    i18n,
    server::{
        platform::{
            assets,
            http::{CspNonce, COOP_ALLOW_POPUPS, FRAME_ANCESTORS_HEADER},
        },
        state::AppState,
    },
};

/// HTML-escapes text for an element or a double- or single-quoted attribute.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A whole page around `body`, in `lang`, with the built stylesheet and `/link/frame.js`.
pub fn html_page(lang: &str, title: &str, body: &str) -> String {
    let css = assets::manifest().css.as_ref().map(|c| format!("<link rel=\"stylesheet\" href=\"/pkg/{}\">", esc(c))).unwrap_or_default();
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">{css}<title>{title}</title></head>\
         <body>{body}<script src=\"/link/frame.js\" defer></script></body></html>",
        lang = esc(lang),
        title = esc(title),
    )
}

/// A page with one card: a heading and a sentence.
pub fn plain_page(lang: &str, title: &str, text: &str) -> axum::response::Html<String> {
    axum::response::Html(html_page(
        lang,
        title,
        &format!("<main class=\"page narrow\" id=\"main\"><div class=\"card\"><h1>{}</h1><p>{}</p></div></main>", esc(title), esc(text)),
    ))
}

/// The page that ends a modal session at once with `code` (bad options): frame.js messages the host page.
/// Only the code and the page's own nonce are sent, so the (unverified) origin may frame it.
pub fn exit_page(lang: &str, host_origin: Option<&str>, nonce: &str, code: ExitCode) -> Response {
    exit_page_with_hint(lang, host_origin, nonce, code, None)
}

/// [`exit_page`] with a developer-facing `hint` that frame.js passes to the host page, where `link.js` writes it
/// to the console (never shown to the patient; it must not hold anything the page does not already know).
pub fn exit_page_with_hint(lang: &str, host_origin: Option<&str>, nonce: &str, code: ExitCode, hint: Option<String>) -> Response {
    let m = i18n::msgs(lang);
    ending_page(lang, host_origin, nonce, code, (m.error_title, i18n::exit_message(lang, code.as_str())), hint)
}

/// A page that ends a session with `code`, showing `(title, text)` and the code: in the modal (a `host_origin`)
/// frame.js tells the host page (`onExit({code})`); anywhere else it is a plain page.
pub fn ending_page(
    lang: &str,
    host_origin: Option<&str>,
    nonce: &str,
    code: ExitCode,
    (title, text): (&str, &str),
    hint: Option<String>,
) -> Response {
    let m = i18n::msgs(lang);
    let body = format!(
        "<main class=\"page narrow\" id=\"main\"><div class=\"card\" id=\"link-root\" data-step=\"exited\" \
         data-exit-code=\"{code}\" data-nonce=\"{nonce}\" data-host-origin=\"{origin}\" data-hosted=\"{hosted}\" \
         data-hint=\"{hint}\">\
         <h1 id=\"link-title\">{title}</h1><p>{msg}</p><p class=\"hint\">{label}: <code data-testid=\"exit-code\">{code}</code></p>\
         </div></main>",
        code = code.as_str(),
        nonce = esc(nonce),
        origin = esc(host_origin.unwrap_or("")),
        hosted = host_origin.is_none(),
        title = esc(title),
        msg = esc(text),
        label = esc(m.error_code_label),
        hint = esc(hint.as_deref().unwrap_or("")),
    );
    let mut resp = axum::response::Html(html_page(lang, title, &body)).into_response();
    if let Some(v) = host_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        resp.headers_mut().insert(FRAME_ANCESTORS_HEADER, v);
    }
    resp
}

/// What a request that does not come from the session's browser gets (403): "this link was opened in another
/// browser", nothing about the session but its language; in the modal (`host_origin`) frame.js ends it for the
/// host page with `onExit({code: 'BROWSER_MISMATCH'})`.
pub fn other_browser_page(lang: &str, host_origin: Option<&str>, nonce: &str) -> Response {
    let m = i18n::msgs(lang);
    let mut resp = ending_page(
        lang,
        host_origin,
        nonce,
        ExitCode::BrowserMismatch,
        (m.other_browser_title, m.other_browser_intro),
        None,
    );
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

/// What the payer popup shows at the end: frame.js tells the opener (exact origin: ours) and closes.
pub fn popup_page(lang: &str, nonce: Option<&str>, result: Result<(), ExitCode>) -> Response {
    let m = i18n::msgs(lang);
    let (title, text, code) = match result {
        Ok(()) => (m.popup_done_title, m.popup_done_intro, ""),
        Err(c) => (m.popup_error_title, m.popup_error_intro, c.as_str()),
    };
    let body = format!(
        "<main class=\"page narrow\" id=\"main\"><div class=\"card\" id=\"link-popup\" data-nonce=\"{nonce}\" \
         data-result=\"{result}\" data-exit-code=\"{code}\"><h1>{title}</h1><p>{text}</p></div></main>",
        nonce = esc(nonce.unwrap_or("")),
        result = if code.is_empty() { "authorized" } else { "error" },
        title = esc(title),
        text = esc(text),
    );
    axum::response::Html(html_page(lang, title, &body)).into_response()
}

/// A bare integrator page for end-to-end tests and manual trials: loads `/link.js`, opens Link with the options
/// given in its query string and logs every callback into `#log` and `window.__linkLog`; `onSyncing` also calls
/// `window.__onSyncing(token)` when a test defined it. Served only when the sandbox payers are mounted and
/// `--test-page` is on (the default in local mode, off with `--env production`).
pub async fn test_page(State(state): State<AppState>, Extension(nonce): Extension<CspNonce>) -> Response {
    if !state.settings.test_page_enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let script = r#"
const q = new URLSearchParams(location.search);
const log = [];
window.__linkLog = log;
function note(name, value) {
  log.push({ name, value });
  document.getElementById('log').textContent += name + ' ' + JSON.stringify(value === undefined ? null : value) + '\n';
}
const opts = {
  publishableKey: q.get('publishableKey') || '',
  user: q.has('externalId') ? { externalId: q.get('externalId') } : undefined,
  usage: q.get('usage') || 'ONE_TIME',
  onSuccess: (t, m) => { note('onSuccess', t); if (m) note('onSuccess metadata', m); },
  // A test may define window.__onSyncing (e.g. Playwright's exposeFunction) to act as an integrator's backend.
  onSyncing: async (t) => {
    note('onSyncing', t);
    if (window.__onSyncing) note('onSyncing handled', await window.__onSyncing(t));
  },
  onLoad: () => note('onLoad'),
  onExit: (e) => note('onExit', e),
  onEvent: (n, m) => note('onEvent', { name: n, metadata: m }),
};
if (q.has('endpoint')) opts.endpoint = q.get('endpoint');
if (q.has('autoExit')) opts.autoExit = q.get('autoExit') === 'true';
if (q.has('skipSyncing')) opts.skipSyncing = q.get('skipSyncing') === 'true';
if (q.has('multiplePlans')) opts.multiplePlans = q.get('multiplePlans') === 'true';
if (q.has('skipExplainer')) opts.skipExplainer = q.get('skipExplainer') === 'true';
if (q.has('requestedResources')) opts.requestedResources = q.get('requestedResources').split(',');
if (q.has('language')) opts.language = q.get('language');
// Repair mode: the user and usage are the repaired authorization's unless the query names them.
if (q.has('repairToken')) { opts.repairToken = q.get('repairToken'); if (!q.has('usage')) delete opts.usage; }
const link = FlexpaLink.create(opts);
window.__link = link;
document.getElementById('connect').addEventListener('click', () => link.open());
"#;
    let body = format!(
        "<main class=\"page narrow\" id=\"main\"><h1>Link test page</h1>\
         <p>An integrator page for tests. Options come from the query string.</p>\
         <p><button id=\"connect\" class=\"button primary\" type=\"button\">Connect your health plan</button></p>\
         <h2>Callbacks</h2><pre id=\"log\" data-testid=\"log\" tabindex=\"0\"></pre></main>\
         <script src=\"/link.js\"></script><script src=\"/link.js\"></script>\
         <script nonce=\"{n}\">{script}</script>",
        n = esc(&nonce.0),
    );
    let mut resp = axum::response::Html(html_page("en", "Link test page", &body)).into_response();
    // It opens Link, whose payer window must keep its opener.
    resp.headers_mut().insert(axum::http::HeaderName::from_static("cross-origin-opener-policy"), COOP_ALLOW_POPUPS);
    resp
}
