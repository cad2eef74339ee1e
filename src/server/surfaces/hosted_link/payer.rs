//! The patient's trip to the payer and back: the hand-off (`/link/s/{sid}/handoff?endpoint`) starts SMART App
//! Launch there; `GET /link/callback` is the payer's redirect back, which mints the `public_token`.
//!
//! The hand-off requires the session's binding: `POST` with the `bind` field (the modal: frame.js opens the named
//! payer window in the click handler and submits a form into it, so a partitioned cookie is not needed), or
//! `GET` with the binder cookie (the top-level hosted flow's plain link, which works without JavaScript). It sets
//! the payer window's own first-party hand-off cookie (see `surfaces::binding`), which the callback requires.
//! A `POST` answers with a short page that moves on to the payer (a form's CSP `form-action` would block a
//! redirect to the payer's origin); a `GET` redirects there.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep},
    i18n,
    server::{
        platform::http::COOP_UNSAFE_NONE,
        services::{
            insights::{self, payer_text, NewEvent},
            link_flow,
            payer::oauth::CallbackParams,
        },
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            consents, endpoints,
            link_sessions::{self, LinkSession},
            payer_auth_requests,
        },
        surfaces::{
            binding::{self, form_field, BIND_FIELD},
            hosted_link::{
                pages::{esc, html_page, other_browser_page, popup_page},
                respond::{bound_or_refused, see_other, session_url, FlowResult, PageQuery, Sid},
            },
        },
    },
};

/// The handoff's query: the chosen endpoint (ignored when the integrator fixed it).
#[derive(Debug, Deserialize)]
pub struct HandoffQuery {
    endpoint: Option<String>,
}

/// Ends a handoff or callback in error: the session shows the error screen; the popup tells the modal. `payer`
/// is what the payer said (its OAuth `error` and `error_description`), kept with the `ERROR` event.
async fn fail_in_popup(state: &AppState, s: &LinkSession, code: ExitCode, payer: &PayerSaid) -> FlowResult {
    let now = state.clock.now();
    link_sessions::set_step(&state.db, now, &s.id, LinkStep::Error, Some(code)).await?;
    let failed = LinkSession { step: LinkStep::Error, exit_code: Some(code), ..s.clone() };
    let mut detail = serde_json::Map::new();
    for (k, v) in [("payer_error", &payer.error), ("payer_error_description", &payer.description)] {
        if let Some(v) = v.as_deref() {
            detail.insert(k.into(), payer_text(v).into());
        }
    }
    insights::note(&state.db, now, &failed, NewEvent::new(LinkEventName::Error, s.step).code(code).detail(detail.into())).await;
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

/// What a payer's callback said of its failure (RFC 6749 §4.1.2.1 `error`, `error_description`): untrusted text,
/// bounded and kept as plain text ([`payer_text`]).
#[derive(Debug, Default)]
struct PayerSaid {
    error: Option<String>,
    description: Option<String>,
}

/// `GET /link/s/{sid}/handoff?endpoint` (the hosted flow's link; binder cookie): records the chosen plan and
/// redirects to its authorize URL.
pub async fn handoff(
    State(state): State<AppState>,
    Sid(sid): Sid,
    headers: HeaderMap,
    PageQuery(q): PageQuery<HandoffQuery>,
) -> FlowResult {
    let s = match bound_or_refused(&state, &sid, &headers, None).await? {
        Ok(s) => s,
        Err(response) => return Ok(response),
    };
    start_handoff(&state, s, q.endpoint, false).await.map(in_payer_window)
}

/// `POST /link/s/{sid}/handoff` (`endpoint`, `bind`), submitted by the modal into the payer window it just opened:
/// records the chosen plan and moves that window on to the payer's authorize URL.
pub async fn handoff_post(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let field = form_field(&body, BIND_FIELD);
    let s = match bound_or_refused(&state, &sid, &headers, field.as_deref()).await? {
        Ok(s) => s,
        Err(response) => return Ok(in_payer_window(response)),
    };
    start_handoff(&state, s, form_field(&body, "endpoint"), true).await.map(in_payer_window)
}

/// A page shown in the payer window keeps its opener (the Link modal): `Cross-Origin-Opener-Policy: unsafe-none`
/// instead of the default `same-origin` (which would cut the window off from the modal).
fn in_payer_window(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::HeaderName::from_static("cross-origin-opener-policy"), COOP_UNSAFE_NONE);
    resp
}

async fn start_handoff(state: &AppState, s: LinkSession, endpoint: Option<String>, posted: bool) -> FlowResult {
    let sid = s.id.clone();
    // Already authorized, ended, or consent not given yet: nothing to hand off.
    let ready = matches!(s.step, LinkStep::Search | LinkStep::Connect | LinkStep::Payer | LinkStep::Error);
    if !ready || !consents::given_in_session(&state.db, &sid).await? {
        return Ok(see_other(&session_url(&sid)));
    }
    let endpoint_id = if s.endpoint_fixed { s.endpoint_id.clone() } else { endpoint };
    let Some(endpoint_id) = endpoint_id.filter(|e| uuid::Uuid::parse_str(e).is_ok()) else {
        return fail_in_popup(state, &s, ExitCode::InvalidEndpoint, &PayerSaid::default()).await;
    };
    let Some(endpoint) = endpoints::get(&state.db, &endpoint_id).await? else {
        return fail_in_popup(state, &s, ExitCode::InvalidEndpoint, &PayerSaid::default()).await;
    };
    if endpoint.mode != s.mode {
        return fail_in_popup(state, &s, ExitCode::EndpointModeMismatch, &PayerSaid::default()).await;
    }
    let now = state.clock.now();
    let entry = AuditEntry {
        actor: "patient",
        action: "link.handoff",
        app_id: Some(&s.app_id),
        detail: Some(json!({"endpoint_id": endpoint.id})),
        ..Default::default()
    };
    audit::record(&state.db.pool, now, entry).await?;
    match link_flow::begin_handoff(state, &s, &endpoint).await {
        Ok(handoff) => {
            let mut resp = if posted {
                to_payer_page(&s.options.language, &endpoint.name, &handoff.url)
            } else {
                Redirect::to(&handoff.url).into_response()
            };
            if let Some(v) = binding::handoff_cookie(state, &handoff.binder) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(resp)
        }
        Err(code) => fail_in_popup(state, &s, code, &PayerSaid::default()).await,
    }
}

/// The payer window's page after a posted hand-off: moves on to `url` at once (`<meta http-equiv="refresh">`,
/// no script needed), with a link in case the browser does not.
fn to_payer_page(lang: &str, plan: &str, url: &str) -> Response {
    let m = i18n::msgs(lang);
    let body = format!(
        "<main class=\"page narrow\" id=\"main\"><div class=\"card\"><h1>{title}</h1>\
         <p><a class=\"button primary block\" href=\"{url}\" rel=\"external\">{go}</a></p></div></main>",
        title = esc(m.payer_title),
        url = esc(url),
        go = esc(&m.connect_to.replace("{plan}", plan)),
    );
    let page = html_page(lang, m.payer_title, &body).replacen(
        "<head>",
        &format!("<head><meta http-equiv=\"refresh\" content=\"0;url={}\">", esc(url)),
        1,
    );
    axum::response::Html(page).into_response()
}

/// `GET /link/callback`: the payer's redirect (RFC 6749 §4.1.2), answered only for the payer window that was
/// handed off (its hand-off cookie); any other browser gets the "opened in another browser" page and nothing is
/// created.
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
        iss: params.get("iss").cloned(),
    };
    let said = PayerSaid { error: params.error.clone(), description: params.error_description.clone() };
    let binders = binding::handoff_binders(&state, &headers);
    let mut resp = match link_flow::payer_callback(&state, params, &binders).await {
        Ok(done) => {
            let s = link_sessions::get(&state.db, &done.link_session_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("callback for a missing link session"))?;
            if s.host_origin.is_none() {
                see_other(&session_url(&s.id))
            } else {
                popup_page(&s.options.language, Some(&s.nonce), Ok(()))
            }
        }
        Err((sid, ExitCode::BrowserMismatch)) => {
            let lang = match sid {
                Some(sid) => link_sessions::get(&state.db, &sid).await?.map(|s| s.options.language),
                None => None,
            };
            other_browser_page(lang.as_deref().unwrap_or("en"), None, "")
        }
        // Shown on the session only while it still waits for this payer (an ended or expired one stays as it is).
        Err((Some(sid), code)) => match link_flow::live_session(&state, &sid).await? {
            Some(s) if s.step == LinkStep::Payer => fail_in_popup(&state, &s, code, &said).await?,
            Some(s) => popup_page(&s.options.language, None, Err(code)),
            None => popup_page("en", None, Err(code)),
        },
        Err((None, code)) => unknown_state(&state, &binders, code).await?,
    };
    for v in binding::clear_handoff_cookies(&state, &headers) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(in_payer_window(resp))
}

/// A callback whose `state` is unknown (altered, replayed, expired): reported to the session this payer window
/// was handed off from (found by its hand-off cookie), if that session still waits at the payer.
async fn unknown_state(state: &AppState, binders: &[&str], code: ExitCode) -> FlowResult {
    for b in binders.iter().filter(|b| !b.is_empty() && b.len() <= 128) {
        if let Some(sid) = payer_auth_requests::session_of_binder(&state.db, b).await? {
            if let Some(s) = link_flow::live_session(state, &sid).await? {
                if s.step == LinkStep::Payer {
                    return fail_in_popup(state, &s, code, &PayerSaid::default()).await;
                }
            }
        }
    }
    let mut r = popup_page("en", None, Err(code));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    Ok(r)
}
