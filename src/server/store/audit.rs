//! The `audit_events` table: an append-only trail of who did what (no health data), exportable as JSON lines.
//! The database itself refuses to update or delete a record (triggers in the migrations).
//!
//! The rule for writers: record in the same transaction as the change the record describes (pass the
//! transaction as the executor), or fail the request when the record cannot be written.

use serde_json::Value;

use crate::server::platform::db::Db;

/// One audit record. `detail` holds non-health context only (ids, counts, resource *types*, never values).
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    /// Who acted: `patient`, `app:{app_id}`, `operator`, `system`.
    pub actor: &'a str,
    /// What happened, e.g. `consent.given`, `payer.authorized`, `token.exchanged`, `fhir.read`, `expunged`.
    pub action: &'a str,
    /// The app concerned.
    pub app_id: Option<&'a str>,
    /// The authorization concerned.
    pub authorization_id: Option<&'a str>,
    /// The request id (`x-request-id`) of the request that caused it.
    pub request_id: Option<&'a str>,
    /// Non-health detail as JSON.
    pub detail: Option<Value>,
}

/// Appends a record (never updated, never deleted) through `ex`: the pool, or the transaction of the change it
/// records. `now` is Unix seconds from the server's clock.
///
/// # Errors
/// Database errors.
pub async fn record<'e, E>(ex: E, now: i64, entry: AuditEntry<'_>) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, action, app_id, authorization_id, request_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(now)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.app_id)
    .bind(entry.authorization_id)
    .bind(entry.request_id)
    .bind(entry.detail.unwrap_or_else(|| Value::Object(Default::default())).to_string())
    .execute(ex)
    .await?;
    Ok(())
}

/// Which records [`export`] writes; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Records at or after this time (Unix s).
    pub since: Option<i64>,
    /// Records strictly before this time (Unix s).
    pub until: Option<i64>,
    /// Only this app.
    pub app_id: Option<String>,
    /// Only this authorization.
    pub authorization_id: Option<String>,
    /// Only actions starting with this prefix (e.g. `fhir.` or `consent.`).
    pub action_prefix: Option<String>,
}

/// One exported record: a JSON object per line, oldest first.
fn export_line(row: &sqlx::any::AnyRow) -> anyhow::Result<Value> {
    use sqlx::Row as _;
    let at: i64 = row.try_get("at")?;
    let detail: String = row.try_get("detail")?;
    Ok(serde_json::json!({
        "id": row.try_get::<String, _>("id")?,
        "at": at,
        "time": time::OffsetDateTime::from_unix_timestamp(at).ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "actor": row.try_get::<String, _>("actor")?,
        "action": row.try_get::<String, _>("action")?,
        "app_id": row.try_get::<Option<String>, _>("app_id")?,
        "authorization_id": row.try_get::<Option<String>, _>("authorization_id")?,
        "request_id": row.try_get::<Option<String>, _>("request_id")?,
        "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::Null),
    }))
}

/// The records matching `filter`, oldest first, as JSON values (the shape of one exported line:
/// `{id, at, time, actor, action, app_id, authorization_id, request_id, detail}`).
///
/// # Errors
/// Database errors.
pub async fn query(db: &Db, filter: &ExportFilter) -> anyhow::Result<Vec<Value>> {
    // Insertion order within one second: SQLite's implicit rowid, PostgreSQL's `seq` (migration 0400).
    let order = match db.backend() {
        crate::server::platform::db::Backend::Sqlite => "rowid",
        crate::server::platform::db::Backend::Postgres => "seq",
    };
    let sql = format!(
        "SELECT id, at, actor, action, app_id, authorization_id, request_id, detail FROM audit_events \
         WHERE at >= $1 AND at < $2 AND ($3 = '' OR app_id = $3) AND ($4 = '' OR authorization_id = $4) \
         AND ($5 = '' OR action LIKE $6) ORDER BY at, {order}"
    );
    let rows = sqlx::query(&sql)
    .bind(filter.since.unwrap_or(i64::MIN))
    .bind(filter.until.unwrap_or(i64::MAX))
    .bind(filter.app_id.as_deref().unwrap_or(""))
    .bind(filter.authorization_id.as_deref().unwrap_or(""))
    .bind(filter.action_prefix.as_deref().unwrap_or(""))
    .bind(format!("{}%", filter.action_prefix.as_deref().unwrap_or("").replace(['%', '_'], "")))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(export_line).collect()
}

/// Writes the records matching `filter` to `out` as JSON lines (one object per line, oldest first).
/// Returns the number of lines written.
///
/// # Errors
/// Database or I/O errors.
pub async fn export(db: &Db, filter: &ExportFilter, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
    let mut n = 0u64;
    for line in query(db, filter).await? {
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}
