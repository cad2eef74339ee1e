//! Sync: durable jobs that pull a patient's FHIR data from their payer.
//!
//! Owner: [Sync]. Compiled only with `ssr`.
//!
//! - A job is a `sync_jobs` row: `pending` → `syncing` (counts per resource type in `progress`) → `complete`,
//!   `partial` (types skipped, with reasons in `skipped`) or `failed` (`exit_code`). Its resumable cursor
//!   (`state`) is saved after every page, so a restart or another instance continues where it stopped.
//! - Jobs are leased with one conditional `UPDATE … RETURNING` (`FOR UPDATE SKIP LOCKED` on PostgreSQL):
//!   with several instances on one database each job runs on exactly one of them. A running job renews its
//!   lease; an expired lease means its instance died and the job is taken over.
//! - Workers: at most `--sync-workers` jobs per instance and [`job::PER_PAYER_LIMIT`] per payer across all
//!   instances; they stop at the next page on shutdown, releasing the lease for a prompt resume.
//! - MULTIPLE authorizations re-sync on demand ([`request_resync`]) and every
//!   [`RESYNC_INTERVAL_SECS`](crate::server::services::payer::oauth::RESYNC_INTERVAL_SECS) ([`run_schedule`]).
//!
//! What is fetched (see [`job`]): `Patient` by id, then `GET {Type}?patient={id}&_count=N` for each
//! `requestedResources` type (or the endpoint's types, or [`job::DEFAULT_TYPES`]), following `next` links
//! on the payer's own origin only, then every referenced resource not stored yet. Storage is in [`store`],
//! HTTP rules (refresh, `Retry-After`, backoff, content types) in [`fetch`].

pub mod job;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sqlx::Row as _;
use tokio::sync::{Notify, Semaphore};

use crate::server::{platform::db::Db, services::payer::oauth::RESYNC_INTERVAL_SECS, state::AppState};
use crate::domain::ExitCode;

/// Wakes this process's poll loop when a job is enqueued (other instances find it by polling).
static WAKE: Notify = Notify::const_new();
/// Poll interval of the worker loop.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often the worker loop looks for due MULTIPLE re-syncs.
const SCHEDULE_INTERVAL: Duration = Duration::from_secs(30);

/// Queues a sync of an authorization, due now; returns the job id.
///
/// # Errors
/// Database errors.
pub async fn enqueue(db: &Db, authorization_id: &str, now: i64) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO sync_jobs (id, authorization_id, status, run_after, created_at, updated_at, endpoint_id) \
         VALUES ($1, $2, 'pending', $3, $3, $3, (SELECT endpoint_id FROM authorizations WHERE id = $2))",
    )
    .bind(&id)
    .bind(authorization_id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    WAKE.notify_one();
    Ok(id)
}

/// Queues a re-sync unless one is already pending or running (then returns that job's id).
/// For the integrator's on-demand refresh of a MULTIPLE authorization.
///
/// # Errors
/// Database errors; an unknown or revoked authorization.
pub async fn request_resync(db: &Db, authorization_id: &str, now: i64) -> anyhow::Result<String> {
    let auth = crate::server::store::authorizations::get(db, authorization_id).await?.ok_or_else(|| anyhow::anyhow!("unknown authorization"))?;
    anyhow::ensure!(auth.revoked_at.is_none(), "authorization is revoked");
    if let Some(row) = sqlx::query(
        "SELECT id FROM sync_jobs WHERE authorization_id = $1 AND status IN ('pending', 'syncing') ORDER BY created_at DESC LIMIT 1",
    )
    .bind(authorization_id)
    .fetch_optional(&db.pool)
    .await?
    {
        return Ok(row.try_get("id")?);
    }
    enqueue(db, authorization_id, now).await
}

/// The state of the latest sync job of an authorization.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncStatus {
    /// `pending`, `syncing`, `complete`, `partial` or `failed`.
    pub status: String,
    /// Resources stored so far, by resource type.
    pub progress: BTreeMap<String, i64>,
    /// Types skipped: `{"type", "reason", "status"}` objects.
    pub skipped: Vec<serde_json::Value>,
    /// Why it failed.
    pub exit_code: Option<ExitCode>,
    /// Non-fatal problems (OperationOutcome warnings, unresolved references, links not followed).
    pub warnings: Vec<String>,
}

/// The latest sync job of an authorization (an unfinished one wins a tie on creation time).
///
/// # Errors
/// Database errors.
pub async fn status(db: &Db, authorization_id: &str) -> anyhow::Result<Option<SyncStatus>> {
    let Some(row) = sqlx::query(
        "SELECT status, progress, skipped, exit_code, warnings FROM sync_jobs WHERE authorization_id = $1 \
         ORDER BY created_at DESC, CASE WHEN finished_at IS NULL THEN 0 ELSE 1 END, updated_at DESC LIMIT 1",
    )
    .bind(authorization_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let text = |c: &str| row.try_get::<String, _>(c);
    let exit_code: Option<String> = row.try_get("exit_code")?;
    Ok(Some(SyncStatus {
        status: text("status")?,
        progress: serde_json::from_str(&text("progress")?).unwrap_or_default(),
        skipped: serde_json::from_str(&text("skipped")?).unwrap_or_default(),
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        warnings: serde_json::from_str(&text("warnings")?).unwrap_or_default(),
    }))
}

/// Claims one due job and runs it until it finishes or pauses. Returns whether a job was run.
/// Tests drive the queue with it step by step; the worker loop uses the same two steps.
pub async fn run_once(state: &AppState) -> bool {
    match job::claim(state).await {
        Ok(Some(j)) => {
            job::run(state, j).await;
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::error!(error = %e, "claiming a sync job failed");
            false
        }
    }
}

/// Queues a re-sync of every MULTIPLE authorization whose `next_sync_at` is due, and moves that time one
/// interval on. One conditional update per authorization, so two instances never both queue it.
/// Returns how many were queued.
///
/// # Errors
/// Database errors.
pub async fn run_schedule(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let due = sqlx::query(
        "SELECT id, next_sync_at FROM authorizations WHERE usage = 'MULTIPLE' AND revoked_at IS NULL \
         AND state NOT IN ('NEEDS_REAUTH', 'REVOKED', 'EXPIRED') AND next_sync_at IS NOT NULL AND next_sync_at <= $1 LIMIT 100",
    )
    .bind(now)
    .fetch_all(&state.db.pool)
    .await?;
    let mut queued = 0;
    for row in due {
        let id: String = row.try_get("id")?;
        let at: i64 = row.try_get("next_sync_at")?;
        let won = sqlx::query("UPDATE authorizations SET next_sync_at = $1 WHERE id = $2 AND next_sync_at = $3")
            .bind(now + RESYNC_INTERVAL_SECS)
            .bind(&id)
            .bind(at)
            .execute(&state.db.pool)
            .await?
            .rows_affected()
            == 1;
        if won {
            request_resync(&state.db, &id, now).await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Starts this part's background workers; each stops when `state.shutdown` is cancelled.
/// `--sync-workers 0` starts none (tests drive jobs with [`run_once`]).
pub fn spawn_workers(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    if state.settings.sync_workers == 0 {
        return Vec::new();
    }
    let state = state.clone();
    vec![tokio::spawn(async move { poll_loop(state).await })]
}

async fn poll_loop(state: AppState) {
    let slots = Arc::new(Semaphore::new(state.settings.sync_workers));
    let mut running = tokio::task::JoinSet::new();
    let mut last_schedule: Option<tokio::time::Instant> = None;
    loop {
        while running.try_join_next().is_some() {}
        if last_schedule.is_none_or(|t| t.elapsed() >= SCHEDULE_INTERVAL) {
            last_schedule = Some(tokio::time::Instant::now());
            if let Err(e) = run_schedule(&state).await {
                tracing::error!(error = %e, "scheduling re-syncs failed");
            }
        }
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = state.shutdown.cancelled() => break,
        };
        match job::claim(&state).await {
            Ok(Some(j)) => {
                let st = state.clone();
                running.spawn(async move {
                    job::run(&st, j).await;
                    drop(permit);
                });
                continue;
            }
            Ok(None) => drop(permit),
            Err(e) => {
                drop(permit);
                tracing::error!(error = %e, "claiming a sync job failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL_INTERVAL) => {},
            _ = WAKE.notified() => {},
            _ = state.shutdown.cancelled() => break,
        }
    }
    // Running jobs see the cancellation at their next page, save their cursor and release their lease.
    while running.join_next().await.is_some() {}
}
