//! Sync: durable jobs that pull a patient's FHIR data from their payer.
//!
//! Owner: [Sync]. Compiled only with `ssr`.

use crate::server::startup::AppState;

/// Starts this part's background workers; each stops when `state.shutdown` is cancelled.
pub fn spawn_workers(_state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
