//! Payer sign-in and sync against the built-in sandbox payer (mounted in our server): `begin` → the
//! sandbox's sign-in and consent → `complete` → the sync job, for a typical member and each sandbox fault.

use std::collections::HashMap;

use crate::common::{spawn_app_with, test_settings, TestApp};
use link_sdk::{
    domain::{ExitCode, Usage},
    server::{
        platform::clock::Clock as _,
        services::{
            link_flow::{self, Authorized},
            payer::oauth::CallbackParams,
            sync,
        },
        store::{
            apps, authorizations,
            endpoints::{self, Endpoint},
        },
        surfaces::sandbox,
    },
};
use serde_json::json;

pub(crate) async fn app_with(tweak: impl FnOnce(&mut link_sdk::server::settings::Settings)) -> TestApp {
    let (mut settings, dir, url) = test_settings().await;
    settings.sync_workers = 0;
    settings.sandbox = true;
    tweak(&mut settings);
    spawn_app_with(settings, dir, url).await
}

/// An app and a Link session at the consent-done step (the Link flow writes these rows in production).
async fn session(app: &TestApp, usage: Usage, requested: &[&str]) -> String {
    let now = app.clock.now();
    let (a, _) = apps::create(
        &app.state.db,
        now,
        apps::NewApp {
            name: "OAuth test app".into(),
            allowed_origins: vec![],
            redirect_uris: vec![],
            webhook_url: None,
            logo_url: None,
            brand_color: None,
        },
    )
    .await
    .unwrap();
    let id = crate::common::new_session_id();
    sqlx::query(
        "INSERT INTO link_sessions (id, app_id, mode, external_id, usage, options, nonce, step, expires_at, created_at, \
         updated_at) VALUES ($1, $2, 'test', 'user-42', $3, $4, 'n', 'connect', $5, $6, $6)",
    )
    .bind(&id)
    .bind(&a.id)
    .bind(usage.as_str())
    .bind(json!({"requestedResources": requested}).to_string())
    .bind(now + 3600)
    .bind(now)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    id
}

async fn endpoint(app: &TestApp, id: &str) -> Endpoint {
    endpoints::get(&app.state.db, id).await.unwrap().expect("sandbox endpoint registered")
}

/// begin → sandbox sign-in as `username` (approve) → complete.
pub(crate) async fn link(
    app: &TestApp,
    endpoint_id: &str,
    username: &str,
    usage: Usage,
    requested: &[&str],
) -> (String, Result<Authorized, (Option<String>, ExitCode)>) {
    let sid = session(app, usage, requested).await;
    let e = endpoint(app, endpoint_id).await;
    let requested: Vec<String> = requested.iter().map(|s| s.to_string()).collect();
    let h = crate::common::begin_handoff(&app.state, &sid, &e, usage, &requested).await.expect("begin");
    let location = sandbox::drive_consent(&app.client, &h.url, username, true).await.expect("sandbox consent");
    let loc = url::Url::parse(&location).unwrap();
    assert_eq!(format!("{}{}", loc.origin().ascii_serialization(), loc.path()), format!("{}/link/callback", app.base_url));
    let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let params = CallbackParams {
        code: q.get("code").cloned(),
        state: q.get("state").cloned(),
        error: q.get("error").cloned(),
        error_description: q.get("error_description").cloned(),
        iss: q.get("iss").cloned(),
    };
    let r = link_flow::payer_callback(&app.state, params, &[secrecy::ExposeSecret::expose_secret(&h.binder)]).await;
    (sid, r)
}

pub(crate) async fn drain(app: &TestApp) {
    let mut n = 0;
    while sync::run_once(&app.state).await {
        n += 1;
        assert!(n < 20);
    }
}

#[tokio::test]
async fn typical_member_links_and_syncs_from_the_sandbox() {
    let app = app_with(|_| {}).await;
    let (sid, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL, Usage::Multiple, &[]).await;
    let done = r.unwrap();
    assert_eq!(done.link_session_id, sid);
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!((a.usage, a.downgraded), (Usage::Multiple, false));
    assert!(a.patient_id.is_some());
    drain(&app).await;
    let st = sync::status(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    assert_eq!(st.progress["ExplanationOfBenefit"], 24, "{st:?}");
    assert!(st.progress["Coverage"] >= 1);
    // MULTIPLE re-sync with the stored refresh token after the access token expired.
    app.clock.advance(7_200);
    sync::request_resync(&app.state.db, &done.authorization_id, app.clock.now()).await.unwrap();
    drain(&app).await;
    let st = sync::status(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!(a.state, "REFRESHED");
}

#[tokio::test]
async fn non_refreshable_sandbox_payer_downgrades_multiple() {
    let app = app_with(|_| {}).await;
    let (_, r) = link(&app, sandbox::NON_REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL, Usage::Multiple, &["Coverage"]).await;
    let a = authorizations::get(&app.state.db, &r.unwrap().authorization_id).await.unwrap().unwrap();
    assert_eq!((a.usage_requested, a.usage, a.downgraded), (Usage::Multiple, Usage::OneTime, true));
    assert!(a.expunge_at.is_some());
}

#[tokio::test]
async fn sandbox_sign_in_faults_map_to_exit_codes() {
    let app = app_with(|_| {}).await;
    for (member, code) in [
        ("deny.consent", ExitCode::PayerAccessDenied),
        ("scope.rejected", ExitCode::ScopeConfigurationError),
        ("token.error", ExitCode::PayerTokenExchangeFailed),
        ("no.code", ExitCode::MalformedPayerCallback),
        ("bad.state", ExitCode::InvalidState),
    ] {
        let (sid, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, member, Usage::OneTime, &[]).await;
        let (got_sid, got) = r.unwrap_err();
        assert_eq!(got, code, "{member}");
        if member != "bad.state" {
            assert_eq!(got_sid, Some(sid), "{member}");
        }
    }
}

#[tokio::test]
async fn slow_sandbox_token_endpoint_is_a_payer_timeout() {
    let app = app_with(|s| s.payer_timeout_secs = 1).await;
    let (_, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, "token.slow", Usage::OneTime, &[]).await;
    assert_eq!(r.unwrap_err().1, ExitCode::PayerTimeout);
}

#[tokio::test]
async fn sandbox_fhir_faults_are_survived_or_reported() {
    let app = app_with(|_| {}).await;
    let types = ["Patient", "Coverage", "ExplanationOfBenefit", "Condition"];
    // (member, expected status, expected exit code)
    let cases = [
        ("short.token", "complete", None),
        ("relative.next", "complete", None),
        ("rate.limited", "complete", None),
        ("narrow.scope", "partial", None),
        ("plan.unreachable", "failed", Some(ExitCode::PlanNotReachable)),
        ("server.error", "failed", Some(ExitCode::PayerServerError)),
        ("no.patient", "failed", Some(ExitCode::SyncFailed)),
    ];
    for (member, status, code) in cases {
        // MULTIPLE: the sandbox only issues refresh tokens with offline_access, which short.token needs.
        let (_, r) = link(&app, sandbox::REFRESHABLE_ENDPOINT_ID, member, Usage::Multiple, &types).await;
        let id = r.unwrap_or_else(|e| panic!("{member}: {e:?}")).authorization_id;
        drain(&app).await;
        let st = sync::status(&app.state.db, &id).await.unwrap().unwrap();
        assert_eq!((st.status.as_str(), st.exit_code), (status, code), "{member}: {st:?}");
        if status == "complete" {
            assert_eq!(st.progress["ExplanationOfBenefit"], 60, "{member}: every EOB across pages: {st:?}");
        }
    }
}

#[tokio::test]
async fn faulty_sandbox_payer_syncs_completely() {
    let app = app_with(|_| {}).await;
    let (_, r) = link(&app, sandbox::FAULTY_ENDPOINT_ID, sandbox::MEMBER_TYPICAL, Usage::Multiple, &["Coverage", "ExplanationOfBenefit"]).await;
    let id = r.unwrap().authorization_id;
    drain(&app).await;
    let st = sync::status(&app.state.db, &id).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    assert_eq!(st.progress["ExplanationOfBenefit"], 24);
}
