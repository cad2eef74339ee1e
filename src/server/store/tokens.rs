//! The `tokens` table: tokens we issue (public_token, access_token, refresh_token, application tokens,
//! authorization codes): random, hashed, single use where the protocol says so. The only module that writes SQL
//! on this table, and the home of their lifetimes.
//!
//! Every token is `crypto::random_token(prefix)` (256 random bits behind a typed prefix) and only its
//! SHA-256 hash ([`crypto::hash_token`]) is written to the `tokens` table, so a database leak reveals no
//! usable bearer credential. Lookups go through the unique index on `token_hash`: the hash of the presented
//! token is compared by the database index, and the stored hash is then re-checked with [`crypto::ct_eq`].
//! Single-use tokens (`public_token`, authorization codes, rotated refresh tokens) are consumed with one
//! conditional `UPDATE … RETURNING`, atomic on both SQLite and PostgreSQL, so two concurrent redemptions
//! can never both succeed.
//!
//! A rotated refresh token presented again within [`REFRESH_REUSE_GRACE_SECS`] of its use (a network retry: the
//! client never got the answer) gets that same answer again, kept sealed on the spent row ([`keep_reissue`],
//! [`reissue`]) and cleared by the sweep after the window ([`clear_reissues`]); any other reuse is a replay.

use serde_json::Value;
use sqlx::{any::AnyRow, Row as _};

use secrecy::SecretString;

use crate::server::{
    platform::{
        crypto::{self, Cipher},
        db::Db,
    },
    store::authorizations::{self, Authorization},
};

/// Lifetime of a `public_token`, seconds (single use, exchanged by the integrator's backend).
pub const PUBLIC_TOKEN_TTL_SECS: i64 = 1_800;
/// Lifetime of a patient `access_token`, seconds (never longer than the data it reads).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 86_400;
/// Lifetime of an application access token from `client_credentials`, seconds.
pub const APP_TOKEN_TTL_SECS: i64 = 1_800;
/// Lifetime of an authorization code of the redirect flow, seconds (RFC 6749 §4.1.2 recommends ≤ 10 min).
pub const CODE_TTL_SECS: i64 = 600;
/// How long after its use a rotated refresh token presented again gets the same new pair (a network retry),
/// seconds; after it, or once the new refresh token was used, a reuse is a replay (RFC 9700 §4.14.2).
pub const REFRESH_REUSE_GRACE_SECS: i64 = 30;
/// Lifetime of a repair token, seconds (single use, redeemed when the repair session starts).
pub const REPAIR_TOKEN_TTL_SECS: i64 = 1_800;

/// What a token is for; each kind has its own prefix so a token of one kind is never accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Link `public_token` (`public-token-…`), 30 minutes, single use, exchanged for an access token.
    Public,
    /// Patient access token (`at_…`), Bearer for /fhir and /link/introspect (RFC 6750).
    Access,
    /// Refresh token (`rt_…`), rotated on every use (RFC 6749 §6).
    Refresh,
    /// Application access token (`app_…`) from the `client_credentials` grant: reads any patient of its app.
    App,
    /// Authorization code (`ac_…`) of the redirect flow (RFC 6749 §4.1), single use, bound to PKCE.
    Code,
    /// Repair token (`rpt_…`), [`REPAIR_TOKEN_TTL_SECS`], single use: starts one Link session that renews the
    /// payer grant of its authorization (`FlexpaLink.create({repairToken})`).
    Repair,
}

impl TokenKind {
    /// Every kind.
    pub const ALL: [TokenKind; 6] =
        [TokenKind::Public, TokenKind::Access, TokenKind::Refresh, TokenKind::App, TokenKind::Code, TokenKind::Repair];

    /// The value stored in `tokens.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Public => "public",
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::App => "app",
            TokenKind::Code => "code",
            TokenKind::Repair => "repair",
        }
    }

    /// Parses a `tokens.kind` value.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The visible prefix of tokens of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Public => "public-token-",
            TokenKind::Access => "at_",
            TokenKind::Refresh => "rt_",
            TokenKind::App => "app_",
            TokenKind::Code => "ac_",
            TokenKind::Repair => "rpt_",
        }
    }

    /// The kind a presented token claims by its prefix (`None` for anything else).
    pub fn of_token(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| token.starts_with(k.prefix()))
    }
}

/// A stored token (never the token itself: only its metadata).
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Row id (UUID); also the `jti` reported by /link/introspect.
    pub id: String,
    /// Kind of token.
    pub kind: TokenKind,
    /// The app it was issued to.
    pub app_id: String,
    /// The authorization it grants access to (`None` for application tokens).
    pub authorization_id: Option<String>,
    /// Kind-specific non-secret detail (e.g. PKCE challenge and redirect_uri for codes, the refresh
    /// token's family).
    pub detail: Value,
    /// Unix seconds after which it is refused (`None`: does not expire).
    pub expires_at: Option<i64>,
    /// Unix seconds when a single-use token was consumed.
    pub used_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds when it was issued.
    pub created_at: i64,
}

/// Why a single-use token could not be consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// It was valid once but has already been used (a replay).
    #[error("token already used")]
    AlreadyUsed,
    /// It is past its expiry.
    #[error("token expired")]
    Expired,
    /// It was revoked (e.g. the authorization was revoked).
    #[error("token revoked")]
    Revoked,
    /// No such token of this kind.
    #[error("unknown token")]
    Unknown,
}

const COLUMNS: &str = "id, kind, token_hash, app_id, authorization_id, detail, expires_at, used_at, revoked_at, created_at";

fn from_row(row: &AnyRow) -> anyhow::Result<(TokenRow, String)> {
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok((
        TokenRow {
            id: row.try_get("id")?,
            kind: TokenKind::parse(&kind).ok_or_else(|| anyhow::anyhow!("unknown token kind in database"))?,
            app_id: row.try_get("app_id")?,
            authorization_id: row.try_get("authorization_id")?,
            detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
            revoked_at: row.try_get("revoked_at")?,
            created_at: row.try_get("created_at")?,
        },
        row.try_get("token_hash")?,
    ))
}

/// Issues a new token of `kind` for `app_id` (and `authorization_id`), valid for `ttl_secs` seconds from
/// `now` (`None`: no expiry). Returns the token itself, which is shown once and never stored.
///
/// # Errors
/// Database errors.
pub async fn issue<'e, E>(
    ex: E,
    now: i64,
    kind: TokenKind,
    app_id: &str,
    authorization_id: Option<&str>,
    ttl_secs: Option<i64>,
    detail: Value,
) -> anyhow::Result<String>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let token = crypto::random_token(kind.prefix());
    sqlx::query(
        "INSERT INTO tokens (id, kind, token_hash, app_id, authorization_id, detail, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(kind.as_str())
    .bind(crypto::hash_token(&token))
    .bind(app_id)
    .bind(authorization_id)
    .bind(detail.to_string())
    .bind(ttl_secs.map(|t| now + t))
    .bind(now)
    .execute(ex)
    .await?;
    Ok(token)
}

async fn lookup(db: &Db, kind: TokenKind, token: &str) -> anyhow::Result<Option<TokenRow>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM tokens WHERE token_hash = $1 AND kind = $2"));
    Ok(by_hash(db, SQL.as_str(), kind, token).await?.map(|(t, _)| t))
}

/// The row that `sql` reads for a presented token of `kind` (its hash bound at `$1`, the kind at `$2`), with the
/// token's own columns parsed, when the token has the kind's prefix and the stored hash matches (compared in
/// constant time).
async fn by_hash(db: &Db, sql: &str, kind: TokenKind, token: &str) -> anyhow::Result<Option<(TokenRow, AnyRow)>> {
    if !token.starts_with(kind.prefix()) {
        return Ok(None);
    }
    let hash = crypto::hash_token(token);
    let Some(row) = sqlx::query(sql).bind(&hash).bind(kind.as_str()).fetch_optional(&db.pool).await? else {
        return Ok(None);
    };
    let (t, stored) = from_row(&row)?;
    Ok(crypto::ct_eq(stored.as_bytes(), hash.as_bytes()).then_some((t, row)))
}

/// Whether the integrator ever got tokens for authorization `authorization_id` (a `public_token` exchange or a
/// redirect-flow code issued an access or refresh token for it, whatever became of them since).
///
/// # Errors
/// Database errors.
pub async fn exchanged_for<'e, E>(ex: E, authorization_id: &str) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("SELECT id FROM tokens WHERE authorization_id = $1 AND kind IN ($2, $3) LIMIT 1")
        .bind(authorization_id)
        .bind(TokenKind::Access.as_str())
        .bind(TokenKind::Refresh.as_str())
        .fetch_optional(ex)
        .await?;
    Ok(row.is_some())
}

/// The row of a presented token of `kind` when it is known, not revoked and not expired at `now`.
/// (A used single-use token is still "valid" here; use [`consume`] to redeem one.)
///
/// # Errors
/// Database errors.
pub async fn verify(db: &Db, now: i64, kind: TokenKind, token: &str) -> anyhow::Result<Option<TokenRow>> {
    Ok(lookup(db, kind, token).await?.filter(|t| live(t, now)))
}

/// A patient access token's row, when it is known, not revoked and not expired at `now`, with its authorization
/// (`None` when that row is gone): one statement on the unique index of `token_hash` joined to the authorization's
/// primary key, so the check that opens every FHIR API request is one indexed lookup (issue #16).
///
/// # Errors
/// Database errors.
pub async fn verify_access(db: &Db, now: i64, token: &str) -> anyhow::Result<Option<(TokenRow, Option<Authorization>)>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let own = COLUMNS.split(',').map(|c| format!("t.{}", c.trim())).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT {own}, {} FROM tokens t LEFT JOIN authorizations a ON a.id = t.authorization_id \
             WHERE t.token_hash = $1 AND t.kind = $2",
            authorizations::columns_as("a", "a_")
        )
    });
    let Some((t, row)) = by_hash(db, SQL.as_str(), TokenKind::Access, token).await? else { return Ok(None) };
    if !live(&t, now) {
        return Ok(None);
    }
    Ok(Some((t, authorizations::from_prefixed_row(&row, "a_")?)))
}

/// Whether a token's row is neither revoked nor expired at `now`.
fn live(t: &TokenRow, now: i64) -> bool {
    t.revoked_at.is_none() && t.expires_at.is_none_or(|e| e > now)
}

/// Redeems a single-use token: marks it used and returns its row, in one conditional
/// `UPDATE … WHERE used_at IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now)
/// RETURNING`, so of two concurrent redemptions exactly one wins. When nothing was updated, the row is
/// read to say why ([`ConsumeError`]).
///
/// # Errors
/// Database errors (the outer `Result`).
pub async fn consume(
    db: &Db,
    now: i64,
    kind: TokenKind,
    token: &str,
) -> anyhow::Result<Result<TokenRow, ConsumeError>> {
    if !token.starts_with(kind.prefix()) {
        return Ok(Err(ConsumeError::Unknown));
    }
    let hash = crypto::hash_token(token);
    let row = sqlx::query(&format!(
        "UPDATE tokens SET used_at = $1 WHERE token_hash = $2 AND kind = $3 AND used_at IS NULL \
         AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) RETURNING {COLUMNS}"
    ))
    .bind(now)
    .bind(&hash)
    .bind(kind.as_str())
    .fetch_optional(&db.pool)
    .await?;
    if let Some(row) = row {
        let (t, stored) = from_row(&row)?;
        if crypto::ct_eq(stored.as_bytes(), hash.as_bytes()) {
            return Ok(Ok(t));
        }
        return Ok(Err(ConsumeError::Unknown));
    }
    Ok(Err(match lookup(db, kind, token).await? {
        None => ConsumeError::Unknown,
        Some(t) if t.revoked_at.is_some() => ConsumeError::Revoked,
        Some(t) if t.used_at.is_some() => ConsumeError::AlreadyUsed,
        Some(_) => ConsumeError::Expired,
    }))
}

fn reissue_aad(id: &str) -> String {
    format!("tokens.reissue:{id}")
}

/// Keeps `answer` (the token response a single-use token's redemption produced) sealed on the spent row `id`,
/// for [`reissue`] within [`REFRESH_REUSE_GRACE_SECS`].
///
/// # Errors
/// Database errors.
pub async fn keep_reissue(db: &Db, cipher: &Cipher, id: &str, answer: &str) -> anyhow::Result<()> {
    let (sealed, key_id) = cipher.seal_str(answer, &reissue_aad(id));
    sqlx::query("UPDATE tokens SET reissue_enc = $1, reissue_key_id = $2 WHERE id = $3 AND used_at IS NOT NULL")
        .bind(sealed)
        .bind(key_id)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// What a spent token presented again may get.
#[derive(Debug)]
pub enum Reissue {
    /// Used within the grace window and its answer is kept: send it again.
    Answer(SecretString),
    /// Used within the grace window but the answer is not written yet (the first request is still running).
    NotYet,
    /// Outside the window, revoked, or unknown: a replay.
    No,
}

/// The answer kept for a spent, unrevoked token of `kind` used at most [`REFRESH_REUSE_GRACE_SECS`] before `now`.
///
/// # Errors
/// Database errors, or a kept answer that does not open (tampered, key gone).
pub async fn reissue(db: &Db, cipher: &Cipher, now: i64, kind: TokenKind, token: &str) -> anyhow::Result<Reissue> {
    let Some(t) = lookup(db, kind, token).await? else { return Ok(Reissue::No) };
    match t.used_at {
        Some(used) if t.revoked_at.is_none() && used >= now - REFRESH_REUSE_GRACE_SECS => {}
        _ => return Ok(Reissue::No),
    }
    let row = sqlx::query("SELECT reissue_enc, reissue_key_id FROM tokens WHERE id = $1")
        .bind(&t.id)
        .fetch_one(&db.pool)
        .await?;
    let sealed: Option<Vec<u8>> = row.try_get("reissue_enc")?;
    let key_id: Option<String> = row.try_get("reissue_key_id")?;
    match (sealed, key_id) {
        (Some(s), Some(k)) => Ok(Reissue::Answer(cipher.open_str(&s, &k, &reissue_aad(&t.id))?)),
        _ => Ok(Reissue::NotYet),
    }
}

/// Clears the kept answers of tokens used before `before` (the sweep passes now − the grace window). Returns
/// how many were cleared.
///
/// # Errors
/// Database errors.
pub async fn clear_reissues(db: &Db, before: i64) -> anyhow::Result<u64> {
    Ok(sqlx::query(
        "UPDATE tokens SET reissue_enc = NULL, reissue_key_id = NULL WHERE reissue_enc IS NOT NULL AND used_at < $1",
    )
    .bind(before)
    .execute(&db.pool)
    .await?
    .rows_affected())
}

/// Whether the presented token of `kind` is known, unused, unrevoked and unexpired at `now`.
///
/// # Errors
/// Database errors.
pub async fn is_unspent(db: &Db, now: i64, kind: TokenKind, token: &str) -> anyhow::Result<bool> {
    Ok(verify(db, now, kind, token).await?.is_some_and(|t| t.used_at.is_none()))
}

/// Revokes one token by row id (e.g. a superseded access token). Returns whether a row changed.
///
/// # Errors
/// Database errors.
pub async fn revoke_id(db: &Db, now: i64, id: &str) -> anyhow::Result<bool> {
    let n = sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n > 0)
}

/// Revokes every live token tied to an authorization (access, refresh, unexchanged public tokens, codes),
/// through `ex` (the pool, or the transaction that ends the authorization). Returns how many were revoked.
///
/// # Errors
/// Database errors.
pub async fn revoke_for_authorization<'e, E>(ex: E, now: i64, authorization_id: &str) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    Ok(sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE authorization_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(authorization_id)
        .execute(ex)
        .await?
        .rows_affected())
}

/// The authorization a presented token of `kind` was issued for, whatever its status (used, revoked, expired):
/// to revoke what a replayed single-use token granted (RFC 6749 §4.1.2, RFC 9700 §4.14.2).
///
/// # Errors
/// Database errors.
pub async fn authorization_of(db: &Db, kind: TokenKind, token: &str) -> anyhow::Result<Option<String>> {
    Ok(lookup(db, kind, token).await?.and_then(|t| t.authorization_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_distinct_and_roundtrip() {
        for k in TokenKind::ALL {
            assert_eq!(TokenKind::parse(k.as_str()), Some(k));
            let t = crypto::random_token(k.prefix());
            assert_eq!(TokenKind::of_token(&t), Some(k));
        }
    }
}
