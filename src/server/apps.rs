//! Apps and their API keys: create, find by publishable key, verify a secret key (hash only).
//!
//! Owner: [Operators]. Compiled only with `ssr`.
