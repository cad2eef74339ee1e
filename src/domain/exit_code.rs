//! [`ExitCode`]: why a Link session ended without success.

use super::spelling::spelled_enum;

spelled_enum! {
    /// Why a Link session ended without success: the `code` passed to `onExit({code})`, and the `error` query
    /// parameter of the hosted (`redirect_uri`) flow. Stable wire names in SCREAMING_SNAKE_CASE.
    pub enum ExitCode {
        /// The patient closed or cancelled the flow (close button, Esc, declined consent, abandoned popup).
        PatientCancelled = "PATIENT_CANCELLED",
        /// The payer's token endpoint refused or failed the authorization-code exchange.
        PayerTokenExchangeFailed = "PAYER_TOKEN_EXCHANGE_FAILED",
        /// `endpoint` is not a known endpoint id.
        InvalidEndpoint = "INVALID_ENDPOINT",
        /// The endpoint's mode (test/live) differs from the publishable key's mode.
        EndpointModeMismatch = "ENDPOINT_MODE_MISMATCH",
        /// `publishableKey` is missing, malformed or unknown.
        InvalidPublishableKey = "INVALID_PUBLISHABLE_KEY",
        /// The payer's callback had neither `code` nor `error`, or was otherwise malformed.
        MalformedPayerCallback = "MALFORMED_PAYER_CALLBACK",
        /// The callback's `state` is unknown, expired or already used.
        InvalidState = "INVALID_STATE",
        /// `user.externalId` is missing or invalid.
        InvalidUser = "INVALID_USER",
        /// `usage` is missing or not `ONE_TIME` / `MULTIPLE`.
        InvalidUsage = "INVALID_USAGE",
        /// The patient's data could not be retrieved.
        SyncFailed = "SYNC_FAILED",
        /// The patient (or the payer) denied access (`error=access_denied`).
        PayerAccessDenied = "PAYER_ACCESS_DENIED",
        /// The payer did not answer in time.
        PayerTimeout = "PAYER_TIMEOUT",
        /// The patient's plan is not reachable through this payer's API.
        PlanNotReachable = "PLAN_NOT_REACHABLE",
        /// The payer did not understand the request (`invalid_request`, `unsupported_response_type`, …).
        PayerInvalidRequest = "PAYER_INVALID_REQUEST",
        /// The payer's server failed (`server_error`, `temporarily_unavailable`, 5xx).
        PayerServerError = "PAYER_SERVER_ERROR",
        /// The endpoint's OAuth configuration is wrong (discovery, client id, redirect URI): an admin must fix it.
        EndpointConfigurationError = "ENDPOINT_CONFIGURATION_ERROR",
        /// The endpoint's scope configuration is wrong (`invalid_scope`): an admin must fix it.
        ScopeConfigurationError = "SCOPE_CONFIGURATION_ERROR",
        /// A step of the session came from another browser than the one that opened it (its binding was missing
        /// or wrong: the link was sent to or copied into another browser, or the browser dropped Link's cookie
        /// and storage): nothing was shared (RFC 9700 §4.7).
        BrowserMismatch = "BROWSER_MISMATCH",
        /// Too many Link sessions were started from one network address in a short time (`Retry-After` says when
        /// to try again).
        RateLimited = "RATE_LIMITED",
        /// Repair mode: the `repairToken` is malformed, unknown, expired or already used, or the authorization it
        /// names can no longer be repaired (revoked, expired, expunged): ask your backend for a new one
        /// (`POST /link/repair`).
        InvalidRepairToken = "INVALID_REPAIR_TOKEN",
        /// Repair mode: the patient signed in at the plan as another member than the one the authorization is
        /// for. Nothing was merged: the authorization is left exactly as it was and the new sign-in's payer
        /// tokens were discarded.
        RepairPatientMismatch = "REPAIR_PATIENT_MISMATCH",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ExitCode::ALL.iter().copied() {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
            assert_eq!(ExitCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()));
        }
        assert_eq!(ExitCode::ALL.len(), 21);
    }
}
