//! The `link-sdk` binary (ssr only): parses settings, starts telemetry, and runs a subcommand
//! (`serve` by default).

use std::sync::Arc;

use clap::Parser as _;
use link_sdk::server::{
    cli,
    clock::SystemClock,
    config::{Cli, Command},
    startup::{shutdown_signal, Application},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            println!("  Stop with Ctrl-C.");
            println!();
            tracing::info!(url = %base, "listening");
            app.run_until(shutdown_signal()).await
        }
        Command::Sandbox(_args) => {
            anyhow::bail!("the standalone sandbox payer is not built yet")
        }
        Command::Apps(cmd) => cli::apps(cli.settings, cmd).await,
        Command::Endpoints(cmd) => cli::endpoints(cli.settings, cmd).await,
        Command::Audit(cmd) => cli::audit(cli.settings, cmd).await,
    }
}
