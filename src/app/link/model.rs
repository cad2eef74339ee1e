//! What a hosted Link screen renders: the view model the server builds for one step of one session
//! (server side: `server::surfaces::hosted_link::screen`). Plain data, both builds; never a token or health data.

use serde::{Deserialize, Serialize};

use crate::domain::LinkStep;

/// A plan (directory endpoint) as shown to the patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// Endpoint UUID (the same endpoint may be shown under several brand names).
    pub id: String,
    /// Display name (the brand's when the endpoint has brands).
    pub name: String,
    /// Other names it is known by.
    pub aliases: Vec<String>,
    /// Logo URL, if any.
    pub logo_url: Option<String>,
    /// How connecting to it goes lately, in the terms the patient is told.
    #[serde(default)]
    pub health: PlanHealth,
    /// The brand it is shown under, if any.
    #[serde(default)]
    pub brand_id: Option<String>,
    /// The directory knows what the patient needs before leaving (see [`PrecheckView`]): choosing it shows the
    /// pre-check screen first.
    #[serde(default)]
    pub precheck: bool,
}

/// What the patient needs before leaving for a plan, from the directory (the pre-check screen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecheckView {
    /// The plan.
    pub plan: PlanView,
    /// The plan's patient portal (where the online account lives), when known.
    pub portal_name: Option<String>,
    /// Where to create an account (the portal's URL), when known.
    pub portal_url: Option<String>,
    /// The plan types it serves (e.g. Medicare Advantage, Medicaid), when known.
    pub plan_types: Vec<String>,
    /// The sign-in service the plan uses, when known.
    pub identity_provider: Option<String>,
}

/// An endpoint's health as the patient is told it (the server maps its status and figures onto this).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanHealth {
    /// Not enough to say anything: no note.
    #[default]
    Unknown,
    /// Patients connect; typically within `minutes` (rounded up, at least 1) when known.
    Working {
        /// Median minutes from leaving to being connected.
        minutes: Option<u32>,
    },
    /// Some recent attempts failed: it may take another try.
    Unsteady,
    /// Recent attempts fail: the plan is having problems right now.
    Failing,
}

#[cfg(feature = "ssr")]
impl From<crate::server::store::endpoints::Endpoint> for PlanView {
    /// The endpoint under its own name, without health (the plan already chosen).
    fn from(e: crate::server::store::endpoints::Endpoint) -> Self {
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
}

#[cfg(feature = "ssr")]
impl From<&crate::server::services::directory::health::Health> for PlanHealth {
    /// Nothing until the endpoint has a status from attempts or a check; the typical time to connect (median,
    /// rounded up to whole minutes) when it works.
    fn from(h: &crate::server::services::directory::health::Health) -> Self {
        use crate::domain::HealthStatus;
        match h.status {
            HealthStatus::Unchecked => PlanHealth::Unknown,
            HealthStatus::Ok => PlanHealth::Working {
                minutes: h.median_connect_secs.map(|s| u32::try_from((s.max(0) + 59) / 60).unwrap_or(u32::MAX)),
            },
            HealthStatus::Degraded => PlanHealth::Unsteady,
            HealthStatus::Down => PlanHealth::Failing,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<crate::server::services::directory::PlanChoice> for PlanView {
    /// A picker entry: the brand's name, logo and aliases when it has a brand, the endpoint's otherwise.
    fn from(c: crate::server::services::directory::PlanChoice) -> Self {
        let precheck = PrecheckView::needed(&c);
        PlanView::of_choice(c, precheck)
    }
}

#[cfg(feature = "ssr")]
impl PlanView {
    fn of_choice(c: crate::server::services::directory::PlanChoice, precheck: bool) -> PlanView {
        let crate::server::services::directory::PlanChoice { choice, health, .. } = c;
        PlanView {
            id: choice.endpoint.id.clone(),
            name: choice.name().to_string(),
            logo_url: choice.logo_url().map(str::to_string),
            health: PlanHealth::from(&health),
            brand_id: choice.brand.as_ref().map(|b| b.id.clone()),
            precheck,
            aliases: choice.brand.map_or(choice.endpoint.aliases, |b| b.aliases),
        }
    }
}

#[cfg(feature = "ssr")]
impl PrecheckView {
    /// Whether the directory knows something the patient needs before leaving for this choice (a portal URL,
    /// plan types, the sign-in service).
    fn needed(c: &crate::server::services::directory::PlanChoice) -> bool {
        c.identity_provider.is_some()
            || c.choice.brand.as_ref().is_some_and(|b| b.portal_url.is_some() || !b.plan_types.is_empty())
    }

    /// The pre-check of a choice: what the directory knows the patient needs before leaving (the portal and its
    /// URL, the plan types, the sign-in service). `None` when it knows nothing of the kind: no pre-check screen.
    pub fn of(c: crate::server::services::directory::PlanChoice) -> Option<PrecheckView> {
        if !PrecheckView::needed(&c) {
            return None;
        }
        let (portal_name, portal_url, plan_types) = match &c.choice.brand {
            Some(b) => (b.portal_name.clone(), b.portal_url.clone(), b.plan_types.clone()),
            None => (None, None, Vec::new()),
        };
        let identity_provider = c.identity_provider.clone();
        Some(PrecheckView { plan: PlanView::of_choice(c, true), portal_name, portal_url, plan_types, identity_provider })
    }
}

/// Everything one screen needs. Never carries a token or health data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    /// Session id (the bearer value in the URL).
    pub sid: String,
    /// Step to render (its last step when the session timed out: see `expired`).
    pub step: LinkStep,
    /// The session timed out before it ended: the screen says so (and a hosted flow can still go back to its app).
    pub expired: bool,
    /// `en`, `es` or `ko`.
    pub lang: String,
    /// The app's name.
    pub app_name: String,
    /// The app's logo.
    pub logo_url: Option<String>,
    /// The app's brand colour (`#rrggbb`), validated.
    pub brand_color: Option<String>,
    /// Text colour readable on the brand colour (`#ffffff` or `#111827`).
    pub brand_ink: Option<String>,
    /// `pk_test_` key: show the test-mode badge.
    pub test_mode: bool,
    /// `ONE_TIME` or `MULTIPLE`.
    pub usage: String,
    /// FHIR resource types asked for (empty: all).
    pub requested_resources: Vec<String>,
    /// Ask for a typed e-signature on consent.
    pub require_signature: bool,
    /// Top-level hosted flow (no host page to message).
    pub hosted: bool,
    /// Per-session nonce for postMessage.
    pub nonce: String,
    /// Exact origin of the host page (modal flow).
    pub host_origin: Option<String>,
    /// `autoExit`.
    pub auto_exit: bool,
    /// `multiplePlans` (modal only): the success screen offers "Connect another plan" and "Done".
    pub multiple_plans: bool,
    /// Plans the session linked before the one in play.
    pub plans_linked: i64,
    /// The chosen or preselected plan.
    pub endpoint: Option<PlanView>,
    /// Whether the integrator fixed the plan (search skipped).
    pub endpoint_fixed: bool,
    /// Exit/error code (`error`, `exited`).
    pub exit_code: Option<String>,
    /// Records received so far, (kind in plain words in `lang`, count) (`syncing`).
    pub progress: Vec<(String, i64)>,
    /// Search text (no-JS search).
    pub query: String,
    /// Search results for `query`.
    pub results: Vec<PlanView>,
    /// The pre-check of the plan the patient chose, shown instead of the search (`search` step only).
    pub precheck: Option<PrecheckView>,
    /// A form error to show (`signature`).
    pub form_error: Option<String>,
    /// The payer popup state to show on the payer screen (`blocked`).
    pub wait: Option<String>,
    /// Repair mode: the session renews an existing connection (the consent screen says so).
    #[serde(default)]
    pub renewal: bool,
}

/// What a screen's response must carry besides the page: its CSP `frame-ancestors` and the extra
/// `form-action` target (built on the server, plain strings in both builds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScreenPolicy {
    /// Space-separated exact origins allowed to frame the page.
    pub frame_ancestors: String,
    /// The CSP source of a hosted flow's `redirect_uri` (empty for the modal): its forms end with a 303 there.
    pub form_targets: String,
}
