//! The demo integrator app at /demo, and local-mode bootstrap (demo app with test keys).
//!
//! Owner: [Operators]. Compiled only with `ssr`.

use axum::Router;

use super::startup::AppState;

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Local-mode start-up: creates the demo app with test keys once and returns what the banner prints.
///
/// # Errors
/// Database errors.
pub async fn bootstrap_local(_state: &AppState) -> anyhow::Result<Vec<String>> {
    Ok(Vec::new())
}
