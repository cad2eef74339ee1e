//! The plan directory: importing SMART User-access Brands bundles (idempotent, dry run), the operator's
//! changes (set, disable, enable, delete), `endpoints check` against the sandbox payers and a misconfigured
//! payer, and endpoint health computed from real link attempts with `endpoint.status_changed` once per change.

use std::process::{Command, Output};

use axum::{routing::get, Json, Router};
use link_sdk::{
    domain::{HealthStatus, Mode},
    server::{
        services::directory::{self, check, health, import},
        store::{
            apps::{self, NewApp},
            brands, endpoint_health,
            endpoints::{self, Endpoint},
        },
        surfaces::sandbox,
    },
};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::{
    api_support::{self, ClockNow as _},
    common::TestApp,
};

const BUNDLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures/user_access_brands.json");

/// Runs the built binary against the test server's database and data folder (off the runtime's thread, so the
/// server keeps answering the requests the command makes).
async fn cli(app: &TestApp, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_link-sdk"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(app.dir.path())
        .arg("--database-url")
        .arg(&app.database_url)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("run link-sdk")
}

/// Runs the binary, asserts success, returns stdout.
async fn cli_ok(app: &TestApp, args: &[&str]) -> String {
    let out = cli(app, args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "link-sdk {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[tokio::test]
async fn a_brands_bundle_imports_idempotently_with_a_dry_run_and_two_brands_share_one_endpoint() {
    let app = api_support::server().await;
    let db = &app.state.db;

    // The dry run prints the plan and writes nothing.
    let dry = cli_ok(&app, &["endpoints", "import", BUNDLE, "--dry-run"]).await;
    assert!(dry.contains("Dry run, nothing written"), "{dry}");
    assert!(dry.contains("create endpoint") && dry.contains("create brand"), "{dry}");
    assert!(dry.contains("--client-id"), "a published endpoint needs our client id: {dry}");
    assert!(brands::list(db).await.unwrap().is_empty());

    let first = cli_ok(&app, &["endpoints", "import", BUNDLE]).await;
    assert!(first.contains("2 endpoint(s): 2 created, 0 updated, 0 unchanged"), "{first}");
    assert!(first.contains("4 brand(s): 4 created"), "{first}");

    // Brands as the bundle says: aliases, logo, portal, an affiliate (`partOf`) inheriting its parent's endpoint;
    // the inactive brand and the DSTU2 endpoint are skipped.
    let all = brands::list(db).await.unwrap();
    let by_name = |n: &str| all.iter().find(|b| b.name == n).unwrap_or_else(|| panic!("brand {n}: {all:?}")).clone();
    let northwind = by_name("Northwind Health");
    let contoso = by_name("Contoso Care Plans");
    let medicaid = by_name("Contoso Community Medicaid");
    let fabrikam = by_name("Fabrikam Health Plan");
    assert!(all.iter().all(|b| b.name != "Retired Mutual"));
    assert_eq!(northwind.aliases, ["NWH", "Northwind Medicare Advantage"]);
    assert_eq!(northwind.logo_url.as_deref(), Some("https://www.northwindhealth.example/logo.svg"));
    assert_eq!(northwind.portal_name.as_deref(), Some("MyNorthwind"));
    assert_eq!(northwind.portal_url.as_deref(), Some("https://my.northwindhealth.example"));
    assert_eq!(northwind.website.as_deref(), Some("https://www.northwindhealth.example"));
    assert_eq!(northwind.mode, Mode::Live);
    assert_eq!(northwind.endpoint_ids.len(), 1);
    assert_eq!(northwind.endpoint_ids, contoso.endpoint_ids, "two brands share the gateway endpoint");
    assert_eq!(medicaid.endpoint_ids, contoso.endpoint_ids, "an affiliate uses its parent's endpoint");
    assert_ne!(fabrikam.endpoint_ids, contoso.endpoint_ids);
    let gateway_id = northwind.endpoint_ids[0].clone();
    let gateway = endpoints::get(db, &gateway_id).await.unwrap().unwrap();
    assert_eq!(gateway.fhir_base_url, "https://fhir.payergateway.example/r4");
    assert_eq!(gateway.client_id, "", "the publisher does not know our client id");

    // Without a client id the endpoint is offered to nobody; with one, under each brand that points to it.
    assert!(directory::search(&app.state, Mode::Live, "northwind", 20).await.unwrap().is_empty());
    cli_ok(&app, &["endpoints", "set", &gateway_id, "--client-id", "link-at-gateway", "--max-grant-secs", "31536000"]).await;
    let found = directory::search(&app.state, Mode::Live, "", 20).await.unwrap();
    let names: Vec<&str> = found.iter().filter(|c| c.endpoint.id == gateway_id).map(|c| c.name()).collect();
    assert_eq!(names, ["Contoso Care Plans", "Contoso Community Medicaid", "Northwind Health"]);
    let by_alias = directory::search(&app.state, Mode::Live, "NWH", 20).await.unwrap();
    assert_eq!(by_alias.iter().map(|c| c.name()).collect::<Vec<_>>(), ["Northwind Health"]);
    assert!(directory::search(&app.state, Mode::Test, "northwind", 20).await.unwrap().is_empty(), "live only");

    // Importing again changes nothing, and keeps the operator's client id.
    let again = cli_ok(&app, &["endpoints", "import", BUNDLE]).await;
    assert!(again.contains("2 endpoint(s): 0 created, 0 updated, 2 unchanged"), "{again}");
    assert!(again.contains("0 created, 0 updated, 4 unchanged"), "{again}");
    assert_eq!(endpoints::get(db, &gateway_id).await.unwrap().unwrap().client_id, "link-at-gateway");
    let plan = import::plan(db, &import::parse(&std::fs::read_to_string(BUNDLE).unwrap(), Mode::Live).unwrap()).await.unwrap();
    assert!(plan.changes.is_empty(), "{:?}", plan.lines());
    assert_eq!(plan.skipped.len(), 2, "{:?}", plan.skipped);

    // A corrected bundle updates in place; the dry run lists the field.
    let corrected = std::fs::read_to_string(BUNDLE).unwrap().replace("\"NWH\", ", "");
    let file = app.dir.path().join("corrected.json");
    std::fs::write(&file, corrected).unwrap();
    let dry = cli_ok(&app, &["endpoints", "import", file.to_str().unwrap(), "--dry-run"]).await;
    assert!(dry.contains(&format!("update brand {}", northwind.id)) && dry.contains("aliases"), "{dry}");
    cli_ok(&app, &["endpoints", "import", file.to_str().unwrap()]).await;
    assert_eq!(brands::get(db, &northwind.id).await.unwrap().unwrap().aliases, ["Northwind Medicare Advantage"]);

    // Disable hides it from patients, enable brings it back.
    cli_ok(&app, &["endpoints", "disable", &gateway_id]).await;
    assert!(directory::search(&app.state, Mode::Live, "contoso", 20).await.unwrap().is_empty());
    assert!(cli_ok(&app, &["endpoints", "list"]).await.contains("DISABLED"));
    cli_ok(&app, &["endpoints", "enable", &gateway_id]).await;
    assert_eq!(directory::search(&app.state, Mode::Live, "contoso", 20).await.unwrap().len(), 2);

    // The operator's actions are audited.
    let audit = cli_ok(&app, &["audit", "export"]).await;
    for action in ["endpoints.imported", "endpoint.updated", "endpoint.disabled", "endpoint.enabled"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
}

#[tokio::test]
async fn delete_refuses_while_live_authorizations_use_the_endpoint_unless_forced() {
    let app = api_support::server().await;
    let keys = api_support::create_app(&app, "Delete").await;
    let endpoint = api_support::create_endpoint(&app, true).await;
    let authz = api_support::create_authorization(&app, &keys, &endpoint, "user-1", api_support::patient(), link_sdk::domain::Usage::Multiple).await;

    let refused = cli(&app, &["endpoints", "delete", &endpoint.id]).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("1 live authorization(s)") && err.contains("--force"), "{err}");
    assert!(endpoints::get(&app.state.db, &endpoint.id).await.unwrap().is_some());

    let done = cli_ok(&app, &["endpoints", "delete", &endpoint.id, "--force"]).await;
    assert!(done.contains("1 authorization(s) revoked"), "{done}");
    assert!(endpoints::get(&app.state.db, &endpoint.id).await.unwrap().is_none());
    let a = link_sdk::server::store::authorizations::get(&app.state.db, &authz).await.unwrap().unwrap();
    assert!(!a.is_live(app.clock_now()), "revoked first");
}

/// A payer that answers discovery and metadata with everything `endpoints check` looks for done wrong.
async fn misconfigured_payer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let router = Router::new()
        .route(
            "/fhir/.well-known/smart-configuration",
            get(move || {
                let b = b.clone();
                async move {
                    Json(json!({
                        "authorization_endpoint": format!("{b}/authorize"),
                        "token_endpoint": format!("{b}/token"),
                        "code_challenge_methods_supported": ["plain"],
                        "scopes_supported": ["openid", "launch/patient", "patient/*.rs"],
                        "capabilities": ["launch-standalone", "permission-v2"],
                        "token_endpoint_auth_methods_supported": ["private_key_jwt"]
                    }))
                }
            }),
        )
        .route(
            "/fhir/metadata",
            get(|| async {
                Json(json!({"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "3.0.2",
                    "rest": [{"mode": "server", "resource": [{"type": "Patient", "searchParam": [{"name": "_id", "type": "token"}]}]}]}))
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn test_endpoint(id: &str, name: &str, fhir_base_url: String) -> Endpoint {
    Endpoint {
        id: id.into(),
        name: name.into(),
        aliases: Vec::new(),
        logo_url: None,
        mode: Mode::Test,
        fhir_base_url,
        authorize_url: None,
        token_url: None,
        client_id: "link-sdk".into(),
        client_secret_ref: Some("LINK_PAYER_SECRET_DIRECTORY_TEST_UNSET".into()),
        scopes: None,
        refreshable: true,
        resource_types: Vec::new(),
    }
}

fn codes(problems: &[check::Problem]) -> Vec<&'static str> {
    problems.iter().map(|p| p.code).collect()
}

#[tokio::test]
async fn check_passes_the_sandbox_payers_and_reports_each_problem_of_a_misconfigured_one() {
    let app = api_support::server().await;
    let db = &app.state.db;

    // The built-in sandbox payers, probed over HTTP as a link would: no errors.
    for id in [sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::NON_REFRESHABLE_ENDPOINT_ID, sandbox::FAULTY_ENDPOINT_ID] {
        let e = endpoints::get(db, id).await.unwrap().unwrap();
        let problems = check::check(&app.state.http, &e).await;
        assert!(problems.iter().all(|p| p.severity == check::Severity::Warning), "{}: {problems:?}", e.name);
    }
    let out = cli_ok(&app, &["endpoints", "check", sandbox::REFRESHABLE_ENDPOINT_ID, "--json"]).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report[0]["status"], "ok", "{report}");
    let row = endpoint_health::get(db, sandbox::REFRESHABLE_ENDPOINT_ID).await.unwrap().unwrap();
    assert!(row.checked_at.is_some(), "the result is stored");

    // A payer that gets everything wrong: each problem is reported, with its fix.
    let base = misconfigured_payer().await;
    let bad = test_endpoint("0b7c2a9e-5d41-4f3a-8e6b-2c9d1e0f3a01", "Misconfigured Mutual", format!("{base}/fhir"));
    endpoints::upsert(db, app.clock_now(), &bad).await.unwrap();
    let problems = check::check(&app.state.http, &bad).await;
    assert_eq!(
        codes(&problems),
        ["client_secret", "pkce_s256", "scope_style", "offline_access", "fhir_version", "last_updated", "everything"],
        "{problems:#?}"
    );
    assert!(problems.iter().all(|p| !p.fix.is_empty()));
    let failed = cli(&app, &["endpoints", "check", &bad.id]).await;
    assert!(!failed.status.success(), "errors make the check fail");
    let text = String::from_utf8_lossy(&failed.stdout);
    for line in ["error [pkce_s256]", "error [scope_style]", "error [client_secret]", "error [fhir_version]",
        "warning [offline_access]", "warning [last_updated]", "warning [everything]", "— fix: "] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert_eq!(health::assess(&app.state, &bad.id).await.unwrap().status, HealthStatus::Down, "a failed check with no attempts");

    // A FHIR base with nothing behind it, and an entry without a client id.
    let mut nothing = test_endpoint("0b7c2a9e-5d41-4f3a-8e6b-2c9d1e0f3a02", "Nowhere Health", format!("{base}/nothing"));
    nothing.client_secret_ref = None;
    let problems = check::check(&app.state.http, &nothing).await;
    assert_eq!(codes(&problems), ["smart_configuration", "metadata"], "{problems:#?}");
    assert!(problems[0].message.contains("HTTP 404"), "{problems:#?}");
    nothing.client_id = String::new();
    assert_eq!(codes(&check::check_entry(&nothing)), ["client_id"]);
}

/// Links sandbox member `member` through the test shortcut (the real hand-off and callback over HTTP); whether
/// the payer authorized.
async fn link_member(app: &TestApp, sk: &str, endpoint_id: &str, member: &str) -> bool {
    let resp = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .form(&[("secret_key", sk), ("external_id", "user-h"), ("endpoint_id", endpoint_id), ("member", member)])
        .send()
        .await
        .unwrap();
    resp.status().is_success()
}

/// The `endpoint.status_changed` payloads queued for `app_id`, oldest first.
async fn status_changes(app: &TestApp, app_id: &str) -> Vec<Value> {
    let rows = sqlx::query(
        "SELECT payload FROM webhook_deliveries WHERE app_id = $1 AND event = 'endpoint.status_changed' ORDER BY created_at, id",
    )
    .bind(app_id)
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    rows.iter().map(|r| serde_json::from_str::<Value>(&r.get::<String, _>("payload")).unwrap()["data"].clone()).collect()
}

#[tokio::test]
async fn the_picker_tells_each_plans_health_in_plain_words_in_the_patients_language() {
    let app = crate::common::spawn_app().await;
    let keys = crate::link::new_app(&app, false).await;
    let sk = keys.test_sk.clone();
    let (health_plan, basic, faulty) = (sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::NON_REFRESHABLE_ENDPOINT_ID, sandbox::FAULTY_ENDPOINT_ID);
    for _ in 0..3 {
        assert!(link_member(&app, &sk, health_plan, sandbox::MEMBER_TYPICAL).await);
        app.clock.advance(150);
    }
    for member in [sandbox::MEMBER_TYPICAL, "token.error", sandbox::MEMBER_TYPICAL, "token.error"] {
        link_member(&app, &sk, basic, member).await;
        app.clock.advance(1);
    }
    for _ in 0..3 {
        assert!(!link_member(&app, &sk, faulty, "token.error").await);
        app.clock.advance(1);
    }
    let sid = crate::link::open(&app, &crate::link::entry_url(&keys.test_pk, "")).await;
    crate::link::to_search(&app, &sid).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    let item = |name: &str| {
        let start = html.find(&format!("aria-label=\"Connect to {name}")).unwrap_or_else(|| panic!("{name}: {html}"));
        html[start..].split("</li>").next().unwrap().to_string()
    };
    assert!(item("Sandbox Health Plan").contains("Usually takes about a minute"), "{}", item("Sandbox Health Plan"));
    assert!(item("Sandbox Basic Care").contains("Some people could not connect lately"));
    assert!(item("Sandbox Faulty Mutual").contains("This plan is having problems right now"));
    assert!(item("Sandbox Faulty Mutual").contains("link-plan-health bad"));

    // In Spanish, from the session's language.
    let sid = crate::link::open(&app, &crate::link::entry_url(&keys.test_pk, "&language=es")).await;
    crate::link::to_search(&app, &sid).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("Este plan tiene problemas en este momento"), "{html}");
}

#[tokio::test]
async fn health_comes_from_real_attempts_and_each_status_change_is_announced_once() {
    let app = api_support::server().await;
    let keys = api_support::create_app(&app, "Health").await;
    let (hooked, _) = apps::create(
        &app.state.db,
        app.clock_now(),
        NewApp { name: "Hooked".into(), webhook_url: Some("https://hooks.example/link".into()), ..Default::default() },
    )
    .await
    .unwrap();
    let id = sandbox::REFRESHABLE_ENDPOINT_ID;
    let status = || async { health::assess(&app.state, id).await.unwrap() };
    assert_eq!(status().await.status, HealthStatus::Unchecked);

    // Three links that connect: `ok`, announced once.
    for _ in 0..3 {
        assert!(link_member(&app, &keys.sk, id, sandbox::MEMBER_TYPICAL).await);
        app.clock.advance(30);
    }
    let h = status().await;
    assert_eq!((h.status, h.attempts, h.successes, h.success_rate), (HealthStatus::Ok, 3, 3, Some(1.0)));
    assert_eq!(h.median_connect_secs, Some(0));
    assert_eq!(status_changes(&app, &hooked.id).await.len(), 1);

    // A patient who declines is not the plan's fault: nothing changes.
    assert!(!link_member(&app, &keys.sk, id, "deny.consent").await);
    app.clock.advance(30);
    assert_eq!(status().await.attempts, 3);

    // Failures of the plan's token endpoint: degraded, then down once the last three failed.
    for _ in 0..3 {
        assert!(!link_member(&app, &keys.sk, id, "token.error").await);
        app.clock.advance(30);
    }
    let h = status().await;
    assert_eq!((h.status, h.attempts, h.successes), (HealthStatus::Down, 6, 3));
    assert_eq!(h.last_error_codes.len(), 3);
    assert!(h.last_error_codes.iter().all(|c| c.as_str() == "PAYER_TOKEN_EXCHANGE_FAILED"));

    let changes = status_changes(&app, &hooked.id).await;
    let moves: Vec<(String, String)> = changes
        .iter()
        .map(|d| (d["previous_status"].as_str().unwrap().to_string(), d["status"].as_str().unwrap().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = moves.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(pairs, [("unchecked", "ok"), ("ok", "degraded"), ("degraded", "down")], "once per change");
    assert_eq!(changes[2]["endpoint_id"], id);
    assert!(status_changes(&app, &keys.app_id).await.is_empty(), "an app without a webhook URL gets nothing");

    // Recomputing without a new attempt announces nothing again.
    health::reassess(&app.state, id).await.unwrap();
    assert_eq!(status_changes(&app, &hooked.id).await.len(), 3);
}

#[tokio::test]
async fn integrators_read_the_directory_with_health_by_name_with_either_key() {
    let app = api_support::server().await;
    let keys = api_support::create_app(&app, "Directory API").await;
    for _ in 0..3 {
        assert!(!link_member(&app, &keys.sk, sandbox::FAULTY_ENDPOINT_ID, "token.error").await);
        app.clock.advance(1);
    }
    let url = format!("{}/link/endpoints", app.base_url);
    let get = |auth: Option<String>, query: &'static [(&'static str, &'static str)]| {
        let mut r = app.client.get(&url).query(query);
        if let Some(a) = auth {
            r = r.bearer_auth(a);
        }
        async move { r.send().await.unwrap() }
    };

    // A secret key: every sandbox plan, with its health.
    let r = get(Some(keys.sk.clone()), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    let list = body["endpoints"].as_array().unwrap();
    let faulty = list.iter().find(|e| e["id"] == sandbox::FAULTY_ENDPOINT_ID).expect("faulty listed");
    assert_eq!(faulty["health"]["status"], "down");
    assert_eq!(faulty["health"]["attempts"], 3);
    assert_eq!(faulty["health"]["success_rate"], 0.0);
    assert_eq!(faulty["health"]["last_error_codes"], json!(vec!["PAYER_TOKEN_EXCHANGE_FAILED"; 3]));
    let healthy = list.iter().find(|e| e["id"] == sandbox::REFRESHABLE_ENDPOINT_ID).unwrap();
    assert_eq!(healthy["health"]["status"], "unchecked");
    assert_eq!(healthy["refreshable"], true);

    // A publishable key, in the header or the query; search by name or alias.
    let found: Value = get(Some(keys.pk.clone()), &[("name", "faulty")]).await.json().await.unwrap();
    assert_eq!(found["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(found["endpoints"][0]["name"], "Sandbox Faulty Mutual");
    let q = [("publishableKey", keys.pk.as_str()), ("name", "SBC")];
    let found: Value = app.client.get(&url).query(&q).send().await.unwrap().json().await.unwrap();
    assert_eq!(found["endpoints"][0]["id"], sandbox::NON_REFRESHABLE_ENDPOINT_ID);
    let limited: Value = get(Some(keys.pk.clone()), &[("limit", "1")]).await.json().await.unwrap();
    assert_eq!(limited["endpoints"].as_array().unwrap().len(), 1);

    // A live key sees live plans only.
    let live: Value = get(Some(keys.live_pk.clone()), &[]).await.json().await.unwrap();
    assert_eq!(live["endpoints"], json!([]));

    // Errors in RFC 6749 form.
    let r = get(None, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(get(Some("pk_test_nope".into()), &[]).await.status(), 401);
    assert_eq!(get(Some("at_something".into()), &[]).await.status(), 401);
    let r = get(Some(keys.sk.clone()), &[("limit", "0")]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn cant_find_your_plan_stores_the_name_for_the_operator_and_ends_the_session_cancelled() {
    let app = crate::common::spawn_app().await;
    let keys = crate::link::new_app(&app, false).await;
    let sid = crate::link::open(&app, &crate::link::entry_url(&keys.test_pk, "")).await;
    crate::link::to_search(&app, &sid).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("Can&#x27;t find your plan?") || html.contains("Can't find your plan?"), "{html}");
    assert!(html.contains(&format!("action=\"/link/s/{sid}/missing-plan\"")));
    let post = |client: reqwest::Client, name: &'static str| {
        let url = format!("{}/link/s/{sid}/missing-plan", app.base_url);
        async move { client.post(url).form(&[("plan_name", name)]).send().await.unwrap() }
    };

    // Another browser changes nothing; an empty name only shows the search again.
    let other = post(crate::common::browser(), "Elsewhere Health").await;
    assert!(other.status().is_client_error(), "{}", other.status());
    let r = post(app.client.clone(), "   ").await;
    assert_eq!(r.status(), 303);
    let s = link_sdk::server::store::link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.step.as_str(), "search");
    assert!(link_sdk::server::store::plan_requests::latest(&app.state.db, 10).await.unwrap().is_empty());

    // The patient's browser: stored, and the session ends cancelled.
    let r = post(app.client.clone(), "  Lakeside Community Health Plan ").await;
    assert_eq!(r.status(), 303);
    let s = link_sdk::server::store::link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!((s.step.as_str(), s.exit_code.map(|c| c.as_str())), ("exited", Some("PATIENT_CANCELLED")));
    let requests = link_sdk::server::store::plan_requests::latest(&app.state.db, 10).await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].name.as_str(), requests[0].mode, requests[0].app_id.as_str()), ("Lakeside Community Health Plan", Mode::Test, keys.app_id.as_str()));
    let steps = last_events(&app, &s, 2).await;
    assert_eq!(steps, [("PLAN_NOT_FOUND", None, None), ("EXIT", None, Some("PATIENT_CANCELLED".to_string()))], "the name is not in the events");
    let listed = cli_ok(&app, &["endpoints", "requests"]).await;
    assert!(listed.contains("\"Lakeside Community Health Plan\""), "{listed}");

    // Once ended, a second post stores nothing more.
    post(app.client.clone(), "Again Health").await;
    assert_eq!(link_sdk::server::store::plan_requests::latest(&app.state.db, 10).await.unwrap().len(), 1);
}

/// A test-mode brand with a patient portal over the Sandbox Health Plan endpoint (our JSON format).
const PORTAL_BRAND: &str = "5a1d0c4e-7b2f-4e9a-9d3c-8f6a2b1c0e01";

async fn import_portal_brand(app: &TestApp) {
    let file = app.dir.path().join("portal-brand.json");
    let body = json!({"endpoints": [], "brands": [{
        "id": PORTAL_BRAND, "mode": "test", "name": "Northwind Health", "aliases": ["NWH"],
        "portal_name": "MyNorthwind", "portal_url": "https://my.northwind.example/register",
        "plan_types": ["Medicare Advantage", "Medicaid"], "endpoint_ids": [sandbox::REFRESHABLE_ENDPOINT_ID]}]});
    std::fs::write(&file, body.to_string()).unwrap();
    cli_ok(app, &["endpoints", "import", file.to_str().unwrap()]).await;
}

#[tokio::test]
async fn a_plan_with_a_portal_shows_its_pre_check_before_the_hand_off_and_remind_me_later_ends_the_session() {
    let app = crate::common::spawn_app().await;
    let keys = crate::link::new_app(&app, false).await;
    import_portal_brand(&app).await;
    let sid = crate::link::open(&app, &crate::link::entry_url(&keys.test_pk, "")).await;
    crate::link::to_search(&app, &sid).await;

    // The picker leads to the pre-check for the brand; plans without one still hand off directly.
    let html = app.get(&format!("/link/s/{sid}?q=northwind")).await.text().await.unwrap();
    let precheck = format!("/link/s/{sid}?precheck={}&amp;brand={PORTAL_BRAND}", sandbox::REFRESHABLE_ENDPOINT_ID);
    assert!(html.contains(&precheck), "{html}");
    let html = app.get(&format!("/link/s/{sid}?q=basic")).await.text().await.unwrap();
    assert!(html.contains(&format!("/link/s/{sid}/handoff?endpoint={}", sandbox::NON_REFRESHABLE_ENDPOINT_ID)));

    // The pre-check: the account, where to create one, the plan types, then the hand-off.
    let url = format!("/link/s/{sid}?precheck={}&brand={PORTAL_BRAND}", sandbox::REFRESHABLE_ENDPOINT_ID);
    let html = app.get(&url).await.text().await.unwrap();
    assert!(html.contains("Before you continue"), "{html}");
    assert!(html.contains("online account at MyNorthwind to connect Northwind Health"), "{html}");
    assert!(html.contains("href=\"https://my.northwind.example/register\""));
    assert!(html.contains("It serves: Medicare Advantage, Medicaid."));
    assert!(html.contains(&format!("/link/s/{sid}/handoff?endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID)));
    assert!(html.contains(&format!("action=\"/link/s/{sid}/remind-later\"")));
    assert_eq!(link_sdk::server::store::link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap().step.as_str(), "search", "looking changes nothing");

    // The sign-in service, once the operator names it; a plan without anything to say has no pre-check.
    cli_ok(&app, &["endpoints", "set", sandbox::REFRESHABLE_ENDPOINT_ID, "--identity-provider", "Login.gov"]).await;
    assert!(app.get(&url).await.text().await.unwrap().contains("Northwind Health signs you in with Login.gov."));
    let other = format!("/link/s/{sid}?precheck={}&brand={PORTAL_BRAND}", sandbox::NON_REFRESHABLE_ENDPOINT_ID);
    assert!(app.get(&other).await.text().await.unwrap().contains("Find your health plan"), "the brand is not that plan's");

    // Remind me later: another browser changes nothing; the patient's ends the session cancelled.
    let remind = format!("{}/link/s/{sid}/remind-later", app.base_url);
    assert!(crate::common::browser().post(&remind).send().await.unwrap().status().is_client_error());
    let r = app.client.post(&remind).form(&[("endpoint", sandbox::REFRESHABLE_ENDPOINT_ID)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let s = link_sdk::server::store::link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!((s.step.as_str(), s.exit_code.map(|c| c.as_str())), ("exited", Some("PATIENT_CANCELLED")));
    // The session's steps say why, with the plan the pre-check was about.
    let steps = last_events(&app, &s, 2).await;
    assert_eq!(steps, [("REMIND_LATER", Some(sandbox::REFRESHABLE_ENDPOINT_ID.to_string()), None), ("EXIT", None, Some("PATIENT_CANCELLED".to_string()))]);
}

/// The last `n` events of session `s` as (name, endpoint_id, exit_code).
async fn last_events(app: &crate::common::TestApp, s: &link_sdk::server::store::link_sessions::LinkSession, n: usize) -> Vec<(&'static str, Option<String>, Option<String>)> {
    let public_id = s.public_id.as_deref().expect("a public id");
    let all = link_sdk::server::store::link_events::of_session(&app.state.db.pool, public_id).await.unwrap();
    all[all.len().saturating_sub(n)..]
        .iter()
        .map(|e| (e.name.as_str(), e.endpoint_id.clone(), e.exit_code.map(|c| c.as_str().to_string())))
        .collect()
}
