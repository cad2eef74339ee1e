//! Benchmark of the sync (prints figures; not a timed test).
//!
//! Starts the sandbox payer as a separate process (`link-sdk sandbox`, loopback), links its member
//! `big.claims` (2,400 ExplanationOfBenefit) through the real payer OAuth (`begin` → sandbox sign-in →
//! `complete`), runs the sync job in this process on SQLite, then downloads the same ExplanationOfBenefit
//! pages with `curl` (the payer's own limit) and prints:
//! resources/s, wall time, peak RSS growth, and the curl download time of the same pages, with the load
//! average (figures taken on a busy machine say so). Then it links `BENCH_MEMBERS` more (default 20; 0 skips
//! this), syncs them all at once and prints their total time, peak RSS, and the time of as many curl processes
//! fetching the same pages at once. Only 127.0.0.1 is contacted; each sync phase is bounded to 10 minutes and
//! the paging to 1,000 pages.
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo build --release --examples --bin link-sdk && target/bench/release/examples/sync_bench
//! ```
//! `LINK_SDK_BIN` overrides the path of the `link-sdk` binary (default: next to this example's folder).

#[path = "support/mod.rs"]
mod support;

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use link_sdk::{
    domain::{Mode, SyncStatus, Usage},
    server::{
        platform::clock::SystemClock,
        services::{link_flow, payer::oauth, sync},
        settings::Settings,
        startup::Application,
        state::AppState,
        store::{
            apps::{self, NewApp},
            authorizations,
            endpoints::{self, Endpoint},
            link_sessions,
        },
        surfaces::sandbox,
    },
};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use support::{loadavg, machine};

/// `VmRSS` and `VmHWM` (peak) of this process, in kB.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak-RSS counter (Linux: write 5 to clear_refs), so VmHWM measures the sync alone.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Upper bound on the sync's wall time: the benchmark fails instead of hanging.
const SYNC_TIME_LIMIT: Duration = Duration::from_secs(600);



struct Sandbox(std::process::Child);
impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sandbox(redirect_uri: &str, data_dir: &std::path::Path) -> anyhow::Result<(Sandbox, String)> {
    let bin = match std::env::var("LINK_SDK_BIN") {
        Ok(b) => std::path::PathBuf::from(b),
        Err(_) => std::env::current_exe()?.parent().and_then(|p| p.parent()).context("exe folder")?.join("link-sdk"),
    };
    let mut child = Command::new(&bin)
        .args(["sandbox", "--sandbox-addr", "127.0.0.1:0", "--sandbox-redirect-uri", redirect_uri])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (build it first: cargo build --release --bin link-sdk)", bin.display()))?;
    let stdout = child.stdout.take().context("sandbox stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let guard = Sandbox(child);
    let base = loop {
        let line = lines.next().context("sandbox exited before printing its URL")??;
        if let Some(rest) = line.trim().strip_prefix("Sandbox payers are running at ") {
            break rest.trim().to_string();
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((guard, base))
}

/// Links sandbox member [`sandbox::MEMBER_LARGE`] through `endpoint` with the real payer OAuth over HTTP (`begin`
/// → the sandbox's sign-in → the payer callback, this process playing the payer window) for `ExplanationOfBenefit`,
/// which queues its sync; returns the authorization's id.
async fn link(state: &AppState, app_id: &str, endpoint: &Endpoint, client: &reqwest::Client) -> anyhow::Result<String> {
    let session = link_sessions::create(
        &state.db.pool,
        state.clock.now(),
        link_sessions::NewSession {
            app_id,
            mode: Mode::Test,
            external_id: "bench",
            usage: Usage::OneTime,
            options: link_sessions::SessionOptions {
                requested_resources: vec!["ExplanationOfBenefit".to_string()],
                ..Default::default()
            },
            endpoint_id: Some(&endpoint.id),
            host_origin: None,
            redirect_uri: None,
            client_state: None,
            nonce: "n",
            code_challenge: None,
            // No browser holds this session: this process takes its steps.
            binder_hash: None,
        },
    )
    .await?;
    let s = link_sessions::get(&state.db, &session).await?.context("session")?;
    let handoff = link_flow::begin_handoff(state, &s, endpoint).await.map_err(|c| anyhow::anyhow!("begin: {}", c.as_str()))?;
    let location = sandbox::drive_consent(client, &handoff.url, sandbox::MEMBER_LARGE, true).await?;
    let q: std::collections::HashMap<String, String> = url::Url::parse(&location)?.query_pairs().into_owned().collect();
    let done = link_flow::payer_callback(
        state,
        oauth::CallbackParams {
            code: q.get("code").cloned(),
            state: q.get("state").cloned(),
            error: None,
            error_description: None,
            iss: q.get("iss").cloned(),
        },
        &[handoff.binder.expose_secret()],
    )
    .await
    .map_err(|(_, c)| anyhow::anyhow!("complete: {}", c.as_str()))?;
    Ok(done.authorization_id)
}

/// The `Authorization: Bearer …` header line of an authorization's payer access token, for curl.
async fn bearer_header(state: &AppState, authorization_id: &str) -> anyhow::Result<String> {
    let creds = authorizations::payer_credentials(&state.db, &state.cipher, authorization_id).await?.context("tokens")?;
    let token = creds.access_token.context("token")?;
    Ok(format!("Authorization: Bearer {}", token.expose_secret()))
}

/// The ExplanationOfBenefit page URLs of a search, learnt by following `next` from `first` with curl (untimed).
fn page_urls(bearer: &str, first: String) -> anyhow::Result<Vec<String>> {
    let mut next = Some(first);
    let mut urls = Vec::new();
    while let Some(u) = next.take() {
        anyhow::ensure!(urls.len() < 1_000 && !urls.contains(&u), "runaway paging at {u}");
        let out = Command::new("curl")
            .args(["-s", "--fail", "--max-time", "30", "-H", "Accept: application/fhir+json", "-H", bearer, &u])
            .output()
            .context("running curl")?;
        anyhow::ensure!(out.status.success(), "curl failed on {u}");
        let v: Value = serde_json::from_slice(&out.stdout)?;
        next = v["link"].as_array().and_then(|l| l.iter().find(|x| x["relation"] == "next")).and_then(|x| x["url"].as_str()).map(|n| {
            url::Url::parse(&u).and_then(|b| b.join(n)).map(|x| x.to_string()).unwrap_or_default()
        });
        urls.push(u);
    }
    Ok(urls)
}

/// ONE curl process that fetches `urls` in order over one kept-alive connection, as the sync does, bodies
/// discarded, printing each body's size: the payer-side limit.
fn curl(bearer: &str, urls: &[String]) -> Command {
    let mut curl = Command::new("curl");
    curl.args(["-s", "--fail", "--max-time", "120", "-H", "Accept: application/fhir+json", "-H", bearer, "-w", "%{size_download}\\n"]);
    for u in urls {
        curl.args(["-o", "/dev/null", u]);
    }
    curl
}

/// The bytes a finished [`curl`] downloaded.
fn download(out: std::process::Output) -> anyhow::Result<u64> {
    anyhow::ensure!(out.status.success(), "curl failed");
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u64>().ok()).sum())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::for_tests(dir.path().to_path_buf());
    settings.sync_workers = 0;
    settings.sandbox = false;
    let app = Application::build(settings, Arc::new(SystemClock)).await?;
    let state = app.state.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let redirect_uri = format!("{}/link/callback", state.public_url);

    let (_sandbox, base) = start_sandbox(&redirect_uri, dir.path())?;
    let payer = sandbox::default_payers().into_iter().find(|p| p.endpoint_id == sandbox::REFRESHABLE_ENDPOINT_ID).context("payer")?;
    let endpoint = sandbox::endpoint_for(&base, &payer);
    let now = state.clock.now();
    endpoints::upsert(&state.db, now, &endpoint).await?;
    let (a, _) = apps::create(
        &state.db,
        now,
        NewApp {
            name: "Sync bench".into(),
            allowed_origins: vec![],
            redirect_uris: vec![],
            webhook_url: None,
            logo_url: None,
            brand_color: None,
        },
    )
    .await?;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let authorization_id = link(&state, &a.id, &endpoint, &client).await?;

    // The sync, bounded in time (a stuck job ends the benchmark instead of hanging it).
    let (rss_before, _) = rss_kb();
    reset_peak();
    let load_before = loadavg();
    let started = Instant::now();
    let mut runs = 0;
    tokio::time::timeout(SYNC_TIME_LIMIT, async {
        while runs < 100 && sync::run_once(&state).await {
            runs += 1;
        }
    })
    .await
    .context("the sync did not finish within the time limit")?;
    let wall = started.elapsed();
    let (_, peak) = rss_kb();
    let st = sync::status(&state.db, &authorization_id).await?.context("no job")?;
    let total: i64 = st.progress.values().sum();
    let eobs = st.progress.get("ExplanationOfBenefit").copied().unwrap_or(0);

    // The same ExplanationOfBenefit pages with curl. First pass: follow `next` to learn the page URLs
    // (untimed); second pass: ONE curl process fetches them all in order over one kept-alive connection, as
    // the sync does, so process start-up is paid once. That is the payer-side limit.
    let bearer = bearer_header(&state, &authorization_id).await?;
    let auth = authorizations::get(&state.db, &authorization_id).await?.context("authorization")?;
    let fhir = sandbox::fhir_base(&base, payer.slug);
    let mut next = Some(format!(
        "{fhir}/ExplanationOfBenefit?patient={}&_count={}",
        auth.patient_id.clone().unwrap_or_default(),
        sync::job::PAGE_COUNT
    ));
    let urls = page_urls(&bearer, next.take().context("first page")?)?;
    let t = Instant::now();
    let bytes = download(curl(&bearer, &urls).output().context("running curl")?)?;
    let curl_time = t.elapsed();
    let pages = urls.len();

    println!("sync of sandbox member {} (sandbox payer in a separate process, loopback, SQLite)", sandbox::MEMBER_LARGE);
    println!("  machine                {}", machine());
    println!("  load average           before {load_before}, after {}", loadavg());
    println!("  status                 {} ({} resources stored, {} ExplanationOfBenefit): {:?}", st.status, total, eobs, st.progress);
    println!("  wall time              {:.3} s", wall.as_secs_f64());
    println!("  resources/s            {:.0}  (target >= 2,000)", total as f64 / wall.as_secs_f64());
    println!(
        "  curl download          {:.3} s for the {} ExplanationOfBenefit pages ({:.1} MB) of _count={}, one curl process",
        curl_time.as_secs_f64(),
        pages,
        bytes as f64 / 1e6,
        sync::job::PAGE_COUNT
    );
    println!("  ratio sync / curl      {:.2}  (target <= 1.3, issue #16)", wall.as_secs_f64() / curl_time.as_secs_f64());
    println!("  RSS before the sync    {:.1} MB", rss_before as f64 / 1024.0);
    println!(
        "  peak RSS during sync   {:.1} MB (growth {:.1} MB, target <= 100 MB)",
        peak as f64 / 1024.0,
        (peak.saturating_sub(rss_before)) as f64 / 1024.0
    );
    // Then BENCH_MEMBERS members (default 20) synced at once. At most `PER_PAYER_LIMIT` jobs of one payer run at
    // once, so the members are linked through copies of the endpoint (the same sandbox payer under new ids), two
    // per copy, and as many workers as members run `run_once` side by side, as `--sync-workers` would.
    let members: usize = support::env_or("BENCH_MEMBERS", "20").parse().context("BENCH_MEMBERS")?;
    if members == 0 {
        return Ok(());
    }
    let per_payer = usize::try_from(sync::job::PER_PAYER_LIMIT)?.max(1);
    let mut ids = Vec::new();
    for k in 0..members.div_ceil(per_payer) {
        let mut copy = endpoint.clone();
        copy.id = uuid::Uuid::new_v4().to_string();
        copy.name = format!("{} (copy {k})", endpoint.name);
        endpoints::upsert(&state.db, state.clock.now(), &copy).await?;
        for _ in 0..per_payer.min(members - ids.len()) {
            ids.push(link(&state, &a.id, &copy, &client).await?);
        }
    }
    let (rss_before, _) = rss_kb();
    reset_peak();
    let load_before = loadavg();
    let started = Instant::now();
    let workers: Vec<_> = (0..members)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                while runs < 100 && sync::run_once(&state).await {
                    runs += 1;
                }
            })
        })
        .collect();
    tokio::time::timeout(SYNC_TIME_LIMIT, futures::future::join_all(workers))
        .await
        .context("the syncs did not finish within the time limit")?;
    let wall = started.elapsed();
    let (_, peak) = rss_kb();
    let mut total = 0;
    let mut complete = 0;
    for id in &ids {
        let st = sync::status(&state.db, id).await?.context("no job")?;
        total += st.progress.values().sum::<i64>();
        complete += usize::from(st.status == SyncStatus::Complete);
    }
    anyhow::ensure!(complete == members, "{complete} of {members} syncs complete");

    // The same pages for every member, one curl process per member, all at once.
    let mut bearers = Vec::new();
    for id in &ids {
        bearers.push(bearer_header(&state, id).await?);
    }
    let t = Instant::now();
    let children = bearers.iter().map(|b| curl(b, &urls).stdout(Stdio::piped()).spawn()).collect::<Result<Vec<_>, _>>()?;
    let mut bytes = 0;
    for c in children {
        bytes += download(c.wait_with_output()?)?;
    }
    let curl_time = t.elapsed();

    println!("{members} members synced at once (each sandbox member {}, {} copies of the payer)", sandbox::MEMBER_LARGE, members.div_ceil(per_payer));
    println!("  load average           before {load_before}, after {}", loadavg());
    println!("  status                 {complete} of {members} complete, {total} resources stored");
    println!("  wall time              {:.3} s", wall.as_secs_f64());
    println!("  resources/s            {:.0}", total as f64 / wall.as_secs_f64());
    println!(
        "  curl download          {:.3} s for {members} x {} pages ({:.1} MB), {members} curl processes at once",
        curl_time.as_secs_f64(),
        urls.len(),
        bytes as f64 / 1e6
    );
    println!("  ratio sync / curl      {:.2}", wall.as_secs_f64() / curl_time.as_secs_f64());
    println!(
        "  peak RSS during syncs  {:.1} MB (growth {:.1} MB from {:.1} MB)",
        peak as f64 / 1024.0,
        (peak.saturating_sub(rss_before)) as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    Ok(())
}
