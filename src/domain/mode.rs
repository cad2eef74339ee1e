//! [`Mode`]: test (sandbox payers, `pk_test_…` keys) or live (real payers).

use super::spelling::spelled_enum;

spelled_enum! {
    /// Whether a key, endpoint or session belongs to test mode (sandbox payers) or live mode (real payers).
    pub enum Mode {
        /// `pk_test_…` / `sk_test_…` keys and sandbox endpoints.
        Test = "test",
        /// `pk_live_…` / `sk_live_…` keys and real payers.
        Live = "live",
    }
}

impl Mode {
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
    fn key_modes() {
        assert_eq!(Mode::of_publishable_key("pk_test_abc"), Some(Mode::Test));
        assert_eq!(Mode::of_publishable_key("pk_live_abc"), Some(Mode::Live));
        assert_eq!(Mode::of_publishable_key("sk_test_abc"), None);
        assert_eq!(serde_json::to_string(&Mode::Live).unwrap(), "\"live\"");
    }
}
