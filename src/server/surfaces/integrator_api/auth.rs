//! `GET /link/auth`: the OAuth 2.0 authorization endpoint of the redirect flow (RFC 6749 §4.1.1, PKCE `S256`
//! required, RFC 7636): validates the client's request, then runs the hosted Link flow, which ends at the
//! client's `redirect_uri` with a single-use `code` for `POST /link/token`.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

use crate::{
    domain::Usage,
    server::{
        platform::crypto,
        state::AppState,
        store::{apps, endpoints, link_sessions},
    },
};

// GET /link/auth (redirect flow)
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/auth`: the Link flow as an OAuth 2.0 authorization endpoint (RFC 6749 §4.1.1 + RFC 7636).
/// Parameters: `response_type=code`, `client_id` (publishable key), `redirect_uri` (exact match with the
/// app's list), `code_challenge` + `code_challenge_method=S256`, `state`, `flexpa_external_id`, optional
/// `flexpa_endpoint_id` and `usage` (default `ONE_TIME`). Errors before the `redirect_uri` is trusted are a
/// 400 page; after, a redirect with `error` and `state` (§4.1.2.1).
pub async fn auth(State(state): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let plain = |msg: &str| (StatusCode::BAD_REQUEST, msg.to_string()).into_response();
    let Some(client_id) = get("client_id") else { return plain("client_id is required") };
    let (app, mode) = match apps::by_publishable_key(&state.db, client_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return plain("unknown client_id"),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: app lookup");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let Some(redirect_uri) = get("redirect_uri") else { return plain("redirect_uri is required") };
    if !app.redirect_uris.iter().any(|u| u == redirect_uri) {
        return plain("redirect_uri is not registered for this application");
    }
    let client_state = get("state");
    let fail = |error: &str, desc: &str| -> Response {
        let mut u = match url::Url::parse(redirect_uri) {
            Ok(u) => u,
            Err(_) => return plain("redirect_uri is not a URL"),
        };
        {
            let mut qp = u.query_pairs_mut();
            qp.append_pair("error", error).append_pair("error_description", desc);
            if let Some(s) = client_state {
                qp.append_pair("state", s);
            }
        }
        Redirect::to(u.as_str()).into_response()
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else { return fail("invalid_request", "code_challenge is required") };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
        return fail("invalid_request", "code_challenge must be BASE64URL(SHA-256(code_verifier))");
    }
    let Some(external_id) = get("flexpa_external_id").filter(|e| e.len() <= 256 && !e.chars().any(char::is_control))
    else {
        return fail("invalid_request", "flexpa_external_id is required (at most 256 characters)");
    };
    let usage = match get("usage") {
        None => Usage::OneTime,
        Some(u) => match Usage::parse(u) {
            Some(u) => u,
            None => return fail("invalid_request", "usage must be ONE_TIME or MULTIPLE"),
        },
    };
    let endpoint_id = get("flexpa_endpoint_id");
    if let Some(eid) = endpoint_id {
        match endpoints::get(&state.db, eid).await {
            Ok(Some(e)) if e.mode == mode => {}
            Ok(_) => return fail("invalid_request", "flexpa_endpoint_id is not an endpoint of this mode"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "link auth: endpoint lookup");
                return fail("server_error", "internal error");
            }
        }
    }
    let now = state.clock.now();
    let nonce = crypto::random_id(16);
    let created = link_sessions::create(
        &state.db.pool,
        now,
        link_sessions::NewSession {
            app_id: &app.id,
            mode,
            external_id,
            usage,
            options: Default::default(),
            endpoint_id,
            host_origin: None,
            redirect_uri: Some(redirect_uri),
            client_state,
            nonce: &nonce,
            code_challenge: Some(challenge),
        },
    )
    .await;
    let session_id = match created {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "link auth: creating the session");
            return fail("server_error", "internal error");
        }
    };
    // Into the hosted Link screens; their end (`/link/s/{sid}/finish`) gives sessions that carry a
    // code_challenge their authorization code (`services::link_flow::redirect_flow_code`).
    Redirect::to(&format!("/link/s/{session_id}")).into_response()
}
