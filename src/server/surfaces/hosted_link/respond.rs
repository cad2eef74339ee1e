//! What every handler of the hosted Link flow answers with: the flow's error type ([`FlowError`], a plain page
//! for the patient, the cause only in the log), redirects between steps, and the live session a step acts on.

use axum::{
    extract::{FromRequestParts, Path, Query},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use crate::server::{
    services::link_flow,
    state::AppState,
    store::link_sessions::{self, LinkSession},
    surfaces::{
        binding,
        hosted_link::pages::{other_browser_page, plain_page},
    },
};

/// The `{sid}` of a `/link/s/{sid}/…` route, checked against the session-id format before anything uses it
/// (a query, a header, a log): anything else is answered 404 at once.
#[derive(Debug)]
pub struct Sid(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Sid {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(sid)) if link_sessions::valid_session_id(&sid) => Ok(Sid(sid)),
            _ => {
                let m = crate::i18n::msgs("en");
                Err((StatusCode::NOT_FOUND, plain_page("en", m.expired_title, m.expired_intro)).into_response())
            }
        }
    }
}

/// The query of a hosted-flow page, deserialized into `T`. A query that does not fit `T` (a repeated or
/// malformed parameter) is answered 400 with a plain "this link is not valid" page in the browser's language,
/// never with the deserializer's text.
#[derive(Debug)]
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(PageQuery(q)),
            Err(rejection) => {
                tracing::info!(error = %rejection.body_text().escape_debug(), "link page: unreadable query");
                let lang = crate::i18n::choose(None, parts.headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
                let m = crate::i18n::msgs(lang);
                Err((StatusCode::BAD_REQUEST, plain_page(lang, m.invalid_link_title, m.expired_intro)).into_response())
            }
        }
    }
}

/// A failure of ours in the hosted flow: answered 500 with a short, fixed text for the patient; the error
/// (with its causes) goes only to the log, inside the request's span (which carries its request id).
#[derive(Debug)]
pub struct FlowError(anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for FlowError {
    fn from(e: E) -> Self {
        FlowError(e.into())
    }
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        tracing::error!(error = %format!("{:#}", self.0), "link flow");
        (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Go back to the app and try again.").into_response()
    }
}

/// What a hosted-flow handler returns.
pub type FlowResult = Result<Response, FlowError>;

/// A 303 to `to` (a target that cannot be a header value is a 404: it came from a request, never from us).
pub fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The screen of session `sid`.
pub fn session_url(sid: &str) -> String {
    format!("/link/s/{sid}")
}

/// A session that exists and has not expired (finished sessions stay readable until expiry).
///
/// # Errors
/// Database errors.
pub async fn live_session(state: &AppState, sid: &str) -> anyhow::Result<Option<LinkSession>> {
    Ok(link_sessions::get(&state.db, sid).await?.filter(|s| s.expires_at > state.clock.now()))
}

/// The live session `sid` a step acts on, or the response to send instead (its screen, which shows that it
/// expired).
///
/// # Errors
/// Database errors.
pub async fn live_or_screen(state: &AppState, sid: &str) -> Result<Result<LinkSession, Response>, FlowError> {
    Ok(live_session(state, sid).await?.ok_or_else(|| see_other(&session_url(sid))))
}

/// The live session `sid` a step acts on when the request comes from the browser it is bound to (its binder
/// cookie, `X-Link-Bind` header or `bind` form `field`), or the response to send instead: its screen when it is
/// unknown or expired, the "opened in another browser" page (403) when the binding is missing or wrong.
///
/// # Errors
/// Database errors.
pub async fn bound_or_refused(
    state: &AppState,
    sid: &str,
    headers: &HeaderMap,
    field: Option<&str>,
) -> Result<Result<LinkSession, Response>, FlowError> {
    let s = match live_or_screen(state, sid).await? {
        Ok(s) => s,
        Err(screen) => return Ok(Err(screen)),
    };
    if link_flow::is_bound(&s, binding::presented(state, headers, sid, field)) {
        return Ok(Ok(s));
    }
    tracing::warn!(step = s.step.as_str(), "a Link step without its session's binding: refused (another browser?)");
    Ok(Err(other_browser_page(&s.options.language, s.host_origin.as_deref(), &s.nonce)))
}
