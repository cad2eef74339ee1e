//! Everything server-only. Compiled only with the `ssr` feature, so no type in here (secrets, keys, tokens,
//! database handles) can reach the wasm build.
//!
//! Layers, each importing only the ones before it:
//! [`platform`], [`fhir`] → [`settings`] → [`state`] → [`store`] → [`services`] → [`surfaces`] → [`startup`], [`cli`].

pub mod fhir;
pub mod platform;
pub mod settings;
pub mod state;

pub mod store;

pub mod services;

pub mod surfaces;

pub mod cli;
pub mod startup;
