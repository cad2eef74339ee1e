//! Link SDK: a self-hostable consent application that connects a patient to their health plan.
//!
//! One crate, two builds:
//! - `ssr` (the server binary): [`server`] holds everything server-only (settings, database, payer OAuth,
//!   tokens, sync, FHIR API, the sandbox payer). No server secret type is compiled into the wasm.
//! - `hydrate` (the wasm): [`hydrate`] takes over the server-rendered screens of [`app`].

#![recursion_limit = "256"]

pub mod app;
pub mod domain;

#[cfg(feature = "ssr")]
pub mod server;

/// Entry point of the wasm build: hydrates the server-rendered body.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for tests and benchmarks: set once the page is interactive.
    if let Some(window) = web_sys::window() {
        let _ = js_sys::Reflect::set(&window, &"__linkHydrated".into(), &true.into());
    }
}
