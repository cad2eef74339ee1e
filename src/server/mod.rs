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
pub mod tls;

// Data access shared by several parts of the product.
pub mod apps;
pub mod authorizations;
pub mod directory;
pub mod tokens;

// Parts of the product.
pub mod audit;
pub mod cli;
pub mod demo;
pub mod fhir_api;
pub mod lifecycle;
pub mod link;
pub mod link_api;
pub mod payer_oauth;
pub mod sandbox;
pub mod sync;
pub mod webhooks;
