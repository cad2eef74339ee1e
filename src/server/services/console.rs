//! Access to the operator console: one-time sign-in links printed by `link-sdk console-link`, each bound to the
//! first browser that opens it, and the console sessions they become.
//!
//! - The link carries a 256-bit random token (`cl_…`), stored only as its SHA-256 hash, valid
//!   [`CONSOLE_LINK_TTL_SECS`] (10 minutes) and spent by one sign-in.
//! - Opening it (`GET`) gives the browser a binder (a 256-bit value in an HttpOnly cookie) and records its hash on
//!   the link, once: from then on only that browser can use the link; any other is refused, even before the
//!   first one signed in. Signing in (`POST`, which previewers and prefetchers do not send) spends the link in one
//!   conditional update that also checks the binder, and starts a console session: another 256-bit token in an
//!   HttpOnly, `SameSite=Strict` cookie, hash only on the server, valid [`CONSOLE_SESSION_TTL_SECS`] (8 hours)
//!   unless the operator signs out first.
//! - Every step, refusals included, is written to the audit trail by the console surface.

use crate::server::{
    platform::{crypto, db::Db},
    store::console_sign_ins,
};

/// How long a sign-in link stays usable, in seconds (10 minutes).
pub const CONSOLE_LINK_TTL_SECS: i64 = 600;
/// How long a console session lasts after sign-in, in seconds (8 hours).
pub const CONSOLE_SESSION_TTL_SECS: i64 = 8 * 3600;
/// Path of the sign-in page (the link is `{public_url}{SIGN_IN_PATH}?token=…`).
pub const SIGN_IN_PATH: &str = "/console/sign-in";

/// A new sign-in link.
#[derive(Clone)]
pub struct NewLink {
    /// The URL to open (holds the token: show it to the operator once, never log it).
    pub url: String,
    /// The row id (named in the audit trail).
    pub id: String,
    /// When it stops working (Unix s).
    pub expires_at: i64,
}

impl std::fmt::Debug for NewLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLink").field("id", &self.id).field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// Creates a sign-in link to the console of the server at `public_url`.
///
/// # Errors
/// Database errors.
pub async fn create_link(db: &Db, now: i64, public_url: &str) -> anyhow::Result<NewLink> {
    let token = crypto::random_token("cl_");
    let expires_at = now + CONSOLE_LINK_TTL_SECS;
    let id = console_sign_ins::create(db, now, &token, expires_at).await?;
    Ok(NewLink { url: format!("{}{SIGN_IN_PATH}?token={token}", public_url.trim_end_matches('/')), id, expires_at })
}

/// Why a sign-in link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No such link (or a malformed token).
    Unknown,
    /// Its time is over.
    Expired,
    /// It was already used to sign in.
    Used,
    /// Another browser opened it first.
    OtherBrowser,
}

impl Refused {
    /// The reason as recorded in the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Unknown => "unknown",
            Refused::Expired => "expired",
            Refused::Used => "used",
            Refused::OtherBrowser => "other_browser",
        }
    }
}

/// A link opened by a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The link's row id.
    pub id: String,
    /// A new binder for this browser to keep (set it as its cookie), when this request bound the link; `None`
    /// when the browser already holds the binder the link is bound to.
    pub new_binder: Option<String>,
}

fn well_formed(token: &str) -> bool {
    token.starts_with("cl_") && token.len() <= 100 && token[3..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The link of `token` if it can still be used (unspent, unexpired), or why not.
async fn usable(db: &Db, now: i64, token: &str) -> anyhow::Result<Result<console_sign_ins::SignIn, Refused>> {
    if !well_formed(token) {
        return Ok(Err(Refused::Unknown));
    }
    let Some(link) = console_sign_ins::by_link(db, token).await? else { return Ok(Err(Refused::Unknown)) };
    if link.used_at.is_some() {
        return Ok(Err(Refused::Used));
    }
    if link.link_expires_at <= now {
        return Ok(Err(Refused::Expired));
    }
    Ok(Ok(link))
}

/// Whether `binder` (a browser's cookie) is the one whose hash is `bound`.
fn holds(binder: Option<&str>, bound: &str) -> bool {
    binder.is_some_and(|b| crypto::ct_eq(crypto::hash_token(b).as_bytes(), bound.as_bytes()))
}

/// Checks link `token` for the browser holding `binder` (its cookie, if any) at `now`, and binds the link to it
/// if no browser opened it yet.
///
/// # Errors
/// [`Refused`] as `Ok(Err(..))`; database errors.
pub async fn open_link(db: &Db, now: i64, token: &str, binder: Option<&str>) -> anyhow::Result<Result<Opened, Refused>> {
    let link = match usable(db, now, token).await? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    match &link.binder_hash {
        Some(bound) if holds(binder, bound) => Ok(Ok(Opened { id: link.id, new_binder: None })),
        Some(_) => Ok(Err(Refused::OtherBrowser)),
        None => {
            let fresh = crypto::random_token("cb_");
            if console_sign_ins::bind(db, now, &link.id, &crypto::hash_token(&fresh)).await? {
                Ok(Ok(Opened { id: link.id, new_binder: Some(fresh) }))
            } else {
                // Another request bound (or spent) it between the read and the update.
                Ok(Err(Refused::OtherBrowser))
            }
        }
    }
}

/// A console session just started.
pub struct Started {
    /// The link's row id (the session's id in the audit trail).
    pub id: String,
    /// The session token for the browser's cookie (never logged).
    pub token: String,
    /// When the session ends (Unix s).
    pub expires_at: i64,
}

/// Spends link `token` for the browser holding `binder` (the link must have been opened by that browser) and
/// starts its console session.
///
/// # Errors
/// [`Refused`] as `Ok(Err(..))`; database errors.
pub async fn sign_in(db: &Db, now: i64, token: &str, binder: Option<&str>) -> anyhow::Result<Result<Started, Refused>> {
    let link = match usable(db, now, token).await? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    // Never opened, opened by another browser, or this browser lost its cookie: no sign-in.
    let (Some(bound), Some(binder)) = (link.binder_hash.as_deref(), binder) else { return Ok(Err(Refused::OtherBrowser)) };
    if !holds(Some(binder), bound) {
        return Ok(Err(Refused::OtherBrowser));
    }
    let session = crypto::random_token("cs_");
    let expires_at = now + CONSOLE_SESSION_TTL_SECS;
    if console_sign_ins::spend(db, now, &link.id, bound, &session, expires_at).await? {
        Ok(Ok(Started { id: link.id, token: session, expires_at }))
    } else {
        Ok(Err(Refused::Used))
    }
}

/// The id of the live console session whose cookie holds `token`.
///
/// # Errors
/// Database errors.
pub async fn session(db: &Db, now: i64, token: &str) -> anyhow::Result<Option<String>> {
    if !token.starts_with("cs_") || token.len() > 100 {
        return Ok(None);
    }
    console_sign_ins::session(db, now, token).await
}
