//! [`Usage`]: how long the integrator may read the patient's data, and the ONE_TIME retention rule.

use super::spelling::spelled_enum;

spelled_enum! {
    /// How long the integrator may read the patient's data (`usage` in `FlexpaLink.create`).
    pub enum Usage {
        /// Data is expunged [`ONE_TIME_TTL_SECS`] (24 hours) after authorization; no refresh token.
        OneTime = "ONE_TIME",
        /// Data is refreshed for as long as the plan allows (refresh tokens).
        Multiple = "MULTIPLE",
    }
}

/// How long ONE_TIME data is kept after the payer authorized, in seconds (24 h). The one definition of the
/// rule: the lifecycle sweep expunges at this age, readability ends at it, and tokens never outlive it.
pub const ONE_TIME_TTL_SECS: i64 = 86_400;

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
}
