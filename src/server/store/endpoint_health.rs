//! The `endpoint_health` table: per endpoint, the health status last announced (so `endpoint.status_changed`
//! fires once per change, whichever instance sees it first) and the result of the last `endpoints check`. The
//! only module that writes SQL on it.

use anyhow::Context as _;
use serde_json::Value;
use sqlx::Row as _;

use crate::{domain::HealthStatus, server::platform::db::Db};

/// What is stored for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    /// The status last announced.
    pub status: HealthStatus,
    /// When it took that status (Unix s).
    pub status_changed_at: i64,
    /// When `endpoints check` last ran (Unix s).
    pub checked_at: Option<i64>,
    /// The problems it found (a JSON array; empty when it passed).
    pub check_problems: Option<Value>,
}

/// The row of an endpoint, if any.
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, endpoint_id: &str) -> anyhow::Result<Option<HealthRow>> {
    let row = sqlx::query("SELECT status, status_changed_at, checked_at, check_problems FROM endpoint_health WHERE endpoint_id = $1")
        .bind(endpoint_id)
        .fetch_optional(&db.pool)
        .await?;
    row.map(|r| {
        let status: String = r.try_get("status")?;
        let problems: Option<String> = r.try_get("check_problems")?;
        Ok(HealthRow {
            status: HealthStatus::parse(&status).context("endpoint_health.status")?,
            status_changed_at: r.try_get("status_changed_at")?,
            checked_at: r.try_get("checked_at")?,
            check_problems: problems.map(|p| serde_json::from_str(&p)).transpose().context("endpoint_health.check_problems")?,
        })
    })
    .transpose()
}

/// Makes sure the endpoint has a row (status `unchecked`); no change when it has one.
///
/// # Errors
/// Database errors.
pub async fn ensure<'e, E>(ex: E, now: i64, endpoint_id: &str) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO endpoint_health (endpoint_id, status, status_changed_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (endpoint_id) DO NOTHING",
    )
    .bind(endpoint_id)
    .bind(HealthStatus::Unchecked.as_str())
    .bind(now)
    .execute(ex)
    .await?;
    Ok(())
}

/// Moves the announced status from `from` to `to`, through `conn` (the transaction that also queues the
/// webhooks announcing it). True for exactly one caller per change; false when it was not `from` any more.
///
/// # Errors
/// Database errors.
pub async fn change_status(conn: &mut sqlx::AnyConnection, now: i64, endpoint_id: &str, from: HealthStatus, to: HealthStatus) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE endpoint_health SET status = $1, status_changed_at = $2, updated_at = $2 WHERE endpoint_id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(endpoint_id)
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the result of a check (`problems`: a JSON array, empty when it passed).
///
/// # Errors
/// Database errors.
pub async fn record_check(db: &Db, now: i64, endpoint_id: &str, problems: &Value) -> anyhow::Result<()> {
    ensure(&db.pool, now, endpoint_id).await?;
    sqlx::query("UPDATE endpoint_health SET checked_at = $1, check_problems = $2, updated_at = $1 WHERE endpoint_id = $3")
        .bind(now)
        .bind(problems.to_string())
        .bind(endpoint_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Deletes the row of an endpoint, through `conn` (deleting the endpoint).
///
/// # Errors
/// Database errors.
pub async fn delete(conn: &mut sqlx::AnyConnection, endpoint_id: &str) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM endpoint_health WHERE endpoint_id = $1").bind(endpoint_id).execute(conn).await?;
    Ok(())
}
