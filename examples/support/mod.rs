//! What the benchmarks in `examples/` print beside their figures: the machine and its load. Included by each with
//! `#[path = "support/mod.rs"] mod support;` (a folder without `main.rs` is not an example of its own).

// Each benchmark uses some of these.
#![allow(dead_code)]

/// `name` from the environment, or `default`.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// The 1, 5 and 15 minute load averages (the figures mean little on a busy machine).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// CPU model, logical CPUs and memory of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim().to_string();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: u64 = mem.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    format!("{model}, {cpus} CPUs, {:.1} GiB RAM", kb as f64 / 1048576.0)
}

/// A new PostgreSQL database for one run, on the server named by `BENCH_DATABASE_URL` (its admin URL), or `None`
/// when that is not set (the benchmark then runs on SQLite). [`BenchDatabase::drop`] removes it.
pub struct BenchDatabase {
    admin: sqlx::AnyConnection,
    /// `{prefix}_{unix s}`.
    pub name: String,
    /// The new database's URL.
    pub url: String,
}

impl BenchDatabase {
    /// Creates `{prefix}_{unix s}` when `BENCH_DATABASE_URL` is set.
    ///
    /// # Errors
    /// The server cannot be reached, or refuses to create the database.
    pub async fn create(prefix: &str) -> anyhow::Result<Option<Self>> {
        use anyhow::Context as _;
        let Some(admin_url) = std::env::var("BENCH_DATABASE_URL").ok().filter(|v| !v.is_empty()) else { return Ok(None) };
        sqlx::any::install_default_drivers();
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await.context("BENCH_DATABASE_URL")?;
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let name = format!("{prefix}_{secs}");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url.clone(), |(b, _)| b.to_string());
        Ok(Some(BenchDatabase { admin, url: format!("{base}/{name}"), name }))
    }

    /// Runs one statement on the admin connection (`ALTER DATABASE …`).
    ///
    /// # Errors
    /// The statement fails.
    pub async fn admin(&mut self, sql: &str) -> anyhow::Result<()> {
        sqlx::query(sql).execute(&mut self.admin).await?;
        Ok(())
    }

    /// Drops the database (its sessions ended by force).
    pub async fn drop(mut self) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut self.admin).await;
    }
}

/// Turns the rate limits off: the per-token, per-app and per-address limits would answer most of a benchmark's
/// load, which comes from one address, with 429s.
pub fn without_rate_limits(settings: &mut link_sdk::server::settings::Settings) {
    settings.rate_limit_fhir = 0;
    settings.rate_limit_exchange = 0;
    settings.rate_limit_token = 0;
    settings.rate_limit_sessions = 0;
}

/// Starts a server on the system clock, serving until the benchmark ends: its state and URL.
///
/// # Errors
/// The server does not start (database, port).
pub async fn start(
    settings: link_sdk::server::settings::Settings,
) -> anyhow::Result<(link_sdk::server::state::AppState, String)> {
    use link_sdk::server::platform::clock::{Clock, SystemClock};
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    let app = link_sdk::server::startup::Application::build(settings, clock).await?;
    let (state, base) = (app.state.clone(), app.base_url());
    tokio::spawn(app.run_until(std::future::pending()));
    Ok((state, base))
}
