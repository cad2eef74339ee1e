//! Link sessions (`link_sessions`): one row per `open()` (or per hosted-flow visit) holding all flow state,
//! so any instance can serve any step and a restart loses nothing. Also the consent records (`consents`).
//!
//! The session id is a 256-bit random bearer value (`ls_…`): it travels in the hosted page's URL instead of a
//! third-party cookie (Safari blocks those in iframes), so whoever holds it can drive the flow and read its
//! `public_token`. It is never logged.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::{domain::{ExitCode, Mode, Usage}, server::{platform::{crypto, db::Db}, state::AppState}};

/// How long a session may stay open before it expires (seconds). Covers a slow payer sign-in.
pub const SESSION_TTL_SECS: i64 = 3600;

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
    /// `en` or `es`: from the `language` option, else `Accept-Language` at creation.
    pub language: String,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            auto_exit: true,
            skip_syncing: false,
            skip_explainer: false,
            requested_resources: Vec::new(),
            language: "en".into(),
        }
    }
}

/// Steps of the flow (`link_sessions.step`).
pub mod step {
    /// Consent screen.
    pub const CONSENT: &str = "consent";
    /// Explainer screen.
    pub const EXPLAINER: &str = "explainer";
    /// Search and select a plan.
    pub const SEARCH: &str = "search";
    /// `endpoint` was given: confirm and connect.
    pub const CONNECT: &str = "connect";
    /// The payer's sign-in is open in the popup.
    pub const PAYER: &str = "payer";
    /// Set by `oauth::complete` before we mint the public token.
    pub const AUTHORIZED: &str = "authorized";
    /// The sync job runs.
    pub const SYNCING: &str = "syncing";
    /// Done; the public token is ready.
    pub const SUCCESS: &str = "success";
    /// A failure the patient can recover from (pick another plan) or exit with its code.
    pub const ERROR: &str = "error";
    /// Ended without success (`exit_code` set).
    pub const EXITED: &str = "exited";
    /// Ended with success and the integrator has been told.
    pub const DONE: &str = "done";
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
    /// Current step (see [`step`]).
    pub step: String,
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
}

/// Creates a session and returns its id. The first step is always consent.
///
/// # Errors
/// Database errors.
pub async fn create(db: &Db, now: i64, new: NewSession<'_>) -> anyhow::Result<String> {
    let id = crypto::random_token("ls_");
    let mut options = serde_json::to_value(&new.options)?;
    // Remember whether the endpoint came from the integrator: then search is skipped and retry reconnects.
    options["endpointFixed"] = serde_json::Value::Bool(new.endpoint_id.is_some());
    sqlx::query(
        "INSERT INTO link_sessions (id, app_id, mode, external_id, usage, options, endpoint_id, host_origin, \
         redirect_uri, client_state, nonce, step, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
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
    .bind(step::CONSENT)
    .bind(now + SESSION_TTL_SECS)
    .bind(now)
    .execute(&db.pool)
    .await
    .context("inserting link session")?;
    Ok(id)
}

/// Loads a session by id (expired ones too: callers decide).
///
/// # Errors
/// Database errors.
pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<LinkSession>> {
    if !id.starts_with("ls_") || id.len() > 100 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT id, app_id, mode, external_id, usage, options, endpoint_id, host_origin, redirect_uri, \
         client_state, nonce, step, authorization_id, exit_code, public_token_enc, public_token_key_id, expires_at \
         FROM link_sessions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&db.pool)
    .await
    .context("reading link session")?;
    let Some(row) = row else { return Ok(None) };
    let options_text: String = row.try_get("options")?;
    let options_json: serde_json::Value = serde_json::from_str(&options_text).unwrap_or_default();
    let endpoint_fixed = options_json.get("endpointFixed").and_then(|v| v.as_bool()).unwrap_or(false);
    let options: SessionOptions = serde_json::from_value(options_json).unwrap_or_default();
    let mode: String = row.try_get("mode")?;
    let usage: String = row.try_get("usage")?;
    let exit_code: Option<String> = row.try_get("exit_code")?;
    Ok(Some(LinkSession {
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
        step: row.try_get("step")?,
        authorization_id: row.try_get("authorization_id")?,
        exit_code: exit_code.as_deref().and_then(ExitCode::parse),
        public_token_enc: row.try_get("public_token_enc")?,
        public_token_key_id: row.try_get("public_token_key_id")?,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// Moves a session to `step`, setting or clearing its exit code.
///
/// # Errors
/// Database errors.
pub async fn set_step(db: &Db, now: i64, id: &str, step: &str, exit_code: Option<ExitCode>) -> anyhow::Result<()> {
    sqlx::query("UPDATE link_sessions SET step = $1, exit_code = $2, updated_at = $3 WHERE id = $4")
        .bind(step)
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
pub async fn advance(db: &Db, now: i64, id: &str, from: &str, to: &str, exit_code: Option<ExitCode>) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE link_sessions SET step = $1, exit_code = $2, updated_at = $3 WHERE id = $4 AND step = $5",
    )
    .bind(to)
    .bind(exit_code.map(ExitCode::as_str))
    .bind(now)
    .bind(id)
    .bind(from)
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
    .bind(step::PAYER)
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await
    .context("recording the chosen endpoint")?;
    Ok(())
}

/// Keeps a sealed copy of the session's public token (AAD binds it to the session id).
///
/// # Errors
/// Database errors.
pub async fn store_public_token(state: &AppState, id: &str, token: &str, next_step: &str) -> anyhow::Result<()> {
    let (sealed, key_id) = state.cipher.seal_str(token, id);
    sqlx::query(
        "UPDATE link_sessions SET public_token_enc = $1, public_token_key_id = $2, step = $3, exit_code = NULL, \
         updated_at = $4 WHERE id = $5",
    )
    .bind(sealed)
    .bind(key_id)
    .bind(next_step)
    .bind(state.clock.now())
    .bind(id)
    .execute(&state.db.pool)
    .await
    .context("storing the public token")?;
    Ok(())
}

/// Opens the sealed public token of a session, if any.
pub fn public_token(state: &AppState, s: &LinkSession) -> Option<secrecy::SecretString> {
    let (Some(enc), Some(kid)) = (&s.public_token_enc, &s.public_token_key_id) else { return None };
    match state.cipher.open_str(enc, kid, &s.id) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "cannot open a session's public token");
            None
        }
    }
}

/// Destroys the sealed public token once the session is over.
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

/// A consent choice to record.
pub struct NewConsent<'a> {
    pub session: &'a LinkSession,
    pub scope: &'a str,
    pub text: &'a str,
    pub language: &'a str,
    pub given: bool,
    pub signature_name: Option<&'a str>,
}

/// Records the patient's choice with the exact text shown, its version and SHA-256 hash.
///
/// # Errors
/// Database errors.
pub async fn record_consent(db: &Db, now: i64, c: NewConsent<'_>) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO consents (id, link_session_id, app_id, external_id, usage, scope, text_version, text_hash, \
         text, language, choice, signature_name, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&id)
    .bind(&c.session.id)
    .bind(&c.session.app_id)
    .bind(&c.session.external_id)
    .bind(c.session.usage.as_str())
    .bind(c.scope)
    .bind(crate::i18n::CONSENT_TEXT_VERSION)
    .bind(crypto::hash_token(c.text))
    .bind(c.text)
    .bind(c.language)
    .bind(if c.given { "given" } else { "declined" })
    .bind(c.signature_name)
    .bind(now)
    .execute(&db.pool)
    .await
    .context("recording consent")?;
    Ok(id)
}

/// Whether the patient gave consent in this session.
///
/// # Errors
/// Database errors.
pub async fn consent_given(db: &Db, session_id: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM consents WHERE link_session_id = $1 AND choice = 'given'")
        .bind(session_id)
        .fetch_one(&db.pool)
        .await?;
    let n: i64 = row.try_get("n")?;
    Ok(n > 0)
}

/// Links the session's given consent to the authorization it led to.
///
/// # Errors
/// Database errors.
pub async fn attach_consent(db: &Db, session_id: &str, authorization_id: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE consents SET authorization_id = $1 WHERE link_session_id = $2 AND choice = 'given' \
         AND authorization_id IS NULL",
    )
    .bind(authorization_id)
    .bind(session_id)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The consent `scope` recorded for a session: SMART patient scopes of what will be read.
pub fn consent_scope(s: &LinkSession) -> String {
    let mut scopes: Vec<String> = if s.options.requested_resources.is_empty() {
        vec!["patient/*.read".into()]
    } else {
        s.options.requested_resources.iter().map(|r| format!("patient/{r}.read")).collect()
    };
    if s.usage == Usage::Multiple {
        scopes.push("offline_access".into());
    }
    scopes.join(" ")
}
