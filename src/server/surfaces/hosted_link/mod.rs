//! The hosted Link flow for patients: `link.js`, the session's screens and forms, the payer hand-off and
//! callback, and the connections page. HTML for people (a plain page when something of ours fails, never
//! internal text), JSON only for the status the modal polls.
//!
//! Routes (the screens themselves are the Leptos page `/link/s/{sid}`, see `app::link`):
//! - `GET /link.js`, `/link/v1/link.js` (+ `.d.ts`), `/link/v1/link-element.js` (+ `.d.ts`),
//!   `/link/v1/link-react.js` (+ `.d.ts`), `/link/frame.js` ([`scripts`]);
//! - `GET /link?publishableKey&externalId&usage&origin&nonce&…` ([`entry`]);
//! - `GET /link/h/{token}`, a hosted (re-connect) link ([`reconnect`]);
//! - `POST /link/s/{sid}/{consent,language,explainer,retry,another,exit,done,missing-plan,remind-later,event}`
//!   ([`steps`]);
//! - `GET|POST /link/s/{sid}/handoff` and `GET /link/callback` ([`payer`]);
//! - `GET /link/s/{sid}/status` and `GET /link/s/{sid}/finish` ([`progress`]);
//! - `GET /link/s/{sid}` and `GET /link/connections` ([`page`]); `GET /link/test-page` ([`pages`], sandbox only).
//!
//! Messages: the hosted screen posts `{source: 'flexpa-link', nonce, type: load|event|syncing|success|exit}` to
//! the host page's exact origin (recorded at `open()`; `load` carries the screen's step and an error's code, so
//! link.js can close the modal from its side the same way); link.js posts `{source: 'flexpa-link-host', nonce,
//! type: 'close'}` to the screen (our origin) when the host page closes it, and the screen records that ending
//! with a beacon to `/exit`; the popup's last page posts `{source: 'link-popup', nonce, result}` to our own
//! origin. Receivers check origin, source window and nonce. Completion is also polled (`/status`) because a
//! payer's Cross-Origin-Opener-Policy can sever `window.opener`.
//!
//! Endings (the contract in `public/link.d.ts`): each session ends once, as `onSuccess` or `onExit` in the modal,
//! or as a redirect to the registered `redirect_uri` in the hosted flow; what closing means on each step is in
//! [`steps::exit`]. The sealed `public_token` stays with the session until the modal has told the host page
//! (`/done`), the hosted flow has handed it over (`/finish`) or the session ends otherwise, whether or not it was
//! exchanged.
//!
//! Exit codes by where they arise: at `open()` (`INVALID_PUBLISHABLE_KEY`, `INVALID_USER`, `INVALID_USAGE`,
//! `INVALID_ENDPOINT`, `ENDPOINT_MODE_MISMATCH`); at the hand-off (discovery: `PAYER_TIMEOUT`,
//! `PAYER_SERVER_ERROR`, `ENDPOINT_CONFIGURATION_ERROR`); at the callback (the `error` parameter, `state`, the code
//! exchange); during sync (`SYNC_FAILED`, `PLAN_NOT_REACHABLE`); and `PATIENT_CANCELLED` for every patient ending
//! before the payer authorized (closing after it is a success).

pub mod entry;
pub mod origins;
pub mod page;
pub mod pages;
pub mod payer;
pub mod progress;
pub mod reconnect;
pub mod respond;
pub mod screen;
pub mod scripts;
pub mod steps;

use axum::{
    routing::{get, post},
    Router,
};

use crate::server::{state::AppState, surfaces::integrator_api};

/// Routes of the hosted flow, merged into the server's router (the Leptos routes of [`page`] are mounted by
/// `startup` with the rest of the app).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/link.js", get(scripts::link_js))
        .route("/link/v1/link.js", get(scripts::link_js))
        .route("/link.d.ts", get(scripts::link_dts))
        .route("/link/v1/link.d.ts", get(scripts::link_dts))
        .route("/link/v1/link-element.js", get(scripts::element_js))
        .route("/link/v1/link-element.d.ts", get(scripts::element_dts))
        .route("/link/v1/link-react.js", get(scripts::react_js))
        .route("/link/v1/link-react.d.ts", get(scripts::react_dts))
        .route("/link/frame.js", get(scripts::frame_js))
        .route(integrator_api::paths::HOSTED_ENTRY, get(entry::entry))
        .route(reconnect::PATH, get(reconnect::open))
        .route("/link/callback", get(payer::callback))
        .route("/link/test-page", get(pages::test_page))
        .route("/link/s/{sid}/consent", post(steps::consent))
        .route("/link/s/{sid}/language", post(steps::language))
        .route("/link/s/{sid}/explainer", post(steps::explainer))
        .route("/link/s/{sid}/retry", post(steps::retry))
        .route("/link/s/{sid}/another", post(steps::another))
        .route("/link/s/{sid}/exit", post(steps::exit))
        .route("/link/s/{sid}/done", post(steps::done))
        .route("/link/s/{sid}/missing-plan", post(steps::missing_plan))
        .route("/link/s/{sid}/remind-later", post(steps::remind_later))
        .route("/link/s/{sid}/event", post(steps::event))
        .route("/link/s/{sid}/handoff", get(payer::handoff).post(payer::handoff_post))
        .route("/link/s/{sid}/status", get(progress::status))
        .route("/link/s/{sid}/finish", get(progress::finish))
        .route(page::LINK_SCREEN_PATH, get(page::link_screen_page))
        .route(page::CONNECTIONS_PATH, get(page::connections_page))
}
