//! The `authorizations` table: a patient's grant at a payer for one app and user, with the payer tokens sealed
//! at rest. The only module that writes SQL on this table.
//!
//! An authorization is the unit of isolation: every synced resource is keyed by its id. The payer's
//! `access_token` and `refresh_token` are sealed with the server's [`Cipher`], each with an aad naming the
//! authorization and the token kind ([`payer_token_aad`]), so a ciphertext copied to another row or column does
//! not open. The payer's FHIR base and token endpoint are stored beside the tokens: a payer token is only ever
//! sent there.
//!
//! # The live rule
//! Whether an authorization's data may be read at `now` is defined here once, as Rust ([`Authorization::is_live`])
//! and as SQL ([`live_sql`]) for queries that filter many rows; a test holds the two to the same answers. Live
//! means: not revoked, expired or expunged, and `now` before the end of its data ([`Authorization::data_ends_at`]:
//! its `expunge_at`, and for ONE_TIME at most [`ONE_TIME_TTL_SECS`] after it was created).

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, Value};
use sqlx::{any::AnyRow, AnyConnection, Row as _};

use crate::{
    domain::{AuthorizationState, Mode, StateReason, Usage, ONE_TIME_TTL_SECS},
    server::platform::{
        crypto::Cipher,
        db::{Backend, Db},
    },
};

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
    /// Where it is in its life.
    pub state: AuthorizationState,
    /// Why it is in that state, when recorded.
    pub state_reason: Option<StateReason>,
    /// `scope` granted by the payer.
    pub payer_scope: Option<String>,
    /// When the payer `access_token` expires (Unix s), when the payer said.
    pub payer_token_expires_at: Option<i64>,
    /// When the payer `refresh_token` expires (Unix s), when known.
    pub payer_refresh_expires_at: Option<i64>,
    /// When the data is to be expunged (Unix s), when set (ONE_TIME also ends at [`Self::data_ends_at`]).
    pub expunge_at: Option<i64>,
    /// When its data was expunged (Unix s).
    pub expunged_at: Option<i64>,
    /// When it was revoked (Unix s).
    pub revoked_at: Option<i64>,
    /// Creation time (Unix s).
    pub created_at: i64,
}

impl Authorization {
    /// When its data stops being readable (Unix s): its `expunge_at`, and for ONE_TIME at most
    /// [`ONE_TIME_TTL_SECS`] after creation. `None`: no end set.
    pub fn data_ends_at(&self) -> Option<i64> {
        match self.usage {
            Usage::OneTime => {
                let end = self.created_at + ONE_TIME_TTL_SECS;
                Some(self.expunge_at.map_or(end, |e| e.min(end)))
            }
            Usage::Multiple => self.expunge_at,
        }
    }

    /// Whether it ended for good: revoked, expired or expunged (whatever the clock says).
    pub fn is_ended(&self) -> bool {
        self.state.is_ended() || self.revoked_at.is_some() || self.expunged_at.is_some()
    }

    /// The live rule: its data may be read at `now` (see the module docs; [`live_sql`] is the same rule).
    pub fn is_live(&self, now: i64) -> bool {
        !self.is_ended() && self.data_ends_at().is_none_or(|end| end > now)
    }

    /// The repair rule: repair mode may renew its payer grant at `now`. MULTIPLE, live, and `NEEDS_REAUTH` or
    /// active ([`AuthorizationState::is_repairable`]); never ONE_TIME (a snapshot with its own window) nor an
    /// ended one. [`repair`] applies the same rule in its conditional update.
    pub fn is_repairable(&self, now: i64) -> bool {
        self.usage == Usage::Multiple && self.state.is_repairable() && self.is_live(now)
    }
}

/// The live rule as SQL, on the `authorizations` row aliased `a`, at the time given by the placeholder or
/// literal `now` (e.g. `"$3"`): the same answers as [`Authorization::is_live`].
pub fn live_sql(a: &str, now: &str) -> String {
    format!(
        "{a}.revoked_at IS NULL AND {a}.expunged_at IS NULL AND {a}.state NOT IN ('{revoked}', '{expired}') \
         AND ({a}.expunge_at IS NULL OR {a}.expunge_at > {now}) \
         AND NOT ({a}.usage = '{one_time}' AND {a}.created_at + {ttl} <= {now})",
        revoked = AuthorizationState::Revoked.as_str(),
        expired = AuthorizationState::Expired.as_str(),
        one_time = Usage::OneTime.as_str(),
        ttl = ONE_TIME_TTL_SECS,
    )
}

/// `state IN (…)` of the states whose payer grant is in use ([`AuthorizationState::is_active`]).
fn active_sql() -> String {
    let states: Vec<String> =
        AuthorizationState::ALL.iter().filter(|s| s.is_active()).map(|s| format!("'{}'", s.as_str())).collect();
    format!("state IN ({})", states.join(", "))
}

/// A subquery (`SELECT a.id FROM authorizations a WHERE …`) of the live authorizations of one app in one mode,
/// with the app id, mode and time bound at the placeholders `app`, `mode` and `now` (e.g. `"$1"`). For queries on
/// other tables that read every patient of an app (application tokens).
pub fn live_ids_of_app_sql(app: &str, mode: &str, now: &str) -> String {
    format!("SELECT a.id FROM authorizations a WHERE a.app_id = {app} AND a.mode = {mode} AND {}", live_sql("a", now))
}

const COLUMNS: &str = "id, app_id, mode, external_id, endpoint_id, link_session_id, patient_id, usage_requested, \
    usage, downgraded, state, state_reason, payer_scope, payer_token_expires_at, payer_refresh_expires_at, \
    expunge_at, expunged_at, revoked_at, created_at";

fn from_row(row: &AnyRow) -> anyhow::Result<Authorization> {
    from_named_row(row, "")
}

/// The columns of this table as `{alias}.{column} AS {prefix}{column}`, for a statement of another table's module
/// that joins an authorization to its own row (read back with [`from_prefixed_row`]).
pub(crate) fn columns_as(alias: &str, prefix: &str) -> String {
    COLUMNS.split(',').map(|c| format!("{alias}.{0} AS {prefix}{0}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// The authorization in a joined row written with [`columns_as`]`(_, prefix)`; `None` when the join found none.
///
/// # Errors
/// A column missing or of another type; a value no enum knows.
pub(crate) fn from_prefixed_row(row: &AnyRow, prefix: &str) -> anyhow::Result<Option<Authorization>> {
    if row.try_get::<Option<String>, _>(format!("{prefix}id").as_str())?.is_none() {
        return Ok(None);
    }
    from_named_row(row, prefix).map(Some)
}

fn from_named_row(row: &AnyRow, prefix: &str) -> anyhow::Result<Authorization> {
    // Unprefixed (this module's own reads, the common case) the column names are used as they are, unallocated.
    let name = |c: &'static str| -> std::borrow::Cow<'static, str> {
        if prefix.is_empty() { c.into() } else { format!("{prefix}{c}").into() }
    };
    let text = |c: &'static str| row.try_get::<String, _>(name(c).as_ref());
    let reason: Option<String> = row.try_get(name("state_reason").as_ref())?;
    Ok(Authorization {
        id: text("id")?,
        app_id: text("app_id")?,
        mode: Mode::parse(&text("mode")?).context("authorizations.mode")?,
        external_id: text("external_id")?,
        endpoint_id: text("endpoint_id")?,
        link_session_id: row.try_get(name("link_session_id").as_ref())?,
        patient_id: row.try_get(name("patient_id").as_ref())?,
        usage_requested: Usage::parse(&text("usage_requested")?).context("authorizations.usage_requested")?,
        usage: Usage::parse(&text("usage")?).context("authorizations.usage")?,
        downgraded: row.try_get::<i64, _>(name("downgraded").as_ref())? != 0,
        state: AuthorizationState::parse(&text("state")?).context("authorizations.state")?,
        state_reason: reason.as_deref().and_then(StateReason::parse),
        payer_scope: row.try_get(name("payer_scope").as_ref())?,
        payer_token_expires_at: row.try_get(name("payer_token_expires_at").as_ref())?,
        payer_refresh_expires_at: row.try_get(name("payer_refresh_expires_at").as_ref())?,
        expunge_at: row.try_get(name("expunge_at").as_ref())?,
        expunged_at: row.try_get(name("expunged_at").as_ref())?,
        revoked_at: row.try_get(name("revoked_at").as_ref())?,
        created_at: row.try_get(name("created_at").as_ref())?,
    })
}

fn ids(rows: &[AnyRow]) -> anyhow::Result<Vec<String>> {
    rows.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
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

/// One user's authorizations of one app and mode that are not revoked, expired or expunged, newest first.
///
/// # Errors
/// Database errors.
pub async fn list_open_for_user(db: &Db, app_id: &str, mode: Mode, external_id: &str) -> anyhow::Result<Vec<Authorization>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM authorizations WHERE app_id = $1 AND mode = $2 AND external_id = $3 \
         AND expunged_at IS NULL AND state NOT IN ($4, $5) ORDER BY created_at DESC, id"
    ))
    .bind(app_id)
    .bind(mode.as_str())
    .bind(external_id)
    .bind(AuthorizationState::Revoked.as_str())
    .bind(AuthorizationState::Expired.as_str())
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Whether the authorization belongs to this user of this app in this mode.
///
/// # Errors
/// Database errors.
pub async fn is_owned_by(db: &Db, id: &str, app_id: &str, mode: Mode, external_id: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query("SELECT 1 AS one FROM authorizations WHERE id = $1 AND app_id = $2 AND mode = $3 AND external_id = $4")
        .bind(id)
        .bind(app_id)
        .bind(mode.as_str())
        .bind(external_id)
        .fetch_optional(&db.pool)
        .await?
        .is_some())
}

/// The live authorizations of one app and mode whose payer patient is `patient_id`, oldest first (an
/// application token reading one patient).
///
/// # Errors
/// Database errors.
pub async fn live_ids_for_patient(
    db: &Db,
    app_id: &str,
    mode: Mode,
    patient_id: &str,
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(&format!(
        "SELECT a.id FROM authorizations a WHERE a.app_id = $1 AND a.mode = $2 AND a.patient_id = $3 AND {} \
         ORDER BY a.created_at, a.id",
        live_sql("a", "$4")
    ))
    .bind(app_id)
    .bind(mode.as_str())
    .bind(patient_id)
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    ids(&rows)
}

/// The authorizations (not revoked) of one user (`external_id`) of one app and mode that link one payer patient
/// at one endpoint. Another user of the app who linked the same payer patient is never among them.
///
/// # Errors
/// Database errors.
pub async fn unrevoked_ids_for_patient(
    db: &Db,
    app_id: &str,
    mode: Mode,
    external_id: &str,
    endpoint_id: &str,
    patient_id: &str,
) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM authorizations WHERE app_id = $1 AND mode = $2 AND external_id = $3 AND endpoint_id = $4 \
         AND patient_id = $5 AND revoked_at IS NULL",
    )
    .bind(app_id)
    .bind(mode.as_str())
    .bind(external_id)
    .bind(endpoint_id)
    .bind(patient_id)
    .fetch_all(&db.pool)
    .await?;
    ids(&rows)
}

/// The aad sealing one payer token of one authorization (`kind`: `access_token` or `refresh_token`).
pub fn payer_token_aad(authorization_id: &str, kind: &str) -> String {
    format!("authorization:{authorization_id}:payer_{kind}")
}

/// The payer tokens of authorization `id` sealed with the current key, each with its aad ([`payer_token_aad`]):
/// (sealed `access_token`, sealed `refresh_token` if any, key id).
fn seal_payer_tokens(cipher: &Cipher, id: &str, tokens: &PayerTokens) -> (Vec<u8>, Option<Vec<u8>>, String) {
    let (access, key_id) = cipher.seal_str(tokens.access_token.expose_secret(), &payer_token_aad(id, "access_token"));
    let refresh =
        tokens.refresh_token.as_ref().map(|r| cipher.seal_str(r.expose_secret(), &payer_token_aad(id, "refresh_token")).0);
    (access, refresh, key_id)
}

/// What the payer's token endpoint gave us, ready to be stored.
#[derive(Debug)]
pub struct PayerTokens {
    /// The payer `access_token`.
    pub access_token: SecretString,
    /// The payer `refresh_token`, if any (`None` on a refresh: the payer did not rotate it).
    pub refresh_token: Option<SecretString>,
    /// Expiry of the access token (Unix s).
    pub expires_at: Option<i64>,
    /// Expiry of the refresh grant (Unix s), when the payer said (`refresh_expires_in`).
    pub refresh_expires_at: Option<i64>,
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

/// Inserts a new authorization in state `AUTHORIZED` with its payer tokens sealed; returns its id.
///
/// # Errors
/// Database errors.
pub async fn create(
    conn: &mut AnyConnection,
    cipher: &Cipher,
    now: i64,
    new: NewAuthorization,
    tokens: &PayerTokens,
) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let (access, refresh, key_id) = seal_payer_tokens(cipher, &id, tokens);
    sqlx::query(
        "INSERT INTO authorizations (id, app_id, mode, external_id, endpoint_id, link_session_id, patient_id, \
         usage_requested, usage, downgraded, state, payer_scope, payer_access_token_enc, payer_refresh_token_enc, \
         payer_key_id, payer_token_expires_at, expunge_at, created_at, updated_at, payer_fhir_base, payer_token_url, \
         resource_types, next_sync_at, payer_refresh_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19, $20, $21, \
         $22, $23)",
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
    .bind(AuthorizationState::Authorized.as_str())
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
    .bind(tokens.refresh_expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// The reuse rule: the authorization a new sign-in should renew instead of creating a second one, if any. Same
/// app, mode and user (`external_id`), same endpoint and same payer `patient`, both MULTIPLE (`new.usage`; a
/// ONE_TIME link is a snapshot with its own 24-hour window, so each sign-in is its own), active (not
/// `NEEDS_REAUTH`) and live at `now`. Never another app's or mode's. The newest one when several match.
///
/// # Errors
/// Database errors.
pub async fn reusable(conn: &mut AnyConnection, new: &NewAuthorization, now: i64) -> anyhow::Result<Option<String>> {
    let Some(patient_id) = new.patient_id.as_deref().filter(|p| !p.is_empty()) else { return Ok(None) };
    if new.usage != Usage::Multiple {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT a.id FROM authorizations a WHERE a.app_id = $1 AND a.mode = $2 AND a.external_id = $3 \
         AND a.endpoint_id = $4 AND a.patient_id = $5 AND a.usage = $6 AND a.{active} AND {live} \
         ORDER BY a.created_at DESC LIMIT 1",
        active = active_sql(),
        live = live_sql("a", "$7"),
    ))
    .bind(&new.app_id)
    .bind(new.mode.as_str())
    .bind(&new.external_id)
    .bind(&new.endpoint_id)
    .bind(patient_id)
    .bind(Usage::Multiple.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .context("looking for a reusable authorization")?;
    Ok(row.map(|r| r.try_get::<String, _>("id")).transpose()?)
}

/// Renews authorization `id` (found by [`reusable`]) with a new sign-in's payer tokens: both sealed as at
/// creation, the payer's scope, token endpoint, FHIR base and grant end replaced, the refresh backoff cleared and
/// the expiry warning armed again; its state is kept (still active).
///
/// # Errors
/// Database errors.
pub async fn renew(
    conn: &mut AnyConnection,
    cipher: &Cipher,
    id: &str,
    now: i64,
    new: &NewAuthorization,
    tokens: &PayerTokens,
) -> anyhow::Result<()> {
    let (access, refresh, key_id) = seal_payer_tokens(cipher, id, tokens);
    sqlx::query(
        "UPDATE authorizations SET payer_access_token_enc = $1, payer_refresh_token_enc = $2, payer_key_id = $3, \
         payer_token_expires_at = $4, payer_scope = $5, payer_refresh_expires_at = $6, payer_fhir_base = $7, \
         payer_token_url = $8, refresh_after = NULL, pending_expiration_sent_for = NULL, updated_at = $9 \
         WHERE id = $10",
    )
    .bind(access)
    .bind(refresh)
    .bind(key_id)
    .bind(tokens.expires_at)
    .bind(tokens.scope.as_deref())
    .bind(tokens.refresh_expires_at)
    .bind(&new.fhir_base)
    .bind(&new.token_url)
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("renewing an authorization's payer tokens")?;
    Ok(())
}

/// Where a sign-in's payer tokens are used: the endpoint's FHIR base ([`crate::server::store::endpoints::Endpoint::fhir_base`])
/// and the token endpoint that sign-in's SMART discovery gave (refreshes go there).
#[derive(Debug, Clone, Copy)]
pub struct PayerUrls<'a> {
    /// FHIR base URL, no trailing `/`.
    pub fhir_base: &'a str,
    /// OAuth 2.0 token endpoint (RFC 6749 §3.2).
    pub token_url: &'a str,
}

/// Repairs authorization `id` with a new sign-in's payer tokens, only while it is still in state `from` and
/// repairable ([`Authorization::is_repairable`]; one conditional update, so a revocation or another repair in
/// between wins): both tokens sealed as at creation, the payer's scope, FHIR base, token endpoint and grant end
/// replaced, the refresh backoff cleared, the expiry warning and the `NEEDS_REAUTH` notice armed again, the state
/// set to `to` (its reason cleared), the readable window a `NEEDS_REAUTH` gave it removed, the re-sync schedule
/// set to `next_sync_at`, and `repaired_at` set. Returns whether it was repaired.
///
/// # Errors
/// Database errors.
#[allow(clippy::too_many_arguments)]
pub async fn repair(
    conn: &mut AnyConnection,
    cipher: &Cipher,
    id: &str,
    from: AuthorizationState,
    to: AuthorizationState,
    now: i64,
    tokens: &PayerTokens,
    urls: PayerUrls<'_>,
    next_sync_at: Option<i64>,
) -> anyhow::Result<bool> {
    if !from.is_repairable() {
        return Ok(false);
    }
    let (access, refresh, key_id) = seal_payer_tokens(cipher, id, tokens);
    let n = sqlx::query(&format!(
        "UPDATE authorizations SET payer_access_token_enc = $1, payer_refresh_token_enc = $2, payer_key_id = $3, \
         payer_token_expires_at = $4, payer_scope = COALESCE($5, payer_scope), payer_refresh_expires_at = $6, \
         refresh_after = NULL, pending_expiration_sent_for = NULL, reauth_notified_at = NULL, state = $7, \
         state_reason = NULL, expunge_at = CASE WHEN state = $8 THEN NULL ELSE expunge_at END, next_sync_at = $9, \
         repaired_at = $10, updated_at = $10, payer_fhir_base = $14, payer_token_url = $15 \
         WHERE id = $11 AND state = $12 AND usage = $13 AND {live}",
        live = live_sql("authorizations", "$10"),
    ))
    .bind(access)
    .bind(refresh)
    .bind(key_id)
    .bind(tokens.expires_at)
    .bind(tokens.scope.as_deref())
    .bind(tokens.refresh_expires_at)
    .bind(to.as_str())
    .bind(AuthorizationState::NeedsReauth.as_str())
    .bind(next_sync_at)
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .bind(Usage::Multiple.as_str())
    .bind(urls.fhir_base)
    .bind(urls.token_url)
    .execute(&mut *conn)
    .await
    .context("repairing an authorization")?
    .rows_affected();
    Ok(n == 1)
}

/// Moves an `AUTHORIZED` authorization to `EXCHANGED` (the integrator exchanged its `public_token`); any other
/// state is left as it is. Returns whether it moved.
///
/// # Errors
/// Database errors.
pub async fn mark_exchanged(db: &Db, id: &str, now: i64) -> anyhow::Result<bool> {
    let n = sqlx::query("UPDATE authorizations SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
        .bind(AuthorizationState::Exchanged.as_str())
        .bind(now)
        .bind(id)
        .bind(AuthorizationState::Authorized.as_str())
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
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
pub async fn payer_credentials(db: &Db, cipher: &Cipher, id: &str) -> anyhow::Result<Option<PayerCredentials>> {
    let Some(row) = sqlx::query(
        "SELECT payer_access_token_enc, payer_refresh_token_enc, payer_key_id, payer_token_expires_at, \
         payer_fhir_base, payer_token_url FROM authorizations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    else {
        return Ok(None);
    };
    let key_id: Option<String> = row.try_get("payer_key_id")?;
    let open = |col: &str, kind: &str| -> anyhow::Result<Option<SecretString>> {
        let sealed: Option<Vec<u8>> = row.try_get(col)?;
        match (sealed, key_id.as_deref()) {
            (Some(s), Some(k)) => Ok(Some(cipher.open_str(&s, k, &payer_token_aad(id, kind))?)),
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

/// Stores refreshed payer tokens (both re-sealed with the current key; `tokens.refresh_token` is the one to
/// keep: the rotated one, or the previous one when the payer did not rotate it), moves `AUTHORIZED`/`EXCHANGED`
/// to `REFRESHED`, and clears the transient-failure backoff. A `refresh_expires_at` the payer did not send keeps
/// the known one.
///
/// # Errors
/// Database errors.
pub async fn store_refreshed_tokens(
    conn: &mut AnyConnection,
    cipher: &Cipher,
    id: &str,
    now: i64,
    tokens: &PayerTokens,
) -> anyhow::Result<()> {
    let (access, refresh, key_id) = seal_payer_tokens(cipher, id, tokens);
    sqlx::query(
        "UPDATE authorizations SET payer_access_token_enc = $1, payer_refresh_token_enc = $2, payer_key_id = $3, \
         payer_token_expires_at = $4, payer_scope = COALESCE($5, payer_scope), updated_at = $6, refresh_after = NULL, \
         payer_refresh_expires_at = COALESCE($7, payer_refresh_expires_at), \
         state = CASE WHEN state IN ($8, $9) THEN $10 ELSE state END WHERE id = $11",
    )
    .bind(access)
    .bind(refresh)
    .bind(key_id)
    .bind(tokens.expires_at)
    .bind(tokens.scope.as_deref())
    .bind(now)
    .bind(tokens.refresh_expires_at)
    .bind(AuthorizationState::Authorized.as_str())
    .bind(AuthorizationState::Exchanged.as_str())
    .bind(AuthorizationState::Refreshed.as_str())
    .bind(id)
    .execute(&mut *conn)
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

// ---------------------------------------------------------------------------------------------------------
// The payer-refresh lease: one refresh at a time per authorization, across instances.
// ---------------------------------------------------------------------------------------------------------

/// Takes the refresh lease of an authorization for `owner` until `until` when it is free (never taken, or
/// expired at `now`) and the data is not expunged. Returns whether `owner` holds it now.
///
/// # Errors
/// Database errors.
pub async fn take_refresh_lease(db: &Db, id: &str, owner: &str, until: i64, now: i64) -> anyhow::Result<bool> {
    let n = sqlx::query(
        "UPDATE authorizations SET refresh_lease_owner = $1, refresh_lease_until = $2 \
         WHERE id = $3 AND expunged_at IS NULL AND (refresh_lease_until IS NULL OR refresh_lease_until < $4)",
    )
    .bind(owner)
    .bind(until)
    .bind(id)
    .bind(now)
    .execute(&db.pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Releases the refresh lease if `owner` still holds it.
///
/// # Errors
/// Database errors.
pub async fn release_refresh_lease(db: &Db, id: &str, owner: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE authorizations SET refresh_lease_owner = NULL, refresh_lease_until = NULL \
         WHERE id = $1 AND refresh_lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Defers the scheduled payer refresh of an authorization until `at` (after a transient failure).
///
/// # Errors
/// Database errors.
pub async fn defer_refresh(db: &Db, id: &str, at: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE authorizations SET refresh_after = $1 WHERE id = $2").bind(at).bind(id).execute(&db.pool).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// State transitions (their side effects, audit and webhooks, are the services' in the same transaction).
// ---------------------------------------------------------------------------------------------------------

/// Who an authorization belongs to, as returned by a transition (for its audit record and webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The app.
    pub app_id: String,
    /// The integrator's user id.
    pub external_id: String,
    /// The endpoint.
    pub endpoint_id: String,
}

fn owner_of(row: &AnyRow) -> anyhow::Result<Owner> {
    Ok(Owner {
        app_id: row.try_get("app_id")?,
        external_id: row.try_get("external_id")?,
        endpoint_id: row.try_get("endpoint_id")?,
    })
}

/// Moves an active (or not yet notified `NEEDS_REAUTH`) authorization to `NEEDS_REAUTH` with `reason`, destroys
/// its payer `refresh_token`, stops its re-sync schedule, and keeps it readable until its own `expunge_at` (set to
/// `readable_until` when it had none). Marks it notified, so this happens once. Returns its owner and the end of
/// its readable window (and when it was last repaired: each episode after a repair is its own fact) when it moved,
/// `None` when it was not in such a state.
///
/// # Errors
/// Database errors.
pub async fn mark_needs_reauth(
    conn: &mut AnyConnection,
    id: &str,
    reason: StateReason,
    now: i64,
    readable_until: i64,
) -> anyhow::Result<Option<(Owner, Option<i64>, Option<i64>)>> {
    let row = sqlx::query(
        &format!(
            "UPDATE authorizations SET state = $1, state_reason = COALESCE(state_reason, $2), \
             updated_at = $3, reauth_notified_at = $3, expunge_at = COALESCE(expunge_at, $4), \
             payer_refresh_token_enc = NULL, next_sync_at = NULL \
             WHERE id = $5 AND expunged_at IS NULL AND reauth_notified_at IS NULL AND ({} OR state = $1) \
             RETURNING app_id, external_id, endpoint_id, expunge_at, repaired_at",
            active_sql()
        ),
    )
    .bind(AuthorizationState::NeedsReauth.as_str())
    .bind(reason.as_str())
    .bind(now)
    .bind(readable_until)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok((owner_of(&r)?, r.try_get("expunge_at")?, r.try_get("repaired_at")?))).transpose()
}

/// What [`expunge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expunged {
    /// Whose authorization it was.
    pub owner: Owner,
    /// The state it ended in (`REVOKED` or `EXPIRED`).
    pub state: AuthorizationState,
    /// Whether this call revoked it (it was not `REVOKED` before).
    pub newly_revoked: bool,
}

/// Ends an authorization for good in `conn`'s transaction: state `REVOKED` when `reason` is a revocation or it
/// was already `REVOKED` (which keeps its own reason), else `EXPIRED` with `reason`; payer tokens destroyed,
/// re-syncs stopped, `expunged_at` set. `None` when it was already expunged or is unknown (idempotent).
///
/// # Errors
/// Database errors.
pub async fn expunge(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
    reason: StateReason,
    now: i64,
) -> anyhow::Result<Option<Expunged>> {
    let lock = if backend == Backend::Postgres { "FOR UPDATE" } else { "" };
    let prior: Option<String> =
        sqlx::query(&format!("SELECT state FROM authorizations WHERE id = $1 AND expunged_at IS NULL {lock}"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get("state"))
            .transpose()?;
    let Some(prior) = prior.as_deref().and_then(AuthorizationState::parse) else { return Ok(None) };
    let already_revoked = prior == AuthorizationState::Revoked;
    let revoked = already_revoked || reason.is_revocation();
    let state = if revoked { AuthorizationState::Revoked } else { AuthorizationState::Expired };
    let row = sqlx::query(
        "UPDATE authorizations SET state = $1, state_reason = CASE WHEN $6 = 1 THEN COALESCE(state_reason, $2) ELSE $2 END, \
         expunged_at = $3, updated_at = $3, \
         revoked_at = CASE WHEN $4 = 1 THEN COALESCE(revoked_at, $3) ELSE revoked_at END, \
         payer_access_token_enc = NULL, payer_refresh_token_enc = NULL, payer_key_id = NULL, next_sync_at = NULL \
         WHERE id = $5 AND expunged_at IS NULL \
         RETURNING app_id, external_id, endpoint_id",
    )
    .bind(state.as_str())
    .bind(if already_revoked { StateReason::Revoked } else { reason }.as_str())
    .bind(now)
    .bind(i64::from(revoked))
    .bind(id)
    .bind(i64::from(already_revoked))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| Ok(Expunged { owner: owner_of(&r)?, state, newly_revoked: revoked && !already_revoked })).transpose()
}

// ---------------------------------------------------------------------------------------------------------
// What the lifecycle sweep and the re-sync schedule look for.
// ---------------------------------------------------------------------------------------------------------

/// Authorizations whose data is due for expunge at `now` (ONE_TIME past [`ONE_TIME_TTL_SECS`], or any past its
/// own `expunge_at`), oldest first, with their usage.
///
/// # Errors
/// Database errors.
pub async fn due_for_expunge(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<(String, Usage)>> {
    let rows = sqlx::query(
        "SELECT id, usage FROM authorizations WHERE expunged_at IS NULL AND \
         ((usage = $1 AND created_at <= $2) OR (expunge_at IS NOT NULL AND expunge_at <= $3)) \
         ORDER BY created_at LIMIT $4",
    )
    .bind(Usage::OneTime.as_str())
    .bind(now - ONE_TIME_TTL_SECS)
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            let usage: String = r.try_get("usage")?;
            Ok((r.try_get("id")?, Usage::parse(&usage).context("authorizations.usage")?))
        })
        .collect()
}

/// How many live authorizations ([`live_sql`]) use an endpoint at `now`.
///
/// # Errors
/// Database errors.
pub async fn live_count_for_endpoint(db: &Db, endpoint_id: &str, now: i64) -> anyhow::Result<i64> {
    let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM authorizations a WHERE a.endpoint_id = $1 AND {}", live_sql("a", "$2")))
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&db.pool)
        .await?;
    Ok(row.try_get("n")?)
}

/// Every authorization of an endpoint whose data and payer tokens are not expunged yet (live or not).
///
/// # Errors
/// Database errors.
pub async fn unexpunged_ids_for_endpoint(db: &Db, endpoint_id: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT id FROM authorizations WHERE endpoint_id = $1 AND expunged_at IS NULL ORDER BY id")
        .bind(endpoint_id)
        .fetch_all(&db.pool)
        .await?;
    ids(&rows)
}

/// Authorizations set to `REVOKED` by another path whose data is not expunged yet.
///
/// # Errors
/// Database errors.
pub async fn revoked_not_expunged(db: &Db, limit: i64) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT id FROM authorizations WHERE state = $1 AND expunged_at IS NULL LIMIT $2")
        .bind(AuthorizationState::Revoked.as_str())
        .bind(limit)
        .fetch_all(&db.pool)
        .await?;
    ids(&rows)
}

/// `NEEDS_REAUTH` authorizations nobody has notified yet (set by another path without the transition).
///
/// # Errors
/// Database errors.
pub async fn needs_reauth_unnotified(db: &Db, limit: i64) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT id FROM authorizations WHERE state = $1 AND reauth_notified_at IS NULL AND expunged_at IS NULL LIMIT $2",
    )
    .bind(AuthorizationState::NeedsReauth.as_str())
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    ids(&rows)
}

/// Active MULTIPLE authorizations whose payer grant is known to be over at `now` (its refresh grant expired,
/// or no refresh token and an expired access token).
///
/// # Errors
/// Database errors.
pub async fn payer_grant_over(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(&format!(
        "SELECT id FROM authorizations WHERE expunged_at IS NULL AND usage = $1 AND {} AND ( \
           (payer_refresh_expires_at IS NOT NULL AND payer_refresh_expires_at <= $2) OR \
           (payer_refresh_token_enc IS NULL AND payer_token_expires_at IS NOT NULL AND payer_token_expires_at <= $2)) \
         LIMIT $3",
        active_sql()
    ))
    .bind(Usage::Multiple.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    ids(&rows)
}

/// Active MULTIPLE authorizations whose payer grant ends after `now` and by `until`, and whose
/// `authorization.pending_expiration` was not sent for that end yet: `(id, payer_refresh_expires_at)`.
///
/// # Errors
/// Database errors.
pub async fn pending_expiration_due(db: &Db, now: i64, until: i64, limit: i64) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(&format!(
        "SELECT id, payer_refresh_expires_at FROM authorizations WHERE expunged_at IS NULL AND usage = $1 AND {} \
         AND payer_refresh_expires_at > $2 AND payer_refresh_expires_at <= $3 \
         AND (pending_expiration_sent_for IS NULL OR pending_expiration_sent_for <> payer_refresh_expires_at) LIMIT $4",
        active_sql()
    ))
    .bind(Usage::Multiple.as_str())
    .bind(now)
    .bind(until)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("payer_refresh_expires_at")?))).collect()
}

/// Records in `conn`'s transaction that `authorization.pending_expiration` is sent for the grant end `ends_at`;
/// returns the owner when this call recorded it (false for a second instance, or a grant end that changed).
///
/// # Errors
/// Database errors.
pub async fn claim_pending_expiration(conn: &mut AnyConnection, id: &str, ends_at: i64) -> anyhow::Result<Option<Owner>> {
    let row = sqlx::query(
        "UPDATE authorizations SET pending_expiration_sent_for = $1 WHERE id = $2 AND payer_refresh_expires_at = $1 \
         AND (pending_expiration_sent_for IS NULL OR pending_expiration_sent_for <> $1) \
         RETURNING app_id, external_id, endpoint_id",
    )
    .bind(ends_at)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(owner_of).transpose()
}

/// Active MULTIPLE authorizations with a payer `refresh_token` whose access token expires by `until`, not
/// deferred past `now`.
///
/// # Errors
/// Database errors.
pub async fn payer_tokens_expiring(db: &Db, until: i64, now: i64, limit: i64) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(&format!(
        "SELECT id FROM authorizations WHERE expunged_at IS NULL AND usage = $1 AND {} \
         AND payer_refresh_token_enc IS NOT NULL AND payer_token_expires_at IS NOT NULL \
         AND payer_token_expires_at <= $2 AND (refresh_after IS NULL OR refresh_after <= $3) LIMIT $4",
        active_sql()
    ))
    .bind(Usage::Multiple.as_str())
    .bind(until)
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    ids(&rows)
}

/// A MULTIPLE→ONE_TIME downgrade claimed for recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downgrade {
    /// The authorization.
    pub id: String,
    /// Its app.
    pub app_id: String,
    /// What the integrator asked for.
    pub usage_requested: Usage,
    /// What it got.
    pub usage: Usage,
    /// The endpoint that gives no long-term access.
    pub endpoint_id: String,
}

/// Claims every downgraded authorization whose downgrade was not recorded yet (one conditional update, so
/// several instances claim each once), in `conn`'s transaction (the one that records them).
///
/// # Errors
/// Database errors.
pub async fn claim_unrecorded_downgrades(conn: &mut AnyConnection, now: i64) -> anyhow::Result<Vec<Downgrade>> {
    let rows = sqlx::query(
        "UPDATE authorizations SET downgrade_recorded_at = $1 WHERE downgraded = 1 AND downgrade_recorded_at IS NULL \
         RETURNING id, app_id, usage_requested, usage, endpoint_id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            let usage = |c: &str| -> anyhow::Result<Usage> {
                Usage::parse(&r.try_get::<String, _>(c)?).context("authorizations usage")
            };
            Ok(Downgrade {
                id: r.try_get("id")?,
                app_id: r.try_get("app_id")?,
                usage_requested: usage("usage_requested")?,
                usage: usage("usage")?,
                endpoint_id: r.try_get("endpoint_id")?,
            })
        })
        .collect()
}

/// Active MULTIPLE authorizations whose scheduled re-sync is due at `now`, with the due time.
///
/// # Errors
/// Database errors.
pub async fn resyncs_due(db: &Db, now: i64, limit: i64) -> anyhow::Result<Vec<(String, i64)>> {
    let rows = sqlx::query(&format!(
        "SELECT id, next_sync_at FROM authorizations WHERE usage = $1 AND revoked_at IS NULL AND {} \
         AND next_sync_at IS NOT NULL AND next_sync_at <= $2 LIMIT $3",
        active_sql()
    ))
    .bind(Usage::Multiple.as_str())
    .bind(now)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("next_sync_at")?))).collect()
}

/// Moves the scheduled re-sync of an authorization from `due` to `next`, if it is still at `due` (one
/// conditional update: of two instances, one wins). Returns whether this call moved it.
///
/// # Errors
/// Database errors.
pub async fn claim_resync(db: &Db, id: &str, due: i64, next: i64) -> anyhow::Result<bool> {
    let n = sqlx::query("UPDATE authorizations SET next_sync_at = $1 WHERE id = $2 AND next_sync_at = $3")
        .bind(next)
        .bind(id)
        .bind(due)
        .execute(&db.pool)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Non-health facts about every authorization (of one app, or only the downgraded ones) for operators
/// (`audit authorizations`), oldest first.
///
/// # Errors
/// Database errors.
pub async fn operator_view(db: &Db, app_id: Option<&str>, downgraded_only: bool) -> anyhow::Result<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT id, app_id, mode, endpoint_id, usage_requested, usage, downgraded, state, state_reason, \
         created_at, expunge_at, expunged_at, revoked_at FROM authorizations \
         WHERE ($1 = '' OR app_id = $1) AND ($2 = 0 OR downgraded = 1) ORDER BY created_at, id",
    )
    .bind(app_id.unwrap_or(""))
    .bind(i64::from(downgraded_only))
    .fetch_all(&db.pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(json!({
                "authorization_id": r.try_get::<String, _>("id")?,
                "app_id": r.try_get::<String, _>("app_id")?,
                "mode": r.try_get::<String, _>("mode")?,
                "endpoint_id": r.try_get::<String, _>("endpoint_id")?,
                "usage_requested": r.try_get::<String, _>("usage_requested")?,
                "usage": r.try_get::<String, _>("usage")?,
                "downgraded": r.try_get::<i64, _>("downgraded")? != 0,
                "state": r.try_get::<String, _>("state")?,
                "state_reason": r.try_get::<Option<String>, _>("state_reason")?,
                "created_at": r.try_get::<i64, _>("created_at")?,
                "expunge_at": r.try_get::<Option<i64>, _>("expunge_at")?,
                "expunged_at": r.try_get::<Option<i64>, _>("expunged_at")?,
                "revoked_at": r.try_get::<Option<i64>, _>("revoked_at")?,
            }))
        })
        .collect()
}
