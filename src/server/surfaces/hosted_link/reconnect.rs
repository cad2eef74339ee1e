//! `GET /link/h/{token}`: a hosted (re-connect) link opened in a browser (top-level: a phone's browser or
//! SFSafariViewController). The first open starts the Link session and sends the browser to its first screen with
//! the session's binder cookie; the same browser reopening it resumes that session; any other open gets a plain
//! page (already used, expired, not valid) in the patient's language: `?language=`, else (in the browser the link's
//! session is bound to) the language chosen there, else the browser's `Accept-Language`. The rules are
//! `services::hosted_links`.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use serde::Deserialize;

use crate::{
    i18n,
    server::{
        platform::tls::ClientIp,
        services::{
            hosted_links::{self, Opened},
            link_flow,
        },
        state::AppState,
        store::link_sessions::LinkSession,
        surfaces::{
            binding,
            hosted_link::{
                pages::plain_page,
                respond::{see_other, session_url, FlowResult, PageQuery},
            },
        },
    },
};

/// The route (axum syntax).
pub const PATH: &str = "/link/h/{token}";

/// Query of a hosted link: an optional `language` (`en`, `es`, `ko`) for its pages.
#[derive(Debug, Default, Deserialize)]
pub struct ReconnectQuery {
    language: Option<String>,
}

/// `GET /link/h/{token}`.
pub async fn open(
    State(state): State<AppState>,
    Path(token): Path<String>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    PageQuery(q): PageQuery<ReconnectQuery>,
) -> FlowResult {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
    let asked = q.language.as_deref().and_then(i18n::shipped);
    let lang = i18n::choose(asked, accept);
    // Opens per client address, like every other start of a Link session.
    if let Err(limited) = state.limits.sessions.check(client.map(|c| c.0 .0)) {
        let m = i18n::msgs(lang);
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, plain_page(lang, m.rate_limited_title, m.rate_limited_intro)).into_response();
        limited.apply(&mut resp);
        return Ok(resp);
    }
    let bound = |s: &LinkSession| link_flow::is_bound(s, binding::presented(&state, &headers, &s.id, None));
    let opened = hosted_links::open(&state, &token, lang, bound).await?;
    Ok(match opened {
        Opened::Started { sid, binder } => {
            let mut resp = see_other(&session_url(&sid));
            if let Some(v) = binding::binder_cookie(&state, &sid, &binder, false) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Opened::Resumed { sid } => see_other(&session_url(&sid)),
        Opened::Used { language } => {
            tracing::info!("a hosted link opened again after its first open (another browser, or finished): refused");
            let lang = asked.or_else(|| language.as_deref().and_then(i18n::shipped)).unwrap_or(lang);
            let m = i18n::msgs(lang);
            page(StatusCode::GONE, lang, m.hosted_used_title, m.hosted_used_intro)
        }
        Opened::Expired => {
            let m = i18n::msgs(lang);
            page(StatusCode::GONE, lang, m.expired_title, m.hosted_expired_intro)
        }
        Opened::Unknown => {
            let m = i18n::msgs(lang);
            page(StatusCode::NOT_FOUND, lang, m.invalid_link_title, m.hosted_expired_intro)
        }
    })
}

/// A plain page (no action, never framed: the default CSP's `frame-ancestors 'none'`) with `status`.
fn page(status: StatusCode, lang: &str, title: &str, text: &str) -> Response {
    (status, plain_page(lang, title, text)).into_response()
}
