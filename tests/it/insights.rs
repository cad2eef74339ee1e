//! Insights: every step of a Link session recorded on the server (real flows at the sandbox payer), read by the
//! integrator with its secret key (`GET /link/sessions/{id}`, `GET /link/sessions`) and sent once as the
//! `link.events` webhook; the funnel's exact numbers on a scripted set of sessions, through `link-sdk funnel`.

use std::process::Command;

use link_sdk::{
    domain::{ExitCode, LinkEventName, LinkStep, Mode, Usage},
    server::{
        services::insights::{self, NewEvent},
        store::{
            apps,
            link_sessions::{self, NewSession},
        },
        surfaces::sandbox,
    },
};
use serde_json::Value;
use sqlx::Row as _;

use crate::{
    common::{spawn_app, TestApp},
    link::{entry_url, handoff, new_app, open, param, post_form, sandbox_sign_in, to_search, Keys, Now as _},
};

async fn get_with_key(app: &TestApp, path: &str, sk: &str) -> reqwest::Response {
    app.client.get(format!("{}{path}", app.base_url)).bearer_auth(sk).send().await.unwrap()
}

async fn public_id(app: &TestApp, sid: &str) -> String {
    link_sessions::get(&app.state.db, sid).await.unwrap().unwrap().public_id.expect("a public id")
}

fn names(session: &Value) -> Vec<String> {
    session["events"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

async fn with_webhook(app: &TestApp, keys: &Keys) {
    let update = apps::AppUpdate { webhook_url: Some("https://app.example/hooks".into()), ..Default::default() };
    apps::update(&app.state.db, app.clock_now(), &keys.app_id, update).await.unwrap();
}

/// The `link.events` deliveries queued for `app_id`: their bodies.
async fn link_events_webhooks(app: &TestApp, app_id: &str) -> Vec<Value> {
    sqlx::query("SELECT payload FROM webhook_deliveries WHERE app_id = $1 AND event = 'link.events'")
        .bind(app_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>("payload")).unwrap())
        .collect()
}

#[tokio::test]
async fn a_successful_flow_is_recorded_step_by_step_and_read_with_the_secret_key_only() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    with_webhook(&app, &keys).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    app.clock.advance(20);
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    assert_eq!(app.client.get(&callback).send().await.unwrap().status(), 200);
    // The sync runs in the server's workers; the modal's polling moves the session on.
    let mut step = String::new();
    for _ in 0..100 {
        let status: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
        step = status["step"].as_str().unwrap().to_string();
        if step != "syncing" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(step, "success");

    let pid = public_id(&app, &sid).await;
    assert!(pid.starts_with("lsn_"));
    let r = get_with_key(&app, &format!("/link/sessions/{pid}"), &keys.test_sk).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let text = r.text().await.unwrap();
    assert!(!text.contains(&sid), "the session's bearer id never leaves the hosted flow");
    assert!(!text.contains("public-token-"), "no token in events");
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["id"], pid.as_str());
    assert_eq!(s["externalId"], "user-1");
    assert_eq!(s["status"], "success");
    assert_eq!(
        names(&s),
        ["OPEN", "CONSENT_GIVEN", "HANDOFF", "PAYER_AUTHORIZED", "SYNC_STARTED", "SYNC_COMPLETED", "SUCCESS"]
    );
    let handoff_event = &s["events"][2];
    assert_eq!(handoff_event["step"], "search");
    assert_eq!(handoff_event["endpoint_id"], sandbox::REFRESHABLE_ENDPOINT_ID);
    assert!(handoff_event["at"].as_i64().unwrap() >= s["events"][0]["at"].as_i64().unwrap() + 20);

    // Only the app's own secret key sees it.
    let r = app.client.get(format!("{}/link/sessions/{pid}", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let other = new_app(&app, false).await;
    let r = get_with_key(&app, &format!("/link/sessions/{pid}"), &other.test_sk).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    assert_eq!(get_with_key(&app, "/link/sessions/lsn_nothing", &keys.test_sk).await.status(), 404);
    assert_eq!(get_with_key(&app, &format!("/link/sessions/{sid}"), &keys.test_sk).await.status(), 404);

    // The list: by user, paged, with its errors.
    let second = open(&app, &entry_url(&keys.test_pk, "")).await;
    let r = get_with_key(&app, "/link/sessions?externalId=user-1&limit=1", &keys.test_sk).await;
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(page["sessions"][0]["id"], public_id(&app, &second).await.as_str());
    assert_eq!(names(&page["sessions"][0]), ["OPEN"]);
    let cursor = page["next_cursor"].as_str().expect("a next page").to_string();
    let r = get_with_key(&app, &format!("/link/sessions?externalId=user-1&limit=1&cursor={cursor}"), &keys.test_sk).await;
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["sessions"][0]["id"], pid.as_str());
    assert!(page["next_cursor"].is_null());
    let r = get_with_key(&app, "/link/sessions?externalId=someone-else", &keys.test_sk).await;
    assert_eq!(r.json::<Value>().await.unwrap()["sessions"].as_array().unwrap().len(), 0);
    let r = get_with_key(&app, "/link/sessions", &other.test_sk).await;
    assert_eq!(r.json::<Value>().await.unwrap()["sessions"].as_array().unwrap().len(), 0, "another app sees none");
    for bad in ["limit=0", "limit=101", "since=yesterday", "cursor=nope", "limit=1&limit=2"] {
        let r = get_with_key(&app, &format!("/link/sessions?{bad}"), &keys.test_sk).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request", "{bad}");
    }

    // The ending went to the app once, as link.events, with the same events and nothing else.
    let hooks = link_events_webhooks(&app, &keys.app_id).await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["event"], "link.events");
    assert_eq!(hooks[0]["data"]["session"]["id"], pid.as_str());
    assert_eq!(hooks[0]["data"]["session"]["status"], "success");
    assert_eq!(names(&hooks[0]["data"]), names(&s));
    assert!(!hooks[0].to_string().contains(&sid));
}

#[tokio::test]
async fn steps_only_the_page_sees_are_recorded_from_its_beacons_bound_named_and_bounded() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let url = format!("{}/link/s/{sid}/event", app.base_url);
    let send = |client: reqwest::Client, fields: Vec<(&'static str, String)>| {
        let url = url.clone();
        async move { client.post(url).form(&fields).send().await.unwrap().status().as_u16() }
    };
    let endpoint = sandbox::REFRESHABLE_ENDPOINT_ID.to_string();
    // What the page reports: the search's length (the text is not even sent), the plan clicked, the window.
    assert_eq!(send(app.client.clone(), vec![("name", "SEARCH".into()), ("queryLength", "5".into()), ("q", "aetna".into())]).await, 204);
    assert_eq!(send(app.client.clone(), vec![("name", "ENDPOINT_SELECTED".into()), ("endpoint", endpoint.clone())]).await, 204);
    assert_eq!(send(app.client.clone(), vec![("name", "POPUP_BLOCKED".into())]).await, 204);
    // Nothing else: a name the server records itself, an unknown one, a plan that is not one, another browser.
    assert_eq!(send(app.client.clone(), vec![("name", "SUCCESS".into())]).await, 204);
    assert_eq!(send(app.client.clone(), vec![("name", "<script>".into())]).await, 204);
    assert_eq!(send(app.client.clone(), vec![("name", "ENDPOINT_SELECTED".into()), ("endpoint", uuid::Uuid::new_v4().to_string())]).await, 204);
    let other = send(crate::common::browser(), vec![("name", "POPUP_CLOSED".into())]).await;
    assert!((400..500).contains(&other), "{other}");

    let events = link_sdk::server::store::link_events::of_session(&app.state.db.pool, &public_id(&app, &sid).await).await.unwrap();
    let client: Vec<_> = events.iter().filter(|e| insights::CLIENT_EVENTS.contains(&e.name)).collect();
    assert_eq!(client.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["SEARCH", "ENDPOINT_SELECTED", "POPUP_BLOCKED"]);
    assert_eq!(client[0].detail, serde_json::json!({"queryLength": 5}));
    assert_eq!((client[1].endpoint_id.as_deref(), client[1].step), (Some(endpoint.as_str()), LinkStep::Search));
    assert!(!events.iter().any(|e| e.name == LinkEventName::Success));

    // A page that reports without end is heard up to the quota.
    for _ in 0..insights::CLIENT_EVENTS_PER_SESSION {
        send(app.client.clone(), vec![("name", "POPUP_CLOSED".into())]).await;
    }
    let n = link_sdk::server::store::link_events::count_named(&app.state.db, &public_id(&app, &sid).await, &insights::CLIENT_EVENTS).await.unwrap();
    assert_eq!(n, insights::CLIENT_EVENTS_PER_SESSION);
}

#[tokio::test]
async fn every_ending_is_recorded_with_its_exit_code_and_the_step_it_arose_at() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    with_webhook(&app, &keys).await;

    // The payer refuses: ERROR with the payer's words at the payer step, then the patient leaves the error screen.
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let state = param(&u, "state").unwrap();
    let desc = "The member said no <b>thanks</b>";
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("error", "access_denied")
        .append_pair("error_description", desc)
        .append_pair("state", &state)
        .finish();
    app.get(&format!("/link/callback?{q}")).await;
    post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    let pid = public_id(&app, &sid).await;
    let s: Value = get_with_key(&app, &format!("/link/sessions/{pid}"), &keys.test_sk).await.json().await.unwrap();
    assert_eq!(names(&s), ["OPEN", "CONSENT_GIVEN", "HANDOFF", "ERROR", "EXIT"]);
    let error = &s["events"][3];
    assert_eq!((error["step"].as_str(), error["exit_code"].as_str()), (Some("payer"), Some("PAYER_ACCESS_DENIED")));
    assert_eq!(error["metadata"]["payer_error"], "access_denied");
    assert_eq!(error["metadata"]["payer_error_description"], desc, "kept as text, escaped where shown");
    let exit = &s["events"][4];
    assert_eq!((exit["step"].as_str(), exit["exit_code"].as_str()), (Some("error"), Some("PAYER_ACCESS_DENIED")));
    assert_eq!(s["status"], "exited");

    // Declining consent: CONSENT_DECLINED, then EXIT with PATIENT_CANCELLED at the consent step.
    let declined = open(&app, &entry_url(&keys.test_pk, "")).await;
    post_form(&app, &format!("/link/s/{declined}/consent"), &[("choice", "declined")]).await;
    let pid2 = public_id(&app, &declined).await;
    let s2: Value = get_with_key(&app, &format!("/link/sessions/{pid2}"), &keys.test_sk).await.json().await.unwrap();
    assert_eq!(names(&s2), ["OPEN", "CONSENT_DECLINED", "EXIT"]);
    assert_eq!((s2["events"][2]["step"].as_str(), s2["events"][2]["exit_code"].as_str()), (Some("consent"), Some("PATIENT_CANCELLED")));

    // Closing at search.
    let closed = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &closed).await;
    post_form(&app, &format!("/link/s/{closed}/exit"), &[]).await;
    let pid3 = public_id(&app, &closed).await;
    let s3: Value = get_with_key(&app, &format!("/link/sessions/{pid3}"), &keys.test_sk).await.json().await.unwrap();
    let last = s3["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["name"].as_str(), last["step"].as_str(), last["exit_code"].as_str()), (Some("EXIT"), Some("search"), Some("PATIENT_CANCELLED")));

    // The outcomes behind the funnel: where each ending arose.
    let rows = sqlx::query("SELECT public_id, exit_code, exit_step FROM link_outcomes WHERE app_id = $1")
        .bind(&keys.app_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let of = |p: &str| {
        let r = rows.iter().find(|r| r.get::<String, _>("public_id") == p).unwrap();
        (r.get::<Option<String>, _>("exit_code"), r.get::<Option<String>, _>("exit_step"))
    };
    assert_eq!(of(&pid), (Some("PAYER_ACCESS_DENIED".into()), Some("payer".into())));
    assert_eq!(of(&pid2), (Some("PATIENT_CANCELLED".into()), Some("consent".into())));
    assert_eq!(of(&pid3), (Some("PATIENT_CANCELLED".into()), Some("search".into())));
    // One webhook per ended session.
    assert_eq!(link_events_webhooks(&app, &keys.app_id).await.len(), 3);

    // Events go with their session when it is purged.
    sqlx::query("DELETE FROM consents WHERE link_session_id = $1").bind(&declined).execute(&app.state.db.pool).await.unwrap();
    sqlx::query("DELETE FROM link_sessions WHERE id = $1").bind(&declined).execute(&app.state.db.pool).await.unwrap();
    let left: i64 = sqlx::query("SELECT COUNT(*) AS n FROM link_events WHERE session_public_id = $1")
        .bind(&pid2)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(left, 0);
}

/// Creates a session of `app_id` at the clock's time and records `OPEN`.
async fn scripted_session(app: &TestApp, app_id: &str) -> link_sessions::LinkSession {
    let now = app.clock_now();
    let sid = link_sessions::create(
        &app.state.db.pool,
        now,
        NewSession {
            app_id,
            mode: Mode::Test,
            external_id: "scripted",
            usage: Usage::OneTime,
            options: Default::default(),
            endpoint_id: None,
            host_origin: Some("https://app.example"),
            redirect_uri: None,
            client_state: None,
            nonce: "abcdef0123456789",
            code_challenge: None,
            binder_hash: None,
        },
    )
    .await
    .unwrap();
    insights::opened(&app.state.db, now, &sid).await;
    link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap()
}

/// Records each `(seconds after the previous, event)` for `s`.
async fn script(app: &TestApp, s: &link_sessions::LinkSession, steps: Vec<(i64, NewEvent)>) {
    for (wait, e) in steps {
        app.clock.advance(wait);
        insights::note(&app.state.db, app.clock_now(), s, e).await;
    }
}

#[tokio::test]
async fn the_funnel_gives_exact_numbers_for_a_scripted_set_of_sessions() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let (e1, e2) = (sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::NON_REFRESHABLE_ENDPOINT_ID);
    let ev = |n: LinkEventName, st: LinkStep| NewEvent::new(n, st);
    let success_after = |total: i64, endpoint: &'static str| {
        vec![
            (10, ev(LinkEventName::ConsentGiven, LinkStep::Consent)),
            (20, ev(LinkEventName::Handoff, LinkStep::Search).endpoint(endpoint)),
            (total - 40, ev(LinkEventName::PayerAuthorized, LinkStep::Payer)),
            (10, ev(LinkEventName::Success, LinkStep::Syncing)),
        ]
    };
    // Two successes on e1 (100 s and 240 s), one on e2 (400 s).
    for (total, endpoint) in [(100, e1), (240, e1), (400, e2)] {
        let s = scripted_session(&app, &keys.app_id).await;
        script(&app, &s, success_after(total, endpoint)).await;
    }
    // Refused by the payer at e1, then left from the error screen.
    let s = scripted_session(&app, &keys.app_id).await;
    script(
        &app,
        &s,
        vec![
            (5, ev(LinkEventName::ConsentGiven, LinkStep::Consent)),
            (5, ev(LinkEventName::Handoff, LinkStep::Search).endpoint(e1)),
            (30, ev(LinkEventName::Error, LinkStep::Payer).code(ExitCode::PayerAccessDenied)),
            (5, ev(LinkEventName::Exit, LinkStep::Error).code(ExitCode::PayerAccessDenied)),
        ],
    )
    .await;
    // Two declined consent; one is still open.
    for _ in 0..2 {
        let s = scripted_session(&app, &keys.app_id).await;
        script(
            &app,
            &s,
            vec![
                (3, ev(LinkEventName::ConsentDeclined, LinkStep::Consent)),
                (0, ev(LinkEventName::Exit, LinkStep::Consent).code(ExitCode::PatientCancelled)),
            ],
        )
        .await;
    }
    scripted_session(&app, &keys.app_id).await;

    let out = Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .args(["--database-url", &app.database_url, "--data-dir"])
        .arg(app.dir.path())
        .args(["funnel", "--since", "1d", "--app", &keys.app_id, "--json"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let f: Value = serde_json::from_slice(&out.stdout).unwrap();
    let overall = &f["overall"];
    assert_eq!(overall["sessions"], 7);
    let stages: Vec<(String, u64)> = overall["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap().to_string(), s["sessions"].as_u64().unwrap()))
        .collect();
    let expected = [("opened", 7), ("consented", 4), ("plan_chosen", 4), ("sent_to_sign_in", 4), ("authorized", 3), ("succeeded", 3)];
    assert_eq!(stages, expected.map(|(s, n)| (s.to_string(), n)));
    assert_eq!(overall["success_rate"], serde_json::json!({"count": 3, "of": 7}));
    assert_eq!(overall["sign_in_success"], serde_json::json!({"count": 3, "of": 4}));
    assert_eq!(overall["open"], 1);
    let endings: Vec<(String, Option<String>, u64)> = overall["endings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["exit_code"].as_str().unwrap().into(), e["step"].as_str().map(String::from), e["sessions"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        endings,
        [("PATIENT_CANCELLED".to_string(), Some("consent".to_string()), 2), ("PAYER_ACCESS_DENIED".into(), Some("payer".into()), 1)]
    );
    // Times 100, 240, 400 s: p50 = 240 (rank 2 of 3), p90 = 400 (rank 3); one within 3 minutes, two within 5.
    let t = &overall["time_to_success"];
    assert_eq!((t["sessions"].as_u64(), t["p50_secs"].as_i64(), t["p90_secs"].as_i64()), (Some(3), Some(240), Some(400)));
    assert_eq!(t["within_3_min"], serde_json::json!({"count": 1, "of": 3}));
    assert_eq!(t["within_5_min"], serde_json::json!({"count": 2, "of": 3}));
    // Per endpoint: e1 has two successes and the refusal, e2 one success.
    let per: Vec<(String, u64, u64)> = f["per_endpoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let b = &p["funnel"];
            (p["endpoint_id"].as_str().unwrap().to_string(), b["sessions"].as_u64().unwrap(), b["success_rate"]["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(per, [(e1.to_string(), 3, 2), (e2.to_string(), 1, 1)]);

    // The text form says the same in words.
    let out = Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .args(["--database-url", &app.database_url, "--data-dir"])
        .arg(app.dir.path())
        .args(["funnel", "--since", "1d", "--app", &keys.app_id])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("7 sessions"), "{text}");
    assert!(text.contains("42.9%"), "3 of 7 succeeded: {text}");
    assert!(text.contains("PAYER_ACCESS_DENIED"), "{text}");
    // A malformed --since is a readable error.
    let out = Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .args(["--database-url", &app.database_url, "funnel", "--since", "last week"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

fn hidden_value(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {page:.300}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test]
async fn the_console_sign_in_link_works_once_within_its_time_in_the_browser_that_opened_it() {
    use link_sdk::server::{services::console, store::endpoints};
    let app = spawn_app().await;
    let url = |path: &str| format!("{}{path}", app.base_url);
    let link = console::create_link(&app.state.db, app.clock_now(), &app.base_url).await.unwrap();
    assert!(link.url.starts_with(&url("/console/sign-in?token=cl_")));
    let (first, other) = (crate::common::browser(), crate::common::browser());

    // Signed out, the console is a sign-in hint, never data.
    let r = first.get(url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.text().await.unwrap().contains("Conversion"));

    // The first browser to open the link holds it; another is refused, even before anyone signed in.
    let r = first.get(&link.url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    let token = hidden_value(&r.text().await.unwrap(), "token");
    let r = other.get(&link.url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("opened in another browser"));
    let r = other.post(url("/console/sign-in")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403);

    // Signing in spends it.
    let r = first.post(url("/console/sign-in")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console");
    let r = first.post(url("/console/sign-in")).form(&[("token", token.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("already used"));
    let r = first.get(url("/console")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    for part in ["Conversion", "<svg", "Endpoints", "Recent failures", "Apps and webhooks"] {
        assert!(page.contains(part), "{part}");
    }
    assert!(other.get(url("/console")).send().await.unwrap().status() == 401, "the session is the first browser's");

    // Disabling an endpoint needs the session's form token; then patients no longer find it.
    let csrf = hidden_value(&page, "csrf");
    let target = format!("/console/endpoints/{}/disable", sandbox::REFRESHABLE_ENDPOINT_ID);
    let r = first.post(url(&target)).form(&[("csrf", "wrong")]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(!endpoints::is_disabled(&app.state.db, sandbox::REFRESHABLE_ENDPOINT_ID).await.unwrap());
    let r = first.post(url(&target)).header("sec-fetch-site", "cross-site").form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 401, "a post from another site is refused even with the token");
    let r = first.post(url(&target)).header("origin", "https://evil.example").form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Our own pages are no-referrer: Chromium sends `Origin: null` with `Sec-Fetch-Site: same-origin`.
    let r = first
        .post(url(&target))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(endpoints::is_disabled(&app.state.db, sandbox::REFRESHABLE_ENDPOINT_ID).await.unwrap());
    let found = endpoints::search(&app.state.db, Mode::Test, "", 200).await.unwrap();
    assert!(found.iter().all(|e| e.id != sandbox::REFRESHABLE_ENDPOINT_ID));

    // An unused link stops working after 10 minutes.
    let late = console::create_link(&app.state.db, app.clock_now(), &app.base_url).await.unwrap();
    app.clock.advance(console::CONSOLE_LINK_TTL_SECS + 1);
    let r = crate::common::browser().get(&late.url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(crate::common::browser().get(url("/console/sign-in?token=cl_guess")).send().await.unwrap().status(), 404);

    // Every step is in the audit trail.
    let actions: Vec<String> = sqlx::query("SELECT action FROM audit_events WHERE action LIKE 'console.%' ORDER BY at")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("action"))
        .collect();
    for a in ["console.link_opened", "console.sign_in_refused", "console.signed_in", "console.viewed", "console.endpoint_disabled"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test]
async fn a_session_that_times_out_is_reported_once_as_expired_and_outcomes_leave_after_their_retention() {
    use link_sdk::server::services::lifecycle::sweep as lifecycle;
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    with_webhook(&app, &keys).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let pid = public_id(&app, &sid).await;
    lifecycle::sweep_once(&app.state).await.unwrap();
    assert!(link_events_webhooks(&app, &keys.app_id).await.is_empty(), "still open: nothing to report");

    app.clock.advance(link_sessions::SESSION_TTL_SECS + 1);
    lifecycle::sweep_once(&app.state).await.unwrap();
    lifecycle::sweep_once(&app.state).await.unwrap();
    let hooks = link_events_webhooks(&app, &keys.app_id).await;
    assert_eq!(hooks.len(), 1, "reported once");
    assert_eq!(hooks[0]["data"]["session"]["id"], pid.as_str());
    assert_eq!(hooks[0]["data"]["session"]["status"], "expired");
    assert_eq!(names(&hooks[0]["data"]), ["OPEN", "CONSENT_GIVEN"]);
    let s: Value = get_with_key(&app, &format!("/link/sessions/{pid}"), &keys.test_sk).await.json().await.unwrap();
    assert_eq!(s["status"], "expired");

    let outcomes = || async {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM link_outcomes WHERE public_id = $1")
            .bind(&pid)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
            .get("n");
        n
    };
    app.clock.advance(i64::from(app.state.settings.insights_retention_days) * 86_400 - 7200);
    lifecycle::sweep_once(&app.state).await.unwrap();
    assert_eq!(outcomes().await, 1, "kept within the retention");
    app.clock.advance(7200);
    lifecycle::sweep_once(&app.state).await.unwrap();
    assert_eq!(outcomes().await, 0, "gone after it");
}
