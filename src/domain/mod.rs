//! Value types shared by both builds (server and wasm). Never secrets.

use serde::{Deserialize, Serialize};

/// How long the integrator may read the patient's data (`usage` in `FlexpaLink.create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Usage {
    /// Data is expunged 24 hours after authorization; no refresh token.
    OneTime,
    /// Data is refreshed for as long as the plan allows (refresh tokens).
    Multiple,
}

impl Usage {
    /// The wire form: `ONE_TIME` or `MULTIPLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Usage::OneTime => "ONE_TIME",
            Usage::Multiple => "MULTIPLE",
        }
    }

    /// Parses the wire form; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ONE_TIME" => Some(Usage::OneTime),
            "MULTIPLE" => Some(Usage::Multiple),
            _ => None,
        }
    }
}

/// Whether a key, endpoint or session belongs to test mode (sandbox payers) or live mode (real payers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `pk_test_…` / `sk_test_…` keys and sandbox endpoints.
    Test,
    /// `pk_live_…` / `sk_live_…` keys and real payers.
    Live,
}

impl Mode {
    /// `test` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    /// Parses `test` / `live`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }

    /// The mode of a publishable key from its prefix (`pk_test_` / `pk_live_`).
    pub fn of_publishable_key(key: &str) -> Option<Self> {
        if key.starts_with("pk_test_") {
            Some(Mode::Test)
        } else if key.starts_with("pk_live_") {
            Some(Mode::Live)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_roundtrip() {
        assert_eq!(Usage::parse("ONE_TIME"), Some(Usage::OneTime));
        assert_eq!(Usage::parse(Usage::Multiple.as_str()), Some(Usage::Multiple));
        assert_eq!(Usage::parse("one_time"), None);
        assert_eq!(serde_json::to_string(&Usage::OneTime).unwrap(), "\"ONE_TIME\"");
    }

    #[test]
    fn key_modes() {
        assert_eq!(Mode::of_publishable_key("pk_test_abc"), Some(Mode::Test));
        assert_eq!(Mode::of_publishable_key("pk_live_abc"), Some(Mode::Live));
        assert_eq!(Mode::of_publishable_key("sk_test_abc"), None);
    }
}

/// Why a Link session ended without success: the `code` passed to `onExit({code})`, and the `error` query
/// parameter of the hosted (`redirect_uri`) flow. Stable wire names in SCREAMING_SNAKE_CASE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExitCode {
    /// The patient closed or cancelled the flow (close button, Esc, declined consent, abandoned popup).
    PatientCancelled,
    /// The payer's token endpoint refused or failed the authorization-code exchange.
    PayerTokenExchangeFailed,
    /// `endpoint` is not a known endpoint id.
    InvalidEndpoint,
    /// The endpoint's mode (test/live) differs from the publishable key's mode.
    EndpointModeMismatch,
    /// `publishableKey` is missing, malformed or unknown.
    InvalidPublishableKey,
    /// The payer's callback had neither `code` nor `error`, or was otherwise malformed.
    MalformedPayerCallback,
    /// The callback's `state` is unknown, expired or already used.
    InvalidState,
    /// `user.externalId` is missing or invalid.
    InvalidUser,
    /// `usage` is missing or not `ONE_TIME` / `MULTIPLE`.
    InvalidUsage,
    /// The patient's data could not be retrieved.
    SyncFailed,
    /// The patient (or the payer) denied access (`error=access_denied`).
    PayerAccessDenied,
    /// The payer did not answer in time.
    PayerTimeout,
    /// The patient's plan is not reachable through this payer's API.
    PlanNotReachable,
    /// The payer did not understand the request (`invalid_request`, `unsupported_response_type`, …).
    PayerInvalidRequest,
    /// The payer's server failed (`server_error`, `temporarily_unavailable`, 5xx).
    PayerServerError,
    /// The endpoint's OAuth configuration is wrong (discovery, client id, redirect URI): an admin must fix it.
    EndpointConfigurationError,
    /// The endpoint's scope configuration is wrong (`invalid_scope`): an admin must fix it.
    ScopeConfigurationError,
}

impl ExitCode {
    /// Every code, in a stable order (for docs and tests).
    pub const ALL: [ExitCode; 17] = [
        ExitCode::PatientCancelled,
        ExitCode::PayerTokenExchangeFailed,
        ExitCode::InvalidEndpoint,
        ExitCode::EndpointModeMismatch,
        ExitCode::InvalidPublishableKey,
        ExitCode::MalformedPayerCallback,
        ExitCode::InvalidState,
        ExitCode::InvalidUser,
        ExitCode::InvalidUsage,
        ExitCode::SyncFailed,
        ExitCode::PayerAccessDenied,
        ExitCode::PayerTimeout,
        ExitCode::PlanNotReachable,
        ExitCode::PayerInvalidRequest,
        ExitCode::PayerServerError,
        ExitCode::EndpointConfigurationError,
        ExitCode::ScopeConfigurationError,
    ];

    /// The wire name, e.g. `PAYER_ACCESS_DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitCode::PatientCancelled => "PATIENT_CANCELLED",
            ExitCode::PayerTokenExchangeFailed => "PAYER_TOKEN_EXCHANGE_FAILED",
            ExitCode::InvalidEndpoint => "INVALID_ENDPOINT",
            ExitCode::EndpointModeMismatch => "ENDPOINT_MODE_MISMATCH",
            ExitCode::InvalidPublishableKey => "INVALID_PUBLISHABLE_KEY",
            ExitCode::MalformedPayerCallback => "MALFORMED_PAYER_CALLBACK",
            ExitCode::InvalidState => "INVALID_STATE",
            ExitCode::InvalidUser => "INVALID_USER",
            ExitCode::InvalidUsage => "INVALID_USAGE",
            ExitCode::SyncFailed => "SYNC_FAILED",
            ExitCode::PayerAccessDenied => "PAYER_ACCESS_DENIED",
            ExitCode::PayerTimeout => "PAYER_TIMEOUT",
            ExitCode::PlanNotReachable => "PLAN_NOT_REACHABLE",
            ExitCode::PayerInvalidRequest => "PAYER_INVALID_REQUEST",
            ExitCode::PayerServerError => "PAYER_SERVER_ERROR",
            ExitCode::EndpointConfigurationError => "ENDPOINT_CONFIGURATION_ERROR",
            ExitCode::ScopeConfigurationError => "SCOPE_CONFIGURATION_ERROR",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod exit_code_tests {
    use super::*;

    #[test]
    fn wire_names_match_serde_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ExitCode::ALL {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
            assert_eq!(ExitCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()));
        }
    }
}
