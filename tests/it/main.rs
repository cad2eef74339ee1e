//! The integration tests, as one test binary (one link step instead of one per file).
//!
//! Every test starts a real server on port 0 with a fresh database (SQLite, or a new database on
//! `TEST_DATABASE_URL`'s PostgreSQL server), talks to it over HTTP, and uses the built-in sandbox payers (or a
//! test payer written in the test) as the remote side. Nothing of our own code is mocked.
//!
//! Shared set-up lives in [`common`] (the server) and [`api_support`] (apps, endpoints, authorizations and
//! synced resources made through the product's own functions); each other module tests one part.

mod api_support;
mod common;

mod config_agreement;
mod directory;
mod fhir_api;
mod fhir_equality;
mod fhir_golden;
mod fhir_input;
mod foundation;
mod hosted;
mod insights;
mod lifecycle;
mod link;
mod link_api;
mod multiplan;
mod openapi_routes;
mod operators;
mod payer_oauth;
mod repair;
mod resync;
mod site_reload;
mod sandbox;
mod sandbox_state;
mod sync;
mod trust;
mod webhooks;
