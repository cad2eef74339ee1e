//! Server half of the hosted screens: builds the [`Screen`] a Leptos page renders, plan search, sync progress.
//! Called by the page handler and by the server functions in `app::link`.

use anyhow::Context as _;

use crate::{
    app::link::model::{PlanHealth, PlanView, PrecheckView, Screen, ScreenPolicy},
    domain::{HealthStatus, LinkStep, Mode},
    i18n,
    server::{
        platform::http::csp_source_for_target,
        services::{
            directory::{self, health::Health},
            link_flow, sync,
        },
        state::AppState,
        store::{
            apps,
            brands::{self, Brand},
            endpoints,
            link_sessions::{self, LinkSession},
        },
        surfaces::hosted_link::{origins::frame_ancestors, respond::live_session},
    },
};

/// Most plans listed at once.
const SEARCH_LIMIT: i64 = 50;

/// A screen and the CSP its response must carry.
pub struct Loaded {
    /// What to render.
    pub screen: Screen,
    /// `frame-ancestors` and the extra `form-action` target of its page.
    pub policy: ScreenPolicy,
}

/// Query parameters of a Link screen (`GET /link/s/{sid}?…`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ScreenQuery {
    /// Search text (the no-JS search form).
    pub q: Option<String>,
    /// A form error to show (`signature`).
    pub err: Option<String>,
    /// The payer panel's state (`blocked`), asked for by frame.js.
    pub wait: Option<String>,
    /// An endpoint the patient chose whose pre-check to show (search step).
    pub precheck: Option<String>,
    /// The brand it was chosen under.
    pub brand: Option<String>,
}

/// Builds the screen of session `sid`; `None` when it is unknown. A session that timed out shows that it expired
/// (unless it had already ended: then its last screen), so a hosted one can still go back to its app.
///
/// # Errors
/// Database errors, or a session whose app is gone.
pub async fn load(state: &AppState, sid: &str, params: ScreenQuery) -> anyhow::Result<Option<Loaded>> {
    let ScreenQuery { q, err, wait, precheck, brand } = params;
    let Some(mut s) = link_sessions::get(&state.db, sid).await? else { return Ok(None) };
    let expired = s.expires_at <= state.clock.now() && !s.step.is_ended();
    if !expired {
        link_flow::refresh_step(state, &mut s).await?;
    }
    let app = apps::get(&state.db, &s.app_id).await?.context("link session of a missing app")?;
    let mut step = s.step;
    // frame.js asks for the payer panel right after opening the popup: the handoff may not have landed yet.
    if wait.is_some() && matches!(step, LinkStep::Search | LinkStep::Connect) {
        step = LinkStep::Payer;
    }
    let endpoint = match &s.endpoint_id {
        Some(id) => endpoints::get(&state.db, id).await?.map(plan_view),
        None => None,
    };
    let query = q.unwrap_or_default().chars().take(100).collect::<String>();
    let precheck = match (step, precheck) {
        (LinkStep::Search, Some(id)) => precheck_of(state, s.mode, &id, brand.as_deref()).await?,
        _ => None,
    };
    let results = if step == LinkStep::Search && precheck.is_none() { search_mode(state, s.mode, &query).await? } else { Vec::new() };
    let progress = if step == LinkStep::Syncing { progress_of(state, &s).await? } else { Vec::new() };
    let brand_color = app.brand_color.as_deref().and_then(valid_hex_color);
    let brand_ink = brand_color.as_deref().map(ink_for);
    let screen = Screen {
        sid: s.id.clone(),
        step,
        expired,
        lang: s.options.language.clone(),
        app_name: app.name.clone(),
        logo_url: app.logo_url.clone().filter(|u| u.starts_with("https://") || u.starts_with('/')),
        brand_color,
        brand_ink,
        test_mode: s.mode == Mode::Test,
        usage: s.usage.as_str().into(),
        requested_resources: s.options.requested_resources.clone(),
        require_signature: app.require_signature,
        hosted: s.host_origin.is_none(),
        nonce: s.nonce.clone(),
        host_origin: s.host_origin.clone(),
        auto_exit: s.options.auto_exit,
        endpoint,
        endpoint_fixed: s.endpoint_fixed,
        exit_code: s.exit_code.map(|c| c.as_str().to_string()),
        progress,
        query,
        results,
        precheck,
        form_error: err.filter(|e| e == "signature"),
        wait: wait.filter(|w| w == "blocked"),
    };
    let policy = ScreenPolicy {
        frame_ancestors: frame_ancestors(state, &app, s.mode, s.host_origin.as_deref()),
        form_targets: s.redirect_uri.as_deref().and_then(csp_source_for_target).unwrap_or_default(),
    };
    Ok(Some(Loaded { screen, policy }))
}

/// Plans matching `q` for session `sid`.
///
/// # Errors
/// Database errors; an unknown session gives an empty list.
pub async fn search(state: &AppState, sid: &str, q: &str) -> anyhow::Result<Vec<PlanView>> {
    let Some(s) = live_session(state, sid).await? else { return Ok(Vec::new()) };
    let q: String = q.chars().take(100).collect();
    search_mode(state, s.mode, &q).await
}

/// Records received so far for session `sid`: (kind in plain words, count), see `progress_of`.
///
/// # Errors
/// Database errors.
pub async fn progress(state: &AppState, sid: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let Some(s) = live_session(state, sid).await? else { return Ok(Vec::new()) };
    progress_of(state, &s).await
}

/// The directory's choices for `q` (brands first, see [`directory::search`]), each with its health in the
/// patient's terms (read once per endpoint).
async fn search_mode(state: &AppState, mode: Mode, q: &str) -> anyhow::Result<Vec<PlanView>> {
    let mut healths: std::collections::HashMap<String, PlanHealth> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for c in directory::search(state, mode, q, SEARCH_LIMIT).await? {
        let health = match healths.get(&c.endpoint.id) {
            Some(h) => *h,
            None => {
                let h = plan_health(&directory::health::current(state, &c.endpoint.id).await?);
                healths.insert(c.endpoint.id.clone(), h);
                h
            }
        };
        let identity_provider = endpoints::profile(&state.db, &c.endpoint.id).await?.and_then(|p| p.identity_provider);
        let (name, logo_url) = (c.name().to_string(), c.logo_url().map(str::to_string));
        let brand_id = c.brand.as_ref().map(|b| b.id.clone());
        let mut plan = PlanView { id: c.endpoint.id.clone(), name, aliases: Vec::new(), logo_url, health, brand_id, precheck: false };
        plan.precheck = precheck_view(plan.clone(), c.brand.as_ref(), identity_provider).is_some();
        plan.aliases = c.brand.map_or(c.endpoint.aliases, |b| b.aliases);
        out.push(plan);
    }
    Ok(out)
}

/// The pre-check of a plan: what the directory knows the patient needs before leaving (the portal and its
/// URL, the plan types, the sign-in service). `None` when it knows nothing of the kind: no pre-check screen.
fn precheck_view(plan: PlanView, brand: Option<&Brand>, identity_provider: Option<String>) -> Option<PrecheckView> {
    let (portal_name, portal_url, plan_types) = match brand {
        Some(b) => (b.portal_name.clone(), b.portal_url.clone(), b.plan_types.clone()),
        None => (None, None, Vec::new()),
    };
    (portal_url.is_some() || !plan_types.is_empty() || identity_provider.is_some())
        .then_some(PrecheckView { plan, portal_name, portal_url, plan_types, identity_provider })
}

/// The pre-check of linkable endpoint `id` of `mode` under brand `brand_id` (ignored unless it is a brand of
/// that endpoint), when the directory has one.
async fn precheck_of(state: &AppState, mode: Mode, id: &str, brand_id: Option<&str>) -> anyhow::Result<Option<PrecheckView>> {
    let Some(e) = endpoints::get_linkable(&state.db, id).await?.filter(|e| e.mode == mode) else { return Ok(None) };
    let brand = match brand_id {
        Some(b) => brands::get(&state.db, b).await?.filter(|b| b.mode == mode && b.endpoint_ids.contains(&e.id)),
        None => None,
    };
    let identity_provider = endpoints::profile(&state.db, &e.id).await?.and_then(|p| p.identity_provider);
    let health = plan_health(&directory::health::current(state, &e.id).await?);
    let plan = PlanView {
        id: e.id.clone(),
        name: brand.as_ref().map_or(e.name.clone(), |b| b.name.clone()),
        aliases: Vec::new(),
        logo_url: brand.as_ref().and_then(|b| b.logo_url.clone()).or(e.logo_url.clone()),
        health,
        brand_id: brand.as_ref().map(|b| b.id.clone()),
        precheck: true,
    };
    Ok(precheck_view(plan, brand.as_ref(), identity_provider))
}

/// An endpoint's health as the patient is told it: nothing until it has a status from attempts or a check;
/// the typical time to connect (median, rounded up to whole minutes) when it works.
pub fn plan_health(h: &Health) -> PlanHealth {
    match h.status {
        HealthStatus::Unchecked => PlanHealth::Unknown,
        HealthStatus::Ok => PlanHealth::Working {
            minutes: h.median_connect_secs.map(|s| u32::try_from((s.max(0) + 59) / 60).unwrap_or(u32::MAX)),
        },
        HealthStatus::Degraded => PlanHealth::Unsteady,
        HealthStatus::Down => PlanHealth::Failing,
    }
}

/// Records received so far, as the patient reads them (plain words in the session's language, see
/// [`i18n::record_kinds`](crate::i18n::record_kinds)).
pub async fn progress_of(state: &AppState, s: &LinkSession) -> anyhow::Result<Vec<(String, i64)>> {
    let Some(authz) = &s.authorization_id else { return Ok(Vec::new()) };
    let by_type: Vec<(String, i64)> =
        sync::status(&state.db, authz).await?.map(|st| st.progress.into_iter().collect()).unwrap_or_default();
    Ok(i18n::record_kinds(&s.options.language, &by_type))
}

fn plan_view(e: endpoints::Endpoint) -> PlanView {
    PlanView {
        id: e.id,
        name: e.name,
        aliases: e.aliases,
        logo_url: e.logo_url,
        health: PlanHealth::Unknown,
        brand_id: None,
        precheck: false,
    }
}

/// `#rgb` / `#rrggbb` normalised to `#rrggbb`, or `None` for anything else (it ends up in CSS).
pub fn valid_hex_color(c: &str) -> Option<String> {
    let hex = c.strip_prefix('#')?;
    if !hex.chars().all(|ch| ch.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        6 => Some(format!("#{}", hex.to_ascii_lowercase())),
        3 => Some(format!("#{}", hex.chars().flat_map(|ch| [ch, ch]).collect::<String>().to_ascii_lowercase())),
        _ => None,
    }
}

/// White or near-black text for a brand colour, whichever has the higher WCAG contrast ratio.
pub fn ink_for(hex: &str) -> String {
    let channel = |i: usize| {
        let v = u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0) as f64 / 255.0;
        if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    let dark = 0.2126 * (0x11 as f64 / 255.0_f64).powf(2.2) + 0.7152 * (0x18 as f64 / 255.0_f64).powf(2.2) + 0.0722 * (0x27 as f64 / 255.0_f64).powf(2.2);
    let with_white = 1.05 / (l + 0.05);
    let with_dark = (l + 0.05) / (dark + 0.05);
    if with_white >= with_dark { "#ffffff".into() } else { "#111827".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours() {
        assert_eq!(valid_hex_color("#ABC").as_deref(), Some("#aabbcc"));
        assert_eq!(valid_hex_color("red"), None);
        assert_eq!(valid_hex_color("#12345g"), None);
        assert_eq!(ink_for("#1d4ed8"), "#ffffff");
        assert_eq!(ink_for("#fde047"), "#111827");
    }
}
