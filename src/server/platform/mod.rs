//! What every part of the server stands on, with no product knowledge: the clock, crypto (tokens, hashes,
//! AEAD), the database pool, HTTP security headers and health, rate limits, TLS and proxies, telemetry, static
//! assets.

pub mod assets;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod http;
pub mod rate_limit;
pub mod telemetry;
pub mod tls;
