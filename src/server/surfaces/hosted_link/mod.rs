//! The hosted Link flow: link.js, link sessions, consent records, the payer handoff and callback.
//!
//! Owner: [Link flow]. Compiled only with `ssr`.
//!
//! Routes (the screens themselves are the Leptos page `/link/s/:sid`, see `app::link`):
//! - `GET /link.js`, `/link/v1/link.js` (+ `.d.ts`): the `FlexpaLink` script; `GET /link/frame.js`: the glue
//!   loaded by every hosted screen.
//! - `GET /link?publishableKey&externalId&usage&origin&nonce&…`: validates the `create()` options, creates the
//!   session and redirects to its first screen, or ends at once with an [`ExitCode`].
//! - `POST /link/s/{sid}/{consent,explainer,retry,exit,done}`: the steps' plain HTML forms.
//! - `GET /link/s/{sid}/handoff?endpoint`: opened in the popup; starts SMART App Launch at the payer.
//! - `GET /link/callback`: the payer's redirect; mints the `public_token`.
//! - `GET /link/s/{sid}/status`: JSON the modal polls (a payer's COOP can sever `window.opener`).
//! - `GET /link/s/{sid}/finish`: end of the hosted (`redirect_uri`) flow.
//! - `GET /link/test-page`: a test integrator page (only when the sandbox payers are mounted).
//!
//! Messages: the hosted screen posts `{source: 'flexpa-link', nonce, type: load|event|syncing|success|exit}` to
//! the host page's exact origin (recorded at `open()`; `load` carries the screen's step and an error's code, so
//! link.js can close the modal from its side the same way); link.js posts `{source: 'flexpa-link-host', nonce,
//! type: 'close'}` to the screen (our origin) when the host page closes it, and the screen records that ending
//! with a beacon to `/exit`; the popup's last page posts `{source: 'link-popup', nonce, result}` to our own
//! origin. Receivers check origin, source window and nonce. Completion is also polled (`/status`) because a
//! payer's Cross-Origin-Opener-Policy can sever `window.opener`.
//!
//! Endings (the contract in `public/link.d.ts`): each session ends once, as `onSuccess` or `onExit` in the modal,
//! or as a redirect to the registered `redirect_uri` in the hosted flow; what closing means on each step is in
//! the `exit` handler. The sealed `public_token` stays with the session until the modal has told the host page
//! (`/done`), the hosted flow has handed it over (`/finish`) or the session ends otherwise, whether or not it was
//! exchanged.
//!
//! One addition to DESIGN.md: the handoff sets a first-party, HttpOnly cookie on the *popup* (path
//! `/link/callback`, 10 min). It carries no flow state; it only lets a callback whose `state` is unknown
//! (altered, replayed, expired) end the session that started it with `INVALID_STATE` instead of leaving the
//! modal waiting. The modal itself never relies on a cookie.
//!
//! Exit codes ([`ExitCode`]) by where they arise: at `open()` (`INVALID_PUBLISHABLE_KEY`, `INVALID_USER`,
//! `INVALID_USAGE`, `INVALID_ENDPOINT`, `ENDPOINT_MODE_MISMATCH`); at the handoff (discovery:
//! `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`, `ENDPOINT_CONFIGURATION_ERROR`); at the callback (the `error`
//! parameter, `state`, the code exchange: see `payer_oauth`); during sync (`SYNC_FAILED`, `PLAN_NOT_REACHABLE`);
//! and `PATIENT_CANCELLED` for every patient ending before the payer authorized (close, Esc, decline, a session
//! that timed out); closing after it is a success.

pub mod screen;

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Json, Router,
};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::json;

use crate::server::store::link_sessions::{self, step, LinkSession, NewConsent, NewSession, SessionOptions};
use crate::{
    domain::{ExitCode, Mode, Usage},
    i18n::{self, ConsentText},
    server::{
        platform::{
            assets,
            http::{CspNonce, FRAME_ANCESTORS_HEADER},
        },
        services::payer::oauth::{self, CallbackParams},
        state::AppState,
        store::{
            apps,
            audit::{self, AuditEntry},
            endpoints,
            tokens::{self, TokenKind},
        },
    },
};

/// Lifetime of a `public_token`, seconds.
pub const PUBLIC_TOKEN_TTL_SECS: i64 = 1800;

const LINK_JS: &str = include_str!("../../../../public/link.js");
const LINK_DTS: &str = include_str!("../../../../public/link.d.ts");
const FRAME_JS: &str = include_str!("frame.js");

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/link.js", get(link_js))
        .route("/link/v1/link.js", get(link_js))
        .route("/link.d.ts", get(link_dts))
        .route("/link/v1/link.d.ts", get(link_dts))
        .route("/link/frame.js", get(frame_js))
        .route(crate::server::surfaces::integrator_api::paths::HOSTED_ENTRY, get(entry))
        .route("/link/callback", get(callback))
        .route("/link/test-page", get(test_page))
        .route("/link/s/{sid}/consent", post(consent))
        .route("/link/s/{sid}/explainer", post(explainer))
        .route("/link/s/{sid}/retry", post(retry))
        .route("/link/s/{sid}/exit", post(exit))
        .route("/link/s/{sid}/done", post(done))
        .route("/link/s/{sid}/handoff", get(handoff))
        .route("/link/s/{sid}/status", get(status))
        .route("/link/s/{sid}/finish", get(finish))
}

fn script(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
            // Loaded cross-origin by integrators' pages.
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")),
            (header::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin")),
        ],
        body,
    )
        .into_response()
}

async fn link_js() -> Response {
    script(LINK_JS, "text/javascript; charset=utf-8")
}

async fn link_dts() -> Response {
    script(LINK_DTS, "application/typescript; charset=utf-8")
}

async fn frame_js() -> Response {
    script(FRAME_JS, "text/javascript; charset=utf-8")
}

/// A safe, logged failure: internal text never reaches the browser.
/// A 500 with a short, fixed text for the patient; the error (with its causes) goes only to the log.
pub(crate) fn internal(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "link flow");
    (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Go back to the app and try again.").into_response()
}

/// `scheme://host[:port]` with nothing else (no path, spaces or separators): safe inside a CSP and as a
/// postMessage target.
pub fn valid_origin(o: &str) -> bool {
    let Ok(u) = url::Url::parse(o) else { return false };
    matches!(u.scheme(), "http" | "https")
        && u.host_str().is_some()
        && u.origin().ascii_serialization() == o
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

fn session_url(sid: &str) -> String {
    format!("/link/s/{sid}")
}

/// `redirect_uri` with query parameters added (hosted flow results).
fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Entry: create the session
// ---------------------------------------------------------------------------------------------------------

/// Query of `GET /link` (the `create()` options as link.js sends them; the hosted flow uses the same names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryParams {
    publishable_key: Option<String>,
    external_id: Option<String>,
    usage: Option<String>,
    endpoint: Option<String>,
    origin: Option<String>,
    nonce: Option<String>,
    auto_exit: Option<String>,
    skip_syncing: Option<String>,
    skip_explainer: Option<String>,
    requested_resources: Option<String>,
    language: Option<String>,
    #[serde(rename = "redirect_uri")]
    redirect_uri: Option<String>,
    state: Option<String>,
}

fn flag(v: &Option<String>, default: bool) -> bool {
    match v.as_deref() {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
    }
}

fn valid_external_id(id: &str) -> bool {
    let t = id.trim();
    !t.is_empty() && t.len() <= 255 && !t.chars().any(char::is_control)
}

fn valid_nonce(n: &str) -> bool {
    (8..=128).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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
fn origin_allowed(state: &AppState, app: &apps::App, mode: Mode, origin: &str) -> bool {
    app.allowed_origins.iter().any(|o| o == origin)
        || (mode == Mode::Test && (origin == &*state.public_url || is_loopback_origin(origin)))
}

/// The developer-facing reason shown in the host page's console (via `link.js`) when its origin is refused.
/// Names only the page's own origin and the fix; nothing about the app.
fn origin_hint(origin: &str, mode: Mode) -> String {
    format!(
        "this page's origin {origin} is not an allowed origin of the app{live}. Register it with \
         `link-sdk apps update --app APP_ID --allowed-origin {origin}` (the flag replaces the list: repeat it for \
         every origin) and open Link again.",
        live = if mode == Mode::Live { " (live keys work only from registered origins)" } else { "" }
    )
}

async fn entry(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<EntryParams>) -> Response {
    let lang = i18n::choose(p.language.as_deref(), headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let host_origin = p.origin.clone().filter(|o| valid_origin(o));
    let nonce = p.nonce.clone().filter(|n| valid_nonce(n)).unwrap_or_else(|| crate::server::platform::crypto::random_id(16));
    // Until the key is known, a failure can only be shown (or messaged to the page that asked).
    let fail_unverified = |code: ExitCode| exit_page(lang, host_origin.as_deref(), &nonce, code);

    let pk = p.publishable_key.clone().unwrap_or_default();
    if Mode::of_publishable_key(&pk).is_none() {
        return fail_unverified(ExitCode::InvalidPublishableKey);
    }
    let (app, mode) = match apps::by_publishable_key(&state.db, &pk).await {
        Ok(Some(found)) => found,
        Ok(None) => return fail_unverified(ExitCode::InvalidPublishableKey),
        Err(e) => return internal(e),
    };
    if let Some(ru) = &p.redirect_uri {
        if !app.redirect_uris.iter().any(|r| r == ru) {
            tracing::warn!(app_id = %app.id, "hosted link with an unregistered redirect_uri");
            return (StatusCode::BAD_REQUEST, plain_page(lang, "The app could not start the connection.", "This redirect address is not registered for the app.")).into_response();
        }
    }
    let hosted_redirect = p.redirect_uri.clone();
    let client_state = p.state.clone().map(|s| s.chars().take(512).collect::<String>());
    let fail = |code: ExitCode| -> Response {
        match &hosted_redirect {
            Some(ru) => {
                let mut params = vec![("error", code.as_str())];
                if let Some(s) = &client_state {
                    params.push(("state", s));
                }
                see_other(&redirect_with(ru, &params))
            }
            None => exit_page(lang, host_origin.as_deref(), &nonce, code),
        }
    };
    if let Some(origin) = &p.origin {
        if host_origin.is_none() || !origin_allowed(&state, &app, mode, origin) {
            // Origins are public (every request carries its page's); the log names the fix for the operator.
            tracing::warn!(app_id = %app.id, origin = %origin.chars().take(200).collect::<String>(),
                "link opened from an origin the app has not registered: `link-sdk apps update --app <id> --allowed-origin <origin>`");
            return match &hosted_redirect {
                Some(_) => fail(ExitCode::InvalidPublishableKey),
                None => exit_page_with_hint(
                    lang,
                    host_origin.as_deref(),
                    &nonce,
                    ExitCode::InvalidPublishableKey,
                    host_origin.as_deref().map(|o| origin_hint(o, mode)),
                ),
            };
        }
    }
    let external_id = p.external_id.clone().unwrap_or_default();
    if !valid_external_id(&external_id) {
        return fail(ExitCode::InvalidUser);
    }
    let Some(usage) = p.usage.as_deref().and_then(Usage::parse) else { return fail(ExitCode::InvalidUsage) };
    let endpoint_id = match p.endpoint.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => {
            if uuid::Uuid::parse_str(e).is_err() {
                return fail(ExitCode::InvalidEndpoint);
            }
            match endpoints::get(&state.db, e).await {
                Ok(Some(ep)) if ep.mode != mode => return fail(ExitCode::EndpointModeMismatch),
                Ok(Some(ep)) => Some(ep.id),
                Ok(None) => return fail(ExitCode::InvalidEndpoint),
                Err(e) => return internal(e),
            }
        }
    };
    let requested_resources: Vec<String> = p
        .requested_resources
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.len() < 64 && r.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && r.chars().all(|c| c.is_ascii_alphabetic()))
        .map(str::to_string)
        .collect();
    let options = SessionOptions {
        auto_exit: flag(&p.auto_exit, true),
        skip_syncing: flag(&p.skip_syncing, false),
        skip_explainer: flag(&p.skip_explainer, false),
        requested_resources,
        language: lang.into(),
    };
    let now = state.clock.now();
    let created = link_sessions::create(
        &state.db,
        now,
        NewSession {
            app_id: &app.id,
            mode,
            external_id: external_id.trim(),
            usage,
            options,
            endpoint_id: endpoint_id.as_deref(),
            host_origin: if hosted_redirect.is_some() { None } else { host_origin.as_deref() },
            redirect_uri: hosted_redirect.as_deref(),
            client_state: client_state.as_deref(),
            nonce: &nonce,
        },
    )
    .await;
    match created {
        Ok(sid) => {
            let _ = audit::record(
                &state.db,
                now,
                AuditEntry {
                    actor: "patient",
                    action: "link.opened",
                    app_id: Some(&app.id),
                    detail: Some(json!({"mode": mode.as_str(), "usage": usage.as_str(), "hosted": hosted_redirect.is_some()})),
                    ..Default::default()
                },
            )
            .await;
            // Every session starts on the consent screen, which the redirect below shows.
            let _ = audit::record(
                &state.db,
                now,
                AuditEntry {
                    actor: "patient",
                    action: "consent.shown",
                    app_id: Some(&app.id),
                    detail: Some(json!({"usage": usage.as_str()})),
                    ..Default::default()
                },
            )
            .await;
            see_other(&session_url(&sid))
        }
        Err(e) => internal(e),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Small server-rendered pages (exit at entry, popup results): no Leptos, a few lines of HTML.
// ---------------------------------------------------------------------------------------------------------

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn html_page(lang: &str, title: &str, body: &str) -> String {
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

fn plain_page(lang: &str, title: &str, text: &str) -> axum::response::Html<String> {
    axum::response::Html(html_page(
        lang,
        title,
        &format!("<main class=\"page narrow\" id=\"main\"><div class=\"card\"><h1>{}</h1><p>{}</p></div></main>", esc(title), esc(text)),
    ))
}

/// The page that ends a modal session at once with `code` (bad options): frame.js messages the host page.
/// Only the code and the page's own nonce are sent, so the (unverified) origin may frame it.
fn exit_page(lang: &str, host_origin: Option<&str>, nonce: &str, code: ExitCode) -> Response {
    exit_page_with_hint(lang, host_origin, nonce, code, None)
}

/// [`exit_page`] with a developer-facing `hint` that frame.js passes to the host page, where `link.js` writes it
/// to the console (never shown to the patient; it must not hold anything the page does not already know).
fn exit_page_with_hint(lang: &str, host_origin: Option<&str>, nonce: &str, code: ExitCode, hint: Option<String>) -> Response {
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
        title = esc(m.error_title),
        msg = esc(i18n::exit_message(lang, code.as_str())),
        label = esc(m.error_code_label),
        hint = esc(hint.as_deref().unwrap_or("")),
    );
    let mut resp = axum::response::Html(html_page(lang, m.error_title, &body)).into_response();
    if let Some(v) = host_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        resp.headers_mut().insert(FRAME_ANCESTORS_HEADER, v);
    }
    resp
}

/// What the payer popup shows at the end: frame.js tells the opener (exact origin: ours) and closes.
fn popup_page(lang: &str, nonce: Option<&str>, result: Result<(), ExitCode>) -> Response {
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

// ---------------------------------------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------------------------------------

enum Found {
    Live(Box<LinkSession>),
    Gone(Response),
}

/// The live session `sid`, or the response to send instead (its expired screen).
async fn find(state: &AppState, sid: &str) -> Found {
    match screen::live_session(state, sid).await {
        Ok(Some(s)) => Found::Live(Box::new(s)),
        Ok(None) => Found::Gone(see_other(&session_url(sid))),
        Err(e) => Found::Gone(internal(e)),
    }
}

macro_rules! live {
    ($state:expr, $sid:expr) => {
        match find(&$state, &$sid).await {
            Found::Live(s) => *s,
            Found::Gone(r) => return r,
        }
    };
}

/// The step after consent/explainer: search, or connect when the integrator fixed the endpoint.
fn pick_step(s: &LinkSession) -> &'static str {
    if s.endpoint_fixed {
        step::CONNECT
    } else {
        step::SEARCH
    }
}

/// Ends the session with `code`; the hosted flow goes back to the app's `redirect_uri`.
async fn end_with(state: &AppState, s: &LinkSession, code: ExitCode) -> Response {
    let now = state.clock.now();
    if let Err(e) = link_sessions::set_step(&state.db, now, &s.id, step::EXITED, Some(code)).await {
        return internal(e);
    }
    let _ = link_sessions::clear_public_token(&state.db, now, &s.id).await;
    let _ = audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "patient",
            action: "link.exited",
            app_id: Some(&s.app_id),
            authorization_id: s.authorization_id.as_deref(),
            detail: Some(json!({"code": code.as_str()})),
            ..Default::default()
        },
    )
    .await;
    match &s.redirect_uri {
        Some(ru) => {
            let mut params = vec![("error", code.as_str())];
            if let Some(cs) = &s.client_state {
                params.push(("state", cs));
            }
            see_other(&redirect_with(ru, &params))
        }
        None => see_other(&session_url(&s.id)),
    }
}

#[derive(Debug, Deserialize)]
struct ConsentForm {
    choice: Option<String>,
    signature: Option<String>,
}

async fn consent(State(state): State<AppState>, Path(sid): Path<String>, Form(f): Form<ConsentForm>) -> Response {
    let s = live!(state, sid);
    if s.step != step::CONSENT {
        return see_other(&session_url(&sid));
    }
    let app = match apps::get(&state.db, &s.app_id).await {
        Ok(Some(a)) => a,
        Ok(None) => return internal(anyhow::anyhow!("link session of a missing app")),
        Err(e) => return internal(e),
    };
    let given = f.choice.as_deref() == Some("given");
    let signature = f.signature.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(|n| n.chars().take(200).collect::<String>());
    if given && app.require_signature && signature.is_none() {
        return see_other(&format!("{}?err=signature", session_url(&sid)));
    }
    let text = ConsentText::new(&s.options.language, &app.name, s.usage.as_str(), &s.options.requested_resources).plain();
    let scope = link_sessions::consent_scope(&s);
    let now = state.clock.now();
    let recorded = link_sessions::record_consent(
        &state.db,
        now,
        NewConsent {
            session: &s,
            scope: &scope,
            text: &text,
            language: &s.options.language,
            given,
            signature_name: if given { signature.as_deref() } else { None },
        },
    )
    .await;
    if let Err(e) = recorded {
        return internal(e);
    }
    let _ = audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "patient",
            action: if given { "consent.given" } else { "consent.declined" },
            app_id: Some(&s.app_id),
            detail: Some(json!({"usage": s.usage.as_str(), "scope": scope, "text_version": i18n::CONSENT_TEXT_VERSION})),
            ..Default::default()
        },
    )
    .await;
    if !given {
        return end_with(&state, &s, ExitCode::PatientCancelled).await;
    }
    let next = if s.options.skip_explainer { pick_step(&s) } else { step::EXPLAINER };
    match link_sessions::advance(&state.db, now, &sid, step::CONSENT, next, None).await {
        Ok(_) => see_other(&session_url(&sid)),
        Err(e) => internal(e),
    }
}

async fn explainer(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let s = live!(state, sid);
    match link_sessions::advance(&state.db, state.clock.now(), &sid, step::EXPLAINER, pick_step(&s), None).await {
        Ok(_) => see_other(&session_url(&sid)),
        Err(e) => internal(e),
    }
}

async fn retry(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let s = live!(state, sid);
    if matches!(s.step.as_str(), step::ERROR | step::PAYER | step::SEARCH | step::CONNECT) {
        if let Err(e) = link_sessions::set_step(&state.db, state.clock.now(), &sid, pick_step(&s), None).await {
            return internal(e);
        }
    }
    see_other(&session_url(&sid))
}

/// `POST /link/s/{sid}/exit`: the close button (×), Esc, the error screen's Exit, the expired screen's Return, and
/// link.js closing the modal (a beacon from frame.js). What closing means, per step (the contract in
/// `public/link.d.ts`):
/// - before the payer authorized: `PATIENT_CANCELLED`;
/// - on the error screen: that error's code;
/// - after the payer authorized (syncing, success): success, with the `public_token` `onSyncing` delivered (the
///   sync goes on; the integrator's backend sees 429 until the data is ready);
/// - a session that timed out before it ended: `PATIENT_CANCELLED`;
/// - an ended session: its ending again (the screen repeats it to the host page; a hosted flow already
///   went back to the app).
///
/// The hosted flow ends with a 303 to its `redirect_uri` (its screens' CSP allows that target, see
/// `ScreenPolicy`); the modal's screen then tells the host page.
async fn exit(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let s = match link_sessions::get(&state.db, &sid).await {
        Ok(Some(s)) => s,
        Ok(None) => return see_other(&session_url(&sid)),
        Err(e) => return internal(e),
    };
    let ended = matches!(s.step.as_str(), step::EXITED | step::DONE);
    if s.expires_at <= state.clock.now() {
        return if ended { see_other(&session_url(&sid)) } else { end_with(&state, &s, ExitCode::PatientCancelled).await };
    }
    match s.step.as_str() {
        step::EXITED | step::DONE => see_other(&session_url(&sid)),
        step::SYNCING | step::SUCCESS => match &s.redirect_uri {
            Some(_) => finish_hosted(&state, &s).await,
            None => {
                let _ = link_sessions::advance(&state.db, state.clock.now(), &sid, &s.step, step::DONE, None).await;
                see_other(&session_url(&sid))
            }
        },
        // The error's own code.
        step::ERROR => end_with(&state, &s, s.exit_code.unwrap_or(ExitCode::PatientCancelled)).await,
        _ => end_with(&state, &s, ExitCode::PatientCancelled).await,
    }
}

/// The modal has told the host page about success: forget the sealed public token.
async fn done(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let s = live!(state, sid);
    let now = state.clock.now();
    if s.step == step::SUCCESS || s.step == step::DONE {
        let _ = link_sessions::advance(&state.db, now, &sid, step::SUCCESS, step::DONE, None).await;
        let _ = link_sessions::clear_public_token(&state.db, now, &sid).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
struct HandoffQuery {
    endpoint: Option<String>,
}

/// Ends a handoff or callback in error: the session shows the error screen; the popup tells the modal.
async fn fail_in_popup(state: &AppState, s: &LinkSession, code: ExitCode) -> Response {
    if let Err(e) = link_sessions::set_step(&state.db, state.clock.now(), &s.id, step::ERROR, Some(code)).await {
        return internal(e);
    }
    let _ = audit::record(
        &state.db,
        state.clock.now(),
        AuditEntry {
            actor: "patient",
            action: "link.error",
            app_id: Some(&s.app_id),
            detail: Some(json!({"code": code.as_str()})),
            ..Default::default()
        },
    )
    .await;
    if s.host_origin.is_none() {
        return see_other(&session_url(&s.id));
    }
    popup_page(&s.options.language, Some(&s.nonce), Err(code))
}

async fn handoff(State(state): State<AppState>, Path(sid): Path<String>, Query(q): Query<HandoffQuery>) -> Response {
    let s = live!(state, sid);
    if !matches!(s.step.as_str(), step::SEARCH | step::CONNECT | step::PAYER | step::ERROR) {
        // Already authorized, ended, or consent not given yet: nothing to hand off.
        return see_other(&session_url(&sid));
    }
    match link_sessions::consent_given(&state.db, &sid).await {
        Ok(true) => {}
        Ok(false) => return see_other(&session_url(&sid)),
        Err(e) => return internal(e),
    }
    let endpoint_id = if s.endpoint_fixed { s.endpoint_id.clone() } else { q.endpoint.clone() };
    let Some(endpoint_id) = endpoint_id.filter(|e| uuid::Uuid::parse_str(e).is_ok()) else {
        return fail_in_popup(&state, &s, ExitCode::InvalidEndpoint).await;
    };
    let endpoint = match endpoints::get(&state.db, &endpoint_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return fail_in_popup(&state, &s, ExitCode::InvalidEndpoint).await,
        Err(e) => return internal(e),
    };
    if endpoint.mode != s.mode {
        return fail_in_popup(&state, &s, ExitCode::EndpointModeMismatch).await;
    }
    let now = state.clock.now();
    if let Err(e) = link_sessions::set_endpoint(&state.db, now, &sid, &endpoint.id).await {
        return internal(e);
    }
    let _ = audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "patient",
            action: "link.handoff",
            app_id: Some(&s.app_id),
            detail: Some(json!({"endpoint_id": endpoint.id})),
            ..Default::default()
        },
    )
    .await;
    match oauth::begin(&state, &sid, &endpoint, s.usage, &s.options.requested_resources).await {
        Ok(url) => {
            let mut resp = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&handoff_cookie(&state, &sid, 600)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(code) => fail_in_popup(&state, &s, code).await,
    }
}

/// Name of the cookie that ties the payer popup to its session.
const HANDOFF_COOKIE: &str = "link_handoff";

/// The popup's first-party cookie (set on our handoff, sent back on our callback, a top-level navigation):
/// it only lets a callback whose `state` is unknown (altered, replayed, expired) be reported to the session
/// that started it. Flow state itself stays in the database.
fn handoff_cookie(state: &AppState, sid: &str, max_age: i64) -> String {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("{HANDOFF_COOKIE}={sid}; Path=/link/callback; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

fn handoff_session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == HANDOFF_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.starts_with("ls_"))
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let params = CallbackParams {
        code: params.get("code").cloned(),
        state: params.get("state").cloned(),
        error: params.get("error").cloned(),
        error_description: params.get("error_description").cloned(),
    };
    match oauth::complete(&state, params).await {
        Ok(done) => {
            let s = match link_sessions::get(&state.db, &done.link_session_id).await {
                Ok(Some(s)) => s,
                Ok(None) => return internal(anyhow::anyhow!("callback for a missing link session")),
                Err(e) => return internal(e),
            };
            let now = state.clock.now();
            let token = tokens::issue(
                &state.db,
                now,
                TokenKind::Public,
                &s.app_id,
                Some(&done.authorization_id),
                Some(PUBLIC_TOKEN_TTL_SECS),
                json!({"link_session_id": s.id}),
            )
            .await;
            let token = match token {
                Ok(t) => t,
                Err(e) => return internal(e),
            };
            let next = if s.options.skip_syncing { step::SUCCESS } else { step::SYNCING };
            if let Err(e) = link_sessions::store_public_token(&state, &s.id, &token, next).await {
                return internal(e);
            }
            if let Err(e) = link_sessions::attach_consent(&state.db, &s.id, &done.authorization_id).await {
                tracing::error!(error = %e, "linking consent to authorization");
            }
            if s.host_origin.is_none() {
                return see_other(&session_url(&s.id));
            }
            popup_page(&s.options.language, Some(&s.nonce), Ok(()))
        }
        Err((Some(sid), code)) => match link_sessions::get(&state.db, &sid).await {
            Ok(Some(s)) => fail_in_popup(&state, &s, code).await,
            Ok(None) => popup_page("en", None, Err(code)),
            Err(e) => internal(e),
        },
        Err((None, code)) => {
            // Unknown `state`: report it to the session this popup was handed off from, if it still waits.
            if let Some(sid) = handoff_session_id(&headers) {
                if let Ok(Some(s)) = screen::live_session(&state, &sid).await {
                    if s.step == step::PAYER {
                        return fail_in_popup(&state, &s, code).await;
                    }
                }
            }
            let mut r = popup_page("en", None, Err(code));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    }
}

async fn status(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    let mut s = match screen::live_session(&state, &sid).await {
        Ok(Some(s)) => s,
        Ok(None) => return (StatusCode::NOT_FOUND, no_store, Json(json!({"step": "expired"}))).into_response(),
        Err(e) => return internal(e),
    };
    if let Err(e) = screen::refresh_step(&state, &mut s).await {
        return internal(e);
    }
    let token = if matches!(s.step.as_str(), step::SYNCING | step::SUCCESS | step::DONE) {
        link_sessions::public_token(&state, &s).map(|t| t.expose_secret().to_string())
    } else {
        None
    };
    let progress = match screen::progress(&state, &sid).await {
        Ok(p) => p.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>(),
        Err(_) => serde_json::Map::new(),
    };
    let body = json!({
        "step": s.step,
        "exitCode": s.exit_code.map(ExitCode::as_str),
        "publicToken": token,
        "progress": progress,
    });
    (no_store, Json(body)).into_response()
}

/// `GET /link/s/{sid}/finish`: the end of a hosted flow whose sync is done (its Continue button, or frame.js after
/// the success screen showed).
async fn finish(State(state): State<AppState>, Path(sid): Path<String>) -> Response {
    let s = live!(state, sid);
    if !matches!(s.step.as_str(), step::SUCCESS | step::DONE) || s.redirect_uri.is_none() {
        return see_other(&session_url(&sid));
    }
    finish_hosted(&state, &s).await
}

/// Ends a hosted flow whose payer authorized (syncing or success): the session is done, and the browser goes
/// to the `redirect_uri` with `public_token` and `state` (or, for `/link/auth`, a single-use `code`). Once the
/// token has been handed over (it is not kept), the session's own screen says so.
async fn finish_hosted(state: &AppState, s: &LinkSession) -> Response {
    let sid = &s.id;
    let Some(ru) = &s.redirect_uri else { return see_other(&session_url(sid)) };
    let Some(token) = link_sessions::public_token(state, s) else {
        return see_other(&session_url(sid));
    };
    let now = state.clock.now();
    let _ = link_sessions::advance(&state.db, now, sid, &s.step, step::DONE, None).await;
    let _ = link_sessions::clear_public_token(&state.db, now, sid).await;
    // Started by `GET /link/auth` (OAuth 2.0 redirect flow, PKCE): the client gets a single-use `code` for
    // `POST /link/token` instead of the `public_token`, which is never shown.
    let challenge: Option<String> = sqlx::query_scalar("SELECT code_challenge FROM link_sessions WHERE id = $1")
        .bind(sid)
        .fetch_optional(&state.db.pool)
        .await
        .ok()
        .flatten()
        .flatten();
    if challenge.is_some() {
        return match crate::server::surfaces::integrator_api::complete_redirect_flow(state, sid).await {
            Ok(url) => see_other(&url),
            Err(e) => {
                tracing::error!(error = %e, "completing the redirect flow failed");
                see_other(&session_url(sid))
            }
        };
    }
    let mut params = vec![("public_token", token.expose_secret())];
    if let Some(cs) = &s.client_state {
        params.push(("state", cs.as_str()));
    }
    see_other(&redirect_with(ru, &params))
}

// ---------------------------------------------------------------------------------------------------------
// Test integrator page
// ---------------------------------------------------------------------------------------------------------

/// A bare integrator page for end-to-end tests and manual trials: loads `/link.js`, opens Link with the options
/// given in its query string and logs every callback into `#log` and `window.__linkLog`; `onSyncing` also calls
/// `window.__onSyncing(token)` when a test defined it. Served only when the
/// sandbox payers are mounted (never with real payers only).
async fn test_page(State(state): State<AppState>, Extension(nonce): Extension<CspNonce>) -> Response {
    if !state.settings.sandbox {
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
  onSuccess: (t) => note('onSuccess', t),
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
if (q.has('skipExplainer')) opts.skipExplainer = q.get('skipExplainer') === 'true';
if (q.has('requestedResources')) opts.requestedResources = q.get('requestedResources').split(',');
if (q.has('language')) opts.language = q.get('language');
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
    axum::response::Html(html_page("en", "Link test page", &body)).into_response()
}
