//! Authorizations: a patient's grant at a payer for one app and user, with the payer tokens sealed at rest.
//!
//! Owner: [Sync]. Compiled only with `ssr`.
//!
//! An authorization is the unit of isolation: every synced resource is keyed by its id. The payer's
//! `access_token` and `refresh_token` are sealed with the server's [`Cipher`](super::crypto::Cipher), each
//! with an aad naming the authorization and the token kind ([`payer_token_aad`]), so a ciphertext copied to
//! another row or column does not open. The payer's FHIR base and token endpoint are stored beside the tokens:
//! a payer token is only ever sent there.

use anyhow::Context as _;
use secrecy::SecretString;
use sqlx::Row as _;

use crate::server::{platform::db::Db, state::AppState};
use crate::domain::{Mode, Usage};

/// Authorization states (DESIGN.md): the payer granted access.
pub const AUTHORIZED: &str = "AUTHORIZED";
/// The integrator exchanged the `public_token`.
pub const EXCHANGED: &str = "EXCHANGED";
/// The payer tokens were refreshed at least once.
pub const REFRESHED: &str = "REFRESHED";
/// The payer refused a refresh (`invalid_grant`): the patient must link again.
pub const NEEDS_REAUTH: &str = "NEEDS_REAUTH";
/// Revoked by the patient, the integrator or the operator.
pub const REVOKED: &str = "REVOKED";
/// ONE_TIME window over, or MULTIPLE grant ended.
pub const EXPIRED: &str = "EXPIRED";

/// A patient's authorization at a payer for one app and user (`external_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// UUID.
    pub id: String,
    /// The integrator app.
    pub app_id: String,
    /// Test (sandbox payers) or live.
    pub mode: Mode,
    /// The integrator's user id (`user.externalId`).
    pub external_id: String,
    /// The directory endpoint (payer).
    pub endpoint_id: String,
    /// The Link session that created it.
    pub link_session_id: Option<String>,
    /// The payer's FHIR `Patient` id (`None` until known).
    pub patient_id: Option<String>,
    /// `usage` the integrator asked for.
    pub usage_requested: Usage,
    /// Effective `usage` (MULTIPLE downgraded to ONE_TIME when the payer gives no refresh token).
    pub usage: Usage,
    /// Whether `usage` was downgraded.
    pub downgraded: bool,
    /// One of [`AUTHORIZED`], [`EXCHANGED`], [`REFRESHED`], [`NEEDS_REAUTH`], [`REVOKED`], [`EXPIRED`].
    pub state: String,
    /// `scope` granted by the payer.
    pub payer_scope: Option<String>,
    /// When the payer `access_token` expires (Unix s), when the payer said.
    pub payer_token_expires_at: Option<i64>,
    /// When the payer `refresh_token` expires (Unix s), when known.
    pub payer_refresh_expires_at: Option<i64>,
    /// When the data is to be expunged (ONE_TIME: 24 h after authorization).
    pub expunge_at: Option<i64>,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Creation time (Unix s).
    pub created_at: i64,
}

const COLUMNS: &str = "id, app_id, mode, external_id, endpoint_id, link_session_id, patient_id, usage_requested, \
    usage, downgraded, state, payer_scope, payer_token_expires_at, payer_refresh_expires_at, expunge_at, \
    revoked_at, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Authorization> {
    let mode: String = row.try_get("mode")?;
    let usage_requested: String = row.try_get("usage_requested")?;
    let usage: String = row.try_get("usage")?;
    Ok(Authorization {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        mode: Mode::parse(&mode).context("authorizations.mode")?,
        external_id: row.try_get("external_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        link_session_id: row.try_get("link_session_id")?,
        patient_id: row.try_get("patient_id")?,
        usage_requested: Usage::parse(&usage_requested).context("authorizations.usage_requested")?,
        usage: Usage::parse(&usage).context("authorizations.usage")?,
        downgraded: row.try_get::<i64, _>("downgraded")? != 0,
        state: row.try_get("state")?,
        payer_scope: row.try_get("payer_scope")?,
        payer_token_expires_at: row.try_get("payer_token_expires_at")?,
        payer_refresh_expires_at: row.try_get("payer_refresh_expires_at")?,
        expunge_at: row.try_get("expunge_at")?,
        revoked_at: row.try_get("revoked_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The authorization with this id.
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<Authorization>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM authorizations WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every authorization of one user of one app, newest first.
///
/// # Errors
/// Database errors.
pub async fn list_for_user(db: &Db, app_id: &str, external_id: &str) -> anyhow::Result<Vec<Authorization>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE app_id = $1 AND external_id = $2 ORDER BY created_at DESC, id"
    ))
    .bind(app_id)
    .bind(external_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Sets the state (see the constants of this module); `REVOKED` also sets `revoked_at` if unset.
///
/// # Errors
/// Database errors.
pub async fn set_state(db: &Db, id: &str, state: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE authorizations SET state = $1, updated_at = $2, \
         revoked_at = CASE WHEN $1 = 'REVOKED' AND revoked_at IS NULL THEN $2 ELSE revoked_at END WHERE id = $3",
    )
    .bind(state)
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The aad sealing one payer token of one authorization (`kind`: `access_token` or `refresh_token`).
pub fn payer_token_aad(authorization_id: &str, kind: &str) -> String {
    format!("authorization:{authorization_id}:payer_{kind}")
}

/// What the payer's token endpoint gave us, ready to be stored.
#[derive(Debug)]
pub struct PayerTokens {
    /// The payer `access_token`.
    pub access_token: SecretString,
    /// The payer `refresh_token`, if any.
    pub refresh_token: Option<SecretString>,
    /// Expiry of the access token (Unix s).
    pub expires_at: Option<i64>,
    /// Granted `scope`.
    pub scope: Option<String>,
}

/// Everything needed to create an authorization.
#[derive(Debug)]
pub struct NewAuthorization {
    /// The app.
    pub app_id: String,
    /// The mode.
    pub mode: Mode,
    /// The user's `externalId`.
    pub external_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The Link session.
    pub link_session_id: Option<String>,
    /// The payer's patient id, when already known.
    pub patient_id: Option<String>,
    /// Requested usage.
    pub usage_requested: Usage,
    /// Effective usage.
    pub usage: Usage,
    /// Whether it was downgraded.
    pub downgraded: bool,
    /// The payer FHIR base the tokens are for.
    pub fhir_base: String,
    /// The payer token endpoint (for refresh).
    pub token_url: String,
    /// `requestedResources` (empty: every type the endpoint offers).
    pub resource_types: Vec<String>,
    /// ONE_TIME: when the data is expunged.
    pub expunge_at: Option<i64>,
    /// MULTIPLE: when the first scheduled re-sync is due.
    pub next_sync_at: Option<i64>,
}

/// Inserts a new authorization in state [`AUTHORIZED`] with its payer tokens sealed; returns its id.
///
/// # Errors
/// Database errors.
pub async fn create(state: &AppState, now: i64, new: NewAuthorization, tokens: &PayerTokens) -> anyhow::Result<String> {
    use secrecy::ExposeSecret as _;
    let id = uuid::Uuid::new_v4().to_string();
    let (access, key_id) = state.cipher.seal_str(tokens.access_token.expose_secret(), &payer_token_aad(&id, "access_token"));
    let refresh = tokens
        .refresh_token
        .as_ref()
        .map(|r| state.cipher.seal_str(r.expose_secret(), &payer_token_aad(&id, "refresh_token")).0);
    sqlx::query(
        "INSERT INTO authorizations (id, app_id, mode, external_id, endpoint_id, link_session_id, patient_id, \
         usage_requested, usage, downgraded, state, payer_scope, payer_access_token_enc, payer_refresh_token_enc, \
         payer_key_id, payer_token_expires_at, expunge_at, created_at, updated_at, payer_fhir_base, payer_token_url, \
         resource_types, next_sync_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19, $20, $21, $22)",
    )
    .bind(&id)
    .bind(&new.app_id)
    .bind(new.mode.as_str())
    .bind(&new.external_id)
    .bind(&new.endpoint_id)
    .bind(new.link_session_id.as_deref())
    .bind(new.patient_id.as_deref())
    .bind(new.usage_requested.as_str())
    .bind(new.usage.as_str())
    .bind(i64::from(new.downgraded))
    .bind(AUTHORIZED)
    .bind(tokens.scope.as_deref())
    .bind(access)
    .bind(refresh)
    .bind(key_id)
    .bind(tokens.expires_at)
    .bind(new.expunge_at)
    .bind(now)
    .bind(&new.fhir_base)
    .bind(&new.token_url)
    .bind(serde_json::to_string(&new.resource_types)?)
    .bind(new.next_sync_at)
    .execute(&state.db.pool)
    .await?;
    Ok(id)
}

/// The sealed payer credentials of an authorization, opened.
#[derive(Debug)]
pub struct PayerCredentials {
    /// The payer `access_token` (`None` after the tokens were destroyed).
    pub access_token: Option<SecretString>,
    /// The payer `refresh_token`.
    pub refresh_token: Option<SecretString>,
    /// Expiry of the access token (Unix s).
    pub expires_at: Option<i64>,
    /// The payer FHIR base the tokens are for.
    pub fhir_base: Option<String>,
    /// The payer token endpoint.
    pub token_url: Option<String>,
}

/// Opens the payer tokens of an authorization.
///
/// # Errors
/// Database errors, or a ciphertext that does not open (wrong key, moved between rows).
pub async fn payer_credentials(state: &AppState, id: &str) -> anyhow::Result<Option<PayerCredentials>> {
    let Some(row) = sqlx::query(
        "SELECT payer_access_token_enc, payer_refresh_token_enc, payer_key_id, payer_token_expires_at, \
         payer_fhir_base, payer_token_url FROM authorizations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&state.db.pool)
    .await?
    else {
        return Ok(None);
    };
    let key_id: Option<String> = row.try_get("payer_key_id")?;
    let open = |col: &str, kind: &str| -> anyhow::Result<Option<SecretString>> {
        let sealed: Option<Vec<u8>> = row.try_get(col)?;
        match (sealed, key_id.as_deref()) {
            (Some(s), Some(k)) => Ok(Some(state.cipher.open_str(&s, k, &payer_token_aad(id, kind))?)),
            _ => Ok(None),
        }
    };
    Ok(Some(PayerCredentials {
        access_token: open("payer_access_token_enc", "access_token")?,
        refresh_token: open("payer_refresh_token_enc", "refresh_token")?,
        expires_at: row.try_get("payer_token_expires_at")?,
        fhir_base: row.try_get("payer_fhir_base")?,
        token_url: row.try_get("payer_token_url")?,
    }))
}

/// Stores refreshed payer tokens (both re-sealed with the current key). A payer that did not rotate the
/// `refresh_token` keeps the old one (`refresh_token: None`).
///
/// # Errors
/// Database errors, or an old refresh token that no longer opens.
pub async fn store_refreshed_tokens(state: &AppState, id: &str, now: i64, tokens: &PayerTokens) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let refresh = match &tokens.refresh_token {
        Some(r) => Some(r.expose_secret().to_string()),
        None => payer_credentials(state, id)
            .await?
            .and_then(|c| c.refresh_token)
            .map(|r| r.expose_secret().to_string()),
    };
    let (access, key_id) = state.cipher.seal_str(tokens.access_token.expose_secret(), &payer_token_aad(id, "access_token"));
    let refresh = refresh.map(|r| state.cipher.seal_str(&r, &payer_token_aad(id, "refresh_token")).0);
    sqlx::query(
        "UPDATE authorizations SET payer_access_token_enc = $1, payer_refresh_token_enc = $2, payer_key_id = $3, \
         payer_token_expires_at = $4, payer_scope = COALESCE($5, payer_scope), updated_at = $6, \
         state = CASE WHEN state IN ('AUTHORIZED', 'EXCHANGED') THEN 'REFRESHED' ELSE state END WHERE id = $7",
    )
    .bind(access)
    .bind(refresh)
    .bind(key_id)
    .bind(tokens.expires_at)
    .bind(tokens.scope.as_deref())
    .bind(now)
    .bind(id)
    .execute(&state.db.pool)
    .await?;
    Ok(())
}

/// Records the payer's `Patient` id once the sync found it.
///
/// # Errors
/// Database errors.
pub async fn set_patient_id(db: &Db, id: &str, patient_id: &str, now: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE authorizations SET patient_id = $1, updated_at = $2 WHERE id = $3")
        .bind(patient_id)
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// `requestedResources` recorded for the authorization (empty: every type the endpoint offers).
///
/// # Errors
/// Database errors.
pub async fn resource_types(db: &Db, id: &str) -> anyhow::Result<Vec<String>> {
    let row = sqlx::query("SELECT resource_types FROM authorizations WHERE id = $1").bind(id).fetch_optional(&db.pool).await?;
    match row {
        Some(r) => {
            let s: String = r.try_get("resource_types")?;
            Ok(serde_json::from_str(&s).unwrap_or_default())
        }
        None => Ok(Vec::new()),
    }
}
