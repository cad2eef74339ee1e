//! The `link_events` table: every step of every Link session, in order, with non-health metadata. Rows are keyed
//! by the session's public id and deleted with the session (`ON DELETE CASCADE`). The only module that writes SQL
//! on it.

use anyhow::Context as _;
use serde_json::Value;
use sqlx::Row as _;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep},
    server::platform::db::Db,
};

/// One recorded step.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEvent {
    /// What happened.
    pub name: LinkEventName,
    /// The session's step where it happened.
    pub step: LinkStep,
    /// The plan in play, if any.
    pub endpoint_id: Option<String>,
    /// `ERROR` and `EXIT`: the exit code.
    pub exit_code: Option<ExitCode>,
    /// Non-health metadata (e.g. `{"queryLength": 4}`, `{"payer_error": "access_denied"}`).
    pub detail: Value,
    /// When (Unix s).
    pub at: i64,
}

/// Appends `e` to the events of the session `public_id` (of `app_id`), through `ex` (the transaction of the
/// change it records, when there is one).
///
/// # Errors
/// Database errors (including a session that does not exist).
pub async fn insert<'e, E>(ex: E, public_id: &str, app_id: &str, e: &LinkEvent) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO link_events (session_public_id, app_id, name, step, endpoint_id, exit_code, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(public_id)
    .bind(app_id)
    .bind(e.name.as_str())
    .bind(e.step.as_str())
    .bind(e.endpoint_id.as_deref())
    .bind(e.exit_code.map(ExitCode::as_str))
    .bind(e.detail.to_string())
    .bind(e.at)
    .execute(ex)
    .await
    .context("recording a link event")?;
    Ok(())
}

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<LinkEvent> {
    let name: String = row.try_get("name")?;
    let step: String = row.try_get("step")?;
    let exit_code: Option<String> = row.try_get("exit_code")?;
    let detail: String = row.try_get("detail")?;
    Ok(LinkEvent {
        name: LinkEventName::parse(&name).context("link_events.name")?,
        step: LinkStep::parse(&step).context("link_events.step")?,
        endpoint_id: row.try_get("endpoint_id")?,
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
        at: row.try_get("at")?,
    })
}

/// The events of session `public_id`, oldest first, through `ex`.
///
/// # Errors
/// Database errors.
pub async fn of_session<'e, E>(ex: E, public_id: &str) -> anyhow::Result<Vec<LinkEvent>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT name, step, endpoint_id, exit_code, detail, at FROM link_events \
         WHERE session_public_id = $1 ORDER BY seq",
    )
    .bind(public_id)
    .fetch_all(ex)
    .await
    .context("reading a session's link events")?;
    rows.iter().map(from_row).collect()
}

/// How many events session `public_id` has of the names `names`.
///
/// # Errors
/// Database errors.
pub async fn count_named(db: &Db, public_id: &str, names: &[LinkEventName]) -> anyhow::Result<i64> {
    let list = names.iter().map(|n| format!("'{}'", n.as_str())).collect::<Vec<_>>().join(", ");
    let sql = format!("SELECT COUNT(*) AS n FROM link_events WHERE session_public_id = $1 AND name IN ({list})");
    let row = sqlx::query(&sql).bind(public_id).fetch_one(&db.pool).await.context("counting a session's link events")?;
    Ok(row.try_get("n")?)
}

/// The step of the newest `ERROR` event of session `public_id` (where the failure an exit from the error screen
/// ends with arose), through `ex`.
///
/// # Errors
/// Database errors.
pub async fn last_error_step<'e, E>(ex: E, public_id: &str) -> anyhow::Result<Option<LinkStep>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT step FROM link_events WHERE session_public_id = $1 AND name = $2 ORDER BY seq DESC LIMIT 1")
        .bind(public_id)
        .bind(LinkEventName::Error.as_str())
        .fetch_optional(ex)
        .await
        .context("reading a session's last error")?;
    Ok(row.map(|r| r.try_get::<String, _>("step")).transpose()?.as_deref().and_then(LinkStep::parse))
}

/// A failure as an operator sees it: an `ERROR` event of a session of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The app whose session it was.
    pub app_id: String,
    /// The event.
    pub event: LinkEvent,
}

/// The newest failures at or after `since` (Unix s): `ERROR` events, newest first, at most `limit`; of one app
/// and one endpoint when given.
///
/// # Errors
/// Database errors.
pub async fn recent_failures(
    db: &Db,
    since: i64,
    app_id: Option<&str>,
    endpoint_id: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<Failure>> {
    let rows = sqlx::query(
        "SELECT app_id, name, step, endpoint_id, exit_code, detail, at FROM link_events \
         WHERE name = $1 AND at >= $2 AND ($3 = '' OR app_id = $3) AND ($4 = '' OR endpoint_id = $4) \
         ORDER BY at DESC, seq DESC LIMIT $5",
    )
    .bind(LinkEventName::Error.as_str())
    .bind(since)
    .bind(app_id.unwrap_or(""))
    .bind(endpoint_id.unwrap_or(""))
    .bind(limit.clamp(1, 1000))
    .fetch_all(&db.pool)
    .await
    .context("reading recent failures")?;
    rows.iter().map(|r| Ok(Failure { app_id: r.try_get("app_id")?, event: from_row(r)? })).collect()
}
