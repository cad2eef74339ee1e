//! Webhooks: a durable outbox, HMAC-SHA256 signatures, retries with exponential backoff and jitter.
//!
//! # Delivery contract (what an integrator's receiver sees)
//! - `POST {apps.webhook_url}` with `Content-Type: application/json` and the body
//!   `{"event_id", "event", "version", "timestamp", "data"}` ([`Envelope`]). The body of an event is fixed when
//!   it is enqueued: every retry sends the same bytes, so `event_id` is stable and a receiver de-duplicates on it.
//! - Events: `sync_completed`, `sync_failed`, `authorization.pending_expiration`, `authorization.needs_reauth`,
//!   `authorization.repaired`, `authorization.expired`, `authorization_revoked`,
//!   `endpoint.status_changed`, `link.events`, `link.completed` ([`WebhookEvent`]). The `authorization.*` events are
//!   sent once per authorization (per payer grant end for `pending_expiration`) with an `event_id` derived from
//!   what they announce ([`event_id_for`]; `authorization.repaired` once per repair), so the same fact never gets two ids.
//! - Header `Link-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. `t` is the time of
//!   *this attempt*, so a retry is signed afresh. Receivers must check the signature with the app's signing
//!   secret and reject a `t` outside a replay window ([`DEFAULT_TOLERANCE_SECS`], 5 minutes) — see
//!   [`verify_signature`], written to be copied as is — and then de-duplicate on `event_id` (a signed body can
//!   be replayed inside the window, and a delivery can be repeated when its 2xx was lost).
//!   Also sent, for convenience only (not signed): `Link-Event-Id`, `Link-Event`.
//! - Any 2xx is success. Anything else (or no answer within 10 s) is retried with exponential backoff and
//!   equal jitter ([`backoff_secs`]: after the n-th failure, between half and all of 30 s · 2^(n-1), capped at
//!   6 h, so the first retry comes 15–30 s later), up to [`MAX_ATTEMPTS`] attempts in all (the last one 7–15 h
//!   after the first), then the delivery is marked dead (`dead_at`) and kept for the operator.
//! - The HMAC key is the whole signing secret string, `whsec_` prefix included (its UTF-8 bytes).
//!
//! # Durability
//! Rows of `webhook_deliveries` are written in the same database as everything else; a delivery worker on any
//! instance leases due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL) so that one instance sends each attempt.
//! The signing secret is generated on first use and stored sealed (`apps.webhook_secret_enc`).

use std::time::Duration;

use anyhow::Context as _;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac as _};
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use sqlx::AnyConnection;

use crate::{
    domain::spelling::spelled_enum,
    server::{
        platform::{
            crypto::{self, Cipher},
            db::Db,
        },
        settings::RunMode,
        state::AppState,
        store::{
            apps,
            webhook_deliveries::{self, Failed, NewDelivery},
        },
    },
};

pub use webhook_deliveries::DeliveryInfo;

spelled_enum! {
    /// The events an app can receive (the envelope's `event`).
    pub enum WebhookEvent {
        /// A sync finished with data (`status` `complete` or `partial`).
        SyncCompleted = "sync_completed",
        /// A sync ended without the data (`exit_code`).
        SyncFailed = "sync_failed",
        /// A MULTIPLE authorization's payer grant ends within `--pending-expiration-secs` (default 7 days):
        /// ask the patient to link again before it does.
        PendingExpiration = "authorization.pending_expiration",
        /// The payer ended long-term access (refused a refresh, or its grant ended): the authorization needs the
        /// patient to link again; its data stays readable until `expires_at`.
        NeedsReauth = "authorization.needs_reauth",
        /// Repair mode renewed the authorization's payer grant (the patient signed in again as the same payer
        /// `patient`): the same `authorization_id`, access and refresh tokens go on, its state is active again and
        /// a sync is queued. Once per repair.
        AuthorizationRepaired = "authorization.repaired",
        /// The authorization reached its end (ONE_TIME after 24 h, or its own expiry) and its data was expunged.
        AuthorizationExpired = "authorization.expired",
        /// The authorization was revoked (by the patient, the app or an operator) and its data expunged.
        AuthorizationRevoked = "authorization_revoked",
        /// An endpoint of the directory changed health status (`ok`, `degraded`, `down`, `unchecked`); sent to
        /// every app with a webhook URL, once per change.
        EndpointStatusChanged = "endpoint.status_changed",
        /// A Link session ended (or timed out): every step it took, in order (no health data).
        LinkEvents = "link.events",
        /// The patient completed a hosted (re-connect) link: the payer authorized and `data.public_token` is
        /// ready for `POST /link/exchange` (with `hosted_link_id`, `externalId`, `authorization_id`). Once per
        /// link. Its body is stored sealed until sent.
        LinkCompleted = "link.completed",
    }
}

/// Version of the envelope's shape.
pub const ENVELOPE_VERSION: i64 = 1;

/// Name of the signature header.
pub const SIGNATURE_HEADER: &str = "Link-Signature";

/// Replay window receivers should apply to `t`, in seconds (5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Attempts before a delivery is given up (marked dead).
pub const MAX_ATTEMPTS: i64 = 12;

/// First retry delay, in seconds; doubles after every failure.
const BACKOFF_BASE_SECS: i64 = 30;
/// Longest retry delay, in seconds (6 h).
const BACKOFF_CAP_SECS: i64 = 6 * 3600;
/// How long an instance holds a delivery it is sending, in seconds.
const LEASE_SECS: i64 = 120;
/// Deliveries sent per pass.
const BATCH: i64 = 20;
/// Time allowed for the receiver to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON body of every webhook request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// Unique id of the event (`evt_…`), the same on every retry.
    pub event_id: String,
    /// The [`WebhookEvent`] spelling.
    pub event: String,
    /// [`ENVELOPE_VERSION`].
    pub version: i64,
    /// When the event happened, RFC 3339 UTC.
    pub timestamp: String,
    /// Event-specific, non-health data (ids, counts, states).
    pub data: Value,
}

/// Queues `event` for the app's webhook URL, through `conn` (pass the transaction of the change the event
/// announces, so that both are written or neither). A no-op (`Ok`) when the app has no webhook URL.
///
/// The envelope is built and stored now, so its `event_id`, `timestamp` and bytes are stable across retries.
/// `data` must hold no health data (ids, states, counts only).
///
/// # Errors
/// Database errors.
pub async fn enqueue(
    conn: &mut AnyConnection,
    now: i64,
    app_id: &str,
    event: WebhookEvent,
    data: Value,
) -> anyhow::Result<()> {
    enqueue_with_id(conn, now, app_id, event, data, format!("evt_{}", uuid::Uuid::new_v4().simple()), None).await
}

/// The `event_id` of a once-only event: `evt_` and 32 hex digits of SHA-256 over the event and `what` (e.g. the
/// authorization id and the grant end it announces), so the same fact always has the same id.
pub fn event_id_for(event: WebhookEvent, what: &str) -> String {
    let h = crypto::hash_token(&format!("{}|{what}", event.as_str()));
    format!("evt_{}", &h[..32])
}

/// [`enqueue`] for a once-only event, with the id [`event_id_for`] gives (`what` names the fact).
///
/// # Errors
/// Database errors.
pub async fn enqueue_once(
    conn: &mut AnyConnection,
    now: i64,
    app_id: &str,
    event: WebhookEvent,
    what: &str,
    data: Value,
) -> anyhow::Result<()> {
    enqueue_with_id(conn, now, app_id, event, data, event_id_for(event, what), None).await
}

/// [`enqueue_once`] for an event whose `data` carries a secret (a `public_token`): the body is stored sealed
/// with `cipher` (AES-256-GCM, bound to its `event_id`) and opened only to send it.
///
/// # Errors
/// Database errors.
pub async fn enqueue_once_sealed(
    conn: &mut AnyConnection,
    cipher: &Cipher,
    now: i64,
    app_id: &str,
    event: WebhookEvent,
    what: &str,
    data: Value,
) -> anyhow::Result<()> {
    enqueue_with_id(conn, now, app_id, event, data, event_id_for(event, what), Some(cipher)).await
}

/// The additional data a sealed body is bound to.
fn payload_aad(event_id: &str) -> String {
    format!("webhook_deliveries.payload:{event_id}")
}

async fn enqueue_with_id(
    conn: &mut AnyConnection,
    now: i64,
    app_id: &str,
    event: WebhookEvent,
    data: Value,
    event_id: String,
    seal: Option<&Cipher>,
) -> anyhow::Result<()> {
    if apps::webhook_url(&mut *conn, app_id).await?.is_none() {
        return Ok(());
    }
    let envelope = Envelope {
        event_id: event_id.clone(),
        event: event.as_str().to_string(),
        version: ENVELOPE_VERSION,
        timestamp: rfc3339(now),
        data,
    };
    let mut payload = serde_json::to_string(&envelope)?;
    let mut key_id = None;
    if let Some(cipher) = seal {
        let (sealed, kid) = cipher.seal_str(&payload, &payload_aad(&event_id));
        payload = STANDARD.encode(sealed);
        key_id = Some(kid);
    }
    webhook_deliveries::insert(
        &mut *conn,
        now,
        NewDelivery { event_id: &event_id, app_id, event: event.as_str(), payload: &payload, payload_key_id: key_id.as_deref() },
    )
    .await?;
    tracing::debug!(app_id, event = event.as_str(), event_id, "webhook event queued");
    Ok(())
}

/// The app's signing secret (`whsec_…`), generated and stored sealed the first time it is asked for.
///
/// # Security
/// The returned value signs every webhook of the app: show it to the operator once, never log it.
///
/// # Errors
/// Unknown app, database errors, or a stored secret that no longer opens (key removed from the keyring).
pub async fn ensure_signing_secret(state: &AppState, app_id: &str) -> anyhow::Result<SecretString> {
    for _ in 0..2 {
        if let Some((enc, key_id)) = apps::webhook_secret_sealed(&state.db, app_id).await? {
            return state.cipher.open_str(&enc, &key_id, &secret_aad(app_id)).context("opening the webhook secret");
        }
        let secret = crypto::random_token("whsec_");
        let (enc, key_id) = state.cipher.seal_str(&secret, &secret_aad(app_id));
        // Conditional: when two instances race, the first write wins and the loser re-reads it.
        if apps::set_webhook_secret_sealed(&state.db, app_id, &enc, &key_id, state.clock.now(), true).await? {
            return Ok(SecretString::from(secret));
        }
    }
    anyhow::bail!("could not store the webhook secret")
}

/// Replaces the app's signing secret with a new one and returns it (shown once). Deliveries signed from now
/// on use the new secret; receivers should accept both during their switch-over.
///
/// # Errors
/// Unknown app or database errors.
pub async fn rotate_signing_secret(state: &AppState, app_id: &str) -> anyhow::Result<SecretString> {
    let secret = crypto::random_token("whsec_");
    let (enc, key_id) = state.cipher.seal_str(&secret, &secret_aad(app_id));
    let written = apps::set_webhook_secret_sealed(&state.db, app_id, &enc, &key_id, state.clock.now(), false).await?;
    anyhow::ensure!(written, "unknown app");
    Ok(SecretString::from(secret))
}

fn secret_aad(app_id: &str) -> String {
    format!("apps.webhook_secret:{app_id}")
}

/// The `Link-Signature` header value for `body` sent at `timestamp`: `t=<timestamp>,v1=<hex>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body)))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Checks a `Link-Signature` header against the raw request body, as a receiver should.
///
/// True when the header has a `t` within `tolerance_secs` of `now` (either side, for clock skew) and at least
/// one `v1` equal, in constant time, to HMAC-SHA256 of `"{t}.{body}"` under `secret`. Verify the *raw* bytes
/// received, before any JSON parsing. After it passes, de-duplicate on the envelope's `event_id`.
///
/// This function depends only on `hmac`, `sha2`, `hex` and `subtle`; integrators may copy it.
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp: Option<i64> = None;
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k {
            "t" => timestamp = v.parse().ok(),
            "v1" => {
                if let Ok(b) = hex::decode(v) {
                    candidates.push(b);
                }
            }
            _ => {}
        }
    }
    let Some(t) = timestamp else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = mac(secret, t, body);
    let mut ok = false;
    for c in &candidates {
        // No early exit, so the position of a match does not leak through timing.
        ok |= crypto::ct_eq(c, &expected);
    }
    ok
}

/// Delay before attempt `attempts + 1` after `attempts` failures: 30 s · 2^(attempts-1), capped at 6 h,
/// with "equal jitter" (half fixed, half random) so retries of many events do not arrive in lockstep.
pub fn backoff_secs(attempts: i64) -> i64 {
    let exp = (attempts.max(1) - 1).min(20) as u32;
    let delay = BACKOFF_BASE_SECS.saturating_mul(1i64 << exp).min(BACKOFF_CAP_SECS);
    let half = delay / 2;
    half + rand::thread_rng().gen_range(0..=delay - half)
}

/// Sends every due delivery once (at most one batch) and records the outcome. Returns the number of attempts
/// made. The background worker calls it every second; tests call it directly after moving the clock.
///
/// # Errors
/// Database errors (a failed HTTP attempt is not an error: it is recorded and retried).
pub async fn deliver_due_once(state: &AppState) -> anyhow::Result<u64> {
    let now = state.clock.now();
    let owner = crypto::random_id(9);
    let claimed = webhook_deliveries::claim_due(&state.db, &owner, now, now + LEASE_SECS, BATCH).await?;
    let mut sent = 0u64;
    for c in claimed {
        let outcome = attempt(state, &c).await;
        let attempts = c.attempts + 1;
        let done_at = state.clock.now();
        match outcome {
            Ok(status) => {
                webhook_deliveries::mark_delivered(&state.db, &c.id, &owner, done_at, attempts, status).await?;
                tracing::info!(app_id = %c.app_id, event = %c.event, event_id = %c.event_id, attempts, "webhook delivered");
            }
            Err(failure) => {
                let dead = attempts >= MAX_ATTEMPTS || failure.permanent;
                let failed = Failed {
                    attempts,
                    status: failure.status,
                    error: &failure.message,
                    next_attempt_at: done_at + backoff_secs(attempts),
                    dead_at: dead.then_some(done_at),
                };
                webhook_deliveries::mark_failed(&state.db, &c.id, &owner, failed).await?;
                tracing::warn!(app_id = %c.app_id, event = %c.event, event_id = %c.event_id, attempts, dead,
                    error = %failure.message, "webhook delivery failed");
            }
        }
        sent += 1;
    }
    Ok(sent)
}

struct Failure {
    status: Option<i64>,
    message: String,
    permanent: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure { status: None, message: message.into(), permanent: false }
    }
}

async fn attempt(state: &AppState, c: &webhook_deliveries::Claimed) -> Result<i64, Failure> {
    let url = apps::webhook_url(&state.db.pool, &c.app_id)
        .await
        .map_err(|_| Failure::new("database error reading the webhook URL"))?;
    let Some(url) = url else {
        return Err(Failure { status: None, message: "the app no longer has a webhook URL".into(), permanent: true });
    };
    let parsed = url::Url::parse(&url).map_err(|_| Failure { status: None, message: "invalid webhook URL".into(), permanent: true })?;
    let https_required = state.settings.run_mode == RunMode::Production;
    if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && !https_required)) {
        return Err(Failure { status: None, message: "webhook URL must use https".into(), permanent: true });
    }
    let secret = ensure_signing_secret(state, &c.app_id).await.map_err(|_| Failure::new("signing secret unavailable"))?;
    let body = match &c.payload_key_id {
        None => c.payload.clone(),
        Some(kid) => STANDARD
            .decode(&c.payload)
            .ok()
            .and_then(|sealed| state.cipher.open_str(&sealed, kid, &payload_aad(&c.event_id)).ok())
            .map(|b| b.expose_secret().to_string())
            .ok_or(Failure { status: None, message: "the sealed body no longer opens".into(), permanent: true })?,
    };
    let signature = sign(secret.expose_secret(), state.clock.now(), body.as_bytes());
    let response = state
        .http
        .post(parsed)
        .timeout(DELIVERY_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header("Link-Event-Id", &c.event_id)
        .header("Link-Event", &c.event)
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::new(if e.is_timeout() { "timed out" } else { "connection failed" }))?;
    let status = i64::from(response.status().as_u16());
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(Failure { status: Some(status), message: format!("HTTP {status}"), permanent: false })
    }
}

/// The deliveries of an app, newest first (for the CLI and tests).
///
/// # Errors
/// Database errors.
pub async fn list_deliveries(db: &Db, app_id: &str, limit: i64) -> anyhow::Result<Vec<DeliveryInfo>> {
    webhook_deliveries::list(db, app_id, limit).await
}

/// RFC 3339 UTC of Unix seconds (`1970-01-01T00:00:00Z` when out of range).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Starts the delivery worker: one pass per second until `state.shutdown` is cancelled.
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let state = state.clone();
    vec![tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = state.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = deliver_due_once(&state).await {
                        tracing::warn!(error = %e, "webhook delivery pass failed");
                    }
                }
            }
        }
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_roundtrip_and_replay_window() {
        let body = br#"{"event_id":"evt_1"}"#;
        let header = sign("whsec_x", 1_000, body);
        assert!(verify_signature("whsec_x", &header, body, 1_000, 300));
        assert!(verify_signature("whsec_x", &header, body, 1_300, 300));
        assert!(!verify_signature("whsec_x", &header, body, 1_301, 300), "outside the replay window");
        assert!(!verify_signature("whsec_y", &header, body, 1_000, 300), "wrong secret");
        assert!(!verify_signature("whsec_x", &header, b"{}", 1_000, 300), "tampered body");
        assert!(!verify_signature("whsec_x", "v1=00", body, 1_000, 300), "no timestamp");
        // A second v1 (e.g. during a secret rotation) is accepted when one matches.
        let two = format!("{header},v1=deadbeef");
        assert!(verify_signature("whsec_x", &two, body, 1_000, 300));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..50 {
            let b1 = backoff_secs(1);
            assert!((15..=30).contains(&b1));
            let b3 = backoff_secs(3);
            assert!((60..=120).contains(&b3));
            assert!(backoff_secs(40) <= BACKOFF_CAP_SECS);
        }
    }
}
