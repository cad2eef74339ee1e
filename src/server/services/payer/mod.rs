//! The client of a payer (a health plan's SMART authorization server and FHIR R4 server).

pub mod fhir_client;
pub mod oauth;
