//! Usage rules and expiry: ONE_TIME expunge after 24 h, MULTIPLE payer refresh and re-consent, revocation,
//! encryption of synced resources at rest, and the connections page's signed links.
//!
//! Compiled only with `ssr`.
//!
//! # Rules (every time read from `state.clock`, so tests move a `ManualClock` instead of sleeping)
//! - **ONE_TIME**: [`ONE_TIME_TTL_SECS`] (24 h) after the authorization was created (the payer's consent), the
//!   sweep calls [`expunge_authorization`]: resources deleted, payer tokens destroyed (sealed columns set to
//!   NULL), every token we issued for it revoked, state `EXPIRED` with reason [`REASON_ONE_TIME_EXPIRED`].
//!   [`access_status`] already answers "not readable" the second the window ends, even before the sweep ran.
//! - **MULTIPLE**: the sweep refreshes payer tokens that expire within [`REFRESH_MARGIN_SECS`]
//!   ([`refresh_payer_token`]). When the payer refuses (`invalid_grant`, RFC 6749 §5.2) or its refresh grant
//!   is known to have expired, [`mark_needs_reauth`] moves the authorization to `NEEDS_REAUTH` (the patient
//!   must link again), keeps it readable until its own `expunge_at` (set to now + `--reauth-grace-secs` when it had
//!   none), and sends `refresh_expired`. At `expunge_at` it is expunged like a ONE_TIME one.
//! - **Downgrade**: MULTIPLE on an endpoint that gives no refresh token is stored as ONE_TIME with
//!   `authorizations.downgraded = 1` by the Sync part; the sweep writes one `usage.downgraded` audit record per
//!   such authorization so the operator sees it in `audit export` and `audit authorizations --downgraded`.
//! - **Revocation** (patient on the connections page, integrator API, operator) expunges at once:
//!   [`expunge_authorization`] with a `revoked_*` reason sets `REVOKED` and sends `authorization_revoked`.
//!
//! # Encryption at rest
//! Payer tokens are always sealed (see `authorizations.rs`). With `--encrypt-resources` the JSON of each synced
//! resource is sealed too (`sync::store::seal_body` / `sync::store::body_text`), bound by its aad to its
//! `(authorization, type, id)` key. The search columns (`patient_ref`, dates, status, codes) stay in clear so
//! the FHIR API can search; they hold no token or secret. On SQLite, expunge deletes with `secure_delete` on,
//! so deleted rows are overwritten in the file rather than left in free pages.
//!
//! # Connections page access
//! A publishable key and an `externalId` are both known to the browser, so together they would let anyone list
//! and remove another user's links. The page therefore opens only with a short-lived grant minted by the
//! integrator's *backend* with its secret key: `POST /link/connections-url` `{"externalId": "…"}` (key as
//! `Authorization: Bearer sk_…` or `secret_key` in the body) →
//! `{"url": "…/link/connections?token=ct_…", "expires_in": 900}`. The token is 256-bit, stored only as a hash,
//! bound to one app, mode and user, valid for [`CONNECTIONS_GRANT_TTL_SECS`] (reusable within it so the page can
//! be reloaded and its forms posted), and never logged (request spans omit the query string; pages are sent
//! with `Referrer-Policy: no-referrer`).

use std::time::Duration;

use anyhow::Context as _;
use axum::http::{header, StatusCode};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::server::{
    platform::{
        crypto,
        db::{Backend, Db},
    },
    services::webhooks,
    state::AppState,
    store::{
        audit::{self, AuditEntry},
        authorizations::{self, PayerTokens},
        tokens,
    },
};
use crate::domain::Mode;

/// ONE_TIME window: data is expunged this many seconds after authorization (24 h).
pub const ONE_TIME_TTL_SECS: i64 = 86_400;
/// MULTIPLE: payer tokens expiring within this many seconds are refreshed by the sweep.
pub const REFRESH_MARGIN_SECS: i64 = 300;
/// Wait after a transient refresh failure (payer down, timeout) before the next try, in seconds.
pub const REFRESH_RETRY_SECS: i64 = 300;
/// Lifetime of a connections-page grant, in seconds (15 min).
pub const CONNECTIONS_GRANT_TTL_SECS: i64 = 900;
/// Period of the sweep worker (wall-clock), in seconds.
const SWEEP_PERIOD: Duration = Duration::from_secs(30);

/// Reason: a ONE_TIME authorization reached the end of its 24 h window.
pub const REASON_ONE_TIME_EXPIRED: &str = "one_time_expired";
/// Reason: the authorization's own `expunge_at` passed (e.g. the re-consent window of a `NEEDS_REAUTH` one).
pub const REASON_EXPIRED: &str = "expired";
/// Reason: the patient removed the link on the connections page.
pub const REASON_REVOKED_BY_PATIENT: &str = "revoked_by_patient";
/// Reason: the integrator revoked it through the API.
pub const REASON_REVOKED_BY_APP: &str = "revoked_by_app";
/// Reason: the operator revoked it.
pub const REASON_REVOKED_BY_OPERATOR: &str = "revoked_by_operator";
/// Reason: revoked by a path that recorded no reason of its own.
pub const REASON_REVOKED: &str = "revoked";
/// Reason of `NEEDS_REAUTH`: the payer answered `invalid_grant` to a refresh.
pub const REASON_PAYER_REFUSED_REFRESH: &str = "payer_refused_refresh";
/// Reason of `NEEDS_REAUTH`: the payer's refresh grant expired (known expiry passed, or no refresh token).
pub const REASON_PAYER_GRANT_EXPIRED: &str = "payer_grant_expired";

/// Whether an authorization's data may be read now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessStatus {
    /// `AUTHORIZED`, `EXCHANGED`, `REFRESHED`, `NEEDS_REAUTH`, `REVOKED` or `EXPIRED`.
    pub state: String,
    /// Why it is in that state (`REASON_*`), when known.
    pub reason: Option<String>,
    /// True when the FHIR API may serve its data now.
    pub readable: bool,
    /// When its data is (or was) to be expunged (Unix s).
    pub expunge_at: Option<i64>,
}

impl AccessStatus {
    /// A sentence for the 401 `error_description` (RFC 6750 §3) or an OperationOutcome's `diagnostics`.
    /// Holds no identifier or health data.
    pub fn description(&self) -> &'static str {
        match self.reason.as_deref() {
            Some(REASON_ONE_TIME_EXPIRED) => {
                "This ONE_TIME authorization ended 24 hours after the patient granted it; its data was deleted."
            }
            Some(REASON_REVOKED_BY_PATIENT) => "The patient removed this connection; its data was deleted.",
            Some(REASON_REVOKED_BY_APP) => "The app revoked this authorization; its data was deleted.",
            Some(REASON_REVOKED_BY_OPERATOR) => "The operator revoked this authorization; its data was deleted.",
            Some(REASON_PAYER_REFUSED_REFRESH) | Some(REASON_PAYER_GRANT_EXPIRED) if self.readable => {
                "The health plan ended long-term access; data stays readable until the patient links again or it expires."
            }
            Some(REASON_PAYER_REFUSED_REFRESH) | Some(REASON_PAYER_GRANT_EXPIRED) | Some(REASON_EXPIRED) => {
                "This authorization expired; the patient must link their health plan again."
            }
            _ if self.state == authorizations::REVOKED => "This authorization was revoked; its data was deleted.",
            _ if !self.readable => "This authorization expired; its data was deleted.",
            _ => "The authorization is active.",
        }
    }
}

/// The readability of an authorization at `now`, or `None` for an unknown id. The Integrator API checks it on
/// every read and answers 401 (`invalid_token`, with [`AccessStatus::description`]) when `readable` is false.
///
/// The time rules are applied here too, so a ONE_TIME authorization is refused the second its window ends even
/// if the sweep has not run yet.
///
/// # Errors
/// Database errors.
pub async fn access_status(db: &Db, now: i64, authorization_id: &str) -> anyhow::Result<Option<AccessStatus>> {
    let Some(row) = sqlx::query(
        "SELECT state, state_reason, usage, created_at, expunge_at, expunged_at FROM authorizations WHERE id = $1",
    )
    .bind(authorization_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let state: String = row.try_get("state")?;
    let mut reason: Option<String> = row.try_get("state_reason")?;
    let usage: String = row.try_get("usage")?;
    let created_at: i64 = row.try_get("created_at")?;
    let mut expunge_at: Option<i64> = row.try_get("expunge_at")?;
    let expunged_at: Option<i64> = row.try_get("expunged_at")?;
    if usage == "ONE_TIME" {
        let end = created_at + ONE_TIME_TTL_SECS;
        expunge_at = Some(expunge_at.map_or(end, |e| e.min(end)));
    }
    let ended = matches!(state.as_str(), authorizations::REVOKED | authorizations::EXPIRED) || expunged_at.is_some();
    let due = expunge_at.is_some_and(|e| e <= now);
    if !ended && due && reason.is_none() {
        reason = Some(if usage == "ONE_TIME" { REASON_ONE_TIME_EXPIRED } else { REASON_EXPIRED }.to_string());
    }
    Ok(Some(AccessStatus { state, reason, readable: !ended && !due, expunge_at }))
}

/// Destroys everything held for an authorization, at once and for good: its resources are deleted, its payer
/// tokens destroyed (sealed columns set to NULL, the sealed `public_token` copy cleared), and every token we
/// issued for it revoked. The state becomes `REVOKED` when `reason` starts with `revoked` (see `REASON_*`)
/// — then the `authorization_revoked` webhook is sent — and `EXPIRED` otherwise. An `expunged` audit record
/// is written (and `authorization.revoked` for a revocation).
///
/// Idempotent: a second call deletes nothing more and sends no second event. Callers must not send
/// `authorization_revoked` themselves. A row already set to `REVOKED` by another path keeps that state and its
/// reason, and no event is sent for it (its revoker is responsible); the sweep expunges such rows at once.
///
/// # Errors
/// Database errors (nothing is half-done: the deletes run in one transaction).
pub async fn expunge_authorization(state: &AppState, authorization_id: &str, reason: &str) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    if state.db.backend() == Backend::Sqlite {
        // Overwrite deleted content in the file instead of leaving it in free pages.
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *tx).await?;
    }
    // A row another path already marked REVOKED (e.g. `authorizations::set_state`) stays REVOKED with its
    // reason, and its revoker has sent the event: only a transition made here sends `authorization_revoked`.
    let prior: Option<String> = sqlx::query(&format!(
        "SELECT state FROM authorizations WHERE id = $1 AND expunged_at IS NULL {}",
        if state.db.backend() == Backend::Postgres { "FOR UPDATE" } else { "" }
    ))
    .bind(authorization_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("state"))
    .transpose()?;
    let already_revoked = prior.as_deref() == Some(authorizations::REVOKED);
    let revoking = reason.starts_with("revoked") && !already_revoked;
    let revoked = revoking || already_revoked;
    let new_state = if revoked { authorizations::REVOKED } else { authorizations::EXPIRED };
    let first = sqlx::query(
        "UPDATE authorizations SET state = $1, state_reason = CASE WHEN $6 = 1 THEN COALESCE(state_reason, $2) ELSE $2 END, \
         expunged_at = $3, updated_at = $3, \
         revoked_at = CASE WHEN $4 = 1 THEN COALESCE(revoked_at, $3) ELSE revoked_at END, \
         payer_access_token_enc = NULL, payer_refresh_token_enc = NULL, payer_key_id = NULL, next_sync_at = NULL \
         WHERE id = $5 AND expunged_at IS NULL \
         RETURNING app_id, external_id, endpoint_id",
    )
    .bind(new_state)
    .bind(if already_revoked { REASON_REVOKED } else { reason })
    .bind(now)
    .bind(i64::from(revoked))
    .bind(authorization_id)
    .bind(i64::from(already_revoked))
    .fetch_optional(&mut *tx)
    .await?;
    let resources = crate::server::store::resources::delete_for_authorization(&mut tx, authorization_id).await?;
    sqlx::query("UPDATE link_sessions SET public_token_enc = NULL, public_token_key_id = NULL WHERE authorization_id = $1")
        .bind(authorization_id)
        .execute(&mut *tx)
        .await?;
    let revoked_tokens = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE authorization_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(authorization_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    // Also through the owner's helper, in case it revokes more than the `tokens` rows (a no-op otherwise).
    let _ = tokens::revoke_for_authorization(&state.db, now, authorization_id).await;

    let Some(row) = first else {
        tracing::debug!(authorization_id, "expunge: already expunged or unknown");
        return Ok(());
    };
    let app_id: String = row.try_get("app_id")?;
    let external_id: String = row.try_get("external_id")?;
    let endpoint_id: String = row.try_get("endpoint_id")?;
    tracing::info!(authorization_id, reason, resources, revoked_tokens, "authorization expunged");
    let actor = actor_of(reason, &app_id);
    if revoking {
        audit::record(
            &state.db,
            now,
            AuditEntry {
                actor: &actor,
                action: "authorization.revoked",
                app_id: Some(&app_id),
                authorization_id: Some(authorization_id),
                request_id: None,
                detail: Some(json!({"reason": reason})),
            },
        )
        .await?;
    }
    audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "system",
            action: "expunged",
            app_id: Some(&app_id),
            authorization_id: Some(authorization_id),
            request_id: None,
            detail: Some(json!({"reason": reason, "resources_deleted": resources, "tokens_revoked": revoked_tokens,
                                "payer_tokens_destroyed": true})),
        },
    )
    .await?;
    if revoking {
        webhooks::enqueue(
            &state.db,
            now,
            &app_id,
            "authorization_revoked",
            json!({"authorization_id": authorization_id, "external_id": external_id, "endpoint_id": endpoint_id,
                   "reason": reason, "revoked_at": webhooks::rfc3339(now)}),
        )
        .await?;
    }
    Ok(())
}

fn actor_of(reason: &str, app_id: &str) -> String {
    match reason {
        REASON_REVOKED_BY_PATIENT => "patient".to_string(),
        REASON_REVOKED_BY_APP => format!("app:{app_id}"),
        REASON_REVOKED_BY_OPERATOR => "operator".to_string(),
        _ => "system".to_string(),
    }
}

/// Moves a MULTIPLE authorization to `NEEDS_REAUTH` after its payer refused a refresh (or the payer grant is
/// known to have ended), destroys the now useless payer `refresh_token`, keeps the data readable until the
/// authorization's own `expunge_at` (set to now + `--reauth-grace-secs` when it had none), writes a
/// `payer.refresh_refused` audit record and sends `refresh_expired`. Returns false when it was not in an
/// active state (nothing done, no event).
///
/// The Sync part calls this when a refresh it makes is refused with `invalid_grant`. A row set to
/// `NEEDS_REAUTH` by another path without this (no `reauth_notified_at`) is completed by the sweep.
///
/// # Errors
/// Database errors.
pub async fn mark_needs_reauth(state: &AppState, authorization_id: &str, reason: &str) -> anyhow::Result<bool> {
    let now = state.clock.now();
    // Also adopts a row another path already set to NEEDS_REAUTH without notifying (reauth_notified_at NULL).
    let row = sqlx::query(
        "UPDATE authorizations SET state = 'NEEDS_REAUTH', state_reason = COALESCE(state_reason, $1), \
         updated_at = $2, reauth_notified_at = $2, expunge_at = COALESCE(expunge_at, $3), \
         payer_refresh_token_enc = NULL, next_sync_at = NULL \
         WHERE id = $4 AND expunged_at IS NULL AND reauth_notified_at IS NULL \
         AND state IN ('AUTHORIZED', 'EXCHANGED', 'REFRESHED', 'NEEDS_REAUTH') \
         RETURNING app_id, external_id, endpoint_id, expunge_at",
    )
    .bind(reason)
    .bind(now)
    .bind(now + state.settings.reauth_grace_secs)
    .bind(authorization_id)
    .fetch_optional(&state.db.pool)
    .await?;
    let Some(row) = row else { return Ok(false) };
    let app_id: String = row.try_get("app_id")?;
    let external_id: String = row.try_get("external_id")?;
    let endpoint_id: String = row.try_get("endpoint_id")?;
    let until: Option<i64> = row.try_get("expunge_at")?;
    tracing::info!(authorization_id, reason, "authorization needs re-consent");
    audit::record(
        &state.db,
        now,
        AuditEntry {
            actor: "system",
            action: "payer.refresh_refused",
            app_id: Some(&app_id),
            authorization_id: Some(authorization_id),
            request_id: None,
            detail: Some(json!({"reason": reason, "readable_until": until})),
        },
    )
    .await?;
    webhooks::enqueue(
        &state.db,
        now,
        &app_id,
        "refresh_expired",
        json!({"authorization_id": authorization_id, "external_id": external_id, "endpoint_id": endpoint_id,
               "reason": reason, "state": "NEEDS_REAUTH",
               "readable_until": until.map(webhooks::rfc3339)}),
    )
    .await?;
    Ok(true)
}

/// What a refresh attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New payer tokens stored; state `REFRESHED`.
    Refreshed,
    /// The payer refused (`invalid_grant`): now `NEEDS_REAUTH`.
    Refused,
    /// A transient failure (network, 5xx, unexpected answer): retried after [`REFRESH_RETRY_SECS`].
    Failed,
    /// Another instance holds the refresh lease, or there is nothing to refresh.
    Skipped,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
}

/// Refreshes the payer tokens of a MULTIPLE authorization with its payer's token endpoint
/// (`grant_type=refresh_token`, RFC 6749 §6; SMART App Launch 2.0 "Refresh access token"), holding the
/// authorization's refresh lease so two instances never spend the same refresh token.
///
/// # Errors
/// Database errors; payer failures are outcomes, not errors.
pub async fn refresh_payer_token(state: &AppState, authorization_id: &str) -> anyhow::Result<RefreshOutcome> {
    let now = state.clock.now();
    let owner = crypto::random_id(9);
    let leased = sqlx::query(
        "UPDATE authorizations SET refresh_lease_owner = $1, refresh_lease_until = $2 \
         WHERE id = $3 AND expunged_at IS NULL AND (refresh_lease_until IS NULL OR refresh_lease_until < $4)",
    )
    .bind(&owner)
    .bind(now + 120)
    .bind(authorization_id)
    .bind(now)
    .execute(&state.db.pool)
    .await?
    .rows_affected();
    if leased == 0 {
        return Ok(RefreshOutcome::Skipped);
    }
    let outcome = refresh_leased(state, authorization_id).await;
    sqlx::query(
        "UPDATE authorizations SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
         WHERE id = $1 AND refresh_lease_owner = $2",
    )
    .bind(authorization_id)
    .bind(&owner)
    .execute(&state.db.pool)
    .await?;
    let outcome = outcome?;
    if outcome == RefreshOutcome::Failed {
        sqlx::query("UPDATE authorizations SET refresh_after = $1 WHERE id = $2")
            .bind(state.clock.now() + REFRESH_RETRY_SECS)
            .bind(authorization_id)
            .execute(&state.db.pool)
            .await?;
    }
    Ok(outcome)
}

async fn refresh_leased(state: &AppState, authorization_id: &str) -> anyhow::Result<RefreshOutcome> {
    let Some(auth) = authorizations::get(&state.db, authorization_id).await? else {
        return Ok(RefreshOutcome::Skipped);
    };
    let Some(creds) = authorizations::payer_credentials(state, authorization_id).await? else {
        return Ok(RefreshOutcome::Skipped);
    };
    let Some(refresh_token) = creds.refresh_token else {
        mark_needs_reauth(state, authorization_id, REASON_PAYER_GRANT_EXPIRED).await?;
        return Ok(RefreshOutcome::Refused);
    };
    let endpoint = crate::server::store::endpoints::get(&state.db, &auth.endpoint_id).await?;
    let token_url = match creds.token_url.clone().or_else(|| endpoint.as_ref().and_then(|e| e.token_url.clone())) {
        Some(u) => u,
        None => {
            tracing::warn!(authorization_id, "refresh: no token endpoint known for this authorization");
            return Ok(RefreshOutcome::Failed);
        }
    };
    let mut form: Vec<(&str, String)> =
        vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh_token.expose_secret().to_string())];
    let mut request = state.http.post(&token_url).header(header::ACCEPT, "application/json");
    if let Some(e) = &endpoint {
        match e.client_secret() {
            // Confidential client: HTTP Basic (RFC 6749 §2.3.1), form-urlencoded id and secret.
            Some(secret) => {
                request = request.basic_auth(form_encode(&e.client_id), Some(form_encode(secret.expose_secret())));
            }
            None => form.push(("client_id", e.client_id.clone())),
        }
    }
    let response = match request.form(&form).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(authorization_id, timeout = e.is_timeout(), "refresh: payer unreachable");
            return Ok(RefreshOutcome::Failed);
        }
    };
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        let Ok(t) = serde_json::from_slice::<TokenResponse>(&body) else {
            tracing::warn!(authorization_id, "refresh: payer answered 200 without a token response");
            return Ok(RefreshOutcome::Failed);
        };
        let now = state.clock.now();
        let tokens = PayerTokens {
            access_token: t.access_token.into(),
            refresh_token: t.refresh_token.map(Into::into),
            expires_at: Some(now + t.expires_in.unwrap_or(3600).max(60)),
            scope: t.scope,
        };
        authorizations::store_refreshed_tokens(state, authorization_id, now, &tokens).await?;
        sqlx::query(
            "UPDATE authorizations SET refresh_after = NULL, \
             payer_refresh_expires_at = COALESCE($1, payer_refresh_expires_at) WHERE id = $2",
        )
        .bind(t.refresh_expires_in.map(|s| now + s))
        .bind(authorization_id)
        .execute(&state.db.pool)
        .await?;
        audit::record(
            &state.db,
            now,
            AuditEntry {
                actor: "system",
                action: "payer.refreshed",
                app_id: Some(&auth.app_id),
                authorization_id: Some(authorization_id),
                request_id: None,
                detail: Some(json!({"rotated_refresh_token": tokens.refresh_token.is_some()})),
            },
        )
        .await?;
        return Ok(RefreshOutcome::Refreshed);
    }
    let error = serde_json::from_slice::<TokenError>(&body).map(|e| e.error).unwrap_or_default();
    if (status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED) && error == "invalid_grant" {
        mark_needs_reauth(state, authorization_id, REASON_PAYER_REFUSED_REFRESH).await?;
        return Ok(RefreshOutcome::Refused);
    }
    tracing::warn!(authorization_id, status = status.as_u16(), error = %error, "refresh: payer failed");
    Ok(RefreshOutcome::Failed)
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `id` column of every row `sql` selects, its `$n` parameters bound in order (Unix seconds).
async fn select_ids(state: &AppState, sql: &str, binds: &[i64]) -> anyhow::Result<Vec<String>> {
    let mut query = sqlx::query(sql);
    for b in binds {
        query = query.bind(*b);
    }
    let rows = query.fetch_all(&state.db.pool).await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
}

/// [`mark_needs_reauth`] for each id with `reason`; returns how many changed. A failure is logged and the
/// others still run.
async fn mark_all_needs_reauth(state: &AppState, ids: Vec<String>, reason: &str) -> u64 {
    let mut changed = 0;
    for id in ids {
        match mark_needs_reauth(state, &id, reason).await {
            Ok(true) => changed += 1,
            Ok(false) => {}
            Err(e) => tracing::error!(authorization_id = %id, error = %e, "re-consent transition failed"),
        }
    }
    changed
}

/// One pass of every time rule; returns how many authorizations it acted on (expunged, refreshed, moved to
/// `NEEDS_REAUTH`, downgrade recorded). The worker runs it every 30 s; tests call it after moving the clock.
///
/// # Errors
/// Database errors (a failing authorization is logged and skipped, so one bad row does not stop the rest).
pub async fn sweep_once(state: &AppState) -> anyhow::Result<u64> {
    let now = state.clock.now();
    let mut acted = 0u64;

    // 1. Expunge what is due: ONE_TIME 24 h after authorization, anything past its own expunge_at.
    let due = sqlx::query(
        "SELECT id, usage FROM authorizations WHERE expunged_at IS NULL AND \
         ((usage = 'ONE_TIME' AND created_at <= $1) OR (expunge_at IS NOT NULL AND expunge_at <= $2)) \
         ORDER BY created_at LIMIT 500",
    )
    .bind(now - ONE_TIME_TTL_SECS)
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    for r in due {
        let id: String = r.try_get("id")?;
        let usage: String = r.try_get("usage")?;
        let reason = if usage == "ONE_TIME" { REASON_ONE_TIME_EXPIRED } else { REASON_EXPIRED };
        match expunge_authorization(state, &id, reason).await {
            Ok(()) => acted += 1,
            Err(e) => tracing::error!(authorization_id = %id, error = %e, "expunge failed"),
        }
    }

    // 1b. Revoked by another path but not yet expunged: expunge at once (its revoker sent the event).
    let revoked =
        select_ids(state, "SELECT id FROM authorizations WHERE state = 'REVOKED' AND expunged_at IS NULL LIMIT 500", &[])
            .await?;
    for id in revoked {
        match expunge_authorization(state, &id, REASON_REVOKED).await {
            Ok(()) => acted += 1,
            Err(e) => tracing::error!(authorization_id = %id, error = %e, "expunge of a revoked authorization failed"),
        }
    }

    // 2a. Set to NEEDS_REAUTH by another path (e.g. a refresh refused during a sync) without the readable window
    //     and the `refresh_expired` event: complete the transition.
    let unnotified = select_ids(
        state,
        "SELECT id FROM authorizations WHERE state = 'NEEDS_REAUTH' AND reauth_notified_at IS NULL \
         AND expunged_at IS NULL LIMIT 500",
        &[],
    )
    .await?;
    acted += mark_all_needs_reauth(state, unnotified, REASON_PAYER_REFUSED_REFRESH).await;

    // 2b. MULTIPLE whose payer grant is known to be over: re-consent without asking the payer.
    let over = select_ids(
        state,
        "SELECT id FROM authorizations WHERE expunged_at IS NULL AND usage = 'MULTIPLE' \
         AND state IN ('AUTHORIZED', 'EXCHANGED', 'REFRESHED') AND ( \
           (payer_refresh_expires_at IS NOT NULL AND payer_refresh_expires_at <= $1) OR \
           (payer_refresh_token_enc IS NULL AND payer_token_expires_at IS NOT NULL AND payer_token_expires_at <= $1)) \
         LIMIT 500",
        &[now],
    )
    .await?;
    acted += mark_all_needs_reauth(state, over, REASON_PAYER_GRANT_EXPIRED).await;

    // 3. MULTIPLE payer tokens about to expire: refresh them.
    let expiring = select_ids(
        state,
        "SELECT id FROM authorizations WHERE expunged_at IS NULL AND usage = 'MULTIPLE' \
         AND state IN ('AUTHORIZED', 'EXCHANGED', 'REFRESHED') AND payer_refresh_token_enc IS NOT NULL \
         AND payer_token_expires_at IS NOT NULL AND payer_token_expires_at <= $1 \
         AND (refresh_after IS NULL OR refresh_after <= $2) LIMIT 100",
        &[now + REFRESH_MARGIN_SECS, now],
    )
    .await?;
    for id in expiring {
        match refresh_payer_token(state, &id).await {
            Ok(RefreshOutcome::Refreshed | RefreshOutcome::Refused) => acted += 1,
            Ok(_) => {}
            Err(e) => tracing::error!(authorization_id = %id, error = %e, "payer refresh failed"),
        }
    }

    // 4. Make every downgrade visible to the operator, once.
    // Claimed with one conditional update, so several instances (or the worker and a test) record it once.
    let downgraded = sqlx::query(
        "UPDATE authorizations SET downgrade_recorded_at = $1 \
         WHERE downgraded = 1 AND downgrade_recorded_at IS NULL \
         RETURNING id, app_id, usage_requested, usage, endpoint_id",
    )
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    for r in downgraded {
        let id: String = r.try_get("id")?;
        let app_id: String = r.try_get("app_id")?;
        let requested: String = r.try_get("usage_requested")?;
        let usage: String = r.try_get("usage")?;
        let endpoint_id: String = r.try_get("endpoint_id")?;
        audit::record(
            &state.db,
            now,
            AuditEntry {
                actor: "system",
                action: "usage.downgraded",
                app_id: Some(&app_id),
                authorization_id: Some(&id),
                request_id: None,
                detail: Some(json!({"usage_requested": requested, "usage": usage, "endpoint_id": endpoint_id,
                                    "billed_as": usage,
                                    "why": "the endpoint gives no long-term (refresh) access"})),
            },
        )
        .await?;
        acted += 1;
    }

    // 5. Forget connections grants well past their expiry.
    sqlx::query("DELETE FROM connections_grants WHERE expires_at < $1").bind(now - 3600).execute(&state.db.pool).await?;
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
                        tracing::warn!(error = %e, "lifecycle sweep failed");
                    }
                }
            }
        }
    })]
}


// ---------------------------------------------------------------------------------------------------------
// Connections page grants.

/// Who a connections-page grant lets the bearer act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionsGrant {
    /// The app.
    pub app_id: String,
    /// Test or live (only authorizations of this mode are listed).
    pub mode: Mode,
    /// The integrator's user id.
    pub external_id: String,
    /// When the grant ends (Unix s).
    pub expires_at: i64,
}

/// Mints a connections-page URL for one user (`{public_url}/link/connections?token=ct_…`), valid
/// [`CONNECTIONS_GRANT_TTL_SECS`]. Returns the URL and its expiry (Unix s).
///
/// # Security
/// The URL is a bearer credential for that user's links: hand it only to that signed-in user, never log it.
///
/// # Errors
/// Database errors.
pub async fn mint_connections_url(
    state: &AppState,
    app_id: &str,
    mode: Mode,
    external_id: &str,
) -> anyhow::Result<(String, i64)> {
    let now = state.clock.now();
    let token = crypto::random_token("ct_");
    let expires_at = now + CONNECTIONS_GRANT_TTL_SECS;
    sqlx::query(
        "INSERT INTO connections_grants (token_hash, app_id, mode, external_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(crypto::hash_token(&token))
    .bind(app_id)
    .bind(mode.as_str())
    .bind(external_id)
    .bind(expires_at)
    .bind(now)
    .execute(&state.db.pool)
    .await?;
    Ok((format!("{}/link/connections?token={token}", state.public_url), expires_at))
}

/// The grant behind a connections-page token, if it exists and has not expired.
///
/// # Errors
/// Database errors.
pub async fn connections_grant(db: &Db, now: i64, token: &str) -> anyhow::Result<Option<ConnectionsGrant>> {
    if !token.starts_with("ct_") || token.len() > 200 {
        return Ok(None);
    }
    let hash = crypto::hash_token(token);
    let Some(row) = sqlx::query(
        "SELECT token_hash, app_id, mode, external_id, expires_at FROM connections_grants WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let stored: String = row.try_get("token_hash")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    if !crypto::ct_eq(stored.as_bytes(), hash.as_bytes()) || expires_at <= now {
        return Ok(None);
    }
    let mode: String = row.try_get("mode")?;
    Ok(Some(ConnectionsGrant {
        app_id: row.try_get("app_id")?,
        mode: Mode::parse(&mode).context("connections_grants.mode")?,
        external_id: row.try_get("external_id")?,
        expires_at,
    }))
}

/// Revokes (and expunges at once) one of the grant's user's authorizations, as the patient. Returns false when
/// the authorization does not belong to that user, app and mode (nothing done).
///
/// # Errors
/// Database errors.
pub async fn revoke_as_patient(state: &AppState, grant: &ConnectionsGrant, authorization_id: &str) -> anyhow::Result<bool> {
    let owned = sqlx::query(
        "SELECT 1 AS one FROM authorizations WHERE id = $1 AND app_id = $2 AND mode = $3 AND external_id = $4",
    )
    .bind(authorization_id)
    .bind(&grant.app_id)
    .bind(grant.mode.as_str())
    .bind(&grant.external_id)
    .fetch_optional(&state.db.pool)
    .await?
    .is_some();
    if !owned {
        return Ok(false);
    }
    expunge_authorization(state, authorization_id, REASON_REVOKED_BY_PATIENT).await?;
    Ok(true)
}

/// Non-health facts about one authorization for operators (`audit authorizations`).
///
/// # Errors
/// Database errors.
pub async fn operator_view(db: &Db, app_id: Option<&str>, downgraded_only: bool) -> anyhow::Result<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT id, app_id, mode, endpoint_id, usage_requested, usage, downgraded, state, state_reason, \
         created_at, expunge_at, expunged_at, revoked_at FROM authorizations \
         WHERE ($1 = '' OR app_id = $1) AND ($2 = 0 OR downgraded = 1) ORDER BY created_at, id",
    )
    .bind(app_id.unwrap_or(""))
    .bind(i64::from(downgraded_only))
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(json!({
                "authorization_id": r.try_get::<String, _>("id")?,
                "app_id": r.try_get::<String, _>("app_id")?,
                "mode": r.try_get::<String, _>("mode")?,
                "endpoint_id": r.try_get::<String, _>("endpoint_id")?,
                "usage_requested": r.try_get::<String, _>("usage_requested")?,
                "usage": r.try_get::<String, _>("usage")?,
                "downgraded": r.try_get::<i64, _>("downgraded")? != 0,
                "state": r.try_get::<String, _>("state")?,
                "state_reason": r.try_get::<Option<String>, _>("state_reason")?,
                "created_at": r.try_get::<i64, _>("created_at")?,
                "expunge_at": r.try_get::<Option<i64>, _>("expunge_at")?,
                "expunged_at": r.try_get::<Option<i64>, _>("expunged_at")?,
                "revoked_at": r.try_get::<Option<i64>, _>("revoked_at")?,
            }))
        })
        .collect()
}
