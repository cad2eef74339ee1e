//! The one client of a payer (a health plan's SMART authorization server and FHIR R4 server), used by the link
//! flow, the sync and the lifecycle sweep alike: [`discovery`] of its OAuth endpoints, [`oauth`] (authorize
//! request, code exchange, refresh grant), [`refresh`] (the one refresh of an authorization's payer tokens, with
//! its lease and its classification), and [`fhir_client`] (FHIR reads with the payer token).
//!
//! A payer's token is only ever sent to that payer: token requests go to the token endpoint found for it, FHIR
//! requests only to the origin of the authorization's FHIR base.

pub mod discovery;
pub mod fhir_client;
pub mod oauth;
pub mod refresh;
