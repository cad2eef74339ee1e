//! Payer OAuth (SMART App Launch 2.0): discovery, PKCE S256 authorize URL, code exchange, refresh.
//!
//! Owner: [Sync]. Compiled only with `ssr`.
