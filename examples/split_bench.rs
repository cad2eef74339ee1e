//! Benchmark of two instances sharing one database and one sync queue (prints figures; not a timed test).
//!
//! A first server (the "payer" side: it serves the built-in sandbox payers, runs no sync worker) links
//! `BENCH_JOBS` (default 1,000) sandbox members through the test-mode shortcut (real payer OAuth over HTTP), which
//! queues one sync job each. Then two more servers, A and B, start on the same database and drain the queue, each
//! with `BENCH_WORKERS` (default 4) loops of the real claim-and-run step (`services::sync::run_once`); the jobs
//! alternate between the two sandbox payers, each run at most `PER_PAYER_LIMIT` at a time across all instances.
//! It prints how many jobs each instance ran, the time to drain the queue, and checks in the database that every
//! job ran exactly once: one job per authorization, each `complete`, each claimed once (`attempt` = 1).
//!
//! ```text
//! CARGO_TARGET_DIR=target/bench cargo build --release --example split_bench
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres target/bench/release/examples/split_bench
//! BENCH_JOBS=200 target/bench/release/examples/split_bench      # SQLite: one file shared by the three servers
//! ```
//! With `BENCH_DATABASE_URL` the servers share a new database created there (`link_split_<unix s>`, dropped at
//! the end); otherwise a SQLite file. Only 127.0.0.1 (and that server) is contacted.

#[path = "support/mod.rs"]
mod support;

use std::{
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use link_sdk::server::{
    platform::clock::{Clock, SystemClock},
    services::sync::{self, job::PER_PAYER_LIMIT},
    settings::Settings,
    state::AppState,
    store::apps::{self, NewApp},
    surfaces::sandbox,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, Value};
use support::{env_or, loadavg, machine, start, without_rate_limits, BenchDatabase};
use futures::StreamExt as _;
use sqlx::Row as _;


/// Settings of one of the servers: one encryption key for all (each opens the payer tokens another stored), no
/// worker of its own, no rate limits (the links come from one address).
fn settings(dir: &Path, database_url: &str, key: &SecretString) -> Settings {
    let mut s = Settings::for_tests(dir.to_path_buf());
    s.database_url = Some(database_url.to_string());
    s.encryption_key = Some(key.clone());
    s.sync_workers = 0;
    without_rate_limits(&mut s);
    s
}


/// Pending, syncing or delayed jobs left.
async fn unfinished(state: &AppState) -> anyhow::Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM sync_jobs WHERE status IN ('pending', 'syncing', 'delayed')")
        .fetch_one(&state.db.pool)
        .await?;
    Ok(row.try_get("n")?)
}

/// `workers` loops of claim-and-run on `state` until the queue is empty; returns how many jobs they ran.
async fn drain(state: AppState, workers: usize) -> usize {
    let ran = Arc::new(AtomicUsize::new(0));
    let loops = (0..workers).map(|_| {
        let (state, ran) = (state.clone(), ran.clone());
        tokio::spawn(async move {
            loop {
                if sync::run_once(&state).await {
                    ran.fetch_add(1, Ordering::Relaxed);
                } else if unfinished(&state).await.unwrap_or(1) == 0 {
                    return;
                } else {
                    // Every due job is running elsewhere, or its payer is at its limit.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    });
    futures::future::join_all(loops).await;
    ran.load(Ordering::Relaxed)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let jobs: usize = env_or("BENCH_JOBS", "1000").parse()?;
    let workers: usize = env_or("BENCH_WORKERS", "4").parse()?;
    let dir = tempfile::tempdir()?;
    let pg = BenchDatabase::create("link_split").await?;
    let url = match &pg {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.path().join("shared.db").display()),
    };
    let database = if pg.is_some() { "PostgreSQL" } else { "SQLite" };

    let key = {
        use base64::Engine as _;
        use rand::RngCore as _;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        SecretString::from(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let (payer, base) = start(settings(&dir.path().join("payer"), &url, &key)).await?;
    let (_, keys) = apps::create(&payer.db, SystemClock.now(), NewApp { name: "split".into(), ..Default::default() }).await?;
    let sk = keys.test_secret.expose_secret().to_string();
    let http = reqwest::Client::new();
    let linking = Instant::now();
    let endpoints = [sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::NON_REFRESHABLE_ENDPOINT_ID];
    let mut authorizations = Vec::with_capacity(jobs);
    // Eight links at a time.
    let mut stream = futures::stream::iter((0..jobs).map(|i| {
        let (http, base, sk) = (http.clone(), base.clone(), sk.clone());
        async move {
            let v: Value = http
                .post(format!("{base}/link/test/public_token"))
                .json(&json!({"secret_key": sk, "external_id": format!("member-{i}"), "member": sandbox::MEMBER_TYPICAL,
                              "endpoint_id": endpoints[i % 2]}))
                .send()
                .await?
                .json()
                .await?;
            v["authorization_id"].as_str().map(str::to_string).with_context(|| format!("test shortcut failed: {v}"))
        }
    }))
    .buffer_unordered(8);
    while let Some(id) = stream.next().await {
        authorizations.push(id?);
    }
    println!("{jobs} members linked through the sandbox payers in {:.1} s ({database})", linking.elapsed().as_secs_f64());
    anyhow::ensure!(unfinished(&payer).await? == i64::try_from(jobs)?, "one queued job per link");

    let (a, _) = start(settings(&dir.path().join("a"), &url, &key)).await?;
    let (b, _) = start(settings(&dir.path().join("b"), &url, &key)).await?;
    let started = Instant::now();
    let (ran_a, ran_b) = tokio::join!(drain(a.clone(), workers), drain(b.clone(), workers));
    let secs = started.elapsed().as_secs_f64();

    let row = sqlx::query(
        "SELECT COUNT(*) AS jobs, COUNT(DISTINCT authorization_id) AS authorizations, \
         SUM(CASE WHEN status = 'complete' THEN 1 ELSE 0 END) AS complete, \
         SUM(CASE WHEN attempt = 1 THEN 1 ELSE 0 END) AS claimed_once, MAX(attempt) AS most_claims FROM sync_jobs",
    )
    .fetch_one(&a.db.pool)
    .await?;
    let (total, distinct, complete, once, most): (i64, i64, i64, i64, i64) = (
        row.try_get("jobs")?,
        row.try_get("authorizations")?,
        row.try_get("complete")?,
        row.try_get("claimed_once")?,
        row.try_get("most_claims")?,
    );
    println!(
        "machine: {}; database: {database}; {workers} worker loops per instance; at most {PER_PAYER_LIMIT} jobs per payer at once",
        machine()
    );
    println!("| jobs | ran on A | ran on B | time to drain | jobs/s | jobs in the table | authorizations | complete | claimed once | most claims of one job | load avg |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {jobs} | {ran_a} | {ran_b} | {secs:.1} s | {:.1} | {total} | {distinct} | {complete} | {once} | {most} | {} |",
        jobs as f64 / secs,
        loadavg()
    );
    let exactly_once = ran_a + ran_b == jobs
        && total == i64::try_from(authorizations.len())?
        && distinct == total
        && complete == total
        && once == total;
    println!("each job ran exactly once: {}", if exactly_once { "yes" } else { "NO" });
    if complete != total {
        let rows = sqlx::query("SELECT status, exit_code, COUNT(*) AS n FROM sync_jobs GROUP BY status, exit_code").fetch_all(&a.db.pool).await?;
        for r in rows {
            let (status, code, n): (String, Option<String>, i64) = (r.try_get("status")?, r.try_get("exit_code")?, r.try_get("n")?);
            println!("  {n} jobs {status} {}", code.unwrap_or_default());
        }
    }
    for s in [&payer, &a, &b] {
        s.db.pool.close().await;
    }
    if let Some(db) = pg {
        db.drop().await;
    }
    anyhow::ensure!(exactly_once, "a job ran more or less than once");
    Ok(())
}


