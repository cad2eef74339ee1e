//! The `audit_events` table: an append-only trail of who did what (no health data), exportable as JSON lines.
//! The database itself refuses to update or delete a record (triggers in the migrations).
//!
//! The rule for writers: record in the same transaction as the change the record describes (pass the
//! transaction as the executor), or fail the request when the record cannot be written. The one exception is a
//! read, which changes nothing: `fhir.read` records go through the [`AuditQueue`], written in batches off the
//! request's path (a few milliseconds later), never dropped.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

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
    insert(ex, &[QueuedEntry::new(now, entry)]).await
}

/// An [`AuditEntry`] with its time, owned: what the [`AuditQueue`] holds and [`insert`] writes.
#[derive(Debug, Clone)]
struct QueuedEntry {
    at: i64,
    actor: String,
    action: String,
    app_id: Option<String>,
    authorization_id: Option<String>,
    request_id: Option<String>,
    detail: String,
}

impl QueuedEntry {
    fn new(now: i64, e: AuditEntry<'_>) -> Self {
        Self {
            at: now,
            actor: e.actor.to_string(),
            action: e.action.to_string(),
            app_id: e.app_id.map(str::to_string),
            authorization_id: e.authorization_id.map(str::to_string),
            request_id: e.request_id.map(str::to_string),
            detail: e.detail.unwrap_or_else(|| Value::Object(Default::default())).to_string(),
        }
    }
}

/// Appends `batch` through `ex` in one statement, in its order: the one `INSERT` of this table.
async fn insert<'e, E>(ex: E, batch: &[QueuedEntry]) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    if batch.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO audit_events (id, at, actor, action, app_id, authorization_id, request_id, detail) VALUES {}",
        crate::server::platform::db::values_placeholders(batch.len(), 8)
    );
    let mut q = sqlx::query(&sql);
    for e in batch {
        q = q
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(e.at)
            .bind(e.actor.as_str())
            .bind(e.action.as_str())
            .bind(e.app_id.as_deref())
            .bind(e.authorization_id.as_deref())
            .bind(e.request_id.as_deref())
            .bind(e.detail.as_str());
    }
    q.execute(ex).await?;
    Ok(())
}

enum Queued {
    Entry(QueuedEntry),
    /// Answered once every record queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Most records [`AuditQueue`] holds before [`AuditQueue::record`] writes in the request instead (backpressure:
/// a record is never dropped).
pub const AUDIT_QUEUE_CAPACITY: usize = 4096;
/// Most records in one batch (one `INSERT` of 8 parameters each: within SQLite's and PostgreSQL's limits).
pub const AUDIT_BATCH_MAX: usize = 256;

/// The records of reads, written off the request's path: [`AuditQueue::record`] queues one and returns; one
/// writer per instance ([`AuditQueue::spawn_writer`]) appends whatever has queued in one `INSERT` per batch, so
/// 32 concurrent readers cost one commit instead of 32. A record is never lost to the queue: while no writer
/// runs (the CLI, before start, after shutdown) or when the queue is full, `record` writes it itself; at
/// shutdown the writer closes the queue and writes everything still in it. A crash loses what was queued and not
/// yet written (at most one batch's worth of milliseconds), as it loses the in-flight requests themselves.
#[derive(Clone)]
pub struct AuditQueue {
    tx: mpsc::Sender<Queued>,
    rx: Arc<Mutex<Option<mpsc::Receiver<Queued>>>>,
    running: Arc<AtomicBool>,
}

impl std::fmt::Debug for AuditQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditQueue").field("running", &self.running.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

impl Default for AuditQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(AUDIT_QUEUE_CAPACITY);
        Self { tx, rx: Arc::new(Mutex::new(Some(rx))), running: Arc::new(AtomicBool::new(false)) }
    }
}

impl AuditQueue {
    /// Records `entry` at `now` (Unix s): queued for the writer, or written here (on `db`) when no writer runs or
    /// the queue is full.
    ///
    /// # Errors
    /// Database errors of a record written here (a queued record's errors are logged by the writer).
    pub async fn record(&self, db: &Db, now: i64, entry: AuditEntry<'_>) -> anyhow::Result<()> {
        let e = QueuedEntry::new(now, entry);
        if !self.running.load(Ordering::Acquire) {
            return insert(&db.pool, std::slice::from_ref(&e)).await;
        }
        // Full or closed: the message comes back, and is written here.
        match self.tx.try_send(Queued::Entry(e)).map_err(mpsc::error::TrySendError::into_inner) {
            Err(Queued::Entry(e)) => insert(&db.pool, std::slice::from_ref(&e)).await,
            Ok(()) | Err(Queued::Flush(_)) => Ok(()),
        }
    }

    /// Waits until every record queued before this call is written (tests and exports read the table after it).
    pub async fn flush(&self) {
        if !self.running.load(Ordering::Acquire) {
            return;
        }
        let (done, wait) = oneshot::channel();
        if self.tx.send(Queued::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Starts the writer on `db` (the first call only; `None` afterwards): it writes each batch as it queues, until
    /// `shutdown` fires; then it closes the queue (later records are written by [`AuditQueue::record`] itself) and
    /// writes what is still queued. Write errors are logged with the number of records lost.
    pub fn spawn_writer(&self, db: Db, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let mut rx = self.rx.lock().ok()?.take()?;
        self.running.store(true, Ordering::Release);
        let running = self.running.clone();
        Some(tokio::spawn(async move {
            let mut batch = Vec::with_capacity(AUDIT_BATCH_MAX);
            let mut flushes = Vec::new();
            loop {
                let first = tokio::select! {
                    m = rx.recv() => m,
                    () = shutdown.cancelled() => None,
                };
                let Some(first) = first else { break };
                take(first, &mut batch, &mut flushes);
                while batch.len() < AUDIT_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(m) => take(m, &mut batch, &mut flushes),
                        Err(_) => break,
                    }
                }
                write(&db, &mut batch, &mut flushes).await;
            }
            running.store(false, Ordering::Release);
            rx.close();
            while let Some(m) = rx.recv().await {
                take(m, &mut batch, &mut flushes);
                if batch.len() >= AUDIT_BATCH_MAX {
                    write(&db, &mut batch, &mut flushes).await;
                }
            }
            write(&db, &mut batch, &mut flushes).await;
        }))
    }
}

fn take(m: Queued, batch: &mut Vec<QueuedEntry>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match m {
        Queued::Entry(e) => batch.push(e),
        Queued::Flush(done) => flushes.push(done),
    }
}

async fn write(db: &Db, batch: &mut Vec<QueuedEntry>, flushes: &mut Vec<oneshot::Sender<()>>) {
    if let Err(e) = insert(&db.pool, batch).await {
        tracing::error!(error = %format!("{e:#}"), records = batch.len(), "could not write queued audit records");
    }
    batch.clear();
    for done in flushes.drain(..) {
        let _ = done.send(());
    }
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
