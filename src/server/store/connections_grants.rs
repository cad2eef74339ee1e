//! The `connections_grants` table: short-lived grants that open the connections page for one user of one app,
//! stored only as the SHA-256 hash of their token. The only module that writes SQL on it.

use anyhow::Context as _;
use sqlx::Row as _;

use crate::{
    domain::Mode,
    server::platform::{crypto, db::Db},
};

/// Who a connections-page grant lets the bearer act as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionsGrant {
    /// The app.
    pub app_id: String,
    /// Test or live (only authorizations of this mode are listed).
    pub mode: Mode,
    /// The integrator's user id.
    pub external_id: String,
    /// When the grant ends (Unix s).
    pub expires_at: i64,
}

/// Stores a grant for `token` (its hash only).
///
/// # Errors
/// Database errors.
pub async fn insert(db: &Db, token: &str, grant: &ConnectionsGrant, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO connections_grants (token_hash, app_id, mode, external_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(crypto::hash_token(token))
    .bind(&grant.app_id)
    .bind(grant.mode.as_str())
    .bind(&grant.external_id)
    .bind(grant.expires_at)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The grant behind `token`, if it exists and has not expired at `now`.
///
/// # Errors
/// Database errors.
pub async fn find(db: &Db, token: &str, now: i64) -> anyhow::Result<Option<ConnectionsGrant>> {
    let hash = crypto::hash_token(token);
    let Some(row) = sqlx::query(
        "SELECT token_hash, app_id, mode, external_id, expires_at FROM connections_grants WHERE token_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let stored: String = row.try_get("token_hash")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    if !crypto::ct_eq(stored.as_bytes(), hash.as_bytes()) || expires_at <= now {
        return Ok(None);
    }
    let mode: String = row.try_get("mode")?;
    Ok(Some(ConnectionsGrant {
        app_id: row.try_get("app_id")?,
        mode: Mode::parse(&mode).context("connections_grants.mode")?,
        external_id: row.try_get("external_id")?,
        expires_at,
    }))
}

/// Deletes grants that expired before `before`.
///
/// # Errors
/// Database errors.
pub async fn purge_expired(db: &Db, before: i64) -> anyhow::Result<u64> {
    Ok(sqlx::query("DELETE FROM connections_grants WHERE expires_at < $1").bind(before).execute(&db.pool).await?.rows_affected())
}
