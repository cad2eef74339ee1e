//! `POST /link/test/public_token` (test mode only): links a sandbox member without the UI and returns a
//! `public_token`, for integrators' CI.


use axum::extract::State;
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::{
    domain::{Mode, Usage},
    server::{
        platform::crypto,
        services::{link_flow, payer::oauth::CallbackParams},
        state::AppState,
        store::{endpoints, link_sessions},
        surfaces::{
            integrator_api::{
                clients::{app_by_secret, audit_event, TokenRequest, required},
                error::{no_store, ApiResult, OAuthError},
            },
            sandbox,
        },
    },
};

// POST /link/test/public_token (test mode only)
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/test/public_token` `{secret_key (sk_test_…), external_id, endpoint_id?, member?, usage?}` →
/// `{public_token, authorization_id}`. Links a sandbox member without the UI: creates a Link session, runs
/// the real payer OAuth against the sandbox payer over HTTP (sign-in as `member` with the shared sandbox
/// password), stores the authorization and enqueues its sync exactly as the Link flow does, and mints the
/// `public_token`. Live keys are refused (`unauthorized_client`).
pub async fn test_public_token(
    State(state): State<AppState>,
    TokenRequest { headers, params }: TokenRequest,
) -> ApiResult {
    let (app, mode) = app_by_secret(&state, required(&params, "secret_key")?).await?;
    if mode != Mode::Test {
        return Err(OAuthError::unauthorized_client("this shortcut takes a test secret key (sk_test_…)"));
    }
    let external_id = required(&params, "external_id")?;
    let endpoint_id =
        params.get("endpoint_id").map(String::as_str).unwrap_or(sandbox::REFRESHABLE_ENDPOINT_ID).to_string();
    let member = params.get("member").map(String::as_str).unwrap_or(sandbox::MEMBER_TYPICAL).to_string();
    let usage = match params.get("usage") {
        None => Usage::OneTime,
        Some(u) => Usage::parse(u).ok_or_else(|| OAuthError::invalid_request("usage must be ONE_TIME or MULTIPLE"))?,
    };
    let endpoint = endpoints::get(&state.db, &endpoint_id)
        .await?
        .filter(|e| e.mode == Mode::Test)
        .ok_or_else(|| OAuthError::invalid_request("endpoint_id is not a test-mode endpoint"))?;
    let now = state.clock.now();
    let nonce = crypto::random_id(16);
    let session_id = link_sessions::create(
        &state.db.pool,
        now,
        link_sessions::NewSession {
            app_id: &app.id,
            mode,
            external_id,
            usage,
            options: Default::default(),
            endpoint_id: Some(&endpoint.id),
            host_origin: None,
            redirect_uri: None,
            client_state: None,
            nonce: &nonce,
            code_challenge: None,
            // No browser ever holds this session: its steps are taken here, server-side.
            binder_hash: None,
        },
    )
    .await?;
    let session = link_sessions::get(&state.db, &session_id).await?.ok_or_else(|| anyhow::anyhow!("session vanished"))?;
    let handoff = link_flow::begin_handoff(&state, &session, &endpoint)
        .await
        .map_err(|code| OAuthError::invalid_request(format!("the payer authorization could not start: {}", code.as_str())))?;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().map_err(anyhow::Error::from)?;
    let callback = sandbox::drive_consent(&client, &handoff.url, &member, true)
        .await
        .map_err(|_| OAuthError::invalid_request("the sandbox payer refused the sign-in (unknown member?)"))?;
    let cb = url::Url::parse(&callback).map_err(anyhow::Error::from)?;
    let mut p = CallbackParams::default();
    for (k, v) in cb.query_pairs() {
        match k.as_ref() {
            "code" => p.code = Some(v.to_string()),
            "state" => p.state = Some(v.to_string()),
            "error" => p.error = Some(v.to_string()),
            "error_description" => p.error_description = Some(v.to_string()),
            "iss" => p.iss = Some(v.to_string()),
            _ => {}
        }
    }
    // The hand-off value stays here: this server plays the patient's payer window itself.
    let done = link_flow::payer_callback(&state, p, &[handoff.binder.expose_secret()])
        .await
        .map_err(|(_, code)| OAuthError::invalid_request(format!("the payer authorization failed: {}", code.as_str())))?;
    // The session has no modal to tell: its sealed copy of the token is not kept.
    link_sessions::clear_public_token(&state.db, state.clock.now(), &session_id).await?;
    let public_token = done.public_token.expose_secret().to_string();
    audit_event(&state, &headers, "test.public_token", &app.id, Some(&done.authorization_id), None).await;
    Ok(no_store(json!({"public_token": public_token, "authorization_id": done.authorization_id})))
}

