//! Benchmark of the integrator API (prints figures; not a timed test).
//!
//! Starts the real server in-process on SQLite with the built-in sandbox payers, links the sandbox member
//! `big.claims` (2,400 ExplanationOfBenefit) through the test-mode shortcut — real payer OAuth and the real
//! sync over HTTP — then measures with `wrk` (Debian package `wrk`):
//! - `POST /link/exchange` (each request spends one pre-minted `public_token`),
//! - `GET /fhir/ExplanationOfBenefit/{id}` (read by id),
//! - a 1,000-result search: unfiltered, with a date filter, and with `_include=ExplanationOfBenefit:*`,
//! - `GET /fhir/Patient/{id}/$everything` (the whole record in one Bundle),
//!
//! each next to the same response bytes served as a static file by the same server (`/pkg/…`), the
//! ceiling of the HTTP stack on this machine; then the bytes on the wire and the time of one request (median
//! of 5, `curl`) of each FHIR scenario without compression, with `Accept-Encoding: gzip` and with `br`.
//! Run:
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo build --release --examples && target/bench/release/examples/api_bench
//! BENCH_SECS=5 BENCH_CONNECTIONS=16 target/bench/release/examples/api_bench   # shorter
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres target/bench/release/examples/api_bench
//! BENCH_ONLY=search target/bench/release/examples/api_bench   # only the scenarios whose name contains "search"
//! ```
//! With `BENCH_DATABASE_URL` (a PostgreSQL server's URL) the server runs on a new database created there
//! (`link_bench_<unix s>`, dropped at the end); otherwise on a SQLite file. Only 127.0.0.1 (and that server) is
//! contacted; each wrk run is bounded by `BENCH_SECS` (default 10), the sync by 10 minutes.

#[path = "support/mod.rs"]
mod support;

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use link_sdk::server::{
    platform::clock::{Clock, SystemClock},
    services::sync,
    settings::Settings,
    store::{
        apps::{self, NewApp},
        tokens::{self, TokenKind},
    },
    surfaces::sandbox,
};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use support::{env_or, loadavg, machine, start, without_rate_limits, BenchDatabase};

struct Figures {
    rps: f64,
    p50: String,
    p99: String,
    errors: String,
}

/// Runs wrk and reads requests/s, p50, p99 and non-2xx counts from its report.
fn wrk(url: &str, bearer: Option<&str>, script: Option<(&Path, &[String])>) -> anyhow::Result<Figures> {
    let secs = env_or("BENCH_SECS", "10");
    let conns = env_or("BENCH_CONNECTIONS", "32");
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c", &conns, "-d", &format!("{secs}s"), "--timeout", "30s", "--latency"]);
    if let Some(t) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some((s, _)) = script {
        cmd.args(["-s", s.to_str().unwrap()]);
    }
    cmd.arg(url);
    if let Some((_, args)) = script {
        cmd.arg("--");
        cmd.args(args);
    }
    let out = cmd.output().context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_string())
    };
    Ok(Figures {
        rps: find("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        p50: find("50%").unwrap_or_default(),
        p99: find("99%").unwrap_or_default(),
        errors: {
            let non2xx = find("Non-2xx or 3xx responses:").unwrap_or_else(|| "0".into());
            match find("Socket errors:") {
                Some(sock) => format!("{non2xx}; socket errors {sock}"),
                None => non2xx,
            }
        },
    })
}

const EXCHANGE_LUA: &str = r#"
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end
function init(args)
  toks = {}
  local n = 0
  for line in io.lines(args[1]) do
    if n % 2 == tid then toks[#toks + 1] = line end
    n = n + 1
  end
  idx = 0
  sk = args[2]
end
function request()
  idx = idx + 1
  if idx > #toks then idx = 1 end -- spent tokens are refused: counted as non-2xx
  local body = '{"public_token":"' .. toks[idx] .. '","secret_key":"' .. sk .. '"}'
  return wrk.format("POST", "/link/exchange", {["Content-Type"] = "application/json"}, body)
end
"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg"))?;
    let mut settings = Settings::for_tests(dir.path().join("data"));
    settings.site_root = Some(site.clone());
    without_rate_limits(&mut settings);
    let pg = BenchDatabase::create("link_bench").await?;
    if let Some(db) = &pg {
        settings.database_url = Some(db.url.clone());
    }
    let database = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    settings.sync_workers = 2;
    let (state, base) = start(settings).await?;
    let http = reqwest::Client::new();

    let (a, keys) = apps::create(&state.db, SystemClock.now(), NewApp { name: "bench".into(), ..Default::default() }).await?;
    let sk = keys.test_secret.expose_secret().to_string();
    println!("linking {} through the sandbox payer…", sandbox::MEMBER_LARGE);
    let v: Value = http
        .post(format!("{base}/link/test/public_token"))
        .json(&json!({"secret_key": sk, "external_id": "bench-user", "member": sandbox::MEMBER_LARGE,
                      "endpoint_id": sandbox::REFRESHABLE_ENDPOINT_ID}))
        .send()
        .await?
        .json()
        .await?;
    let authz = v["authorization_id"].as_str().context("test shortcut failed")?.to_string();
    let public = v["public_token"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    loop {
        let st = sync::status(&state.db, &authz).await?.context("no sync job")?;
        if !st.status.is_running() {
            println!("sync {} in {:.1} s: {:?}", st.status, started.elapsed().as_secs_f64(), st.progress);
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "the sync did not finish within 10 minutes");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ex: Value = http
        .post(format!("{base}/link/exchange"))
        .json(&json!({"public_token": public, "secret_key": sk}))
        .send()
        .await?
        .json()
        .await?;
    let at = ex["access_token"].as_str().context("exchange failed")?.to_string();
    let patient = ex["patient"].as_str().unwrap().trim_start_matches("Patient/").to_string();

    // Pre-minted public tokens for the exchange benchmark (what the Link flow mints at the callback).
    let n_tokens: usize = env_or("BENCH_TOKENS", "40000").parse()?;
    let mut lines = String::new();
    for _ in 0..n_tokens {
        lines.push_str(&tokens::issue(&state.db.pool, SystemClock.now(), TokenKind::Public, &a.id, Some(&authz), Some(1800), json!({})).await?);
        lines.push('\n');
    }
    let tok_file = dir.path().join("tokens.txt");
    std::fs::write(&tok_file, lines)?;
    let lua = dir.path().join("exchange.lua");
    std::fs::write(&lua, EXCHANGE_LUA)?;

    let eob_id = {
        let b: Value = http
            .get(format!("{base}/fhir/ExplanationOfBenefit?_count=1"))
            .bearer_auth(&at)
            .send()
            .await?
            .json()
            .await?;
        b["entry"][0]["resource"]["id"].as_str().unwrap().to_string()
    };
    let mut cases: Vec<(&str, String)> = vec![
        ("read by id", format!("/fhir/ExplanationOfBenefit/{eob_id}")),
        ("search 1,000 (no filter)", "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID&_count=1000".to_string()),
        ("search 1,000 (date filter)", "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID&service-date=ge1900-01-01&_count=1000".to_string()),
        ("search 1,000 (_include all)", "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID&_include=ExplanationOfBenefit:*&_count=1000".to_string()),
        ("$everything (whole record)", format!("/fhir/Patient/{patient}/$everything?_count=5000")),
    ];
    // `BENCH_ONLY=<text>`: only the scenarios whose name contains it (for a profiler watching one of them).
    let only = std::env::var("BENCH_ONLY").ok();
    cases.retain(|(name, _)| only.as_deref().is_none_or(|o| name.contains(o)));

    println!();
    println!("machine: {}; database: {database}; wrk -t2 -c{} -d{}s", machine(), env_or("BENCH_CONNECTIONS", "32"), env_or("BENCH_SECS", "10"));
    println!("| scenario | response bytes | req/s | p50 | p99 | non-2xx | static file req/s | static p50 | static p99 | ratio | load avg |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // Exchange.
    let exchange = "exchange (POST /link/exchange)";
    if only.as_deref().is_none_or(|o| exchange.contains(o)) {
        let sample = serde_json::to_vec(&ex)?;
        std::fs::write(site.join("pkg/exchange.json"), &sample)?;
        let f = wrk(&format!("{base}/link/exchange"), None, Some((&lua, &[tok_file.display().to_string(), sk.clone()])))?;
        let s = wrk(&format!("{base}/pkg/exchange.json"), None, None)?;
        row(exchange, sample.len(), &f, &s);
    }
    for (name, path) in &cases {
        let bytes = http.get(format!("{base}{path}")).bearer_auth(&at).send().await?.bytes().await?;
        let file = format!("pkg/{}.json", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
        std::fs::write(site.join(&file), &bytes)?;
        let f = wrk(&format!("{base}{}", path.replace('$', "%24")), Some(&at), None)?;
        let s = wrk(&format!("{base}/{file}"), None, None)?;
        row(name, bytes.len(), &f, &s);
    }

    println!();
    println!("One request at a time (curl, median of 5): bytes on the wire and time to the last byte");
    println!("| scenario | identity bytes | identity time | gzip bytes | gzip time | br bytes | br time | load avg |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, path) in &cases {
        let url = format!("{base}{}", path.replace('$', "%24"));
        let mut cells = Vec::new();
        for encoding in ["identity", "gzip", "br"] {
            let (bytes, secs) = curl_median(&url, &at, encoding)?;
            cells.push(format!("{bytes} | {:.1} ms", secs * 1000.0));
        }
        println!("| {name} | {} | {} |", cells.join(" | "), loadavg());
    }
    if let Some(db) = pg {
        state.db.pool.close().await;
        db.drop().await;
    }
    Ok(())
}

/// Bytes received and seconds to the last byte of one GET with `Accept-Encoding: encoding` (the body is not
/// decoded), the median of 5 runs.
fn curl_median(url: &str, bearer: &str, encoding: &str) -> anyhow::Result<(u64, f64)> {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}"])
            .args(["-H", &format!("Authorization: Bearer {bearer}"), "-H", &format!("Accept-Encoding: {encoding}")])
            .arg(url)
            .output()
            .context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut it = text.split_whitespace();
        let bytes: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let secs: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        runs.push((secs, bytes));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, bytes) = runs[runs.len() / 2];
    Ok((bytes, secs))
}

fn row(name: &str, bytes: usize, f: &Figures, s: &Figures) {
    let ratio = if s.rps > 0.0 { f.rps / s.rps } else { 0.0 };
    println!(
        "| {name} | {bytes} | {:.1} | {} | {} | {} | {:.1} | {} | {} | {:.2} | {} |",
        f.rps,
        f.p50,
        f.p99,
        f.errors,
        s.rps,
        s.p50,
        s.p99,
        ratio,
        loadavg()
    );
}


