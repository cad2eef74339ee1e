//! The `payer_auth_requests` table: one row per hand-off to a payer's authorize endpoint (SMART App Launch /
//! RFC 6749 §4.1.1), holding the `state` only as a SHA-256 hash and the PKCE `code_verifier` (RFC 7636) sealed,
//! so the callback may land on any instance. Single use: [`consume`] is one conditional update, which also
//! requires the session to be live and waiting at the payer step (so a session that ended or expired voids its
//! requests at once). Each request also keeps the hash of the hand-off value set in the payer window's cookie
//! (the callback must present it) and what the callback's `iss` must be (RFC 9207). The only module that writes
//! SQL on this table.

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{any::AnyRow, Row as _};

use crate::{
    domain::LinkStep,
    server::platform::{
        crypto::{self, Cipher},
        db::Db,
    },
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
    /// SHA-256 (hex) of the hand-off value the payer window holds in its cookie.
    pub binder_hash: &'a str,
    /// The payer's issuer identifier from its metadata, when it gave one (RFC 9207 `iss`).
    pub issuer: Option<&'a str>,
    /// Origin of the authorize URL (`iss` must have it when the issuer is unknown).
    pub authorize_origin: &'a str,
    /// The payer's metadata says it always sends `iss` (`authorization_response_iss_parameter_supported`).
    pub iss_required: bool,
}

/// What the callback checks before it consumes a request: whose it is, the binding and the expected `iss`.
#[derive(Clone)]
pub struct RequestCheck {
    /// The Link session.
    pub link_session_id: String,
    /// SHA-256 (hex) of the hand-off value (`None` for requests stored before binding existed).
    pub binder_hash: Option<String>,
    /// Expected `iss`, exactly.
    pub issuer: Option<String>,
    /// Origin an `iss` must have when `issuer` is unknown.
    pub authorize_origin: Option<String>,
    /// A callback without `iss` is refused.
    pub iss_required: bool,
    /// Unused and unexpired at the time of the check.
    pub live: bool,
}

impl std::fmt::Debug for RequestCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestCheck").field("live", &self.live).finish_non_exhaustive()
    }
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
    /// The `scope` asked for (space-separated).
    pub scope: String,
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
         redirect_uri, scope, token_url, expires_at, created_at, binder_hash, issuer, authorize_origin, iss_required) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .bind(r.binder_hash)
    .bind(r.issuer)
    .bind(r.authorize_origin)
    .bind(i64::from(r.iss_required))
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
        scope: row.try_get("scope")?,
        code_verifier,
        id,
    })
}

/// Consumes the unexpired, unused request of `state` whose session is live and still waiting at the payer step
/// (one conditional update, so of two callbacks with the same `state` exactly one gets it, and a session that
/// was cancelled, ended or expired in between gets none). `None` when it is unknown, used or expired.
///
/// # Errors
/// Database errors, or a sealed verifier that does not open.
pub async fn consume(db: &Db, cipher: &Cipher, now: i64, state: &str) -> anyhow::Result<Option<AuthRequest>> {
    let row = sqlx::query(
        "UPDATE payer_auth_requests SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL AND expires_at > $1 \
         AND link_session_id IN (SELECT id FROM link_sessions WHERE expires_at > $1 AND step = $3) \
         RETURNING id, link_session_id, endpoint_id, code_verifier_enc, key_id, redirect_uri, token_url, scope",
    )
    .bind(now)
    .bind(crypto::hash_token(state))
    .bind(LinkStep::Payer.as_str())
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

/// What the callback checks for the request of `state`, whatever its status (`None`: unknown `state`).
///
/// # Errors
/// Database errors.
pub async fn check_of_state(db: &Db, now: i64, state: &str) -> anyhow::Result<Option<RequestCheck>> {
    let row = sqlx::query(
        "SELECT link_session_id, binder_hash, issuer, authorize_origin, iss_required, used_at, expires_at \
         FROM payer_auth_requests WHERE state_hash = $1",
    )
    .bind(crypto::hash_token(state))
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let used_at: Option<i64> = row.try_get("used_at")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    let iss_required: i64 = row.try_get("iss_required")?;
    Ok(Some(RequestCheck {
        link_session_id: row.try_get("link_session_id")?,
        binder_hash: row.try_get("binder_hash")?,
        issuer: row.try_get("issuer")?,
        authorize_origin: row.try_get("authorize_origin")?,
        iss_required: iss_required != 0,
        live: used_at.is_none() && expires_at > now,
    }))
}

/// The Link session whose request holds hand-off value `binder` (hashed here), whatever the request's status:
/// lets a callback with an unknown `state` report to the session its payer window was handed off from.
///
/// # Errors
/// Database errors.
pub async fn session_of_binder(db: &Db, binder: &str) -> anyhow::Result<Option<String>> {
    let row = sqlx::query("SELECT link_session_id FROM payer_auth_requests WHERE binder_hash = $1")
        .bind(crypto::hash_token(binder))
        .fetch_optional(&db.pool)
        .await?;
    Ok(row.map(|r| r.try_get("link_session_id")).transpose()?)
}

/// Voids every outstanding request of a session (it was cancelled, ended or moved back to the plan search), in
/// the caller's transaction: a callback that arrives later finds its `state` used. Returns how many.
///
/// # Errors
/// Database errors.
pub async fn void_for_session<'e, E>(ex: E, now: i64, link_session_id: &str) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query("UPDATE payer_auth_requests SET used_at = $1 WHERE link_session_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(link_session_id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}

/// Deletes the requests that expired before `before` (used or not): nothing in them is needed once their
/// callback can no longer come. Returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge_expired<'e, E>(ex: E, before: i64) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query("DELETE FROM payer_auth_requests WHERE expires_at < $1").bind(before).execute(ex).await?;
    Ok(done.rows_affected())
}
