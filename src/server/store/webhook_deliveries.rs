//! The `webhook_deliveries` table: the durable outbox of webhook events, leased by one instance at a time per
//! attempt (`FOR UPDATE SKIP LOCKED` on PostgreSQL). The only module that writes SQL on it.

use serde::Serialize;
use sqlx::Row as _;

use crate::server::platform::db::Db;

/// A delivery to queue.
pub struct NewDelivery<'a> {
    /// `evt_…`, stable across retries.
    pub event_id: &'a str,
    /// The app.
    pub app_id: &'a str,
    /// The event name.
    pub event: &'a str,
    /// The exact body sent on every attempt, or (with `payload_key_id`) the base64 of its sealed box.
    pub payload: &'a str,
    /// The key that sealed `payload`, when the body carries a secret; `None` for a plain body.
    pub payload_key_id: Option<&'a str>,
}

/// Queues a delivery due at `now`, through `ex` (the pool, or the transaction of the change it announces).
///
/// # Errors
/// Database errors.
pub async fn insert<'e, E>(ex: E, now: i64, d: NewDelivery<'_>) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, event_id, app_id, event, payload, payload_key_id, attempts, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $7, 0, $6, $6)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(d.event_id)
    .bind(d.app_id)
    .bind(d.event)
    .bind(d.payload)
    .bind(now)
    .bind(d.payload_key_id)
    .execute(ex)
    .await?;
    Ok(())
}

/// A delivery leased for one attempt.
#[derive(Debug)]
pub struct Claimed {
    /// Row id.
    pub id: String,
    /// `evt_…`.
    pub event_id: String,
    /// The app.
    pub app_id: String,
    /// The event name.
    pub event: String,
    /// The body to send, or the base64 of its sealed box (see `payload_key_id`).
    pub payload: String,
    /// The key that sealed `payload`, or `None` when it is the plain body.
    pub payload_key_id: Option<String>,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Leases up to `limit` due deliveries (not delivered, not dead, `next_attempt_at` past, lease free) to `owner`
/// until `lease_until`.
///
/// # Errors
/// Database errors.
pub async fn claim_due(db: &Db, owner: &str, now: i64, lease_until: i64, limit: i64) -> anyhow::Result<Vec<Claimed>> {
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 WHERE id IN ( \
           SELECT id FROM webhook_deliveries \
           WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) \
           ORDER BY next_attempt_at LIMIT $4 {}) \
         RETURNING id, event_id, app_id, event, payload, payload_key_id, attempts",
        db.skip_locked()
    );
    let rows = sqlx::query(&sql).bind(owner).bind(lease_until).bind(now).bind(limit).fetch_all(&db.pool).await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                app_id: r.try_get("app_id")?,
                event: r.try_get("event")?,
                payload: r.try_get("payload")?,
                payload_key_id: r.try_get("payload_key_id")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// Records a successful attempt (`attempts` in all, HTTP `status`) and releases the lease.
///
/// # Errors
/// Database errors.
pub async fn mark_delivered(db: &Db, id: &str, owner: &str, at: i64, attempts: i64, status: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET delivered_at = $1, attempts = $2, last_status = $3, \
         last_error = NULL, lease_owner = NULL, lease_until = NULL WHERE id = $4 AND lease_owner = $5",
    )
    .bind(at)
    .bind(attempts)
    .bind(status)
    .bind(id)
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// A failed attempt to record.
pub struct Failed<'a> {
    /// Attempts in all, this one included.
    pub attempts: i64,
    /// HTTP status, when the receiver answered.
    pub status: Option<i64>,
    /// Why (no secret or body).
    pub error: &'a str,
    /// When to try again (Unix s).
    pub next_attempt_at: i64,
    /// When it was given up (Unix s), if it was.
    pub dead_at: Option<i64>,
}

/// Records a failed attempt and releases the lease.
///
/// # Errors
/// Database errors.
pub async fn mark_failed(db: &Db, id: &str, owner: &str, f: Failed<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $1, last_status = $2, last_error = $3, \
         next_attempt_at = $4, dead_at = $5, lease_owner = NULL, lease_until = NULL \
         WHERE id = $6 AND lease_owner = $7",
    )
    .bind(f.attempts)
    .bind(f.status)
    .bind(f.error)
    .bind(f.next_attempt_at)
    .bind(f.dead_at)
    .bind(id)
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// One delivery as an operator sees it (no payload).
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    /// `evt_…`.
    pub event_id: String,
    /// The app.
    pub app_id: String,
    /// The event name.
    pub event: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (Unix s).
    pub next_attempt_at: i64,
    /// When it was delivered (Unix s).
    pub delivered_at: Option<i64>,
    /// When it was given up (Unix s).
    pub dead_at: Option<i64>,
    /// HTTP status of the last attempt.
    pub last_status: Option<i64>,
    /// Why the last attempt failed (no secret or body).
    pub last_error: Option<String>,
}

/// The deliveries of an app, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(db: &Db, app_id: &str, limit: i64) -> anyhow::Result<Vec<DeliveryInfo>> {
    let rows = sqlx::query(
        "SELECT event_id, app_id, event, attempts, next_attempt_at, delivered_at, dead_at, last_status, last_error \
         FROM webhook_deliveries WHERE app_id = $1 ORDER BY created_at DESC, id LIMIT $2",
    )
    .bind(app_id)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(info_from_row).collect()
}

fn info_from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<DeliveryInfo> {
    Ok(DeliveryInfo {
        event_id: r.try_get("event_id")?,
        app_id: r.try_get("app_id")?,
        event: r.try_get("event")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        delivered_at: r.try_get("delivered_at")?,
        dead_at: r.try_get("dead_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
    })
}

/// An app's deliveries created at or after a time, counted by where they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryHealth {
    /// The app.
    pub app_id: String,
    /// Delivered (a 2xx).
    pub delivered: i64,
    /// Not delivered yet, still being retried.
    pub retrying: i64,
    /// Given up (dead), waiting for the operator.
    pub dead: i64,
    /// The error of the newest failed attempt (no secret or body), if any delivery failed.
    pub last_error: Option<String>,
}

/// Delivery counts per app for deliveries created at or after `since` (Unix s), apps by id.
///
/// # Errors
/// Database errors.
pub async fn health_by_app(db: &Db, since: i64) -> anyhow::Result<Vec<DeliveryHealth>> {
    let rows = sqlx::query(
        "SELECT app_id, \
           SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END) AS delivered, \
           SUM(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END) AS retrying, \
           SUM(CASE WHEN dead_at IS NOT NULL AND delivered_at IS NULL THEN 1 ELSE 0 END) AS dead \
         FROM webhook_deliveries WHERE created_at >= $1 GROUP BY app_id ORDER BY app_id",
    )
    .bind(since)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let app_id: String = r.try_get("app_id")?;
        let last_error = sqlx::query(
            "SELECT last_error FROM webhook_deliveries WHERE app_id = $1 AND created_at >= $2 \
             AND last_error IS NOT NULL ORDER BY next_attempt_at DESC, id LIMIT 1",
        )
        .bind(&app_id)
        .bind(since)
        .fetch_optional(&db.pool)
        .await?
        .map(|r| r.try_get::<String, _>("last_error"))
        .transpose()?;
        out.push(DeliveryHealth {
            app_id,
            delivered: r.try_get("delivered")?,
            retrying: r.try_get("retrying")?,
            dead: r.try_get("dead")?,
            last_error,
        });
    }
    Ok(out)
}

/// Dead deliveries (given up, never delivered), newest first, at most `limit`.
///
/// # Errors
/// Database errors.
pub async fn dead(db: &Db, limit: i64) -> anyhow::Result<Vec<DeliveryInfo>> {
    let rows = sqlx::query(
        "SELECT event_id, app_id, event, attempts, next_attempt_at, delivered_at, dead_at, last_status, last_error \
         FROM webhook_deliveries WHERE dead_at IS NOT NULL AND delivered_at IS NULL \
         ORDER BY dead_at DESC, id LIMIT $1",
    )
    .bind(limit.clamp(1, 500))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(info_from_row).collect()
}

/// Gives a dead delivery one more attempt, due at `now` (one conditional update: only a dead, undelivered one);
/// returns its app when it did. A failure of that attempt marks it dead again.
///
/// # Errors
/// Database errors.
pub async fn retry_dead(db: &Db, now: i64, event_id: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query(
        "UPDATE webhook_deliveries SET dead_at = NULL, next_attempt_at = $1, lease_owner = NULL, lease_until = NULL \
         WHERE event_id = $2 AND dead_at IS NOT NULL AND delivered_at IS NULL RETURNING app_id",
    )
    .bind(now)
    .bind(event_id)
    .fetch_optional(&db.pool)
    .await?;
    row.map(|r| r.try_get::<String, _>("app_id")).transpose().map_err(Into::into)
}
