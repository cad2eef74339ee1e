//! What `GET /console` shows: everything for a period (and optionally one app or endpoint), loaded into a
//! [`View`] that `super::render` turns into the page.

use std::collections::HashMap;

use serde::Deserialize;

use crate::{
    domain::{ExitCode, HealthStatus},
    server::{
        services::{
            directory::{self, check},
            insights::funnel::{self, Block, Funnel},
        },
        state::AppState,
        store::{
            apps::{self, App},
            endpoint_health,
            endpoints::{self, Endpoint},
            link_events::{self, Failure},
            link_outcomes::{self, OutcomeFilter},
            webhook_deliveries::{self, DeliveryHealth, DeliveryInfo},
        },
    },
};

/// The periods the console offers: (query value, words, seconds).
pub const PERIODS: [(&str, &str, i64); 4] =
    [("24h", "Last 24 hours", 86_400), ("7d", "Last 7 days", 7 * 86_400), ("30d", "Last 30 days", 30 * 86_400), ("90d", "Last 90 days", 90 * 86_400)];
/// Failures read for the summary by exit code.
const FAILURES_READ: i64 = 1000;
/// Failures listed one by one.
const FAILURES_LISTED: usize = 20;
/// Dead deliveries listed.
const DEAD_LISTED: i64 = 50;

/// The console's query: period, app, endpoint, and the notice of the action that led here.
#[derive(Debug, Default, Deserialize)]
pub struct ConsoleQuery {
    since: Option<String>,
    app: Option<String>,
    endpoint: Option<String>,
    notice: Option<String>,
}

/// An endpoint as the console lists it.
pub struct EndpointRow {
    /// The directory entry.
    pub endpoint: Endpoint,
    /// When an operator disabled it.
    pub disabled_at: Option<i64>,
    /// What stops it from working or deserves a look, in words with the fix (empty: ready): the directory's
    /// checks on the entry and the last `endpoints check` probe (`services::directory::check::known_problems`).
    pub setup_problems: Vec<String>,
    /// Its health status from real attempts and the last check (`services::directory::health`).
    pub status: HealthStatus,
    /// Its funnel in the period, when patients chose it.
    pub health: Option<Block>,
    /// Its most frequent failures in the period: (exit code, count).
    pub top_failures: Vec<(ExitCode, usize)>,
}

/// Failures of one exit code in the period.
pub struct FailureGroup {
    /// The code.
    pub exit_code: Option<ExitCode>,
    /// How many.
    pub count: usize,
    /// The newest one.
    pub newest: Failure,
}

/// An app and its webhook deliveries in the period.
pub struct AppRow {
    /// The app.
    pub app: App,
    /// Its deliveries' counts.
    pub deliveries: DeliveryHealth,
}

/// Everything one console page shows.
pub struct View {
    /// Now (Unix s).
    pub now: i64,
    /// The period's query value (`7d`).
    pub period: &'static str,
    /// Its start (Unix s).
    pub since: i64,
    /// The app filter.
    pub app: Option<String>,
    /// The endpoint filter.
    pub endpoint: Option<String>,
    /// What the last action did, in words.
    pub notice: Option<&'static str>,
    /// The session's form token.
    pub csrf: String,
    /// The funnel of the period.
    pub funnel: Funnel,
    /// Endpoint names by id.
    pub names: HashMap<String, String>,
    /// Every endpoint.
    pub endpoints: Vec<EndpointRow>,
    /// Failures by exit code, most frequent first.
    pub failure_groups: Vec<FailureGroup>,
    /// The newest failures.
    pub failures: Vec<Failure>,
    /// App names by id.
    pub app_names: HashMap<String, String>,
    /// Every app with its deliveries.
    pub apps: Vec<AppRow>,
    /// Dead deliveries, newest first.
    pub dead: Vec<DeliveryInfo>,
}

fn notice_text(n: &str) -> Option<&'static str> {
    match n {
        "endpoint-disabled" => Some("The endpoint is disabled: patients no longer see it. `link-sdk endpoints enable ID` turns it back on."),
        "unknown-endpoint" => Some("No such endpoint."),
        "delivery-retried" => Some("The delivery will be tried again within a few seconds."),
        "delivery-not-dead" => Some("That delivery is not waiting for a retry (it was delivered, or is still being retried)."),
        _ => None,
    }
}

/// Loads the [`View`] of query `q` for the session whose form token is `csrf`.
///
/// # Errors
/// Database errors.
pub async fn load(state: &AppState, q: ConsoleQuery, csrf: String) -> anyhow::Result<View> {
    let now = state.clock.now();
    let (period, _, secs) = PERIODS.iter().copied().find(|(k, _, _)| Some(*k) == q.since.as_deref()).unwrap_or(PERIODS[1]);
    let since = now - secs;
    let all_apps = apps::list(&state.db).await?;
    let all_endpoints = endpoints::list(&state.db).await?;
    let app = q.app.filter(|a| all_apps.iter().any(|x| &x.id == a));
    let endpoint = q.endpoint.filter(|e| all_endpoints.iter().any(|x| &x.id == e));
    let filter = OutcomeFilter { since, until: i64::MAX, app_id: app.clone(), endpoint_id: endpoint.clone() };
    let funnel = funnel::compute(&link_outcomes::list(&state.db, &filter).await?);
    let failures = link_events::recent_failures(&state.db, since, app.as_deref(), endpoint.as_deref(), FAILURES_READ).await?;
    let mut groups: Vec<FailureGroup> = Vec::new();
    for f in &failures {
        match groups.iter_mut().find(|g| g.exit_code == f.event.exit_code) {
            Some(g) => g.count += 1,
            None => groups.push(FailureGroup { exit_code: f.event.exit_code, count: 1, newest: f.clone() }),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| b.newest.event.at.cmp(&a.newest.event.at)));
    let disabled: HashMap<String, i64> = endpoints::disabled(&state.db).await?.into_iter().collect();
    let health: HashMap<&str, &Block> = funnel.per_endpoint.iter().map(|(id, b)| (id.as_str(), b)).collect();
    let mut endpoint_rows = Vec::with_capacity(all_endpoints.len());
    for e in &all_endpoints {
        let mut top: Vec<(ExitCode, usize)> = Vec::new();
        for f in failures.iter().filter(|f| f.event.endpoint_id.as_deref() == Some(e.id.as_str())) {
            if let Some(code) = f.event.exit_code {
                match top.iter_mut().find(|(c, _)| *c == code) {
                    Some(t) => t.1 += 1,
                    None => top.push((code, 1)),
                }
            }
        }
        top.sort_by(|a, b| b.1.cmp(&a.1));
        top.truncate(3);
        let stored = endpoint_health::get(&state.db, &e.id).await?;
        endpoint_rows.push(EndpointRow {
            endpoint: e.clone(),
            disabled_at: disabled.get(&e.id).copied(),
            setup_problems: check::known_problems(e, stored.as_ref().and_then(|r| r.check_problems.as_ref())),
            status: directory::health::current(state, &e.id).await?.status,
            health: health.get(e.id.as_str()).map(|b| (*b).clone()),
            top_failures: top,
        });
    }
    let deliveries: HashMap<String, DeliveryHealth> =
        webhook_deliveries::health_by_app(&state.db, since).await?.into_iter().map(|d| (d.app_id.clone(), d)).collect();
    let app_rows = all_apps
        .iter()
        .map(|a| AppRow {
            app: a.clone(),
            deliveries: deliveries.get(&a.id).cloned().unwrap_or_else(|| DeliveryHealth { app_id: a.id.clone(), ..Default::default() }),
        })
        .collect();
    Ok(View {
        now,
        period,
        since,
        app,
        endpoint,
        notice: q.notice.as_deref().and_then(notice_text),
        csrf,
        funnel,
        names: all_endpoints.iter().map(|e| (e.id.clone(), e.name.clone())).collect(),
        endpoints: endpoint_rows,
        failure_groups: groups,
        failures: failures.into_iter().take(FAILURES_LISTED).collect(),
        app_names: all_apps.iter().map(|a| (a.id.clone(), a.name.clone())).collect(),
        apps: app_rows,
        dead: webhook_deliveries::dead(&state.db, DEAD_LISTED).await?,
    })
}
