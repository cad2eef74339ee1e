//! The `console_sign_ins` table: one-time sign-in links to the operator console and the console sessions they
//! become. Only SHA-256 hashes of the link token, the browser's binder and the session token are stored. The only
//! module that writes SQL on it.
//!
//! A row lives through: created (link hash, short expiry) → opened by a browser (its binder hash recorded; any
//! other browser is refused from then on) → used by that browser (the link is spent, a session hash and expiry
//! recorded) → ended (signed out) or expired.

use anyhow::Context as _;
use sqlx::Row as _;

use crate::server::platform::{crypto, db::Db};

/// A sign-in link as the console sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// Row id (named in the audit trail).
    pub id: String,
    /// When the link stops working (Unix s).
    pub link_expires_at: i64,
    /// The hash of the binder of the browser that opened it, once one did.
    pub binder_hash: Option<String>,
    /// When the link was spent.
    pub used_at: Option<i64>,
}

/// Stores a new sign-in link for `token` (its hash only) valid until `expires_at`; returns the row id.
///
/// # Errors
/// Database errors.
pub async fn create(db: &Db, now: i64, token: &str, expires_at: i64) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO console_sign_ins (id, link_hash, link_expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(crypto::hash_token(token))
        .bind(expires_at)
        .bind(now)
        .execute(&db.pool)
        .await
        .context("storing a console sign-in link")?;
    Ok(id)
}

/// The sign-in link of `token`, whatever its state.
///
/// # Errors
/// Database errors.
pub async fn by_link(db: &Db, token: &str) -> anyhow::Result<Option<SignIn>> {
    let row = sqlx::query("SELECT id, link_expires_at, binder_hash, used_at FROM console_sign_ins WHERE link_hash = $1")
        .bind(crypto::hash_token(token))
        .fetch_optional(&db.pool)
        .await
        .context("reading a console sign-in link")?;
    row.map(|r| {
        Ok(SignIn {
            id: r.try_get("id")?,
            link_expires_at: r.try_get("link_expires_at")?,
            binder_hash: r.try_get("binder_hash")?,
            used_at: r.try_get("used_at")?,
        })
    })
    .transpose()
}

/// Binds the unspent, unexpired link `id` to the browser whose binder hashes to `binder_hash`, if no browser
/// opened it yet (one conditional update); returns whether it did.
///
/// # Errors
/// Database errors.
pub async fn bind(db: &Db, now: i64, id: &str, binder_hash: &str) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE console_sign_ins SET binder_hash = $1 \
         WHERE id = $2 AND binder_hash IS NULL AND used_at IS NULL AND link_expires_at > $3",
    )
    .bind(binder_hash)
    .bind(id)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Spends link `id` for the browser whose binder hashes to `binder_hash` and makes it the console session of
/// `session_token` (hash only) until `session_expires_at`, only while the link is unspent, unexpired and bound to
/// that browser (one conditional update); returns whether it did.
///
/// # Errors
/// Database errors.
pub async fn spend(
    db: &Db,
    now: i64,
    id: &str,
    binder_hash: &str,
    session_token: &str,
    session_expires_at: i64,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE console_sign_ins SET used_at = $1, session_hash = $2, session_expires_at = $3 \
         WHERE id = $4 AND binder_hash = $5 AND used_at IS NULL AND link_expires_at > $1",
    )
    .bind(now)
    .bind(crypto::hash_token(session_token))
    .bind(session_expires_at)
    .bind(id)
    .bind(binder_hash)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The id of the live console session of `session_token` (spent link, not signed out, not expired at `now`).
///
/// # Errors
/// Database errors.
pub async fn session(db: &Db, now: i64, session_token: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query(
        "SELECT id FROM console_sign_ins WHERE session_hash = $1 AND ended_at IS NULL AND session_expires_at > $2",
    )
    .bind(crypto::hash_token(session_token))
    .bind(now)
    .fetch_optional(&db.pool)
    .await
    .context("reading a console session")?;
    row.map(|r| r.try_get::<String, _>("id")).transpose().map_err(Into::into)
}

/// Ends console session `id` (signed out).
///
/// # Errors
/// Database errors.
pub async fn end(db: &Db, now: i64, id: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE console_sign_ins SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Deletes rows whose link and session both ended before `before`; returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge_before(db: &Db, before: i64) -> anyhow::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM console_sign_ins WHERE link_expires_at < $1 \
         AND (session_expires_at IS NULL OR session_expires_at < $1 OR ended_at < $1)",
    )
    .bind(before)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}
