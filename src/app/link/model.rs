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

/// Everything one screen needs. Never carries a token or health data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screen {
    /// Session id (the bearer value in the URL).
    pub sid: String,
    /// Step to render (its last step when the session timed out: see `expired`).
    pub step: LinkStep,
    /// The session timed out before it ended: the screen says so (and a hosted flow can still go back to its app).
    pub expired: bool,
    /// `en` or `es`.
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
