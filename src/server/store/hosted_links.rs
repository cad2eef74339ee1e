//! The `hosted_links` table: re-connect links an integrator sends to a patient (email, SMS), each stored with the
//! SHA-256 hash of its URL's token only. A link is claimed once (its first open starts a Link session, one
//! conditional update) and completed once (the payer authorized that session). The only module that writes SQL
//! on it.

use anyhow::Context as _;
use sqlx::Row as _;

use crate::{
    domain::{Mode, Usage},
    server::platform::{crypto, db::Db},
};

/// A hosted link as stored (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedLink {
    /// `hl_…`: the public id (API answers, webhooks).
    pub id: String,
    /// The app that created it.
    pub app_id: String,
    /// Test or live: the mode of the key that created it.
    pub mode: Mode,
    /// The integrator's user id.
    pub external_id: String,
    /// `ONE_TIME` or `MULTIPLE`.
    pub usage: Usage,
    /// The plan the integrator fixed, or `None` for the plan search.
    pub endpoint_id: Option<String>,
    /// Where the flow ends: the app's registered `redirect_uri` at creation, or `None` (a "done" page).
    pub redirect_uri: Option<String>,
    /// No first open from this moment (Unix s).
    pub expires_at: i64,
    /// Creation time (Unix s).
    pub created_at: i64,
    /// First open (Unix s), once claimed.
    pub claimed_at: Option<i64>,
    /// The Link session its first open started.
    pub link_session_id: Option<String>,
    /// When the payer authorized its session (Unix s): `link.completed` was queued then.
    pub completed_at: Option<i64>,
    /// Repair mode: the authorization its session renews (the link was created with a repair token).
    pub repairs: Option<String>,
}

/// A link to store.
#[derive(Debug)]
pub struct NewHostedLink<'a> {
    /// The app.
    pub app_id: &'a str,
    /// The key's mode.
    pub mode: Mode,
    /// The integrator's user id (already checked).
    pub external_id: &'a str,
    /// The usage asked for.
    pub usage: Usage,
    /// A fixed plan (already checked to exist in `mode`).
    pub endpoint_id: Option<&'a str>,
    /// The registered `redirect_uri` the flow ends at, if the app has one.
    pub redirect_uri: Option<&'a str>,
    /// When the link stops opening (Unix s).
    pub expires_at: i64,
    /// Repair mode: the authorization the link's session renews.
    pub repairs: Option<&'a str>,
}

const COLUMNS: &str = "id, app_id, mode, external_id, usage, endpoint_id, redirect_uri, expires_at, created_at, \
                       claimed_at, link_session_id, completed_at, repairs_authorization_id";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<HostedLink> {
    let mode: String = row.try_get("mode")?;
    let usage: String = row.try_get("usage")?;
    Ok(HostedLink {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        mode: Mode::parse(&mode).context("hosted_links.mode")?,
        external_id: row.try_get("external_id")?,
        usage: Usage::parse(&usage).context("hosted_links.usage")?,
        endpoint_id: row.try_get("endpoint_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
        claimed_at: row.try_get("claimed_at")?,
        link_session_id: row.try_get("link_session_id")?,
        completed_at: row.try_get("completed_at")?,
        repairs: row.try_get("repairs_authorization_id")?,
    })
}

/// Stores a link for `token` (its hash only) and returns its id.
///
/// # Errors
/// Database errors.
pub async fn insert(db: &Db, now: i64, token: &str, new: NewHostedLink<'_>) -> anyhow::Result<String> {
    let id = format!("hl_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO hosted_links (id, token_hash, app_id, mode, external_id, usage, endpoint_id, redirect_uri, \
         expires_at, created_at, repairs_authorization_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(crypto::hash_token(token))
    .bind(new.app_id)
    .bind(new.mode.as_str())
    .bind(new.external_id)
    .bind(new.usage.as_str())
    .bind(new.endpoint_id)
    .bind(new.redirect_uri)
    .bind(new.expires_at)
    .bind(now)
    .bind(new.repairs)
    .execute(&db.pool)
    .await?;
    Ok(id)
}

/// The link whose URL carries `token` (looked up by its hash), expired or not.
///
/// # Errors
/// Database errors.
pub async fn by_token(db: &Db, token: &str) -> anyhow::Result<Option<HostedLink>> {
    let hash = crypto::hash_token(token);
    let row = sqlx::query(&format!("SELECT {COLUMNS}, token_hash FROM hosted_links WHERE token_hash = $1"))
        .bind(&hash)
        .fetch_optional(&db.pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let stored: String = row.try_get("token_hash")?;
    if !crypto::ct_eq(stored.as_bytes(), hash.as_bytes()) {
        return Ok(None);
    }
    from_row(&row).map(Some)
}

/// The link whose first open started session `sid`, if any.
///
/// # Errors
/// Database errors.
pub async fn by_session<'e, E>(ex: E, sid: &str) -> anyhow::Result<Option<HostedLink>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM hosted_links WHERE link_session_id = $1"))
        .bind(sid)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Claims link `id` for session `sid` at `now`: one conditional update, so of two first opens one wins. Returns
/// whether this one did (false: already claimed, or expired at `now`).
///
/// # Errors
/// Database errors.
pub async fn claim<'e, E>(ex: E, now: i64, id: &str, sid: &str) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE hosted_links SET link_session_id = $1, claimed_at = $2 \
         WHERE id = $3 AND link_session_id IS NULL AND expires_at > $2",
    )
    .bind(sid)
    .bind(now)
    .bind(id)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks link `id` completed at `now` (once). Returns whether this call did.
///
/// # Errors
/// Database errors.
pub async fn complete<'e, E>(ex: E, now: i64, id: &str) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query("UPDATE hosted_links SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes links whose first-open window ended before `before`. Returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge_expired(db: &Db, before: i64) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM hosted_links WHERE expires_at < $1").bind(before).execute(&db.pool).await?.rows_affected())
}
