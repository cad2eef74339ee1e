//! The Link flow's rules across stores and the payer: handing a session off to its payer (SMART App Launch:
//! discovery, PKCE, `state`), completing the payer's callback (single-use `state`, code exchange, the
//! Authorization, its sync job and the `public_token`), the redirect flow's authorization code, and ending a
//! session. The hosted Link surface calls these; it holds no flow rule of its own.
//!
//! Binding (RFC 6749 §10.12, RFC 9700 §4.7): a session is bound to the browser that opened it by a binder, a
//! 256-bit random value handed only to that browser and kept only as a hash on the session ([`new_binder`],
//! [`is_bound`]). Every step that acts or reads the `public_token` checks it. The hand-off to the payer sets a
//! second value in the payer window's own cookie (hash on the payer request), which the callback must present
//! before its `state` is worth anything, so a sign-in finished in another browser links nothing.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep, Usage, ONE_TIME_TTL_SECS},
    server::{
        platform::crypto,
        services::{
            directory,
            insights::{self, NewEvent},
            payer::{
                discovery,
                oauth::{self, CallbackParams},
                refresh::{self, RefreshError},
            },
            sync,
            webhooks::{self, rfc3339, WebhookEvent},
        },
        state::AppState,
        store::{
            apps,
            audit::{self, AuditEntry},
            authorizations::{self, Authorization, NewAuthorization},
            consents, endpoints,
            endpoints::Endpoint,
            hosted_links,
            link_sessions::{self, LinkSession, NewSession},
            payer_auth_requests::{self, AuthRequest, NewAuthRequest, RequestCheck},
            sync_jobs,
            tokens::{self, TokenKind, CODE_TTL_SECS, PUBLIC_TOKEN_TTL_SECS},
        },
    },
};

/// Whether `id` is a usable `externalId` (the integrator's user id): 1 to 255 bytes once trimmed, no control
/// characters. Stored trimmed.
pub fn valid_external_id(id: &str) -> bool {
    let t = id.trim();
    !t.is_empty() && t.len() <= 255 && !t.chars().any(char::is_control)
}

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

/// A new binder for a session: the value to hand to the browser (256 random bits; a bearer secret, never
/// logged) and the hash to store on the session.
pub fn new_binder() -> (SecretString, String) {
    let binder = crypto::random_id(32);
    let hash = crypto::hash_token(&binder);
    (SecretString::from(binder), hash)
}

/// Creates a Link session (its first step is consent) with its `link.opened` and `consent.shown` audit records,
/// in `tx`; `repairs` names the authorization a repair-mode session renews. The caller hands the session's
/// binder to the browser that asked, and calls [`insights::opened`] once `tx` is committed.
///
/// # Errors
/// Database errors.
pub async fn open_session(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    now: i64,
    new: NewSession<'_>,
    repairs: Option<&str>,
) -> anyhow::Result<String> {
    let (app_id, mode, usage) = (new.app_id.to_string(), new.mode, new.usage);
    let hosted = new.host_origin.is_none();
    let sid = link_sessions::create(&mut **tx, now, new).await?;
    if let Some(repairs) = repairs {
        link_sessions::set_repair_authorization(&mut **tx, &sid, repairs).await?;
    }
    let repair = repairs.is_some();
    for (action, detail) in [
        ("link.opened", json!({"mode": mode.as_str(), "usage": usage.as_str(), "hosted": hosted, "repair": repair})),
        // Every session starts on the consent screen.
        ("consent.shown", json!({"usage": usage.as_str()})),
    ] {
        let entry = AuditEntry { actor: "patient", action, app_id: Some(&app_id), detail: Some(detail), ..Default::default() };
        audit::record(&mut **tx, now, entry).await?;
    }
    Ok(sid)
}

/// Whether one of the `presented` values is the binder whose hash is `stored` (constant-time comparison of the
/// hashes). Nothing is bound to a missing hash.
pub fn binding_matches<'a>(stored: Option<&str>, presented: impl IntoIterator<Item = &'a str>) -> bool {
    let Some(stored) = stored else { return false };
    presented
        .into_iter()
        .filter(|p| !p.is_empty() && p.len() <= 128)
        .any(|p| crypto::ct_eq(crypto::hash_token(p).as_bytes(), stored.as_bytes()))
}

/// Whether a request presenting `presented` comes from the browser session `s` is bound to.
pub fn is_bound<'a>(s: &LinkSession, presented: impl IntoIterator<Item = &'a str>) -> bool {
    binding_matches(s.binder_hash.as_deref(), presented)
}

/// A started hand-off: where to send the payer window, and the value its cookie must carry back to the callback.
pub struct Handoff {
    /// The payer's authorize URL.
    pub url: String,
    /// The hand-off binder (256 random bits; a bearer secret, never logged).
    pub binder: SecretString,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").finish_non_exhaustive()
    }
}

/// Starts SMART App Launch at `endpoint` for session `s`: records the endpoint and moves the session to the payer
/// step, finds the payer's OAuth endpoints, stores the
/// PayerAuthRequest (`state` hash, sealed PKCE verifier, exact `redirect_uri`, token endpoint, the hand-off
/// binder's hash and the expected `iss`; valid 10 min), and returns the payer's authorize URL with the hand-off
/// binder the callback must present.
///
/// # Errors
/// An endpoint closed to new links (`INVALID_ENDPOINT` when disabled, `ENDPOINT_CONFIGURATION_ERROR` without a
/// client id); discovery failures (`PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`, `ENDPOINT_CONFIGURATION_ERROR`); unusable
/// URLs (`ENDPOINT_CONFIGURATION_ERROR`); `PAYER_SERVER_ERROR` when our database fails (logged). Each hand-off is
/// one attempt of the endpoint's health (`services::directory::health`).
pub async fn begin_handoff(state: &AppState, s: &LinkSession, endpoint: &Endpoint) -> Result<Handoff, ExitCode> {
    directory::health::observe_handoff(state, &s.id, endpoint, handoff(state, s, endpoint)).await
}

/// The hand-off itself (see [`begin_handoff`]).
async fn handoff(state: &AppState, s: &LinkSession, endpoint: &Endpoint) -> Result<Handoff, ExitCode> {
    if let Err(e) = link_sessions::set_endpoint(&state.db, state.clock.now(), &s.id, &endpoint.id).await {
        tracing::error!(error = %format!("{e:#}"), "recording the chosen endpoint failed");
        return Err(ExitCode::PayerServerError);
    }
    let smart = discovery::discover(&state.http, endpoint).await?;
    let redirect_uri = payer_redirect_uri(state);
    let req = oauth::authorize_request(endpoint, &smart, &redirect_uri, s.usage, &s.options.requested_resources)?;
    let (binder, binder_hash) = new_binder();
    let authorize_origin = url::Url::parse(&smart.authorize_url).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
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
            binder_hash: &binder_hash,
            issuer: smart.issuer.as_deref(),
            authorize_origin: &authorize_origin,
            iss_required: smart.iss_required,
        },
    )
    .await;
    if let Err(e) = stored {
        tracing::error!(error = %format!("{e:#}"), "storing the payer authorization request failed");
        return Err(ExitCode::PayerServerError);
    }
    let handed_off = LinkSession { step: LinkStep::Payer, endpoint_id: Some(endpoint.id.clone()), ..s.clone() };
    let event = NewEvent::new(LinkEventName::Handoff, s.step).endpoint(&endpoint.id);
    insights::note(&state.db, state.clock.now(), &handed_off, event).await;
    Ok(Handoff { url: req.url, binder })
}

/// A successful payer callback: the Link session, its new Authorization and the `public_token` minted for it.
pub struct Authorized {
    /// The Link session the request belonged to.
    pub link_session_id: String,
    /// The new Authorization's id.
    pub authorization_id: String,
    /// The `public_token` (a sealed copy is also kept on the session for the modal).
    pub public_token: SecretString,
}

impl std::fmt::Debug for Authorized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorized").field("authorization_id", &self.authorization_id).finish_non_exhaustive()
    }
}

/// Why a callback failed: its exit code, and the Link session when it could be identified (to show it there).
pub type CallbackFailure = (Option<String>, ExitCode);

fn internal(session: Option<String>, e: &anyhow::Error) -> CallbackFailure {
    tracing::error!(error = %format!("{e:#}"), "payer callback failed internally");
    (session, ExitCode::PayerServerError)
}

/// Whether the callback's `iss` fits the request (RFC 9207 §2.4): equal to the payer's issuer when its metadata
/// gave one; else of the origin the patient was sent to for sign-in. A missing `iss` is accepted unless the payer
/// said it always sends one.
fn iss_matches(check: &RequestCheck, iss: Option<&str>) -> bool {
    match iss {
        None => !check.iss_required,
        Some(iss) => match (&check.issuer, &check.authorize_origin) {
            (Some(expected), _) => crypto::ct_eq(iss.as_bytes(), expected.as_bytes()),
            (None, Some(origin)) => url::Url::parse(iss).is_ok_and(|u| &u.origin().ascii_serialization() == origin),
            (None, None) => false,
        },
    }
}

/// Handles the payer's callback (RFC 6749 §4.1.2): first the binding (`handoff_binders`, the values of the
/// payer window's hand-off cookies: the one its `state`'s request was given must be among them), then `error`
/// (§4.1.2.1), then `iss` (RFC 9207), then `state` (consumed once, whichever instance gets it, and only while the
/// session is live and waiting at the payer), the code exchange, then in one transaction the Authorization with
/// its payer tokens sealed, its sync job, its `public_token`, and the session moved on. A callback that does not
/// present the binding spends its `state` and creates nothing; the waiting session shows `BROWSER_MISMATCH`.
///
/// # Errors
/// The exit code of the failure (`BROWSER_MISMATCH`; [`oauth::callback_error_exit_code`] for `error`;
/// `MALFORMED_PAYER_CALLBACK`, `INVALID_STATE`, `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR`,
/// `PAYER_TOKEN_EXCHANGE_FAILED`, `PATIENT_CANCELLED` when the session ended meanwhile, …). Each callback ends the
/// session's attempt of the endpoint's health (`services::directory::health`).
pub async fn payer_callback(
    state: &AppState,
    params: CallbackParams,
    handoff_binders: &[&str],
) -> Result<Authorized, CallbackFailure> {
    directory::health::observe_callback(state, callback(state, params, handoff_binders), |a| (a.link_session_id.clone(), a.authorization_id.clone())).await
}

/// The callback itself (see [`payer_callback`]).
async fn callback(state: &AppState, params: CallbackParams, handoff_binders: &[&str]) -> Result<Authorized, CallbackFailure> {
    let now = state.clock.now();
    let Some(state_value) = params.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512) else {
        let code = if params.code.is_some() { ExitCode::InvalidState } else { ExitCode::MalformedPayerCallback };
        return Err((None, code));
    };
    let check = match payer_auth_requests::check_of_state(&state.db, now, state_value).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err((None, ExitCode::InvalidState)),
        Err(e) => return Err(internal(None, &e)),
    };
    let sid = check.link_session_id.clone();
    let spend = || async {
        // The request is over either way: a refused callback must not leave a usable `state` behind.
        payer_auth_requests::spend(&state.db, now, state_value).await.map_err(|e| internal(Some(sid.clone()), &e))
    };
    if !binding_matches(check.binder_hash.as_deref(), handoff_binders.iter().copied()) {
        if !check.live {
            // A used or expired `state` from another browser: nothing to refuse, nobody to tell.
            return Err((None, ExitCode::InvalidState));
        }
        spend().await?;
        refuse_unbound(state, &check, now).await.map_err(|e| internal(Some(sid.clone()), &e))?;
        return Err((Some(sid), ExitCode::BrowserMismatch));
    }
    if let Some(error) = params.error.as_deref() {
        spend().await?;
        tracing::info!(error = %error.escape_debug(), has_description = params.error_description.is_some(), "payer returned an error");
        return Err((Some(sid), oauth::callback_error_exit_code(error)));
    }
    if !iss_matches(&check, params.iss.as_deref()) {
        spend().await?;
        tracing::warn!(iss = ?params.iss.as_deref().map(|i| i.chars().take(200).collect::<String>()), "payer callback from another issuer than the request's (RFC 9207)");
        return Err((Some(sid), ExitCode::InvalidState));
    }
    let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
        spend().await?;
        return Err((Some(sid), ExitCode::MalformedPayerCallback));
    };
    let request = match payer_auth_requests::consume(&state.db, &state.cipher, now, state_value).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err((Some(sid), ExitCode::InvalidState)),
        Err(e) => return Err(internal(Some(sid), &e)),
    };
    authorize(state, &request, code).await.map_err(|c| (Some(request.link_session_id.clone()), c))
}

/// A callback without the hand-off binding: the session waiting for that request (if it still is) shows
/// `BROWSER_MISMATCH`, and an audit record says so.
async fn refuse_unbound(state: &AppState, check: &RequestCheck, now: i64) -> anyhow::Result<()> {
    let moved = check.live
        && link_sessions::advance(&state.db, now, &check.link_session_id, LinkStep::Payer, LinkStep::Error, Some(ExitCode::BrowserMismatch))
            .await?;
    let app_id = link_sessions::get(&state.db, &check.link_session_id).await?.map(|s| s.app_id);
    audit::record(
        &state.db.pool,
        now,
        AuditEntry {
            actor: "patient",
            action: "link.binding_refused",
            app_id: app_id.as_deref(),
            detail: Some(json!({"step": "callback", "session_stopped": moved})),
            ..Default::default()
        },
    )
    .await?;
    tracing::warn!("payer callback without the hand-off binding of its state: refused (another browser?)");
    Ok(())
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
    if let Some(repairs) = session.repair_authorization_id.as_deref() {
        let urls = authorizations::PayerUrls { fhir_base: endpoint.fhir_base(), token_url: &request.token_url };
        return repair_authorization(state, &session, repairs, &endpoint, &grant.tokens, urls, grant.patient_id.as_deref()).await;
    }
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
        fhir_base: endpoint.fhir_base().to_string(),
        token_url: request.token_url.clone(),
        resource_types: session.options.requested_resources.clone(),
        expunge_at: (usage == Usage::OneTime).then_some(now + ONE_TIME_TTL_SECS),
        next_sync_at: if usage == Usage::Multiple { sync::next_resync_at(state.settings.resync_interval_secs, now) } else { None },
    };
    match record_authorization(state, &session, new, &grant.tokens, &endpoint.id).await.map_err(fail)? {
        Some(done) => {
            sync::wake();
            Ok(done)
        }
        None => {
            tracing::info!("payer authorized a session that had ended meanwhile: nothing kept");
            Err(ExitCode::PatientCancelled)
        }
    }
}

/// In one transaction: creates the Authorization, or renews the one the app already has for this user, plan and
/// payer `patient` (the reuse rule, [`authorizations::reusable`]: no second live authorization for the same grant;
/// a `PLAN_REUSED` event says so), attaches it to its session (only while the session still waits at the payer:
/// `None` and nothing kept otherwise) and consent, audits it, queues its sync job (a reused one keeps a job still
/// running), and mints a `public_token` for it with a sealed copy on the session for the modal, moving it to
/// `syncing` (or `success` with `skipSyncing`).
async fn record_authorization(
    state: &AppState,
    session: &LinkSession,
    new: NewAuthorization,
    tokens: &authorizations::PayerTokens,
    endpoint_id: &str,
) -> anyhow::Result<Option<Authorized>> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let reused = authorizations::reusable(&mut tx, &new, now).await?;
    let detail = json!({
        "endpoint_id": endpoint_id,
        "usage_requested": new.usage_requested.as_str(),
        "usage": new.usage.as_str(),
        "downgraded": new.downgraded,
        "reused": reused.is_some(),
    });
    let id = match &reused {
        Some(id) => {
            authorizations::renew(&mut tx, &state.cipher, id, now, &new, tokens).await?;
            id.clone()
        }
        None => authorizations::create(&mut tx, &state.cipher, now, new, tokens).await?,
    };
    let done = attach_and_mint(&mut tx, state, session, &id, reused.is_some(), endpoint_id, detail).await?;
    if done.is_some() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(done)
}

/// The rest of a payer callback's transaction once the session's Authorization is created, renewed or repaired
/// (`id`; `reused`: an existing one): attaches it to its session (only while the session still waits at the
/// payer: `None` and the caller rolls back otherwise) and consent, audits it (`detail`), queues its sync job (an
/// existing one keeps a job still running), and mints a `public_token` for it with a sealed copy on the session
/// for the modal, moving it to `syncing` (or `success` with `skipSyncing`). The caller commits.
async fn attach_and_mint(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    state: &AppState,
    session: &LinkSession,
    id: &str,
    reused: bool,
    endpoint_id: &str,
    detail: serde_json::Value,
) -> anyhow::Result<Option<Authorized>> {
    let now = state.clock.now();
    if !link_sessions::attach_authorization(&mut **tx, now, &session.id, id, reused).await? {
        return Ok(None);
    }
    consents::attach_authorization(&mut **tx, &session.id, id).await?;
    audit::record(
        &mut **tx,
        now,
        AuditEntry {
            actor: "patient",
            action: "payer.authorized",
            app_id: Some(&session.app_id),
            authorization_id: Some(id),
            request_id: None,
            detail: Some(detail),
        },
    )
    .await?;
    // A reused authorization may have a re-sync queued or running already: that job brings the data.
    sync_jobs::insert_unless_unfinished(&mut **tx, id, endpoint_id, now).await?;
    let token = tokens::issue(
        &mut **tx,
        now,
        TokenKind::Public,
        &session.app_id,
        Some(id),
        Some(PUBLIC_TOKEN_TTL_SECS),
        json!({"link_session_id": session.id}),
    )
    .await?;
    let next = if session.options.skip_syncing { LinkStep::Success } else { LinkStep::Syncing };
    link_sessions::store_public_token(&mut **tx, &state.cipher, now, &session.id, &token, next).await?;
    hosted_link_completed(tx, state, now, session, id, &token).await?;
    let moved = LinkSession { step: next, authorization_id: Some(id.to_string()), authorization_reused: reused, ..session.clone() };
    let after = if next == LinkStep::Success { LinkEventName::Success } else { LinkEventName::SyncStarted };
    let reuse = reused.then_some(LinkEventName::PlanReused);
    for name in [Some(LinkEventName::PayerAuthorized), reuse, Some(after)].into_iter().flatten() {
        insights::record(tx, now, &moved, NewEvent::new(name, LinkStep::Payer).endpoint(endpoint_id)).await?;
    }
    Ok(Some(Authorized { link_session_id: session.id.clone(), authorization_id: id.to_string(), public_token: SecretString::from(token) }))
}

/// Repair mode's callback (session `session` repairs `authorization_id`): the payer `patient` of the new sign-in
/// must be the authorization's, at the same endpoint; then, holding its refresh lease (no refresh of the old grant
/// runs meanwhile, [`refresh::without_refresh`]) and in one transaction, the authorization gets the new
/// payer tokens and returns to an active state ([`crate::domain::AuthorizationState::after_repair`], the conditional update
/// [`authorizations::repair`]), an `authorization.repaired` audit record and webhook (once, its `event_id`
/// derived from the authorization and the repair time), then everything a callback does for a reused
/// authorization ([`attach_and_mint`]: the session's `public_token` exchanges to the same authorization, a sync).
///
/// # Errors
/// `REPAIR_PATIENT_MISMATCH` when the patient (or endpoint) differs or is unknown: nothing is stored, the new
/// payer tokens are dropped and the authorization stays as it was; `INVALID_REPAIR_TOKEN` when it can no longer
/// be repaired (revoked or expired meanwhile); `PATIENT_CANCELLED` when the session ended meanwhile;
/// `PAYER_TIMEOUT` when a refresh held the lease too long; `PAYER_SERVER_ERROR` for database errors (logged).
async fn repair_authorization(
    state: &AppState,
    session: &LinkSession,
    authorization_id: &str,
    endpoint: &Endpoint,
    tokens: &authorizations::PayerTokens,
    urls: authorizations::PayerUrls<'_>,
    patient_id: Option<&str>,
) -> Result<Authorized, ExitCode> {
    let fail = |e: anyhow::Error| internal(Some(session.id.clone()), &e).1;
    let now = state.clock.now();
    let a = authorizations::get(&state.db, authorization_id).await.map_err(fail)?.ok_or(ExitCode::InvalidRepairToken)?;
    let same_patient = matches!((a.patient_id.as_deref(), patient_id), (Some(old), Some(new)) if !old.is_empty() && old == new);
    if !same_patient || a.endpoint_id != endpoint.id {
        let entry = AuditEntry {
            actor: "patient",
            action: "repair.patient_mismatch",
            app_id: Some(&session.app_id),
            authorization_id: Some(authorization_id),
            detail: Some(json!({"payer_patient_known": patient_id.is_some(), "payer_tokens_discarded": true})),
            ..Default::default()
        };
        audit::record(&state.db.pool, now, entry).await.map_err(fail)?;
        tracing::warn!(authorization_id, "repair signed in as another payer patient: refused, nothing merged");
        return Err(ExitCode::RepairPatientMismatch);
    }
    // Under the refresh lease, so that no refresh of the old grant lands after the repair (or refuses it); the
    // authorization is read again there (a refresh may have changed its state meanwhile).
    let repaired = |a: Authorization| async move {
        if !a.is_repairable(now) {
            return Ok(Err(ExitCode::InvalidRepairToken));
        }
        let exchanged = tokens::exchanged_for(&state.db.pool, authorization_id).await?;
        let to = a.state.after_repair(exchanged);
        let next_sync = sync::next_resync_at(state.settings.resync_interval_secs, now);
        let mut tx = state.db.begin_write().await?;
        if !authorizations::repair(&mut tx, &state.cipher, authorization_id, a.state, to, now, tokens, urls, next_sync).await? {
            tx.rollback().await?;
            return Ok(Err(ExitCode::InvalidRepairToken));
        }
        audit::record(
            &mut *tx,
            now,
            AuditEntry {
                actor: "patient",
                action: "authorization.repaired",
                app_id: Some(&a.app_id),
                authorization_id: Some(authorization_id),
                detail: Some(json!({"from": a.state.as_str(), "to": to.as_str()})),
                ..Default::default()
            },
        )
        .await?;
        webhooks::enqueue_once(
            &mut tx,
            now,
            &a.app_id,
            WebhookEvent::AuthorizationRepaired,
            &format!("{authorization_id}|repaired:{now}"),
            json!({"authorization_id": authorization_id, "external_id": a.external_id, "endpoint_id": a.endpoint_id,
                   "previous_state": a.state.as_str(), "state": to.as_str(), "repaired_at": rfc3339(now),
                   "refresh_expires_at": tokens.refresh_expires_at}),
        )
        .await?;
        let detail = json!({"endpoint_id": endpoint.id, "usage": a.usage.as_str(), "reused": true, "repaired": true});
        match attach_and_mint(&mut tx, state, session, authorization_id, true, &endpoint.id, detail).await? {
            Some(done) => {
                tx.commit().await?;
                Ok(Ok(done))
            }
            None => {
                tx.rollback().await?;
                Ok(Err(ExitCode::PatientCancelled))
            }
        }
    };
    let leased = refresh::without_refresh(state, authorization_id, || async {
        match authorizations::get(&state.db, authorization_id).await? {
            Some(a) => repaired(a).await,
            None => Ok(Err(ExitCode::InvalidRepairToken)),
        }
    })
    .await;
    let result: anyhow::Result<Result<Authorized, ExitCode>> = match leased {
        Ok(r) => r,
        Err(RefreshError::Failed(code, why)) => {
            tracing::warn!(authorization_id, why, "repair waited too long for a payer refresh");
            Ok(Err(code))
        }
        Err(RefreshError::Internal(e)) => Err(e),
        Err(_) => Ok(Err(ExitCode::InvalidRepairToken)),
    };
    let done = result.map_err(fail)??;
    sync::wake();
    tracing::info!(authorization_id, "authorization repaired");
    Ok(done)
}

/// When session `session` was started by a hosted (re-connect) link: marks the link completed and queues its
/// `link.completed` webhook with the `public_token` (sealed until sent; `event_id` fixed by the link's id), in
/// the transaction that minted the token, so the integrator's backend gets it even if the patient never comes
/// back to the app.
async fn hosted_link_completed(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    state: &AppState,
    now: i64,
    session: &LinkSession,
    authorization_id: &str,
    public_token: &str,
) -> anyhow::Result<()> {
    let Some(link) = hosted_links::by_session(&mut **tx, &session.id).await? else { return Ok(()) };
    if !hosted_links::complete(&mut **tx, now, &link.id).await? {
        return Ok(());
    }
    let data = json!({
        "hosted_link_id": link.id,
        "externalId": link.external_id,
        "authorization_id": authorization_id,
        "public_token": public_token,
    });
    webhooks::enqueue_once_sealed(&mut **tx, &state.cipher, now, &link.app_id, WebhookEvent::LinkCompleted, &link.id, data).await
}

/// Whether session `s` has linked a plan that its ending must report as a success: it is past the payer's
/// authorization now (syncing or success), or, opened with `multiplePlans`, it linked plans before the one in
/// play.
pub fn has_linked_plans(s: &LinkSession) -> bool {
    matches!(s.step, LinkStep::Syncing | LinkStep::Success | LinkStep::Done)
        || (s.options.multiple_plans && s.plans_linked > 0)
}

/// "Connect another plan" on the success screen of a `multiplePlans` session: back to the plan search (the
/// transition [`link_sessions::another_plan`], from `success` only, while the session is live), with an
/// `ANOTHER_PLAN` event. The consent given covers the session: no second consent. Returns whether it moved (not
/// for a session without `multiplePlans`, or at another step).
///
/// # Errors
/// Database errors.
pub async fn another_plan(state: &AppState, s: &LinkSession) -> anyhow::Result<bool> {
    if !s.options.multiple_plans || s.step != LinkStep::Success {
        return Ok(false);
    }
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    if !link_sessions::another_plan(&mut *tx, now, &s.id).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    let moved = LinkSession { step: LinkStep::Search, plans_linked: s.plans_linked + 1, ..s.clone() };
    insights::record(&mut tx, now, &moved, NewEvent::new(LinkEventName::AnotherPlan, LinkStep::Success)).await?;
    tx.commit().await?;
    Ok(true)
}

/// Ends a modal session that linked plans ([`has_linked_plans`]) with success, whatever step the patient closed
/// it at: step `done` (one conditional update from `s.step`), its outstanding payer requests voided, and the
/// sealed `public_token` kept only when the plan in play is past its authorization (the page gets it once more).
/// The session's events go to the app (`link.events`) now, once.
///
/// # Errors
/// Database errors.
pub async fn finish_linked(state: &AppState, s: &LinkSession) -> anyhow::Result<()> {
    let now = state.clock.now();
    if !link_sessions::advance(&state.db, now, &s.id, s.step, LinkStep::Done, None).await? {
        return Ok(());
    }
    payer_auth_requests::void_for_session(&state.db.pool, now, &s.id).await?;
    if !matches!(s.step, LinkStep::Syncing | LinkStep::Success) {
        link_sessions::clear_public_token(&state.db, now, &s.id).await?;
    }
    let done = LinkSession { step: LinkStep::Done, ..s.clone() };
    if s.step == LinkStep::Syncing {
        // The modal hands the `public_token` over while the sync runs: that is the session's success.
        insights::note(&state.db, now, &done, NewEvent::new(LinkEventName::Success, s.step)).await;
    }
    let mut tx = state.db.begin_write().await?;
    insights::report(&mut tx, now, &done).await?;
    tx.commit().await?;
    Ok(())
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
        &state.db.pool,
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
/// `done`. `None` when the session has no token to give (not authorized, already finished, or finished by a
/// concurrent request: the move to `done` is one conditional update, so the result is handed over once), and
/// for a top-level session without `redirect_uri` (a hosted link of an app that registered none: its
/// `public_token` went to the app's backend in `link.completed`; the session is done and its own screen says
/// so).
///
/// # Errors
/// Database errors.
pub async fn finish_hosted(state: &AppState, s: &LinkSession) -> anyhow::Result<Option<String>> {
    if s.host_origin.is_some() {
        return Ok(None);
    }
    let Some(token) = link_sessions::public_token(&state.cipher, s) else { return Ok(None) };
    let now = state.clock.now();
    if !link_sessions::advance(&state.db, now, &s.id, s.step, LinkStep::Done, None).await? {
        return Ok(None);
    }
    link_sessions::clear_public_token(&state.db, now, &s.id).await?;
    if s.step == LinkStep::Syncing {
        // Handed the result while its sync still runs: that is the session's success.
        let done = LinkSession { step: LinkStep::Done, ..s.clone() };
        insights::note(&state.db, now, &done, NewEvent::new(LinkEventName::Success, s.step)).await;
    }
    // Started by `GET /link/auth` (OAuth 2.0 redirect flow, PKCE): the client gets a single-use `code` for
    // `POST /link/token` instead of the `public_token`, which is never shown.
    if s.code_challenge.is_some() {
        return redirect_flow_code(state, s).await.map(Some);
    }
    let Some(redirect_uri) = &s.redirect_uri else { return Ok(None) };
    let mut params = vec![("public_token", token.expose_secret())];
    if let Some(cs) = &s.client_state {
        params.push(("state", cs.as_str()));
    }
    Ok(Some(redirect_with(redirect_uri, &params)))
}

/// Ends session `s` with `code` (the patient cancelled, or a failure they cannot recover from), in one
/// transaction: step `exited` (only from the step `s` was read at, so a concurrent ending or authorization wins
/// and this one does nothing), the sealed `public_token` destroyed, its outstanding payer requests voided (a
/// late callback finds its `state` used: no authorization, sync or webhook), a `link.exited` audit record.
/// Returns where the hosted flow goes next (`redirect_uri?error=…&state=…`), `None` for the modal flow or when
/// the session had moved on meanwhile.
///
/// # Errors
/// Database errors.
pub async fn end(state: &AppState, s: &LinkSession, code: ExitCode) -> anyhow::Result<Option<String>> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    if !link_sessions::end(&mut *tx, now, &s.id, s.step, code).await? {
        tx.rollback().await?;
        return Ok(None);
    }
    let voided = payer_auth_requests::void_for_session(&mut *tx, now, &s.id).await?;
    let ended = LinkSession { step: LinkStep::Exited, exit_code: Some(code), ..s.clone() };
    insights::record(&mut tx, now, &ended, NewEvent::new(LinkEventName::Exit, s.step).code(code)).await?;
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "patient",
            action: "link.exited",
            app_id: Some(&s.app_id),
            authorization_id: s.authorization_id.as_deref(),
            request_id: None,
            detail: Some(json!({"code": code.as_str(), "payer_requests_voided": voided})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s.redirect_uri.as_ref().map(|ru| {
        let mut params = vec![("error", code.as_str())];
        if let Some(cs) = &s.client_state {
            params.push(("state", cs));
        }
        redirect_with(ru, &params)
    }))
}

/// Back to choosing a plan (search, or connect when the integrator fixed it) after an error or an abandoned
/// sign-in: the session's outstanding payer requests are voided first, so the sign-in it left cannot finish.
///
/// # Errors
/// Database errors.
pub async fn back_to_plans(state: &AppState, s: &LinkSession, to: LinkStep) -> anyhow::Result<()> {
    let now = state.clock.now();
    payer_auth_requests::void_for_session(&state.db.pool, now, &s.id).await?;
    link_sessions::set_step(&state.db, now, &s.id, to, None).await
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
            for name in [LinkEventName::SyncCompleted, LinkEventName::Success] {
                insights::note(&state.db, now, s, NewEvent::new(name, LinkStep::Syncing)).await;
            }
        }
    } else if st.status == crate::domain::SyncStatus::Failed {
        let code = st.exit_code.unwrap_or(ExitCode::SyncFailed);
        if link_sessions::advance(&state.db, now, &s.id, LinkStep::Syncing, LinkStep::Error, Some(code)).await? {
            s.step = LinkStep::Error;
            s.exit_code = Some(code);
            for name in [LinkEventName::SyncFailed, LinkEventName::Error] {
                insights::note(&state.db, now, s, NewEvent::new(name, LinkStep::Syncing).code(code)).await;
            }
        }
    }
    Ok(())
}

/// Most plans a search lists at once.
const PLAN_SEARCH_LIMIT: i64 = 50;
/// Longest plan query looked up (characters); the rest is ignored.
const PLAN_QUERY_MAX_CHARS: usize = 100;

/// A session that exists and has not expired (finished sessions stay readable until expiry).
///
/// # Errors
/// Database errors.
pub async fn live_session(state: &AppState, sid: &str) -> anyhow::Result<Option<LinkSession>> {
    Ok(link_sessions::get(&state.db, sid).await?.filter(|s| s.expires_at > state.clock.now()))
}

/// `q` as a plan search looks it up: its first [`PLAN_QUERY_MAX_CHARS`] characters.
pub fn plan_query(q: &str) -> String {
    q.chars().take(PLAN_QUERY_MAX_CHARS).collect()
}

/// Plans of `mode` matching `q` (brand and endpoint names and aliases, see [`directory::search`]), each with
/// its health, at most [`PLAN_SEARCH_LIMIT`].
///
/// # Errors
/// Database errors.
pub async fn plans_matching(state: &AppState, mode: crate::domain::Mode, q: &str) -> anyhow::Result<Vec<directory::PlanChoice>> {
    directory::plan_choices(state, mode, &plan_query(q), PLAN_SEARCH_LIMIT).await
}

/// Plans matching `q` for live session `sid` (its mode); an unknown or expired session gives an empty list.
///
/// # Errors
/// Database errors.
pub async fn plans_for_session(state: &AppState, sid: &str, q: &str) -> anyhow::Result<Vec<directory::PlanChoice>> {
    let Some(s) = live_session(state, sid).await? else { return Ok(Vec::new()) };
    plans_matching(state, s.mode, q).await
}

/// Records received so far by session `s`'s sync, as the patient reads them: (kind in plain words in the
/// session's language, count), see [`i18n::record_kinds`](crate::i18n::record_kinds). Empty before the payer
/// authorized.
///
/// # Errors
/// Database errors.
pub async fn sync_progress(state: &AppState, s: &LinkSession) -> anyhow::Result<Vec<(String, i64)>> {
    let Some(authz) = &s.authorization_id else { return Ok(Vec::new()) };
    let by_type: Vec<(String, i64)> =
        sync::status(&state.db, authz).await?.map(|st| st.progress.into_iter().collect()).unwrap_or_default();
    Ok(crate::i18n::record_kinds(&s.options.language, &by_type))
}

/// [`sync_progress`] of live session `sid`; an unknown or expired session gives an empty list.
///
/// # Errors
/// Database errors.
pub async fn sync_progress_of_session(state: &AppState, sid: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let Some(s) = live_session(state, sid).await? else { return Ok(Vec::new()) };
    sync_progress(state, &s).await
}
