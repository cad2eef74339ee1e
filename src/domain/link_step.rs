//! [`LinkStep`]: the steps of one Link session (`link_sessions.step`), in flow order.

use super::spelling::spelled_enum;

spelled_enum! {
    /// Where a Link session is. Forward moves go through one conditional update from an expected step, so two
    /// requests never both move the same session.
    pub enum LinkStep {
        /// The consent screen (every session starts here).
        Consent = "consent",
        /// What happens next, in three steps.
        Explainer = "explainer",
        /// Search and select a plan.
        Search = "search",
        /// The integrator fixed the `endpoint`: confirm and connect.
        Connect = "connect",
        /// The payer's sign-in is open in the popup (or the tab, in the hosted flow).
        Payer = "payer",
        /// The payer authorized; the `public_token` is being minted.
        Authorized = "authorized",
        /// The sync job runs.
        Syncing = "syncing",
        /// Done; the `public_token` is ready for the host page.
        Success = "success",
        /// A failure the patient can recover from (pick another plan) or leave with its exit code.
        Error = "error",
        /// Ended without success (the session's exit code says why).
        Exited = "exited",
        /// Ended with success, and the integrator has been told.
        Done = "done",
    }
}

impl LinkStep {
    /// Whether the session is over (nothing more can happen in it).
    pub fn is_ended(self) -> bool {
        matches!(self, LinkStep::Exited | LinkStep::Done)
    }

    /// Whether the payer has authorized (the `public_token` exists or is being minted).
    pub fn is_authorized(self) -> bool {
        matches!(self, LinkStep::Authorized | LinkStep::Syncing | LinkStep::Success | LinkStep::Done)
    }
}
