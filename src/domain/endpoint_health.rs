//! [`HealthStatus`] and [`AttemptOutcome`]: how an endpoint of the directory is doing
//! (`endpoint_health.status`), and how one patient's try at it ended (`endpoint_attempts.outcome`).

use super::spelling::spelled_enum;

spelled_enum! {
    /// An endpoint's health, from its recent link attempts and its last `endpoints check`.
    pub enum HealthStatus {
        /// Patients connect: most recent attempts succeeded (or, with too few attempts, the check passed).
        Ok = "ok",
        /// Some recent attempts failed: patients may have to try again.
        Degraded = "degraded",
        /// Recent attempts fail (or the check found a problem that stops every link).
        Down = "down",
        /// Not enough attempts yet and never checked.
        Unchecked = "unchecked",
    }
}

spelled_enum! {
    /// Where one link attempt at an endpoint is, from the hand-off to the end of its first sync.
    pub enum AttemptOutcome {
        /// Handed off to the payer; no answer yet.
        Pending = "pending",
        /// The payer authorized; the first sync has not ended.
        Connected = "connected",
        /// The first sync ended with data.
        Synced = "synced",
        /// The endpoint failed the patient (discovery, the payer's errors, the code exchange, the sync).
        Failed = "failed",
        /// The patient said no at the payer, or left: not the endpoint's fault, so not counted either way.
        Declined = "declined",
    }
}

impl AttemptOutcome {
    /// Whether it counts as a success (the patient got connected).
    pub fn succeeded(self) -> bool {
        matches!(self, AttemptOutcome::Connected | AttemptOutcome::Synced)
    }

    /// Whether it counts at all in the success rate (it ended, by the endpoint's doing).
    pub fn counts(self) -> bool {
        matches!(self, AttemptOutcome::Connected | AttemptOutcome::Synced | AttemptOutcome::Failed)
    }
}
