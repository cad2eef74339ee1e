//! Authorizations: a patient's grant at a payer for one app and user, with the payer tokens sealed at rest.
//!
//! Owner: [Sync]. Compiled only with `ssr`.
