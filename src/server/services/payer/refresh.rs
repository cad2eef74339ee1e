//! The one refresh of a payer `access_token` (RFC 6749 §6), used by the sync (a token about to expire, or a
//! 401) and by the lifecycle sweep (tokens about to expire) alike, with one classification of what the payer
//! answered:
//! - new tokens: stored sealed (a rotated `refresh_token` before the new `access_token` is handed out), state
//!   `REFRESHED`, a `payer.refreshed` audit record, in one transaction;
//! - `invalid_grant` under any 4xx status: the payer refused the grant; the authorization moves to
//!   `NEEDS_REAUTH` with its audit record and `authorization.needs_reauth` webhook, exactly once
//!   (`lifecycle::transitions::mark_needs_reauth`);
//! - anything else (5xx, timeout, connection error, unusable answer): transient; the sweep waits
//!   [`REFRESH_RETRY_SECS`] before trying again.
//!
//! One refresh at a time per authorization across every instance: the caller that wins the refresh lease (a
//! column of `authorizations`) refreshes; the others wait for it and then find the token it stored
//! (compare-and-refresh: the caller names the `access_token` it found stale).

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::{
    domain::{AuthorizationState, ExitCode, StateReason},
    server::{
        platform::crypto,
        services::{
            lifecycle::transitions::mark_needs_reauth,
            payer::{discovery, oauth},
        },
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations::{self, PayerTokens},
            endpoints,
        },
    },
};

/// How long one holder may keep the refresh lease of an authorization, in seconds.
const REFRESH_LEASE_SECS: i64 = 60;
/// How long a caller waits for another holder's refresh before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(30);
/// Wait after a transient refresh failure (payer down, timeout) before the sweep tries again, in seconds.
pub const REFRESH_RETRY_SECS: i64 = 300;

/// Why a payer refresh did not give a new `access_token`.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The authorization has no payer `refresh_token`.
    #[error("no payer refresh_token")]
    NoRefreshToken,
    /// The payer refused the `refresh_token` (`invalid_grant`); the authorization is `NEEDS_REAUTH`.
    #[error("payer refused the refresh_token")]
    InvalidGrant,
    /// The authorization does not exist, or is revoked, expired or expunged.
    #[error("authorization not usable")]
    NotUsable,
    /// A transient or configuration failure at the payer; the exit code says which.
    #[error("payer refresh failed: {1}")]
    Failed(ExitCode, String),
    /// A failure of ours (database, keyring).
    #[error("payer refresh failed internally")]
    Internal(#[source] anyhow::Error),
}

impl From<anyhow::Error> for RefreshError {
    fn from(e: anyhow::Error) -> Self {
        RefreshError::Internal(e)
    }
}

/// A new payer `access_token` and when it expires (Unix s).
pub struct Refreshed {
    /// The payer `access_token`.
    pub access_token: SecretString,
    /// Its expiry (Unix s).
    pub expires_at: Option<i64>,
}

/// Refreshes the payer `access_token` of an authorization and returns the new one.
///
/// `stale` is the `access_token` the caller found expired or refused (a 401). When the stored token already
/// differs from it, someone refreshed since the caller read it, and that token is returned without calling the
/// payer, even when the other refresh finished before this call began.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh(state: &AppState, authorization_id: &str, stale: &SecretString) -> Result<Refreshed, RefreshError> {
    // Someone else refreshing: wait for the lease (then `refresh_leased` finds the token it stored); one whose
    // refresh was refused meanwhile has nothing to refresh.
    let gave_up = |a: &authorizations::Authorization| (a.state == AuthorizationState::NeedsReauth).then_some(RefreshError::InvalidGrant);
    let owner = take_lease(state, authorization_id, gave_up).await?;
    let result = refresh_leased(state, authorization_id, stale.expose_secret()).await;
    release_lease(state, authorization_id, &owner).await;
    result
}

/// Runs `work` holding the refresh lease of an authorization, so that no payer refresh of it runs meanwhile (one
/// in flight finishes first, waiting at most 30 s): repair mode replaces the payer grant under it, and a refresh
/// of the old grant can then neither overwrite the new tokens nor mark the repaired authorization `NEEDS_REAUTH`.
///
/// # Errors
/// `Failed(PAYER_TIMEOUT)` when the lease stayed taken; `NotUsable` for an unknown authorization; database errors.
pub async fn without_refresh<T, F>(state: &AppState, authorization_id: &str, work: impl FnOnce() -> F) -> Result<T, RefreshError>
where
    F: std::future::Future<Output = T>,
{
    let owner = take_lease(state, authorization_id, |_| None).await?;
    let out = work().await;
    release_lease(state, authorization_id, &owner).await;
    Ok(out)
}

/// Takes the refresh lease of an authorization for a new owner (returned), waiting while another holds it, at most
/// [`LEASE_WAIT`]; `give_up` may end the wait with its error, asked after each wait with the authorization as it is.
async fn take_lease(
    state: &AppState,
    authorization_id: &str,
    give_up: impl Fn(&authorizations::Authorization) -> Option<RefreshError>,
) -> Result<String, RefreshError> {
    let owner = crypto::random_id(12);
    let deadline = tokio::time::Instant::now() + LEASE_WAIT;
    loop {
        let now = state.clock.now();
        if authorizations::take_refresh_lease(&state.db, authorization_id, &owner, now + REFRESH_LEASE_SECS, now).await? {
            return Ok(owner);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(RefreshError::Failed(ExitCode::PayerTimeout, "refresh lease held too long".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        match authorizations::get(&state.db, authorization_id).await? {
            None => return Err(RefreshError::NotUsable),
            Some(a) => {
                if let Some(e) = give_up(&a) {
                    return Err(e);
                }
            }
        }
    }
}

async fn release_lease(state: &AppState, authorization_id: &str, owner: &str) {
    if let Err(e) = authorizations::release_refresh_lease(&state.db, authorization_id, owner).await {
        // The lease expires on its own after REFRESH_LEASE_SECS; the work itself is done.
        tracing::warn!(authorization_id, error = %format!("{e:#}"), "releasing the refresh lease failed");
    }
}

/// Refreshes the payer tokens an authorization holds now (the sweep's refresh ahead of expiry): [`refresh`]
/// with the stored `access_token` as the stale one.
///
/// # Errors
/// See [`RefreshError`].
pub async fn refresh_current(state: &AppState, authorization_id: &str) -> Result<Refreshed, RefreshError> {
    let creds = authorizations::payer_credentials(&state.db, &state.cipher, authorization_id)
        .await?
        .ok_or(RefreshError::NotUsable)?;
    let current = creds.access_token.ok_or(RefreshError::NotUsable)?;
    refresh(state, authorization_id, &current).await
}

async fn refresh_leased(state: &AppState, authorization_id: &str, stale: &str) -> Result<Refreshed, RefreshError> {
    let auth = authorizations::get(&state.db, authorization_id).await?.ok_or(RefreshError::NotUsable)?;
    if auth.is_ended() {
        return Err(RefreshError::NotUsable);
    }
    if auth.state == AuthorizationState::NeedsReauth {
        return Err(RefreshError::InvalidGrant);
    }
    let creds = authorizations::payer_credentials(&state.db, &state.cipher, authorization_id)
        .await?
        .ok_or(RefreshError::NotUsable)?;
    // A refresh that finished before we took the lease already replaced the token the caller found stale.
    if let Some(current) = &creds.access_token {
        if !crypto::ct_eq(stale.as_bytes(), current.expose_secret().as_bytes()) {
            return Ok(Refreshed { access_token: current.clone(), expires_at: creds.expires_at });
        }
    }
    let refresh_token = creds.refresh_token.ok_or(RefreshError::NoRefreshToken)?;
    let endpoint = endpoints::get(&state.db, &auth.endpoint_id)
        .await?
        .ok_or_else(|| RefreshError::Failed(ExitCode::InvalidEndpoint, "endpoint removed".into()))?;
    let token_url = match creds.token_url {
        Some(t) => t,
        None => discovery::discover(&state.http, &endpoint).await.map_err(|c| RefreshError::Failed(c, "discovery failed".into()))?.token_url,
    };
    let now = state.clock.now();
    match oauth::refresh_grant(&state.http, &endpoint, &token_url, &refresh_token, now).await {
        Ok(mut grant) => {
            grant.tokens.refresh_expires_at = endpoints::capped_grant_end(&state.db, &endpoint.id, auth.created_at, grant.tokens.refresh_expires_at).await?;
            store(state, &auth.app_id, authorization_id, grant.tokens, refresh_token).await
        }
        Err(f) if f.is_refusal() => {
            tracing::warn!(authorization_id, failure = %f, "payer refused the refresh");
            mark_needs_reauth(state, authorization_id, StateReason::PayerRefusedRefresh).await?;
            Err(RefreshError::InvalidGrant)
        }
        Err(f) => {
            tracing::warn!(authorization_id, failure = %f, "payer refresh failed");
            authorizations::defer_refresh(&state.db, authorization_id, now + REFRESH_RETRY_SECS).await?;
            Err(RefreshError::Failed(f.exit_code(), f.to_string()))
        }
    }
}

/// Stores refreshed tokens (keeping the old `refresh_token` when the payer did not rotate it) and audits it, in
/// one transaction, before anyone uses the new access token: a crash now cannot lose a rotated refresh token.
async fn store(
    state: &AppState,
    app_id: &str,
    authorization_id: &str,
    mut tokens: PayerTokens,
    previous_refresh_token: SecretString,
) -> Result<Refreshed, RefreshError> {
    let now = state.clock.now();
    let rotated = tokens.refresh_token.is_some();
    tokens.refresh_token.get_or_insert(previous_refresh_token);
    let mut tx = state.db.begin_write().await.map_err(anyhow::Error::from)?;
    authorizations::store_refreshed_tokens(&mut tx, &state.cipher, authorization_id, now, &tokens).await?;
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "system",
            action: "payer.refreshed",
            app_id: Some(app_id),
            authorization_id: Some(authorization_id),
            request_id: None,
            detail: Some(json!({"rotated_refresh_token": rotated})),
        },
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Refreshed { access_token: tokens.access_token, expires_at: tokens.expires_at })
}
