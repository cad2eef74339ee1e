//! Hosted (re-connect) links over real HTTP: `POST /link/hosted`, the patient's browser opening the URL and going
//! through the whole flow top-level with the sandbox payer, the `public_token` at the registered `redirect_uri`
//! and in the signed `link.completed` webhook (exchanged once), the "done" screen of an app without a
//! `redirect_uri`, single use (resume in the same browser, refused in another), expiry, the plain pages in the
//! patient's language, and the API's RFC 6749 §5.2 errors.

use std::sync::{Arc, Mutex};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use link_sdk::server::{
    services::{
        hosted_links::{DEFAULT_TTL_SECS, MAX_TTL_SECS},
        webhooks::{self, Envelope, DEFAULT_TOLERANCE_SECS, SIGNATURE_HEADER},
    },
    store::apps::{self, NewApp},
    surfaces::sandbox,
};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::{
    common::{browser, spawn_app, TestApp},
    link::{location, param, post_form, sandbox_sign_in, step_of, Now as _, REDIRECT},
};

/// Bodies of webhook requests whose signature checked out.
type Received = Arc<Mutex<Vec<Envelope>>>;

/// A webhook receiver on loopback that keeps the envelopes it could verify with `secret`.
async fn receiver(secret: String, app: &TestApp) -> (String, Received) {
    #[derive(Clone)]
    struct R(String, Received, link_sdk::server::platform::clock::ManualClock);
    async fn hook(State(r): State<R>, headers: HeaderMap, body: Bytes) -> axum::http::StatusCode {
        use link_sdk::server::platform::clock::Clock as _;
        let sig = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !webhooks::verify_signature(&r.0, sig, &body, r.2.now(), DEFAULT_TOLERANCE_SECS) {
            return axum::http::StatusCode::UNAUTHORIZED;
        }
        r.1.lock().unwrap().push(serde_json::from_slice(&body).expect("an envelope"));
        axum::http::StatusCode::OK
    }
    let got: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = Router::new().route("/hooks", post(hook)).with_state(R(secret, got.clone(), app.clock.clone()));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, got)
}

struct HostedApp {
    sk: String,
    received: Received,
}

/// An app with a webhook receiver and `redirect_uris`.
async fn new_app(app: &TestApp, redirect_uris: Vec<String>) -> HostedApp {
    let (created, keys) = apps::create(
        &app.state.db,
        app.clock_now(),
        NewApp { name: "Acme Health".into(), redirect_uris, ..Default::default() },
    )
    .await
    .unwrap();
    let secret = webhooks::ensure_signing_secret(&app.state, &created.id).await.unwrap();
    let (url, received) = receiver(secret.expose_secret().to_string(), app).await;
    apps::update(&app.state.db, app.clock_now(), &created.id, apps::AppUpdate { webhook_url: Some(url), ..Default::default() })
        .await
        .unwrap();
    HostedApp { sk: keys.test_secret.expose_secret().to_string(), received }
}

/// `POST /link/hosted` with `body` (JSON) and the secret key as a Bearer credential.
async fn create(app: &TestApp, sk: &str, body: Value) -> reqwest::Response {
    app.client.post(format!("{}/link/hosted", app.base_url)).bearer_auth(sk).json(&body).send().await.unwrap()
}

/// A created link's URL, as a path on the server.
async fn create_ok(app: &TestApp, sk: &str, body: Value) -> (String, Value) {
    let r = create(app, sk, body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    let url = v["url"].as_str().unwrap();
    let path = url.strip_prefix(&app.base_url).expect("a URL on this server").to_string();
    (path, v)
}

async fn get(client: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    client.get(format!("{}{path}", app.base_url)).send().await.unwrap()
}

/// Opens the link in `client` (a browser): the first screen's session id.
async fn open(client: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let r = get(client, app, path).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    location(&r).strip_prefix("/link/s/").expect("the first screen").to_string()
}

/// Consent, explainer (unless skipped), the fixed plan's hand-off, the sandbox sign-in and the callback, in `app.client`.
async fn run_flow(app: &TestApp, sid: &str) {
    assert_eq!(step_of(app, sid).await.0, "consent");
    post_form(app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    // A repair skips the explainer.
    if step_of(app, sid).await.0 == "explainer" {
        post_form(app, &format!("/link/s/{sid}/explainer"), &[]).await;
    }
    assert_eq!(step_of(app, sid).await.0, "connect");
    // The payer sign-in is a top-level redirect (a plain link), never a popup.
    let r = app.get(&format!("/link/s/{sid}/handoff")).await;
    assert_eq!(r.status(), 303);
    let authorize = url::Url::parse(&location(&r)).unwrap();
    let callback = sandbox_sign_in(app, &authorize, sandbox::MEMBER_TYPICAL).await;
    let r = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&r), format!("/link/s/{sid}"), "the hosted flow stays top-level");
}

/// Delivers due webhooks until `n` envelopes arrived.
async fn delivered(app: &TestApp, got: &Received, n: usize) -> Vec<Envelope> {
    for _ in 0..200 {
        webhooks::deliver_due_once(&app.state).await.unwrap();
        if got.lock().unwrap().len() >= n {
            return got.lock().unwrap().clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the receiver got {} webhooks, expected {n}", got.lock().unwrap().len());
}

async fn exchange(app: &TestApp, sk: &str, public_token: &str) -> reqwest::Response {
    let body = json!({"public_token": public_token, "secret_key": sk});
    app.client.post(format!("{}/link/exchange", app.base_url)).json(&body).send().await.unwrap()
}

/// Waits for the sync to end and the screen to reach success.
async fn until_success(app: &TestApp, sid: &str) {
    for _ in 0..300 {
        let v: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
        if v["step"] == "success" {
            return;
        }
        assert_ne!(v["step"], "error", "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sync did not end");
}

fn csp(r: &reqwest::Response) -> String {
    r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test]
async fn a_hosted_link_runs_the_flow_and_ends_at_the_redirect_uri_and_in_the_webhook() {
    let app = spawn_app().await;
    let h = new_app(&app, vec![REDIRECT.into(), "https://app.example/other".into()]).await;
    let (path, v) = create_ok(
        &app,
        &h.sk,
        json!({"externalId": "patient-7", "usage": "ONE_TIME", "endpoint": sandbox::NON_REFRESHABLE_ENDPOINT_ID}),
    )
    .await;
    let id = v["hosted_link_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("hl_"));
    assert_eq!(v["expires_in"], DEFAULT_TTL_SECS);
    assert_eq!(v["expires_at"], app.clock_now() + DEFAULT_TTL_SECS);
    // The URL's token: 256 bits, stored only as its hash.
    let token = path.strip_prefix("/link/h/").unwrap().to_string();
    assert!(token.starts_with("hlt_") && token.len() == 47, "{token}");
    let row = sqlx::query("SELECT token_hash FROM hosted_links WHERE id = $1").bind(&id).fetch_one(&app.state.db.pool).await.unwrap();
    let stored: String = row.get("token_hash");
    assert_eq!(stored, link_sdk::server::platform::crypto::hash_token(&token));

    let sid = open(&app.client, &app, &path).await;
    // A reload in the same browser before the end resumes the same session.
    assert_eq!(open(&app.client, &app, &path).await, sid);
    run_flow(&app, &sid).await;
    until_success(&app, &sid).await;
    // The same browser reopening the link while the session waits at success still resumes it.
    assert_eq!(open(&app.client, &app, &path).await, sid);
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    let to = url::Url::parse(&location(&r)).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "the app's first registered redirect_uri: {to}");
    let at_redirect = param(&to, "public_token").expect("public_token at redirect_uri");
    assert_eq!(step_of(&app, &sid).await.0, "done");

    let events = delivered(&app, &h.received, 1).await;
    let completed: Vec<_> = events.iter().filter(|e| e.event == "link.completed").collect();
    assert_eq!(completed.len(), 1, "{events:?}");
    let data = &completed[0].data;
    assert_eq!(data["hosted_link_id"], id.as_str());
    assert_eq!(data["externalId"], "patient-7");
    assert_eq!(data["public_token"], at_redirect.as_str(), "the same public_token in both places");
    assert!(data["authorization_id"].is_string());
    // The stored delivery is sealed: the token is not readable in the outbox.
    let rows = sqlx::query("SELECT payload, payload_key_id FROM webhook_deliveries WHERE event = 'link.completed'")
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let payload: String = rows[0].get("payload");
    assert!(!payload.contains(&at_redirect) && rows[0].get::<Option<String>, _>("payload_key_id").is_some());

    // Exchanged once: the second try (from the redirect, after the webhook's) is refused.
    let r = exchange(&app, &h.sk, &at_redirect).await;
    assert_eq!(r.status(), 200);
    let r = exchange(&app, &h.sk, &at_redirect).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // After the end, even the browser that used it gets the "already used" page.
    let r = get(&app.client, &app, &path).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("This link was already used"));
    let completed_at = sqlx::query("SELECT completed_at FROM hosted_links WHERE id = $1").bind(&id).fetch_one(&app.state.db.pool).await.unwrap();
    assert!(completed_at.get::<Option<i64>, _>("completed_at").is_some());
}

#[tokio::test]
async fn without_a_redirect_uri_the_flow_ends_on_a_done_screen_and_the_webhook_carries_the_token() {
    let app = spawn_app().await;
    let h = new_app(&app, vec![]).await;
    let (path, v) = create_ok(
        &app,
        &h.sk,
        json!({"externalId": "patient-8", "usage": "ONE_TIME", "endpoint": sandbox::NON_REFRESHABLE_ENDPOINT_ID, "expires_in": 3600}),
    )
    .await;
    assert_eq!(v["expires_in"], 3600);
    let sid = open(&app.client, &app, &path).await;
    run_flow(&app, &sid).await;
    until_success(&app, &sid).await;
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"), "no redirect_uri: the session's own screen");
    assert_eq!(step_of(&app, &sid).await.0, "done");
    let s = link_sdk::server::store::link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert!(s.public_token_enc.is_none(), "the sealed copy is destroyed once the flow is done");
    let r = app.get(&format!("/link/s/{sid}")).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("You can close this window and go back to Acme Health."), "{html}");
    // A second finish changes nothing.
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));

    let events = delivered(&app, &h.received, 1).await;
    let e = events.iter().find(|e| e.event == "link.completed").expect("link.completed");
    assert_eq!(e.data["externalId"], "patient-8");
    assert_eq!(e.data["hosted_link_id"], v["hosted_link_id"]);
    let token = e.data["public_token"].as_str().unwrap();
    assert_eq!(exchange(&app, &h.sk, token).await.status(), 200);
    assert_eq!(exchange(&app, &h.sk, token).await.status(), 400);
}

#[tokio::test]
async fn single_use_another_browser_and_expiry_get_plain_pages_in_the_patients_language() {
    let app = spawn_app().await;
    let h = new_app(&app, vec![REDIRECT.into()]).await;
    let (path, _) = create_ok(&app, &h.sk, json!({"externalId": "u", "usage": "MULTIPLE"})).await;
    let sid = open(&app.client, &app, &path).await;
    // The patient picks Spanish on the consent screen.
    post_form(&app, &format!("/link/s/{sid}/language"), &[("language", "es")]).await;

    // Another browser: refused, nothing of the session touched, in that browser's language.
    let other = browser();
    let r = other.get(format!("{}{path}", app.base_url)).header("accept-language", "ko-KR,ko;q=0.9").send().await.unwrap();
    assert_eq!(r.status(), 410);
    let policy = csp(&r);
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<html lang=\"ko\"") && html.contains("이미 사용된 링크입니다"), "{html}");
    assert!(!html.contains(&sid));
    assert_eq!(step_of(&app, &sid).await.0, "consent");
    let r = get(&other, &app, &path).await;
    assert!(r.text().await.unwrap().contains("This link was already used"));
    let r = other.get(format!("{}{path}?language=es", app.base_url)).header("accept-language", "ko").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Este enlace ya se usó"), "?language= goes first");
    // The first browser still resumes.
    assert_eq!(open(&app.client, &app, &path).await, sid);
    // Once the patient leaves (the session ended), the link is used there too, in the language they chose.
    post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    let r = get(&app.client, &app, &path).await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("Este enlace ya se usó"));

    // Expired before its first open: a plain page in the browser's language, no session started.
    let (path, _) = create_ok(&app, &h.sk, json!({"externalId": "u2", "usage": "ONE_TIME", "expires_in": 60})).await;
    app.clock.advance(61);
    let fresh = browser();
    let r = fresh.get(format!("{}{path}", app.base_url)).header("accept-language", "es-MX,es;q=0.9").send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(csp(&r).contains("frame-ancestors 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("Este enlace ha vencido"), "{html}");
    let claimed = sqlx::query("SELECT link_session_id FROM hosted_links WHERE external_id = 'u2'").fetch_one(&app.state.db.pool).await.unwrap();
    assert!(claimed.get::<Option<String>, _>("link_session_id").is_none());
    // Kept 30 days after its window, then swept: "not valid".
    app.clock.advance(link_sdk::server::services::hosted_links::PURGE_AFTER_SECS - 120);
    link_sdk::server::services::lifecycle::sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(get(&fresh, &app, &path).await.status(), 410);
    app.clock.advance(120);
    link_sdk::server::services::lifecycle::sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(get(&fresh, &app, &path).await.status(), 404);

    // An unknown or malformed token: 404, a plain page.
    for bad in ["/link/h/hlt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/link/h/short", "/link/h/%00%3Cscript%3E"] {
        let r = get(&fresh, &app, bad).await;
        assert_eq!(r.status(), 404, "{bad}");
        assert!(r.text().await.unwrap().contains("This link is not valid"));
    }
    let r = fresh.get(format!("{}/link/h/short", app.base_url)).header("accept-language", "ko-KR").send().await.unwrap();
    assert!(r.text().await.unwrap().contains("유효하지 않은 링크입니다"));
}

#[tokio::test]
async fn bad_input_gets_rfc_6749_errors() {
    let app = spawn_app().await;
    let h = new_app(&app, vec![REDIRECT.into()]).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"usage": "ONE_TIME"}), "invalid_request"),
        (json!({"externalId": "", "usage": "ONE_TIME"}), "invalid_request"),
        (json!({"externalId": "a\u{0007}b", "usage": "ONE_TIME"}), "invalid_request"),
        (json!({"externalId": "u"}), "invalid_request"),
        (json!({"externalId": "u", "usage": "NEVER"}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "endpoint": "not-a-uuid"}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "endpoint": "00000000-0000-4000-8000-000000000000"}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "expires_in": 0}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "expires_in": MAX_TTL_SECS + 1}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "expires_in": "soon"}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "expires_in": [1]}), "invalid_request"),
        (json!({"externalId": "u", "usage": "ONE_TIME", "repairToken": "rt_x"}), "invalid_grant"),
    ];
    for (body, error) in cases {
        let r = create(&app, &h.sk, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], error, "{body}: {v}");
        assert!(v["error_description"].is_string());
    }
    // An app with neither a redirect_uri nor a webhook URL: the public_token would reach no one.
    let (_, lonely) = apps::create(&app.state.db, app.clock_now(), NewApp { name: "Lonely".into(), ..Default::default() }).await.unwrap();
    let r = create(&app, lonely.test_secret.expose_secret(), json!({"externalId": "u", "usage": "ONE_TIME"})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    // The longest lifetime is accepted.
    let r = create(&app, &h.sk, json!({"externalId": "u", "usage": "ONE_TIME", "expires_in": MAX_TTL_SECS})).await;
    assert_eq!(r.status(), 200);
    // No key, a wrong key, a publishable key: 401 invalid_client.
    let r = app.client.post(format!("{}/link/hosted", app.base_url)).json(&json!({"externalId": "u", "usage": "ONE_TIME"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = create(&app, "sk_test_nope", json!({"externalId": "u", "usage": "ONE_TIME"})).await;
    assert_eq!(r.status(), 401);
    // The secret key in the body and a form body work too.
    let r = app
        .client
        .post(format!("{}/link/hosted", app.base_url))
        .form(&[("externalId", "u"), ("usage", "MULTIPLE"), ("secret_key", h.sk.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Not JSON: invalid_request; a wrong method: the same JSON error form.
    let r = app
        .client
        .post(format!("{}/link/hosted", app.base_url))
        .bearer_auth(&h.sk)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = app.get("/link/hosted").await;
    assert_eq!(r.status(), 405);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

/// Runs the hosted link at `path` to its end in `app.client`: the `public_token` at the redirect_uri.
async fn run_to_redirect(app: &TestApp, path: &str) -> String {
    let sid = open(&app.client, app, path).await;
    run_flow(app, &sid).await;
    until_success(app, &sid).await;
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    param(&url::Url::parse(&location(&r)).unwrap(), "public_token").expect("public_token at redirect_uri")
}

#[tokio::test]
async fn a_hosted_link_made_from_a_repair_token_renews_the_same_authorization() {
    let app = spawn_app().await;
    let h = new_app(&app, vec![REDIRECT.into()]).await;
    let first = json!({"externalId": "patient-9", "usage": "MULTIPLE", "endpoint": sandbox::REFRESHABLE_ENDPOINT_ID});
    let (path, _) = create_ok(&app, &h.sk, first).await;
    let token = run_to_redirect(&app, &path).await;
    let ex: Value = exchange(&app, &h.sk, &token).await.json().await.unwrap();
    let access = ex["access_token"].as_str().expect("access_token").to_string();
    let completed = |events: &[Envelope]| -> Vec<Value> {
        events.iter().filter(|e| e.event == "link.completed").map(|e| e.data.clone()).collect()
    };
    let events = delivered(&app, &h.received, 1).await;
    let authz = completed(&events)[0]["authorization_id"].as_str().unwrap().to_string();

    // The backend asks for a repair token and turns it into a hosted link (no externalId, usage or endpoint needed).
    let r = app.client.post(format!("{}/link/repair", app.base_url)).bearer_auth(&h.sk).json(&json!({"authorization_id": authz})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rpt = r.json::<Value>().await.unwrap()["repair_token"].as_str().unwrap().to_string();
    let (path, v) = create_ok(&app, &h.sk, json!({"repairToken": rpt})).await;
    let repair_link = v["hosted_link_id"].as_str().unwrap().to_string();
    let row = sqlx::query("SELECT external_id, usage, endpoint_id, repairs_authorization_id FROM hosted_links WHERE id = $1")
        .bind(&repair_link)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("external_id"), "patient-9", "the authorization's user");
    assert_eq!(row.get::<String, _>("usage"), "MULTIPLE");
    assert_eq!(row.get::<Option<String>, _>("endpoint_id").as_deref(), Some(sandbox::REFRESHABLE_ENDPOINT_ID));
    assert_eq!(row.get::<Option<String>, _>("repairs_authorization_id").as_deref(), Some(authz.as_str()));
    // The repair token was spent making it.
    let r = create(&app, &h.sk, json!({"repairToken": rpt})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // The patient opens it: renewal consent, no explainer, the same plan; the flow ends at the redirect_uri.
    let renewed = run_to_redirect(&app, &path).await;
    let mut events = Vec::new();
    for n in 3..40 {
        events = delivered(&app, &h.received, n).await;
        if events.iter().any(|e| e.event == "authorization.repaired") && completed(&events).len() == 2 {
            break;
        }
    }
    let repaired: Vec<_> = events.iter().filter(|e| e.event == "authorization.repaired").collect();
    assert_eq!(repaired.len(), 1, "{events:?}");
    assert_eq!(repaired[0].data["authorization_id"], authz.as_str());
    let done = completed(&events);
    assert_eq!(done.len(), 2, "{events:?}");
    let second = done.iter().find(|d| d["hosted_link_id"] == repair_link.as_str()).expect("the repair link's webhook");
    assert_eq!(second["authorization_id"], authz.as_str(), "the same authorization goes on");
    assert_eq!(second["public_token"], renewed.as_str());
    // The integrator's access token from the first link still reads.
    let r = app.client.get(format!("{}/fhir/Patient/$PATIENT_ID", app.base_url)).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
