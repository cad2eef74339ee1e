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
