//! The built-in sandbox payers: SMART on FHIR authorization servers and FHIR R4 servers with synthetic members.
//!
//! Owner: [Sandbox payer]. Compiled only with `ssr`.

use axum::Router;

use crate::server::startup::AppState;

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
}

/// Registers the built-in sandbox payers as test-mode endpoints of this server's directory.
///
/// # Errors
/// Database errors.
pub async fn register_endpoints(_state: &AppState) -> anyhow::Result<()> {
    Ok(())
}
