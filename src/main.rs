//! The `link-sdk` binary (ssr only): parses settings, starts telemetry, and runs a subcommand
//! (`serve` by default).

use std::sync::Arc;

use clap::Parser as _;
use link_sdk::server::{
    cli::{self, Cli, Command},
    platform::{clock::SystemClock, db::Db, telemetry},
    startup::{shutdown_signal, Application},
    surfaces::sandbox,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = Cli::parse();
    cli.settings = cli.settings.resolve();
    telemetry::init(cli.settings.log_format, &cli.settings.log_filter);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(cli.settings, Arc::new(SystemClock)).await?;
            let base = app.base_url();
            println!();
            println!("  Link SDK is running at {base}");
            println!("  Demo integrator app:   {base}/demo");
            println!("  Health:                {base}/healthz");
            for line in &app.banner {
                println!("  {line}");
            }
            if !app.banner.is_empty() {
                println!("  Test keys open Link from this server and from any localhost page; for another origin,");
                println!("  register it: link-sdk apps update --app APP_ID --allowed-origin https://your.app");
            }
            println!("  Stop with Ctrl-C.");
            println!();
            tracing::info!(url = %base, "listening");
            app.run_until(shutdown_signal()).await
        }
        Command::Sandbox(args) => {
            let defaults = sandbox::SandboxConfig::default();
            let cfg = sandbox::SandboxConfig {
                addr: args.addr,
                public_url: args.public_url,
                redirect_uris: if args.redirect_uris.is_empty() { defaults.redirect_uris.clone() } else { args.redirect_uris },
                seed: cli.settings.sandbox_seed,
                slow_token_delay: std::time::Duration::from_secs(args.slow_token_delay_secs),
                ..defaults
            };
            let redirect_uris = cfg.redirect_uris.clone();
            let database_url =
                args.database_url.clone().unwrap_or_else(|| sandbox::standalone_database_url(&cli.settings.data_dir));
            let db = Db::connect(&database_url, cli.settings.db_max_connections).await?;
            let (base, handle) = sandbox::spawn_standalone(cfg, db).await?;
            println!();
            println!("  Sandbox payers are running at {base}");
            for payer in sandbox::default_payers() {
                println!("  {:<16} FHIR base {}", payer.slug, sandbox::fhir_base(&base, payer.slug));
            }
            println!("  client_id: {}   password of every member: {}", sandbox::CLIENT_ID, sandbox::PASSWORD);
            println!("  Accepted redirect_uri: {}", redirect_uris.join(", "));
            match &args.database_url {
                Some(_) => println!("  State (codes, refresh tokens, signing key): --sandbox-database-url"),
                None => println!("  State (codes, refresh tokens, signing key): {}", cli.settings.data_dir.join("sandbox.db").display()),
            }
            println!("  Stop with Ctrl-C.");
            println!();
            tracing::info!(url = %base, "sandbox listening");
            shutdown_signal().await;
            handle.abort();
            tracing::info!("sandbox stopped");
            Ok(())
        }
        Command::Apps(cmd) => cli::apps(cli.settings, cmd).await,
        Command::Endpoints(cmd) => cli::endpoints(cli.settings, cmd).await,
        Command::Audit(cmd) => cli::audit(cli.settings, cmd).await,
        Command::Funnel(args) => cli::funnel(cli.settings, args).await,
        Command::ConsoleLink(args) => cli::console_link(cli.settings, args).await,
    }
}
