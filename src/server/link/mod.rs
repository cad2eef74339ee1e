//! The hosted Link flow: link.js, link sessions, consent records, the payer handoff and callback.
//!
//! Owner: [Link flow]. Compiled only with `ssr`.

use axum::Router;

use crate::server::startup::AppState;

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
}
