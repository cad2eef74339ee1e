//! Trust: every Link flow bound to the browser that opened it, and the abuse paths closed: the two-client
//! attack, a bare holder of the session id, a callback that arrives after the patient cancelled or the session
//! expired, sessions with nowhere to deliver, the `iss` of the callback (RFC 9207), rate limits in each surface's
//! form, the purge of expired records, malformed session ids, security headers, production defaults.

use crate::common::{browser, spawn_app, spawn_app_with, test_settings, TestApp};
use link_sdk::server::{
    services::lifecycle::sweep,
    store::{
        apps::{self, NewApp},
        link_sessions,
    },
    surfaces::sandbox,
};
use sqlx::Row as _;

const ORIGIN: &str = "https://app.example";
const REDIRECT: &str = "https://app.example/linked";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").expect("a redirect").to_str().unwrap().to_string()
}

fn param(u: &str, name: &str) -> Option<String> {
    url::Url::parse(u).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}")).fetch_one(&app.state.db.pool).await.unwrap().get("n")
}

/// An app with an allowed origin and a registered redirect URI; returns its test publishable key and secret key.
async fn new_app(app: &TestApp) -> (String, String) {
    let (_, keys) = apps::create(
        &app.state.db,
        app.state.clock.now(),
        NewApp {
            name: "Acme Health".into(),
            allowed_origins: vec![ORIGIN.into()],
            redirect_uris: vec![REDIRECT.into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (keys.test_publishable, secrecy::ExposeSecret::expose_secret(&keys.test_secret).to_string())
}

/// `GET /link` from the app's allowed origin (any client can send that value).
fn modal_entry(pk: &str) -> String {
    format!("/link?publishableKey={pk}&externalId=attacker&usage=MULTIPLE&origin={}&nonce=abcdef0123456789", enc(ORIGIN))
}

/// A client that opens a session and gives consent, as the browser it is bound to: the session id.
async fn open_to_search(app: &TestApp, client: &reqwest::Client, entry: &str) -> String {
    let r = client.get(format!("{}{}", app.base_url, entry)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let sid = location(&r).trim_start_matches("/link/s/").split('#').next().unwrap().to_string();
    for (step, form) in [("consent", vec![("choice", "given")]), ("explainer", vec![])] {
        let r = client.post(format!("{}/link/s/{sid}/{step}", app.base_url)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "{step}");
    }
    sid
}

/// The hand-off of session `sid` in `client` (its link, as the hosted flow follows it): the authorize URL.
async fn handoff(app: &TestApp, client: &reqwest::Client, sid: &str) -> String {
    let r = client
        .get(format!("{}/link/s/{sid}/handoff?endpoint={}", app.base_url, sandbox::REFRESHABLE_ENDPOINT_ID))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "handoff: {}", r.status());
    location(&r)
}

/// [`open_to_search`] then [`handoff`]: the session id and the payer's authorize URL.
async fn open_to_handoff(app: &TestApp, client: &reqwest::Client, entry: &str) -> (String, String) {
    let sid = open_to_search(app, client, entry).await;
    let authorize = handoff(app, client, &sid).await;
    (sid, authorize)
}

/// The sandbox payer's sign-in and approval, in `client`: our callback URL with `code` and `state`.
async fn sign_in(client: &reqwest::Client, authorize: &str) -> String {
    sandbox::drive_consent(client, authorize, sandbox::MEMBER_TYPICAL, true).await.expect("sandbox sign-in")
}

/// The attack of the issue, played by two clients that share no cookies: the attacker opens a session for any
/// app's key (passing the app's allowed origin) and walks it to the payer; the victim signs in at the payer and
/// is sent to our callback. The callback is the first step that needs a binding the attacker cannot give away:
/// it refuses, nothing is created, and the attacker's `/status` never shows a token.
#[tokio::test]
async fn the_two_client_attack_fails_at_the_callback() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let attacker = browser();
    let (sid, authorize) = open_to_handoff(&app, &attacker, &modal_entry(&pk)).await;

    let victim = browser();
    let callback = sign_in(&victim, &authorize).await;
    assert!(callback.starts_with(&format!("{}/link/callback?", app.base_url)), "{callback}");
    let r = victim.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("This link was opened in another browser"), "{html}");
    assert!(html.contains("BROWSER_MISMATCH"));
    assert!(!html.contains("public-token-"));
    assert_eq!(count(&app, "authorizations").await, 0, "no authorization");
    assert_eq!(count(&app, "sync_jobs").await, 0, "no sync");
    assert_eq!(count(&app, "tokens").await, 0, "no token");

    // The attacker's session shows the refusal; its status never carries a token.
    let status: serde_json::Value =
        attacker.get(format!("{}/link/s/{sid}/status", app.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["step"], "error");
    assert_eq!(status["exitCode"], "BROWSER_MISMATCH");
    assert!(status["publicToken"].is_null());
    // The victim cannot use the same callback again, nor can the attacker (its state is spent).
    assert_eq!(victim.get(&callback).send().await.unwrap().status(), 400);
    let r = attacker.get(&callback).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));
    assert_eq!(count(&app, "authorizations").await, 0);
    let refused: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'link.binding_refused'")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(refused, 1);
}

/// The other way round: the attacker hands the victim the session's screen instead of the payer's URL. The
/// victim's first step (consent) needs the binding and gets the "opened in another browser" page; nothing of the
/// session moves, and no step of a bare holder of the session id reads or changes anything.
#[tokio::test]
async fn a_bare_holder_of_the_session_id_can_do_nothing() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let opener = browser();
    let r = opener.get(format!("{}{}", app.base_url, modal_entry(&pk))).send().await.unwrap();
    let to = location(&r);
    let (path, fragment) = to.split_once('#').expect("the modal's copy of the binder in the fragment");
    assert!(fragment.starts_with("bind=") && fragment.len() > 40, "{fragment}");
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("link_bind_"), "{cookie}");
    for attr in ["HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/;"] {
        assert!(cookie.contains(attr), "modal binder cookie: {attr} in {cookie}");
    }
    let sid = path.trim_start_matches("/link/s/").to_string();

    let other = browser();
    let url = |p: &str| format!("{}/link/s/{sid}{p}", app.base_url);
    // GET of the screen is allowed (it carries no token): it shows the consent screen.
    assert_eq!(other.get(url("")).send().await.unwrap().status(), 200);
    for (path, form) in [("/consent", vec![("choice", "given")]), ("/explainer", vec![]), ("/retry", vec![]), ("/exit", vec![]), ("/done", vec![])] {
        let r = other.post(url(path)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains("data-exit-code=\"BROWSER_MISMATCH\""), "{path}: {html}");
        assert!(html.contains("This link was opened in another browser"));
    }
    let r = other.post(url("/handoff")).form(&[("endpoint", sandbox::REFRESHABLE_ENDPOINT_ID), ("bind", "guess")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = other.get(url(&format!("/handoff?endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID))).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = other.get(url("/status")).header("x-link-bind", "not-the-binder").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"step": "unbound", "exitCode": "BROWSER_MISMATCH", "publicToken": null}));
    assert_eq!(other.get(url("/finish")).send().await.unwrap().status(), 403);
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.step.as_str(), "consent", "nothing moved");

    // The frame's copy works without any cookie: as the `bind` field and the `X-Link-Bind` header.
    let binder = fragment.trim_start_matches("bind=");
    let cookieless = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = cookieless.post(url("/consent")).form(&[("choice", "given"), ("bind", binder)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let r = cookieless.get(url("/status")).header("x-link-bind", binder).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["step"], "explainer");
}

/// The popup's hand-off is a form posted into it with the binder: it answers with a page that moves on to the
/// payer (a redirect would be blocked by the frame's CSP `form-action`) and gives the popup its own hand-off
/// cookie, which the callback needs; the popup's pages keep their opener (COOP `unsafe-none`).
#[tokio::test]
async fn the_popup_hand_off_is_posted_with_the_binder() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let frame = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = frame.get(format!("{}{}", app.base_url, modal_entry(&pk))).send().await.unwrap();
    let to = location(&r);
    let (path, fragment) = to.split_once('#').unwrap();
    let binder = fragment.trim_start_matches("bind=").to_string();
    let base = format!("{}{path}", app.base_url);
    frame.post(format!("{base}/consent")).form(&[("choice", "given"), ("bind", &binder)]).send().await.unwrap();
    frame.post(format!("{base}/explainer")).form(&[("bind", &binder)]).send().await.unwrap();

    let popup = browser();
    let r = popup
        .post(format!("{base}/handoff"))
        .form(&[("endpoint", sandbox::REFRESHABLE_ENDPOINT_ID), ("bind", &binder)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cross-origin-opener-policy"], "unsafe-none");
    let html = r.text().await.unwrap();
    let needle = "http-equiv=\"refresh\" content=\"0;url=";
    let start = html.find(needle).expect("moves on by itself") + needle.len();
    let authorize = html[start..start + html[start..].find('"').unwrap()].replace("&amp;", "&");
    assert!(authorize.starts_with(&format!("{}/sandbox/sandbox-health/authorize?", app.base_url)), "{authorize}");
    let callback = sign_in(&popup, &authorize).await;
    let r = popup.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cross-origin-opener-policy"], "unsafe-none");
    assert!(r.text().await.unwrap().contains("data-result=\"authorized\""));
    let status: serde_json::Value =
        frame.get(format!("{base}/status")).header("x-link-bind", &binder).send().await.unwrap().json().await.unwrap();
    assert!(status["publicToken"].as_str().is_some_and(|t| t.starts_with("public-token-")), "{status}");
}

/// Cancelling voids the session's payer request in the same transaction: the callback that comes afterwards (from
/// the right browser, with a valid code) creates no authorization, no sync job, no token and no webhook. The same
/// holds when the session expired before the payer answered.
#[tokio::test]
async fn a_callback_after_cancel_or_expiry_creates_nothing() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let patient = browser();
    let (sid, authorize) = open_to_handoff(&app, &patient, &modal_entry(&pk)).await;
    let callback = sign_in(&patient, &authorize).await;
    let r = patient.post(format!("{}/link/s/{sid}/exit", app.base_url)).form(&[("x", "")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let voided: i64 = sqlx::query("SELECT COUNT(*) AS n FROM payer_auth_requests WHERE link_session_id = $1 AND used_at IS NOT NULL")
        .bind(&sid)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(voided, 1, "the request is voided with the exit");
    let r = patient.get(&callback).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));
    for table in ["authorizations", "sync_jobs", "tokens", "webhook_deliveries"] {
        assert_eq!(count(&app, table).await, 0, "{table}");
    }
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!((s.step.as_str(), s.exit_code.map(|c| c.as_str())), ("exited", Some("PATIENT_CANCELLED")));

    // Expiry: the hand-off near the end of the session's life, the payer's answer just after it.
    let patient = browser();
    let sid = open_to_search(&app, &patient, &modal_entry(&pk)).await;
    app.clock.advance(link_sessions::SESSION_TTL_SECS - 120);
    let authorize = handoff(&app, &patient, &sid).await;
    let callback = sign_in(&patient, &authorize).await;
    app.clock.advance(180);
    let _ = patient.get(&callback).send().await.unwrap();
    assert_eq!(count(&app, "authorizations").await, 0, "an authorization for an expired session");
}

/// A session needs somewhere to deliver its result: neither an `origin` nor a `redirect_uri` is refused and
/// creates nothing.
#[tokio::test]
async fn a_session_with_nowhere_to_deliver_is_refused() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let r = app.get(&format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME")).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("registered redirect_uri"));
    assert_eq!(count(&app, "link_sessions").await, 0);
    // The hosted flow's binder is a first-party cookie, and no fragment is needed.
    let r = app.get(&format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME&redirect_uri={}", enc(REDIRECT))).await;
    assert!(!location(&r).contains('#'));
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("SameSite=Lax") && cookie.contains("HttpOnly") && !cookie.contains("Partitioned"), "{cookie}");
}

/// RFC 9207: a callback whose `iss` is not the authorization server the request went to is refused (every payer
/// shares one callback URL); one from that server passes.
#[tokio::test]
async fn the_callback_checks_iss() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let patient = browser();
    let (sid, authorize) = open_to_handoff(&app, &patient, &modal_entry(&pk)).await;
    let callback = sign_in(&patient, &authorize).await;
    let r = patient.get(format!("{callback}&iss={}", enc("https://other-payer.example"))).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.exit_code.map(|c| c.as_str()), Some("INVALID_STATE"));
    assert_eq!(count(&app, "authorizations").await, 0);

    let patient = browser();
    let (_, authorize) = open_to_handoff(&app, &patient, &modal_entry(&pk)).await;
    let callback = sign_in(&patient, &authorize).await;
    let iss = format!("{}/sandbox/sandbox-health", app.base_url);
    let r = patient.get(format!("{callback}&iss={}", enc(&iss))).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("data-result=\"authorized\""));
    assert_eq!(count(&app, "authorizations").await, 1);
}

/// Rate limits answer in each surface's form, with `Retry-After`: the session entry (an ending page in the modal:
/// `RATE_LIMITED`), the token endpoints and the exchange (RFC 6749 JSON), the FHIR API (OperationOutcome). A burst
/// of requests from one address never becomes a burst of sessions.
#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_in_each_surface_form() {
    let (mut settings, dir, url) = test_settings().await;
    settings.rate_limit_sessions = 5;
    settings.rate_limit_token = 4;
    settings.rate_limit_fhir = 3;
    let app = spawn_app_with(settings, dir, url).await;
    let (pk, sk) = new_app(&app).await;

    let mut limited = 0;
    for _ in 0..40 {
        let r = app.get(&modal_entry(&pk)).await;
        if r.status() == 429 {
            limited += 1;
            let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry));
            let html = r.text().await.unwrap();
            assert!(html.contains("data-exit-code=\"RATE_LIMITED\"") && html.contains("Too many attempts"), "{html}");
        }
    }
    assert_eq!(limited, 35);
    assert_eq!(count(&app, "link_sessions").await, 5, "a burst of 40 made 5 sessions");
    let r = app.get(&format!("/link/auth?client_id={pk}&redirect_uri={}", enc(REDIRECT))).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));

    let mut last = None;
    for _ in 0..5 {
        last = Some(
            app.client
                .post(format!("{}/link/exchange", app.base_url))
                .json(&serde_json::json!({"public_token": "public-token-nope", "secret_key": sk}))
                .send()
                .await
                .unwrap(),
        );
    }
    let r = last.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable");
    let r = app.client.post(format!("{}/link/token", app.base_url)).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(r.status(), 429, "the token endpoints share the per-address budget");

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = app.client.get(format!("{}/fhir/Patient", app.base_url)).bearer_auth("at_not-a-real-token").send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(r.headers()["content-type"], "application/fhir+json");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!((v["resourceType"].as_str(), v["issue"][0]["code"].as_str()), (Some("OperationOutcome"), Some("throttled")));
        }
    }
    assert_eq!(statuses, vec![401, 401, 401, 429]);
    let r = app.client.get(format!("{}/fhir/Patient", app.base_url)).bearer_auth("at_another-token").send().await.unwrap();
    assert_eq!(r.status(), 401, "each token has its own budget");
}

/// The exchange is also limited per app, whatever the address.
#[tokio::test]
async fn the_exchange_is_limited_per_app() {
    let (mut settings, dir, url) = test_settings().await;
    settings.rate_limit_exchange = 2;
    let app = spawn_app_with(settings, dir, url).await;
    let (_, sk) = new_app(&app).await;
    let (_, other_sk) = new_app(&app).await;
    let exchange = |sk: String| {
        app.client
            .post(format!("{}/link/exchange", app.base_url))
            .json(&serde_json::json!({"public_token": "public-token-nope", "secret_key": sk}))
            .send()
    };
    assert_eq!(exchange(sk.clone()).await.unwrap().status(), 400);
    assert_eq!(exchange(sk.clone()).await.unwrap().status(), 400);
    assert_eq!(exchange(sk.clone()).await.unwrap().status(), 429);
    assert_eq!(exchange(other_sk).await.unwrap().status(), 400, "another app has its own budget");
}

/// The lifecycle sweep purges expired payer requests and abandoned sessions an hour after they expired; sessions
/// that led to a consent stay (they are its context).
#[tokio::test]
async fn the_sweep_purges_expired_link_records() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let patient = browser();
    let (with_consent, _) = open_to_handoff(&app, &patient, &modal_entry(&pk)).await;
    for _ in 0..3 {
        assert_eq!(app.get(&modal_entry(&pk)).await.status(), 303);
    }
    assert_eq!((count(&app, "link_sessions").await, count(&app, "payer_auth_requests").await), (4, 1));
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(count(&app, "link_sessions").await, 4, "nothing is purged before it expired");
    app.clock.advance(link_sessions::SESSION_TTL_SECS + 3601);
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(count(&app, "payer_auth_requests").await, 0);
    assert_eq!(count(&app, "link_sessions").await, 1);
    assert!(link_sessions::get(&app.state.db, &with_consent).await.unwrap().is_some(), "the consent's session stays");
}

/// A session id that does not have the format is a 404 before it reaches a query, a header or a log (a control
/// character used to give a 500); no input gives a 500.
#[tokio::test]
async fn malformed_session_ids_are_404_never_500() {
    let app = spawn_app().await;
    let long = format!("ls_{}", "a".repeat(5000));
    for sid in ["%0A", "ls_%0D%0Aset-cookie:x=1", "ls_%00", long.as_str(), "ls_short", "x%20y"] {
        for (method, path) in [
            ("POST", "consent"),
            ("POST", "explainer"),
            ("POST", "retry"),
            ("POST", "exit"),
            ("POST", "done"),
            ("POST", "handoff"),
            ("GET", "handoff"),
            ("GET", "status"),
            ("GET", "finish"),
        ] {
            let u = format!("{}/link/s/{sid}/{path}", app.base_url);
            let r = if method == "GET" { app.client.get(u).send().await } else { app.client.post(u).form(&[("a", "b")]).send().await };
            let r = r.unwrap();
            assert_eq!(r.status(), 404, "{method} {sid}/{path}");
        }
        let r = app.get(&format!("/link/s/{sid}")).await;
        assert!(r.status() == 404, "screen {sid}: {}", r.status());
    }
    for q in ["state=%0A&code=x", &format!("state={}&code=x", "s".repeat(5000)), "error=%00&state=x", "iss=%0A"] {
        let r = app.get(&format!("/link/callback?{q}")).await;
        assert!(r.status().is_client_error(), "callback {q}: {}", r.status());
    }
}

/// A Link address whose query cannot be read (a repeated or malformed parameter) is a 400 page for the patient
/// in their language, never the deserializer's plain text.
#[tokio::test]
async fn unreadable_link_queries_are_400_pages() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    for path in [
        format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME&usage=MULTIPLE&origin=http://localhost"),
        format!("/link?publishableKey={pk}&publishableKey={pk}&externalId=u"),
        "/link/connections?token=a&token=b".to_string(),
        "/link/s/ls_x?q=a&q=b".to_string(),
    ] {
        let r = app.client.get(format!("{}{path}", app.base_url)).header("accept-language", "es").send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains("Este enlace no es válido") && html.contains("lang=\"es\""), "{path}: {html}");
        assert!(!html.contains("deserialize"), "{path}");
    }
}

/// Security headers: COOP `same-origin` on pages that open no window, `same-origin-allow-popups` on the pages
/// that open Link (whose payer window keeps its opener), `Permissions-Policy` everywhere, no HSTS over plain HTTP.
#[tokio::test]
async fn security_headers() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let coop = |r: &reqwest::Response| r.headers().get("cross-origin-opener-policy").map(|v| v.to_str().unwrap().to_string());
    let r = app.get("/").await;
    assert_eq!(coop(&r).as_deref(), Some("same-origin"));
    assert!(r.headers()["permissions-policy"].to_str().unwrap().contains("camera=()"));
    assert!(r.headers().get("strict-transport-security").is_none());
    let r = app.get(&format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME&redirect_uri={}", enc(REDIRECT))).await;
    let r = app.get(&location(&r)).await;
    assert_eq!(coop(&r).as_deref(), Some("same-origin"), "the hosted flow opens no window");
    assert_eq!(coop(&app.get("/link/test-page").await).as_deref(), Some("same-origin-allow-popups"));
    assert_eq!(coop(&app.get("/demo").await).as_deref(), Some("same-origin-allow-popups"));
    assert!(app.get("/openapi.json").await.headers().contains_key("permissions-policy"));
}

/// `--env production` turns the sandbox payers and `/link/test-page` off unless asked for.
#[tokio::test]
async fn production_turns_the_sandbox_and_test_page_off_unless_asked() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    for (sandbox, test_page, expect_sandbox, expect_page) in
        [(None, None, false, false), (Some(true), None, true, false), (Some(true), Some(true), true, true)]
    {
        let (mut settings, dir, url) = test_settings().await;
        settings.run_mode = link_sdk::server::settings::RunMode::Production;
        settings.encryption_key = Some(secrecy::SecretString::from(key.clone()));
        settings.sandbox_flag = sandbox;
        settings.test_page = test_page;
        let settings = settings.resolve();
        assert_eq!(settings.sandbox, expect_sandbox);
        let app = spawn_app_with(settings, dir, url).await;
        let page = app.get("/link/test-page").await.status();
        assert_eq!(page == 200, expect_page, "test page: {page}");
        let smart = app.get("/sandbox/sandbox-health/fhir/.well-known/smart-configuration").await.status();
        assert_eq!(smart == 200, expect_sandbox, "sandbox: {smart}");
    }
}

/// The hosted flow end to end, in one first-party browser: its cookie alone binds every step.
#[tokio::test]
async fn the_hosted_flow_is_bound_by_its_first_party_cookie() {
    let app = spawn_app().await;
    let (pk, _) = new_app(&app).await;
    let patient = browser();
    let entry = format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME&redirect_uri={}&state=st-1&skipSyncing=true", enc(REDIRECT));
    let (sid, authorize) = open_to_handoff(&app, &patient, &entry).await;
    let callback = sign_in(&patient, &authorize).await;
    let r = patient.get(&callback).send().await.unwrap();
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    // Another browser cannot take the result.
    assert_eq!(browser().get(format!("{}/link/s/{sid}/finish", app.base_url)).send().await.unwrap().status(), 403);
    let r = patient.get(format!("{}/link/s/{sid}/finish", app.base_url)).send().await.unwrap();
    let to = location(&r);
    assert!(param(&to, "public_token").is_some_and(|t| t.starts_with("public-token-")), "{to}");
    assert_eq!(param(&to, "state").as_deref(), Some("st-1"));
}
