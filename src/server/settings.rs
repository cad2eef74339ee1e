//! Settings: every setting is a CLI flag and an environment variable (clap with `env`).
//!
//! Compiled only with the `ssr` feature. Secrets are [`secrecy::SecretString`] and have no default outside
//! the local default mode (`--env local`), which generates them once and keeps them under `--data-dir`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, ValueEnum};
use secrecy::SecretString;

/// Where the server runs: `local` generates missing secrets under `--data-dir`; `production` requires them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunMode {
    /// Developer default: secrets are generated once and kept under `--data-dir`; sandbox payers and a demo app exist.
    Local,
    /// Every secret must be given; nothing is generated.
    Production,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every runtime setting of the server.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Run mode: `local` (generate missing secrets under --data-dir) or `production` (all secrets required).
    #[arg(long = "env", env = "LINK_ENV", value_enum, default_value = "local", global = true)]
    pub run_mode: RunMode,

    /// Address to listen on. Port 0 picks a free port; the chosen one is printed at start.
    #[arg(long, env = "LINK_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,

    /// Public base URL of this server as browsers and payers see it (e.g. `https://link.example.com`).
    /// Defaults to `http://{addr}` with the bound port.
    #[arg(long, env = "LINK_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Database URL: `sqlite://path` (default: a file under --data-dir) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Maximum connections in the database pool.
    #[arg(long, env = "LINK_DB_MAX_CONNECTIONS", default_value_t = 10, global = true)]
    pub db_max_connections: u32,

    /// Folder for the SQLite file and, in local mode, generated secrets.
    #[arg(long, env = "LINK_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Path of the Leptos runtime configuration file.
    #[arg(long, env = "LINK_LEPTOS_CONFIG", default_value = "Leptos.toml", global = true)]
    pub leptos_config: PathBuf,

    /// Folder holding the built site (`pkg/` with the hashed wasm, JS and CSS). Overrides Leptos.toml's site-root.
    #[arg(long, env = "LEPTOS_SITE_ROOT", global = true)]
    pub site_root: Option<PathBuf>,

    /// Key that encrypts payer tokens at rest: 32 bytes, base64. Required in production (or --encryption-key-file).
    #[arg(long, env = "LINK_ENCRYPTION_KEY", global = true, hide_env_values = true)]
    pub encryption_key: Option<SecretString>,

    /// File holding the encryption key (32 bytes, base64). Local mode creates `{data-dir}/encryption.key`.
    #[arg(long, env = "LINK_ENCRYPTION_KEY_FILE", global = true)]
    pub encryption_key_file: Option<PathBuf>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "LINK_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` EnvFilter syntax (e.g. `info,link_sdk=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info", global = true)]
    pub log_filter: String,

    /// Mount the built-in sandbox payers under `/sandbox/{payer}` and register them as test-mode endpoints.
    /// Default: on in local mode, off with `--env production` (`--sandbox true` turns them on there).
    #[arg(long = "sandbox", env = "LINK_SANDBOX", action = clap::ArgAction::Set, global = true)]
    pub sandbox_flag: Option<bool>,

    /// Whether the sandbox payers are mounted (from `--sandbox` and `--env`; see [`Settings::resolve`]).
    #[arg(skip)]
    pub sandbox: bool,

    /// Seed of the sandbox's synthetic members (same seed, same data).
    #[arg(long, env = "LINK_SANDBOX_SEED", default_value_t = 42, global = true)]
    pub sandbox_seed: u64,

    /// Number of sync jobs run at once by this instance.
    #[arg(long, env = "LINK_SYNC_WORKERS", default_value_t = 4, global = true)]
    pub sync_workers: usize,

    /// Time allowed for in-flight requests to finish after SIGINT/SIGTERM, in seconds.
    #[arg(long, env = "LINK_SHUTDOWN_GRACE", default_value_t = 20, global = true)]
    pub shutdown_grace_secs: u64,

    /// Timeout of every request to a payer, in seconds.
    #[arg(long, env = "LINK_PAYER_TIMEOUT", default_value_t = 30, global = true)]
    pub payer_timeout_secs: u64,

    /// PEM certificate chain: with --tls-key, serve HTTPS directly (rustls). Without both, plain HTTP
    /// (run behind a TLS-terminating proxy then, and set --public-url to its https:// URL).
    #[arg(long, env = "LINK_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching --tls-cert.
    #[arg(long, env = "LINK_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,

    /// Address or CIDR of a reverse proxy whose `X-Forwarded-For` / `X-Forwarded-Proto` headers are trusted
    /// (repeat, or comma-separate in the variable). From any other peer these headers are dropped.
    #[arg(long = "trusted-proxy", env = "LINK_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Encrypt synced FHIR resources at rest (AES-256-GCM, same keyring as payer tokens). Payer tokens and
    /// webhook secrets are always encrypted; this adds the resources' JSON.
    #[arg(long, env = "LINK_ENCRYPT_RESOURCES", action = clap::ArgAction::SetTrue, global = true)]
    pub encrypt_resources: bool,

    /// How long a MULTIPLE authorization whose payer refused a refresh stays readable (re-consent window), in
    /// seconds, when it has no earlier expiry of its own. Default 30 days.
    #[arg(long, env = "LINK_REAUTH_GRACE", default_value_t = 2_592_000, global = true)]
    pub reauth_grace_secs: i64,

    /// How often each live MULTIPLE authorization is re-synced, in seconds (each run comes up to a tenth of it
    /// early, at random, so re-syncs spread out); 0: no scheduled re-syncs. Default 24 hours.
    #[arg(long, env = "LINK_RESYNC_INTERVAL", default_value_t = 86_400, global = true)]
    pub resync_interval_secs: i64,

    /// How many of an endpoint's latest link attempts its health is computed from (success rate, median time
    /// to connect, status).
    #[arg(long, env = "LINK_ENDPOINT_HEALTH_WINDOW", default_value_t = 20, global = true)]
    pub endpoint_health_window: usize,
    /// How long before a MULTIPLE authorization's payer grant ends (`refresh_expires_at`) the
    /// `authorization.pending_expiration` webhook is sent, in seconds. Default 7 days.
    #[arg(long, env = "LINK_PENDING_EXPIRATION", default_value_t = 604_800, global = true)]
    pub pending_expiration_secs: i64,

    /// Link sessions one client address may start per minute (`GET /link`, `GET /link/auth`); 0: no limit.
    #[arg(long, env = "LINK_RATE_LIMIT_SESSIONS", default_value_t = 30, global = true)]
    pub rate_limit_sessions: u32,

    /// Requests per minute one client address may make to the token endpoints (`/link/token`, `/link/exchange`,
    /// `/link/test/public_token`); 0: no limit.
    #[arg(long, env = "LINK_RATE_LIMIT_TOKEN", default_value_t = 120, global = true)]
    pub rate_limit_token: u32,

    /// `public_token` exchanges per minute per app; 0: no limit.
    #[arg(long, env = "LINK_RATE_LIMIT_EXCHANGE", default_value_t = 300, global = true)]
    pub rate_limit_exchange: u32,

    /// FHIR API requests per minute per access token; 0: no limit.
    #[arg(long, env = "LINK_RATE_LIMIT_FHIR", default_value_t = 600, global = true)]
    pub rate_limit_fhir: u32,

    /// Re-syncs (`POST /link/sync`) per minute per authorization that queue a job; 0: no limit.
    #[arg(long, env = "LINK_RATE_LIMIT_RESYNC", default_value_t = 1, global = true)]
    pub rate_limit_resync: u32,

    /// Days the funnel keeps how each Link session went (`link_outcomes`: stages reached, times, exit code; no
    /// user id, nothing that can act), counted from the session's opening.
    #[arg(long, env = "LINK_INSIGHTS_RETENTION_DAYS", default_value_t = 395, global = true)]
    pub insights_retention_days: u32,

    /// Serve `/link/test-page` (a bare integrator page for trying Link). Default: on in local mode, off with
    /// `--env production`.
    #[arg(long, env = "LINK_TEST_PAGE", action = clap::ArgAction::Set, global = true)]
    pub test_page: Option<bool>,
}

impl Settings {
    /// Settings for tests: local mode, port 0, everything under `data_dir`.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: Settings,
        }
        let defaults = <Defaults as clap::Parser>::parse_from(["link-sdk", "--addr", "127.0.0.1:0"]);
        Settings { data_dir, ..defaults.settings }.resolve()
    }

    /// Fills in the settings whose default depends on `--env`: the sandbox payers and `/link/test-page` are on in
    /// local mode and off in production unless asked for. Call it once after parsing.
    pub fn resolve(mut self) -> Self {
        let local = self.run_mode == RunMode::Local;
        self.sandbox = self.sandbox_flag.unwrap_or(local);
        self.test_page = Some(self.test_page.unwrap_or(local));
        self
    }

    /// Whether `/link/test-page` is served (it needs the sandbox payers too).
    pub fn test_page_enabled(&self) -> bool {
        self.sandbox && self.test_page.unwrap_or(self.run_mode == RunMode::Local)
    }

    /// The database URL in force: `--database-url`, or a SQLite file under the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("link.db").display()),
        }
    }
}
