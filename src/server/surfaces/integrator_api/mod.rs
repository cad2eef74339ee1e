//! The integrator's `/link/*` API: exchange, introspect, token, revoke, users, re-sync and sync history, repair tokens, sessions (the steps of Link
//! sessions), connections URL, the plan directory with its health, the redirect flow's authorization endpoint,
//! and the test-mode `public_token` shortcut.
//!
//! - Errors are RFC 6749 §5.2 JSON (`{error, error_description}`, `Cache-Control: no-store`) through
//!   [`error::OAuthError`]; a failed HTTP Basic client authentication is 401 with `WWW-Authenticate: Basic`;
//!   Bearer-protected routes answer a missing or bad token with 401 and `WWW-Authenticate: Bearer` (RFC 6750 §3).
//! - Internal errors are logged with the request's span (and so its request id) and answered `server_error`.

pub mod auth;
pub mod clients;
pub mod directory;
pub mod error;
pub mod exchange;
pub mod grants;
pub mod hosted;
pub mod openapi;
pub mod repair;
pub mod sessions;
pub mod sync;
pub mod test_shortcut;
pub mod token;
pub mod users;

use axum::{
    http::StatusCode,
    routing::{get, post},
    Router,
};

use crate::server::state::AppState;

/// Route paths, shared by the router and the OpenAPI document so the two cannot drift apart.
pub mod paths {
    /// `POST` exchange a `public_token`.
    pub const EXCHANGE: &str = "/link/exchange";
    /// `GET` introspect a Bearer token.
    pub const INTROSPECT: &str = "/link/introspect";
    /// `POST` OAuth 2.0 token endpoint.
    pub const TOKEN: &str = "/link/token";
    /// `POST` revoke a patient's authorizations.
    pub const REVOKE: &str = "/link/revoke";
    /// `GET` one user's authorizations.
    pub const USERS: &str = "/link/users/{externalId}";
    /// `GET` OAuth 2.0 authorization endpoint (redirect flow).
    pub const AUTH: &str = "/link/auth";
    /// `GET` the start of a Link session in a browser: the hosted (`redirect_uri`) flow, or the modal's frame
    /// (routed by `surfaces::hosted_link`).
    pub const HOSTED_ENTRY: &str = "/link";
    /// `POST` a short-lived URL of the connections page for one user.
    pub const CONNECTIONS_URL: &str = "/link/connections-url";
    /// `GET` the plans a key's patients can pick, with their health.
    pub const ENDPOINTS: &str = "/link/endpoints";
    /// `GET` the key's Link sessions (of one user, in a time window) with their steps.
    pub const SESSIONS: &str = "/link/sessions";
    /// `GET` one Link session, by its public id, with its steps.
    pub const SESSION: &str = "/link/sessions/{id}";
    /// `POST` a re-sync of one MULTIPLE authorization now; `GET` its sync history.
    pub const SYNC: &str = "/link/sync";
    /// `POST` a single-use repair token for one authorization (repair mode).
    pub const REPAIR: &str = "/link/repair";
    /// `POST` a hosted (re-connect) link: a URL that runs the whole Link flow for one user.
    pub const HOSTED_LINK: &str = "/link/hosted";
    /// `POST` test-mode shortcut minting a `public_token` for a sandbox member.
    pub const TEST_PUBLIC_TOKEN: &str = "/link/test/public_token";
}


/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::EXCHANGE, post(exchange::exchange))
        .route(paths::INTROSPECT, get(exchange::introspect))
        .route(paths::TOKEN, post(token::token))
        .route(paths::REVOKE, post(users::revoke))
        .route(paths::USERS, get(users::users))
        .route(paths::SESSIONS, get(sessions::list))
        .route(paths::SESSION, get(sessions::session))
        .route(paths::AUTH, get(auth::auth))
        .route(paths::TEST_PUBLIC_TOKEN, post(test_shortcut::test_public_token))
        .route(paths::CONNECTIONS_URL, post(users::connections_url))
        .route(paths::ENDPOINTS, get(directory::endpoints))
        .route(paths::SYNC, post(sync::request).get(sync::history))
        .route(paths::REPAIR, post(repair::repair))
        .route(paths::HOSTED_LINK, post(hosted::create))
        // A wrong method gets the same RFC 6749 §5.2 JSON body as every other error here (axum keeps `Allow`).
        .method_not_allowed_fallback(|| async {
            error::OAuthError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "this endpoint does not accept this HTTP method (see /openapi.json)",
            )
        })
}
