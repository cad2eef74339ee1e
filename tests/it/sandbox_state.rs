//! The sandbox payer's authorization state lives in the database, as a real payer's would: a server restarted
//! on the same database (or another instance sharing it) honours the codes, refresh tokens and access tokens
//! its sandbox issued before, a sync interrupted by the restart resumes and completes, and expired codes and
//! refresh tokens are refused and purged.

use link_sdk::{
    domain::Usage,
    server::{
        platform::clock::Clock as _,
        services::sync,
        store::authorizations,
        surfaces::sandbox,
    },
};
use oauth2::PkceCodeChallenge;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::{spawn_app_with, test_settings, TestApp};
use crate::payer_oauth::{app_with, drain, link};

const HEALTH: &str = "sandbox-health";
const SCOPE: &str = "launch/patient offline_access patient/*.read";

async fn status(app: &TestApp, authorization_id: &str) -> link_sdk::server::store::sync_jobs::JobStatus {
    sync::status(&app.state.db, authorization_id).await.unwrap().expect("a sync job")
}

#[tokio::test]
async fn a_restart_mid_sync_resumes_and_the_payer_refresh_keeps_working() {
    let app = app_with(|_| {}).await;

    // big.claims (2,400 EOBs, 48 pages of 50): linked, and its sync stopped part-way by a shutdown. The job runs
    // with a shutdown token of its own, so it stops at a page boundary, as on SIGTERM, while the server keeps
    // answering the page in flight.
    let (_, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_LARGE, Usage::Multiple, &["ExplanationOfBenefit"]).await;
    let large = r.expect("big.claims links").authorization_id;
    let mut job_state = app.state.clone();
    job_state.shutdown = CancellationToken::new();
    let stop = job_state.shutdown.clone();
    let running = tokio::spawn(async move { sync::run_once(&job_state).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while status(&app, &large).await.progress.get("ExplanationOfBenefit").copied().unwrap_or(0) < 250 {
        assert!(std::time::Instant::now() < deadline && !running.is_finished(), "{:?}", status(&app, &large).await);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.cancel();
    assert!(running.await.unwrap(), "the job ran");
    let st = status(&app, &large).await;
    let before = st.progress["ExplanationOfBenefit"];
    assert_eq!(st.status, "syncing", "paused, not finished: {st:?}");
    assert!((250..2_400).contains(&before), "{st:?}");

    // short.token (access tokens good for 4 FHIR requests): linked before the restart, synced after it, so every
    // refresh of its sync presents a refresh token that the sandbox issued before the restart or rotated after.
    let types = ["Patient", "Coverage", "ExplanationOfBenefit", "Condition", "Observation"];
    let (_, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, "short.token", Usage::Multiple, &types).await;
    let short = r.expect("short.token links").authorization_id;

    let app = app.restart().await;

    // The access token issued before the restart still verifies: the sandbox's signing key is in the database.
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &large).await.unwrap().unwrap();
    let resp = app
        .client
        .get(format!("{}/Patient", sandbox::fhir_base(&app.base_url, HEALTH)))
        .bearer_auth(creds.access_token.unwrap().expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Both syncs complete on the restarted server; big.claims resumed from its cursor (a restart from the first
    // page would count the pages already stored twice).
    drain(&app).await;
    let st = status(&app, &large).await;
    assert_eq!((st.status.as_str(), st.exit_code), ("complete", None), "{st:?}");
    assert_eq!(st.progress["ExplanationOfBenefit"], 2_400, "{st:?}");
    let st = status(&app, &short).await;
    assert_eq!((st.status.as_str(), st.exit_code), ("complete", None), "{st:?}");
    assert_eq!(st.progress["ExplanationOfBenefit"], 60, "{st:?}");
    let a = authorizations::get(&app.state.db, &short).await.unwrap().unwrap();
    assert_eq!(a.state, "REFRESHED", "short.token's sync refreshed mid-way");

    // Later re-syncs, with every access token expired: each refreshes with its stored refresh token.
    app.clock.advance(7_200);
    for id in [&large, &short] {
        sync::request_resync(&app.state.db, id, app.clock.now()).await.unwrap();
    }
    drain(&app).await;
    for id in [&large, &short] {
        let st = status(&app, id).await;
        assert_eq!((st.status.as_str(), st.exit_code), ("complete", None), "{st:?}");
        let a = authorizations::get(&app.state.db, id).await.unwrap().unwrap();
        assert_eq!(a.state, "REFRESHED");
    }
}

/// Signs in at the sandbox payer `sandbox-health` of the server at `base` as `member` and approves: the
/// `code` and its PKCE `code_verifier`.
async fn sign_in(http: &reqwest::Client, base: &str, redirect_uri: &str, member: &str) -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut url = url::Url::parse(&format!("{base}/sandbox/{HEALTH}/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", sandbox::CLIENT_ID),
        ("redirect_uri", redirect_uri),
        ("scope", SCOPE),
        ("state", "state-1"),
        ("aud", &sandbox::fhir_base(base, HEALTH)),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    let location = sandbox::drive_consent(http, url.as_str(), member, true).await.unwrap();
    let code = url::Url::parse(&location).unwrap().query_pairs().find(|(k, _)| k == "code").expect("a code").1.into_owned();
    (code, verifier.secret().clone())
}

/// `POST {base}/sandbox/sandbox-health/token` with `form` (plus `client_id`): the status and the JSON body.
async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let mut form = form.to_vec();
    form.push(("client_id", sandbox::CLIENT_ID));
    let resp = http.post(format!("{base}/sandbox/{HEALTH}/token")).form(&form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn exchange(app: &TestApp, base: &str, code: &str, verifier: &str) -> (u16, Value) {
    let redirect_uri = format!("{}/link/callback", app.base_url);
    token(
        &app.client,
        base,
        &[("grant_type", "authorization_code"), ("code", code), ("redirect_uri", &redirect_uri), ("code_verifier", verifier)],
    )
    .await
}

async fn refresh(http: &reqwest::Client, base: &str, refresh_token: &str) -> (u16, Value) {
    token(http, base, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

async fn rows(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&app.state.db.pool).await.unwrap()
}

#[tokio::test]
async fn another_instance_on_the_same_database_honours_what_the_sandbox_issued() {
    let (mut s1, dir1, url) = test_settings().await;
    s1.sync_workers = 0;
    let dir2 = tempfile::tempdir().unwrap();
    let mut s2 = link_sdk::server::settings::Settings::for_tests(dir2.path().to_path_buf());
    s2.database_url = Some(url.clone());
    s2.sync_workers = 0;
    let a = spawn_app_with(s1, dir1, url.clone()).await;
    let b = spawn_app_with(s2, dir2, url).await;
    b.clock.set(a.clock.now());

    // A code issued by A's sandbox is redeemed at B's, once.
    let (code, verifier) = sign_in(&a.client, &a.base_url, &format!("{}/link/callback", a.base_url), sandbox::MEMBER_TYPICAL).await;
    let (st, t) = exchange(&a, &b.base_url, &code, &verifier).await;
    assert_eq!(st, 200, "{t}");
    let (st, e) = exchange(&a, &a.base_url, &code, &verifier).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "a code works once, on any instance");

    // An access token of B's sandbox works at A's FHIR server; refresh tokens rotate across instances.
    let access = t["access_token"].as_str().unwrap();
    let resp = a.client.get(format!("{}/Patient", sandbox::fhir_base(&a.base_url, HEALTH))).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let first = t["refresh_token"].as_str().unwrap();
    let (st, t2) = refresh(&a.client, &a.base_url, first).await;
    assert_eq!(st, 200, "{t2}");
    let (st, e) = refresh(&b.client, &b.base_url, first).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "the rotated refresh token is spent everywhere");
    let (st, _) = refresh(&b.client, &b.base_url, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(st, 200);
}

#[tokio::test]
async fn expired_codes_and_refresh_tokens_are_refused_and_purged() {
    let app = app_with(|_| {}).await;
    let base = app.base_url.clone();
    let redirect_uri = format!("{base}/link/callback");
    let payer = sandbox::default_payers().into_iter().find(|p| p.slug == HEALTH).unwrap();

    // Codes: single use and short-lived; expired ones are deleted when the next code is issued.
    let (code, verifier) = sign_in(&app.client, &base, &redirect_uri, sandbox::MEMBER_TYPICAL).await;
    for _ in 0..2 {
        sign_in(&app.client, &base, &redirect_uri, sandbox::MEMBER_TYPICAL).await;
    }
    assert_eq!(rows(&app, "sandbox_codes").await, 3);
    app.clock.advance(payer.code_ttl + 1);
    let (st, e) = exchange(&app, &base, &code, &verifier).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "expired code");
    let (code, verifier) = sign_in(&app.client, &base, &redirect_uri, sandbox::MEMBER_TYPICAL).await;
    assert_eq!(rows(&app, "sandbox_codes").await, 1, "expired codes purged");

    // Refresh tokens: long-lived, then refused; expired ones are deleted when the next one is issued.
    let mut issued = Vec::new();
    for i in 0..3 {
        let (code, verifier) =
            if i == 0 { (code.clone(), verifier.clone()) } else { sign_in(&app.client, &base, &redirect_uri, sandbox::MEMBER_TYPICAL).await };
        let (st, t) = exchange(&app, &base, &code, &verifier).await;
        assert_eq!(st, 200, "{t}");
        issued.push(t["refresh_token"].as_str().unwrap().to_string());
    }
    assert_eq!(rows(&app, "sandbox_codes").await, 0, "redeemed codes are gone");
    app.clock.advance(payer.refresh_token_ttl - 60);
    let (st, t) = refresh(&app.client, &base, &issued[0]).await;
    assert_eq!(st, 200, "still valid a minute before its expiry: {t}");
    let fresh = t["refresh_token"].as_str().unwrap().to_string();
    app.clock.advance(61);
    let (st, e) = refresh(&app.client, &base, &issued[1]).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")), "expired refresh token");
    let (st, t) = refresh(&app.client, &base, &fresh).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(rows(&app, "sandbox_refresh_tokens").await, 1, "expired refresh tokens purged, rotated ones spent");
}
