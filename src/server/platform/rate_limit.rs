//! Rate limits (GCRA, the `governor` crate), one keyed limiter per rule, each a number of requests per minute
//! with a burst of the same size (`0` turns a rule off):
//!
//! | rule | key | where |
//! |---|---|---|
//! | `sessions` | client address | `GET /link`, `GET /link/auth` (a burst of requests never becomes a burst of sessions) |
//! | `token` | client address | `POST /link/token`, `/link/exchange`, `/link/test/public_token`, the console's sign-in (`/console/sign-in`) |
//! | `exchange` | app | `POST /link/exchange`, once the secret key is known |
//! | `fhir` | access token (its SHA-256) | every `/fhir/*` request with a Bearer token |
//! | `resync` | authorization | `POST /link/sync` when it would queue a job (default 1 a minute) |
//!
//! Limits are per instance (kept in memory; several instances each allow the rate). The client address is the
//! one `tls::client_address` resolved (forwarding headers only from trusted proxies). Each surface answers an
//! exceeded limit in its own form, with `429` and `Retry-After` ([`Limited::apply`]).

use std::{hash::Hash, net::IpAddr, num::NonZeroU32};

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::Response,
};
use governor::{clock::Clock as _, DefaultKeyedRateLimiter, Quota};

use crate::server::settings::Settings;

/// One keyed rule: `per_minute` requests per key, all at once at most.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
}

/// A request over its limit: how long until the next one is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Seconds to wait (at least 1), sent as `Retry-After` (RFC 9110 §10.2.3).
    pub retry_after_secs: u64,
}

impl Limited {
    /// Makes `resp` a `429 Too Many Requests` with `Retry-After`.
    pub fn apply(&self, resp: &mut Response) {
        *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_secs));
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A rule allowing `per_minute` requests a minute per key (`0`: no limit).
    pub fn per_minute(per_minute: u32) -> Self {
        Limiter { inner: NonZeroU32::new(per_minute).map(|n| governor::RateLimiter::keyed(Quota::per_minute(n))) }
    }

    /// Counts one request of `key`; `Err` when it is over the limit. A request without a key (no client address
    /// known) is not limited.
    pub fn check(&self, key: Option<K>) -> Result<(), Limited> {
        let (Some(limiter), Some(key)) = (&self.inner, key) else { return Ok(()) };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Limited { retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(1) }
        })
    }

    /// Forgets keys whose every request is already forgiven (bounded memory; the lifecycle sweep calls it).
    pub fn retain_recent(&self) {
        if let Some(l) = &self.inner {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Every rule of the server, built from its settings.
pub struct RateLimits {
    /// Session creation per client address.
    pub sessions: Limiter<IpAddr>,
    /// Token endpoints per client address.
    pub token: Limiter<IpAddr>,
    /// `public_token` exchanges per app.
    pub exchange: Limiter<String>,
    /// FHIR API requests per access token (keyed by its hash).
    pub fhir: Limiter<String>,
    /// Re-syncs asked for per authorization (keyed by its id).
    pub resync: Limiter<String>,
}

impl RateLimits {
    /// The rules of `settings` (`--rate-limit-*`).
    pub fn new(settings: &Settings) -> Self {
        RateLimits {
            sessions: Limiter::per_minute(settings.rate_limit_sessions),
            token: Limiter::per_minute(settings.rate_limit_token),
            exchange: Limiter::per_minute(settings.rate_limit_exchange),
            fhir: Limiter::per_minute(settings.rate_limit_fhir),
            resync: Limiter::per_minute(settings.rate_limit_resync),
        }
    }

    /// [`Limiter::retain_recent`] on every rule.
    pub fn retain_recent(&self) {
        self.sessions.retain_recent();
        self.token.retain_recent();
        self.exchange.retain_recent();
        self.fhir.retain_recent();
        self.resync.retain_recent();
    }
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_with_a_wait() {
        let l: Limiter<u8> = Limiter::per_minute(3);
        for _ in 0..3 {
            assert!(l.check(Some(1)).is_ok());
        }
        let refused = l.check(Some(1)).unwrap_err();
        assert!((1..=60).contains(&refused.retry_after_secs), "{refused:?}");
        assert!(l.check(Some(2)).is_ok(), "another key has its own budget");
        assert!(l.check(None).is_ok(), "no key, no limit");
        let off: Limiter<u8> = Limiter::per_minute(0);
        assert!((0..100).all(|_| off.check(Some(1)).is_ok()));
    }
}
