//! Where a session is, for the modal and the hosted flow: `GET /link/s/{sid}/status` (JSON the modal polls,
//! since a payer's Cross-Origin-Opener-Policy can sever `window.opener`) and `GET /link/s/{sid}/finish` (the
//! end of the hosted `redirect_uri` flow). Both carry the `public_token` (or the redirect flow's `code`), so
//! both require the session's binding: without it, `/status` answers 403 without a token and `/finish` the
//! "opened in another browser" page.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    Json,
};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkStep},
    server::{
        services::link_flow,
        state::AppState,
        store::link_sessions,
        surfaces::{
            binding,
            hosted_link::respond::{bound_or_refused, see_other, session_url, FlowResult, Sid},
        },
    },
};

/// `GET /link/s/{sid}/status` (binding: the `X-Link-Bind` header or the binder cookie) → `{step, exitCode,
/// publicToken, progress, endpointId, reused}` (`reused`: the plan's sign-in renewed an existing authorization); `404 {"step": "expired"}` for an unknown or expired session; `403 {"step": "unbound",
/// "exitCode": "BROWSER_MISMATCH", "publicToken": null}` without the binding.
pub async fn status(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap) -> FlowResult {
    let no_store = [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
    let Some(mut s) = link_flow::live_session(&state, &sid).await? else {
        return Ok((StatusCode::NOT_FOUND, no_store, Json(json!({"step": "expired"}))).into_response());
    };
    if !link_flow::is_bound(&s, binding::presented(&state, &headers, &sid, None)) {
        let body = json!({"step": "unbound", "exitCode": ExitCode::BrowserMismatch.as_str(), "publicToken": null});
        return Ok((StatusCode::FORBIDDEN, no_store, Json(body)).into_response());
    }
    link_flow::refresh_step(&state, &mut s).await?;
    let token = matches!(s.step, LinkStep::Syncing | LinkStep::Success | LinkStep::Done)
        .then(|| link_sessions::public_token(&state.cipher, &s).map(|t| t.expose_secret().to_string()))
        .flatten();
    let progress: serde_json::Map<_, _> =
        link_flow::sync_progress(&state, &s).await?.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let body = json!({
        "step": s.step,
        "exitCode": s.exit_code.map(ExitCode::as_str),
        "publicToken": token,
        "progress": progress,
        "endpointId": s.endpoint_id,
        "reused": s.authorization_reused,
    });
    Ok((no_store, Json(body)).into_response())
}

/// `GET /link/s/{sid}/finish` (binder cookie): the hosted flow's success, back to the app's `redirect_uri` with
/// the `public_token` (or the redirect flow's `code`) and the app's `state`.
pub async fn finish(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap) -> FlowResult {
    let s = match bound_or_refused(&state, &sid, &headers, None).await? {
        Ok(s) => s,
        Err(response) => return Ok(response),
    };
    if !matches!(s.step, LinkStep::Success | LinkStep::Done) {
        return Ok(see_other(&session_url(&sid)));
    }
    match link_flow::finish_hosted(&state, &s).await? {
        Some(url) => Ok(see_other(&url)),
        None => Ok(see_other(&session_url(&sid))),
    }
}
