//! The life of an authorization after the link: its state transitions ([`transitions`]: needs re-consent,
//! revoked, expired, and whether it is readable now), the time rules applied by the sweep ([`sweep`]), and the
//! patient's own view of their connections ([`connections`]).
//!
//! # Encryption at rest
//! Payer tokens are always sealed (`store::authorizations`). With `--encrypt-resources` the JSON of each synced
//! resource is sealed too (`store::resources`), bound by its aad to its `(authorization, type, id)` key. The
//! search columns (`patient_ref`, dates, status, codes) stay in clear so the FHIR API can search; they hold no
//! token or secret. On SQLite, expunge deletes with `secure_delete` on, so deleted rows are overwritten in the
//! file rather than left in free pages.

pub mod connections;
pub mod sweep;
pub mod transitions;
