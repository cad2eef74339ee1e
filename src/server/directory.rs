//! The endpoint directory: payers a patient can pick (upsert, get, search by name and aliases).
//!
//! Owner: [Operators]. Compiled only with `ssr`.
