//! Repair mode: bringing a patient back to renew an existing authorization's payer grant (the payer refused a
//! refresh, its grant is about to end, or the patient wants to consent again) without a second authorization.
//!
//! The integrator's backend asks for a repair token ([`issue`]); the page opens Link with it
//! (`FlexpaLink.create({repairToken})`), which [`redeem`]s it as the session starts: single use, one app's, and
//! only while the authorization is repairable (`Authorization::is_repairable`, the one rule). The payer callback
//! of such a session renews that authorization (`link_flow`, same payer `patient` only).
//!
//! Repair tokens are ours like every token: 256 random bits behind `rpt_`, stored only as a hash
//! (`store::tokens`), valid [`REPAIR_TOKEN_TTL_SECS`].

use secrecy::SecretString;
use serde_json::json;

use crate::{
    domain::{ExitCode, Mode, Usage},
    server::{
        platform::crypto,
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations::{self, Authorization},
            tokens::{self, TokenKind},
        },
    },
};

pub use crate::server::store::tokens::REPAIR_TOKEN_TTL_SECS;

/// Why a repair token was not issued: a sentence for the integrator (RFC 6749 `error_description`).
pub fn refusal(a: &Authorization, now: i64) -> Option<&'static str> {
    if a.usage != crate::domain::Usage::Multiple {
        Some("ONE_TIME authorizations cannot be repaired: open Link again for a new one")
    } else if a.is_ended() {
        Some("the authorization ended (revoked or expired): open Link again for a new one")
    } else if !a.is_repairable(now) {
        Some("the authorization is past its end: open Link again for a new one")
    } else {
        None
    }
}

/// Issues a repair token for authorization `a` (the caller checked it is the app's; it must be repairable, see
/// [`refusal`]), valid [`REPAIR_TOKEN_TTL_SECS`], with a `repair.requested` audit record. The token is shown
/// once and never stored.
///
/// # Errors
/// Database errors.
pub async fn issue(state: &AppState, a: &Authorization, request_id: Option<&str>) -> anyhow::Result<SecretString> {
    let now = state.clock.now();
    let mut tx = state.db.begin_write().await?;
    let token = tokens::issue(
        &mut *tx,
        now,
        TokenKind::Repair,
        &a.app_id,
        Some(&a.id),
        Some(REPAIR_TOKEN_TTL_SECS),
        json!({"state": a.state.as_str()}),
    )
    .await?;
    let entry = AuditEntry {
        actor: &format!("app:{}", a.app_id),
        action: "repair.requested",
        app_id: Some(&a.app_id),
        authorization_id: Some(&a.id),
        request_id,
        detail: Some(json!({"state": a.state.as_str(), "expires_in": REPAIR_TOKEN_TTL_SECS})),
    };
    audit::record(&mut *tx, now, entry).await?;
    tx.commit().await?;
    Ok(SecretString::from(token))
}

/// What the caller named beside a repair token (`externalId`, `usage`, `endpoint`), each `None` when left out;
/// each named one must be the repaired authorization's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Named<'a> {
    /// `externalId` (compared trimmed).
    pub external_id: Option<&'a str>,
    /// `usage` (`ONE_TIME` / `MULTIPLE`).
    pub usage: Option<&'a str>,
    /// `endpoint` (an endpoint id).
    pub endpoint_id: Option<&'a str>,
}

/// Redeems `token` for a Link session of app `app_id` in `mode` that is about to start: checked to be that
/// app's first (so another app's key cannot burn it), and `named` to be its authorization's (so a wrong
/// `externalId` cannot burn it either), then consumed (single use, one conditional update), then its
/// authorization must still be repairable. Returns the authorization to repair.
///
/// # Errors
/// The outer `Result`: database errors. The inner, with the token left unspent unless said: `INVALID_USER`,
/// `INVALID_USAGE` or `INVALID_ENDPOINT` when `named` differs from the authorization; `INVALID_REPAIR_TOKEN` for a
/// token that is malformed, unknown, another app's or mode's, expired or used, or (spent) whose authorization
/// cannot be repaired any more.
pub async fn redeem(
    state: &AppState,
    token: &str,
    app_id: &str,
    mode: Mode,
    named: Named<'_>,
) -> anyhow::Result<Result<Authorization, ExitCode>> {
    let now = state.clock.now();
    let refused = Err(ExitCode::InvalidRepairToken);
    if token.len() > 128 {
        return Ok(refused);
    }
    let Some(row) = tokens::verify(&state.db, now, TokenKind::Repair, token).await? else { return Ok(refused) };
    if !crypto::ct_eq(row.app_id.as_bytes(), app_id.as_bytes()) {
        return Ok(refused);
    }
    let Some(id) = row.authorization_id else { return Ok(refused) };
    let Some(a) = authorizations::get(&state.db, &id).await?.filter(|a| a.mode == mode) else { return Ok(refused) };
    if named.external_id.is_some_and(|e| e.trim() != a.external_id) {
        return Ok(Err(ExitCode::InvalidUser));
    }
    if named.usage.is_some_and(|u| Usage::parse(u) != Some(a.usage)) {
        return Ok(Err(ExitCode::InvalidUsage));
    }
    if named.endpoint_id.is_some_and(|e| e != a.endpoint_id) {
        return Ok(Err(ExitCode::InvalidEndpoint));
    }
    if tokens::consume(&state.db, now, TokenKind::Repair, token).await?.is_err() || !a.is_repairable(now) {
        return Ok(refused);
    }
    Ok(Ok(a))
}
