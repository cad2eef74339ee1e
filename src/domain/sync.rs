//! [`SyncStatus`], [`SkippedType`], [`IncompleteType`], [`SyncStats`] and [`SyncChanges`]: the outcome of a sync
//! job (`sync_jobs.status`, `.skipped`, `.incomplete`, `.stats`, `.changes`).

use serde::{Deserialize, Serialize};

use super::spelling::spelled_enum;

spelled_enum! {
    /// Where a sync job is.
    pub enum SyncStatus {
        /// Queued, not started.
        Pending = "pending",
        /// Running (or paused with its cursor saved after a shutdown or a lost instance, due again at once).
        Syncing = "syncing",
        /// Paused with its cursor saved because the payer asked for a wait (`Retry-After`,
        /// `x-ms-retry-after-ms`) longer than a worker holds on; due again at the job's `run_after`.
        Delayed = "delayed",
        /// Every type fetched.
        Complete = "complete",
        /// Finished, but some types were skipped (see [`SkippedType`]) or their paging stopped early (see
        /// [`IncompleteType`]).
        Partial = "partial",
        /// Ended without the data (the job's exit code says why).
        Failed = "failed",
    }
}

impl SyncStatus {
    /// Whether the job has not finished yet (the FHIR API answers 429 while the first one runs).
    pub fn is_running(self) -> bool {
        matches!(self, SyncStatus::Pending | SyncStatus::Syncing | SyncStatus::Delayed)
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

/// A resource type whose paging stopped before the payer's last page (JSON in `sync_jobs.incomplete`): what was
/// read is stored, the rest was not fetched, and the job ends `partial`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncompleteType {
    /// The FHIR resource type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Why the paging stopped, in words for an operator (a repeated `next` link, the page cap).
    pub reason: String,
}

/// What a sync cost at the payer, for an operator to see a slow payer (JSON in `sync_jobs.stats`; every
/// counter adds up over the job's runs, resumptions included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStats {
    /// Requests sent again after a 5xx, a transport error or a short `429`/`503` wait.
    #[serde(default)]
    pub retries: u64,
    /// Times a search page was asked again with half its `_count` after a timeout.
    #[serde(default)]
    pub page_size_reductions: u64,
    /// `429`/`503` answers that asked for a wait (in place, or by rescheduling the job as `delayed`).
    #[serde(default)]
    pub rate_limit_waits: u64,
    /// Seconds those waits asked for, added up (each capped).
    #[serde(default)]
    pub rate_limit_wait_secs: u64,
}

/// What a sync changed in the stored data (JSON in `sync_jobs.changes`; every counter adds up over the job's
/// runs). Each resource the payer sent is counted once as `added` (not stored before), `updated` (stored with
/// other content) or `unchanged` (the same JSON, or an older version than the one stored); `removed` counts
/// stored resources of a fully fetched type that the payer no longer returned (deleted at the end of the sync).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncChanges {
    /// Resources stored for the first time.
    #[serde(default)]
    pub added: u64,
    /// Resources stored before, replaced by different content.
    #[serde(default)]
    pub updated: u64,
    /// Resources sent again with the same content (or an older version, not stored).
    #[serde(default)]
    pub unchanged: u64,
    /// Stored resources the payer no longer returned, deleted.
    #[serde(default)]
    pub removed: u64,
}

/// How a sync asked the payer for each type (JSON in `sync_jobs.incremental`; `None` on a job = a full sync).
/// An incremental sync searches `types` with `_lastUpdated=ge{since}`: only what the payer changed since, so
/// nothing is found missing (no `removed`) for those types; the other types are read in full.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incremental {
    /// The FHIR `instant` the changes are asked from (`YYYY-MM-DDThh:mm:ssZ`): when the previous sync with
    /// data started, less a margin for the payer's clock and indexing delay.
    pub since: String,
    /// The types searched for changes only, in sync order.
    pub types: Vec<String>,
}

impl SyncChanges {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: SyncChanges) {
        self.added += other.added;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.removed += other.removed;
    }
}

impl SyncStats {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: SyncStats) {
        self.retries += other.retries;
        self.page_size_reductions += other.page_size_reductions;
        self.rate_limit_waits += other.rate_limit_waits;
        self.rate_limit_wait_secs += other.rate_limit_wait_secs;
    }
}
