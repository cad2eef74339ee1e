//! Link SDK: a self-hostable consent application that connects a patient to their health plan.
//!
//! One crate, two builds:
//! - `ssr` (the server binary): [`server`] holds everything server-only (settings, database, payer OAuth,
//!   tokens, sync, FHIR API, the sandbox payer). No server secret type is compiled into the wasm.
//! - `hydrate` (the wasm): [`hydrate`] and the islands of [`app`] (the only interactive parts of its screens).

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
