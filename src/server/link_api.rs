//! The integrator's /link/* API: exchange, introspect, token, revoke, users, auth.
//!
//! Owner: [Integrator API]. Compiled only with `ssr`.

use axum::Router;

use super::startup::AppState;

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
}
