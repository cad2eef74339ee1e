//! Signing in to the console with a one-time link, and out: `GET /console/sign-in?token` binds the link to this
//! browser and asks to confirm (a `POST`, which link previewers do not send), `POST /console/sign-in` spends the
//! link and starts the session, `POST /console/sign-out` ends it.

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use serde::Deserialize;
use serde_json::json;

use crate::server::{
    platform::tls::ClientIp,
    services::console::{self, Refused, CONSOLE_LINK_TTL_SECS, CONSOLE_SESSION_TTL_SECS},
    state::AppState,
    surfaces::console::{
        audit, cookie, detail, operator_of_form, render, same_origin, set_cookie, signed_out, ConsoleResult, BINDER_COOKIE,
        SESSION_COOKIE,
    },
};

/// The sign-in link's query, and the confirmation form.
#[derive(Debug, Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

/// The page that refuses a link, with why, after auditing it (unknown tokens are only logged: anyone can send
/// one).
async fn refuse(state: &AppState, headers: &HeaderMap, why: Refused, at: &str) -> ConsoleResult {
    if why == Refused::Unknown {
        tracing::info!(at, "console sign-in with an unknown link");
    } else {
        audit(state, headers, "console.sign_in_refused", None, json!({"reason": why.as_str(), "at": at})).await?;
    }
    let (title, text) = match why {
        Refused::Unknown => ("This sign-in link is not valid", "Check that you copied the whole link, or run `link-sdk console-link` for a new one."),
        Refused::Expired => ("This sign-in link has expired", "Sign-in links work for 10 minutes. Run `link-sdk console-link` for a new one."),
        Refused::Used => ("This sign-in link was already used", "Each link signs in once. Run `link-sdk console-link` for a new one."),
        Refused::OtherBrowser => (
            "This sign-in link was opened in another browser",
            "A link works only in the first browser that opens it. Run `link-sdk console-link` and open the new link here.",
        ),
    };
    let status = if why == Refused::Unknown { StatusCode::NOT_FOUND } else { StatusCode::FORBIDDEN };
    Ok((status, render::message_page(title, text)).into_response())
}

/// Counts a sign-in request from `client` under the token endpoints' rule (per client address): a 429 page with
/// `Retry-After` when over it. Sign-in links are 256-bit random, but guessing is not free either.
fn limit(state: &AppState, client: Option<Extension<ClientIp>>) -> Option<Response> {
    state.limits.token.check(client.map(|c| c.0 .0)).err().map(|limited| {
        let page = render::message_page("Too many attempts", "Wait a minute, then open the sign-in link again.");
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, page).into_response();
        limited.apply(&mut resp);
        resp
    })
}

/// `GET /console/sign-in?token=…`: binds the link to this browser (first opener only) and shows the button that
/// signs in.
pub async fn open(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    Query(q): Query<TokenParam>,
) -> ConsoleResult {
    if let Some(resp) = limit(&state, client) {
        return Ok(resp);
    }
    let token = q.token.unwrap_or_default();
    let now = state.clock.now();
    let opened = match console::open_link(&state.db, now, &token, cookie(&headers, BINDER_COOKIE)).await? {
        Ok(o) => o,
        Err(why) => return refuse(&state, &headers, why, "open").await,
    };
    let mut resp = render::sign_in_page(&token).into_response();
    if let Some(binder) = &opened.new_binder {
        audit(&state, &headers, "console.link_opened", None, json!({"sign_in": opened.id})).await?;
        let c = set_cookie(&state, BINDER_COOKIE, binder, console::SIGN_IN_PATH, CONSOLE_LINK_TTL_SECS);
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// `POST /console/sign-in` (`token`): spends the link for the browser it is bound to and starts the console
/// session.
pub async fn sign_in(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    Form(f): Form<TokenParam>,
) -> ConsoleResult {
    if let Some(resp) = limit(&state, client) {
        return Ok(resp);
    }
    if !same_origin(&state, &headers) {
        return Ok(signed_out());
    }
    let token = f.token.unwrap_or_default();
    let now = state.clock.now();
    let started = match console::sign_in(&state.db, now, &token, cookie(&headers, BINDER_COOKIE)).await? {
        Ok(s) => s,
        Err(why) => return refuse(&state, &headers, why, "sign_in").await,
    };
    audit(&state, &headers, "console.signed_in", None, json!({"console_session": started.id, "expires_at": started.expires_at}))
        .await?;
    let mut resp = Redirect::to("/console").into_response();
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, &started.token, "/console", CONSOLE_SESSION_TTL_SECS));
    h.append(header::SET_COOKIE, set_cookie(&state, BINDER_COOKIE, "", console::SIGN_IN_PATH, 0));
    Ok(resp)
}

/// The sign-out form (`csrf`).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /console/sign-out`: ends the session and forgets its cookie.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> ConsoleResult {
    let Some(op) = operator_of_form(&state, &headers, f.csrf.as_deref()).await? else { return Ok(signed_out()) };
    crate::server::store::console_sign_ins::end(&state.db, state.clock.now(), &op.session_id).await?;
    audit(&state, &headers, "console.signed_out", None, detail(&op, json!({}))).await?;
    let mut resp = (StatusCode::OK, render::message_page("Signed out", "Run `link-sdk console-link` to sign in again.")).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", "/console", 0));
    Ok(resp)
}

/// Form posts that carry only the session's token.
pub type CsrfOnly = CsrfForm;

impl CsrfForm {
    /// The token sent.
    pub fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}
