//! Management subcommands: apps, endpoints, audit.
//!
//! Owner: [Operators]. Compiled only with `ssr`.

use clap::Subcommand;

use super::config::Settings;

/// `link-sdk apps …`
#[derive(Debug, Clone, Subcommand)]
pub enum AppsCommand {
    /// List apps.
    List,
}

/// `link-sdk endpoints …`
#[derive(Debug, Clone, Subcommand)]
pub enum EndpointsCommand {
    /// List endpoints.
    List,
}

/// `link-sdk audit …`
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Print the audit trail as JSON lines.
    Export,
}

/// Runs `apps …`.
///
/// # Errors
/// Database errors or invalid arguments.
pub async fn apps(_settings: Settings, _cmd: AppsCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Runs `endpoints …`.
///
/// # Errors
/// Database errors or invalid arguments.
pub async fn endpoints(_settings: Settings, _cmd: EndpointsCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Runs `audit …`.
///
/// # Errors
/// Database errors.
pub async fn audit(_settings: Settings, _cmd: AuditCommand) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
