//! The operator console (`/console`): server-rendered HTML that works without JavaScript, for the people who run
//! this server. It shows the Link funnel (an inline SVG chart with a table beside it), the endpoints with their
//! setup status and health, recent failures by exit code with the payer's error text, and the apps with the
//! health of their webhook deliveries. It is read-only except for two actions: disabling an endpoint and giving a
//! dead webhook delivery another attempt.
//!
//! Access (rules in `services::console`): a one-time link from `link-sdk console-link`, bound to the first
//! browser that opens it, starts a console session held in an HttpOnly, `SameSite=Strict` cookie scoped to
//! `/console`. Every form also carries a token derived from that session (checked in constant time) and the
//! request's `Origin`, when sent, must be this server. Every sign-in, refusal, view and action is audited
//! (`console.*` actions, actor `operator`). The pages get the server's strict CSP (no inline script or style),
//! `frame-ancestors 'none'` and `Cache-Control: no-store`.
//!
//! Routes: `GET /console`, `GET|POST /console/sign-in`, `POST /console/sign-out`,
//! `POST /console/endpoints/{id}/disable`, `POST /console/deliveries/{event_id}/retry`, `GET /console/console.css`.

mod actions;
mod overview;
mod render;
mod sign_in;

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::server::{
    platform::{crypto, http::request_cookies, telemetry::request_id},
    services::console,
    state::AppState,
    store::audit::{self, AuditEntry},
};

/// The console session's cookie (path `/console`).
const SESSION_COOKIE: &str = "link_console";
/// The cookie that binds a sign-in link to the browser that opened it (path `/console/sign-in`).
const BINDER_COOKIE: &str = "link_console_bind";

/// Routes of the console, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(page))
        .route(console::SIGN_IN_PATH, get(sign_in::open).post(sign_in::sign_in))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/endpoints/{id}/disable", post(actions::disable_endpoint))
        .route("/console/deliveries/{event_id}/retry", post(actions::retry_delivery))
        .route("/console/console.css", get(stylesheet))
}

/// `GET /console?since&app&endpoint&notice`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<overview::ConsoleQuery>) -> ConsoleResult {
    let Some(op) = operator(&state, &headers).await? else { return Ok(signed_out()) };
    let view = overview::load(&state, q, op.csrf.clone()).await?;
    let seen = json!({"since": view.period, "app": view.app, "endpoint": view.endpoint});
    audit(&state, &headers, "console.viewed", None, detail(&op, seen)).await?;
    Ok(render::console_page(&view).into_response())
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

/// A signed-in operator: the console session (its id names it in the audit trail) and the form token of its pages.
pub struct Operator {
    /// The sign-in row id.
    pub session_id: String,
    /// The token every form of the session carries (derived from the session cookie, never stored).
    pub csrf: String,
}

/// A cookie's value from the request's `Cookie` headers (the first of that name).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    request_cookies(headers).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, `SameSite=Strict`, `Secure` when the server is reached over https.
fn set_cookie(state: &AppState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The form token of a console session: SHA-256 of the session token under a fixed label, hex.
fn csrf_of(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("link-sdk console form:{session_token}").as_bytes()))
}

/// The signed-in operator of this request, if its session cookie is live.
///
/// # Errors
/// Database errors.
pub async fn operator(state: &AppState, headers: &HeaderMap) -> anyhow::Result<Option<Operator>> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    Ok(console::session(&state.db, state.clock.now(), token)
        .await?
        .map(|session_id| Operator { session_id, csrf: csrf_of(token) }))
}

/// Whether a form post comes from a page of this server. Browsers that send Fetch Metadata say so
/// (`Sec-Fetch-Site: same-origin`); otherwise the `Origin` header, when sent, must be ours. (Our pages are
/// `Referrer-Policy: no-referrer`, so their own posts may carry `Origin: null`: that alone proves nothing.)
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let value = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return site == "same-origin";
    }
    match value(header::ORIGIN.as_str()) {
        Some(o) => o == &*state.public_url,
        None => true,
    }
}

/// The operator of a form post: a live session, a same-origin request and the session's form token.
///
/// # Errors
/// Database errors.
pub async fn operator_of_form(state: &AppState, headers: &HeaderMap, csrf: Option<&str>) -> anyhow::Result<Option<Operator>> {
    if !same_origin(state, headers) {
        return Ok(None);
    }
    let Some(op) = operator(state, headers).await? else { return Ok(None) };
    let sent = csrf.unwrap_or_default();
    Ok(crypto::ct_eq(sent.as_bytes(), op.csrf.as_bytes()).then_some(op))
}

/// Writes a `console.*` audit record for this request.
///
/// # Errors
/// Database errors (the caller fails the request: an action that cannot be audited does not happen).
pub async fn audit(state: &AppState, headers: &HeaderMap, action: &str, app_id: Option<&str>, detail: Value) -> anyhow::Result<()> {
    let rid = request_id(headers);
    let entry = AuditEntry { actor: "operator", action, app_id, authorization_id: None, request_id: rid.as_deref(), detail: Some(detail) };
    audit::record(&state.db.pool, state.clock.now(), entry).await
}

/// A console failure of ours: a plain 500 page, the cause only in the log.
#[derive(Debug)]
pub struct ConsoleError(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for ConsoleError {
    fn from(e: E) -> Self {
        ConsoleError(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        tracing::error!(error = %format!("{:#}", self.0), "console");
        let page = render::message_page("Something went wrong", "The console could not do that. Try again; the log has the details.");
        (StatusCode::INTERNAL_SERVER_ERROR, page).into_response()
    }
}

/// What a console handler returns.
pub type ConsoleResult = Result<Response, ConsoleError>;

/// The answer to a request without a live console session (or a form without its token).
fn signed_out() -> Response {
    let page = render::message_page(
        "Sign in to the console",
        "Run `link-sdk console-link` on the server and open the link it prints in this browser.",
    );
    (StatusCode::UNAUTHORIZED, page).into_response()
}

/// `{"console_session": id}` and more, for audit details.
fn detail(op: &Operator, more: Value) -> Value {
    let mut d = json!({"console_session": op.session_id});
    if let (Some(o), Value::Object(m)) = (d.as_object_mut(), more) {
        o.extend(m);
    }
    d
}
