//! Server half of the hosted screens: builds the [`Screen`] a Leptos page renders (plan search and sync progress
//! come from `services::link_flow`, which the server functions in `app::link` call too).

use anyhow::Context as _;

use crate::{
    app::link::model::{PlanView, PrecheckView, Screen, ScreenPolicy},
    domain::{LinkStep, Mode},
    server::{
        platform::http::csp_source_for_target,
        services::{directory, link_flow},
        state::AppState,
        store::{apps, endpoints, link_sessions},
        surfaces::hosted_link::origins::frame_ancestors,
    },
};

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
        Some(id) => endpoints::get(&state.db, id).await?.map(PlanView::from),
        None => None,
    };
    let query = link_flow::plan_query(&q.unwrap_or_default());
    let precheck = match (step, precheck) {
        (LinkStep::Search, Some(id)) => {
            directory::precheck_choice(state, s.mode, &id, brand.as_deref()).await?.and_then(PrecheckView::of)
        }
        _ => None,
    };
    let results = if step == LinkStep::Search && precheck.is_none() {
        link_flow::plans_matching(state, s.mode, &query).await?.into_iter().map(PlanView::from).collect()
    } else {
        Vec::new()
    };
    let progress = if step == LinkStep::Syncing { link_flow::sync_progress(state, &s).await? } else { Vec::new() };
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
        multiple_plans: s.options.multiple_plans && s.host_origin.is_some(),
        plans_linked: s.plans_linked,
        endpoint,
        endpoint_fixed: s.endpoint_fixed,
        exit_code: s.exit_code.map(|c| c.as_str().to_string()),
        progress,
        query,
        results,
        precheck,
        form_error: err.filter(|e| e == "signature"),
        wait: wait.filter(|w| w == "blocked"),
        renewal: s.repair_authorization_id.is_some(),
    };
    let policy = ScreenPolicy {
        frame_ancestors: frame_ancestors(state, &app, s.mode, s.host_origin.as_deref()),
        form_targets: s.redirect_uri.as_deref().and_then(csp_source_for_target).unwrap_or_default(),
    };
    Ok(Some(Loaded { screen, policy }))
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
