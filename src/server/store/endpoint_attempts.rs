//! The `endpoint_attempts` table: one row per patient's try at an endpoint, from the hand-off to the payer until
//! the end of the first sync, so the directory's health comes from what patients really met. Ids and times
//! only: no health data, no user id. The only module that writes SQL on it.

use anyhow::Context as _;
use sqlx::Row as _;

use crate::{
    domain::{AttemptOutcome, ExitCode},
    server::platform::db::Db,
};

/// One attempt, as read back for the health figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Where it ended (or is).
    pub outcome: AttemptOutcome,
    /// Why it failed, when it did.
    pub exit_code: Option<ExitCode>,
    /// The hand-off (Unix s).
    pub started_at: i64,
    /// When the payer authorized (Unix s).
    pub connected_at: Option<i64>,
}

/// Records the start of an attempt (`pending`).
///
/// # Errors
/// Database errors.
pub async fn start(db: &Db, now: i64, endpoint_id: &str, link_session_id: &str) -> anyhow::Result<String> {
    let id = format!("att_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO endpoint_attempts (id, endpoint_id, link_session_id, outcome, started_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(endpoint_id)
    .bind(link_session_id)
    .bind(AttemptOutcome::Pending.as_str())
    .bind(now)
    .execute(&db.pool)
    .await
    .context("recording a link attempt")?;
    Ok(id)
}

/// The session's latest attempt still `pending`, with its endpoint: `(attempt id, endpoint id)`.
///
/// # Errors
/// Database errors.
pub async fn pending_of_session(db: &Db, link_session_id: &str) -> anyhow::Result<Option<(String, String)>> {
    let row = sqlx::query(
        "SELECT id, endpoint_id FROM endpoint_attempts WHERE link_session_id = $1 AND outcome = $2 \
         ORDER BY started_at DESC, id DESC LIMIT 1",
    )
    .bind(link_session_id)
    .bind(AttemptOutcome::Pending.as_str())
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("endpoint_id")?))).transpose()
}

/// The attempt that connected `authorization_id` and waits for its first sync: `(attempt id, endpoint id)`.
///
/// # Errors
/// Database errors.
pub async fn connected_of_authorization(db: &Db, authorization_id: &str) -> anyhow::Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT id, endpoint_id FROM endpoint_attempts WHERE authorization_id = $1 AND outcome = $2 LIMIT 1")
        .bind(authorization_id)
        .bind(AttemptOutcome::Connected.as_str())
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("endpoint_id")?))).transpose()
}

/// Marks a pending attempt `connected` to `authorization_id`. False when it was not pending any more.
///
/// # Errors
/// Database errors.
pub async fn connect(db: &Db, now: i64, id: &str, authorization_id: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE endpoint_attempts SET outcome = $1, authorization_id = $2, connected_at = $3 WHERE id = $4 AND outcome = $5",
    )
    .bind(AttemptOutcome::Connected.as_str())
    .bind(authorization_id)
    .bind(now)
    .bind(id)
    .bind(AttemptOutcome::Pending.as_str())
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends an attempt that is `from` (pending or connected) with `outcome` and its exit code. False when it had
/// moved on already (each attempt ends once).
///
/// # Errors
/// Database errors.
pub async fn end(
    db: &Db,
    now: i64,
    id: &str,
    from: AttemptOutcome,
    outcome: AttemptOutcome,
    exit_code: Option<ExitCode>,
) -> anyhow::Result<bool> {
    let done = sqlx::query("UPDATE endpoint_attempts SET outcome = $1, exit_code = $2, ended_at = $3 WHERE id = $4 AND outcome = $5")
        .bind(outcome.as_str())
        .bind(exit_code.map(ExitCode::as_str))
        .bind(now)
        .bind(id)
        .bind(from.as_str())
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The latest `limit` attempts at an endpoint that counted ([`AttemptOutcome::counts`]), newest first.
///
/// # Errors
/// Database errors.
pub async fn recent(db: &Db, endpoint_id: &str, limit: i64) -> anyhow::Result<Vec<Attempt>> {
    let counted: Vec<String> =
        AttemptOutcome::ALL.iter().filter(|o| o.counts()).map(|o| format!("'{}'", o.as_str())).collect();
    let rows = sqlx::query(&format!(
        "SELECT outcome, exit_code, started_at, connected_at FROM endpoint_attempts \
         WHERE endpoint_id = $1 AND outcome IN ({}) ORDER BY started_at DESC, id DESC LIMIT $2",
        counted.join(", ")
    ))
    .bind(endpoint_id)
    .bind(limit.max(1))
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let outcome: String = r.try_get("outcome")?;
            let code: Option<String> = r.try_get("exit_code")?;
            Ok(Attempt {
                outcome: AttemptOutcome::parse(&outcome).context("endpoint_attempts.outcome")?,
                exit_code: code.as_deref().and_then(ExitCode::parse),
                started_at: r.try_get("started_at")?,
                connected_at: r.try_get("connected_at")?,
            })
        })
        .collect()
}

/// Ends as `declined` every attempt still pending that started before `before` (the patient never came back
/// from the payer). Returns how many.
///
/// # Errors
/// Database errors.
pub async fn close_abandoned(db: &Db, now: i64, before: i64) -> anyhow::Result<u64> {
    let done = sqlx::query("UPDATE endpoint_attempts SET outcome = $1, ended_at = $2 WHERE outcome = $3 AND started_at < $4")
        .bind(AttemptOutcome::Declined.as_str())
        .bind(now)
        .bind(AttemptOutcome::Pending.as_str())
        .bind(before)
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes every attempt at an endpoint, through `conn` (deleting the endpoint).
///
/// # Errors
/// Database errors.
pub async fn delete_for_endpoint(conn: &mut sqlx::AnyConnection, endpoint_id: &str) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM endpoint_attempts WHERE endpoint_id = $1").bind(endpoint_id).execute(conn).await?.rows_affected())
}
