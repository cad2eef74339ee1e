//! Hosted (re-connect) links: a URL an integrator's backend asks for (`POST /link/hosted`) and sends to a patient by
//! email or SMS. Opening it runs the whole Link flow top-level and ends at the app's registered `redirect_uri`
//! with a `public_token` (or on the flow's own "done" screen when the app has none); the token also goes to the
//! app's backend in a `link.completed` webhook (queued by [`link_flow`] when the payer authorizes).
//!
//! Invariants:
//! - The URL's token is 256 random bits, stored only as its SHA-256 hash; it is a bearer secret, never logged.
//! - Single use: the first open claims the link for the Link session it starts (one conditional update) and hands
//!   that browser the session's binder; every later open is refused unless it comes from that same browser while
//!   the session is still under way (a reload resumes it). A link that expired before its first open never starts
//!   a session.

use secrecy::SecretString;

use crate::{
    domain::{Mode, Usage},
    server::{
        platform::crypto,
        services::{insights, link_flow},
        state::AppState,
        store::{
            authorizations,
            hosted_links::{self, HostedLink, NewHostedLink},
            link_sessions::{self, LinkSession, NewSession, SessionOptions},
        },
    },
};

/// Lifetime of a hosted link when `expires_in` is not given, in seconds (7 days).
pub const DEFAULT_TTL_SECS: i64 = 7 * 86_400;
/// Longest lifetime a hosted link may be given, in seconds (30 days).
pub const MAX_TTL_SECS: i64 = 30 * 86_400;
/// How long a link is kept after its first-open window ended, in seconds (30 days): until then an open shows
/// "expired" or "already used"; after it, "not valid".
pub const PURGE_AFTER_SECS: i64 = 30 * 86_400;
/// Path of a hosted link before its token.
pub const PATH_PREFIX: &str = "/link/h/";

/// Prefix of a link's token (logged paths redact segments that start with it, `platform::telemetry`).
const TOKEN_PREFIX: &str = "hlt_";
/// Length of a link's token after its prefix: base64url of 32 random bytes.
const TOKEN_RANDOM_LEN: usize = 43;

/// Whether `token` has the shape of a hosted link's token, `hlt_` and 43 base64url characters (checked before any
/// lookup).
pub fn valid_token(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|r| {
        r.len() == TOKEN_RANDOM_LEN && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What the integrator asked for (already checked by the API surface).
#[derive(Debug)]
pub struct LinkRequest<'a> {
    /// The integrator's user id.
    pub external_id: &'a str,
    /// `ONE_TIME` or `MULTIPLE`.
    pub usage: Usage,
    /// A fixed plan of the key's mode, or `None` for the plan search.
    pub endpoint_id: Option<&'a str>,
    /// Lifetime in seconds, within `1..=MAX_TTL_SECS`.
    pub ttl_secs: i64,
    /// Repair mode: the authorization the link renews (from a redeemed repair token; then `external_id`, `usage`
    /// and `endpoint_id` are that authorization's).
    pub repairs: Option<&'a str>,
}

/// A new hosted link.
pub struct Created {
    /// `hl_…`, the link's public id (webhooks carry it).
    pub id: String,
    /// The URL to send to the patient (carries the token: a bearer secret until its first open).
    pub url: SecretString,
    /// When it stops opening (Unix s).
    pub expires_at: i64,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created").field("id", &self.id).field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Creates a hosted link of app `app_id` in `mode`, ending at `redirect_uri` (the app's registered one, if any).
///
/// # Errors
/// Database errors.
pub async fn create(
    state: &AppState,
    app_id: &str,
    mode: Mode,
    redirect_uri: Option<&str>,
    req: LinkRequest<'_>,
) -> anyhow::Result<Created> {
    let now = state.clock.now();
    let token = crypto::random_token(TOKEN_PREFIX);
    let expires_at = now + req.ttl_secs.clamp(1, MAX_TTL_SECS);
    let new = NewHostedLink {
        app_id,
        mode,
        external_id: req.external_id,
        usage: req.usage,
        endpoint_id: req.endpoint_id,
        redirect_uri,
        expires_at,
        repairs: req.repairs,
    };
    let id = hosted_links::insert(&state.db, now, &token, new).await?;
    let url = SecretString::from(format!("{}{PATH_PREFIX}{token}", state.public_url));
    Ok(Created { id, url, expires_at })
}

/// Deletes the links whose first-open window ended more than [`PURGE_AFTER_SECS`] before `now` (the sweep's
/// housekeeping). Returns how many.
///
/// # Errors
/// Database errors.
pub async fn purge(state: &AppState, now: i64) -> anyhow::Result<u64> {
    hosted_links::purge_expired(&state.db, now - PURGE_AFTER_SECS).await
}

/// What opening a hosted link leads to.
pub enum Opened {
    /// A new Link session for this browser: send it to its first screen with the session's binder.
    Started {
        /// The session.
        sid: String,
        /// Its binder, for this browser only (a bearer secret).
        binder: SecretString,
    },
    /// This browser's own session, still under way (a reload): back to its screen.
    Resumed {
        /// The session.
        sid: String,
    },
    /// Opened before by another browser, or already finished: the "already used" page.
    Used {
        /// The language of the link's session when this is the browser it is bound to (the patient's choice there);
        /// `None` for another browser, which gets its own language.
        language: Option<String>,
    },
    /// Expired before its first open.
    Expired,
    /// No such link.
    Unknown,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Started { sid, .. } => f.debug_struct("Started").field("sid", sid).finish_non_exhaustive(),
            Opened::Resumed { sid } => f.debug_struct("Resumed").field("sid", sid).finish(),
            Opened::Used { language } => f.debug_struct("Used").field("language", language).finish(),
            Opened::Expired => f.write_str("Expired"),
            Opened::Unknown => f.write_str("Unknown"),
        }
    }
}

/// Opens the hosted link behind `token` in a browser: the first open starts its Link session (in `language`)
/// and claims the link for it; a later one resumes that session when `bound` says the request comes from the
/// browser it is bound to and the session is still under way, and is refused otherwise.
///
/// # Errors
/// Database errors.
pub async fn open(
    state: &AppState,
    token: &str,
    language: &str,
    bound: impl Fn(&LinkSession) -> bool,
) -> anyhow::Result<Opened> {
    if !valid_token(token) {
        return Ok(Opened::Unknown);
    }
    let Some(link) = hosted_links::by_token(&state.db, token).await? else { return Ok(Opened::Unknown) };
    let now = state.clock.now();
    if let Some(sid) = &link.link_session_id {
        return claimed(state, sid, now, &bound).await;
    }
    if link.expires_at <= now {
        return Ok(Opened::Expired);
    }
    let (binder, binder_hash) = link_flow::new_binder();
    let nonce = crypto::random_id(16);
    // A repair asks for what the first link asked for, and skips the explainer (as `repairToken` in `create`).
    let requested_resources = match &link.repairs {
        Some(id) => authorizations::resource_types(&state.db, id).await?,
        None => Vec::new(),
    };
    let options = SessionOptions {
        auto_exit: true,
        skip_syncing: false,
        skip_explainer: link.repairs.is_some(),
        requested_resources,
        // The flow ends with one redirect carrying one result.
        multiple_plans: false,
        language: language.to_string(),
    };
    let mut tx = state.db.begin_write().await?;
    let sid = link_flow::open_session(&mut tx, now, session_of(&link, options, &nonce, &binder_hash), link.repairs.as_deref()).await?;
    if !hosted_links::claim(&mut *tx, now, &link.id, &sid).await? {
        // Another first open won meanwhile (or the link just expired): this one started nothing.
        tx.rollback().await?;
        return match hosted_links::by_token(&state.db, token).await?.and_then(|l| l.link_session_id) {
            Some(sid) => claimed(state, &sid, now, &bound).await,
            None => Ok(Opened::Expired),
        };
    }
    tx.commit().await?;
    insights::opened(&state.db, now, &sid).await;
    Ok(Opened::Started { sid, binder })
}

/// The Link session a hosted link starts: top-level, ending at the link's `redirect_uri` (or its own "done"
/// screen), bound to the browser holding the binder whose hash is `binder_hash`.
fn session_of<'a>(link: &'a HostedLink, options: SessionOptions, nonce: &'a str, binder_hash: &'a str) -> NewSession<'a> {
    NewSession {
        app_id: &link.app_id,
        mode: link.mode,
        external_id: &link.external_id,
        usage: link.usage,
        options,
        endpoint_id: link.endpoint_id.as_deref(),
        host_origin: None,
        redirect_uri: link.redirect_uri.as_deref(),
        client_state: None,
        nonce,
        code_challenge: None,
        binder_hash: Some(binder_hash),
    }
}

/// An open of a link already claimed by session `sid`: resumed in its own browser while under way, else used.
async fn claimed(state: &AppState, sid: &str, now: i64, bound: &impl Fn(&LinkSession) -> bool) -> anyhow::Result<Opened> {
    let Some(s) = link_sessions::get(&state.db, sid).await? else { return Ok(Opened::Used { language: None }) };
    if !bound(&s) {
        return Ok(Opened::Used { language: None });
    }
    if s.expires_at > now && !s.step.is_ended() {
        return Ok(Opened::Resumed { sid: s.id });
    }
    Ok(Opened::Used { language: Some(s.options.language.clone()) })
}
