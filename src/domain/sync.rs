//! [`SyncStatus`] and [`SkippedType`]: the outcome of a sync job (`sync_jobs.status`, `sync_jobs.skipped`).

use serde::{Deserialize, Serialize};

use super::spelling::spelled_enum;

spelled_enum! {
    /// Where a sync job is.
    pub enum SyncStatus {
        /// Queued, not started.
        Pending = "pending",
        /// Running (or paused with its cursor saved, waiting for `run_after`).
        Syncing = "syncing",
        /// Every type fetched.
        Complete = "complete",
        /// Finished, but some types were skipped (see [`SkippedType`]).
        Partial = "partial",
        /// Ended without the data (the job's exit code says why).
        Failed = "failed",
    }
}

impl SyncStatus {
    /// Whether the job has not finished yet (the FHIR API answers 429 while the first one runs).
    pub fn is_running(self) -> bool {
        matches!(self, SyncStatus::Pending | SyncStatus::Syncing)
    }

    /// Whether it finished with data (`complete` or `partial`).
    pub fn succeeded(self) -> bool {
        matches!(self, SyncStatus::Complete | SyncStatus::Partial)
    }
}

/// A resource type a sync could not fetch, and why (JSON in `sync_jobs.skipped`; field order is the stored
/// order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedType {
    /// Why, in words for an operator (never health data).
    pub reason: String,
    /// The HTTP status the payer answered, when there was one.
    pub status: Option<u16>,
    /// The FHIR resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
}
