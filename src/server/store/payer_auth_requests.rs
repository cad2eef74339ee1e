//! The `payer_auth_requests` table: one row per hand-off to a payer's authorize endpoint (SMART App Launch /
//! RFC 6749 §4.1.1), holding the `state` only as a SHA-256 hash and the PKCE `code_verifier` (RFC 7636) sealed,
//! so the callback may land on any instance. Single use: [`consume`] is one conditional update. The only module
//! that writes SQL on this table.

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{any::AnyRow, Row as _};

use crate::server::platform::{
    crypto::{self, Cipher},
    db::Db,
};

/// How long a payer authorization request (`state`) stays valid, in seconds.
pub const AUTH_REQUEST_TTL_SECS: i64 = 600;

/// A request to store.
pub struct NewAuthRequest<'a> {
    /// The Link session that handed off.
    pub link_session_id: &'a str,
    /// The endpoint (payer).
    pub endpoint_id: &'a str,
    /// The `state` sent to the payer (stored as a hash).
    pub state: &'a str,
    /// The PKCE `code_verifier` (stored sealed).
    pub code_verifier: &'a SecretString,
    /// The exact `redirect_uri` sent.
    pub redirect_uri: &'a str,
    /// The `scope` asked for (space-separated).
    pub scope: &'a str,
    /// The payer's token endpoint, found at hand-off.
    pub token_url: &'a str,
}

/// A consumed request: what the callback needs to exchange the code.
pub struct AuthRequest {
    /// Row id.
    pub id: String,
    /// The Link session.
    pub link_session_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The PKCE `code_verifier`, opened.
    pub code_verifier: SecretString,
    /// The `redirect_uri` sent with the authorization request (sent again with the code, RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// The payer's token endpoint.
    pub token_url: String,
}

impl std::fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRequest").field("id", &self.id).field("endpoint_id", &self.endpoint_id).finish_non_exhaustive()
    }
}

fn verifier_aad(request_id: &str) -> String {
    format!("payer_auth_request:{request_id}:code_verifier")
}

/// Stores a request, valid [`AUTH_REQUEST_TTL_SECS`] from `now`; returns its id.
///
/// # Errors
/// Database errors.
pub async fn insert(db: &Db, cipher: &Cipher, now: i64, r: NewAuthRequest<'_>) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let (verifier_enc, key_id) = cipher.seal_str(r.code_verifier.expose_secret(), &verifier_aad(&id));
    sqlx::query(
        "INSERT INTO payer_auth_requests (id, link_session_id, endpoint_id, state_hash, code_verifier_enc, key_id, \
         redirect_uri, scope, token_url, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(r.link_session_id)
    .bind(r.endpoint_id)
    .bind(crypto::hash_token(r.state))
    .bind(verifier_enc)
    .bind(key_id)
    .bind(r.redirect_uri)
    .bind(r.scope)
    .bind(r.token_url)
    .bind(now + AUTH_REQUEST_TTL_SECS)
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(id)
}

fn opened(cipher: &Cipher, row: &AnyRow) -> anyhow::Result<AuthRequest> {
    let id: String = row.try_get("id")?;
    let enc: Vec<u8> = row.try_get("code_verifier_enc")?;
    let key_id: String = row.try_get("key_id")?;
    let code_verifier = cipher.open_str(&enc, &key_id, &verifier_aad(&id))?;
    Ok(AuthRequest {
        link_session_id: row.try_get("link_session_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        token_url: row.try_get("token_url")?,
        code_verifier,
        id,
    })
}

/// Consumes the unexpired, unused request of `state` (one conditional update, so of two callbacks with the
/// same `state` exactly one gets it). `None` when it is unknown, used or expired.
///
/// # Errors
/// Database errors, or a sealed verifier that does not open.
pub async fn consume(db: &Db, cipher: &Cipher, now: i64, state: &str) -> anyhow::Result<Option<AuthRequest>> {
    let row = sqlx::query(
        "UPDATE payer_auth_requests SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         RETURNING id, link_session_id, endpoint_id, code_verifier_enc, key_id, redirect_uri, token_url",
    )
    .bind(now)
    .bind(crypto::hash_token(state))
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(|r| opened(cipher, r)).transpose()
}

/// Marks the request of `state` used without handing it out (an `error` callback ends it either way).
///
/// # Errors
/// Database errors.
pub async fn spend(db: &Db, now: i64, state: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE payer_auth_requests SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL")
        .bind(now)
        .bind(crypto::hash_token(state))
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// The Link session a `state` belongs to, whatever the request's status (to report a failure to it).
///
/// # Errors
/// Database errors.
pub async fn session_of_state(db: &Db, state: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT link_session_id FROM payer_auth_requests WHERE state_hash = $1")
        .bind(crypto::hash_token(state))
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get("link_session_id")).transpose()?)
}
