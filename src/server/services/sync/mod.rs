//! Sync: durable jobs that pull a patient's FHIR data from their payer (the jobs themselves live in
//! `store::sync_jobs`).
//!
//! - A job is a `sync_jobs` row: `pending` → `syncing` (counts per resource type in `progress`) → `complete`,
//!   `partial` (types skipped, with reasons in `skipped`) or `failed` (`exit_code`). Its resumable cursor
//!   (`state`) is saved after every page, so a restart or another instance continues where it stopped.
//! - Jobs are leased with one conditional `UPDATE … RETURNING` (`FOR UPDATE SKIP LOCKED` on PostgreSQL):
//!   with several instances on one database each job runs on exactly one of them. A running job renews its
//!   lease; an expired lease means its instance died and the job is taken over.
//! - Workers: at most `--sync-workers` jobs per instance and [`job::PER_PAYER_LIMIT`] per payer across all
//!   instances; they stop at the next page on shutdown, releasing the lease for a prompt resume.
//! - MULTIPLE authorizations re-sync on demand ([`request_resync`]) and every `--resync-interval-secs`, jittered
//!   ([`next_resync_at`], [`run_schedule`]).
//!
//! What is fetched (see [`job`]): `Patient` by id, then `GET {Type}?patient={id}&_count=N` for each
//! `requestedResources` type (or the endpoint's types, or [`job::DEFAULT_TYPES`]), following `next` links
//! on the payer's own origin only, then every referenced resource not stored yet. A re-sync asks for changes
//! only (`_lastUpdated`) where the payer offers it and a recent full read allows it ([`incremental`]). Storage is in
//! `store::resources`; HTTP rules (refresh, `Retry-After`, backoff, content types) in `services::payer::fhir_client`.

pub mod incremental;
pub mod job;

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, Semaphore};

use crate::server::{
    platform::db::Db,
    state::AppState,
    store::{
        authorizations,
        sync_jobs::{self, JobStatus},
    },
};

/// Wakes this process's poll loop when a job is enqueued (other instances find it by polling).
static WAKE: Notify = Notify::const_new();
/// Poll interval of the worker loop.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often the worker loop looks for due MULTIPLE re-syncs.
const SCHEDULE_INTERVAL: Duration = Duration::from_secs(30);
/// Due re-syncs queued per pass of the schedule.
const SCHEDULE_BATCH: i64 = 100;

/// When the next scheduled re-sync of a MULTIPLE authorization is due, `interval` seconds
/// (`--resync-interval-secs`) after `now` less a random tenth of it at most, so that authorizations linked
/// together do not all re-sync at once. `None` when scheduled re-syncs are off (`interval` 0).
pub fn next_resync_at(interval: i64, now: i64) -> Option<i64> {
    use rand::Rng as _;
    (interval > 0).then(|| now + interval - rand::thread_rng().gen_range(0..=interval / 10))
}

/// Wakes this process's workers after a job was queued inside a transaction (call it once committed).
pub fn wake() {
    WAKE.notify_one();
}

/// Queues a sync of an authorization, due now, unless one is pending or running; returns the job's id (the new
/// one, or the unfinished one that was there).
///
/// # Errors
/// Database errors; an unknown authorization.
pub async fn enqueue(db: &Db, authorization_id: &str, now: i64) -> anyhow::Result<String> {
    let auth = authorizations::get(db, authorization_id).await?.ok_or_else(|| anyhow::anyhow!("unknown authorization"))?;
    queue(db, &auth, now).await
}

/// The conditional insert and the read after it: a job finishing in between is simply queued again.
async fn queue(db: &Db, auth: &authorizations::Authorization, now: i64) -> anyhow::Result<String> {
    for _ in 0..3 {
        if let Some(id) = sync_jobs::insert_unless_unfinished(&db.pool, &auth.id, &auth.endpoint_id, now).await? {
            WAKE.notify_one();
            return Ok(id);
        }
        if let Some(id) = sync_jobs::unfinished(&db.pool, &auth.id).await? {
            return Ok(id);
        }
    }
    anyhow::bail!("could not queue a sync of {}", auth.id)
}

/// Queues a re-sync unless one is already pending or running (then returns that job's id).
/// For the integrator's on-demand refresh of a MULTIPLE authorization.
///
/// # Errors
/// Database errors; an unknown or revoked authorization.
pub async fn request_resync(db: &Db, authorization_id: &str, now: i64) -> anyhow::Result<String> {
    let auth = authorizations::get(db, authorization_id).await?.ok_or_else(|| anyhow::anyhow!("unknown authorization"))?;
    anyhow::ensure!(auth.revoked_at.is_none(), "authorization is revoked");
    queue(db, &auth, now).await
}

/// The last runs of an authorization's sync that the API lists ([`history`]).
pub const HISTORY_RUNS: i64 = 10;

/// The authorization's last [`HISTORY_RUNS`] sync runs, newest first.
///
/// # Errors
/// Database errors.
pub async fn history(db: &Db, authorization_id: &str) -> anyhow::Result<Vec<sync_jobs::Run>> {
    sync_jobs::history(db, authorization_id, HISTORY_RUNS).await
}

/// The authorizations this process has seen with a successful sync: the gate of [`read_gate`] is open for them
/// for good (a success never reverts, and authorization ids are never reused), so their reads skip its queries.
/// Safe across instances for the same reason. Bounded: cleared when it reaches [`synced_once::CAPACITY`] ids.
mod synced_once {
    use std::{
        collections::HashSet,
        sync::{Mutex, OnceLock},
    };

    /// Most ids remembered (about 60 bytes each).
    pub(super) const CAPACITY: usize = 100_000;

    fn set() -> &'static Mutex<HashSet<String>> {
        static SET: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        SET.get_or_init(Default::default)
    }

    pub(super) fn contains(id: &str) -> bool {
        set().lock().map(|s| s.contains(id)).unwrap_or(false)
    }

    pub(super) fn insert(id: &str) {
        if let Ok(mut s) = set().lock() {
            if s.len() >= CAPACITY {
                s.clear();
            }
            s.insert(id.to_string());
        }
    }
}

/// What the FHIR API does with a read of an authorization's data, given its syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadGate {
    /// Serve the stored data: no sync yet, the latest one succeeded, or an earlier one did (a re-sync running
    /// or failed leaves the previous data readable).
    Open,
    /// The first sync is still running: 429.
    FirstSyncRunning,
    /// The first sync failed, with this exit code: 422.
    FirstSyncFailed(Option<crate::domain::ExitCode>),
}

/// The rule of [`ReadGate`]: only the *first* sync holds reads back (429 while it runs, 422 when it failed);
/// once a sync has brought data, re-syncs (on demand, scheduled or after a refresh) never do.
///
/// # Errors
/// Database errors.
pub async fn read_gate(db: &Db, authorization_id: &str) -> anyhow::Result<ReadGate> {
    if synced_once::contains(authorization_id) {
        return Ok(ReadGate::Open);
    }
    let Some(latest) = sync_jobs::latest(db, authorization_id).await? else { return Ok(ReadGate::Open) };
    if latest.status.succeeded() || sync_jobs::last_succeeded_at(db, authorization_id).await?.is_some() {
        synced_once::insert(authorization_id);
        return Ok(ReadGate::Open);
    }
    Ok(match latest.status {
        s if s.is_running() => ReadGate::FirstSyncRunning,
        crate::domain::SyncStatus::Failed => ReadGate::FirstSyncFailed(latest.exit_code),
        _ => ReadGate::Open,
    })
}


/// The latest sync job of an authorization (an unfinished one wins a tie on creation time).
///
/// # Errors
/// Database errors.
pub async fn status(db: &Db, authorization_id: &str) -> anyhow::Result<Option<JobStatus>> {
    sync_jobs::latest(db, authorization_id).await
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
/// (jittered) interval on ([`next_resync_at`]). One conditional update per authorization, so two instances never
/// both queue it; [`request_resync`] never queues a second job while one is pending or running. Returns how many
/// due re-syncs this call claimed (one whose authorization already had a job pending or running adds no second
/// job); none when `--resync-interval-secs` is 0.
///
/// # Errors
/// Database errors.
pub async fn run_schedule(state: &AppState) -> anyhow::Result<usize> {
    let now = state.clock.now();
    let mut queued = 0;
    let interval = state.settings.resync_interval_secs;
    if interval <= 0 {
        return Ok(0);
    }
    for (id, due) in authorizations::resyncs_due(&state.db, now, SCHEDULE_BATCH).await? {
        let next = next_resync_at(interval, now).unwrap_or(now + interval);
        if authorizations::claim_resync(&state.db, &id, due, next).await? {
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
                tracing::error!(error = %format!("{e:#}"), "scheduling re-syncs failed");
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
