//! Management subcommands: apps, endpoints, audit, the funnel and the console's sign-in link.
//!
//! Each subcommand connects to the same database as the server (`--database-url` / `DATABASE_URL`, or the
//! SQLite file under `--data-dir`) through [`Db::connect`], which also runs pending migrations, so the CLI
//! works on a fresh data folder before the server ever started. Output is human-readable by default and
//! JSON with `--json` (for scripts). Secret keys are printed once, when created or rotated, and never again.

use std::{net::SocketAddr, path::{Path, PathBuf}};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret as _;
use serde_json::json;

use crate::server::{
    platform::{
        clock::{Clock as _, SystemClock},
        db::Db,
    },
    settings::Settings,
    services::{
        directory::{self, check, health, import},
        webhooks,
    },
    state::AppState,
    store::{
        apps::{self, AppUpdate, NewApp},
        audit, brands, endpoint_health,
        endpoints::{self, Endpoint},
        plan_requests,
    },
};
use crate::domain::Mode;

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
    Apps(AppsCommand),
    /// Manage the endpoint directory (payers).
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
    /// Read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the conversion funnel of Link sessions: sessions per step, success rate, the exit codes that ended
    /// sessions, and time to success, overall and per endpoint.
    Funnel(FunnelArgs),
    /// Print a one-time sign-in link to the operator console (`/console`): valid 10 minutes, for the first
    /// browser that opens it.
    ConsoleLink(ConsoleLinkArgs),
}

/// Arguments of `link-sdk funnel`.
#[derive(Debug, Clone, Args)]
pub struct FunnelArgs {
    /// Sessions opened since: a duration back from now (`30m`, `24h`, `7d`), a date (`2026-11-01`), an RFC 3339
    /// time or Unix seconds.
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// Only sessions of this app (`app_…`).
    #[arg(long)]
    pub app: Option<String>,
    /// Only sessions whose last chosen plan is this endpoint (its UUID).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `link-sdk console-link`.
#[derive(Debug, Clone, Args)]
pub struct ConsoleLinkArgs {
    /// Print JSON (`{"url", "expires_at"}`).
    #[arg(long)]
    pub json: bool,
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

    /// Database of the sandbox's own state (signing key, authorization codes, refresh tokens): `sqlite://path`
    /// or `postgres://…`. Default: its own SQLite file, `{data-dir}/sandbox.db`.
    #[arg(long = "sandbox-database-url", env = "LINK_SANDBOX_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// `link-sdk apps …`
#[derive(Debug, Clone, Subcommand)]
pub enum AppsCommand {
    /// Create an app and print its test and live key pairs (each secret key is shown once only).
    Create(CreateApp),
    /// List apps with their publishable keys.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace the secret key of one mode; the old one keeps working for a grace period.
    RotateSecret {
        /// The app id (`app_…`).
        #[arg(long)]
        app: String,
        /// Which key pair: `test` or `live`.
        #[arg(long, value_parser = parse_mode)]
        mode: Mode,
        /// Seconds the old secret key stays valid (0 revokes it at once).
        #[arg(long, default_value_t = 86_400)]
        grace_secs: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an app's name, branding, origins, redirect URIs or webhook URL.
    Update(UpdateApp),
    /// Print the app's webhook signing secret (`whsec_…`, created on first use), or replace it with `--rotate`.
    WebhookSecret {
        /// The app id (`app_…`).
        #[arg(long)]
        app: String,
        /// Replace the secret with a new one (receivers must switch to it).
        #[arg(long)]
        rotate: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `apps create`.
#[derive(Debug, Clone, Args)]
pub struct CreateApp {
    /// Display name, shown to patients on the Link screens.
    #[arg(long)]
    pub name: String,
    /// An exact origin allowed to open Link (`https://app.example`); repeat for several.
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// An exact redirect URI for the hosted/mobile flow; repeat for several.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Where webhook events are POSTed.
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// Logo shown on the Link screens (https URL).
    #[arg(long)]
    pub logo_url: Option<String>,
    /// Brand colour of the Link screens (`#rrggbb`).
    #[arg(long)]
    pub brand_color: Option<String>,
    /// Print JSON (`{"app": …, "keys": {…}}`).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `apps update`. Only the options given change; an empty value clears an optional field.
#[derive(Debug, Clone, Args)]
pub struct UpdateApp {
    /// The app id (`app_…`).
    #[arg(long)]
    pub app: String,
    /// New display name.
    #[arg(long)]
    pub name: Option<String>,
    /// Replaces the allowed origins (repeat for several).
    #[arg(long = "allowed-origin")]
    pub allowed_origins: Vec<String>,
    /// Removes every allowed origin.
    #[arg(long, conflicts_with = "allowed_origins")]
    pub clear_allowed_origins: bool,
    /// Replaces the redirect URIs (repeat for several).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Removes every redirect URI.
    #[arg(long, conflicts_with = "redirect_uris")]
    pub clear_redirect_uris: bool,
    /// New webhook URL (`""` removes it).
    #[arg(long)]
    pub webhook_url: Option<String>,
    /// New logo URL (`""` removes it).
    #[arg(long)]
    pub logo_url: Option<String>,
    /// New brand colour (`""` removes it).
    #[arg(long)]
    pub brand_color: Option<String>,
    /// Ask patients for a typed e-signature on consent.
    #[arg(long, value_parser = clap::value_parser!(bool))]
    pub require_signature: Option<bool>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `link-sdk endpoints …`
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointsCommand {
    /// Import a directory file: our JSON (an array of entries, or `{"endpoints": [...], "brands": [...]}`; see
    /// docs/endpoints.example.json) or a SMART User-access Brands bundle (a FHIR Bundle of Organization brands
    /// and Endpoints). Idempotent: importing the same file again changes nothing.
    Import {
        /// The file.
        file: PathBuf,
        /// Where a brands bundle's brands and endpoints go: `live` (default) or `test` (our JSON names its own).
        #[arg(long, value_parser = parse_mode, default_value = "live")]
        mode: Mode,
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List endpoints with their brands, state and health.
    List {
        /// Only this mode: `test` or `live`.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Print JSON (the import format).
        #[arg(long)]
        json: bool,
    },
    /// Offer an endpoint to no new link (its authorizations keep working).
    Disable {
        /// The endpoint id.
        id: String,
    },
    /// Offer a disabled endpoint to patients again.
    Enable {
        /// The endpoint id.
        id: String,
    },
    /// Delete an endpoint (refused while live authorizations use it, unless --force).
    Delete {
        /// The endpoint id.
        id: String,
        /// Revoke every authorization of the endpoint first (their data is expunged, each app is told).
        #[arg(long)]
        force: bool,
    },
    /// Change fields of an endpoint (only the options given; `""` clears an optional one).
    Set(SetEndpoint),
    /// Probe endpoints the way a link would and print one line per problem, with its fix. Results are stored
    /// and shown by `endpoints list` and `GET /link/endpoints`. Exits 1 when a problem is an error.
    Check {
        /// The endpoint id (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every endpoint (of --mode when given).
        #[arg(long)]
        all: bool,
        /// With --all: only this mode.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plans patients looked for and could not find ("Can't find your plan?"), newest first.
    Requests {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Arguments of `endpoints set`.
#[derive(Debug, Clone, Args)]
pub struct SetEndpoint {
    /// The endpoint id.
    pub id: String,
    /// Our OAuth client_id at the payer.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The environment variable holding the client secret (`""`: a public client).
    #[arg(long)]
    pub client_secret_ref: Option<String>,
    /// Extra space-separated scopes (`""`: none).
    #[arg(long)]
    pub scopes: Option<String>,
    /// The payer's authorize URL, when discovery cannot find it (`""`: discover).
    #[arg(long)]
    pub authorize_url: Option<String>,
    /// The payer's token URL, when discovery cannot find it (`""`: discover).
    #[arg(long)]
    pub token_url: Option<String>,
    /// Whether the payer issues refresh tokens.
    #[arg(long, value_parser = clap::value_parser!(bool))]
    pub refreshable: Option<bool>,
    /// Maximum grant time: the longest a patient's grant here is kept before they must link again, in seconds
    /// (0: no maximum).
    #[arg(long)]
    pub max_grant_secs: Option<i64>,
    /// The sign-in service the plan's portal uses, shown to patients before they leave (`""`: unknown).
    #[arg(long)]
    pub identity_provider: Option<String>,
}

/// `link-sdk audit …`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Print the audit trail as JSON lines, oldest first: `{id, at, time, actor, action, app_id,
    /// authorization_id, request_id, detail}`. No health data is ever recorded in it.
    Export {
        /// Only events at or after this Unix time (seconds).
        #[arg(long)]
        since: Option<i64>,
        /// Only events before this Unix time (seconds).
        #[arg(long)]
        until: Option<i64>,
        /// Only events of this app.
        #[arg(long)]
        app: Option<String>,
        /// Only events of this authorization.
        #[arg(long)]
        authorization: Option<String>,
        /// Only actions starting with this prefix (e.g. `fhir.`, `consent.`, `usage.downgraded`).
        #[arg(long)]
        action: Option<String>,
    },
    /// Print authorizations' lifecycle facts as JSON lines (usage requested and effective, downgrade, state and
    /// its reason, expunge times); never tokens, names or health data.
    Authorizations {
        /// Only this app.
        #[arg(long)]
        app: Option<String>,
        /// Only MULTIPLE requests downgraded to ONE_TIME (not billed as MULTIPLE).
        #[arg(long)]
        downgraded: bool,
    },
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::parse(s).ok_or_else(|| format!("{s:?} is not a mode (test or live)"))
}

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    Db::connect(&settings.database_url(), 2).await
}

/// The server state the CLI needs to call the parts that seal secrets (the webhook signing secret): the same
/// database and keyring as the server, no listener, no router.
fn cli_state(settings: &Settings, db: Db) -> anyhow::Result<crate::server::state::AppState> {
    use std::sync::Arc;
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.addr));
    Ok(crate::server::state::AppState {
        leptos_options: leptos::config::LeptosOptions::builder().output_name("link_sdk").build(),
        db,
        clock: Arc::new(SystemClock),
        cipher: Arc::new(crate::server::state::load_cipher(settings)?),
        http: crate::server::state::payer_http_client(settings)?,
        settings: Arc::new(settings.clone()),
        public_url: public_url.trim_end_matches('/').into(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        limits: Arc::new(crate::server::platform::rate_limit::RateLimits::new(settings)),
        audit_queue: Default::default(),
    })
}

fn app_json(app: &apps::App, keys: &[apps::KeyInfo]) -> serde_json::Value {
    json!({
        "id": app.id, "name": app.name, "logo_url": app.logo_url, "brand_color": app.brand_color,
        "allowed_origins": app.allowed_origins, "redirect_uris": app.redirect_uris,
        "webhook_url": app.webhook_url, "require_signature": app.require_signature,
        "keys": keys,
    })
}

fn print_app(app: &apps::App) {
    println!("App {}  \"{}\"", app.id, app.name);
    println!("  allowed origins: {}", join_or_none(&app.allowed_origins));
    println!("  redirect URIs:   {}", join_or_none(&app.redirect_uris));
    println!("  webhook URL:     {}", app.webhook_url.as_deref().unwrap_or("(none)"));
    if app.logo_url.is_some() || app.brand_color.is_some() {
        println!(
            "  branding:        logo {}, colour {}",
            app.logo_url.as_deref().unwrap_or("(none)"),
            app.brand_color.as_deref().unwrap_or("(default)")
        );
    }
    if app.require_signature {
        println!("  consent:         typed e-signature required");
    }
}

fn join_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(" ")
    }
}

/// Runs `apps …`.
///
/// # Errors
/// Database errors or invalid arguments.
pub async fn apps(settings: Settings, cmd: AppsCommand) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let now = SystemClock.now();
    match cmd {
        AppsCommand::Create(c) => create_app(&settings, &db, now, c).await,
        AppsCommand::List { json } => list_apps(&db, now, json).await,
        AppsCommand::RotateSecret { app, mode, grace_secs, json } => {
            rotate_secret(&db, now, &app, mode, grace_secs, json).await
        }
        AppsCommand::WebhookSecret { app, rotate, json } => {
            webhook_secret(&settings, &db, now, &app, rotate, json).await
        }
        AppsCommand::Update(u) => update_app(&db, now, u).await,
    }
}

/// `apps create`: creates the app, records it in the audit trail and prints its keys (the only time the secret
/// keys are shown).
async fn create_app(settings: &Settings, db: &Db, now: i64, c: CreateApp) -> anyhow::Result<()> {
    let (app, keys) = apps::create(
        db,
        now,
        NewApp {
            name: c.name,
            allowed_origins: c.allowed_origins,
            redirect_uris: c.redirect_uris,
            webhook_url: c.webhook_url,
            logo_url: c.logo_url,
            brand_color: c.brand_color,
        },
    )
    .await?;
    audit::record(
        &db.pool,
        now,
        audit::AuditEntry { actor: "operator", action: "app.created", app_id: Some(&app.id), ..Default::default() },
    )
    .await?;
    let webhook_secret = if app.webhook_url.is_some() {
        let state = cli_state(settings, db.clone())?;
        Some(crate::server::services::webhooks::ensure_signing_secret(&state, &app.id).await?)
    } else {
        None
    };
    if c.json {
        let listed = apps::keys(db, &app.id).await?;
        let mut v = app_json(&app, &listed);
        v["secret_keys"] = json!({
            "test": keys.test_secret.expose_secret(),
            "live": keys.live_secret.expose_secret(),
        });
        v["publishable_keys"] = json!({"test": keys.test_publishable, "live": keys.live_publishable});
        if let Some(w) = &webhook_secret {
            v["webhook_secret"] = json!(w.expose_secret());
        }
        println!("{v}");
    } else {
        print_app(&app);
        println!();
        println!("  Test mode (sandbox payers):");
        println!("    publishable key: {}", keys.test_publishable);
        println!("    secret key:      {}", keys.test_secret.expose_secret());
        println!("  Live mode (real payers):");
        println!("    publishable key: {}", keys.live_publishable);
        println!("    secret key:      {}", keys.live_secret.expose_secret());
        if let Some(w) = &webhook_secret {
            println!("  Webhook signing secret (verifies the Link-Signature header):");
            println!("    {}", w.expose_secret());
        }
        println!();
        println!("  Store the secret keys now: they are kept only as hashes and cannot be shown again.");
    }
    Ok(())
}

/// `apps list`: every app with its publishable keys (and how long a rotated secret key stays valid).
async fn list_apps(db: &Db, now: i64, json: bool) -> anyhow::Result<()> {
    let all = apps::list(db).await?;
    let mut out = Vec::new();
    for app in &all {
        out.push((app, apps::keys(db, &app.id).await?));
    }
    if json {
        let v: Vec<_> = out.iter().map(|(a, k)| app_json(a, k)).collect();
        println!("{}", serde_json::Value::Array(v));
    } else if out.is_empty() {
        println!("No apps yet. Create one with: link-sdk apps create --name \"My app\" --allowed-origin https://app.example");
    } else {
        for (app, keys) in out {
            print_app(app);
            for k in keys {
                let grace = k
                    .previous_valid_until
                    .filter(|t| *t > now)
                    .map(|t| format!("  (previous secret valid for {} more s)", t - now))
                    .unwrap_or_default();
                println!("  {} publishable key: {}{grace}", k.mode.as_str(), k.publishable_key);
            }
            println!();
        }
    }
    Ok(())
}

/// `apps rotate-secret`: a new secret key for one mode, the old one valid for `grace_secs` more seconds.
async fn rotate_secret(db: &Db, now: i64, app: &str, mode: Mode, grace_secs: i64, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(grace_secs >= 0, "--grace-secs must be 0 or more");
    let secret = apps::rotate_secret(db, now, app, mode, grace_secs).await?;
    audit::record(
        &db.pool,
        now,
        audit::AuditEntry {
            actor: "operator",
            action: "app.secret_rotated",
            app_id: Some(app),
            detail: Some(json!({"mode": mode.as_str(), "grace_secs": grace_secs})),
            ..Default::default()
        },
    )
    .await?;
    if json {
        println!(
            "{}",
            json!({"app": app, "mode": mode.as_str(), "secret_key": secret.expose_secret(),
                   "previous_valid_until": if grace_secs > 0 { Some(now + grace_secs) } else { None }})
        );
    } else {
        println!("New {} secret key for {app}: {}", mode.as_str(), secret.expose_secret());
        if grace_secs > 0 {
            println!("The previous secret key keeps working for {grace_secs} s.");
        } else {
            println!("The previous secret key no longer works.");
        }
        println!("Store it now: it cannot be shown again.");
    }
    Ok(())
}

/// `apps webhook-secret`: prints the app's webhook signing secret (created on first use; replaced first when
/// `rotate` is set).
async fn webhook_secret(
    settings: &Settings,
    db: &Db,
    now: i64,
    app: &str,
    rotate: bool,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(apps::get(db, app).await?.is_some(), "no app {app}");
    let state = cli_state(settings, db.clone())?;
    let secret = if rotate {
        let s = crate::server::services::webhooks::rotate_signing_secret(&state, app).await?;
        audit::record(
            &db.pool,
            now,
            audit::AuditEntry {
                actor: "operator",
                action: "app.webhook_secret_rotated",
                app_id: Some(app),
                ..Default::default()
            },
        )
        .await?;
        s
    } else {
        crate::server::services::webhooks::ensure_signing_secret(&state, app).await?
    };
    if json {
        println!("{}", json!({"app": app, "webhook_secret": secret.expose_secret()}));
    } else {
        println!("Webhook signing secret of {app}: {}", secret.expose_secret());
    }
    Ok(())
}

/// `apps update`: changes the options given, records it in the audit trail and prints the app.
async fn update_app(db: &Db, now: i64, u: UpdateApp) -> anyhow::Result<()> {
    let change = AppUpdate {
        name: u.name,
        allowed_origins: if u.clear_allowed_origins {
            Some(Vec::new())
        } else {
            Some(u.allowed_origins).filter(|v| !v.is_empty())
        },
        redirect_uris: if u.clear_redirect_uris {
            Some(Vec::new())
        } else {
            Some(u.redirect_uris).filter(|v| !v.is_empty())
        },
        webhook_url: u.webhook_url,
        logo_url: u.logo_url,
        brand_color: u.brand_color,
        require_signature: u.require_signature,
    };
    let app = apps::update(db, now, &u.app, change).await?;
    audit::record(
        &db.pool,
        now,
        audit::AuditEntry { actor: "operator", action: "app.updated", app_id: Some(&app.id), ..Default::default() },
    )
    .await?;
    if u.json {
        let keys = apps::keys(db, &app.id).await?;
        println!("{}", app_json(&app, &keys));
    } else {
        print_app(&app);
    }
    Ok(())
}

/// Runs `endpoints …`.
///
/// # Errors
/// Database errors or invalid arguments; `endpoints check` when it found an error.
pub async fn endpoints(settings: Settings, cmd: EndpointsCommand) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let state = cli_state(&settings, db)?;
    match cmd {
        EndpointsCommand::Import { file, mode, dry_run } => import_endpoints(&state, &file, mode, dry_run).await,
        EndpointsCommand::List { mode, json } => list_endpoints(&state, mode, json).await,
        EndpointsCommand::Disable { id } => {
            let changed = directory::set_disabled(&state, &id, true).await?;
            println!("{}", if changed { format!("Disabled {id}: offered to no new link.") } else { format!("{id} was already disabled.") });
            Ok(())
        }
        EndpointsCommand::Enable { id } => {
            let changed = directory::set_disabled(&state, &id, false).await?;
            println!("{}", if changed { format!("Enabled {id}.") } else { format!("{id} was already enabled.") });
            Ok(())
        }
        EndpointsCommand::Delete { id, force } => match directory::delete(&state, &id, force).await? {
            directory::Deleted::Done(n) => {
                println!("Deleted {id} ({n} authorization(s) revoked).");
                Ok(())
            }
            directory::Deleted::InUse(n) => anyhow::bail!(
                "{n} live authorization(s) use {id}: disable it instead (link-sdk endpoints disable {id}), or delete it \
                 with --force to revoke them first"
            ),
        },
        EndpointsCommand::Set(a) => {
            let change = directory::EndpointChange {
                client_id: a.client_id,
                client_secret_ref: a.client_secret_ref,
                scopes: a.scopes,
                authorize_url: a.authorize_url,
                token_url: a.token_url,
                refreshable: a.refreshable,
                max_grant_secs: a.max_grant_secs,
                identity_provider: a.identity_provider,
            };
            let e = directory::set(&state, &a.id, change).await?;
            println!("Updated {} \"{}\".", e.id, e.name);
            Ok(())
        }
        EndpointsCommand::Check { id, all, mode, json } => check_endpoints(&state, id, all, mode, json).await,
        EndpointsCommand::Requests { limit, json } => {
            let all = plan_requests::latest(&state.db, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("No plan requests.");
            } else {
                for r in all {
                    println!("{}  {:4}  {}  \"{}\"  ({}, app {})", webhooks::rfc3339(r.created_at), r.mode.as_str(), r.id, r.name, r.language, r.app_id);
                }
            }
            Ok(())
        }
    }
}

/// `endpoints import`: parses the file, prints the changes, applies them unless `dry_run`, and records the
/// counts in the audit trail.
async fn import_endpoints(state: &AppState, file: &Path, mode: Mode, dry_run: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = import::parse(&text, mode)?;
    let plan = import::plan(&state.db, &parsed).await?;
    for line in plan.lines() {
        println!("{line}");
    }
    let (ce, ue) = plan.endpoint_counts();
    let (cb, ub) = plan.brand_counts();
    let summary = format!(
        "{} endpoint(s): {ce} created, {ue} updated, {} unchanged; {} brand(s): {cb} created, {ub} updated, {} unchanged.",
        ce + ue + plan.unchanged_endpoints,
        plan.unchanged_endpoints,
        cb + ub + plan.unchanged_brands,
        plan.unchanged_brands,
    );
    if dry_run {
        println!("Dry run, nothing written. Would import {summary}");
        return Ok(());
    }
    let now = state.clock.now();
    import::apply(&state.db, now, &plan).await?;
    for c in &plan.changes {
        if let import::Change::CreateEndpoint(e) | import::Change::UpdateEndpoint(e, _) = c {
            if let Some(r) = &e.client_secret_ref {
                if e.client_secret().is_none() {
                    eprintln!("warning: {} ({}): environment variable {r} is not set here; set it for the server", e.name, e.id);
                }
            }
        }
    }
    audit::record(
        &state.db.pool,
        now,
        audit::AuditEntry {
            actor: "operator",
            action: "endpoints.imported",
            detail: Some(json!({"created": ce, "updated": ue, "unchanged": plan.unchanged_endpoints,
                                "brands_created": cb, "brands_updated": ub, "skipped": plan.skipped.len()})),
            ..Default::default()
        },
    )
    .await?;
    println!("Imported {summary}");
    Ok(())
}

/// A short line of an endpoint's health and last check, for operators.
fn health_line(h: &health::Health) -> String {
    let rate = h.success_rate.map(|r| format!("{:.0}% of {} attempt(s)", r * 100.0, h.attempts)).unwrap_or_else(|| "no attempts".into());
    let median = h.median_connect_secs.map(|s| format!(", median {s} s to connect")).unwrap_or_default();
    let errors = if h.last_error_codes.is_empty() {
        String::new()
    } else {
        format!(", last errors {}", h.last_error_codes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" "))
    };
    let check = match h.checked_at {
        Some(t) => format!("; checked {} ({} error(s), {} warning(s))", webhooks::rfc3339(t), h.check_errors, h.check_warnings),
        None => "; never checked (link-sdk endpoints check)".into(),
    };
    format!("{}: {rate}{median}{errors}{check}", h.status)
}

/// `endpoints list`: the directory (of one mode when given), as a table or as JSON in the import format.
async fn list_endpoints(state: &AppState, mode: Option<Mode>, json: bool) -> anyhow::Result<()> {
    let db = &state.db;
    let all: Vec<Endpoint> =
        endpoints::list(db).await?.into_iter().filter(|e| mode.is_none_or(|m| e.mode == m)).collect();
    if json {
        let brands: Vec<_> = brands::list(db).await?.into_iter().filter(|b| mode.is_none_or(|m| b.mode == m)).collect();
        if brands.is_empty() {
            println!("{}", serde_json::to_string_pretty(&all)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&json!({"endpoints": all, "brands": brands}))?);
        }
        return Ok(());
    }
    if all.is_empty() {
        println!("No endpoints. Import some with: link-sdk endpoints import docs/endpoints.example.json");
        return Ok(());
    }
    for e in all {
        let profile = endpoints::profile(db, &e.id).await?.unwrap_or_default();
        let state_note = match (&profile.disabled_at, e.client_id.is_empty()) {
            (Some(_), _) => "  DISABLED",
            (None, true) => "  NO CLIENT ID",
            _ => "",
        };
        println!(
            "{}  {:4}  {}{}{state_note}\n      {}  client_id={}{}{}",
            e.id,
            e.mode.as_str(),
            e.name,
            if e.aliases.is_empty() { String::new() } else { format!(" (aka {})", e.aliases.join(", ")) },
            e.fhir_base_url,
            if e.client_id.is_empty() { "(none)" } else { &e.client_id },
            e.client_secret_ref.as_deref().map(|r| format!(" secret=${r}")).unwrap_or_default(),
            if e.refreshable { " refreshable" } else { "" },
        );
        let brand_names: Vec<String> = brands::of_endpoint(db, &e.id).await?.into_iter().map(|b| b.name).collect();
        if !brand_names.is_empty() {
            println!("      brands: {}", brand_names.join(", "));
        }
        println!("      health: {}", health_line(&health::assess(state, &e.id).await?));
    }
    Ok(())
}

/// `endpoints check`: probes one endpoint or all, stores each result, updates the health, and prints one line
/// per problem. Fails (exit 1) when a problem is an error.
async fn check_endpoints(state: &AppState, id: Option<String>, all: bool, mode: Option<Mode>, json: bool) -> anyhow::Result<()> {
    let db = &state.db;
    let targets: Vec<Endpoint> = if all {
        endpoints::list(db).await?.into_iter().filter(|e| mode.is_none_or(|m| e.mode == m)).collect()
    } else {
        let id = id.unwrap_or_default();
        vec![endpoints::get(db, &id).await?.ok_or_else(|| anyhow::anyhow!("no endpoint {id}"))?]
    };
    let mut errors = 0;
    let mut report = Vec::new();
    for e in &targets {
        let problems = check::check(&state.http, e).await;
        endpoint_health::record_check(db, state.clock.now(), &e.id, &serde_json::to_value(&problems)?).await?;
        let h = health::reassess(state, &e.id).await?;
        errors += problems.iter().filter(|p| p.severity == check::Severity::Error).count();
        if json {
            report.push(json!({"endpoint_id": e.id, "name": e.name, "problems": problems, "status": h.status}));
        } else {
            let verdict = if problems.is_empty() { "ready".to_string() } else { format!("{} problem(s)", problems.len()) };
            println!("{}  \"{}\"  {verdict} (status {})", e.id, e.name, h.status);
            for p in &problems {
                println!("  {}", p.line());
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    anyhow::ensure!(errors == 0, "{errors} error(s) found");
    Ok(())
}

/// Runs `audit …`.
///
/// # Errors
/// Database or I/O errors.
pub async fn audit(settings: Settings, cmd: AuditCommand) -> anyhow::Result<()> {
    let db = connect(&settings).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        AuditCommand::Export { since, until, app, authorization, action } => {
            let filter = audit::ExportFilter { since, until, app_id: app, authorization_id: authorization, action_prefix: action };
            audit::export(&db, &filter, &mut out).await?;
        }
        AuditCommand::Authorizations { app, downgraded } => {
            use std::io::Write as _;
            for line in crate::server::store::authorizations::operator_view(&db, app.as_deref(), downgraded).await? {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

/// Runs `funnel`: the funnel of the sessions opened since `--since`, as text or JSON.
///
/// # Errors
/// A malformed `--since`; database errors.
pub async fn funnel(settings: Settings, args: FunnelArgs) -> anyhow::Result<()> {
    use crate::server::services::insights::{
        funnel::{self, block_text},
        parse_since,
    };
    use crate::server::store::link_outcomes::{self, OutcomeFilter};
    let now = SystemClock.now();
    let since = parse_since(&args.since, now).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let db = connect(&settings).await?;
    let filter = OutcomeFilter { since, until: i64::MAX, app_id: args.app.clone(), endpoint_id: args.endpoint.clone() };
    let outcomes = link_outcomes::list(&db, &filter).await?;
    let f = funnel::compute(&outcomes);
    let names: std::collections::HashMap<String, String> =
        endpoints::list(&db).await?.into_iter().map(|e| (e.id, e.name)).collect();
    if args.json {
        let per_endpoint: Vec<serde_json::Value> = f
            .per_endpoint
            .iter()
            .map(|(id, b)| json!({"endpoint_id": id, "name": names.get(id), "funnel": b}))
            .collect();
        let v = json!({"since": since, "until": now, "app": args.app, "endpoint": args.endpoint,
                       "overall": f.overall, "per_endpoint": per_endpoint});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let scope = match (&args.app, &args.endpoint) {
        (None, None) => "all apps and endpoints".to_string(),
        (Some(a), None) => format!("app {a}"),
        (None, Some(e)) => format!("endpoint {e}"),
        (Some(a), Some(e)) => format!("app {a}, endpoint {e}"),
    };
    println!(
        "Link funnel: sessions opened since {} ({scope}): {} sessions",
        crate::server::services::webhooks::rfc3339(since),
        f.overall.sessions
    );
    println!();
    println!("Overall");
    for line in block_text(&f.overall, "  ") {
        println!("{line}");
    }
    for (id, b) in &f.per_endpoint {
        println!();
        println!("{} ({id})", names.get(id).map(String::as_str).unwrap_or("unknown endpoint"));
        for line in block_text(b, "  ") {
            println!("{line}");
        }
    }
    Ok(())
}

/// Runs `console-link`: creates a one-time sign-in link to the console, records it in the audit trail, prints it.
///
/// # Errors
/// Database errors.
pub async fn console_link(settings: Settings, args: ConsoleLinkArgs) -> anyhow::Result<()> {
    use crate::server::services::console::{create_link, CONSOLE_LINK_TTL_SECS};
    let db = connect(&settings).await?;
    let now = SystemClock.now();
    let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{}", settings.addr));
    let link = create_link(&db, now, &public_url).await?;
    let entry = audit::AuditEntry {
        actor: "operator",
        action: "console.link_created",
        detail: Some(json!({"sign_in": link.id, "expires_at": link.expires_at})),
        ..Default::default()
    };
    audit::record(&db.pool, now, entry).await?;
    if args.json {
        println!("{}", json!({"url": link.url, "expires_at": link.expires_at}));
    } else {
        println!("Open this link in your browser within {} minutes to sign in to the console:", CONSOLE_LINK_TTL_SECS / 60);
        println!();
        println!("  {}", link.url);
        println!();
        println!("It works once, in the first browser that opens it. Paste it straight into that browser (a chat or");
        println!("mail preview that opens it first would use it up); run `link-sdk console-link` again for another.");
    }
    Ok(())
}
