//! The lifecycle sweep: every time rule of an authorization, applied by one worker per instance every 30 s
//! (every time read from `state.clock`, so tests move a `ManualClock` instead of sleeping).
//!
//! - **ONE_TIME**: [`ONE_TIME_TTL_SECS`] (24 h) after the payer authorized, the data is expunged (resources
//!   deleted, payer tokens destroyed, our tokens revoked; `EXPIRED` with reason `one_time_expired`).
//! - **MULTIPLE**: payer tokens that expire within [`REFRESH_MARGIN_SECS`] are refreshed through the one payer
//!   refresh (`services::payer::refresh`), which also decides when the payer refused (`NEEDS_REAUTH`, once).
//!   An authorization whose payer grant is known to be over moves to `NEEDS_REAUTH` without asking the payer.
//!   A `NEEDS_REAUTH` one stays readable until its own `expunge_at`, then is expunged like a ONE_TIME one.
//! - **Downgrade**: MULTIPLE stored as ONE_TIME (the endpoint gives no refresh token) gets one
//!   `usage.downgraded` audit record, so operators see it in `audit export` and `audit authorizations`.
//! - Revoked rows not yet expunged are expunged; expired connections-page grants are forgotten.
//! - Link sessions and payer authorization requests (the hand-off records) are purged an hour after they expired
//!   (sessions that led to a consent or an authorization stay, as their context); the rate limiters forget idle
//!   keys.
//!
//! Several instances may sweep at once: every step claims its rows with a conditional update or a lease.

use std::time::Duration;

use serde_json::json;

use crate::{
    domain::{StateReason, Usage},
    server::{
        services::{
            hosted_links, insights,
            lifecycle::transitions::{expunge_authorization, mark_needs_reauth},
            payer::refresh::{self, RefreshError},
            webhooks::{self, WebhookEvent},
        },
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations, connections_grants, link_sessions, payer_auth_requests, tokens,
        },
    },
};

/// MULTIPLE: payer tokens expiring within this many seconds are refreshed by the sweep.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// Rows handled per step of one pass.
const BATCH: i64 = 500;
/// Payer refreshes per pass (each is an HTTP call).
const REFRESH_BATCH: i64 = 100;
/// Period of the sweep worker (wall-clock).
const SWEEP_PERIOD: Duration = Duration::from_secs(30);
/// Connections-page grants, Link sessions and payer authorization requests are deleted this long after they
/// expired, in seconds.
const GRANT_PURGE_AFTER_SECS: i64 = 3600;

/// What a scheduled refresh attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New payer tokens stored; state `REFRESHED`.
    Refreshed,
    /// The payer refused (`invalid_grant`): now `NEEDS_REAUTH`.
    Refused,
    /// A transient failure (network, 5xx, timeout, unexpected answer): tried again after a while.
    Failed,
    /// Nothing to refresh (no payer token or refresh token, or the authorization is no longer active).
    Skipped,
}

/// Refreshes the payer tokens of a MULTIPLE authorization ahead of their expiry, through the one payer refresh
/// (RFC 6749 §6; SMART App Launch "Refresh access token").
///
/// # Errors
/// Database errors; payer failures are outcomes, not errors.
pub async fn refresh_payer_token(state: &AppState, authorization_id: &str) -> anyhow::Result<RefreshOutcome> {
    match refresh::refresh_current(state, authorization_id).await {
        Ok(_) => Ok(RefreshOutcome::Refreshed),
        Err(RefreshError::InvalidGrant) => Ok(RefreshOutcome::Refused),
        Err(RefreshError::NoRefreshToken | RefreshError::NotUsable) => Ok(RefreshOutcome::Skipped),
        Err(RefreshError::Failed(..)) => Ok(RefreshOutcome::Failed),
        Err(RefreshError::Internal(e)) => Err(e),
    }
}

/// One pass of every time rule; returns how many authorizations it acted on (expunged, refreshed, moved to
/// `NEEDS_REAUTH`, downgrade recorded). The worker runs it every 30 s; tests call it after moving the clock.
///
/// # Errors
/// Database errors (a failing authorization is logged and skipped, so one bad row does not stop the rest).
pub async fn sweep_once(state: &AppState) -> anyhow::Result<u64> {
    let now = state.clock.now();
    let mut acted = expunge_due(state, now).await?;
    // Set to NEEDS_REAUTH by another path without the readable window and the event: complete the transition.
    let unnotified = authorizations::needs_reauth_unnotified(&state.db, BATCH).await?;
    acted += needs_reauth_all(state, unnotified, StateReason::PayerRefusedRefresh).await;
    // MULTIPLE whose payer grant is known to be over: re-consent without asking the payer.
    let over = authorizations::payer_grant_over(&state.db, now, BATCH).await?;
    acted += needs_reauth_all(state, over, StateReason::PayerGrantExpired).await;
    acted += refresh_expiring(state, now).await?;
    acted += announce_pending_expirations(state, now).await?;
    acted += record_downgrades(state, now).await?;
    connections_grants::purge_expired(&state.db, now - GRANT_PURGE_AFTER_SECS).await?;
    hosted_links::purge(state, now).await?;
    acted += insights::sweep(&state.db, now, state.settings.insights_retention_days).await?;
    purge_link_records(state, now - GRANT_PURGE_AFTER_SECS).await?;
    tokens::clear_reissues(&state.db, now - tokens::REFRESH_REUSE_GRACE_SECS).await?;
    state.limits.retain_recent();
    Ok(acted)
}

/// Deletes payer authorization requests and abandoned Link sessions that expired before `before` (requests first:
/// a session is kept while one still refers to it).
async fn purge_link_records(state: &AppState, before: i64) -> anyhow::Result<()> {
    let requests = payer_auth_requests::purge_expired(&state.db.pool, before).await?;
    let sessions = link_sessions::purge_abandoned(&state.db.pool, before).await?;
    if requests + sessions > 0 {
        tracing::info!(requests, sessions, "purged expired link records");
    }
    Ok(())
}

/// Expunges what is due (ONE_TIME after 24 h, anything past its own `expunge_at`) and what another path revoked.
async fn expunge_due(state: &AppState, now: i64) -> anyhow::Result<u64> {
    let mut acted = 0;
    for (id, usage) in authorizations::due_for_expunge(&state.db, now, BATCH).await? {
        let reason = match usage {
            Usage::OneTime => StateReason::OneTimeExpired,
            Usage::Multiple => StateReason::Expired,
        };
        match expunge_authorization(state, &id, reason).await {
            Ok(()) => acted += 1,
            Err(e) => tracing::error!(authorization_id = %id, error = %format!("{e:#}"), "expunge failed"),
        }
    }
    // Its revoker already sent the event.
    for id in authorizations::revoked_not_expunged(&state.db, BATCH).await? {
        match expunge_authorization(state, &id, StateReason::Revoked).await {
            Ok(()) => acted += 1,
            Err(e) => tracing::error!(authorization_id = %id, error = %format!("{e:#}"), "expunge of a revoked authorization failed"),
        }
    }
    Ok(acted)
}

/// [`mark_needs_reauth`] for each id; returns how many changed. A failure is logged and the others still run.
async fn needs_reauth_all(state: &AppState, ids: Vec<String>, reason: StateReason) -> u64 {
    let mut changed = 0;
    for id in ids {
        match mark_needs_reauth(state, &id, reason).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(authorization_id = %id, error = %format!("{e:#}"), "re-consent transition failed"),
        }
    }
    changed
}

/// Refreshes MULTIPLE payer tokens about to expire.
async fn refresh_expiring(state: &AppState, now: i64) -> anyhow::Result<u64> {
    let mut acted = 0;
    for id in authorizations::payer_tokens_expiring(&state.db, now + REFRESH_MARGIN_SECS, now, REFRESH_BATCH).await? {
        match refresh_payer_token(state, &id).await {
            Ok(RefreshOutcome::Refreshed | RefreshOutcome::Refused) => acted += 1,
            Ok(_) => {}
            Err(e) => tracing::error!(authorization_id = %id, error = %format!("{e:#}"), "payer refresh failed"),
        }
    }
    Ok(acted)
}

/// Sends `authorization.pending_expiration` once for each MULTIPLE authorization whose payer grant ends within
/// `--pending-expiration-secs`, claimed in the same transaction as the webhook (one instance sends it; a new
/// grant end arms it again). Its `event_id` is derived from the authorization and the grant end.
async fn announce_pending_expirations(state: &AppState, now: i64) -> anyhow::Result<u64> {
    let mut acted = 0;
    let until = now + state.settings.pending_expiration_secs;
    for (id, ends_at) in authorizations::pending_expiration_due(&state.db, now, until, BATCH).await? {
        let mut tx = state.db.begin_write().await?;
        let Some(owner) = authorizations::claim_pending_expiration(&mut tx, &id, ends_at).await? else { continue };
        webhooks::enqueue_once(
            &mut tx,
            now,
            &owner.app_id,
            WebhookEvent::PendingExpiration,
            &format!("{id}|{ends_at}"),
            json!({"authorization_id": id, "external_id": owner.external_id, "endpoint_id": owner.endpoint_id,
                   "refresh_expires_at": ends_at,
                   "expires_in": ends_at - now}),
        )
        .await?;
        tx.commit().await?;
        acted += 1;
    }
    Ok(acted)
}

/// Makes every downgrade visible to the operator, once (claimed with one conditional update, so several
/// instances record it once).
async fn record_downgrades(state: &AppState, now: i64) -> anyhow::Result<u64> {
    let mut tx = state.db.begin_write().await?;
    let downgrades = authorizations::claim_unrecorded_downgrades(&mut tx, now).await?;
    let acted = downgrades.len() as u64;
    for d in downgrades {
        audit::record(
            &mut *tx,
            now,
            AuditEntry {
                actor: "system",
                action: "usage.downgraded",
                app_id: Some(&d.app_id),
                authorization_id: Some(&d.id),
                request_id: None,
                detail: Some(json!({"usage_requested": d.usage_requested.as_str(), "usage": d.usage.as_str(),
                                    "endpoint_id": d.endpoint_id, "billed_as": d.usage.as_str(),
                                    "why": "the endpoint gives no long-term (refresh) access"})),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(acted)
}

/// Starts the sweep worker: [`sweep_once`] every 30 s until `state.shutdown` is cancelled.
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let state = state.clone();
    vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = sweep_once(&state).await {
                        tracing::warn!(error = %format!("{e:#}"), "lifecycle sweep failed");
                    }
                }
            }
        }
    })]
}
