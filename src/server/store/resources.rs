//! The `resources` table: synced resources, the JSON exactly as the payer sent it, plus the index columns the
//! FHIR API searches on (type, id, patient, `meta.lastUpdated`, a main date, status, and "system|code" tokens).
//! Every SQL statement on this table is in this module.
//!
//! Rows are keyed by (authorization, type, id) and upserted: the newest `meta.lastUpdated` wins, and a
//! version without `lastUpdated` always replaces the stored one (it cannot be ordered, and it is the most
//! recently fetched). With `--encrypt-resources` the body is sealed with aad [`resource_aad`].
//!
//! Each row remembers the sync job that last received it (`sync_job_id`): at the end of a sync, the rows of a
//! fully fetched type that the job did not see are the ones the payer no longer returns ([`remove_unseen`]).
//!
//! Reads ([`read`], [`search`], [`read_many`], [`everything`]) are limited to a [`Scope`] of authorizations and
//! return each body as stored (opened when sealed), never re-serialized. Each upsert also replaces the
//! resource's search index rows (`store::resource_params`), on which [`search`] filters in SQL.

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::{any::AnyRow, Row as _};

use crate::domain::{Mode, SyncChanges};
use crate::server::{
    fhir::search::{self, Criterion},
    platform::{
        crypto::Cipher,
        db::{Backend, Db},
    },
    store::{authorizations, resource_params},
};

/// What this module needs of the server: the pool, the keyring, and whether bodies are sealed at rest
/// (`--encrypt-resources`). `AppState::resource_store` gives it.
#[derive(Debug, Clone, Copy)]
pub struct ResourceStore<'a> {
    /// The database.
    pub db: &'a Db,
    /// The keyring sealing bodies (and opening them).
    pub cipher: &'a Cipher,
    /// Whether bodies are stored sealed (`--encrypt-resources`): then they get no search index rows.
    pub encrypt: bool,
}

/// What [`upsert`] stores: a resource's JSON text and the index values read from it.
pub use crate::server::fhir::index::{index, Indexed};

/// The aad sealing one resource's JSON when resources are encrypted at rest.
pub fn resource_aad(authorization_id: &str, resource_type: &str, id: &str) -> String {
    format!("resource:{authorization_id}/{resource_type}/{id}")
}

/// Whether resources get search index rows (`resource_params`), so searches filter in SQL: not when they are
/// encrypted at rest (the index would hold identifier values and dates in clear).
pub fn params_indexed(state: ResourceStore<'_>) -> bool {
    !state.encrypt
}

/// What to store in `resources (body, body_enc, body_key_id)` for one resource's JSON: `(Some(json), None,
/// None)` normally, `(None, Some(ciphertext), Some(key_id))` with `--encrypt-resources`, the ciphertext bound
/// by [`resource_aad`] to the row's key `(authorization_id, resource_type, id)`.
pub fn seal_body(
    state: ResourceStore<'_>,
    authorization_id: &str,
    resource_type: &str,
    id: &str,
    json: &str,
) -> (Option<String>, Option<Vec<u8>>, Option<String>) {
    if state.encrypt {
        let (enc, key_id) = state.cipher.seal_str(json, &resource_aad(authorization_id, resource_type, id));
        (None, Some(enc), Some(key_id))
    } else {
        (Some(json.to_string()), None, None)
    }
}

/// The JSON text of a stored resource row: `body` when plain, else `body_enc` opened with `body_key_id`.
///
/// # Errors
/// A sealed body that does not open, or a row with neither.
pub fn body_text(
    cipher: &Cipher,
    authorization_id: &str,
    resource_type: &str,
    id: &str,
    body: Option<String>,
    body_enc: Option<Vec<u8>>,
    body_key_id: Option<String>,
) -> anyhow::Result<String> {
    use secrecy::ExposeSecret as _;
    if let Some(b) = body {
        return Ok(b);
    }
    match (body_enc, body_key_id) {
        (Some(enc), Some(k)) => {
            Ok(cipher.open_str(&enc, &k, &resource_aad(authorization_id, resource_type, id))?.expose_secret().to_string())
        }
        _ => anyhow::bail!("resource row has no body"),
    }
}

/// Upserts resources of one authorization in one transaction, each marked as seen by `job_id` (the sync job
/// storing them; `None` outside a sync). Returns what changed: each resource counted once as `added` (no row
/// before), `updated` (a row with other JSON, replaced) or `unchanged` (the same JSON, or an older
/// `meta.lastUpdated` than the row's, which is kept). The comparison opens the stored body, so no digest of
/// health data is kept in clear.
///
/// # Errors
/// Database errors, or a stored body that does not open.
pub async fn upsert(
    state: ResourceStore<'_>,
    authorization_id: &str,
    now: i64,
    items: &[Indexed],
    job_id: Option<&str>,
) -> anyhow::Result<SyncChanges> {
    let mut changes = SyncChanges::default();
    if items.is_empty() {
        return Ok(changes);
    }
    let encrypt = state.encrypt;
    let indexed = params_indexed(state);
    let mut tx = state.db.begin_write().await?;
    for r in items {
        let prior = sqlx::query(
            "SELECT body, body_enc, body_key_id FROM resources WHERE authorization_id = $1 AND resource_type = $2 AND id = $3",
        )
        .bind(authorization_id)
        .bind(&r.resource_type)
        .bind(&r.id)
        .fetch_optional(&mut *tx)
        .await?;
        // `Some(None)`: stored, but its body does not open any more (counted as updated).
        let prior: Option<Option<String>> = match prior {
            Some(row) => Some(
                body_text(
                    state.cipher,
                    authorization_id,
                    &r.resource_type,
                    &r.id,
                    row.try_get("body")?,
                    row.try_get("body_enc")?,
                    row.try_get("body_key_id")?,
                )
                .ok(),
            ),
            None => None,
        };
        let (body, body_enc, key_id) = seal_body(state, authorization_id, &r.resource_type, &r.id, &r.raw);
        let written = sqlx::query(
            "INSERT INTO resources (authorization_id, resource_type, id, version_id, last_updated, last_updated_at, \
             patient_ref, date_value, status, body, body_enc, body_key_id, search_tokens, fetched_at, sync_job_id, \
             params_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (authorization_id, resource_type, id) DO UPDATE SET version_id = excluded.version_id, \
             last_updated = excluded.last_updated, last_updated_at = excluded.last_updated_at, \
             patient_ref = excluded.patient_ref, date_value = excluded.date_value, status = excluded.status, \
             body = excluded.body, body_enc = excluded.body_enc, body_key_id = excluded.body_key_id, \
             search_tokens = excluded.search_tokens, fetched_at = excluded.fetched_at, \
             sync_job_id = excluded.sync_job_id, params_version = excluded.params_version \
             WHERE resources.last_updated_at IS NULL OR excluded.last_updated_at IS NULL \
             OR excluded.last_updated_at >= resources.last_updated_at",
        )
        .bind(authorization_id)
        .bind(&r.resource_type)
        .bind(&r.id)
        .bind(r.version_id.as_deref())
        .bind(r.last_updated.as_deref())
        .bind(r.last_updated_at)
        .bind(r.patient_ref.as_deref())
        .bind(r.date_value.as_deref())
        .bind(r.status.as_deref())
        .bind(body)
        .bind(body_enc)
        .bind(key_id)
        // Identifier values (member ids) are identifying: with encryption at rest they are not indexed in clear.
        .bind(if encrypt { "[]".to_string() } else { serde_json::to_string(&r.tokens)? })
        .bind(now)
        .bind(job_id)
        .bind(if indexed { resource_params::PARAMS_VERSION } else { 0 })
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written > 0 {
            resource_params::replace(&mut *tx, authorization_id, &r.resource_type, &r.id, indexed.then_some(r.params.as_slice())).await?;
        }
        if written == 0 {
            // An older version than the row's: the row stays, and still counts as seen by this job.
            mark_seen(&mut *tx, authorization_id, &r.resource_type, &r.id, job_id).await?;
        }
        match (prior, written) {
            (None, _) => changes.added += 1,
            (Some(_), 0) => changes.unchanged += 1,
            (Some(Some(p)), _) if p == r.raw => changes.unchanged += 1,
            (Some(_), _) => changes.updated += 1,
        }
    }
    tx.commit().await?;
    Ok(changes)
}

/// Marks a stored resource as seen by `job_id`; whether it is stored.
async fn mark_seen<'e, E>(ex: E, authorization_id: &str, resource_type: &str, id: &str, job_id: Option<&str>) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query(
        "UPDATE resources SET sync_job_id = COALESCE($4, sync_job_id) \
         WHERE authorization_id = $1 AND resource_type = $2 AND id = $3",
    )
    .bind(authorization_id)
    .bind(resource_type)
    .bind(id)
    .bind(job_id)
    .execute(ex)
    .await?
    .rows_affected()
        > 0)
}

/// Deletes the authorization's resources of `types` that sync job `job_id` did not see (neither received nor
/// found referenced): those the payer no longer returns. Call it only for types the job fetched completely.
/// Returns how many were deleted. On SQLite with `secure_delete` on, as an expunge deletes.
///
/// # Errors
/// Database errors.
pub async fn remove_unseen(db: &Db, authorization_id: &str, types: &[String], job_id: &str) -> anyhow::Result<u64> {
    if types.is_empty() {
        return Ok(0);
    }
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "DELETE FROM resources WHERE authorization_id = $1 AND (sync_job_id IS NULL OR sync_job_id <> $2) \
         AND resource_type IN ({})",
        placeholders.join(", ")
    );
    let mut tx = db.begin_write().await?;
    if db.backend() == Backend::Sqlite {
        // Overwrite deleted content in the file instead of leaving it in free pages.
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *tx).await?;
    }
    let mut q = sqlx::query(&sql).bind(authorization_id).bind(job_id);
    for t in types {
        q = q.bind(t);
    }
    let n = q.execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(n)
}

/// Whether a resource is already stored for this authorization; when it is, it is marked as seen by `job_id`
/// (a reference the sync found again keeps its target).
///
/// # Errors
/// Database errors.
pub async fn exists(state: ResourceStore<'_>, authorization_id: &str, resource_type: &str, id: &str, job_id: Option<&str>) -> anyhow::Result<bool> {
    mark_seen(&state.db.pool, authorization_id, resource_type, id, job_id).await
}

/// The resource types stored for an authorization, in name order.
///
/// # Errors
/// Database errors.
pub async fn stored_types(db: &Db, authorization_id: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT DISTINCT resource_type FROM resources WHERE authorization_id = $1 ORDER BY resource_type")
        .bind(authorization_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter().map(|r| Ok(r.try_get::<String, _>("resource_type")?)).collect()
}

/// Deletes every resource of an authorization through `ex` (the transaction that expunges it); returns how many.
///
/// # Errors
/// Database errors.
pub async fn delete_for_authorization<'e, E>(ex: E, authorization_id: &str) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query("DELETE FROM resources WHERE authorization_id = $1")
        .bind(authorization_id)
        .execute(ex)
        .await?
        .rows_affected())
}

// ---------------------------------------------------------------------------------------------------------
// Reads for the FHIR API
// ---------------------------------------------------------------------------------------------------------

/// The authorizations whose rows a read may see.
#[derive(Debug, Clone)]
pub enum Scope {
    /// These authorizations (a patient token's one, or those linking one patient to an app).
    Authorizations(Vec<String>),
    /// Every live authorization of an app in a mode at `now` (an application token; the live rule is
    /// [`authorizations::live_ids_of_app_sql`]).
    LiveOfApp {
        /// The app.
        app_id: String,
        /// Its key mode.
        mode: Mode,
        /// The time of the request (Unix s).
        now: i64,
    },
}

/// One stored resource as read back.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The authorization it was synced for.
    pub authorization_id: String,
    /// `resourceType`.
    pub resource_type: String,
    /// `id`.
    pub id: String,
    /// `meta.versionId`, when it had one.
    pub version_id: Option<String>,
    /// The JSON text exactly as received.
    pub body: String,
}

/// One page of a search: the number of matches and the rows of this page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Every match, over all pages.
    pub total: usize,
    /// This page's rows, in the read's order.
    pub rows: Vec<Stored>,
}

/// Columns [`stored`] reads.
const COLUMNS: &str = "r.authorization_id, r.resource_type, r.id, r.version_id, r.body, r.body_enc, r.body_key_id";

/// A WHERE clause under construction: conditions AND-ed, text values bound as `$1`, `$2`… in order.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    binds: Vec<String>,
}

impl Filter {
    /// Adds a value; returns its placeholder.
    fn bind(&mut self, value: &str) -> String {
        self.binds.push(value.to_string());
        format!("${}", self.binds.len())
    }

    /// Adds values; returns their placeholders, comma-separated.
    fn bind_all(&mut self, values: &[String]) -> String {
        values.iter().map(|v| self.bind(v)).collect::<Vec<_>>().join(", ")
    }

    fn and(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Restricts `r.authorization_id` to the scope.
    fn scope(&mut self, scope: &Scope) {
        match scope {
            Scope::Authorizations(ids) => {
                let ph = self.bind_all(ids);
                self.and(format!("r.authorization_id IN ({ph})"));
            }
            Scope::LiveOfApp { app_id, mode, now } => {
                let (a, m) = (self.bind(app_id), self.bind(mode.as_str()));
                self.and(format!("r.authorization_id IN ({})", authorizations::live_ids_of_app_sql(&a, &m, &now.to_string())));
            }
        }
    }

    fn sql(&self) -> String {
        self.conditions.join(" AND ")
    }

    async fn fetch_all(&self, db: &Db, sql: &str) -> anyhow::Result<Vec<AnyRow>> {
        let mut q = sqlx::query(sql);
        for b in &self.binds {
            q = q.bind(b);
        }
        Ok(q.fetch_all(&db.pool).await?)
    }

    /// The number of matching rows, and one page of them in `order`, counted and paged by the database.
    ///
    /// On SQLite the page is read as [`GROUPED_ROWS`]-row groups ([`grouped_page_sql`]): each row of sqlx's
    /// SQLite driver is handed from its worker thread to the task with an allocation per column, and the
    /// groups' key-only numbering sorts keys rather than bodies (`$everything`'s order has no index). That
    /// raised `$everything`'s throughput 1.4–1.8× and left searches as they were (BENCHMARKS.md, "Pages as
    /// groups").
    /// PostgreSQL streams rows without that hand-over and was slower grouped, so it reads row by row, as does
    /// a SQLite page with a sealed body (`--encrypt-resources`), to open each.
    async fn page(&self, db: &Db, cipher: &Cipher, order: &str, count: usize, offset: usize) -> anyhow::Result<Page> {
        let counted = self.fetch_all(db, &format!("SELECT COUNT(*) AS n FROM resources r WHERE {}", self.sql())).await?;
        let total = usize::try_from(counted.first().map(|r| r.try_get::<i64, _>("n")).transpose()?.unwrap_or(0)).unwrap_or(0);
        // SQLite and PostgreSQL take LIMIT and OFFSET as signed 64-bit integers.
        let (limit, skip) = (i64::try_from(count)?, i64::try_from(offset)?);
        if total <= offset || count == 0 {
            return Ok(Page { total, rows: Vec::new() });
        }
        if db.backend() == Backend::Sqlite {
            if let Some(rows) = self.grouped(db, order, limit, skip, count.min(total - offset)).await? {
                return Ok(Page { total, rows });
            }
        }
        let sql = format!("SELECT {COLUMNS} FROM resources r WHERE {} {order} LIMIT {limit} OFFSET {skip}", self.sql());
        let rows = self.fetch_all(db, &sql).await?.iter().map(|r| stored(cipher, r)).collect::<anyhow::Result<_>>()?;
        Ok(Page { total, rows })
    }

    /// The page of [`Filter::page`] read with [`grouped_page_sql`] (`capacity`: the rows expected), or `None`
    /// when one of its bodies is sealed.
    async fn grouped(&self, db: &Db, order: &str, limit: i64, skip: i64, capacity: usize) -> anyhow::Result<Option<Vec<Stored>>> {
        let mut rows = Vec::with_capacity(capacity);
        for group in self.fetch_all(db, &grouped_page_sql(&self.sql(), order, limit, skip)).await? {
            let (meta, text): (String, String) = (group.try_get("meta")?, group.try_get("text")?);
            if !unpack_group(&meta, &text, &mut rows)? {
                return Ok(None);
            }
        }
        Ok(Some(rows))
    }
}

/// Rows of a page read as one database row by [`grouped_page_sql`].
const GROUPED_ROWS: usize = 64;

/// One page of `resources r WHERE {condition} {order} LIMIT … OFFSET …` as groups of [`GROUPED_ROWS`] rows, in
/// order, each one database row of two texts (SQLite ≥ 3.44 and PostgreSQL both have `string_agg(… ORDER BY …)`
/// and `octet_length`):
/// - `meta`: per row `authorization_id,resource_type,id,version_id,body` byte lengths, rows separated by `;`
///   (`-1` for a NULL `version_id` or `body`);
/// - `text`: those five values of each row, one after the other without separators.
fn grouped_page_sql(condition: &str, order: &str, limit: i64, skip: i64) -> String {
    let len = |col: &str| format!("CAST(COALESCE(octet_length(p.{col}), -1) AS TEXT)");
    format!(
        "SELECT string_agg({a} || ',' || {t} || ',' || {i} || ',' || {v} || ',' || {b}, ';' ORDER BY k.rn) AS meta, \
         string_agg(p.authorization_id || p.resource_type || p.id || COALESCE(p.version_id, '') || COALESCE(p.body, ''), '' \
           ORDER BY k.rn) AS text \
         FROM (SELECT r.authorization_id AS a, r.resource_type AS t, r.id AS i, ROW_NUMBER() OVER ({order}) AS rn \
           FROM resources r WHERE {condition} {order} LIMIT {limit} OFFSET {skip}) k \
         JOIN resources p ON p.authorization_id = k.a AND p.resource_type = k.t AND p.id = k.i \
         GROUP BY (k.rn - 1) / {GROUPED_ROWS} ORDER BY (k.rn - 1) / {GROUPED_ROWS}",
        a = len("authorization_id"),
        t = len("resource_type"),
        i = len("id"),
        v = len("version_id"),
        b = len("body"),
    )
}

/// Appends the rows of one group of [`grouped_page_sql`] to `out`. Returns false, appending nothing, when a
/// row's body is sealed (NULL `body`).
///
/// # Errors
/// Lengths that do not cut `text` into whole UTF-8 values (never from the query above).
fn unpack_group(meta: &str, text: &str, out: &mut Vec<Stored>) -> anyhow::Result<bool> {
    let bad = || anyhow::anyhow!("grouped page lengths do not match its text");
    let mut rows = Vec::with_capacity(GROUPED_ROWS);
    let mut at = 0usize;
    for row in meta.split(';') {
        let mut value = [None, None, None, None, None];
        for (slot, len) in value.iter_mut().zip(row.split(',')) {
            let len: i64 = len.parse().map_err(|_| bad())?;
            let Ok(len) = usize::try_from(len) else { continue };
            let end = at.checked_add(len).ok_or_else(bad)?;
            *slot = Some(text.get(at..end).ok_or_else(bad)?.to_string());
            at = end;
        }
        let [Some(authorization_id), Some(resource_type), Some(id), version_id, body] = value else { return Err(bad()) };
        let Some(body) = body else { return Ok(false) };
        rows.push(Stored { authorization_id, resource_type, id, version_id, body });
    }
    if at != text.len() {
        return Err(bad());
    }
    out.append(&mut rows);
    Ok(true)
}

impl Page {
    /// One page of rows matched outside the database.
    fn of(matched: Vec<Stored>, offset: usize, count: usize) -> Self {
        Page { total: matched.len(), rows: matched.into_iter().skip(offset).take(count).collect() }
    }
}

/// A row selected with [`COLUMNS`], its body opened when sealed.
fn stored(cipher: &Cipher, row: &AnyRow) -> anyhow::Result<Stored> {
    let authorization_id: String = row.try_get("authorization_id")?;
    let resource_type: String = row.try_get("resource_type")?;
    let id: String = row.try_get("id")?;
    let body = body_text(
        cipher,
        &authorization_id,
        &resource_type,
        &id,
        row.try_get("body")?,
        row.try_get("body_enc")?,
        row.try_get("body_key_id")?,
    )?;
    Ok(Stored { version_id: row.try_get("version_id")?, authorization_id, resource_type, id, body })
}

/// `Type/id` within a scope: the row of the first authorization (by id) that has it.
///
/// # Errors
/// Database errors, or a sealed body that does not open.
pub async fn read(db: &Db, cipher: &Cipher, scope: &Scope, resource_type: &str, id: &str) -> anyhow::Result<Option<Stored>> {
    let mut f = Filter::default();
    let (t, i) = (f.bind(resource_type), f.bind(id));
    f.and(format!("r.resource_type = {t} AND r.id = {i}"));
    f.scope(scope);
    let sql = format!("SELECT {COLUMNS} FROM resources r WHERE {} ORDER BY r.authorization_id LIMIT 1", f.sql());
    f.fetch_all(db, &sql).await?.first().map(|row| stored(cipher, row)).transpose()
}

/// A search of one type (FHIR R4 §3.1.1): every criterion must hold.
#[derive(Debug, Clone, Copy)]
pub struct Search<'a> {
    /// The rows that may be read.
    pub scope: &'a Scope,
    /// The type searched.
    pub resource_type: &'a str,
    /// `_id`: only these ids (an empty list matches nothing); `None`: any id.
    pub ids: Option<&'a [String]>,
    /// The other parameters: on the index rows (`resource_params`) when `indexed`, else on the stored JSON.
    pub criteria: &'a [Criterion],
    /// Whether the resources have index rows ([`params_indexed`]).
    pub indexed: bool,
    /// Page size.
    pub count: usize,
    /// Matches skipped before the page.
    pub offset: usize,
}

/// The matches of a search, ordered by id then authorization: their number and one page of them.
///
/// # Errors
/// Database errors, or a sealed body that does not open.
pub async fn search(db: &Db, cipher: &Cipher, s: &Search<'_>) -> anyhow::Result<Page> {
    let mut f = Filter::default();
    let t = f.bind(s.resource_type);
    f.and(format!("r.resource_type = {t}"));
    f.scope(s.scope);
    match s.ids {
        Some([]) => f.and("1 = 0".into()),
        Some(ids) => {
            let ph = f.bind_all(ids);
            f.and(format!("r.id IN ({ph})"));
        }
        None => {}
    }
    let order = "ORDER BY r.id, r.authorization_id";
    if s.indexed {
        for c in s.criteria {
            let condition = resource_params::criterion_sql(c, &mut |v| f.bind(v));
            f.and(condition);
        }
    }
    if s.criteria.is_empty() || s.indexed {
        return f.page(db, cipher, order, s.count, s.offset).await;
    }
    // The criteria are matched on the JSON: every row of the type in scope is read.
    let sql = format!("SELECT {COLUMNS} FROM resources r WHERE {} {order}", f.sql());
    let keys: BTreeSet<&str> = s.criteria.iter().flat_map(Criterion::top_level_keys).collect();
    let mut matched = Vec::new();
    for row in f.fetch_all(db, &sql).await? {
        let r = stored(cipher, &row)?;
        if meets(s.criteria, &keys, &r.body) {
            matched.push(r);
        }
    }
    Ok(Page::of(matched, s.offset, s.count))
}

/// Whether a resource's JSON meets every criterion (`keys`: the top-level elements they read).
fn meets(criteria: &[Criterion], keys: &BTreeSet<&str>, body: &str) -> bool {
    if !criteria.iter().all(|c| c.may_match_raw(body)) {
        return false;
    }
    search::parse_fields(body, keys).is_some_and(|v| criteria.iter().all(|c| c.matches(&v)))
}

/// Keys [`read_many`] looks up per statement (3 bound values each).
const KEYS_PER_READ: usize = 300;

/// The rows of these `(authorization_id, resource_type, id)` keys that exist, in the keys' order (`_include`),
/// read in one statement per [`KEYS_PER_READ`] keys.
///
/// # Errors
/// Database errors, or a sealed body that does not open.
pub async fn read_many(db: &Db, cipher: &Cipher, keys: &[(String, String, String)]) -> anyhow::Result<Vec<Stored>> {
    let mut found: std::collections::HashMap<(String, String, String), Stored> = std::collections::HashMap::new();
    for chunk in keys.chunks(KEYS_PER_READ) {
        let mut f = Filter::default();
        let alternatives: Vec<String> = chunk
            .iter()
            .map(|(authorization_id, resource_type, id)| {
                let (a, t, i) = (f.bind(authorization_id), f.bind(resource_type), f.bind(id));
                format!("(r.authorization_id = {a} AND r.resource_type = {t} AND r.id = {i})")
            })
            .collect();
        f.and(format!("({})", alternatives.join(" OR ")));
        let sql = format!("SELECT {COLUMNS} FROM resources r WHERE {}", f.sql());
        for row in f.fetch_all(db, &sql).await? {
            let r = stored(cipher, &row)?;
            found.insert((r.authorization_id.clone(), r.resource_type.clone(), r.id.clone()), r);
        }
    }
    Ok(keys.iter().filter_map(|k| found.remove(k)).collect())
}

/// A patient's whole record (`Patient/{id}/$everything`, FHIR R4 §Patient-everything).
#[derive(Debug, Clone, Copy)]
pub struct Everything<'a> {
    /// The patient's authorizations.
    pub scope: &'a Scope,
    /// `_type`: only these types; `None`: every type.
    pub types: Option<&'a [String]>,
    /// `_since` (Unix s): only resources whose `meta.lastUpdated` is at or after it.
    pub since: Option<i64>,
    /// Page size.
    pub count: usize,
    /// Resources skipped before the page.
    pub offset: usize,
}

/// The resources of `$everything`, the Patient first, then by type, id and authorization: their number and
/// one page of them. A resource without `meta.lastUpdated` never matches `_since`.
///
/// # Errors
/// Database errors, or a sealed body that does not open.
pub async fn everything(db: &Db, cipher: &Cipher, e: &Everything<'_>) -> anyhow::Result<Page> {
    let mut f = Filter::default();
    f.scope(e.scope);
    if let Some(types) = e.types {
        let ph = f.bind_all(types);
        f.and(format!("r.resource_type IN ({ph})"));
    }
    let order = "ORDER BY CASE WHEN r.resource_type = 'Patient' THEN 0 ELSE 1 END, r.resource_type, r.id, r.authorization_id";
    let Some(since) = e.since else {
        return f.page(db, cipher, order, e.count, e.offset).await;
    };
    let sql = format!("SELECT {COLUMNS}, r.last_updated_at FROM resources r WHERE {} {order}", f.sql());
    let mut matched = Vec::new();
    for row in f.fetch_all(db, &sql).await? {
        let r = stored(cipher, &row)?;
        let at: Option<i64> = row.try_get("last_updated_at").unwrap_or(None);
        if at.or_else(|| last_updated_of(&r.body)).is_some_and(|a| a >= since) {
            matched.push(r);
        }
    }
    Ok(Page::of(matched, e.offset, e.count))
}

/// `meta.lastUpdated` (Unix s, the start of its precision) read from a resource's JSON, for rows stored
/// without the column.
fn last_updated_of(body: &str) -> Option<i64> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(search::parse_fhir_date(v.pointer("/meta/lastUpdated")?.as_str()?)?.0)
}

/// Rows [`reindex`] reads per batch.
const REINDEX_BATCH: i64 = 500;

/// Writes the search index rows of every resource stored before the current index rules
/// (`resources.params_version` below [`resource_params::PARAMS_VERSION`]), a batch per transaction; each row is
/// claimed by raising its version first, so instances starting together index it once. Returns how many
/// were indexed. Does nothing when resources are encrypted at rest ([`params_indexed`]).
///
/// # Errors
/// Database errors.
pub async fn reindex(state: ResourceStore<'_>) -> anyhow::Result<u64> {
    if !params_indexed(state) {
        return Ok(0);
    }
    let version = resource_params::PARAMS_VERSION;
    let mut done = 0;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM resources r WHERE r.params_version < $1 LIMIT {REINDEX_BATCH}"
        ))
        .bind(version)
        .fetch_all(&state.db.pool)
        .await?;
        if rows.is_empty() {
            return Ok(done);
        }
        let mut tx = state.db.begin_write().await?;
        for row in &rows {
            let (a, t, i): (String, String, String) =
                (row.try_get("authorization_id")?, row.try_get("resource_type")?, row.try_get("id")?);
            let claimed = sqlx::query(
                "UPDATE resources SET params_version = $4 \
                 WHERE authorization_id = $1 AND resource_type = $2 AND id = $3 AND params_version < $4",
            )
            .bind(&a)
            .bind(&t)
            .bind(&i)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed == 0 {
                continue;
            }
            // A body that does not open or parse gets no index rows (it matches no filter).
            let params = stored(state.cipher, row)
                .ok()
                .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
                .map(|v| search::param_values(&t, &v))
                .unwrap_or_default();
            resource_params::replace(&mut *tx, &a, &t, &i, Some(&params)).await?;
            done += 1;
        }
        tx.commit().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_unpack_by_byte_lengths() {
        let mut out = Vec::new();
        // Two rows; the second has no versionId and a multi-byte character in its body.
        let text = "a1Patientp-1v7{\"id\":\"p-1\"}a1Claimc.2{\"x\":\"é\"}";
        assert!(unpack_group("2,7,3,2,12;2,5,3,-1,10", text, &mut out).unwrap());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].authorization_id.as_str(), out[0].resource_type.as_str(), out[0].id.as_str()), ("a1", "Patient", "p-1"));
        assert_eq!(out[0].version_id.as_deref(), Some("v7"));
        assert_eq!(out[0].body, "{\"id\":\"p-1\"}");
        assert_eq!((out[1].resource_type.as_str(), out[1].id.as_str(), out[1].version_id.as_deref()), ("Claim", "c.2", None));
        assert_eq!(out[1].body, "{\"x\":\"é\"}");
    }

    #[test]
    fn a_sealed_row_or_bad_lengths_append_nothing() {
        let mut out = Vec::new();
        assert!(!unpack_group("2,5,1,-1,-1", "a1Claimc", &mut out).unwrap(), "a NULL body is sealed");
        assert!(unpack_group("2,5,1,-1,5", "a1Claimc{}", &mut out).is_err(), "lengths past the text");
        assert!(unpack_group("2,5,1,-1,1", "a1Claimc{}", &mut out).is_err(), "text left over");
        assert!(unpack_group("2,5,1,-1,2", "a1Claimcé", &mut out).is_ok());
        assert!(unpack_group("2,5,1,-1,1", "a1Claimcé", &mut out).is_err(), "a cut inside a character");
        assert!(unpack_group("2,x,1,-1,1", "a1Claimc{", &mut out).is_err());
        assert!(unpack_group("2,5", "a1Claim", &mut out).is_err(), "a row without its id");
        assert_eq!(out.len(), 1);
    }
}
