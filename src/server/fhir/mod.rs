//! FHIR R4 as data: pure functions over resources, references and search parameters, shared by the store,
//! the sync and the FHIR API. No I/O, no state, and nothing of ours imported from outside this folder, so any
//! layer may use it.
//!
//! - [`capability`] — what a server's CapabilityStatement offers (search parameters per type).
//! - [`reference`] — `Reference.reference` strings (relative, absolute, versioned, contained, logical).
//! - [`search`] — the types and search parameters served, and how their values parse and match.
//! - [`index`] — the index values read from a resource when it is stored.
//! - [`outcome`] — `OperationOutcome`.

pub mod capability;
pub mod index;
pub mod outcome;
pub mod reference;
pub mod search;
