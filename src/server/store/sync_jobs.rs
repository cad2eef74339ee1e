//! The `sync_jobs` table: durable sync jobs, leased by one instance at a time. The only module that writes SQL
//! on it.
//!
//! A job is `pending` → `syncing` (⇄ `delayed` while it waits for the payer) → `complete`, `partial` or `failed`
//! ([`SyncStatus`]). Its resumable cursor
//! (opaque JSON owned by the sync service) and its progress are written after every page, so a restart or
//! another instance continues where it stopped. Claims and every later write are conditional on the lease
//! holder, so a job whose lease was taken over is never written by its old holder.

use std::collections::BTreeMap;

use anyhow::Context as _;
use sqlx::Row as _;

use crate::{
    domain::{ExitCode, IncompleteType, Incremental, SkippedType, SyncChanges, SyncStats, SyncStatus},
    server::platform::db::Db,
};

/// What a running job reports after each step (written with its cursor).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Resources stored so far, by resource type.
    pub counts: BTreeMap<String, i64>,
    /// Non-fatal problems (OperationOutcome warnings, unresolved references, links not followed).
    pub warnings: Vec<String>,
    /// Types skipped, with why.
    pub skipped: Vec<SkippedType>,
    /// Types whose paging stopped early, with why.
    pub incomplete: Vec<IncompleteType>,
    /// Retries, page-size reductions and rate-limit waits so far.
    pub stats: SyncStats,
    /// What the job changed in the stored data so far.
    pub changes: SyncChanges,
    /// The types asked for changes only, and since when; `None` for a full sync.
    pub incremental: Option<Incremental>,
}

/// The latest state of an authorization's sync.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobStatus {
    /// Where the job is.
    pub status: SyncStatus,
    /// Resources stored so far, by resource type.
    pub progress: BTreeMap<String, i64>,
    /// Types skipped, with why.
    pub skipped: Vec<SkippedType>,
    /// Why it failed.
    pub exit_code: Option<ExitCode>,
    /// Non-fatal problems.
    pub warnings: Vec<String>,
    /// Types whose paging stopped early, with why (the job ends `partial`).
    pub incomplete: Vec<IncompleteType>,
    /// Retries, page-size reductions and rate-limit waits so far.
    pub stats: SyncStats,
    /// What it changed in the stored data so far.
    pub changes: SyncChanges,
    /// The types asked for changes only, and since when; `None` for a full sync.
    pub incremental: Option<Incremental>,
    /// When a `delayed` job runs again (Unix seconds); `None` in every other status.
    pub delayed_until: Option<i64>,
    /// When the job finished (Unix seconds).
    pub finished_at: Option<i64>,
}

/// A job claimed by one holder.
#[derive(Debug)]
pub struct ClaimedRow {
    /// Job id.
    pub id: String,
    /// The authorization it syncs.
    pub authorization_id: String,
    /// Claims so far, this one included.
    pub attempt: i64,
    /// The cursor as last saved (JSON, `{}` at first).
    pub cursor: String,
    /// Progress as last saved.
    pub progress: Progress,
}

fn json_text<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(v)?)
}

fn progress_of(row: &sqlx::any::AnyRow) -> anyhow::Result<Progress> {
    let text = |c: &str| row.try_get::<String, _>(c);
    Ok(Progress {
        counts: serde_json::from_str(&text("progress")?).unwrap_or_default(),
        warnings: serde_json::from_str(&text("warnings")?).unwrap_or_default(),
        skipped: serde_json::from_str(&text("skipped")?).unwrap_or_default(),
        incomplete: serde_json::from_str(&text("incomplete")?).unwrap_or_default(),
        stats: serde_json::from_str(&text("stats")?).unwrap_or_default(),
        changes: serde_json::from_str(&text("changes")?).unwrap_or_default(),
        incremental: row.try_get::<Option<String>, _>("incremental")?.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

/// Queues a sync of an authorization due at `now` (its endpoint recorded so claims can bound jobs per payer)
/// unless it has an unfinished (`pending`, `syncing` or `delayed`) job. The database keeps that rule (the unique
/// index `sync_jobs_one_unfinished`), so two instances queueing at once insert one job between them. Returns the
/// new job's id, or `None` when an unfinished job was there.
///
/// # Errors
/// Database errors.
pub async fn insert_unless_unfinished<'e, E>(ex: E, authorization_id: &str, endpoint_id: &str, now: i64) -> anyhow::Result<Option<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let id = uuid::Uuid::new_v4().to_string();
    let n = sqlx::query(
        "INSERT INTO sync_jobs (id, authorization_id, status, run_after, created_at, updated_at, endpoint_id) \
         VALUES ($1, $2, $3, $4, $4, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(authorization_id)
    .bind(SyncStatus::Pending.as_str())
    .bind(now)
    .bind(endpoint_id)
    .execute(ex)
    .await?
    .rows_affected();
    Ok((n == 1).then_some(id))
}

/// The newest unfinished (`pending`, `syncing` or `delayed`) job of an authorization.
///
/// # Errors
/// Database errors.
pub async fn unfinished<'e, E>(ex: E, authorization_id: &str) -> anyhow::Result<Option<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT id FROM sync_jobs WHERE authorization_id = $1 AND status IN ($2, $3, $4) ORDER BY created_at DESC LIMIT 1",
    )
    .bind(authorization_id)
    .bind(SyncStatus::Pending.as_str())
    .bind(SyncStatus::Syncing.as_str())
    .bind(SyncStatus::Delayed.as_str())
    .fetch_optional(ex)
    .await?;
    Ok(row.map(|r| r.try_get("id")).transpose()?)
}

/// The latest job of an authorization (an unfinished one wins a tie on creation time).
///
/// # Errors
/// Database errors, or a stored status this build does not know.
pub async fn latest(db: &Db, authorization_id: &str) -> anyhow::Result<Option<JobStatus>> {
    let Some(row) = sqlx::query(
        "SELECT status, progress, skipped, exit_code, warnings, incomplete, stats, changes, incremental, run_after, finished_at \
         FROM sync_jobs WHERE authorization_id = $1 \
         ORDER BY created_at DESC, CASE WHEN finished_at IS NULL THEN 0 ELSE 1 END, updated_at DESC LIMIT 1",
    )
    .bind(authorization_id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get("status")?;
    let exit_code: Option<String> = row.try_get("exit_code")?;
    let p = progress_of(&row)?;
    let status = SyncStatus::parse(&status).context("sync_jobs.status")?;
    let run_after: i64 = row.try_get("run_after")?;
    Ok(Some(JobStatus {
        status,
        progress: p.counts,
        skipped: p.skipped,
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        warnings: p.warnings,
        incomplete: p.incomplete,
        stats: p.stats,
        changes: p.changes,
        incremental: p.incremental,
        delayed_until: (status == SyncStatus::Delayed).then_some(run_after),
        finished_at: row.try_get("finished_at")?,
    }))
}

/// One run of an authorization's sync, as its history lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Run {
    /// The job's id.
    pub job_id: String,
    /// Where the run is (a run still going is `pending`, `syncing` or `delayed`).
    pub status: SyncStatus,
    /// When it was queued (Unix seconds).
    pub created_at: i64,
    /// When a worker first took it (Unix seconds); `None` while it waits.
    pub started_at: Option<i64>,
    /// When it finished (Unix seconds); `None` while it runs.
    pub finished_at: Option<i64>,
    /// Resources stored, by resource type.
    pub counts: BTreeMap<String, i64>,
    /// Types skipped, with why.
    pub skipped: Vec<SkippedType>,
    /// Types whose paging stopped early, with why.
    pub incomplete: Vec<IncompleteType>,
    /// Why it failed.
    pub exit_code: Option<ExitCode>,
    /// What it changed in the stored data (`added`, `updated`, `unchanged`, `removed`).
    #[serde(flatten)]
    pub changes: SyncChanges,
    /// The types asked for changes only (`_lastUpdated`), and since when; `null` for a full sync.
    pub incremental: Option<Incremental>,
}

/// The columns [`run_of`] reads.
const RUN_COLUMNS: &str =
    "id, status, created_at, started_at, finished_at, progress, skipped, exit_code, warnings, incomplete, stats, changes, incremental";

fn run_of(row: &sqlx::any::AnyRow) -> anyhow::Result<Run> {
    let status: String = row.try_get("status")?;
    let exit_code: Option<String> = row.try_get("exit_code")?;
    let p = progress_of(row)?;
    Ok(Run {
        job_id: row.try_get("id")?,
        status: SyncStatus::parse(&status).context("sync_jobs.status")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        counts: p.counts,
        skipped: p.skipped,
        incomplete: p.incomplete,
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        changes: p.changes,
        incremental: p.incremental,
    })
}

/// The authorization's latest `limit` runs, newest first (an unfinished one first on a tie).
///
/// # Errors
/// Database errors, or a stored status this build does not know.
pub async fn history(db: &Db, authorization_id: &str, limit: i64) -> anyhow::Result<Vec<Run>> {
    let rows = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_jobs WHERE authorization_id = $1 \
         ORDER BY created_at DESC, CASE WHEN finished_at IS NULL THEN 0 ELSE 1 END, updated_at DESC LIMIT $2"
    ))
    .bind(authorization_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(run_of).collect()
}

/// The authorization's latest run that brought data (`complete` or `partial`) with its saved cursor, and the
/// start (Unix seconds) of its latest such run that read every type in full (`incremental` unset).
///
/// # Errors
/// Database errors, or a stored status this build does not know.
pub async fn last_success(db: &Db, authorization_id: &str) -> anyhow::Result<Option<(Run, String, Option<i64>)>> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS}, state FROM sync_jobs WHERE authorization_id = $1 AND status IN ($2, $3) \
         ORDER BY finished_at DESC LIMIT 1"
    ))
    .bind(authorization_id)
    .bind(SyncStatus::Complete.as_str())
    .bind(SyncStatus::Partial.as_str())
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let full = sqlx::query(
        "SELECT MAX(started_at) AS at FROM sync_jobs WHERE authorization_id = $1 AND status IN ($2, $3) \
         AND incremental IS NULL",
    )
    .bind(authorization_id)
    .bind(SyncStatus::Complete.as_str())
    .bind(SyncStatus::Partial.as_str())
    .fetch_one(&db.pool)
    .await?;
    Ok(Some((run_of(&row)?, row.try_get("state")?, full.try_get("at")?)))
}

/// When the authorization's latest sync with data (`complete` or `partial`) finished (Unix seconds).
///
/// # Errors
/// Database errors.
pub async fn last_succeeded_at(db: &Db, authorization_id: &str) -> anyhow::Result<Option<i64>> {
    let row = sqlx::query("SELECT MAX(finished_at) AS at FROM sync_jobs WHERE authorization_id = $1 AND status IN ($2, $3)")
        .bind(authorization_id)
        .bind(SyncStatus::Complete.as_str())
        .bind(SyncStatus::Partial.as_str())
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get("at")?)
}

/// Claims one due job for `owner` until `lease_until`: pending, delayed, or syncing with an expired lease (its
/// instance died) and `run_after` past, while its payer runs fewer than `per_payer_limit` jobs. One conditional
/// `UPDATE … RETURNING` whose subquery uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent instances
/// never claim the same job.
///
/// # Errors
/// Database errors.
pub async fn claim(
    db: &Db,
    owner: &str,
    now: i64,
    lease_until: i64,
    per_payer_limit: i64,
) -> anyhow::Result<Option<ClaimedRow>> {
    let sql = format!(
        "UPDATE sync_jobs SET status = $5, lease_owner = $1, lease_until = $2, attempt = attempt + 1, \
         started_at = COALESCE(started_at, $3), updated_at = $3 \
         WHERE id = (SELECT j.id FROM sync_jobs j WHERE j.status IN ($6, $5, $7) AND j.run_after <= $3 \
           AND (j.lease_until IS NULL OR j.lease_until < $3) \
           AND (j.endpoint_id IS NULL OR (SELECT COUNT(*) FROM sync_jobs k WHERE k.endpoint_id = j.endpoint_id \
                AND k.status = $5 AND k.lease_until >= $3) < $4) \
           ORDER BY j.run_after, j.created_at LIMIT 1 {}) \
         AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING id, authorization_id, attempt, state, progress, warnings, skipped, incomplete, stats, changes, incremental",
        db.skip_locked()
    );
    let row = sqlx::query(&sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(per_payer_limit)
        .bind(SyncStatus::Syncing.as_str())
        .bind(SyncStatus::Pending.as_str())
        .bind(SyncStatus::Delayed.as_str())
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(ClaimedRow {
        id: row.try_get("id")?,
        authorization_id: row.try_get("authorization_id")?,
        attempt: row.try_get("attempt")?,
        cursor: row.try_get("state")?,
        progress: progress_of(&row)?,
    }))
}

/// Extends `owner`'s lease of a job to `until`. Returns false when another holder took it over.
///
/// # Errors
/// Database errors.
pub async fn renew_lease(db: &Db, id: &str, owner: &str, until: i64) -> anyhow::Result<bool> {
    let n = sqlx::query("UPDATE sync_jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
        .bind(until)
        .bind(id)
        .bind(owner)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Saves progress and the cursor while `owner` holds the job. Returns false when another holder took it over.
///
/// # Errors
/// Database errors.
pub async fn checkpoint(db: &Db, id: &str, owner: &str, p: &Progress, cursor: &str, now: i64) -> anyhow::Result<bool> {
    let n = sqlx::query(
        "UPDATE sync_jobs SET progress = $1, warnings = $2, skipped = $3, state = $4, updated_at = $5, \
         incomplete = $8, stats = $9, changes = $10, incremental = $11 WHERE id = $6 AND lease_owner = $7",
    )
    .bind(json_text(&p.counts)?)
    .bind(json_text(&p.warnings)?)
    .bind(json_text(&p.skipped)?)
    .bind(cursor)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(json_text(&p.incomplete)?)
    .bind(json_text(&p.stats)?)
    .bind(json_text(&p.changes)?)
    .bind(p.incremental.as_ref().map(json_text).transpose()?)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Releases `owner`'s lease and makes the job due again at `run_after` with `status` (`syncing`, or `delayed`
/// when the payer asked for the wait); the cursor is kept, and the claim does not count as an attempt.
///
/// # Errors
/// Database errors.
#[allow(clippy::too_many_arguments)]
pub async fn pause(
    db: &Db,
    id: &str,
    owner: &str,
    status: SyncStatus,
    p: &Progress,
    cursor: &str,
    run_after: i64,
    now: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE sync_jobs SET run_after = $1, lease_owner = NULL, lease_until = NULL, attempt = attempt - 1, \
         progress = $2, warnings = $3, skipped = $4, state = $5, updated_at = $6, status = $9, incomplete = $10, \
         stats = $11, changes = $12, incremental = $13 WHERE id = $7 AND lease_owner = $8",
    )
    .bind(run_after)
    .bind(json_text(&p.counts)?)
    .bind(json_text(&p.warnings)?)
    .bind(json_text(&p.skipped)?)
    .bind(cursor)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(status.as_str())
    .bind(json_text(&p.incomplete)?)
    .bind(json_text(&p.stats)?)
    .bind(json_text(&p.changes)?)
    .bind(p.incremental.as_ref().map(json_text).transpose()?)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Records the job's final status (and exit code when it failed) while `owner` holds it, releasing the lease.
/// Returns false when another holder took it over (nothing written).
///
/// # Errors
/// Database errors.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    db: &Db,
    id: &str,
    owner: &str,
    status: SyncStatus,
    exit_code: Option<ExitCode>,
    p: &Progress,
    cursor: &str,
    now: i64,
) -> anyhow::Result<bool> {
    let n = sqlx::query(
        "UPDATE sync_jobs SET status = $1, exit_code = $2, progress = $3, warnings = $4, skipped = $5, state = $6, \
         finished_at = $7, updated_at = $7, lease_owner = NULL, lease_until = NULL, incomplete = $10, stats = $11, \
         changes = $12, incremental = $13 WHERE id = $8 AND lease_owner = $9",
    )
    .bind(status.as_str())
    .bind(exit_code.map(ExitCode::as_str))
    .bind(json_text(&p.counts)?)
    .bind(json_text(&p.warnings)?)
    .bind(json_text(&p.skipped)?)
    .bind(cursor)
    .bind(now)
    .bind(id)
    .bind(owner)
    .bind(json_text(&p.incomplete)?)
    .bind(json_text(&p.stats)?)
    .bind(json_text(&p.changes)?)
    .bind(p.incremental.as_ref().map(json_text).transpose()?)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}
