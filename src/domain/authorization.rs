//! [`AuthorizationState`] and [`StateReason`]: the life of a patient's grant at a payer (`authorizations.state`
//! and `authorizations.state_reason`).

use super::spelling::spelled_enum;

spelled_enum! {
    /// The state of an authorization.
    pub enum AuthorizationState {
        /// The payer granted access; the `public_token` is not exchanged yet.
        Authorized = "AUTHORIZED",
        /// The integrator exchanged the `public_token`.
        Exchanged = "EXCHANGED",
        /// The payer tokens were refreshed at least once.
        Refreshed = "REFRESHED",
        /// The payer refused a refresh (or its grant ended): the patient must link again; data stays readable
        /// until the authorization's `expunge_at`.
        NeedsReauth = "NEEDS_REAUTH",
        /// Revoked by the patient, the integrator or the operator; data expunged.
        Revoked = "REVOKED",
        /// The ONE_TIME window (or its own `expunge_at`) passed; data expunged.
        Expired = "EXPIRED",
    }
}

impl AuthorizationState {
    /// Whether the grant at the payer is in use (refreshable, re-syncable).
    pub fn is_active(self) -> bool {
        matches!(self, AuthorizationState::Authorized | AuthorizationState::Exchanged | AuthorizationState::Refreshed)
    }

    /// Whether it ended for good (revoked or expired).
    pub fn is_ended(self) -> bool {
        matches!(self, AuthorizationState::Revoked | AuthorizationState::Expired)
    }

    /// Whether repair mode may renew an authorization in this state: `NEEDS_REAUTH`, or an active one (the
    /// patient renews before the payer grant ends). Never an ended one.
    pub fn is_repairable(self) -> bool {
        self == AuthorizationState::NeedsReauth || self.is_active()
    }

    /// The state after a successful repair (new payer tokens from a fresh sign-in): an active state is kept; a
    /// `NEEDS_REAUTH` one becomes active again: `EXCHANGED` when the integrator had exchanged its
    /// `public_token` (`exchanged`), else `AUTHORIZED`. (`REFRESHED` is reached again by the next refresh.)
    pub fn after_repair(self, exchanged: bool) -> AuthorizationState {
        match self {
            s if s.is_active() => s,
            _ if exchanged => AuthorizationState::Exchanged,
            _ => AuthorizationState::Authorized,
        }
    }
}

spelled_enum! {
    /// Why an authorization is in its state (`authorizations.state_reason`).
    pub enum StateReason {
        /// A ONE_TIME authorization reached the end of its 24 h window.
        OneTimeExpired = "one_time_expired",
        /// Its own `expunge_at` passed (e.g. the re-consent window of a `NEEDS_REAUTH` one).
        Expired = "expired",
        /// The patient removed the link on the connections page.
        RevokedByPatient = "revoked_by_patient",
        /// The integrator revoked it through the API.
        RevokedByApp = "revoked_by_app",
        /// The operator revoked it.
        RevokedByOperator = "revoked_by_operator",
        /// Revoked by a path that recorded no reason of its own.
        Revoked = "revoked",
        /// `NEEDS_REAUTH`: the payer answered `invalid_grant` to a refresh.
        PayerRefusedRefresh = "payer_refused_refresh",
        /// `NEEDS_REAUTH`: the payer's grant expired (known expiry passed, or no refresh token).
        PayerGrantExpired = "payer_grant_expired",
    }
}

impl StateReason {
    /// Whether this reason ends the authorization as `REVOKED` (else `EXPIRED`) when it is expunged.
    pub fn is_revocation(self) -> bool {
        matches!(
            self,
            StateReason::RevokedByPatient
                | StateReason::RevokedByApp
                | StateReason::RevokedByOperator
                | StateReason::Revoked
        )
    }
}

#[cfg(test)]
mod tests {
    use super::AuthorizationState as S;

    #[test]
    fn repair_returns_to_an_active_state() {
        assert_eq!(S::NeedsReauth.after_repair(true), S::Exchanged);
        assert_eq!(S::NeedsReauth.after_repair(false), S::Authorized);
        assert_eq!(S::Refreshed.after_repair(true), S::Refreshed);
        assert_eq!(S::Exchanged.after_repair(true), S::Exchanged);
        assert!(S::ALL.iter().all(|s| s.is_repairable() != s.is_ended()));
    }
}
