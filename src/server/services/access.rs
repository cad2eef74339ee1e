//! Who a Bearer token speaks for: a patient access token (`at_…`, one authorization) or an application token
//! (`app_…`, every live authorization of one app in one mode). Shared by the integrator API and the FHIR API,
//! which each answer an [`AccessError`] in their own form (RFC 6750 §3 JSON, or an OperationOutcome), both with
//! the `WWW-Authenticate` challenge of [`bearer_challenge`].

use axum::http::{header, HeaderMap};
use serde_json::Value;

use crate::{
    domain::Mode,
    server::{
        services::lifecycle::transitions::access_status_of,
        state::AppState,
        store::{
            authorizations::Authorization,
            tokens::{self, TokenKind, TokenRow},
        },
    },
};

/// Who a Bearer token speaks for.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A patient access token: exactly one authorization.
    Patient {
        /// The token row.
        token: TokenRow,
        /// Its authorization.
        authorization: Box<Authorization>,
    },
    /// An application token: every live authorization of `app_id` in `mode`.
    App {
        /// The token row.
        token: TokenRow,
        /// The app.
        app_id: String,
        /// The key mode it was issued under.
        mode: Mode,
    },
}

impl Principal {
    /// The app the token was issued to.
    pub fn app_id(&self) -> &str {
        match self {
            Principal::Patient { token, .. } | Principal::App { token, .. } => &token.app_id,
        }
    }
}

/// Why a request carries no usable Bearer token (RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No `Authorization: Bearer` credentials at all (answered without an `error` code).
    #[error("a Bearer access token is required")]
    Missing,
    /// `invalid_token`: unknown, expired or revoked, or its authorization is no longer readable; the text says
    /// why (a fixed sentence, never input or an identifier).
    #[error("{0}")]
    Invalid(&'static str),
    /// A failure of ours (database); logged by the surface, never shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AccessError {
    /// The `WWW-Authenticate` value for this error (RFC 6750 §3).
    pub fn challenge(&self) -> String {
        match self {
            AccessError::Missing => bearer_challenge(None, None),
            AccessError::Invalid(d) => bearer_challenge(Some("invalid_token"), Some(d)),
            AccessError::Internal(_) => bearer_challenge(None, None),
        }
    }
}

/// A `WWW-Authenticate: Bearer` value (RFC 6750 §3). Descriptions are our own fixed texts, never input.
pub fn bearer_challenge(error: Option<&str>, description: Option<&str>) -> String {
    let mut v = "Bearer realm=\"link\"".to_string();
    if let Some(e) = error {
        v.push_str(&format!(", error=\"{e}\""));
    }
    if let Some(d) = description {
        let clean: String = d.chars().filter(|c| *c != '"' && *c != '\\' && !c.is_control()).collect();
        v.push_str(&format!(", error_description=\"{clean}\""));
    }
    v
}

/// The Bearer token of a request, if the `Authorization` header is `Bearer`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?.trim();
    (!t.is_empty()).then_some(t)
}

/// Resolves the Bearer token of a request (patient `at_…` or application `app_…`). A patient token whose
/// authorization was revoked or expired is refused with the reason recorded on the authorization.
///
/// # Errors
/// See [`AccessError`].
pub async fn authenticate_bearer(state: &AppState, headers: &HeaderMap) -> Result<Principal, AccessError> {
    let Some(token) = bearer_token(headers) else { return Err(AccessError::Missing) };
    let now = state.clock.now();
    match TokenKind::of_token(token) {
        Some(TokenKind::Access) => {
            let (row, authorization) = tokens::verify_access(&state.db, now, token)
                .await?
                .ok_or(AccessError::Invalid("the access token is invalid, expired or revoked"))?;
            let authorization = authorization.ok_or(AccessError::Invalid("the authorization no longer exists"))?;
            // The lifecycle rules decide readability (ONE_TIME window, revocation, expiry) and say why not.
            let st = access_status_of(&authorization, now);
            if !st.readable {
                return Err(AccessError::Invalid(st.description()));
            }
            Ok(Principal::Patient { token: row, authorization: Box::new(authorization) })
        }
        Some(TokenKind::App) => {
            let row = tokens::verify(&state.db, now, TokenKind::App, token)
                .await?
                .ok_or(AccessError::Invalid("the application token is invalid, expired or revoked"))?;
            let mode = row.detail.get("mode").and_then(Value::as_str).and_then(Mode::parse).unwrap_or(Mode::Test);
            let app_id = row.app_id.clone();
            Ok(Principal::App { token: row, app_id, mode })
        }
        _ => Err(AccessError::Invalid("the access token is invalid, expired or revoked")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_is_quoted_and_clean() {
        assert_eq!(bearer_challenge(None, None), "Bearer realm=\"link\"");
        assert_eq!(
            bearer_challenge(Some("invalid_token"), Some("bad \"x\"")),
            "Bearer realm=\"link\", error=\"invalid_token\", error_description=\"bad x\""
        );
    }
}
