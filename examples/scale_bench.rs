//! Benchmark of FHIR reads as the database grows from 10 linked members to `BENCH_MEMBERS` (default 10,000)
//! (prints figures; not a timed test).
//!
//! One server (no sync worker: the benchmark runs the sync steps itself) links 10 members of the sandbox payer
//! (`big.claims`, 2,400 ExplanationOfBenefit each) through the test-mode shortcut and syncs them over HTTP, then
//! measures with `wrk`, through the first member's patient access token: a read by id, a 50-result search by
//! patient, and the same search with a date filter. Then it links the other members (the shortcut, real payer
//! OAuth; their sync jobs are left queued) and stores `BENCH_RESOURCES` (default 100) resources for each through
//! the store's own `resources::upsert`: the first member's Patient and claims with new ids and the Patient
//! references rewritten, so each member has a record of its own. Then it measures the same three requests again
//! and prints both next to each other, with the p99 at the larger size over the p99 at 10. Both sizes are measured
//! alike: `ANALYZE` first, then per request a discarded warm-up of `BENCH_WARMUP` seconds (default 3).
//!
//! With `BENCH_EXPLAIN=1` on PostgreSQL it then has the database log each statement's plan (`auto_explain`, for
//! new connections) and sends each request once more through a second server on the same database: the plans are
//! in the PostgreSQL server's log.
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo build --release --example scale_bench
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres BENCH_EXPLAIN=1 target/bench/release/examples/scale_bench
//! BENCH_MEMBERS=1000 target/bench/release/examples/scale_bench        # SQLite, smaller
//! ```
//! With `BENCH_DATABASE_URL` the server runs on a new database created there (`link_scale_<unix s>`, dropped at
//! the end unless `BENCH_KEEP=1`); otherwise on a SQLite file. Only 127.0.0.1 (and that server) is contacted.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use link_sdk::server::{
    fhir::index::index,
    platform::clock::{Clock, SystemClock},
    services::sync,
    settings::Settings,
    state::AppState,
    store::{
        apps::{self, NewApp},
        resources,
    },
    surfaces::sandbox,
};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use sqlx::Row as _;
use support::{env_or, loadavg, machine, start, without_rate_limits, BenchDatabase};

/// Members linked and synced for real, whose requests are measured.
const MEASURED: usize = 10;

/// requests/s, p50 and p99 of one wrk run.
struct Figures {
    rps: f64,
    p50: String,
    p99: String,
}

/// Runs wrk for `secs` seconds and reads requests/s, p50 and p99.
fn wrk(url: &str, bearer: &str, secs: &str) -> anyhow::Result<Figures> {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c", &env_or("BENCH_CONNECTIONS", "32"), "-d", &format!("{secs}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {bearer}")])
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |prefix: &str| text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l[prefix.len()..].trim().to_string());
    anyhow::ensure!(find("Non-2xx").is_none(), "wrk saw errors: {text}");
    Ok(Figures {
        rps: find("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        p50: find("50%").unwrap_or_default(),
        p99: find("99%").unwrap_or_default(),
    })
}

/// The figures of each request, measured alike at both sizes: the planner's statistics brought up to date
/// (`ANALYZE`, as autovacuum would in time), then per request a warm-up of `BENCH_WARMUP` seconds (default 3,
/// discarded: caches filled) and the measured run of `BENCH_SECS` (default 10).
async fn measure(state: &AppState, base: &str, bearer: &str, cases: &[(&str, String)]) -> anyhow::Result<Vec<Figures>> {
    sqlx::query("ANALYZE").execute(&state.db.pool).await?;
    let mut out = Vec::new();
    for (_, path) in cases {
        let url = format!("{base}{path}");
        wrk(&url, bearer, &env_or("BENCH_WARMUP", "3"))?;
        out.push(wrk(&url, bearer, &env_or("BENCH_SECS", "10"))?);
    }
    Ok(out)
}

/// A wrk latency (`7.72ms`, `1.30s`, `900.00us`) in milliseconds.
fn millis(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => n,
    }
}

/// Links a sandbox member through the test-mode shortcut: `(authorization_id, public_token)`.
async fn link(http: &reqwest::Client, base: &str, sk: &str, external_id: &str, member: &str) -> anyhow::Result<(String, String)> {
    let v: Value = http
        .post(format!("{base}/link/test/public_token"))
        .json(&json!({"secret_key": sk, "external_id": external_id, "member": member,
                      "endpoint_id": sandbox::REFRESHABLE_ENDPOINT_ID}))
        .send()
        .await?
        .json()
        .await?;
    let authz = v["authorization_id"].as_str().with_context(|| format!("test shortcut failed: {v}"))?;
    Ok((authz.to_string(), v["public_token"].as_str().unwrap_or_default().to_string()))
}

/// Resources and rows in the database.
async fn counts(state: &AppState) -> anyhow::Result<(i64, i64)> {
    let r = sqlx::query("SELECT (SELECT COUNT(*) FROM resources) AS r, (SELECT COUNT(*) FROM resource_params) AS p")
        .fetch_one(&state.db.pool)
        .await?;
    Ok((r.try_get("r")?, r.try_get("p")?))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let members: usize = env_or("BENCH_MEMBERS", "10000").parse()?;
    let per_member: i64 = env_or("BENCH_RESOURCES", "100").parse()?;
    anyhow::ensure!(members > MEASURED, "BENCH_MEMBERS must be over {MEASURED}");
    let dir = tempfile::tempdir()?;
    let mut settings = Settings::for_tests(dir.path().join("data"));
    settings.sync_workers = 0;
    without_rate_limits(&mut settings);
    let pg = BenchDatabase::create("link_scale").await?;
    if let Some(db) = &pg {
        settings.database_url = Some(db.url.clone());
    }
    let database = if pg.is_some() { "PostgreSQL" } else { "SQLite" };
    let second_settings = settings.clone();
    let (state, base) = start(settings).await?;
    let http = reqwest::Client::new();
    let (_, keys) = apps::create(&state.db, SystemClock.now(), NewApp { name: "scale".into(), ..Default::default() }).await?;
    let sk = keys.test_secret.expose_secret().to_string();

    // The measured members, synced for real.
    let started = Instant::now();
    let mut measured = Vec::new();
    for i in 0..MEASURED {
        measured.push(link(&http, &base, &sk, &format!("measured-{i}"), sandbox::MEMBER_LARGE).await?);
    }
    while sync::run_once(&state).await {}
    println!("{MEASURED} members of {} linked and synced in {:.1} s ({database})", sandbox::MEMBER_LARGE, started.elapsed().as_secs_f64());
    let ex: Value = http
        .post(format!("{base}/link/exchange"))
        .json(&json!({"public_token": measured[0].1, "secret_key": sk}))
        .send()
        .await?
        .json()
        .await?;
    let token = ex["access_token"].as_str().context("exchange failed")?.to_string();
    let patient = ex["patient"].as_str().context("no patient")?.trim_start_matches("Patient/").to_string();
    let first: Value = http.get(format!("{base}/fhir/ExplanationOfBenefit?_count=1")).bearer_auth(&token).send().await?.json().await?;
    let eob = first["entry"][0]["resource"]["id"].as_str().context("no claim")?.to_string();
    let cases = [
        ("read by id", format!("/fhir/ExplanationOfBenefit/{eob}")),
        ("search by patient, 50 results", format!("/fhir/ExplanationOfBenefit?patient={patient}&_count=50")),
        ("the same, date-filtered", format!("/fhir/ExplanationOfBenefit?patient={patient}&service-date=ge1900-01-01&_count=50")),
    ];
    let small = measure(&state, &base, &token, &cases).await?;
    let (r_small, p_small) = counts(&state).await?;

    // The other members: linked, and their records stored through the store's upsert.
    let template_rows = sqlx::query(
        "SELECT body FROM resources WHERE authorization_id = $1 AND resource_type IN ('Patient', 'ExplanationOfBenefit') \
         ORDER BY CASE WHEN resource_type = 'Patient' THEN 0 ELSE 1 END, id LIMIT $2",
    )
    .bind(&measured[0].0)
    .bind(per_member)
    .fetch_all(&state.db.pool)
    .await?;
    let templates: Vec<Value> =
        template_rows.iter().map(|r| r.try_get::<String, _>("body").map(|b| serde_json::from_str(&b))).collect::<Result<Result<_, _>, _>>()??;
    let loading = Instant::now();
    let extra = members - MEASURED;
    let linked: Vec<anyhow::Result<(String, String)>> = futures::stream::iter((0..extra).map(|i| {
        let (http, base, sk) = (http.clone(), base.clone(), sk.clone());
        async move { link(&http, &base, &sk, &format!("member-{i}"), sandbox::MEMBER_TYPICAL).await }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    let linked: Vec<(String, String)> = linked.into_iter().collect::<anyhow::Result<_>>()?;
    println!("{extra} more members linked in {:.1} s", loading.elapsed().as_secs_f64());
    let storing = Instant::now();
    let patient_ref = format!("Patient/{patient}");
    let stored: Vec<anyhow::Result<()>> = futures::stream::iter(linked.iter().enumerate().map(|(n, (authz, _))| {
        let (state, templates, patient, patient_ref) = (state.clone(), &templates, &patient, &patient_ref);
        async move {
            let new_patient = format!("{patient}-m{n}");
            let new_ref = format!("Patient/{new_patient}");
            let mut items = Vec::with_capacity(templates.len());
            for t in templates {
                let mut v = t.clone();
                let id = v["id"].as_str().unwrap_or_default().to_string();
                v["id"] = Value::String(if id == *patient { new_patient.clone() } else { format!("{id}-m{n}") });
                let raw = v.to_string().replace(patient_ref.as_str(), &new_ref);
                let parsed: Value = serde_json::from_str(&raw)?;
                items.push(index(&raw, &parsed).context("a template without resourceType or id")?);
            }
            resources::upsert(state.resource_store(), authz, SystemClock.now(), &items, None).await?;
            Ok(())
        }
    }))
    .buffer_unordered(2)
    .collect()
    .await;
    stored.into_iter().collect::<anyhow::Result<()>>()?;
    let (r_large, p_large) = counts(&state).await?;
    println!(
        "{} resources ({} index rows) stored for them through resources::upsert in {:.1} s ({:.0} resources/s)",
        r_large - r_small,
        p_large - p_small,
        storing.elapsed().as_secs_f64(),
        (r_large - r_small) as f64 / storing.elapsed().as_secs_f64()
    );

    let large = measure(&state, &base, &token, &cases).await?;
    println!();
    println!(
        "machine: {}; database: {database}; wrk -t2 -c{} -d{}s; {MEASURED} members: {r_small} resources; {members} members: {r_large} resources",
        machine(),
        env_or("BENCH_CONNECTIONS", "32"),
        env_or("BENCH_SECS", "10")
    );
    println!("| request | req/s at {MEASURED} | p50 | p99 | req/s at {members} | p50 | p99 | p99 ratio | load avg |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (((name, _), s), l) in cases.iter().zip(&small).zip(&large) {
        println!(
            "| {name} | {:.1} | {} | {} | {:.1} | {} | {} | {:.2} | {} |",
            s.rps,
            s.p50,
            s.p99,
            l.rps,
            l.p50,
            l.p99,
            millis(&l.p99) / millis(&s.p99),
            loadavg()
        );
    }

    if let Some(mut db) = pg {
        if env_or("BENCH_EXPLAIN", "") == "1" {
            // New connections of this database log every statement's plan.
            for set in ["session_preload_libraries = 'auto_explain'", "auto_explain.log_min_duration = 0", "auto_explain.log_analyze = on"] {
                db.admin(&format!("ALTER DATABASE {} SET {set}", db.name)).await?;
            }
            let (_, second_base) = start(second_settings).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (name, path) in &cases {
                let status = http.get(format!("{second_base}{path}")).bearer_auth(&token).send().await?.status();
                println!("explained: {name} ({status}): the plans are in the PostgreSQL server's log");
            }
            db.admin(&format!("ALTER DATABASE {} RESET ALL", db.name)).await?;
        }
        state.db.pool.close().await;
        if env_or("BENCH_KEEP", "") == "1" {
            println!("kept the database {}", db.name);
        } else {
            db.drop().await;
        }
    }
    Ok(())
}
