//! Settings: every setting is a CLI flag and an environment variable (clap with `env`).
//!
//! Compiled only with the `ssr` feature. Secrets are [`secrecy::SecretString`] and have no default outside
//! the local default mode (`--env local`), which generates them once and keeps them under `--data-dir`.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

/// The `link-sdk` command line. With no subcommand it runs `serve`.
#[derive(Debug, Parser)]
#[command(name = "link-sdk", version, about = "Link SDK: connect a patient to their health plan (SMART App Launch + FHIR R4)")]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the hosted Link pages, the integrator API, the sandbox payers and the demo (the default).
    Serve,
    /// Run only the built-in sandbox payers, as a separate "remote" payer process on its own port.
    Sandbox(SandboxArgs),
    /// Manage integrator apps and their keys.
    #[command(subcommand)]
    Apps(super::cli::AppsCommand),
    /// Manage the endpoint directory (payers).
    #[command(subcommand)]
    Endpoints(super::cli::EndpointsCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(super::cli::AuditCommand),
}

/// Arguments of `link-sdk sandbox`.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// Address the standalone sandbox listens on (port 0 picks a free port, printed at start).
    #[arg(long = "sandbox-addr", env = "LINK_SANDBOX_ADDR", default_value = "127.0.0.1:4000")]
    pub addr: SocketAddr,

    /// Base URL of the standalone sandbox as clients see it (default `http://{sandbox-addr}` with the bound port).
    #[arg(long = "sandbox-public-url", env = "LINK_SANDBOX_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// A `redirect_uri` the sandbox accepts (byte for byte); repeat for several. Default: the local main
    /// server's `http://127.0.0.1:3000/link/callback` and `http://localhost:3000/link/callback`.
    #[arg(long = "sandbox-redirect-uri", env = "LINK_SANDBOX_REDIRECT_URIS", value_delimiter = ',')]
    pub redirect_uris: Vec<String>,

    /// Seconds the `token.slow` member's token exchange waits (set it past the main server's --payer-timeout).
    #[arg(long = "sandbox-slow-token-delay", env = "LINK_SANDBOX_SLOW_TOKEN_DELAY", default_value_t = 35)]
    pub slow_token_delay_secs: u64,
}

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
    #[arg(long, env = "LINK_SANDBOX", default_value_t = true, action = clap::ArgAction::Set, global = true)]
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
}

impl Settings {
    /// Settings for tests: local mode, port 0, everything under `data_dir`.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        let cli = Cli::parse_from(["link-sdk", "--addr", "127.0.0.1:0"]);
        Settings { data_dir, ..cli.settings }
    }

    /// The database URL in force: `--database-url`, or a SQLite file under the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}?mode=rwc", self.data_dir.join("link.db").display()),
        }
    }
}
