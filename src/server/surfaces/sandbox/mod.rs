//! The built-in sandbox payers: SMART App Launch 2.0 authorization servers and FHIR R4 servers with
//! deterministic synthetic members. Compiled only with `ssr`.
//!
//! The sandbox is a *remote* payer: our server talks to it over HTTP exactly as it talks to a real health plan,
//! never by function call, and the sandbox never reads Link's tables.
//!
//! # State
//! Like a real payer's, its authorization state outlives a process, so a restart (or another instance on the
//! same database) honours everything issued before, and a sync interrupted by a restart resumes:
//! - authorization codes (single use, [`CODE_TTL_SECS`]) and refresh tokens ([`REFRESH_TOKEN_TTL_SECS`], rotated
//!   or not per [`PayerConfig::rotates_refresh_tokens`]) are rows of its own tables `sandbox_codes` and
//!   `sandbox_refresh_tokens`, stored as SHA-256 hashes; expired rows are deleted whenever a row of the same
//!   table is written, and never honoured before;
//! - access tokens and sign-in proofs stay stateless values signed with HMAC-SHA256; the key is created once per
//!   database (`sandbox_keys`, in the clear: it only guards synthetic data) and read at a process's first use;
//! - the per-access-token request counters of the `rate.limited` and `short.token` faults stay in process
//!   memory: a restart or another instance starts counting again, which only makes those faults fire a few
//!   requests later (harmless, and no database write per FHIR request).
//!
//! Its SQL is all in `store.rs` (migration `0500_sandbox.sql`).
//!
//! It runs in two ways:
//! - mounted in the main server ([`router`]) under `/sandbox/{payer}/…`, registered as test-mode endpoints by
//!   [`register_endpoints`]; the only accepted `redirect_uri` is `{public_url}/link/callback`. Its tables are
//!   in the main server's database (SQLite or PostgreSQL), so `.ci/serve` can be restarted mid-sync;
//! - alone on its own port ([`spawn_standalone`], or `link-sdk sandbox`), for tests and benchmarks, with a
//!   database of its own: `link-sdk sandbox` uses the SQLite file `{data-dir}/sandbox.db`
//!   ([`standalone_database_url`]) unless `--sandbox-database-url` names another. An in-memory SQLite is not
//!   offered: through sqlx's `Any` driver every pooled connection would open its own empty memory database, so
//!   tests give it a SQLite file in a temporary folder (or a fresh PostgreSQL database).
//!
//! # Payers
//! Payers differ only by data ([`PayerConfig`], see [`default_payers`]), never by code branches:
//!
//! | payer (`{payer}`) | endpoint id | refreshable | payer-wide faults |
//! |---|---|---|---|
//! | `sandbox-health` — Sandbox Health Plan | [`REFRESHABLE_ENDPOINT_ID`] | yes (grants `offline_access`); refresh tokens rotate: each refresh answers a new one and spends the old | none |
//! | `sandbox-basic` — Sandbox Basic Care | [`NON_REFRESHABLE_ENDPOINT_ID`] | no (never issues a `refresh_token`) | none |
//! | `sandbox-faulty` — Sandbox Faulty Mutual | [`FAULTY_ENDPOINT_ID`] | yes; refresh tokens do not rotate: a refresh answers no `refresh_token` and the same one keeps working | 60 s access tokens, relative `next` links, 429 (`Retry-After: 1`) on every 4th FHIR request of an access token; its CapabilityStatement lists no `_lastUpdated` (a client re-reads everything) |
//!
//! Every payer's codes live [`CODE_TTL_SECS`] (60 s) and its refresh tokens [`REFRESH_TOKEN_TTL_SECS`] (90 days
//! from their issue); access tokens an hour unless a fault says otherwise.
//!
//! # URLs (per payer)
//! - FHIR base: `{base}/sandbox/{payer}/fhir` (also the required `aud`)
//! - discovery: `{fhir_base}/.well-known/smart-configuration`; capability: `{fhir_base}/metadata`
//! - authorize: `{base}/sandbox/{payer}/authorize`; token: `{base}/sandbox/{payer}/token`
//! - client: `client_id=link-sdk` (public client, PKCE `S256` required; a client secret is ignored if sent)
//!
//! # Members
//! Every payer has the same roster ([`members`]); every member signs in with the password `password`
//! ([`PASSWORD`]). The sign-in page lists them.
//!
//! | username | who | data |
//! |---|---|---|
//! | `jane.doe` | typical member | 24 EOBs (inpatient, outpatient, professional, pharmacy), 2 Coverage, clinical records of every type |
//! | `new.member` | newly enrolled | Patient and Coverage only: **no claims**, no clinical records |
//! | `big.claims` | heavy utiliser | **2,400 EOBs** (generated lazily, page by page) — for benchmarks |
//! | `alex.rivera` | family subscriber | 12 EOBs, clinical records; subscriber of the family Coverage |
//! | `sam.rivera` | family dependent | 6 EOBs; Coverage whose `subscriber` is Alex (`Patient/{alex}`), same `subscriberId` |
//!
//! # Faults
//! A fault applies when the member signing in has it, or when the payer has it ([`Faults`]; a member's fault
//! and the payer's combine). Fault members have 60 EOBs and clinical records so that paging faults span pages.
//!
//! | fault | member | what the sandbox does | meant to reach |
//! |---|---|---|---|
//! | member denies consent | `deny.consent` (or anyone pressing *Deny*) | redirects to `redirect_uri?error=access_denied&state=…` right after sign-in | `PAYER_ACCESS_DENIED` |
//! | scope refused | `scope.rejected` | redirects to `redirect_uri?error=invalid_scope&state=…` right after sign-in | `SCOPE_CONFIGURATION_ERROR` |
//! | token endpoint error | `token.error` | the `authorization_code` grant answers 400 `{"error":"invalid_grant"}` | `PAYER_TOKEN_EXCHANGE_FAILED` |
//! | slow token endpoint | `token.slow` | the token endpoint waits [`SandboxConfig::slow_token_delay`] before answering (embedded: our `--payer-timeout-secs` + 5 s; standalone default 35 s) | `PAYER_TIMEOUT` |
//! | callback without `code` | `no.code` | redirects to `redirect_uri?state=…` with neither `code` nor `error` | `MALFORMED_PAYER_CALLBACK` |
//! | altered `state` | `bad.state` | redirects with a valid `code` but `state` = the original with `-altered` appended | `INVALID_STATE` |
//! | 500s | `server.error` | every `ExplanationOfBenefit` request answers 500 OperationOutcome (other types work) | sync `failed` with `PAYER_SERVER_ERROR` once retries are spent (5xx that survive retries end a sync) |
//! | 429 | `rate.limited` | every 3rd FHIR request of an access token answers 429 with `Retry-After: 1` (payer `sandbox-faulty`: every 4th) | retry after `Retry-After` |
//! | short-lived access tokens | `short.token` | `expires_in: 60`, and each access token stops working (401 `invalid_token`) after 4 FHIR requests, so a sync must refresh mid-way without waiting a minute (payer `sandbox-faulty`: 60 s only) | refresh mid-sync |
//! | relative `next` links | `relative.next` | Bundle `next` links are path-absolute references (`/sandbox/{payer}/fhir/…?…`) instead of absolute URLs (payer `sandbox-faulty` too) | URL resolution in the pager |
//! | plan not reachable | `plan.unreachable` | sign-in and token exchange succeed, then **every FHIR request answers 403** OperationOutcome (`code: forbidden`, diagnostics "plan not available through this API") | `PLAN_NOT_REACHABLE` |
//! | no patient context | `no.patient` | the token response has no `patient`, and `GET Patient` without `_id` returns an empty searchset, so the patient cannot be identified | sync `failed` with `SYNC_FAILED` |
//! | claims that change | `changing.claims` | 10 EOB slots that change every day at 00:00 UTC of the sandbox clock: one EOB is gone for the day, the one gone the day before is back, and one more is updated (`meta.versionId`, `meta.lastUpdated`); see `data::changing` | incremental (`_lastUpdated`) and full re-syncs, removal of what the payer deleted |
//! | refresh refused | `refresh.refused` | sign-in, token exchange and FHIR reads work; every `refresh_token` grant answers **403** `{"error":"invalid_grant"}` | `NEEDS_REAUTH`, then repair mode |
//! | narrower scopes | `narrow.scope` | grants only `patient/Patient.read patient/Coverage.read patient/ExplanationOfBenefit.read` (plus `launch/patient` and `offline_access` if asked); other types answer 403 | scope downgrade handling |
//!
//! Notes for the sync: Sam's Coverage references Alex's Patient as `subscriber`; reading it with Sam's token
//! is a 403 (another patient), which a reference resolver must tolerate. Search parameters other than
//! `patient`/`subject`/`beneficiary`, `_id`, `_lastUpdated` (prefixes `ge`, `gt`, `le`, `lt`), `_count` and
//! `_getpagesoffset` are ignored (all results).
//!
//! # Using it in tests
//! - Embedded: `common::spawn_app()` already serves and registers the three payers; drive the sign-in with
//!   [`drive_consent`] (or POST the forms: `GET authorize` sets the `sbx_csrf` cookie and renders hidden
//!   `request` and `csrf` fields; `POST {authorize}/sign-in` with `username`/`password` renders a hidden
//!   `login`; `POST {authorize}/decide` with `decision=approve|deny` answers 303 to the `redirect_uri`).
//! - Remote: [`spawn_standalone`] with `redirect_uris = [format!("{}/link/callback", app.base_url)]`,
//!   `clock = Arc::new(app.clock.clone())` and a database of its own (`Db::connect` on a SQLite file in a
//!   temporary folder), then [`register_endpoints_at`] on the app's database with the sandbox's base URL to
//!   point the directory entries at it.
//!
//! Requests the sandbox rejects on its own: unknown `client_id` or `redirect_uri` (an error page, no redirect,
//! RFC 6749 §4.1.2.1); missing `state`, missing or non-`S256` PKCE, wrong `aud` (`error=invalid_request`);
//! `response_type` other than `code` (`unsupported_response_type`); no usable `patient/` scope (`invalid_scope`).

mod auth;
mod data;
mod fhir;
mod pages;
mod request;
mod store;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use axum::{routing::get, Router};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::{net::TcpListener, sync::OnceCell, task::JoinHandle};

use crate::domain::Mode;
use crate::server::{
    platform::{
        clock::{SharedClock, SystemClock},
        db::Db,
    },
    state::AppState,
    store::endpoints::{self, Endpoint},
};

pub use data::{members, Member};

/// The one password every sandbox member signs in with.
pub const PASSWORD: &str = "password";
/// The only `client_id` the sandbox knows (a public client: PKCE, no secret).
pub const CLIENT_ID: &str = "link-sdk";
/// Endpoint id of `sandbox-health` (refreshable).
pub const REFRESHABLE_ENDPOINT_ID: &str = "6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1001";
/// Endpoint id of `sandbox-basic` (not refreshable).
pub const NON_REFRESHABLE_ENDPOINT_ID: &str = "6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1002";
/// Endpoint id of `sandbox-faulty` (payer-wide faults).
pub const FAULTY_ENDPOINT_ID: &str = "6f1c3a52-8d4e-4b7a-9c21-5a0e7d3b1003";

/// Username of the typical member with claims of every type and clinical records.
pub const MEMBER_TYPICAL: &str = "jane.doe";
/// Username of the member with no claims.
pub const MEMBER_NO_CLAIMS: &str = "new.member";
/// Username of the member with 2,400 ExplanationOfBenefit resources.
pub const MEMBER_LARGE: &str = "big.claims";
/// Username of the family subscriber.
pub const MEMBER_SUBSCRIBER: &str = "alex.rivera";
/// Username of the family dependent (shares the subscriber's Coverage subscriber).
pub const MEMBER_DEPENDENT: &str = "sam.rivera";
/// Username of the member whose claims change every day (fault `daily_changes`); it has
/// [`CHANGING_EOB_SLOTS`] ExplanationOfBenefit slots, one of them gone on any given day.
pub const MEMBER_CHANGING: &str = "changing.claims";
pub use data::changing::SLOTS as CHANGING_EOB_SLOTS;

/// Behaviour that makes a payer or a member fail in a named way (see the module docs' fault table).
/// All fields default to "no fault".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Consent is denied right after sign-in (`error=access_denied`).
    pub deny_consent: bool,
    /// The scope is refused right after sign-in (`error=invalid_scope`), as a payer whose client registration
    /// does not list the scopes we ask for would.
    pub reject_scope: bool,
    /// The `authorization_code` grant answers this RFC 6749 §5.2 error code (HTTP 400).
    pub token_error: Option<&'static str>,
    /// The token endpoint waits [`SandboxConfig::slow_token_delay`] before answering.
    pub slow_token: bool,
    /// The callback carries `state` but neither `code` nor `error`.
    pub callback_without_code: bool,
    /// The callback's `state` differs from the one sent.
    pub alter_state: bool,
    /// FHIR requests for these resource types answer 500 (`"*"` = every type).
    pub server_error_types: Vec<&'static str>,
    /// Every Nth FHIR request of an access token answers 429 with `Retry-After` (0 = never).
    pub rate_limit_every: u32,
    /// Lifetime of access tokens in seconds, overriding the payer's.
    pub access_token_ttl: Option<i64>,
    /// An access token stops working after this many FHIR requests.
    pub access_token_max_requests: Option<u32>,
    /// Bundle `next` links are path-absolute references rather than absolute URLs.
    pub relative_next: bool,
    /// Every FHIR request answers 403: the plan is not reachable through the API.
    pub plan_unreachable: bool,
    /// The token response carries no `patient`, and `GET Patient` (no `_id`) finds nobody: a client cannot
    /// learn whose data it may read.
    pub no_patient_context: bool,
    /// The granted resource scopes are limited to these (narrower than requested).
    pub narrow_scopes: Option<&'static [&'static str]>,
    /// The member's claims change every day at 00:00 UTC of the sandbox clock: one ExplanationOfBenefit is
    /// updated, one comes back and another is gone (see `data::changing`).
    pub daily_changes: bool,
    /// Every `refresh_token` grant answers 403 `{"error":"invalid_grant"}` (the payer ended long-term access):
    /// the authorization needs the patient to sign in again (repair mode).
    pub refresh_refused: bool,
}

impl Faults {
    /// This set combined with `other` (flags OR-ed; the member's values win for options).
    pub fn merged(&self, member: &Faults) -> Faults {
        let mut types = self.server_error_types.clone();
        types.extend(member.server_error_types.iter().copied());
        Faults {
            deny_consent: self.deny_consent || member.deny_consent,
            reject_scope: self.reject_scope || member.reject_scope,
            token_error: member.token_error.or(self.token_error),
            slow_token: self.slow_token || member.slow_token,
            callback_without_code: self.callback_without_code || member.callback_without_code,
            alter_state: self.alter_state || member.alter_state,
            server_error_types: types,
            rate_limit_every: if member.rate_limit_every > 0 { member.rate_limit_every } else { self.rate_limit_every },
            access_token_ttl: member.access_token_ttl.or(self.access_token_ttl),
            access_token_max_requests: member.access_token_max_requests.or(self.access_token_max_requests),
            relative_next: self.relative_next || member.relative_next,
            plan_unreachable: self.plan_unreachable || member.plan_unreachable,
            no_patient_context: self.no_patient_context || member.no_patient_context,
            narrow_scopes: member.narrow_scopes.or(self.narrow_scopes),
            daily_changes: self.daily_changes || member.daily_changes,
            refresh_refused: self.refresh_refused || member.refresh_refused,
        }
    }
}

/// One sandbox payer, described entirely by data.
#[derive(Debug, Clone)]
pub struct PayerConfig {
    /// Path segment: `/sandbox/{slug}/…`.
    pub slug: &'static str,
    /// Directory endpoint id (UUID).
    pub endpoint_id: &'static str,
    /// Display name (sign-in page, directory).
    pub name: &'static str,
    /// Other names patients may search for.
    pub aliases: &'static [&'static str],
    /// Brand colour of the sign-in pages (CSS colour).
    pub brand_color: &'static str,
    /// Whether `offline_access` is granted and a `refresh_token` issued.
    pub refreshable: bool,
    /// Whether the `refresh_token` grant rotates: it answers a new `refresh_token` and the presented one stops
    /// working (RFC 9700 §4.14.2). Otherwise the answer has no `refresh_token` and the same one keeps working
    /// until it expires (RFC 6749 §6 lets a server do either).
    pub rotates_refresh_tokens: bool,
    /// Default access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Authorization code lifetime, seconds (RFC 6749 §4.1.2: at most 10 minutes recommended).
    pub code_ttl: i64,
    /// Refresh token lifetime from its issue, seconds.
    pub refresh_token_ttl: i64,
    /// Whether its CapabilityStatement lists `_lastUpdated` among each type's search parameters (its searches
    /// honour the parameter either way), so a client may ask for changes only.
    pub last_updated_search: bool,
    /// Payer-wide faults.
    pub faults: Faults,
}

/// Authorization code lifetime of the built-in payers, seconds (short on purpose: a client redeems at once).
pub const CODE_TTL_SECS: i64 = 60;
/// Refresh token lifetime of the built-in payers, seconds (90 days).
pub const REFRESH_TOKEN_TTL_SECS: i64 = 90 * 86_400;

/// The built-in payers: `sandbox-health`, `sandbox-basic`, `sandbox-faulty`.
pub fn default_payers() -> Vec<PayerConfig> {
    vec![
        PayerConfig {
            slug: "sandbox-health",
            endpoint_id: REFRESHABLE_ENDPOINT_ID,
            name: "Sandbox Health Plan",
            aliases: &["Sandbox Health", "SHP", "Test Health Plan"],
            brand_color: "#0b5cad",
            refreshable: true,
            rotates_refresh_tokens: true,
            access_token_ttl: 3600,
            code_ttl: CODE_TTL_SECS,
            refresh_token_ttl: REFRESH_TOKEN_TTL_SECS,
            last_updated_search: true,
            faults: Faults::default(),
        },
        PayerConfig {
            slug: "sandbox-basic",
            endpoint_id: NON_REFRESHABLE_ENDPOINT_ID,
            name: "Sandbox Basic Care",
            aliases: &["Basic Care", "SBC"],
            brand_color: "#1f7a4d",
            refreshable: false,
            rotates_refresh_tokens: false,
            access_token_ttl: 3600,
            code_ttl: CODE_TTL_SECS,
            refresh_token_ttl: REFRESH_TOKEN_TTL_SECS,
            last_updated_search: true,
            faults: Faults::default(),
        },
        PayerConfig {
            slug: "sandbox-faulty",
            endpoint_id: FAULTY_ENDPOINT_ID,
            name: "Sandbox Faulty Mutual",
            aliases: &["Faulty Mutual", "SFM"],
            brand_color: "#a3361b",
            refreshable: true,
            rotates_refresh_tokens: false,
            access_token_ttl: 3600,
            code_ttl: CODE_TTL_SECS,
            refresh_token_ttl: REFRESH_TOKEN_TTL_SECS,
            last_updated_search: false,
            faults: Faults {
                access_token_ttl: Some(60),
                relative_next: true,
                rate_limit_every: 4,
                ..Faults::default()
            },
        },
    ]
}

/// Scopes the sandbox understands (SMART App Launch 2.0 v1 and v2 forms for patient-level access).
pub const SUPPORTED_RESOURCE_TYPES: &[&str] = &[
    "Patient",
    "Coverage",
    "ExplanationOfBenefit",
    "Condition",
    "Observation",
    "MedicationRequest",
    "AllergyIntolerance",
    "Immunization",
    "Procedure",
    "Encounter",
    "DiagnosticReport",
    "DocumentReference",
];

/// Resource types readable by id with any valid token (shared, not in a patient compartment).
pub const SHARED_RESOURCE_TYPES: &[&str] =
    &["Organization", "Practitioner", "PractitionerRole", "Location", "Medication"];

/// Settings of one sandbox instance.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Address of the standalone listener (`127.0.0.1:0` picks a free port). Unused when mounted.
    pub addr: SocketAddr,
    /// Base URL as clients see it, no trailing slash; `None` = `http://{bound address}`.
    pub public_url: Option<String>,
    /// Registered `redirect_uri`s, compared byte for byte.
    pub redirect_uris: Vec<String>,
    /// Seed of the synthetic data.
    pub seed: u64,
    /// The clock for every expiry (codes, access and refresh tokens). A test that runs our server and a
    /// standalone sandbox passes the server's `ManualClock` here, so `app.clock.advance(n)` expires payer
    /// tokens too.
    pub clock: SharedClock,
    /// How long the `token.slow` fault makes the token endpoint wait.
    pub slow_token_delay: Duration,
    /// The payers served.
    pub payers: Vec<PayerConfig>,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url)
            .field("redirect_uris", &self.redirect_uris)
            .field("seed", &self.seed)
            .field("slow_token_delay", &self.slow_token_delay)
            .finish_non_exhaustive()
    }
}

impl Default for SandboxConfig {
    /// `127.0.0.1:0`, redirect URIs of a local main server on port 3000, seed 42, the system clock, 35 s delay.
    fn default() -> Self {
        SandboxConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            redirect_uris: vec![
                "http://127.0.0.1:3000/link/callback".to_string(),
                "http://localhost:3000/link/callback".to_string(),
            ],
            seed: 42,
            clock: Arc::new(SystemClock),
            slow_token_delay: Duration::from_secs(35),
            payers: default_payers(),
        }
    }
}

/// One running sandbox: configuration, its database, its signing key (loaded once) and the in-memory request
/// counters of the request-level faults.
pub(crate) struct Sandbox {
    pub base_url: String,
    pub redirect_uris: Vec<String>,
    pub seed: u64,
    pub clock: SharedClock,
    pub slow_token_delay: Duration,
    pub payers: Vec<PayerConfig>,
    pub secure_cookies: bool,
    /// Where codes, refresh tokens and the signing key live ([`store`]).
    pub db: Db,
    /// The HMAC key of [`store::hmac_key`], read from the database on first use.
    key: OnceCell<[u8; 32]>,
    /// FHIR requests seen per access token id (`jti`) and that token's expiry, for the 429 and request-limit
    /// faults. Per process on purpose: a restart (or another instance) starts counting again, which only makes
    /// a fault fire a few requests later.
    pub requests: Mutex<HashMap<String, (u32, i64)>>,
}

/// The sandbox's HMAC key, ready to sign and verify (no `Debug`: it is a secret).
#[derive(Clone, Copy)]
pub(crate) struct Signer<'a>(&'a [u8; 32]);

impl Signer<'_> {
    /// HMAC-SHA256 of `label`, a zero byte and `data`.
    pub fn mac(&self, label: &str, data: &[u8]) -> Vec<u8> {
        let mut m = <Hmac<Sha256>>::new_from_slice(self.0).expect("any key length");
        m.update(label.as_bytes());
        m.update(&[0]);
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

/// Shared handle on a running sandbox.
pub(crate) type Shared = Arc<Sandbox>;

impl Sandbox {
    fn new(cfg: &SandboxConfig, base_url: String, db: Db) -> Self {
        Sandbox {
            secure_cookies: base_url.starts_with("https://"),
            base_url,
            redirect_uris: cfg.redirect_uris.clone(),
            seed: cfg.seed,
            clock: cfg.clock.clone(),
            slow_token_delay: cfg.slow_token_delay,
            payers: cfg.payers.clone(),
            db,
            key: OnceCell::new(),
            requests: Mutex::new(HashMap::new()),
        }
    }

    pub fn payer(&self, slug: &str) -> Option<&PayerConfig> {
        self.payers.iter().find(|p| p.slug == slug)
    }

    pub fn fhir_base(&self, slug: &str) -> String {
        fhir_base(&self.base_url, slug)
    }

    /// The signing key (the same for every process on this database, so what one signed another verifies),
    /// read from or created in the database on the first call of this process.
    ///
    /// # Errors
    /// The database does not answer.
    pub async fn signer(&self) -> anyhow::Result<Signer<'_>> {
        self.key.get_or_try_init(|| store::hmac_key(&self.db, self.now())).await.map(Signer)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// FHIR base URL of `payer` on a sandbox whose base URL is `base_url`.
pub fn fhir_base(base_url: &str, payer: &str) -> String {
    format!("{}/sandbox/{payer}/fhir", base_url.trim_end_matches('/'))
}

/// The directory entry of `payer` served at `base_url` (test mode, `client_id=link-sdk`, no secret,
/// explicit authorize/token URLs so no discovery is needed).
pub fn endpoint_for(base_url: &str, payer: &PayerConfig) -> Endpoint {
    let base = base_url.trim_end_matches('/');
    let mut resource_types: Vec<String> = SUPPORTED_RESOURCE_TYPES.iter().map(|s| s.to_string()).collect();
    resource_types.sort();
    Endpoint {
        id: payer.endpoint_id.to_string(),
        name: payer.name.to_string(),
        aliases: payer.aliases.iter().map(|s| s.to_string()).collect(),
        logo_url: None,
        mode: Mode::Test,
        fhir_base_url: fhir_base(base, payer.slug),
        authorize_url: Some(format!("{base}/sandbox/{}/authorize", payer.slug)),
        token_url: Some(format!("{base}/sandbox/{}/token", payer.slug)),
        client_id: CLIENT_ID.to_string(),
        client_secret_ref: None,
        scopes: None,
        refreshable: payer.refreshable,
        resource_types,
    }
}

/// The routes of one sandbox (paths under `/sandbox/`), bound to its state.
fn routes<S: Clone + Send + Sync + 'static>(sandbox: Shared) -> Router<S> {
    Router::new()
        .route("/sandbox/sandbox.css", get(pages::stylesheet))
        .route("/sandbox/{payer}/brand.css", get(pages::brand_stylesheet))
        .route("/sandbox/{payer}/authorize", get(auth::authorize_page))
        .route("/sandbox/{payer}/authorize/sign-in", axum::routing::post(auth::sign_in))
        .route("/sandbox/{payer}/authorize/decide", axum::routing::post(auth::decide))
        .route("/sandbox/{payer}/token", axum::routing::post(auth::token))
        .route("/sandbox/{payer}/fhir/.well-known/smart-configuration", get(auth::smart_configuration))
        .route("/sandbox/{payer}/fhir/metadata", get(fhir::metadata))
        .route("/sandbox/{payer}/fhir/{rtype}", get(fhir::search))
        .route("/sandbox/{payer}/fhir/{rtype}/{id}", get(fhir::read))
        .with_state(sandbox)
}

/// Configuration of the sandbox mounted in the main server: `{public_url}/link/callback` as the only
/// `redirect_uri`, our clock, our seed, and a slow-token delay just past our payer timeout.
pub fn embedded_config(state: &AppState) -> SandboxConfig {
    SandboxConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        public_url: Some(state.public_url.to_string()),
        redirect_uris: vec![format!("{}/link/callback", state.public_url)],
        seed: state.settings.sandbox_seed,
        clock: state.clock.clone(),
        slow_token_delay: Duration::from_secs(state.settings.payer_timeout_secs + 5),
        payers: default_payers(),
    }
}

/// Routes of the sandbox mounted in the main server under `/sandbox/{payer}/…`, with their own state (built
/// here, once per server). Its tables are in our database ([`store`]); it never reads ours.
pub fn router(state: &AppState) -> Router<AppState> {
    let sandbox = Arc::new(Sandbox::new(&embedded_config(state), state.public_url.to_string(), state.db.clone()));
    routes(sandbox)
}

/// Registers the built-in sandbox payers as test-mode endpoints of this server's directory (upsert by their
/// fixed ids, so restarts and public-URL changes update them in place).
///
/// # Errors
/// Database errors.
pub async fn register_endpoints(state: &AppState) -> anyhow::Result<()> {
    register_endpoints_at(&state.db, state.clock.now(), &state.public_url).await
}

/// Upserts the built-in payers as served by the sandbox at `base_url` (the main server's own, or a standalone
/// one from [`spawn_standalone`]). The endpoint ids are the fixed constants, so pointing them at a standalone
/// sandbox replaces the embedded entries (what a test that wants a genuinely remote payer needs).
///
/// # Errors
/// Database errors.
pub async fn register_endpoints_at(db: &crate::server::platform::db::Db, now: i64, base_url: &str) -> anyhow::Result<()> {
    for payer in default_payers() {
        let endpoint = endpoint_for(base_url, &payer);
        endpoints::upsert(db, now, &endpoint)
            .await
            .with_context(|| format!("registering sandbox payer {}", payer.slug))?;
    }
    Ok(())
}

/// The database of `link-sdk sandbox` when none is given: its own SQLite file, `{data_dir}/sandbox.db`
/// (never the main server's `link.db`: the standalone sandbox is another party).
pub fn standalone_database_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("sandbox.db").display())
}

/// Starts a standalone sandbox on its own listener (`cfg.addr`, e.g. `127.0.0.1:0`) with its state in `db`
/// (see [`standalone_database_url`]; migrated by [`Db::connect`]). Returns its base URL (no trailing slash;
/// FHIR bases are `{base}/sandbox/{payer}/fhir`) and the server task; abort the task to stop it.
///
/// # Errors
/// The address cannot be bound, or the database does not answer (its signing key is read before serving).
pub async fn spawn_standalone(cfg: SandboxConfig, db: Db) -> anyhow::Result<(String, JoinHandle<()>)> {
    let listener = TcpListener::bind(cfg.addr).await.with_context(|| format!("binding {}", cfg.addr))?;
    let local = listener.local_addr()?;
    let base_url = match &cfg.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None if local.ip().is_unspecified() => format!("http://127.0.0.1:{}", local.port()),
        None => format!("http://{local}"),
    };
    let sandbox = Arc::new(Sandbox::new(&cfg, base_url.clone(), db));
    sandbox.signer().await?;
    let app = routes(sandbox).layer(tower_http::trace::TraceLayer::new_for_http());
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Ok((base_url, handle))
}

/// Drives a sandbox sign-in like a browser would, for tests: GETs `authorize_url`, signs in as `username`
/// with [`PASSWORD`], then approves (or denies) consent. Returns the `Location` the sandbox finally redirects
/// to (the `redirect_uri` with `code`/`state` or `error`), or the HTTP status and body of an error page.
///
/// `client` must not follow redirects.
///
/// # Errors
/// Transport errors, or a page that is neither a form nor a redirect (as `Err` with its status and text).
pub async fn drive_consent(
    client: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    approve: bool,
) -> anyhow::Result<String> {
    pages::drive_consent(client, authorize_url, username, approve).await
}
