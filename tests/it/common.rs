//! Test harness: a real server on port 0 with a fresh database, talked to over HTTP.
//!
//! The backend is SQLite (a temp file) unless `TEST_DATABASE_URL` names a PostgreSQL server, in which case
//! each test gets its own freshly created database on it (`.ci/test` starts a throwaway cluster).
#![allow(dead_code)]

use std::sync::Arc;

use link_sdk::server::{
    platform::clock::{ManualClock, SharedClock},
    settings::Settings,
    startup::Application,
    state::AppState,
};

/// A running server for one test.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The port bound.
    pub port: u16,
    /// A client that does not follow redirects and keeps cookies (it plays the patient's browser).
    pub client: reqwest::Client,
    /// The server's state (database, clock, cipher).
    pub state: AppState,
    /// The clock the server reads; move it with `advance`.
    pub clock: ManualClock,
    /// The data folder (SQLite file, keys); removed when dropped.
    pub dir: tempfile::TempDir,
    /// The database URL used.
    pub database_url: String,
    /// The settings it was started with (a restart reuses them).
    pub settings: Settings,
    /// The task serving it; it ends after a shutdown.
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    /// `GET {base_url}{path}`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{}", self.base_url, path)).send().await.expect("request failed")
    }

    /// Restarts the server as an operator restarting `.ci/serve` would: a graceful shutdown (in-flight
    /// requests finish, workers stop), then a new server on the same port with the same settings, data folder
    /// (keys) and database. The new server's clock starts where this one's was.
    pub async fn restart(self) -> TestApp {
        use link_sdk::server::platform::clock::Clock as _;
        let TestApp { port, state, clock, dir, database_url, mut settings, server, .. } = self;
        state.shutdown.cancel();
        server.await.expect("server task").expect("server stopped cleanly");
        settings.addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let again = spawn_app_with(settings, dir, database_url).await;
        again.clock.set(clock.now());
        again
    }
}

/// Settings for a fresh test server: port 0, a temp data folder, a fresh database.
pub async fn test_settings() -> (Settings, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings::for_tests(dir.path().to_path_buf());
    let database_url = fresh_database_url(&dir).await;
    settings.database_url = Some(database_url.clone());
    (settings, dir, database_url)
}

/// A fresh database: a new database on `TEST_DATABASE_URL`'s server, or a SQLite file in `dir`.
pub async fn fresh_database_url(dir: &tempfile::TempDir) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin) if !admin.is_empty() => {
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("connect to TEST_DATABASE_URL");
            // Once per test binary: the sweep finds nothing new later in the same run.
            static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
                drop_stale_databases(&mut conn).await;
            }
            let name = format!("{TEST_DB_PREFIX}{}_{}", unix_now(), uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
    }
}

/// Prefix of the databases tests create: `link_test_<unix seconds>_<uuid>`.
const TEST_DB_PREFIX: &str = "link_test_";

/// Age (seconds) after which a test database is left over from an earlier run: no test runs this long.
const STALE_AFTER_SECS: u64 = 120;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Drops the test databases of earlier runs, so a PostgreSQL server given in `TEST_DATABASE_URL` does not fill
/// its disk (each is ~8 MB; one run of the suite creates about 150).
///
/// A test's database is not dropped when the test ends: its server and pool are still running then. Instead,
/// the first test of each test binary drops those older than `STALE_AFTER_SECS`. A plain `DROP DATABASE` refuses a database that
/// still has sessions, so one still in use is never dropped; errors (another test dropping it first) are ignored.
/// Names without a timestamp come from before this rule and are dropped too.
async fn drop_stale_databases(conn: &mut sqlx::AnyConnection) {
    let rows = sqlx::query("SELECT datname::text AS name FROM pg_database WHERE datname LIKE 'link\\_test\\_%'")
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
    let now = unix_now();
    for row in rows {
        let name: String = sqlx::Row::try_get(&row, "name").unwrap_or_default();
        let rest = name.strip_prefix(TEST_DB_PREFIX).unwrap_or_default();
        let created = rest.split_once('_').and_then(|(secs, _)| secs.parse::<u64>().ok());
        let stale = created.is_none_or(|t| now.saturating_sub(t) > STALE_AFTER_SECS);
        if stale && !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut *conn).await;
        }
    }
}

/// Starts a server with default test settings.
pub async fn spawn_app() -> TestApp {
    let (settings, dir, url) = test_settings().await;
    spawn_app_with(settings, dir, url).await
}

/// Starts a server with the given settings.
pub async fn spawn_app_with(settings: Settings, dir: tempfile::TempDir, database_url: String) -> TestApp {
    let clock = ManualClock::new();
    let shared: SharedClock = Arc::new(clock.clone());
    let app = Application::build(settings.clone(), shared).await.expect("build app");
    let port = app.port();
    let base_url = app.base_url();
    let state = app.state.clone();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    let client = browser();
    TestApp { base_url, port, client, state, clock, dir, database_url, settings, server }
}

/// A new client that plays a browser: keeps the cookies it is given (every attribute but `Max-Age=0` ignored,
/// as a browser on a secure origin would) and follows no redirect. Each one is a different browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::new(Jar::default()))
        .build()
        .unwrap()
}

/// The cookie jar of [`browser`]: one value per name.
#[derive(Default)]
pub struct Jar(std::sync::Mutex<std::collections::BTreeMap<String, String>>);

impl reqwest::cookie::CookieStore for Jar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &reqwest::header::HeaderValue>, _url: &url::Url) {
        let mut jar = self.0.lock().unwrap();
        for h in headers.filter_map(|h| h.to_str().ok()) {
            let Some((name, value)) = h.split(';').next().and_then(|nv| nv.trim().split_once('=')) else { continue };
            if h.to_ascii_lowercase().contains("max-age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    fn cookies(&self, _url: &url::Url) -> Option<reqwest::header::HeaderValue> {
        let jar = self.0.lock().unwrap();
        let all = jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        (!all.is_empty()).then(|| reqwest::header::HeaderValue::from_str(&all).ok()).flatten()
    }
}

/// Sets an authorization's state as another path of the product would (a `REVOKED` also gets `revoked_at`),
/// without the transition's side effects, for tests of what the sweep does with such rows.
pub async fn set_state(db: &link_sdk::server::platform::db::Db, id: &str, state: &str, now: i64) {
    sqlx::query(
        "UPDATE authorizations SET state = $1, updated_at = $2, \
         revoked_at = CASE WHEN $1 = 'REVOKED' AND revoked_at IS NULL THEN $2 ELSE revoked_at END WHERE id = $3",
    )
    .bind(state)
    .bind(now)
    .bind(id)
    .execute(&db.pool)
    .await
    .expect("set state");
}

/// Starts SMART App Launch for session `sid` at `endpoint`, asking for `usage` and `requested` types (the payer
/// hand-off of the hosted flow, without its screens); returns the payer's authorize URL and the hand-off value
/// the callback must present.
pub async fn begin_handoff(
    state: &AppState,
    sid: &str,
    endpoint: &link_sdk::server::store::endpoints::Endpoint,
    usage: link_sdk::domain::Usage,
    requested: &[String],
) -> Result<link_sdk::server::services::link_flow::Handoff, link_sdk::domain::ExitCode> {
    let mut s = link_sdk::server::store::link_sessions::get(&state.db, sid).await.unwrap().expect("session");
    s.usage = usage;
    s.options.requested_resources = requested.to_vec();
    link_sdk::server::services::link_flow::begin_handoff(state, &s, endpoint).await
}

/// A session id of the real format, for sessions tests insert themselves.
pub fn new_session_id() -> String {
    link_sdk::server::platform::crypto::random_token("ls_")
}

/// The audit actions recorded for an authorization, oldest first.
pub async fn audit_actions(db: &link_sdk::server::platform::db::Db, authorization_id: &str) -> Vec<String> {
    use link_sdk::server::store::audit;
    audit::query(db, &audit::ExportFilter { authorization_id: Some(authorization_id.into()), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|l| l["action"].as_str().unwrap().to_string())
        .collect()
}
