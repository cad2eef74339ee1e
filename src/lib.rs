//! Link SDK: a self-hostable consent application that connects a patient to their health plan.
//!
//! One crate, two builds: `ssr` (the server binary; [`server`] holds everything server-only, so no secret type
//! reaches the wasm) and `hydrate` (the wasm: [`hydrate`] and the islands of [`app`]).
//!
//! # Where things live
//! Dependencies point one way, down this list (`python3 ../shared/tools/rust_cycles.py src` shows no circle):
//!
//! | folder | role |
//! |---|---|
//! | `src/domain/` | values both builds share: `ExitCode`, `Usage`, `Mode`, `LinkStep`, the persisted state enums |
//! | `src/i18n/` | patient-facing words (English, Spanish) and the consent text, both builds |
//! | `src/server/fhir/` | FHIR R4 as data: references, search parameters and their index values, OperationOutcome |
//! | `src/server/platform/` | clock, crypto, database pool, HTTP security headers, TLS and proxies, logs, assets |
//! | `src/server/settings.rs`, `state.rs` | the settings (flags and variables) and `AppState`, the handles every layer gets |
//! | `src/server/store/` | one module per table: the only place its SQL is written |
//! | `src/server/services/` | the product's rules: the link flow, the payer client (discovery, OAuth, refresh, FHIR reads), sync, lifecycle (expiry, refresh schedule, revocation), webhooks, bearer access |
//! | `src/app/` | the Leptos screens (both builds; server functions are thin adapters to `services`) |
//! | `src/server/surfaces/` | HTTP, each with its own error form: hosted Link (HTML), integrator API (RFC 6749 JSON), FHIR API (OperationOutcome), OpenAPI, demo, sandbox payers, health checks |
//! | `src/server/startup.rs`, `cli.rs`, `src/main.rs` | the router and workers, the command line, the binary |
//! | `migrations/`, `public/`, `style/` | SQL per backend, `link.js` and static files, CSS |
//! | `tests/it/`, `end2end/`, `examples/` | integration tests (one binary), Playwright, benchmarks |

#![recursion_limit = "256"]

pub mod app;
pub mod domain;
pub mod i18n;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the wasm build (Leptos islands): sets up the reactive root the islands hydrate under.
///
/// Only the interactive parts of a screen are islands (`#[island]`: plan search, sync progress, the home
/// page's snippet tabs, the connections list); everything else stays server-rendered HTML, so the wasm holds
/// only those parts. The boot script in [`app::shell`] loads the wasm only on pages that contain an island,
/// calls this, then hydrates each `<leptos-island>` element through its exported function.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
