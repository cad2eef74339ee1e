//! The `link_sessions` table: one row per `open()` (or per hosted-flow visit) holding all flow state, so any
//! instance can serve any step and a restart loses nothing. The only module that writes SQL on it.
//!
//! The session id is a 256-bit random bearer value (`ls_…`): it travels in the hosted page's URL instead of a
//! third-party cookie (Safari blocks those in iframes). It is never logged. Steps are [`LinkStep`]s; a forward
//! move is one conditional update from the expected step ([`advance`]).

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::{
    domain::{ExitCode, LinkStep, Mode, Usage},
    server::platform::{
        crypto::{self, Cipher},
        db::Db,
    },
};

/// How long a session may stay open before it expires (seconds). Covers a slow payer sign-in.
pub const SESSION_TTL_SECS: i64 = 3600;

/// Length of a session id: `ls_` and 43 base64url characters (256 random bits, [`crypto::random_token`]).
pub const SESSION_ID_LEN: usize = 46;

/// Whether `id` has the form of a session id (`ls_` + 43 base64url characters). Anything else is unknown
/// before it reaches a query, a header or a log.
pub fn valid_session_id(id: &str) -> bool {
    id.len() == SESSION_ID_LEN
        && id.starts_with("ls_")
        && id[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `create()` options kept with the session (JSON in `link_sessions.options`, camelCase as in link.js).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionOptions {
    /// Close the modal and fire `onSuccess` without waiting for Continue.
    pub auto_exit: bool,
    /// Skip the syncing screen (go to success once the payer authorized).
    pub skip_syncing: bool,
    /// Skip the explainer screen.
    pub skip_explainer: bool,
    /// FHIR resource types asked for (empty: everything the endpoint offers).
    pub requested_resources: Vec<String>,
    /// `multiplePlans` (modal only): the success screen offers "Connect another plan", and the session may link
    /// several plans, each its own authorization and `public_token`.
    pub multiple_plans: bool,
    /// `en`, `es` or `ko`: from the `language` option, else `Accept-Language` at creation; the patient may change it
    /// on the consent screen.
    pub language: String,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            auto_exit: true,
            skip_syncing: false,
            skip_explainer: false,
            requested_resources: Vec::new(),
            multiple_plans: false,
            language: "en".into(),
        }
    }
}

/// One Link session.
#[derive(Clone)]
pub struct LinkSession {
    /// The bearer id (`ls_…`).
    pub id: String,
    /// The app that opened it.
    pub app_id: String,
    /// Mode of the publishable key used.
    pub mode: Mode,
    /// The integrator's `user.externalId`.
    pub external_id: String,
    /// Requested `usage`.
    pub usage: Usage,
    /// `create()` options.
    pub options: SessionOptions,
    /// Preselected (or chosen) endpoint.
    pub endpoint_id: Option<String>,
    /// Whether `endpoint` was given by the integrator (search skipped).
    pub endpoint_fixed: bool,
    /// Exact origin of the page that called `open()` (modal flow).
    pub host_origin: Option<String>,
    /// Registered `redirect_uri` of the hosted flow.
    pub redirect_uri: Option<String>,
    /// The integrator's `state` for the hosted flow.
    pub client_state: Option<String>,
    /// Per-session nonce every postMessage carries.
    pub nonce: String,
    /// Current step.
    pub step: LinkStep,
    /// Authorization created by the payer callback.
    pub authorization_id: Option<String>,
    /// Why the session failed or ended.
    pub exit_code: Option<ExitCode>,
    /// Sealed copy of the public token (AAD = session id).
    pub public_token_enc: Option<Vec<u8>>,
    /// Key id of `public_token_enc`.
    pub public_token_key_id: Option<String>,
    /// Unix seconds after which the session is dead.
    pub expires_at: i64,
    /// The PKCE `code_challenge` of a redirect-flow (`GET /link/auth`) session, until the flow mints its code.
    pub code_challenge: Option<String>,
    /// The public id (`lsn_…`) the integrator API, webhooks and the funnel name the session by; grants nothing.
    /// `None` only for sessions created before it existed.
    pub public_id: Option<String>,
    /// When the session was created (Unix s).
    pub created_at: i64,
    /// SHA-256 (hex) of the session's binder, the value only the browser that opened it holds
    /// (`services::link_flow::is_bound`). `None` for sessions that never had a browser (the test shortcut).
    pub binder_hash: Option<String>,
    /// Plans linked before the one in play (`multiplePlans`: one per "Connect another plan").
    pub plans_linked: i64,
    /// Whether `authorization_id` is an existing authorization the sign-in reused (same plan and payer `patient`).
    pub authorization_reused: bool,
    /// Repair mode: the authorization this session renews (from the repair token it was opened with).
    pub repair_authorization_id: Option<String>,
}

impl std::fmt::Debug for LinkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a bearer secret and external_id identifies a person: neither is printed.
        f.debug_struct("LinkSession").field("app_id", &self.app_id).field("step", &self.step).finish_non_exhaustive()
    }
}

/// What [`create`] needs.
pub struct NewSession<'a> {
    pub app_id: &'a str,
    pub mode: Mode,
    pub external_id: &'a str,
    pub usage: Usage,
    pub options: SessionOptions,
    pub endpoint_id: Option<&'a str>,
    pub host_origin: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub client_state: Option<&'a str>,
    pub nonce: &'a str,
    /// Redirect flow (`GET /link/auth`): the client's PKCE `code_challenge`.
    pub code_challenge: Option<&'a str>,
    /// SHA-256 (hex) of the binder handed to the browser that opened the session (`None`: no browser).
    pub binder_hash: Option<&'a str>,
}

/// A new session's public id: `lsn_` and 128 random bits (base64url). Not a credential: it only names the session
/// to its app's secret-key holder.
pub fn new_public_id() -> String {
    format!("lsn_{}", crypto::random_id(16))
}

/// Creates a session and returns its id. The first step is always consent.
///
/// # Errors
/// Database errors.
pub async fn create<'e, E>(ex: E, now: i64, new: NewSession<'_>) -> anyhow::Result<String>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let id = crypto::random_token("ls_");
    let mut options = serde_json::to_value(&new.options)?;
    // Remember whether the endpoint came from the integrator: then search is skipped and retry reconnects.
    options["endpointFixed"] = serde_json::Value::Bool(new.endpoint_id.is_some());
    sqlx::query(
        "INSERT INTO link_sessions (id, app_id, mode, external_id, usage, options, endpoint_id, host_origin, \
         redirect_uri, client_state, nonce, step, expires_at, created_at, updated_at, code_challenge, binder_hash, \
         public_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17)",
    )
    .bind(&id)
    .bind(new.app_id)
    .bind(new.mode.as_str())
    .bind(new.external_id)
    .bind(new.usage.as_str())
    .bind(options.to_string())
    .bind(new.endpoint_id)
    .bind(new.host_origin)
    .bind(new.redirect_uri)
    .bind(new.client_state)
    .bind(new.nonce)
    .bind(LinkStep::Consent.as_str())
    .bind(now + SESSION_TTL_SECS)
    .bind(now)
    .bind(new.code_challenge)
    .bind(new.binder_hash)
    .bind(new_public_id())
    .execute(ex)
    .await
    .context("inserting link session")?;
    Ok(id)
}

/// The columns [`from_row`] reads.
const COLUMNS: &str = "id, app_id, mode, external_id, usage, options, endpoint_id, host_origin, redirect_uri, \
     client_state, nonce, step, authorization_id, exit_code, public_token_enc, public_token_key_id, expires_at, \
     code_challenge, binder_hash, public_id, created_at, plans_linked, authorization_reused, repair_authorization_id";

fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<LinkSession> {
    let options_text: String = row.try_get("options")?;
    let options_json: serde_json::Value = serde_json::from_str(&options_text).unwrap_or_default();
    let endpoint_fixed = options_json.get("endpointFixed").and_then(|v| v.as_bool()).unwrap_or(false);
    let options: SessionOptions = serde_json::from_value(options_json).unwrap_or_default();
    let mode: String = row.try_get("mode")?;
    let usage: String = row.try_get("usage")?;
    let exit_code: Option<String> = row.try_get("exit_code")?;
    let step: String = row.try_get("step")?;
    Ok(LinkSession {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        mode: Mode::parse(&mode).context("bad mode in link session")?,
        external_id: row.try_get("external_id")?,
        usage: Usage::parse(&usage).context("bad usage in link session")?,
        options,
        endpoint_id: row.try_get("endpoint_id")?,
        endpoint_fixed,
        host_origin: row.try_get("host_origin")?,
        redirect_uri: row.try_get("redirect_uri")?,
        client_state: row.try_get("client_state")?,
        nonce: row.try_get("nonce")?,
        step: LinkStep::parse(&step).context("bad step in link session")?,
        authorization_id: row.try_get("authorization_id")?,
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        public_token_enc: row.try_get("public_token_enc")?,
        public_token_key_id: row.try_get("public_token_key_id")?,
        expires_at: row.try_get("expires_at")?,
        code_challenge: row.try_get("code_challenge")?,
        binder_hash: row.try_get("binder_hash")?,
        public_id: row.try_get("public_id")?,
        created_at: row.try_get("created_at")?,
        plans_linked: row.try_get("plans_linked")?,
        authorization_reused: row.try_get::<i64, _>("authorization_reused")? != 0,
        repair_authorization_id: row.try_get("repair_authorization_id")?,
    })
}

/// Makes session `id` (just created, in the same transaction) a repair session of `authorization_id`.
///
/// # Errors
/// Database errors.
pub async fn set_repair_authorization<'e, E>(ex: E, id: &str, authorization_id: &str) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE link_sessions SET repair_authorization_id = $1 WHERE id = $2")
        .bind(authorization_id)
        .bind(id)
        .execute(ex)
        .await
        .context("recording the authorization a session repairs")?;
    Ok(())
}

/// Loads a session by id (expired ones too: callers decide).
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<LinkSession>> {
    if !valid_session_id(id) {
        return Ok(None);
    }
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM link_sessions WHERE id = $1"))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("reading link session")?;
    row.as_ref().map(from_row).transpose()
}

/// Loads a session of `app_id` in `mode` by its public id (`lsn_…`); `None` for another app's or mode's.
///
/// # Errors
/// Database errors.
pub async fn get_public(db: &Db, app_id: &str, mode: Mode, public_id: &str) -> anyhow::Result<Option<LinkSession>> {
    if !public_id.starts_with("lsn_") || public_id.len() > 64 {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM link_sessions WHERE public_id = $1 AND app_id = $2 AND mode = $3"
    ))
    .bind(public_id)
    .bind(app_id)
    .bind(mode.as_str())
    .fetch_optional(&db.pool)
    .await
    .context("reading link session by public id")?;
    row.as_ref().map(from_row).transpose()
}

/// Loads a session by its public id (`lsn_…`), of any app: for the server's own sweeps, never for a caller.
///
/// # Errors
/// Database errors.
pub async fn get_by_public_id(db: &Db, public_id: &str) -> anyhow::Result<Option<LinkSession>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM link_sessions WHERE public_id = $1"))
        .bind(public_id)
        .fetch_optional(&db.pool)
        .await
        .context("reading link session by public id")?;
    row.as_ref().map(from_row).transpose()
}

/// Which sessions [`list_public`] returns: one app and mode, optionally one user, created in `[since, until)`,
/// newest first, after `before` (the `(created_at, public_id)` of the last row of the previous page).
#[derive(Debug, Clone, Default)]
pub struct SessionFilter<'a> {
    /// Only this `user.externalId`.
    pub external_id: Option<&'a str>,
    /// Created at or after (Unix s).
    pub since: i64,
    /// Created before (Unix s).
    pub until: i64,
    /// Keyset cursor: rows strictly older than this `(created_at, public_id)`.
    pub before: Option<(i64, String)>,
    /// At most this many rows.
    pub limit: i64,
}

/// Sessions of `app_id` in `mode` matching `f`, newest first (sessions without a public id are left out).
///
/// # Errors
/// Database errors.
pub async fn list_public(db: &Db, app_id: &str, mode: Mode, f: &SessionFilter<'_>) -> anyhow::Result<Vec<LinkSession>> {
    let (before_at, before_id) = f.before.clone().unwrap_or((i64::MAX, String::new()));
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM link_sessions WHERE app_id = $1 AND mode = $2 AND public_id IS NOT NULL \
         AND ($3 = '' OR external_id = $3) AND created_at >= $4 AND created_at < $5 \
         AND (created_at < $6 OR (created_at = $6 AND ($7 = '' OR public_id < $7))) \
         ORDER BY created_at DESC, public_id DESC LIMIT $8"
    ))
    .bind(app_id)
    .bind(mode.as_str())
    .bind(f.external_id.unwrap_or(""))
    .bind(f.since)
    .bind(f.until)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit.clamp(1, 500))
    .fetch_all(&db.pool)
    .await
    .context("listing link sessions")?;
    rows.iter().map(from_row).collect()
}

/// Records the session's language (`en`, `es`, `ko`), chosen by the patient on its screens.
///
/// # Errors
/// Database errors.
pub async fn set_language(db: &Db, now: i64, s: &LinkSession, language: &str) -> anyhow::Result<()> {
    let mut options = serde_json::to_value(SessionOptions { language: language.to_string(), ..s.options.clone() })?;
    options["endpointFixed"] = serde_json::Value::Bool(s.endpoint_fixed);
    sqlx::query("UPDATE link_sessions SET options = $1, updated_at = $2 WHERE id = $3")
        .bind(options.to_string())
        .bind(now)
        .bind(&s.id)
        .execute(&db.pool)
        .await
        .context("setting the session's language")?;
    Ok(())
}

/// Moves a session to `step`, setting or clearing its exit code.
///
/// # Errors
/// Database errors.
pub async fn set_step(db: &Db, now: i64, id: &str, step: LinkStep, exit_code: Option<ExitCode>) -> anyhow::Result<()> {
    sqlx::query("UPDATE link_sessions SET step = $1, exit_code = $2, updated_at = $3 WHERE id = $4")
        .bind(step.as_str())
        .bind(exit_code.map(ExitCode::as_str))
        .bind(now)
        .bind(id)
        .execute(&db.pool)
        .await
        .context("updating link session step")?;
    Ok(())
}

/// Moves a session from `from` to `to` only if it is still at `from` (one atomic conditional update);
/// returns whether it moved.
///
/// # Errors
/// Database errors.
pub async fn advance(
    db: &Db,
    now: i64,
    id: &str,
    from: LinkStep,
    to: LinkStep,
    exit_code: Option<ExitCode>,
) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE link_sessions SET step = $1, exit_code = $2, updated_at = $3 WHERE id = $4 AND step = $5",
    )
    .bind(to.as_str())
    .bind(exit_code.map(ExitCode::as_str))
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(&db.pool)
    .await
    .context("advancing link session")?;
    Ok(done.rows_affected() == 1)
}

/// Records the endpoint the patient picked and moves to the payer step.
///
/// # Errors
/// Database errors.
pub async fn set_endpoint(db: &Db, now: i64, id: &str, endpoint_id: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE link_sessions SET endpoint_id = $1, step = $2, exit_code = NULL, updated_at = $3 WHERE id = $4",
    )
    .bind(endpoint_id)
    .bind(LinkStep::Payer.as_str())
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await
    .context("recording the chosen endpoint")?;
    Ok(())
}

/// Keeps a sealed copy of the session's `public_token` (aad binds it to the session id) and moves to `next_step`.
///
/// # Errors
/// Database errors.
pub async fn store_public_token<'e, E>(
    ex: E,
    cipher: &Cipher,
    now: i64,
    id: &str,
    token: &str,
    next_step: LinkStep,
) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let (sealed, key_id) = cipher.seal_str(token, id);
    sqlx::query(
        "UPDATE link_sessions SET public_token_enc = $1, public_token_key_id = $2, step = $3, exit_code = NULL, \
         updated_at = $4 WHERE id = $5",
    )
    .bind(sealed)
    .bind(key_id)
    .bind(next_step.as_str())
    .bind(now)
    .bind(id)
    .execute(ex)
    .await
    .context("storing the public token")?;
    Ok(())
}

/// Records the authorization a session's payer sign-in created (or `reused`: an existing one it renewed) and
/// moves it to [`LinkStep::Authorized`], only while the session is live and still waiting at the payer step (one
/// conditional update); returns whether it did. A session that was cancelled or ended meanwhile is left as it
/// is, and the caller rolls back.
///
/// # Errors
/// Database errors.
pub async fn attach_authorization<'e, E>(
    ex: E,
    now: i64,
    id: &str,
    authorization_id: &str,
    reused: bool,
) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE link_sessions SET authorization_id = $1, step = $2, updated_at = $3, authorization_reused = $6 \
         WHERE id = $4 AND step = $5 AND expires_at > $3",
    )
    .bind(authorization_id)
    .bind(LinkStep::Authorized.as_str())
    .bind(now)
    .bind(id)
    .bind(LinkStep::Payer.as_str())
    .bind(i64::from(reused))
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// "Connect another plan" (`multiplePlans`): moves a live session from [`LinkStep::Success`] back to
/// [`LinkStep::Search`] (one conditional update), counting the plan just linked and destroying the sealed copy of
/// its `public_token` (the page already has it). Returns whether it moved.
///
/// # Errors
/// Database errors.
pub async fn another_plan<'e, E>(ex: E, now: i64, id: &str) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE link_sessions SET step = $1, plans_linked = plans_linked + 1, authorization_reused = 0, \
         exit_code = NULL, public_token_enc = NULL, public_token_key_id = NULL, updated_at = $2 \
         WHERE id = $3 AND step = $4 AND expires_at > $2",
    )
    .bind(LinkStep::Search.as_str())
    .bind(now)
    .bind(id)
    .bind(LinkStep::Success.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a session that is still at step `from`: step `exited` with `exit_code`, its sealed `public_token`
/// destroyed (one conditional update); returns whether it moved.
///
/// # Errors
/// Database errors.
pub async fn end<'e, E>(ex: E, now: i64, id: &str, from: LinkStep, exit_code: ExitCode) -> anyhow::Result<bool>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE link_sessions SET step = $1, exit_code = $2, public_token_enc = NULL, public_token_key_id = NULL, \
         updated_at = $3 WHERE id = $4 AND step = $5",
    )
    .bind(LinkStep::Exited.as_str())
    .bind(exit_code.as_str())
    .bind(now)
    .bind(id)
    .bind(from.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes sessions that expired before `before` and led to nothing that must be kept (no consent record, no
/// authorization, no payer request left): abandoned ones. Sessions with a consent stay, as the consent's
/// context. Returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge_abandoned<'e, E>(ex: E, before: i64) -> anyhow::Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "DELETE FROM link_sessions WHERE expires_at < $1 AND authorization_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM consents c WHERE c.link_session_id = link_sessions.id) \
         AND NOT EXISTS (SELECT 1 FROM payer_auth_requests r WHERE r.link_session_id = link_sessions.id)",
    )
    .bind(before)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Opens the sealed public token of a session, if any.
pub fn public_token(cipher: &Cipher, s: &LinkSession) -> Option<secrecy::SecretString> {
    let (Some(enc), Some(kid)) = (&s.public_token_enc, &s.public_token_key_id) else { return None };
    match cipher.open_str(enc, kid, &s.id) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "cannot open a session's public token");
            None
        }
    }
}

/// Destroys the sealed `public_token` copy of a session once it is over.
///
/// # Errors
/// Database errors.
pub async fn clear_public_token(db: &Db, now: i64, id: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE link_sessions SET public_token_enc = NULL, public_token_key_id = NULL, updated_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Destroys the sealed `public_token` copies of every session that led to an authorization (when it is
/// exchanged, revoked or expunged).
///
/// # Errors
/// Database errors.
pub async fn clear_public_tokens_of_authorization<'e, E>(ex: E, now: i64, authorization_id: &str) -> anyhow::Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE link_sessions SET public_token_enc = NULL, public_token_key_id = NULL, updated_at = $1 \
         WHERE authorization_id = $2",
    )
    .bind(now)
    .bind(authorization_id)
    .execute(ex)
    .await?;
    Ok(())
}
