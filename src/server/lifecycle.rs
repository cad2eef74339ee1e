//! Usage rules and expiry: ONE_TIME expunge after 24 h, MULTIPLE refresh schedule, revocation.
//!
//! Owner: [Lifecycle]. Compiled only with `ssr`.

use crate::server::startup::AppState;

/// Starts this part's background workers; each stops when `state.shutdown` is cancelled.
pub fn spawn_workers(_state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
