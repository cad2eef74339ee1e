//! [`AppState`]: the handles every part of the server receives (database, clock, keyring, HTTP client for
//! payers, settings), built once at start by `startup`. It sits just above `platform` so that every layer can
//! take it without importing the router or the workers.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use tokio_util::sync::CancellationToken;

use crate::server::{
    platform::{clock::SharedClock, crypto::Cipher, db::Db, rate_limit::RateLimits},
    settings::{RunMode, Settings},
};

/// State shared by every handler and server function (`use_context::<AppState>()` inside Leptos).
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos runtime options (from Leptos.toml and `LEPTOS_*`).
    pub leptos_options: LeptosOptions,
    /// The database pool.
    pub db: Db,
    /// The one clock every expiry rule reads.
    pub clock: SharedClock,
    /// Keyring sealing payer tokens and other secrets at rest.
    pub cipher: Arc<Cipher>,
    /// HTTP client for payers: no redirects followed (SSRF), timeouts from settings.
    pub http: reqwest::Client,
    /// The settings in force.
    pub settings: Arc<Settings>,
    /// Public base URL, no trailing slash (e.g. `http://127.0.0.1:3000`).
    pub public_url: Arc<str>,
    /// Cancelled on shutdown: background workers stop when it fires.
    pub shutdown: CancellationToken,
    /// The rate limits of this instance (`--rate-limit-*`).
    pub limits: Arc<RateLimits>,
    /// The records of FHIR reads, written in batches off the request's path.
    pub audit_queue: crate::server::store::audit::AuditQueue,
}

impl AppState {
    /// The resource store's view of this state (pool, keyring, `--encrypt-resources`).
    pub fn resource_store(&self) -> crate::server::store::resources::ResourceStore<'_> {
        crate::server::store::resources::ResourceStore {
            db: &self.db,
            cipher: &self.cipher,
            encrypt: self.settings.encrypt_resources,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("public_url", &self.public_url).field("db", &self.db).finish_non_exhaustive()
    }
}

/// The keyring of the settings: `--encryption-key`, else `--encryption-key-file`, else (local mode) the generated
/// `{data-dir}/encryption.key`. Also used by the management CLI.
///
/// # Errors
/// A missing key in production, or an unreadable or malformed key.
pub fn load_cipher(settings: &Settings) -> anyhow::Result<Cipher> {
    if let Some(key) = &settings.encryption_key {
        return Cipher::new(std::slice::from_ref(key));
    }
    match (&settings.encryption_key_file, settings.run_mode) {
        (Some(path), mode) => Cipher::from_file(path, mode == RunMode::Local),
        (None, RunMode::Local) => Cipher::from_file(&settings.data_dir.join("encryption.key"), true),
        (None, RunMode::Production) => {
            anyhow::bail!("--encryption-key or --encryption-key-file is required with --env production")
        }
    }
}

/// The HTTP client for payers: no redirects followed (SSRF), `--payer-timeout`, a 10 s connect timeout, our
/// user agent. Also used by the management CLI (`endpoints check`).
///
/// # Errors
/// The TLS backend cannot start.
pub fn payer_http_client(settings: &Settings) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context as _;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(settings.payer_timeout_secs))
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("link-sdk/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}
