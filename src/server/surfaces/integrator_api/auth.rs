//! `GET /link/auth`: the OAuth 2.0 authorization endpoint of the redirect flow (RFC 6749 §4.1.1, PKCE `S256`
//! required, RFC 7636): validates the client's request, then runs the hosted Link flow, which ends at the
//! client's `redirect_uri` with a single-use `code` for `POST /link/token`.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension,
};
use secrecy::SecretString;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use crate::{
    domain::{Mode, Usage},
    server::{
        platform::{crypto, tls::ClientIp},
        services::{insights, link_flow},
        state::AppState,
        store::{apps, endpoints, link_sessions},
        surfaces::binding,
    },
};

// GET /link/auth (redirect flow)
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/auth`: the Link flow as an OAuth 2.0 authorization endpoint (RFC 6749 §4.1.1 + RFC 7636).
/// Parameters: `response_type=code`, `client_id` (publishable key), `redirect_uri` (exact match with the
/// app's list), `code_challenge` + `code_challenge_method=S256`, `state`, `flexpa_external_id`, optional
/// `flexpa_endpoint_id` and `usage` (default `ONE_TIME`). Errors before the `redirect_uri` is trusted are a
/// 400 page; after, a redirect with `error` and `state` (§4.1.2.1).
pub async fn auth(
    State(state): State<AppState>,
    address: Option<Extension<ClientIp>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // Each request starts a Link session: limited per client address like `GET /link`.
    if let Err(limited) = state.limits.sessions.check(address.map(|c| c.0 .0)) {
        let mut resp = "too many Link sessions from this address: retry later".into_response();
        limited.apply(&mut resp);
        return resp;
    }
    let (app, mode, client) = match check_client(&state, &q).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let request = match check_request(&state, &q, mode).await {
        Ok(r) => r,
        Err((error, description)) => return client.error(error, description),
    };
    let (binder, binder_hash) = link_flow::new_binder();
    let session_id = match create_session(&state, &app, mode, &client, &request, &binder_hash).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: creating the session");
            return client.error("server_error", "internal error");
        }
    };
    // Into the hosted Link screens, bound to this browser (a first-party cookie); their end
    // (`/link/s/{sid}/finish`) gives sessions that carry a code_challenge their authorization code
    // (`services::link_flow::redirect_flow_code`).
    bound_redirect(&state, &session_id, &binder)
}

/// The redirect into session `sid`'s first screen, handing its binder to this browser.
fn bound_redirect(state: &AppState, sid: &str, binder: &SecretString) -> Response {
    let mut resp = Redirect::to(&format!("/link/s/{sid}")).into_response();
    if let Some(v) = binding::binder_cookie(state, sid, binder, false) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// A query parameter; an empty value counts as absent.
fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A 400 page with `message`: the answer while the `redirect_uri` is not trusted yet.
fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, message.to_string()).into_response()
}

/// Where the client waits for the answer: its registered `redirect_uri` and its `state`.
struct ClientRedirect<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
}

impl ClientRedirect<'_> {
    /// A redirect to the client with `error`, `error_description` and `state` (RFC 6749 §4.1.2.1).
    fn error(&self, error: &str, description: &str) -> Response {
        let mut u = match url::Url::parse(self.redirect_uri) {
            Ok(u) => u,
            Err(_) => return bad_request("redirect_uri is not a URL"),
        };
        {
            let mut qp = u.query_pairs_mut();
            qp.append_pair("error", error).append_pair("error_description", description);
            if let Some(s) = self.state {
                qp.append_pair("state", s);
            }
        }
        Redirect::to(u.as_str()).into_response()
    }
}

/// Identifies the client (`client_id` is a publishable key, which also gives the mode) and trusts its
/// `redirect_uri` only when registered for the app byte for byte; until then every error is a 400 page.
async fn check_client<'a>(
    state: &AppState,
    q: &'a HashMap<String, String>,
) -> Result<(apps::App, Mode, ClientRedirect<'a>), Response> {
    let Some(client_id) = param(q, "client_id") else { return Err(bad_request("client_id is required")) };
    let (app, mode) = match apps::by_publishable_key(&state.db, client_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return Err(bad_request("unknown client_id")),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: app lookup");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response());
        }
    };
    let Some(redirect_uri) = param(q, "redirect_uri") else { return Err(bad_request("redirect_uri is required")) };
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(bad_request("redirect_uri is not registered for this application"));
    }
    Ok((app, mode, ClientRedirect { redirect_uri, state: param(q, "state") }))
}

/// The parts of a valid authorization request the Link session keeps.
struct AuthRequest<'a> {
    code_challenge: &'a str,
    external_id: &'a str,
    usage: Usage,
    endpoint_id: Option<&'a str>,
}

/// Validates the rest of the request (`response_type`, PKCE `S256`, `flexpa_external_id`, `usage`, an
/// endpoint of the app's mode). `Err` is the `error` and `error_description` to send the client.
async fn check_request<'a>(
    state: &AppState,
    q: &'a HashMap<String, String>,
    mode: Mode,
) -> Result<AuthRequest<'a>, (&'static str, &'static str)> {
    if param(q, "response_type") != Some("code") {
        return Err(("unsupported_response_type", "response_type must be code"));
    }
    let Some(challenge) = param(q, "code_challenge") else {
        return Err(("invalid_request", "code_challenge is required"));
    };
    if param(q, "code_challenge_method") != Some("S256") {
        return Err(("invalid_request", "code_challenge_method must be S256"));
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return Err(("invalid_request", "code_challenge must be BASE64URL(SHA-256(code_verifier))"));
    }
    let Some(external_id) =
        param(q, "flexpa_external_id").filter(|e| e.len() <= 256 && !e.chars().any(char::is_control))
    else {
        return Err(("invalid_request", "flexpa_external_id is required (at most 256 characters)"));
    };
    let usage = match param(q, "usage") {
        None => Usage::OneTime,
        Some(u) => match Usage::parse(u) {
            Some(u) => u,
            None => return Err(("invalid_request", "usage must be ONE_TIME or MULTIPLE")),
        },
    };
    let endpoint_id = param(q, "flexpa_endpoint_id");
    if let Some(eid) = endpoint_id {
        match endpoints::get(&state.db, eid).await {
            Ok(Some(e)) if e.mode == mode => {}
            Ok(_) => return Err(("invalid_request", "flexpa_endpoint_id is not an endpoint of this mode")),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "link auth: endpoint lookup");
                return Err(("server_error", "internal error"));
            }
        }
    }
    Ok(AuthRequest { code_challenge: challenge, external_id, usage, endpoint_id })
}

/// Creates the Link session of a valid request and returns its id.
///
/// # Errors
/// Database errors.
async fn create_session(
    state: &AppState,
    app: &apps::App,
    mode: Mode,
    client: &ClientRedirect<'_>,
    request: &AuthRequest<'_>,
    binder_hash: &str,
) -> anyhow::Result<String> {
    let now = state.clock.now();
    let nonce = crypto::random_id(16);
    let sid = link_sessions::create(
        &state.db.pool,
        now,
        link_sessions::NewSession {
            app_id: &app.id,
            mode,
            external_id: request.external_id,
            usage: request.usage,
            options: Default::default(),
            endpoint_id: request.endpoint_id,
            host_origin: None,
            redirect_uri: Some(client.redirect_uri),
            client_state: client.state,
            nonce: &nonce,
            code_challenge: Some(request.code_challenge),
            binder_hash: Some(binder_hash),
        },
    )
    .await?;
    insights::opened(&state.db, now, &sid).await;
    Ok(sid)
}
