//! The Link flow's rules across stores and the payer: handing a session off to its payer (SMART App Launch:
//! discovery, PKCE, `state`), completing the payer's callback (single-use `state`, code exchange, the
//! Authorization, its sync job and the `public_token`), the redirect flow's authorization code, and ending a
//! session. The hosted Link surface calls these; it holds no flow rule of its own.

use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkStep, Usage, ONE_TIME_TTL_SECS},
    server::{
        services::{
            directory,
            payer::{
                discovery,
                oauth::{self, CallbackParams},
            },
            sync,
        },
        state::AppState,
        store::{
            apps,
            audit::{self, AuditEntry},
            authorizations::{self, NewAuthorization},
            consents, endpoints,
            endpoints::Endpoint,
            link_sessions::{self, LinkSession},
            payer_auth_requests::{self, AuthRequest, NewAuthRequest},
            tokens::{self, TokenKind, CODE_TTL_SECS, PUBLIC_TOKEN_TTL_SECS},
        },
    },
};

/// The consent `scope` recorded for a session: SMART patient scopes of what will be read.
pub fn consent_scope(s: &LinkSession) -> String {
    let mut scopes: Vec<String> = if s.options.requested_resources.is_empty() {
        vec!["patient/*.read".into()]
    } else {
        s.options.requested_resources.iter().map(|r| format!("patient/{r}.read")).collect()
    };
    if s.usage == Usage::Multiple {
        scopes.push("offline_access".into());
    }
    scopes.join(" ")
}

/// The `redirect_uri` every payer sends the patient back to (one callback for every payer).
pub fn payer_redirect_uri(state: &AppState) -> String {
    format!("{}/link/callback", state.public_url)
}

/// Starts SMART App Launch at `endpoint` for session `s`: finds the payer's OAuth endpoints, stores the
/// PayerAuthRequest (`state` hash, sealed PKCE verifier, exact `redirect_uri`, token endpoint; valid 10 min), and
/// returns the payer's authorize URL to send the patient to.
///
/// # Errors
/// An endpoint closed to new links (`INVALID_ENDPOINT` when disabled, `ENDPOINT_CONFIGURATION_ERROR` without a
/// client id); discovery failures (`PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`, `ENDPOINT_CONFIGURATION_ERROR`); unusable
/// URLs (`ENDPOINT_CONFIGURATION_ERROR`); `PAYER_SERVER_ERROR` when our database fails (logged). Each hand-off is
/// one attempt of the endpoint's health (`services::directory::health`).
pub async fn begin_handoff(state: &AppState, s: &LinkSession, endpoint: &Endpoint) -> Result<String, ExitCode> {
    directory::health::observe_handoff(state, &s.id, endpoint, handoff(state, s, endpoint)).await
}

/// The hand-off itself (see [`begin_handoff`]).
async fn handoff(state: &AppState, s: &LinkSession, endpoint: &Endpoint) -> Result<String, ExitCode> {
    let smart = discovery::discover(&state.http, endpoint).await?;
    let redirect_uri = payer_redirect_uri(state);
    let req = oauth::authorize_request(endpoint, &smart, &redirect_uri, s.usage, &s.options.requested_resources)?;
    let stored = payer_auth_requests::insert(
        &state.db,
        &state.cipher,
        state.clock.now(),
        NewAuthRequest {
            link_session_id: &s.id,
            endpoint_id: &endpoint.id,
            state: &req.state,
            code_verifier: &req.code_verifier,
            redirect_uri: &redirect_uri,
            scope: &req.scope,
            token_url: &smart.token_url,
        },
    )
    .await;
    if let Err(e) = stored {
        tracing::error!(error = %format!("{e:#}"), "storing the payer authorization request failed");
        return Err(ExitCode::PayerServerError);
    }
    Ok(req.url)
}

/// A successful payer callback: the Link session and its new Authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    /// The Link session the request belonged to.
    pub link_session_id: String,
    /// The new Authorization's id.
    pub authorization_id: String,
}

/// Why a callback failed: its exit code, and the Link session when it could be identified (to show it there).
pub type CallbackFailure = (Option<String>, ExitCode);

fn internal(session: Option<String>, e: &anyhow::Error) -> CallbackFailure {
    tracing::error!(error = %format!("{e:#}"), "payer callback failed internally");
    (session, ExitCode::PayerServerError)
}

/// Handles the payer's callback (RFC 6749 §4.1.2): `error` first (§4.1.2.1), then `state` (consumed once,
/// whichever instance gets it), the code exchange, then the Authorization with its payer tokens sealed and its
/// sync job queued, and the session moved to `authorized`.
///
/// # Errors
/// The exit code of the failure ([`oauth::callback_error_exit_code`] for `error`; `MALFORMED_PAYER_CALLBACK`,
/// `INVALID_STATE`, `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`, `PAYER_TOKEN_EXCHANGE_FAILED`, …).
pub async fn payer_callback(state: &AppState, params: CallbackParams) -> Result<Authorized, CallbackFailure> {
    directory::health::observe_callback(state, callback(state, params), |a| (a.link_session_id.clone(), a.authorization_id.clone())).await
}

/// The callback itself (see [`payer_callback`]).
async fn callback(state: &AppState, params: CallbackParams) -> Result<Authorized, CallbackFailure> {
    let now = state.clock.now();
    let state_value = params.state.as_deref().filter(|s| !s.is_empty());
    let session_of = |s: &str| {
        let db = state.db.clone();
        let s = s.to_string();
        async move { payer_auth_requests::session_of_state(&db, &s).await.ok().flatten() }
    };
    if let Some(error) = params.error.as_deref() {
        let session = match state_value {
            Some(s) => session_of(s).await,
            None => None,
        };
        if let Some(s) = state_value {
            // The request is over either way: an error callback must not leave a usable `state` behind.
            if let Err(e) = payer_auth_requests::spend(&state.db, now, s).await {
                return Err(internal(session, &e));
            }
        }
        tracing::info!(error, has_description = params.error_description.is_some(), "payer returned an error");
        return Err((session, oauth::callback_error_exit_code(error)));
    }
    let Some(state_value) = state_value else {
        return Err((None, if params.code.is_some() { ExitCode::InvalidState } else { ExitCode::MalformedPayerCallback }));
    };
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err((session_of(state_value).await, ExitCode::MalformedPayerCallback));
    };
    let request = match payer_auth_requests::consume(&state.db, &state.cipher, now, state_value).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err((session_of(state_value).await, ExitCode::InvalidState)),
        Err(e) => return Err(internal(None, &e)),
    };
    authorize(state, &request, code).await.map_err(|c| (Some(request.link_session_id.clone()), c))
}

/// The code exchange and the Authorization it creates, for a consumed request.
async fn authorize(state: &AppState, request: &AuthRequest, code: &str) -> Result<Authorized, ExitCode> {
    let sid = &request.link_session_id;
    let fail = |e: anyhow::Error| internal(Some(sid.clone()), &e).1;
    let endpoint = endpoints::get(&state.db, &request.endpoint_id).await.map_err(fail)?.ok_or(ExitCode::InvalidEndpoint)?;
    let session = link_sessions::get(&state.db, sid).await.map_err(fail)?.ok_or_else(|| fail(anyhow::anyhow!("link session vanished")))?;
    let now = state.clock.now();
    let mut grant = oauth::exchange_code(
        &state.http,
        &endpoint,
        &request.token_url,
        &request.redirect_uri,
        code,
        &request.code_verifier,
        &request.scope,
        now,
    )
    .await
    .map_err(|f| {
        tracing::warn!(failure = %f, endpoint = %endpoint.id, "payer code exchange failed");
        f.exit_code()
    })?;
    grant.tokens.refresh_expires_at = endpoints::capped_grant_end(&state.db, &endpoint.id, now, grant.tokens.refresh_expires_at).await.map_err(fail)?;
    // The seed's rule: no refresh token (or a payer that cannot refresh) means ONE_TIME.
    let (usage, downgraded) = match session.usage {
        Usage::Multiple if grant.tokens.refresh_token.is_none() || !endpoint.refreshable => (Usage::OneTime, true),
        u => (u, false),
    };
    let new = NewAuthorization {
        app_id: session.app_id.clone(),
        mode: session.mode,
        external_id: session.external_id.clone(),
        endpoint_id: endpoint.id.clone(),
        link_session_id: Some(session.id.clone()),
        patient_id: grant.patient_id.clone(),
        usage_requested: session.usage,
        usage,
        downgraded,
        fhir_base: endpoint.fhir_base_url.trim_end_matches('/').to_string(),
        token_url: request.token_url.clone(),
        resource_types: session.options.requested_resources.clone(),
        expunge_at: (usage == Usage::OneTime).then_some(now + ONE_TIME_TTL_SECS),
        next_sync_at: (usage == Usage::Multiple).then_some(now + sync::RESYNC_INTERVAL_SECS),
    };
    let authorization_id = record_authorization(state, &session, new, &grant.tokens, &endpoint.id).await.map_err(fail)?;
    sync::enqueue(&state.db, &authorization_id, now).await.map_err(fail)?;
    Ok(Authorized { link_session_id: session.id, authorization_id })
}

/// Creates the Authorization, attaches it to its session and consent, and audits it, in one transaction.
async fn record_authorization(
    state: &AppState,
    session: &LinkSession,
    new: NewAuthorization,
    tokens: &authorizations::PayerTokens,
    endpoint_id: &str,
) -> anyhow::Result<String> {
    let now = state.clock.now();
    let detail = json!({
        "endpoint_id": endpoint_id,
        "usage_requested": new.usage_requested.as_str(),
        "usage": new.usage.as_str(),
        "downgraded": new.downgraded,
    });
    let mut tx = state.db.begin_write().await?;
    let id = authorizations::create(&mut tx, &state.cipher, now, new, tokens).await?;
    link_sessions::attach_authorization(&mut *tx, now, &session.id, &id).await?;
    consents::attach_authorization(&mut *tx, &session.id, &id).await?;
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "patient",
            action: "payer.authorized",
            app_id: Some(&session.app_id),
            authorization_id: Some(&id),
            request_id: None,
            detail: Some(detail),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

/// Mints the session's `public_token` for its new Authorization and keeps a sealed copy on the session for the
/// modal, moving it to `syncing` (or `success` with `skipSyncing`).
///
/// # Errors
/// Database errors.
pub async fn mint_public_token(state: &AppState, s: &LinkSession, authorization_id: &str) -> anyhow::Result<()> {
    let now = state.clock.now();
    let token = tokens::issue(
        &state.db,
        now,
        TokenKind::Public,
        &s.app_id,
        Some(authorization_id),
        Some(PUBLIC_TOKEN_TTL_SECS),
        json!({"link_session_id": s.id}),
    )
    .await?;
    let next = if s.options.skip_syncing { LinkStep::Success } else { LinkStep::Syncing };
    link_sessions::store_public_token(&state.db.pool, &state.cipher, now, &s.id, &token, next).await
}

/// Ends a redirect-flow (`GET /link/auth`) session that reached an authorization: mints the single-use
/// authorization code (10 minutes, bound to the app's `client_id`, the `redirect_uri` and the PKCE
/// `code_challenge`) and returns the URL to send the browser to: `{redirect_uri}?code=…&state=…`.
///
/// # Errors
/// A session without `redirect_uri`, `code_challenge` or authorization; database errors.
pub async fn redirect_flow_code(state: &AppState, s: &LinkSession) -> anyhow::Result<String> {
    let (Some(redirect_uri), Some(challenge), Some(authorization_id)) =
        (&s.redirect_uri, &s.code_challenge, &s.authorization_id)
    else {
        anyhow::bail!("the session is not a completed redirect flow");
    };
    let client_id = apps::publishable_key(&state.db, &s.app_id, s.mode)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the session's app has no key of its mode"))?;
    let code = tokens::issue(
        &state.db,
        state.clock.now(),
        TokenKind::Code,
        &s.app_id,
        Some(authorization_id),
        Some(CODE_TTL_SECS),
        json!({"client_id": client_id, "redirect_uri": redirect_uri, "code_challenge": challenge}),
    )
    .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(cs) = &s.client_state {
        params.push(("state", cs));
    }
    Ok(redirect_with(redirect_uri, &params))
}

/// `redirect_uri` with query parameters added (RFC 6749 §4.1.2: the result of a flow that ends at the client's
/// redirect URI). A `redirect_uri` that does not parse is returned as is (registered URIs are validated).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

/// The URL that ends a hosted (`redirect_uri`) session whose payer authorized (syncing or success) with
/// success: `{redirect_uri}?public_token=…&state=…`, or for a redirect-flow session its authorization code. Also
/// destroys the session's sealed `public_token` copy (it is not kept once handed over) and marks the session
/// `done`. `None` when the session has no token to give (not authorized, already finished).
///
/// # Errors
/// Database errors.
pub async fn finish_hosted(state: &AppState, s: &LinkSession) -> anyhow::Result<Option<String>> {
    let Some(redirect_uri) = &s.redirect_uri else { return Ok(None) };
    let Some(token) = link_sessions::public_token(&state.cipher, s) else { return Ok(None) };
    let now = state.clock.now();
    link_sessions::advance(&state.db, now, &s.id, s.step, LinkStep::Done, None).await?;
    link_sessions::clear_public_token(&state.db, now, &s.id).await?;
    // Started by `GET /link/auth` (OAuth 2.0 redirect flow, PKCE): the client gets a single-use `code` for
    // `POST /link/token` instead of the `public_token`, which is never shown.
    if s.code_challenge.is_some() {
        return redirect_flow_code(state, s).await.map(Some);
    }
    let mut params = vec![("public_token", token.expose_secret())];
    if let Some(cs) = &s.client_state {
        params.push(("state", cs.as_str()));
    }
    Ok(Some(redirect_with(redirect_uri, &params)))
}

/// Ends session `s` with `code` (the patient cancelled, or a failure they cannot recover from): step `exited`,
/// the sealed `public_token` destroyed, a `link.exited` audit record. Returns where the hosted flow goes next
/// (`redirect_uri?error=…&state=…`), `None` for the modal flow.
///
/// # Errors
/// Database errors.
pub async fn end(state: &AppState, s: &LinkSession, code: ExitCode) -> anyhow::Result<Option<String>> {
    let now = state.clock.now();
    link_sessions::set_step(&state.db, now, &s.id, LinkStep::Exited, Some(code)).await?;
    link_sessions::clear_public_token(&state.db, now, &s.id).await?;
    audit::record(
        &state.db.pool,
        now,
        AuditEntry {
            actor: "patient",
            action: "link.exited",
            app_id: Some(&s.app_id),
            authorization_id: s.authorization_id.as_deref(),
            request_id: None,
            detail: Some(json!({"code": code.as_str()})),
        },
    )
    .await?;
    Ok(s.redirect_uri.as_ref().map(|ru| {
        let mut params = vec![("error", code.as_str())];
        if let Some(cs) = &s.client_state {
            params.push(("state", cs));
        }
        redirect_with(ru, &params)
    }))
}

/// Moves a syncing session on when its sync job has finished: `complete`/`partial` → success, `failed` → error
/// with the job's exit code (`SYNC_FAILED` by default).
///
/// # Errors
/// Database errors.
pub async fn refresh_step(state: &AppState, s: &mut LinkSession) -> anyhow::Result<()> {
    if s.step != LinkStep::Syncing {
        return Ok(());
    }
    let Some(authz) = s.authorization_id.clone() else { return Ok(()) };
    let Some(st) = sync::status(&state.db, &authz).await? else { return Ok(()) };
    let now = state.clock.now();
    if st.status.succeeded() {
        if link_sessions::advance(&state.db, now, &s.id, LinkStep::Syncing, LinkStep::Success, None).await? {
            s.step = LinkStep::Success;
        }
    } else if st.status == crate::domain::SyncStatus::Failed {
        let code = st.exit_code.unwrap_or(ExitCode::SyncFailed);
        if link_sessions::advance(&state.db, now, &s.id, LinkStep::Syncing, LinkStep::Error, Some(code)).await? {
            s.step = LinkStep::Error;
            s.exit_code = Some(code);
        }
    }
    Ok(())
}
