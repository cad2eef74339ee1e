//! What every handler of the hosted Link flow answers with: the flow's error type ([`FlowError`], a plain page
//! for the patient, the cause only in the log), redirects between steps, and the live session a step acts on.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};

use crate::server::{
    state::AppState,
    store::link_sessions::{self, LinkSession},
};

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

/// A 303 to `to`.
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
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
