//! The hosted Link flow over HTTP: session creation, option validation and exit codes, CSP `frame-ancestors`,
//! consent records, the payer handoff (PKCE, `state`), the callback's error mapping and `state` single use,
//! and a full sign-in at the built-in sandbox payer.

use crate::common::{spawn_app, TestApp};
use link_sdk::server::{store::{apps::{self, NewApp}, link_sessions, tokens::{self, TokenKind}}, surfaces::sandbox};
use sqlx::Row as _;

pub(crate) const ORIGIN: &str = "https://app.example";
pub(crate) const REDIRECT: &str = "https://app.example/linked";

pub(crate) struct Keys {
    pub(crate) app_id: String,
    pub(crate) test_pk: String,
    pub(crate) live_pk: String,
    pub(crate) test_sk: String,
}

pub(crate) async fn new_app(app: &TestApp, require_signature: bool) -> Keys {
    let now = app.clock_now();
    let (a, keys) = apps::create(
        &app.state.db,
        now,
        NewApp {
            name: "Acme Health".into(),
            allowed_origins: vec![ORIGIN.into()],
            redirect_uris: vec![REDIRECT.into()],
            brand_color: Some("#0b5fff".into()),
            ..Default::default()
        },
    )
    .await
    .expect("create app");
    if require_signature {
        apps::update(&app.state.db, now, &a.id, apps::AppUpdate { require_signature: Some(true), ..Default::default() })
            .await
            .expect("update app");
    }
    Keys {
        app_id: a.id,
        test_pk: keys.test_publishable,
        live_pk: keys.live_publishable,
        test_sk: secrecy::ExposeSecret::expose_secret(&keys.test_secret).to_string(),
    }
}

pub(crate) trait Now {
    fn clock_now(&self) -> i64;
}
impl Now for TestApp {
    fn clock_now(&self) -> i64 {
        self.state.clock.now()
    }
}

pub(crate) fn entry_url(pk: &str, extra: &str) -> String {
    format!("/link?publishableKey={pk}&externalId=user-1&usage=ONE_TIME&origin={}&nonce=abcdef0123456789{extra}", enc(ORIGIN))
}

pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").expect("a redirect").to_str().unwrap().to_string()
}

fn csp(r: &reqwest::Response) -> String {
    r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

/// Opens a session and returns its id (the test client keeps the binder cookie, as the browser that opened it).
pub(crate) async fn open(app: &TestApp, url: &str) -> String {
    let r = app.get(url).await;
    assert_eq!(r.status(), 303, "open should redirect to the first screen");
    let loc = location(&r);
    let loc = loc.split('#').next().unwrap();
    loc.strip_prefix("/link/s/").expect("session url").to_string()
}

pub(crate) async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.client.post(format!("{}{}", app.base_url, path)).form(form).send().await.unwrap()
}

pub(crate) async fn step_of(app: &TestApp, sid: &str) -> (String, Option<String>) {
    let s = link_sessions::get(&app.state.db, sid).await.unwrap().expect("session");
    (s.step.as_str().to_string(), s.exit_code.map(|c| c.as_str().to_string()))
}

/// Consent given and explainer passed: the session is at search.
pub(crate) async fn to_search(app: &TestApp, sid: &str) {
    let r = post_form(app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    assert_eq!(r.status(), 303);
    let r = post_form(app, &format!("/link/s/{sid}/explainer"), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(step_of(app, sid).await.0, "search");
}

/// Hands off to the sandbox payer and returns the authorize URL.
pub(crate) async fn handoff(app: &TestApp, sid: &str, endpoint: &str) -> url::Url {
    let r = app.get(&format!("/link/s/{sid}/handoff?endpoint={endpoint}")).await;
    assert!(r.status().is_redirection(), "handoff status {}", r.status());
    url::Url::parse(&location(&r)).expect("absolute authorize URL")
}

pub(crate) fn param(u: &url::Url, name: &str) -> Option<String> {
    u.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn link_js_and_types_are_served() {
    let app = spawn_app().await;
    for path in ["/link.js", "/link/v1/link.js"] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        let body = r.text().await.unwrap();
        assert!(body.contains("FlexpaLink"));
        assert!(body.len() < 20_000);
    }
    let r = app.get("/link/v1/link.d.ts").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("interface LinkCreateOptions"));
    assert_eq!(app.get("/link/frame.js").await.status(), 200);
    // The layers over link.js (the custom element, the React hook's ES module), loaded cross-origin.
    for (path, marker, types, declared) in [
        (
            "/link/v1/link-element.js",
            "customElements.define('flexpa-link'",
            "/link/v1/link-element.d.ts",
            "interface FlexpaLinkElementEventMap",
        ),
        (
            "/link/v1/link-react.js",
            "export function useFlexpaLink(",
            "/link/v1/link-react.d.ts",
            "export function useFlexpaLink(options: LinkCreateOptions)",
        ),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(r.text().await.unwrap().contains(marker), "{path}");
        let r = app.get(types).await;
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/typescript"));
        assert!(r.text().await.unwrap().contains(declared), "{types}");
    }
}

#[tokio::test]
async fn open_creates_a_session_and_renders_consent_framed_only_by_the_app() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    assert!(sid.starts_with("ls_") && sid.len() > 40, "unguessable session id");
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.step, "consent");
    assert_eq!(s.nonce, "abcdef0123456789");
    assert_eq!(s.host_origin.as_deref(), Some(ORIGIN));
    assert_eq!(s.app_id, keys.app_id);
    assert!(s.options.auto_exit);

    let r = app.get(&format!("/link/s/{sid}")).await;
    assert_eq!(r.status(), 200);
    let policy = csp(&r);
    assert!(policy.contains(&format!("frame-ancestors {ORIGIN}")), "{policy}");
    assert!(r.headers().get("x-frame-options").is_none());
    assert!(r.headers().get("x-link-frame-ancestors").is_none(), "internal header must not leak");
    let html = r.text().await.unwrap();
    assert!(html.contains("Acme Health wants to connect to your health plan"));
    assert!(html.contains("Test mode"));
    assert!(html.contains("deleted from this service 24 hours"));
    assert!(html.contains("data-nonce=\"abcdef0123456789\""));
}

#[tokio::test]
async fn test_keys_work_from_loopback_origins_live_keys_only_from_registered_ones() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let local = "http://localhost:5417";
    let url = |pk: &str, origin: &str| {
        format!("/link?publishableKey={pk}&externalId=u&usage=ONE_TIME&origin={}&nonce=abcdef0123456789", enc(origin))
    };
    // A developer's page on their own machine, never registered: the test key opens Link, and only that page
    // (besides the registered origins and this server) may frame the session.
    let sid = open(&app, &url(&keys.test_pk, local)).await;
    let policy = csp(&app.get(&format!("/link/s/{sid}")).await);
    assert!(policy.contains(local), "{policy}");
    assert!(!policy.contains("127.0.0.1:*") && !policy.contains("localhost:*"), "no wildcard: {policy}");
    // Another session's screens do not let that page frame them.
    let other = open(&app, &entry_url(&keys.test_pk, "")).await;
    assert!(!csp(&app.get(&format!("/link/s/{other}")).await).contains(local));

    // Live keys: only registered origins, loopback included; the refusal carries a hint for the developer.
    for origin in [local, "https://evil.example"] {
        let r = app.get(&url(&keys.live_pk, origin)).await;
        let html = r.text().await.unwrap();
        assert!(html.contains("data-exit-code=\"INVALID_PUBLISHABLE_KEY\""), "{html}");
        assert!(html.contains(&format!("data-hint=\"this page&#39;s origin {origin} is not an allowed origin")), "{html}");
        assert!(html.contains("--allowed-origin"), "{html}");
    }
    // Not loopback, so registration is needed even for test keys.
    for origin in ["http://127.0.0.1.evil.example", "http://localhost.evil.example:5417", "https://10.0.0.1"] {
        let html = app.get(&url(&keys.test_pk, origin)).await.text().await.unwrap();
        assert!(html.contains("data-exit-code=\"INVALID_PUBLISHABLE_KEY\""), "{origin}: {html}");
    }
}

#[tokio::test]
async fn spanish_from_accept_language_or_the_language_option() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let r = app
        .client
        .get(format!("{}{}", app.base_url, entry_url(&keys.test_pk, "")))
        .header("accept-language", "es-MX,es;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let sid = location(&r).trim_start_matches("/link/s/").to_string();
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("Acme Health quiere conectarse a su plan de salud"), "{html}");
    let sid = open(&app, &entry_url(&keys.test_pk, "&language=es")).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("Modo de prueba"));
}

/// The `<html …>` start tag of a page.
fn html_tag(html: &str) -> String {
    html[html.find("<html").unwrap()..].split('>').next().unwrap().to_string()
}

/// The consent screen's language picker is a plain form (no JavaScript): the patient's choice of Korean holds for
/// every later screen of the session (`<html lang>` too), the consent recorded and the payer window's last page,
/// and is recorded once as `LANGUAGE_CHANGED`; another browser cannot change it; `language=ko` works at `open()`.
#[tokio::test]
async fn korean_picked_on_the_consent_screen_holds_for_the_session_and_only_its_browser_can_pick() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    let screen = || async { app.get(&format!("/link/s/{sid}")).await.text().await.unwrap() };
    let language = || async { link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap().options.language };
    let path = format!("/link/s/{sid}/language");

    // Each language named in itself and marked with its own `lang`; English is the current one.
    let html = screen().await;
    assert!(html.contains(&format!("action=\"{path}\"")), "{html}");
    for (code, name) in link_sdk::i18n::LANGUAGES {
        assert!(html.contains(&format!("value=\"{code}\" lang=\"{code}\"")) && html.contains(&format!(">{name}</button>")), "{code}: {html}");
    }
    assert!(html.contains("value=\"en\" lang=\"en\" formnovalidate aria-current=\"true\""), "{html}");

    // Another browser (no binding) is refused and changes nothing.
    let other = crate::common::browser().post(format!("{}{path}", app.base_url)).form(&[("language", "ko")]).send().await.unwrap();
    assert_eq!(other.status(), 403);
    assert!(other.text().await.unwrap().contains("opened in another browser"));
    assert_eq!(language().await, "en");

    // The patient's browser: Korean, back on the consent screen.
    let r = post_form(&app, &path, &[("language", "ko")]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, format!("/link/s/{sid}")));
    assert_eq!(language().await, "ko");
    let html = screen().await;
    assert!(html_tag(&html).contains("lang=\"ko\""), "{html}");
    assert!(html.contains("Acme Health에서 건강보험 연결을 요청합니다") && html.contains("동의하고 계속하기"), "{html}");
    assert!(html.contains("value=\"ko\" lang=\"ko\" formnovalidate aria-current=\"true\""), "{html}");
    // A language we do not ship, or the same one again, changes nothing.
    for same in ["fr", "ko", ""] {
        assert_eq!(post_form(&app, &path, &[("language", same)]).await.status(), 303);
    }
    assert_eq!(language().await, "ko");

    // Consent is recorded in Korean; the explainer, the search and the payer window's last page are in Korean.
    post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    let (lang, text): (String, String) = sqlx::query("SELECT language, text FROM consents WHERE link_session_id = $1")
        .bind(&sid)
        .fetch_one(&app.state.db.pool)
        .await
        .map(|r| (r.get("language"), r.get("text")))
        .unwrap();
    assert_eq!(lang, "ko");
    assert!(text.starts_with("Acme Health에서 건강보험 연결을 요청합니다\n"), "{text}");
    let html = screen().await;
    assert!(html_tag(&html).contains("lang=\"ko\"") && html.contains("이용 방법"), "{html}");
    assert!(!html.contains(&format!("action=\"{path}\"")), "the picker is on the consent screen only");
    // Past consent the language stays.
    assert_eq!(post_form(&app, &path, &[("language", "en")]).await.status(), 303);
    assert_eq!(language().await, "ko");
    post_form(&app, &format!("/link/s/{sid}/explainer"), &[]).await;
    assert!(screen().await.contains("건강보험 찾기"));
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    let popup = app.client.get(&callback).send().await.unwrap().text().await.unwrap();
    assert!(html_tag(&popup).contains("lang=\"ko\"") && popup.contains("로그인되었습니다"), "{popup}");
    let html = screen().await;
    assert!(html.contains("기록을 가져오는 중") || html.contains("연결되었습니다"), "{html}");

    // One LANGUAGE_CHANGED event, from English to Korean, at the consent step.
    let pid = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap().public_id.unwrap();
    let r = app.client.get(format!("{}/link/sessions/{pid}", app.base_url)).bearer_auth(&keys.test_sk).send().await.unwrap();
    let session: serde_json::Value = r.json().await.unwrap();
    let changes: Vec<&serde_json::Value> =
        session["events"].as_array().unwrap().iter().filter(|e| e["name"] == "LANGUAGE_CHANGED").collect();
    assert_eq!(changes.len(), 1, "{session}");
    assert_eq!((&changes[0]["step"], &changes[0]["metadata"]), (&serde_json::json!("consent"), &serde_json::json!({"from": "en", "to": "ko"})));

    // `language=ko` at open(), and from Accept-Language.
    let sid = open(&app, &entry_url(&keys.test_pk, "&language=ko")).await;
    assert!(app.get(&format!("/link/s/{sid}")).await.text().await.unwrap().contains("테스트 모드"));
    let r = app
        .client
        .get(format!("{}{}", app.base_url, entry_url(&keys.test_pk, "&language=xx")))
        .header("accept-language", "ko-KR,ko;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    let sid = location(&r).split('#').next().unwrap().trim_start_matches("/link/s/").to_string();
    assert_eq!(link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap().options.language, "ko");
}

#[tokio::test]
async fn invalid_options_end_with_their_exit_codes() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let cases: Vec<(String, &str)> = vec![
        (entry_url("not-a-key", ""), "INVALID_PUBLISHABLE_KEY"),
        (entry_url("pk_test_unknownunknownunknown", ""), "INVALID_PUBLISHABLE_KEY"),
        (
            format!("/link?publishableKey={}&usage=ONE_TIME&origin={}&nonce=abcdef0123456789", keys.test_pk, enc(ORIGIN)),
            "INVALID_USER",
        ),
        (
            format!("/link?publishableKey={}&externalId=u&usage=SOMETIMES&origin={}&nonce=abcdef0123456789", keys.test_pk, enc(ORIGIN)),
            "INVALID_USAGE",
        ),
        (entry_url(&keys.test_pk, "&endpoint=not-a-uuid"), "INVALID_ENDPOINT"),
        (entry_url(&keys.test_pk, "&endpoint=00000000-0000-4000-8000-000000000000"), "INVALID_ENDPOINT"),
        (entry_url(&keys.live_pk, &format!("&endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID)), "ENDPOINT_MODE_MISMATCH"),
        (
            format!("/link?publishableKey={}&externalId=u&usage=ONE_TIME&origin={}&nonce=abcdef0123456789", keys.test_pk, enc("https://evil.example")),
            "INVALID_PUBLISHABLE_KEY",
        ),
    ];
    for (url, code) in cases {
        let r = app.get(&url).await;
        // Bad input: 400 (an origin the app has not registered: 403), with the page that tells the host page.
        assert_eq!(r.status(), if url.contains("evil.example") { 403 } else { 400 }, "{url}");
        let policy = csp(&r);
        let html = r.text().await.unwrap();
        assert!(html.contains(&format!("data-exit-code=\"{code}\"")), "{url} → {code}: {html}");
        assert!(html.contains("data-nonce=\"abcdef0123456789\""));
        // Only the page that asked may frame the exit page (it carries nothing but the code).
        assert!(policy.contains("frame-ancestors https://"), "{policy}");
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM link_sessions").fetch_one(&app.state.db.pool).await.unwrap().get("n");
    assert_eq!(n, 0, "no session for invalid options");
}

#[tokio::test]
async fn hosted_flow_checks_redirect_uri_and_returns_codes_with_state() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let r = app
        .get(&format!("/link?publishableKey={}&externalId=u&usage=NEVER&redirect_uri={}&state=xyz", keys.test_pk, enc(REDIRECT)))
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), format!("{REDIRECT}?error=INVALID_USAGE&state=xyz"));
    let r = app
        .get(&format!("/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&state=xyz", keys.test_pk, enc("https://evil.example/x")))
        .await;
    assert_eq!(r.status(), 400, "unregistered redirect_uri is never redirected to");

    // Declining in the hosted flow goes back to the app with the code and state.
    let r = app
        .get(&format!("/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&state=s1", keys.test_pk, enc(REDIRECT)))
        .await;
    let sid = location(&r).trim_start_matches("/link/s/").to_string();
    let page = app.get(&format!("/link/s/{sid}")).await;
    assert!(csp(&page).contains(ORIGIN));
    let r = post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "declined")]).await;
    assert_eq!(location(&r), format!("{REDIRECT}?error=PATIENT_CANCELLED&state=s1"));
}

#[tokio::test]
async fn consent_is_recorded_with_its_exact_text_and_declining_cancels() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let url = entry_url(&keys.test_pk, "&requestedResources=Coverage,ExplanationOfBenefit").replace("ONE_TIME", "MULTIPLE");
    let sid = open(&app, &url).await;
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.usage.as_str(), "MULTIPLE");
    let r = post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(step_of(&app, &sid).await.0, "explainer");
    let row = sqlx::query(
        "SELECT app_id, external_id, usage, scope, text_version, text_hash, text, language, choice, signature_name \
         FROM consents WHERE link_session_id = $1",
    )
    .bind(&sid)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    let text: String = row.get("text");
    assert_eq!(row.get::<String, _>("app_id"), keys.app_id);
    assert_eq!(row.get::<String, _>("external_id"), "user-1");
    assert_eq!(row.get::<String, _>("usage"), s.usage.as_str());
    assert_eq!(row.get::<String, _>("choice"), "given");
    assert_eq!(row.get::<String, _>("text_version"), link_sdk::i18n::CONSENT_TEXT_VERSION);
    assert_eq!(row.get::<String, _>("text_hash"), link_sdk::server::platform::crypto::hash_token(&text));
    assert!(text.starts_with("Acme Health wants to connect"), "{text}");
    assert!(text.contains("Only these kinds of records: Insurance coverage, Claims"), "{text}");
    let scope: String = row.get("scope");
    assert_eq!(scope, "patient/Coverage.read patient/ExplanationOfBenefit.read offline_access");
    assert!(text.contains("refreshed for as long as your health plan allows"));
    assert!(row.get::<Option<String>, _>("signature_name").is_none());

    // A second consent post changes nothing (the step moved on).
    post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "declined")]).await;
    assert_eq!(step_of(&app, &sid).await.0, "explainer");

    let sid2 = open(&app, &entry_url(&keys.test_pk, "")).await;
    post_form(&app, &format!("/link/s/{sid2}/consent"), &[("choice", "declined")]).await;
    assert_eq!(step_of(&app, &sid2).await, ("exited".into(), Some("PATIENT_CANCELLED".into())));
    let html = app.get(&format!("/link/s/{sid2}")).await.text().await.unwrap();
    assert!(html.contains("data-exit-code=\"PATIENT_CANCELLED\""));
}

#[tokio::test]
async fn an_app_can_require_a_typed_signature() {
    let app = spawn_app().await;
    let keys = new_app(&app, true).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "&skipExplainer=true")).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("name=\"signature\""));
    let r = post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given"), ("signature", "  ")]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}?err=signature"));
    assert_eq!(step_of(&app, &sid).await.0, "consent");
    post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given"), ("signature", "Jane Q. Doe")]).await;
    assert_eq!(step_of(&app, &sid).await.0, "search", "skipExplainer goes straight to search");
    let sig: Option<String> = sqlx::query("SELECT signature_name FROM consents WHERE link_session_id = $1")
        .bind(&sid)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("signature_name");
    assert_eq!(sig.as_deref(), Some("Jane Q. Doe"));
}

#[tokio::test]
async fn search_lists_only_plans_of_the_key_mode_and_works_without_javascript() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("Sandbox Health Plan"), "{html}");
    let html = app.get(&format!("/link/s/{sid}?q=basic")).await.text().await.unwrap();
    assert!(html.contains("Sandbox Basic"));
    assert!(!html.contains("Sandbox Health Plan"));
    let html = app.get(&format!("/link/s/{sid}?q=zzzz-nothing")).await.text().await.unwrap();
    assert!(html.contains("No health plan matches"));
    // A live key sees no sandbox plan.
    let sid = open(&app, &entry_url(&keys.live_pk, "")).await;
    to_search(&app, &sid).await;
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(!html.contains("Sandbox Health Plan"));
}

#[tokio::test]
async fn handoff_needs_consent_and_redirects_to_the_payer_with_pkce_and_state() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    let r = app.get(&format!("/link/s/{sid}/handoff?endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID)).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"), "no handoff before consent");
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    assert!(u.as_str().starts_with(&format!("{}/sandbox/sandbox-health/authorize", app.base_url)), "{u}");
    assert_eq!(param(&u, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&u, "code_challenge_method").as_deref(), Some("S256"));
    assert!(param(&u, "code_challenge").is_some_and(|c| c.len() == 43));
    assert!(param(&u, "state").is_some_and(|s| s.len() >= 32));
    assert_eq!(param(&u, "redirect_uri"), Some(format!("{}/link/callback", app.base_url)));
    assert_eq!(step_of(&app, &sid).await.0, "payer");
    // A live-mode endpoint cannot be picked with a test key (and an unknown one is invalid).
    let r = app.get(&format!("/link/s/{sid}/handoff?endpoint=00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("data-exit-code=\"INVALID_ENDPOINT\""));
    assert_eq!(step_of(&app, &sid).await, ("error".into(), Some("INVALID_ENDPOINT".into())));
    // Pick another plan.
    post_form(&app, &format!("/link/s/{sid}/retry"), &[]).await;
    assert_eq!(step_of(&app, &sid).await, ("search".into(), None));
}

#[tokio::test]
async fn callback_errors_map_to_exit_codes_and_state_is_single_use() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let state = param(&u, "state").unwrap();

    let r = app.get(&format!("/link/callback?error=access_denied&state={}", enc(&state))).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"link-popup\""));
    assert!(html.contains("data-exit-code=\"PAYER_ACCESS_DENIED\""));
    assert!(html.contains("data-nonce=\"abcdef0123456789\""));
    assert_eq!(step_of(&app, &sid).await, ("error".into(), Some("PAYER_ACCESS_DENIED".into())));
    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert_eq!(status["step"], "error");
    assert_eq!(status["exitCode"], "PAYER_ACCESS_DENIED");
    assert!(status["publicToken"].is_null());

    // The same state again: already used.
    let r = app.get(&format!("/link/callback?code=whatever&state={}", enc(&state))).await;
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));
    // A state we never issued.
    let r = app.get("/link/callback?code=whatever&state=nope").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));

    // Retry: neither code nor error is malformed.
    post_form(&app, &format!("/link/s/{sid}/retry"), &[]).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let state = param(&u, "state").unwrap();
    app.get(&format!("/link/callback?state={}", enc(&state))).await;
    assert_eq!(step_of(&app, &sid).await, ("error".into(), Some("MALFORMED_PAYER_CALLBACK".into())));

    // Exit from the error screen ends with the error's code.
    let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[("code", "PATIENT_CANCELLED")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(step_of(&app, &sid).await, ("exited".into(), Some("MALFORMED_PAYER_CALLBACK".into())));
}

fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page.find(&needle).unwrap_or_else(|| panic!("no hidden {name} in {page}")) + needle.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

/// Signs `username` in at the sandbox authorize URL and approves; returns our callback URL.
pub(crate) async fn sandbox_sign_in(app: &TestApp, authorize: &url::Url, username: &str) -> String {
    let r = app.client.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let page = r.text().await.unwrap();
    let (request, csrf) = (hidden(&page, "request"), hidden(&page, "csrf"));
    let base = authorize.as_str().split('?').next().unwrap().to_string();
    let r = app
        .client
        .post(format!("{base}/sign-in"))
        .header("cookie", &cookie)
        .form(&[("request", request.as_str()), ("csrf", csrf.as_str()), ("username", username), ("password", sandbox::PASSWORD)])
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    let login = hidden(&page, "login");
    let r = app
        .client
        .post(format!("{base}/decide"))
        .header("cookie", &cookie)
        .form(&[("request", request.as_str()), ("csrf", csrf.as_str()), ("login", login.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "decide status {}", r.status());
    location(&r)
}

#[tokio::test]
async fn full_sign_in_mints_a_public_token_and_moves_to_syncing() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    assert!(callback.starts_with(&format!("{}/link/callback?", app.base_url)), "{callback}");
    let r = app.client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("data-result=\"authorized\""), "{html}");
    assert!(!html.contains("public-token-"), "the token never appears in the popup page");

    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    let step = status["step"].as_str().unwrap().to_string();
    assert!(step == "syncing" || step == "success", "{status}");
    let token = status["publicToken"].as_str().expect("public token").to_string();
    assert!(token.starts_with("public-token-"));
    let row = tokens::verify(&app.state.db, app.clock_now(), TokenKind::Public, &token).await.unwrap().expect("valid token");
    assert_eq!(row.app_id, keys.app_id);
    let authz = row.authorization_id.clone().expect("authorization");
    let consent_authz: Option<String> = sqlx::query("SELECT authorization_id FROM consents WHERE link_session_id = $1")
        .bind(&sid)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("authorization_id");
    assert_eq!(consent_authz.as_deref(), Some(authz.as_str()));
    // The same callback again is refused (state single use) and does not disturb the session.
    let r = app.client.get(&callback).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("INVALID_STATE"));
    let (step2, _) = step_of(&app, &sid).await;
    assert!(step2 == "syncing" || step2 == "success" || step2 == "error", "{step2}");
    // The token expires after 30 minutes.
    app.clock.advance(1801);
    assert!(tokens::verify(&app.state.db, app.clock_now(), TokenKind::Public, &token).await.unwrap().is_none());
}

#[tokio::test]
async fn hosted_success_returns_the_public_token_and_state() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let r = app
        .get(&format!(
            "/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&state=st-9&skipSyncing=true&endpoint={}",
            keys.test_pk,
            enc(REDIRECT),
            sandbox::NON_REFRESHABLE_ENDPOINT_ID
        ))
        .await;
    let sid = location(&r).trim_start_matches("/link/s/").to_string();
    post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    post_form(&app, &format!("/link/s/{sid}/explainer"), &[]).await;
    assert_eq!(step_of(&app, &sid).await.0, "connect");
    // The fixed endpoint is used whatever the query says.
    let u = handoff(&app, &sid, "00000000-0000-4000-8000-000000000000").await;
    assert!(u.path().starts_with("/sandbox/sandbox-basic/"), "{u}");
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    let r = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&r), format!("/link/s/{sid}"), "hosted flow stays top-level");
    assert_eq!(step_of(&app, &sid).await.0, "success");
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    let to = url::Url::parse(&location(&r)).unwrap();
    assert!(to.as_str().starts_with(REDIRECT));
    assert!(param(&to, "public_token").is_some_and(|t| t.starts_with("public-token-")));
    assert_eq!(param(&to, "state").as_deref(), Some("st-9"));
    assert_eq!(step_of(&app, &sid).await.0, "done");
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert!(s.public_token_enc.is_none(), "sealed copy destroyed once handed over");
}

#[tokio::test]
async fn sessions_expire() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    app.clock.advance(link_sessions::SESSION_TTL_SECS + 1);
    let r = app.get(&format!("/link/s/{sid}")).await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("This link has expired"));
    let r = app.get(&format!("/link/s/{sid}/status")).await;
    assert_eq!(r.status(), 404);
    let r = post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(app.get("/link/s/ls_nonexistent").await.status(), 404);
}

#[tokio::test]
async fn test_page_loads_the_script() {
    let app = spawn_app().await;
    let r = app.get("/link/test-page").await;
    assert_eq!(r.status(), 200);
    let policy = csp(&r);
    let html = r.text().await.unwrap();
    assert!(html.contains("<script src=\"/link.js\"></script>"));
    assert!(policy.contains("'nonce-"));
}

#[tokio::test]
async fn an_unknown_state_is_reported_to_the_session_of_the_popup() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let r = app.get(&format!("/link/s/{sid}/handoff?endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID)).await;
    let cookie = r.headers().get("set-cookie").expect("handoff cookie").to_str().unwrap().to_string();
    assert!(cookie.starts_with("link_handoff_"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("Path=/;") && cookie.contains("SameSite=Lax"), "{cookie}");
    let u = url::Url::parse(&location(&r)).unwrap();
    let altered = format!("{}-altered", param(&u, "state").unwrap());
    let r = app
        .client
        .get(format!("{}/link/callback?code=abc&state={}", app.base_url, enc(&altered)))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("data-nonce=\"abcdef0123456789\""));
    assert_eq!(step_of(&app, &sid).await, ("error".into(), Some("INVALID_STATE".into())));
}

#[tokio::test]
async fn every_payer_error_parameter_reaches_its_exit_code() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let cases = [
        ("access_denied", "PAYER_ACCESS_DENIED"),
        ("invalid_scope", "SCOPE_CONFIGURATION_ERROR"),
        ("invalid_request", "PAYER_INVALID_REQUEST"),
        ("unsupported_response_type", "PAYER_INVALID_REQUEST"),
        ("server_error", "PAYER_SERVER_ERROR"),
        ("temporarily_unavailable", "PAYER_SERVER_ERROR"),
        ("unauthorized_client", "ENDPOINT_CONFIGURATION_ERROR"),
    ];
    for (error, code) in cases {
        let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
        let state = param(&u, "state").unwrap();
        let html = app.get(&format!("/link/callback?error={error}&state={}", enc(&state))).await.text().await.unwrap();
        assert!(html.contains(&format!("data-exit-code=\"{code}\"")), "{error} → {code}");
        assert_eq!(step_of(&app, &sid).await, ("error".into(), Some(code.into())), "{error}");
        let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
        assert_eq!(status["exitCode"], code);
        post_form(&app, &format!("/link/s/{sid}/retry"), &[]).await;
    }
}

/// `GET /link/auth` (the Link flow as an OAuth 2.0 authorization endpoint) end to end over HTTP: the hosted
/// screens, the sandbox payer, then a redirect with `code` and `state` that `POST /link/token` exchanges with
/// the PKCE `code_verifier` for an access token to the patient's data.
#[tokio::test]
async fn link_auth_redirect_flow_ends_with_a_code_the_token_endpoint_exchanges() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = link_sdk::server::surfaces::integrator_api::token::pkce_challenge(verifier);
    let r = app
        .get(&format!(
            "/link/auth?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}\
             &code_challenge_method=S256&state=st-42&flexpa_external_id=user-auth&flexpa_endpoint_id={}",
            keys.test_pk,
            enc(REDIRECT),
            sandbox::NON_REFRESHABLE_ENDPOINT_ID
        ))
        .await;
    assert_eq!(r.status(), 303);
    let sid = location(&r).trim_start_matches("/link/s/").to_string();
    post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "given")]).await;
    post_form(&app, &format!("/link/s/{sid}/explainer"), &[]).await;
    assert_eq!(step_of(&app, &sid).await.0, "connect", "the endpoint was fixed by flexpa_endpoint_id");
    let u = handoff(&app, &sid, sandbox::NON_REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    let r = app.client.get(&callback).send().await.unwrap();
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    // The syncing screen comes first; reloading it (as a patient without JavaScript does) shows success once
    // the background sync is done.
    for _ in 0..200 {
        app.get(&format!("/link/s/{sid}")).await;
        if step_of(&app, &sid).await.0 == "success" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = app.get(&format!("/link/s/{sid}/finish")).await;
    let to = url::Url::parse(&location(&r)).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    assert!(param(&to, "public_token").is_none(), "the redirect flow never shows the public_token");
    assert_eq!(param(&to, "state").as_deref(), Some("st-42"));
    let code = param(&to, "code").expect("an authorization code");
    let token = |verifier: &str| {
        let form = [
            ("grant_type", "authorization_code".to_string()),
            ("code", code.clone()),
            ("code_verifier", verifier.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("client_id", keys.test_pk.clone()),
        ];
        app.client.post(format!("{}/link/token", app.base_url)).form(&form).send()
    };
    let r = token(verifier).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let access = v["access_token"].as_str().expect("access_token").to_string();
    assert!(v["patient"].as_str().unwrap().starts_with("Patient/"), "{v}");
    // The code is single use.
    assert_eq!(token(verifier).await.unwrap().status(), 400);
    let r = app.client.get(format!("{}/link/introspect", app.base_url)).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), 401, "a replayed code revokes what it granted");
}

/// Polls the session's `/status` until its step is no longer `syncing` (the background sync worker runs).
pub(crate) async fn status_after_sync(app: &TestApp, sid: &str) -> serde_json::Value {
    for _ in 0..400 {
        let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
        if status["step"] != "syncing" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the sync did not end");
}

/// A modal session signed in at the sandbox payer: returns its id and the `public_token` `/status` gives.
async fn authorized_modal_session(app: &TestApp, keys: &Keys) -> (String, String) {
    let sid = open(app, &entry_url(&keys.test_pk, "")).await;
    to_search(app, &sid).await;
    let u = handoff(app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(app, &u, sandbox::MEMBER_TYPICAL).await;
    app.client.get(&callback).send().await.unwrap();
    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    let token = status["publicToken"].as_str().expect("public token while syncing").to_string();
    (sid, token)
}

/// The integrator's backend exchanges the `public_token` as soon as `onSyncing` delivers it: the modal still
/// sees the same token (so `onSuccess` fires with it once the sync is done), and closing the success screen
/// still ends in success.
#[tokio::test]
async fn exchanging_in_on_syncing_does_not_change_what_the_modal_sees() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let secret = keys.test_sk.clone();
    let (sid, token) = authorized_modal_session(&app, &keys).await;
    let r = app
        .client
        .post(format!("{}/link/exchange", app.base_url))
        .json(&serde_json::json!({"public_token": token, "secret_key": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let status = status_after_sync(&app, &sid).await;
    assert_eq!(status["step"], "success", "{status}");
    assert_eq!(status["publicToken"].as_str(), Some(token.as_str()), "the modal still has the token for onSuccess");
    // Closing the success screen (×, Esc) is finishing it: done, and the done screen still has the token.
    let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(step_of(&app, &sid).await, ("done".into(), None));
    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert_eq!(status["publicToken"].as_str(), Some(token.as_str()));
    // Once the modal has told the page (`/done`), the sealed copy is gone.
    app.client.post(format!("{}/link/s/{sid}/done", app.base_url)).send().await.unwrap();
    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert!(status["publicToken"].is_null(), "{status}");
}

/// What closing means on each screen: before the payer authorized, `PATIENT_CANCELLED`; on an error screen, its
/// code; after the payer authorized, success (even while the sync still runs); an ended session stays ended.
#[tokio::test]
async fn closing_ends_each_step_with_one_defined_ending() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    for before in ["consent", "search", "payer"] {
        let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
        if before != "consent" {
            to_search(&app, &sid).await;
        }
        if before == "payer" {
            handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
        }
        assert_eq!(step_of(&app, &sid).await.0, before);
        let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(location(&r), format!("/link/s/{sid}"));
        assert_eq!(step_of(&app, &sid).await, ("exited".into(), Some("PATIENT_CANCELLED".into())), "{before}");
        // Closing again changes nothing.
        post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(step_of(&app, &sid).await, ("exited".into(), Some("PATIENT_CANCELLED".into())));
        let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
        assert!(html.contains("id=\"link-close-form\""), "the modal can always be closed");
    }
    // An error screen ends with its own code, whatever the form says.
    let sid = open(&app, &entry_url(&keys.test_pk, "")).await;
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    app.get(&format!("/link/callback?error=access_denied&state={}", enc(&param(&u, "state").unwrap()))).await;
    post_form(&app, &format!("/link/s/{sid}/exit"), &[("code", "PATIENT_CANCELLED")]).await;
    assert_eq!(step_of(&app, &sid).await, ("exited".into(), Some("PAYER_ACCESS_DENIED".into())));
    // After the payer authorized, closing at once (the sync still running) is success.
    let (sid, token) = authorized_modal_session(&app, &keys).await;
    post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    assert_eq!(step_of(&app, &sid).await, ("done".into(), None));
    let status: serde_json::Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert_eq!(status["publicToken"].as_str(), Some(token.as_str()));
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("data-step=\"done\""));
}

/// The hosted flow's pages let their forms end at the registered `redirect_uri` and nowhere else (CSP
/// `form-action`), so declining, closing, an error's Exit and a timed-out session all go back to the app with
/// `error` and `state`; an app scheme is allowed by its scheme alone (what Chromium honours).
#[tokio::test]
async fn every_hosted_ending_reaches_the_redirect_uri_and_the_csp_allows_exactly_it() {
    let app = spawn_app().await;
    let app_scheme = "myapp://link-done";
    let (_, keys) = apps::create(
        &app.state.db,
        app.clock_now(),
        NewApp {
            name: "Mobile App".into(),
            redirect_uris: vec![REDIRECT.into(), app_scheme.into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = |redirect: &str, state: &str| {
        format!(
            "/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&state={state}",
            keys.test_publishable,
            enc(redirect)
        )
    };
    for (redirect, source) in [(REDIRECT, REDIRECT), (app_scheme, "myapp:")] {
        let back = |code: &str, state: &str| format!("{redirect}?error={code}&state={state}");
        // Declining consent.
        let sid = open(&app, &start(redirect, "s1")).await;
        let page = app.get(&format!("/link/s/{sid}")).await;
        let policy = csp(&page);
        assert!(policy.contains(&format!("form-action 'self' {source};")), "{policy}");
        assert!(page.headers().get("x-link-form-action").is_none(), "internal header must not leak");
        let r = post_form(&app, &format!("/link/s/{sid}/consent"), &[("choice", "declined")]).await;
        assert_eq!(location(&r), back("PATIENT_CANCELLED", "s1"));
        // The close button on a later screen.
        let sid = open(&app, &start(redirect, "s2")).await;
        to_search(&app, &sid).await;
        let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(location(&r), back("PATIENT_CANCELLED", "s2"));
        // A payer error's Exit (or ×) carries the error's code.
        let sid = open(&app, &start(redirect, "s3")).await;
        to_search(&app, &sid).await;
        let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
        let r = app.get(&format!("/link/callback?error=access_denied&state={}", enc(&param(&u, "state").unwrap()))).await;
        assert_eq!(location(&r), format!("/link/s/{sid}"), "the hosted flow shows its error screen");
        let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(location(&r), back("PAYER_ACCESS_DENIED", "s3"));
        // A session that timed out offers to go back; going back ends it once.
        let sid = open(&app, &start(redirect, "s4")).await;
        app.clock.advance(link_sessions::SESSION_TTL_SECS + 1);
        let page = app.get(&format!("/link/s/{sid}")).await;
        assert_eq!(page.status(), 404);
        assert!(csp(&page).contains(&format!("form-action 'self' {source};")));
        let html = page.text().await.unwrap();
        assert!(html.contains("This link has expired") && html.contains("Return to Mobile App"), "{html}");
        let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(location(&r), back("PATIENT_CANCELLED", "s4"));
        let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
        assert_eq!(location(&r), format!("/link/s/{sid}"), "an ended session goes back only once");
    }
    // The modal's pages allow no other form target.
    let modal = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&modal.test_pk, "")).await;
    assert!(csp(&app.get(&format!("/link/s/{sid}")).await).contains("form-action 'self';"));
}

/// Closing a hosted flow after the payer authorized returns the `public_token` (success), like the modal.
#[tokio::test]
async fn closing_a_hosted_flow_after_authorization_returns_the_public_token() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let r = app
        .get(&format!("/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&state=st-7", keys.test_pk, enc(REDIRECT)))
        .await;
    let sid = location(&r).trim_start_matches("/link/s/").to_string();
    to_search(&app, &sid).await;
    let u = handoff(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID).await;
    let callback = sandbox_sign_in(&app, &u, sandbox::MEMBER_TYPICAL).await;
    app.client.get(&callback).send().await.unwrap();
    let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    let to = url::Url::parse(&location(&r)).unwrap();
    assert!(to.as_str().starts_with(REDIRECT), "{to}");
    assert!(param(&to, "public_token").is_some_and(|t| t.starts_with("public-token-")));
    assert_eq!(param(&to, "state").as_deref(), Some("st-7"));
    assert_eq!(step_of(&app, &sid).await.0, "done");
    // Coming back to the page: nothing left to do, no button that loops.
    let html = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(html.contains("You can close this window and go back to Acme Health."), "{html}");
    assert!(!html.contains("/finish") && !html.contains("link-close-form"));
}

/// `<html lang>` follows the page's language: Link screens (by session), the expired screen (by
/// Accept-Language), and the connections page; exactly one `lang` on the element.
#[tokio::test]
async fn pages_carry_their_language_on_the_html_element() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry_url(&keys.test_pk, "&language=es")).await;
    let tag = html_tag(&app.get(&format!("/link/s/{sid}")).await.text().await.unwrap());
    assert!(tag.contains("lang=\"es\"") && tag.matches("lang=").count() == 1, "{tag}");
    let sid = open(&app, &entry_url(&keys.test_pk, "&language=en")).await;
    let tag = html_tag(&app.get(&format!("/link/s/{sid}")).await.text().await.unwrap());
    assert!(tag.contains("lang=\"en\"") && tag.matches("lang=").count() == 1, "{tag}");
    let r = app.client.get(format!("{}/link/s/ls_unknown", app.base_url)).header("accept-language", "es-MX,es;q=0.9").send().await.unwrap();
    let tag = html_tag(&r.text().await.unwrap());
    assert!(tag.contains("lang=\"es\"") && tag.matches("lang=").count() == 1, "{tag}");
    let r = app.client.get(format!("{}/link/connections?token=ct_nope&language=es", app.base_url)).send().await.unwrap();
    let tag = html_tag(&r.text().await.unwrap());
    assert!(tag.contains("lang=\"es\""), "{tag}");
    for path in ["/", "/no-such-page"] {
        let tag = html_tag(&app.get(path).await.text().await.unwrap());
        assert!(tag.contains("lang=\"en\"") && tag.matches("lang=").count() == 1, "{path}: {tag}");
    }
}

#[tokio::test]
async fn the_favicon_is_served_at_its_conventional_path() {
    let app = spawn_app().await;
    let r = app.get("/favicon.ico").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/x-icon");
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..4], &[0, 0, 1, 0], "an ICO file");
}
