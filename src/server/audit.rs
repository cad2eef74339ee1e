//! Append-only audit trail (no health data), exportable as JSON lines.
//!
//! Owner: [Lifecycle]. Compiled only with `ssr`.

use serde_json::Value;

use super::db::Db;

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

/// Appends a record (never updated, never deleted). `now` is Unix seconds from the server's clock.
///
/// # Errors
/// Database errors.
pub async fn record(db: &Db, now: i64, entry: AuditEntry<'_>) -> anyhow::Result<()> {
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
    .execute(&db.pool)
    .await?;
    Ok(())
}
