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
    store::{
        apps::{self, AppUpdate, NewApp},
        audit,
        endpoints::{self, Endpoint},
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
    /// Import (insert or update by id) the endpoints of a JSON file: an array of entries, or
    /// `{"endpoints": [...]}`. See docs/endpoints.example.json.
    Import {
        /// The JSON file.
        file: PathBuf,
    },
    /// Disable an endpoint: patients no longer see it in the plan search nor reach it (the console can do it too).
    Disable {
        /// The endpoint's UUID.
        id: String,
    },
    /// Enable an endpoint again after `endpoints disable` (or the console) disabled it.
    Enable {
        /// The endpoint's UUID.
        id: String,
    },
    /// List endpoints.
    List {
        /// Only this mode: `test` or `live`.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Print JSON (the import format).
        #[arg(long)]
        json: bool,
    },
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
        http: reqwest::Client::new(),
        settings: Arc::new(settings.clone()),
        public_url: public_url.trim_end_matches('/').into(),
        shutdown: tokio_util::sync::CancellationToken::new(),
        limits: Arc::new(crate::server::platform::rate_limit::RateLimits::new(settings)),
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

/// Parses an import file: a JSON array of [`Endpoint`]s, or an object with an `endpoints` array.
///
/// # Errors
/// Malformed JSON or an invalid entry (with its position).
pub fn parse_endpoints_file(text: &str) -> anyhow::Result<Vec<Endpoint>> {
    let value: serde_json::Value = serde_json::from_str(text).context("the endpoints file is not JSON")?;
    let array = match value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(mut o) => match o.remove("endpoints") {
            Some(serde_json::Value::Array(a)) => a,
            _ => anyhow::bail!("expected an array of endpoints or {{\"endpoints\": [...]}}"),
        },
        _ => anyhow::bail!("expected an array of endpoints or {{\"endpoints\": [...]}}"),
    };
    let mut out = Vec::with_capacity(array.len());
    let mut seen = std::collections::HashSet::new();
    for (i, v) in array.into_iter().enumerate() {
        if v.get("client_secret").is_some() {
            anyhow::bail!(
                "entry {i}: put the client secret in an environment variable and name it in client_secret_ref; \
                 never in the file"
            );
        }
        let e: Endpoint = serde_json::from_value(v).with_context(|| format!("entry {i} is not a valid endpoint"))?;
        e.validate().with_context(|| format!("entry {i}"))?;
        anyhow::ensure!(seen.insert(e.id.clone()), "entry {i}: duplicate id {}", e.id);
        out.push(e);
    }
    Ok(out)
}

/// Runs `endpoints …`.
///
/// # Errors
/// Database errors or invalid arguments.
pub async fn endpoints(settings: Settings, cmd: EndpointsCommand) -> anyhow::Result<()> {
    match cmd {
        EndpointsCommand::Import { file } => import_endpoints(&settings, &file).await,
        EndpointsCommand::List { mode, json } => list_endpoints(&settings, mode, json).await,
        EndpointsCommand::Disable { id } => set_endpoint_disabled(&settings, &id, true).await,
        EndpointsCommand::Enable { id } => set_endpoint_disabled(&settings, &id, false).await,
    }
}

/// `endpoints disable|enable`: changes it and records it in the audit trail.
async fn set_endpoint_disabled(settings: &Settings, id: &str, disabled: bool) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let now = SystemClock.now();
    let endpoint = endpoints::get(&db, id).await?.ok_or_else(|| anyhow::anyhow!("no endpoint {id}"))?;
    let changed = endpoints::set_disabled(&db, now, id, disabled).await?;
    let word = if disabled { "disabled" } else { "enabled" };
    if changed {
        let action = if disabled { "endpoint.disabled" } else { "endpoint.enabled" };
        let entry = audit::AuditEntry { actor: "operator", action, detail: Some(json!({"endpoint_id": id, "via": "cli"})), ..Default::default() };
        audit::record(&db.pool, now, entry).await?;
        println!("{} ({id}) is now {word}.", endpoint.name);
    } else {
        println!("{} ({id}) was already {word}.", endpoint.name);
    }
    Ok(())
}

/// `endpoints import`: inserts or updates every entry of the file, then records the counts in the audit trail.
async fn import_endpoints(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let entries = parse_endpoints_file(&text)?;
    let db = connect(settings).await?;
    let now = SystemClock.now();
    let mut created = 0;
    let mut updated = 0;
    for e in &entries {
        if endpoints::get(&db, &e.id).await?.is_some() {
            updated += 1;
        } else {
            created += 1;
        }
        endpoints::upsert(&db, now, e).await?;
        if let Some(r) = &e.client_secret_ref {
            if e.client_secret().is_none() {
                eprintln!("warning: {} ({}): environment variable {r} is not set here; set it for the server", e.name, e.id);
            }
        }
    }
    audit::record(
        &db.pool,
        now,
        audit::AuditEntry {
            actor: "operator",
            action: "endpoints.imported",
            detail: Some(json!({"created": created, "updated": updated})),
            ..Default::default()
        },
    )
    .await?;
    println!("Imported {} endpoint(s): {created} created, {updated} updated.", entries.len());
    Ok(())
}

/// `endpoints list`: the directory (of one mode when given), as a table or as JSON in the import format.
async fn list_endpoints(settings: &Settings, mode: Option<Mode>, json: bool) -> anyhow::Result<()> {
    let db = connect(settings).await?;
    let all: Vec<Endpoint> =
        endpoints::list(&db).await?.into_iter().filter(|e| mode.is_none_or(|m| e.mode == m)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if all.is_empty() {
        println!("No endpoints. Import some with: link-sdk endpoints import docs/endpoints.example.json");
    } else {
        for e in all {
            println!(
                "{}  {:4}  {}{}\n      {}  client_id={}{}{}",
                e.id,
                e.mode.as_str(),
                e.name,
                if e.aliases.is_empty() { String::new() } else { format!(" (aka {})", e.aliases.join(", ")) },
                e.fhir_base_url,
                e.client_id,
                e.client_secret_ref.as_deref().map(|r| format!(" secret=${r}")).unwrap_or_default(),
                if e.refreshable { " refreshable" } else { "" },
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_inline_client_secrets() {
        let text = r#"[{"id":"6f1c2f9e-2f3a-4b7e-9a51-0c1d2e3f4a5b","name":"X","mode":"live",
            "fhir_base_url":"https://x.example/fhir","client_id":"c","client_secret":"oops"}]"#;
        assert!(parse_endpoints_file(text).is_err());
    }

    #[test]
    fn accepts_array_or_object() {
        let entry = r#"{"id":"6f1c2f9e-2f3a-4b7e-9a51-0c1d2e3f4a5b","name":"X","mode":"live",
            "fhir_base_url":"https://x.example/fhir","client_id":"c"}"#;
        assert_eq!(parse_endpoints_file(&format!("[{entry}]")).unwrap().len(), 1);
        assert_eq!(parse_endpoints_file(&format!("{{\"endpoints\":[{entry}]}}")).unwrap().len(), 1);
        assert!(parse_endpoints_file(&format!("[{entry},{entry}]")).is_err());
    }

    #[test]
    fn example_file_parses() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/endpoints.example.json"))
            .expect("docs/endpoints.example.json");
        assert!(!parse_endpoints_file(&text).unwrap().is_empty());
    }
}
