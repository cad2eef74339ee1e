//! Webhooks: durable outbox, HMAC-SHA256 signatures, retries with exponential backoff.
//!
//! Owner: [Lifecycle]. Compiled only with `ssr`.

use crate::server::startup::AppState;

/// Starts this part's background workers; each stops when `state.shutdown` is cancelled.
pub fn spawn_workers(_state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
