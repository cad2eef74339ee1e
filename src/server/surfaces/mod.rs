//! HTTP surfaces, each with its own routes and error form: the hosted Link flow (HTML for patients), the
//! integrator API (`/link/*`, RFC 6749 JSON), the FHIR API (`/fhir/*`, OperationOutcome), the demo app, the
//! built-in sandbox payers, the health checks and the operator console (`/console`, HTML for operators).

pub mod binding;
pub mod console;
pub mod demo;
pub mod fhir_api;
pub mod fhir_limits;
pub mod health;
pub mod hosted_link;
pub mod integrator_api;
pub mod openapi;
pub mod sandbox;
