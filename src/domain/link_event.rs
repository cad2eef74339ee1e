//! [`LinkEventName`]: the steps of a Link session as recorded on the server (`link_events.name`), the names
//! `onEvent` reports in the page plus the server's own (the payer's and the sync's outcome).

use super::spelling::spelled_enum;

spelled_enum! {
    /// One step of a Link session. Recorded on the server with its time, the session's step and non-health
    /// metadata; the integrator reads them (`GET /link/sessions/{id}`, the `link.events` webhook) and the
    /// funnel counts them.
    pub enum LinkEventName {
        /// The session was created (`open()`, or the hosted flow's first visit).
        Open = "OPEN",
        /// The patient agreed on the consent screen.
        ConsentGiven = "CONSENT_GIVEN",
        /// The patient declined on the consent screen.
        ConsentDeclined = "CONSENT_DECLINED",
        /// The patient changed the language of the screens.
        LanguageChanged = "LANGUAGE_CHANGED",
        /// The patient searched for a plan (metadata: the query's length, never the text).
        Search = "SEARCH",
        /// The patient chose a plan (or the integrator gave it).
        EndpointSelected = "ENDPOINT_SELECTED",
        /// The patient could not find their plan and named it ("Can't find your plan?"; the name is kept for
        /// the operator, not in the event); the session then exits with `PATIENT_CANCELLED`.
        PlanNotFound = "PLAN_NOT_FOUND",
        /// The patient chose "Remind me later" on a plan's pre-check screen; the session then exits with
        /// `PATIENT_CANCELLED`.
        RemindLater = "REMIND_LATER",
        /// The patient was sent to the plan's sign-in.
        Handoff = "HANDOFF",
        /// The browser blocked the sign-in window.
        PopupBlocked = "POPUP_BLOCKED",
        /// The patient closed the sign-in window before finishing.
        PopupClosed = "POPUP_CLOSED",
        /// The plan authorized (its callback, with a code we exchanged).
        PayerAuthorized = "PAYER_AUTHORIZED",
        /// The plan's sign-in matched an authorization the app already had for this user (same plan, same payer
        /// `patient`): that one got the fresh payer tokens and is synced again instead of a second being created.
        PlanReused = "PLAN_REUSED",
        /// The sync of the patient's records started.
        SyncStarted = "SYNC_STARTED",
        /// The sync finished with data.
        SyncCompleted = "SYNC_COMPLETED",
        /// The sync ended without the data (metadata: its exit code).
        SyncFailed = "SYNC_FAILED",
        /// On the success screen of a session opened with `multiplePlans`, the patient chose to connect another
        /// plan: the session goes back to the plan search (the plans linked so far stay linked).
        AnotherPlan = "ANOTHER_PLAN",
        /// The session ended with success (the integrator gets the `public_token`).
        Success = "SUCCESS",
        /// The session ended without success (its exit code).
        Exit = "EXIT",
        /// A failure the patient can recover from or leave with its exit code (metadata: the payer's error text).
        Error = "ERROR",
    }
}

impl LinkEventName {
    /// Whether the event ends the session (success or an exit): nothing more happens after it.
    pub fn is_ending(self) -> bool {
        matches!(self, LinkEventName::Success | LinkEventName::Exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for n in LinkEventName::ALL.iter().copied() {
            assert_eq!(LinkEventName::parse(n.as_str()), Some(n));
        }
        assert!(LinkEventName::Exit.is_ending() && !LinkEventName::Error.is_ending());
    }
}
