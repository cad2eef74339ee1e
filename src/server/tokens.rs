//! Tokens we issue (public_token, access_token, refresh_token, application tokens): random, hashed, single use.
//!
//! Owner: [Integrator API]. Compiled only with `ssr`.
