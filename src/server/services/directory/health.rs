//! Endpoint health from real link attempts: each patient's try at an endpoint is recorded from the hand-off to
//! the end of its first sync ([`observe_handoff`], [`observe_callback`], [`observe_sync`]: the link flow and
//! the sync call these once each, and a failure to record never changes the flow). From the last
//! `--endpoint-health-window` attempts that ended by the endpoint's doing, [`assess`] computes the success
//! rate, the median time to connect (hand-off to the payer's authorization), the last error codes, and a
//! [`HealthStatus`]; a change of status is announced once (`endpoint.status_changed`, to every app with a
//! webhook URL) by one conditional update, whichever instance sees it first.
//!
//! Status rule, in order: fewer than [`MIN_ATTEMPTS`] counted attempts → the last `endpoints check` decides
//! (`down` when it found an error, `ok` when it passed, `unchecked` without one); a check with an error newer
//! than the newest attempt → `down`; the last [`MIN_ATTEMPTS`] attempts all failed → `down`; a success rate of
//! at least [`OK_RATE`] → `ok`, at least [`DEGRADED_RATE`] → `degraded`, else `down`.
//!
//! What counts: an attempt that ends because the patient declined at the payer, closed the window, or never
//! came back within [`PENDING_TTL_SECS`] is not the endpoint's doing and counts neither way.

use std::future::Future;

use serde::Serialize;
use serde_json::json;

use crate::{
    domain::{AttemptOutcome, ExitCode, HealthStatus},
    server::{
        services::webhooks::{self, WebhookEvent},
        state::AppState,
        store::{
            apps,
            endpoint_attempts::{self, Attempt},
            endpoint_health::{self, HealthRow},
            endpoints::{self, Endpoint},
        },
    },
};

/// Fewer counted attempts than this: the check decides the status.
pub const MIN_ATTEMPTS: usize = 3;
/// Success rate from which an endpoint is `ok`.
pub const OK_RATE: f64 = 0.8;
/// Success rate from which an endpoint is `degraded` (below: `down`).
pub const DEGRADED_RATE: f64 = 0.5;
/// An attempt with no answer from the payer after this long was abandoned by the patient (seconds; the payer
/// authorization request's own lifetime).
pub const PENDING_TTL_SECS: i64 = 600;
/// How many recent error codes are shown.
const LAST_ERRORS: usize = 3;

/// Whether a failure with this code is the endpoint's doing (else the patient's, or ours).
pub fn is_endpoint_fault(code: ExitCode) -> bool {
    matches!(
        code,
        ExitCode::PayerTokenExchangeFailed
            | ExitCode::MalformedPayerCallback
            | ExitCode::InvalidState
            | ExitCode::SyncFailed
            | ExitCode::PayerTimeout
            | ExitCode::PlanNotReachable
            | ExitCode::PayerInvalidRequest
            | ExitCode::PayerServerError
            | ExitCode::EndpointConfigurationError
            | ExitCode::ScopeConfigurationError
    )
}

fn outcome_of(code: ExitCode) -> AttemptOutcome {
    if is_endpoint_fault(code) {
        AttemptOutcome::Failed
    } else {
        AttemptOutcome::Declined
    }
}

fn logged<T>(what: &str, r: anyhow::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), what, "recording endpoint health failed");
            None
        }
    }
}

/// Runs a hand-off to `endpoint` for session `link_session_id` as one attempt: refuses an endpoint a new link
/// may not use (disabled by the operator: `INVALID_ENDPOINT`; no client id yet: `ENDPOINT_CONFIGURATION_ERROR`),
/// records the attempt, runs `handoff`, and ends the attempt when it fails.
///
/// # Errors
/// The hand-off's own exit code, or the refusal's.
pub async fn observe_handoff<T>(
    state: &AppState,
    link_session_id: &str,
    endpoint: &Endpoint,
    handoff: impl Future<Output = Result<T, ExitCode>>,
) -> Result<T, ExitCode> {
    if endpoint.client_id.trim().is_empty() {
        return Err(ExitCode::EndpointConfigurationError);
    }
    match endpoints::profile(&state.db, &endpoint.id).await {
        Ok(Some(p)) if p.disabled_at.is_none() => {}
        Ok(_) => return Err(ExitCode::InvalidEndpoint),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "reading the endpoint's profile failed");
            return Err(ExitCode::PayerServerError);
        }
    }
    let attempt = logged("start", endpoint_attempts::start(&state.db, state.clock.now(), &endpoint.id, link_session_id).await);
    let result = handoff.await;
    if let (Err(code), Some(id)) = (&result, attempt) {
        end_attempt(state, &id, &endpoint.id, AttemptOutcome::Pending, outcome_of(*code), Some(*code)).await;
    }
    result
}

/// Runs the payer callback and records its result on the session's pending attempt: `connected` (with the new
/// authorization, from `ids` = `(link_session_id, authorization_id)`) or ended with the failure's code. A
/// failure that names no session cannot be tied to an attempt (that attempt is closed later as abandoned).
///
/// # Errors
/// The callback's own failure, unchanged.
pub async fn observe_callback<T>(
    state: &AppState,
    callback: impl Future<Output = Result<T, (Option<String>, ExitCode)>>,
    ids: impl Fn(&T) -> (String, String),
) -> Result<T, (Option<String>, ExitCode)> {
    let result = callback.await;
    let (session, seen) = match &result {
        Ok(done) => {
            let (sid, authorization_id) = ids(done);
            (sid, Seen::Connected(authorization_id))
        }
        Err((Some(sid), code)) => (sid.clone(), Seen::Failed(*code)),
        Err((None, _)) => return result,
    };
    let Some(Some((id, endpoint_id))) = logged("find", endpoint_attempts::pending_of_session(&state.db, &session).await) else {
        return result;
    };
    match seen {
        Seen::Connected(authorization_id) => {
            let connected = endpoint_attempts::connect(&state.db, state.clock.now(), &id, &authorization_id).await;
            if logged("connect", connected) == Some(true) {
                reassess_logged(state, &endpoint_id).await;
            }
        }
        Seen::Failed(code) => end_attempt(state, &id, &endpoint_id, AttemptOutcome::Pending, outcome_of(code), Some(code)).await,
    }
    result
}

/// What a callback did to its attempt.
enum Seen {
    /// The payer authorized: the new authorization's id.
    Connected(String),
    /// It failed with this code.
    Failed(ExitCode),
}

/// The first sync of an authorization ended (`exit_code` when it failed): ends its attempt `synced` or `failed`.
/// Later syncs of the same authorization have no attempt and change nothing.
pub async fn observe_sync(state: &AppState, authorization_id: &str, exit_code: Option<ExitCode>) {
    let Some(Some((id, endpoint_id))) =
        logged("find", endpoint_attempts::connected_of_authorization(&state.db, authorization_id).await)
    else {
        return;
    };
    let outcome = match exit_code {
        None => AttemptOutcome::Synced,
        Some(code) => outcome_of(code),
    };
    end_attempt(state, &id, &endpoint_id, AttemptOutcome::Connected, outcome, exit_code).await;
}

async fn end_attempt(
    state: &AppState,
    id: &str,
    endpoint_id: &str,
    from: AttemptOutcome,
    outcome: AttemptOutcome,
    code: Option<ExitCode>,
) {
    let ended = endpoint_attempts::end(&state.db, state.clock.now(), id, from, outcome, code).await;
    if logged("end", ended) == Some(true) {
        reassess_logged(state, endpoint_id).await;
    }
}

async fn reassess_logged(state: &AppState, endpoint_id: &str) {
    logged("assess", reassess(state, endpoint_id).await);
}

/// An endpoint's health, as shown to operators, patients (in words) and integrators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// The status (see the module docs).
    pub status: HealthStatus,
    /// Attempts counted (at most the window).
    pub attempts: usize,
    /// Of which succeeded.
    pub successes: usize,
    /// `successes / attempts`, when there were any.
    pub success_rate: Option<f64>,
    /// Median seconds from the hand-off to the payer's authorization, over the successes.
    pub median_connect_secs: Option<i64>,
    /// The last failures' exit codes, newest first (at most 3).
    pub last_error_codes: Vec<ExitCode>,
    /// When `endpoints check` last ran (Unix s).
    pub checked_at: Option<i64>,
    /// How many errors and warnings it found.
    pub check_errors: usize,
    /// How many warnings it found.
    pub check_warnings: usize,
}

fn count_severity(problems: Option<&serde_json::Value>, severity: &str) -> usize {
    problems
        .and_then(|p| p.as_array())
        .map(|a| a.iter().filter(|p| p.get("severity").and_then(|s| s.as_str()) == Some(severity)).count())
        .unwrap_or(0)
}

/// Computes the health of an endpoint from its recent attempts (newest first) and its health row (see the
/// module docs for the rule). Pure, for tests.
pub fn compute(recent: &[Attempt], row: Option<&HealthRow>) -> Health {
    let attempts = recent.len();
    let successes = recent.iter().filter(|a| a.outcome.succeeded()).count();
    let success_rate = (attempts > 0).then(|| successes as f64 / attempts as f64);
    let mut connect: Vec<i64> = recent
        .iter()
        .filter(|a| a.outcome.succeeded())
        .filter_map(|a| a.connected_at.map(|c| (c - a.started_at).max(0)))
        .collect();
    connect.sort_unstable();
    let median_connect_secs = match connect.len() {
        0 => None,
        n if n % 2 == 1 => Some(connect[n / 2]),
        n => Some((connect[n / 2 - 1] + connect[n / 2]) / 2),
    };
    let last_error_codes =
        recent.iter().filter(|a| a.outcome == AttemptOutcome::Failed).filter_map(|a| a.exit_code).take(LAST_ERRORS).collect();
    let checked_at = row.and_then(|r| r.checked_at);
    let problems = row.and_then(|r| r.check_problems.as_ref());
    let check_errors = count_severity(problems, "error");
    let check_warnings = count_severity(problems, "warning");
    let newest = recent.first().map(|a| a.started_at);
    let status = if attempts < MIN_ATTEMPTS {
        match checked_at {
            None => HealthStatus::Unchecked,
            Some(_) if check_errors > 0 => HealthStatus::Down,
            Some(_) => HealthStatus::Ok,
        }
    } else if (check_errors > 0 && checked_at.is_some_and(|c| newest.is_none_or(|n| c >= n)))
        || recent.iter().take(MIN_ATTEMPTS).all(|a| a.outcome == AttemptOutcome::Failed)
    {
        HealthStatus::Down
    } else {
        match success_rate.unwrap_or(0.0) {
            r if r >= OK_RATE => HealthStatus::Ok,
            r if r >= DEGRADED_RATE => HealthStatus::Degraded,
            _ => HealthStatus::Down,
        }
    };
    Health {
        status,
        attempts,
        successes,
        success_rate,
        median_connect_secs,
        last_error_codes,
        checked_at,
        check_errors,
        check_warnings,
    }
}

/// The health of an endpoint now (abandoned attempts closed first).
///
/// # Errors
/// Database errors.
pub async fn assess(state: &AppState, endpoint_id: &str) -> anyhow::Result<Health> {
    let now = state.clock.now();
    endpoint_attempts::close_abandoned(&state.db, now, now - PENDING_TTL_SECS).await?;
    current(state, endpoint_id).await
}

/// The health of an endpoint from what is recorded, writing nothing (for the picker and the API, read on every
/// search). The same figures as [`assess`]: attempts still pending count neither way, closed or not.
///
/// # Errors
/// Database errors.
pub async fn current(state: &AppState, endpoint_id: &str) -> anyhow::Result<Health> {
    let window = state.settings.endpoint_health_window.max(1) as i64;
    let recent = endpoint_attempts::recent(&state.db, endpoint_id, window).await?;
    let row = endpoint_health::get(&state.db, endpoint_id).await?;
    Ok(compute(&recent, row.as_ref()))
}

/// Recomputes an endpoint's health and, when its status differs from the one last announced, moves it and
/// queues `endpoint.status_changed` for every app with a webhook URL, in one transaction (so a change is
/// announced once, by whichever instance moves it). Returns the health.
///
/// # Errors
/// Database errors.
pub async fn reassess(state: &AppState, endpoint_id: &str) -> anyhow::Result<Health> {
    let now = state.clock.now();
    let health = assess(state, endpoint_id).await?;
    endpoint_health::ensure(&state.db.pool, now, endpoint_id).await?;
    let Some(row) = endpoint_health::get(&state.db, endpoint_id).await? else { return Ok(health) };
    if row.status == health.status {
        return Ok(health);
    }
    let Some(endpoint) = endpoints::get(&state.db, endpoint_id).await? else { return Ok(health) };
    let apps = apps::list(&state.db).await?;
    let mut tx = state.db.begin_write().await?;
    if !endpoint_health::change_status(&mut tx, now, endpoint_id, row.status, health.status).await? {
        tx.rollback().await?;
        return Ok(health);
    }
    let data = json!({
        "endpoint_id": endpoint.id, "name": endpoint.name, "mode": endpoint.mode,
        "status": health.status, "previous_status": row.status,
        "attempts": health.attempts, "success_rate": health.success_rate,
        "median_connect_secs": health.median_connect_secs, "last_error_codes": health.last_error_codes,
        "changed_at": webhooks::rfc3339(now),
    });
    for app in apps.iter().filter(|a| a.webhook_url.is_some()) {
        webhooks::enqueue(&mut tx, now, &app.id, WebhookEvent::EndpointStatusChanged, data.clone()).await?;
    }
    tx.commit().await?;
    tracing::info!(endpoint = %endpoint.id, from = row.status.as_str(), to = health.status.as_str(), "endpoint health changed");
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: AttemptOutcome, started: i64, connect_secs: Option<i64>, code: Option<ExitCode>) -> Attempt {
        Attempt { outcome, exit_code: code, started_at: started, connected_at: connect_secs.map(|s| started + s) }
    }

    #[test]
    fn few_attempts_defer_to_the_check() {
        assert_eq!(compute(&[], None).status, HealthStatus::Unchecked);
        let row = |problems: serde_json::Value| HealthRow {
            status: HealthStatus::Unchecked,
            status_changed_at: 0,
            checked_at: Some(10),
            check_problems: Some(problems),
        };
        assert_eq!(compute(&[], Some(&row(json!([])))).status, HealthStatus::Ok);
        assert_eq!(compute(&[], Some(&row(json!([{"severity": "warning"}])))).status, HealthStatus::Ok);
        assert_eq!(compute(&[], Some(&row(json!([{"severity": "error"}])))).status, HealthStatus::Down);
    }

    #[test]
    fn rates_median_and_errors() {
        let ok = |t, s| attempt(AttemptOutcome::Synced, t, Some(s), None);
        let bad = |t| attempt(AttemptOutcome::Failed, t, None, Some(ExitCode::PayerServerError));
        // Newest first: 4 successes (60, 120, 180, 240 s), 1 failure.
        let recent = vec![ok(50, 120), bad(40), ok(30, 60), ok(20, 240), ok(10, 180)];
        let h = compute(&recent, None);
        assert_eq!((h.attempts, h.successes), (5, 4));
        assert_eq!(h.success_rate, Some(0.8));
        assert_eq!(h.median_connect_secs, Some(150));
        assert_eq!(h.last_error_codes, vec![ExitCode::PayerServerError]);
        assert_eq!(h.status, HealthStatus::Ok);
        let degraded = vec![bad(60), ok(50, 60), bad(40), ok(30, 60)];
        assert_eq!(compute(&degraded, None).status, HealthStatus::Degraded);
        let down = vec![bad(60), bad(50), bad(40), ok(30, 60), ok(20, 60), ok(10, 60)];
        assert_eq!(compute(&down, None).status, HealthStatus::Down, "the last three failed");
    }

    #[test]
    fn only_the_endpoints_faults_count() {
        assert!(!is_endpoint_fault(ExitCode::PayerAccessDenied));
        assert!(!is_endpoint_fault(ExitCode::PatientCancelled));
        assert!(is_endpoint_fault(ExitCode::PlanNotReachable));
        assert_eq!(outcome_of(ExitCode::PayerAccessDenied), AttemptOutcome::Declined);
    }
}
