//! The transitions that end or suspend an authorization, each with its audit records and its webhook written in
//! the same transaction as the change, so they happen together or not at all:
//! - [`mark_needs_reauth`]: the payer refused a refresh (or its grant ended): `NEEDS_REAUTH`, once.
//! - [`expunge_authorization`]: revoked or expired: data, payer tokens and our tokens destroyed, once.
//!
//! And the question every read asks first: [`access_status`] (readable now, and if not, why).

use serde_json::json;

use crate::{
    domain::{AuthorizationState, StateReason},
    server::{
        platform::db::Backend,
        services::webhooks::{self, rfc3339, WebhookEvent},
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations, link_sessions, resources, tokens,
        },
    },
};

/// Whether an authorization's data may be read now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessStatus {
    /// Where it is in its life.
    pub state: AuthorizationState,
    /// Why it is in that state, when known (for a live row past its end: why it ended).
    pub reason: Option<StateReason>,
    /// True when the FHIR API may serve its data now.
    pub readable: bool,
    /// When its data is (or was) to be expunged (Unix s).
    pub expunge_at: Option<i64>,
}

impl AccessStatus {
    /// A sentence for the 401 `error_description` (RFC 6750 §3) or an OperationOutcome's `diagnostics`.
    /// Holds no identifier or health data.
    pub fn description(&self) -> &'static str {
        match self.reason {
            Some(StateReason::OneTimeExpired) => {
                "This ONE_TIME authorization ended 24 hours after the patient granted it; its data was deleted."
            }
            Some(StateReason::RevokedByPatient) => "The patient removed this connection; its data was deleted.",
            Some(StateReason::RevokedByApp) => "The app revoked this authorization; its data was deleted.",
            Some(StateReason::RevokedByOperator) => "The operator revoked this authorization; its data was deleted.",
            Some(StateReason::PayerRefusedRefresh | StateReason::PayerGrantExpired) if self.readable => {
                "The health plan ended long-term access; data stays readable until the patient links again or it expires."
            }
            Some(StateReason::PayerRefusedRefresh | StateReason::PayerGrantExpired | StateReason::Expired) => {
                "This authorization expired; the patient must link their health plan again."
            }
            _ if self.state == AuthorizationState::Revoked => "This authorization was revoked; its data was deleted.",
            _ if !self.readable => "This authorization expired; its data was deleted.",
            _ => "The authorization is active.",
        }
    }
}

/// The readability of an authorization at `now` (the live rule of `store::authorizations`), or `None` for an
/// unknown id. The integrator and FHIR APIs check it on every read and answer 401 (`invalid_token`, with
/// [`AccessStatus::description`]) when `readable` is false; a ONE_TIME authorization is refused the second its
/// window ends, even before the sweep expunged it.
///
/// # Errors
/// Database errors.
pub async fn access_status(
    db: &crate::server::platform::db::Db,
    now: i64,
    authorization_id: &str,
) -> anyhow::Result<Option<AccessStatus>> {
    let Some(a) = authorizations::get(db, authorization_id).await? else { return Ok(None) };
    Ok(Some(access_status_of(&a, now)))
}

/// [`access_status`] of an authorization row already read (the bearer check reads it once).
pub fn access_status_of(a: &authorizations::Authorization, now: i64) -> AccessStatus {
    let readable = a.is_live(now);
    let mut reason = a.state_reason;
    if !readable && !a.is_ended() && reason.is_none() {
        reason = Some(match a.usage {
            crate::domain::Usage::OneTime => StateReason::OneTimeExpired,
            crate::domain::Usage::Multiple => StateReason::Expired,
        });
    }
    AccessStatus { state: a.state, reason, readable, expunge_at: a.data_ends_at() }
}

/// Destroys everything held for an authorization, at once and for good, in one transaction: its resources are
/// deleted, its payer tokens destroyed (sealed columns set to NULL, the sessions' sealed `public_token` copies
/// cleared), and every token we issued for it revoked. The state becomes `REVOKED` when `reason` is a
/// revocation (then the `authorization_revoked` webhook is queued) and `EXPIRED` otherwise; an `expunged` audit
/// record is written (and `authorization.revoked` for a revocation).
///
/// Idempotent: a second call deletes nothing more and sends no second event. A row already set to `REVOKED` by
/// another path keeps that state and its reason, and no event is sent for it (its revoker is responsible).
///
/// # Errors
/// Database errors (nothing is half-done).
pub async fn expunge_authorization(state: &AppState, authorization_id: &str, reason: StateReason) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    if state.db.backend() == Backend::Sqlite {
        // Overwrite deleted content in the file instead of leaving it in free pages.
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *tx).await?;
    }
    let Some(done) = authorizations::expunge(&mut tx, state.db.backend(), authorization_id, reason, now).await? else {
        tx.commit().await?;
        tracing::debug!(authorization_id, "expunge: already expunged or unknown");
        return Ok(());
    };
    let resources_deleted = resources::delete_for_authorization(&mut *tx, authorization_id).await?;
    link_sessions::clear_public_tokens_of_authorization(&mut *tx, now, authorization_id).await?;
    let tokens_revoked = tokens::revoke_for_authorization(&mut *tx, now, authorization_id).await?;
    let owner = &done.owner;
    if done.newly_revoked {
        audit::record(
            &mut *tx,
            now,
            AuditEntry {
                actor: &actor_of(reason, &owner.app_id),
                action: "authorization.revoked",
                app_id: Some(&owner.app_id),
                authorization_id: Some(authorization_id),
                request_id: None,
                detail: Some(json!({"reason": reason.as_str()})),
            },
        )
        .await?;
    }
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "system",
            action: "expunged",
            app_id: Some(&owner.app_id),
            authorization_id: Some(authorization_id),
            request_id: None,
            detail: Some(json!({"reason": reason.as_str(), "resources_deleted": resources_deleted,
                                "tokens_revoked": tokens_revoked, "payer_tokens_destroyed": true})),
        },
    )
    .await?;
    if done.state == AuthorizationState::Expired {
        // The first expunge of an authorization that expired (there is no second): once, with an id derived from it.
        webhooks::enqueue_once(
            &mut tx,
            now,
            &owner.app_id,
            WebhookEvent::AuthorizationExpired,
            authorization_id,
            json!({"authorization_id": authorization_id, "external_id": owner.external_id,
                   "endpoint_id": owner.endpoint_id, "reason": reason.as_str(),
                   "state": AuthorizationState::Expired.as_str(), "expired_at": rfc3339(now)}),
        )
        .await?;
    } else if done.newly_revoked {
        webhooks::enqueue(
            &mut tx,
            now,
            &owner.app_id,
            WebhookEvent::AuthorizationRevoked,
            json!({"authorization_id": authorization_id, "external_id": owner.external_id,
                   "endpoint_id": owner.endpoint_id, "reason": reason.as_str(), "revoked_at": rfc3339(now)}),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(authorization_id, reason = reason.as_str(), resources_deleted, tokens_revoked, "authorization expunged");
    Ok(())
}

fn actor_of(reason: StateReason, app_id: &str) -> String {
    match reason {
        StateReason::RevokedByPatient => "patient".to_string(),
        StateReason::RevokedByApp => format!("app:{app_id}"),
        StateReason::RevokedByOperator => "operator".to_string(),
        _ => "system".to_string(),
    }
}

/// Moves a MULTIPLE authorization to `NEEDS_REAUTH` after its payer refused a refresh (or its grant is known to
/// have ended), in one transaction: the now useless payer `refresh_token` destroyed, the data kept readable until
/// the authorization's own `expunge_at` (now + `--reauth-grace-secs` when it had none), a
/// `payer.refresh_refused` audit record and the `authorization.needs_reauth` webhook. Once per authorization: returns
/// false when it was not in an active (or not yet notified `NEEDS_REAUTH`) state, and then does nothing.
///
/// # Errors
/// Database errors.
pub async fn mark_needs_reauth(state: &AppState, authorization_id: &str, reason: StateReason) -> anyhow::Result<bool> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let moved =
        authorizations::mark_needs_reauth(&mut tx, authorization_id, reason, now, now + state.settings.reauth_grace_secs)
            .await?;
    let Some((owner, until, repaired_at)) = moved else {
        tx.commit().await?;
        return Ok(false);
    };
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "system",
            action: "payer.refresh_refused",
            app_id: Some(&owner.app_id),
            authorization_id: Some(authorization_id),
            request_id: None,
            detail: Some(json!({"reason": reason.as_str(), "readable_until": until})),
        },
    )
    .await?;
    // Once per authorization (the transition happens once; again only after a repair): the id is derived from it
    // and, after a repair, from when it was repaired.
    let fact = match repaired_at {
        None => authorization_id.to_string(),
        Some(at) => format!("{authorization_id}|repaired:{at}"),
    };
    webhooks::enqueue_once(
        &mut tx,
        now,
        &owner.app_id,
        WebhookEvent::NeedsReauth,
        &fact,
        json!({"authorization_id": authorization_id, "external_id": owner.external_id,
               "endpoint_id": owner.endpoint_id, "reason": reason.as_str(),
               "state": AuthorizationState::NeedsReauth.as_str(), "readable_until": until.map(rfc3339),
               "expires_at": until}),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(authorization_id, reason = reason.as_str(), "authorization needs re-consent");
    Ok(true)
}
