//! Everything server-only. Compiled only with the `ssr` feature, so no type in here (secrets, keys, tokens,
//! database handles) can reach the wasm build.

pub mod assets;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod http;
pub mod startup;
pub mod telemetry;
