//! The sandbox payer's own tables: its signing key (`sandbox_keys`), authorization codes (`sandbox_codes`) and
//! refresh tokens (`sandbox_refresh_tokens`). The only place the sandbox's SQL lives; nothing here reads or
//! joins Link's tables, so the sandbox stays a remote payer that merely shares a database.
//!
//! Invariants:
//! - codes and refresh tokens are stored as [`crypto::hash_token`] hashes, never in the clear;
//! - a code is redeemed with one `DELETE … RETURNING`, so it works once even when several instances race;
//!   a rotated refresh token is spent the same way;
//! - expired rows are swept each time a row of the same table is written (one indexed `DELETE`), and an
//!   expired row is never honoured before the sweep reaches it.

use anyhow::Context as _;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore as _;
use sqlx::{any::AnyRow, Row as _};

use crate::server::platform::{crypto, db::Db};

/// A granted authorization, as carried by codes and refresh tokens.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Payer slug.
    pub payer: String,
    /// Index of the member in [`super::members`].
    pub member: usize,
    /// The granted scope.
    pub scope: String,
    pub client_id: String,
}

/// An authorization code's row (the code itself is only its hash).
#[derive(Debug, Clone)]
pub(crate) struct CodeEntry {
    pub grant: Grant,
    /// The `redirect_uri` of the authorization request, which the token request must repeat.
    pub redirect_uri: String,
    /// PKCE `code_challenge` (S256).
    pub code_challenge: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A refresh token's row (the token itself is only its hash).
#[derive(Debug, Clone)]
pub(crate) struct RefreshEntry {
    pub grant: Grant,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Id of the HMAC key's row.
const HMAC_KEY_ID: &str = "hmac";

/// The sandbox's 32-byte HMAC key: created at random by the first caller on this database, then the same for
/// every later caller (a restarted process, another instance). Concurrent first calls agree: the insert that
/// loses the race does nothing, and both read the winner's key.
///
/// # Errors
/// Database errors, or a stored key that is not 32 bytes of base64url.
pub(crate) async fn hmac_key(db: &Db, now: i64) -> anyhow::Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    sqlx::query("INSERT INTO sandbox_keys (id, key_b64, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING")
        .bind(HMAC_KEY_ID)
        .bind(URL_SAFE_NO_PAD.encode(fresh))
        .bind(now)
        .execute(&db.pool)
        .await
        .context("creating the sandbox's signing key")?;
    let stored: String = sqlx::query_scalar("SELECT key_b64 FROM sandbox_keys WHERE id = $1")
        .bind(HMAC_KEY_ID)
        .fetch_one(&db.pool)
        .await
        .context("reading the sandbox's signing key")?;
    let raw = URL_SAFE_NO_PAD.decode(stored.trim()).context("the sandbox's signing key is not base64url")?;
    raw.try_into().map_err(|_| anyhow::anyhow!("the sandbox's signing key is not 32 bytes"))
}

fn grant(row: &AnyRow) -> anyhow::Result<Grant> {
    let member: i64 = row.try_get("member")?;
    Ok(Grant {
        payer: row.try_get("payer")?,
        member: usize::try_from(member).context("negative member index")?,
        scope: row.try_get("scope")?,
        client_id: row.try_get("client_id")?,
    })
}

/// Stores a new authorization code under `code` (hashed), after deleting the expired ones.
///
/// # Errors
/// Database errors.
pub(crate) async fn insert_code(db: &Db, code: &str, entry: &CodeEntry, now: i64) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM sandbox_codes WHERE expires_at <= $1").bind(now).execute(&db.pool).await?;
    sqlx::query(
        "INSERT INTO sandbox_codes (code_hash, payer, member, scope, client_id, redirect_uri, code_challenge, \
         expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(crypto::hash_token(code))
    .bind(&entry.grant.payer)
    .bind(entry.grant.member as i64)
    .bind(&entry.grant.scope)
    .bind(&entry.grant.client_id)
    .bind(&entry.redirect_uri)
    .bind(&entry.code_challenge)
    .bind(entry.expires_at)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Redeems `code`: deletes its row and returns it unless it had expired. `None` for an unknown, spent or
/// expired code (RFC 6749 §4.1.2: a code is single use, even when the exchange then fails).
///
/// # Errors
/// Database errors.
pub(crate) async fn take_code(db: &Db, code: &str, now: i64) -> anyhow::Result<Option<CodeEntry>> {
    let row = sqlx::query(
        "DELETE FROM sandbox_codes WHERE code_hash = $1 \
         RETURNING payer, member, scope, client_id, redirect_uri, code_challenge, expires_at",
    )
    .bind(crypto::hash_token(code))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let entry = CodeEntry {
        grant: grant(&row)?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        expires_at: row.try_get("expires_at")?,
    };
    Ok((entry.expires_at > now).then_some(entry))
}

/// Stores a new refresh token under `token` (hashed), after deleting the expired ones.
///
/// # Errors
/// Database errors.
pub(crate) async fn insert_refresh_token(db: &Db, token: &str, entry: &RefreshEntry, now: i64) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM sandbox_refresh_tokens WHERE expires_at <= $1").bind(now).execute(&db.pool).await?;
    sqlx::query(
        "INSERT INTO sandbox_refresh_tokens (token_hash, payer, member, scope, client_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crypto::hash_token(token))
    .bind(&entry.grant.payer)
    .bind(entry.grant.member as i64)
    .bind(&entry.grant.scope)
    .bind(&entry.grant.client_id)
    .bind(entry.expires_at)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

fn refresh_entry(row: &AnyRow) -> anyhow::Result<RefreshEntry> {
    Ok(RefreshEntry { grant: grant(row)?, expires_at: row.try_get("expires_at")? })
}

/// Spends `token` (a payer that rotates refresh tokens): deletes its row and returns it unless it had expired.
///
/// # Errors
/// Database errors.
pub(crate) async fn take_refresh_token(db: &Db, token: &str, now: i64) -> anyhow::Result<Option<RefreshEntry>> {
    let row = sqlx::query(
        "DELETE FROM sandbox_refresh_tokens WHERE token_hash = $1 \
         RETURNING payer, member, scope, client_id, expires_at",
    )
    .bind(crypto::hash_token(token))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let entry = refresh_entry(&row)?;
    Ok((entry.expires_at > now).then_some(entry))
}

/// Looks `token` up without spending it (a payer that does not rotate refresh tokens); `None` when unknown or
/// expired.
///
/// # Errors
/// Database errors.
pub(crate) async fn find_refresh_token(db: &Db, token: &str, now: i64) -> anyhow::Result<Option<RefreshEntry>> {
    let row = sqlx::query(
        "SELECT payer, member, scope, client_id, expires_at FROM sandbox_refresh_tokens \
         WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(crypto::hash_token(token))
    .bind(now)
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(refresh_entry).transpose()
}
