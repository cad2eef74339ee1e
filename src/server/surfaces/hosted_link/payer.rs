//! The patient's trip to the payer and back: `GET /link/s/{sid}/handoff?endpoint` (opened in the popup, or the
//! tab in the hosted flow) starts SMART App Launch there; `GET /link/callback` is the payer's redirect back,
//! which mints the `public_token`.
//!
//! The handoff sets a first-party, HttpOnly cookie on the popup (path `/link/callback`, 10 min). It carries no
//! flow state; it only lets a callback whose `state` is unknown (altered, replayed, expired) end the session
//! that started it with `INVALID_STATE` instead of leaving the modal waiting.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkStep},
    server::{
        services::{link_flow, payer::oauth::CallbackParams},
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            consents, endpoints,
            link_sessions::{self, LinkSession},
        },
        surfaces::hosted_link::{
            pages::popup_page,
            respond::{live_or_screen, live_session, see_other, session_url, FlowResult},
        },
    },
};

/// Name of the cookie that ties the payer popup to its session.
const HANDOFF_COOKIE: &str = "link_handoff";
/// Lifetime of that cookie, seconds (the payer authorization request's).
const HANDOFF_COOKIE_SECS: i64 = 600;

/// The handoff's query: the chosen endpoint (ignored when the integrator fixed it).
#[derive(Debug, Deserialize)]
pub struct HandoffQuery {
    endpoint: Option<String>,
}

/// Ends a handoff or callback in error: the session shows the error screen; the popup tells the modal.
async fn fail_in_popup(state: &AppState, s: &LinkSession, code: ExitCode) -> FlowResult {
    let now = state.clock.now();
    link_sessions::set_step(&state.db, now, &s.id, LinkStep::Error, Some(code)).await?;
    let entry = AuditEntry {
        actor: "patient",
        action: "link.error",
        app_id: Some(&s.app_id),
        detail: Some(json!({"code": code.as_str()})),
        ..Default::default()
    };
    audit::record(&state.db.pool, now, entry).await?;
    if s.host_origin.is_none() {
        return Ok(see_other(&session_url(&s.id)));
    }
    Ok(popup_page(&s.options.language, Some(&s.nonce), Err(code)))
}

/// `GET /link/s/{sid}/handoff?endpoint`: records the chosen plan and redirects to its authorize URL.
pub async fn handoff(State(state): State<AppState>, Path(sid): Path<String>, Query(q): Query<HandoffQuery>) -> FlowResult {
    let s = match live_or_screen(&state, &sid).await? {
        Ok(s) => s,
        Err(screen) => return Ok(screen),
    };
    // Already authorized, ended, or consent not given yet: nothing to hand off.
    let ready = matches!(s.step, LinkStep::Search | LinkStep::Connect | LinkStep::Payer | LinkStep::Error);
    if !ready || !consents::given_in_session(&state.db, &sid).await? {
        return Ok(see_other(&session_url(&sid)));
    }
    let endpoint_id = if s.endpoint_fixed { s.endpoint_id.clone() } else { q.endpoint.clone() };
    let Some(endpoint_id) = endpoint_id.filter(|e| uuid::Uuid::parse_str(e).is_ok()) else {
        return fail_in_popup(&state, &s, ExitCode::InvalidEndpoint).await;
    };
    let Some(endpoint) = endpoints::get(&state.db, &endpoint_id).await? else {
        return fail_in_popup(&state, &s, ExitCode::InvalidEndpoint).await;
    };
    if endpoint.mode != s.mode {
        return fail_in_popup(&state, &s, ExitCode::EndpointModeMismatch).await;
    }
    let now = state.clock.now();
    link_sessions::set_endpoint(&state.db, now, &sid, &endpoint.id).await?;
    let entry = AuditEntry {
        actor: "patient",
        action: "link.handoff",
        app_id: Some(&s.app_id),
        detail: Some(json!({"endpoint_id": endpoint.id})),
        ..Default::default()
    };
    audit::record(&state.db.pool, now, entry).await?;
    match link_flow::begin_handoff(&state, &s, &endpoint).await {
        Ok(url) => {
            let mut resp = Redirect::to(&url).into_response();
            if let Ok(v) = HeaderValue::from_str(&handoff_cookie(&state, &sid, HANDOFF_COOKIE_SECS)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(code) => fail_in_popup(&state, &s, code).await,
    }
}

/// The popup's first-party cookie (set on our handoff, sent back on our callback, a top-level navigation).
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

/// `GET /link/callback`: the payer's redirect (RFC 6749 §4.1.2).
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> FlowResult {
    let params = CallbackParams {
        code: params.get("code").cloned(),
        state: params.get("state").cloned(),
        error: params.get("error").cloned(),
        error_description: params.get("error_description").cloned(),
    };
    match link_flow::payer_callback(&state, params).await {
        Ok(done) => {
            let s = link_sessions::get(&state.db, &done.link_session_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("callback for a missing link session"))?;
            link_flow::mint_public_token(&state, &s, &done.authorization_id).await?;
            if s.host_origin.is_none() {
                return Ok(see_other(&session_url(&s.id)));
            }
            Ok(popup_page(&s.options.language, Some(&s.nonce), Ok(())))
        }
        Err((Some(sid), code)) => match link_sessions::get(&state.db, &sid).await? {
            Some(s) => fail_in_popup(&state, &s, code).await,
            None => Ok(popup_page("en", None, Err(code))),
        },
        Err((None, code)) => {
            // Unknown `state`: report it to the session this popup was handed off from, if it still waits.
            if let Some(sid) = handoff_session_id(&headers) {
                if let Some(s) = live_session(&state, &sid).await? {
                    if s.step == LinkStep::Payer {
                        return fail_in_popup(&state, &s, code).await;
                    }
                }
            }
            let mut r = popup_page("en", None, Err(code));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            Ok(r)
        }
    }
}
