//! Sync: a test payer (an axum server in this file) serves the CMS Blue Button 2.0 fixtures with faults;
//! jobs are driven one at a time with `sync::run_once` and the stored rows are checked.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use crate::common::{spawn_app_with, test_settings, TestApp};
use link_sdk::{
    domain::{ExitCode, Mode, Usage},
    server::{
        services::{
            link_flow::{self, Handoff},
            payer::{oauth::CallbackParams, refresh},
            sync,
        },
        store::{
            apps, authorizations,
            endpoints::{self, Endpoint},
        },
    },
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, value::RawValue, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

// ---------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    std::fs::read_to_string(crate::api_support::fixtures_dir().join("bluebutton").join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The exact text of each `entry[].resource` of a fixture Bundle.
fn raw_entries(text: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct E<'a> {
        #[serde(borrow)]
        resource: &'a RawValue,
    }
    #[derive(serde::Deserialize)]
    struct B<'a> {
        #[serde(borrow)]
        entry: Vec<E<'a>>,
    }
    let b: B<'_> = serde_json::from_str(text).unwrap();
    b.entry.iter().map(|e| e.resource.get().to_string()).collect()
}

fn raw_resource(text: &str) -> String {
    let r: &RawValue = serde_json::from_str(text).unwrap();
    r.get().to_string()
}

struct Fixtures {
    patient_id: String,
    patient: String,
    patient_search: String,
    coverages: Vec<String>,
    eob_page1: Vec<String>,
    eob_page2: Vec<String>,
    eob_page3: Vec<String>,
    coverage_read: String,
    not_found: String,
    /// Every fixture file's text, for "stored bytes appear verbatim in what the payer sent".
    all_text: String,
}

fn load_fixtures() -> Fixtures {
    let patient = fixture("patient_read_v2.json");
    let pid = serde_json::from_str::<Value>(&patient).unwrap()["id"].as_str().unwrap().to_string();
    let names = [
        "patient_read_v2.json",
        "patient_search_v2.json",
        "coverage_search_v2.json",
        "coverage_read_v2.json",
        "eob_search_v2.json",
        "eob_search_pt_v2.json",
        "eob_read_carrier_v2.json",
        "eob_read_in_pt_v2.json",
        "eob_read_out_pt_v2.json",
    ];
    Fixtures {
        patient_id: pid,
        patient: raw_resource(&patient),
        patient_search: fixture("patient_search_v2.json"),
        coverages: raw_entries(&fixture("coverage_search_v2.json")),
        eob_page1: raw_entries(&fixture("eob_search_v2.json")),
        eob_page2: raw_entries(&fixture("eob_search_pt_v2.json")),
        eob_page3: ["eob_read_carrier_v2.json", "eob_read_in_pt_v2.json", "eob_read_out_pt_v2.json"]
            .iter()
            .map(|n| raw_resource(&fixture(n)))
            .collect(),
        coverage_read: raw_resource(&fixture("coverage_read_v2.json")),
        not_found: fixture("resource_error_response.json"),
        all_text: names.iter().map(|n| fixture(n)).collect::<Vec<_>>().join("\n"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The test payer
// ---------------------------------------------------------------------------------------------------------

#[derive(Default, Clone)]
struct Faults {
    /// Types answering 403 with an OperationOutcome.
    forbidden: Vec<String>,
    /// Types answering 400 with an HTML body.
    html_error: Vec<String>,
    /// Types answering 200 with an HTML page (a login wall) or XML instead of JSON.
    html_ok: Vec<String>,
    xml_ok: Vec<String>,
    /// Types whose search Bundle carries an OperationOutcome entry with severity `error`.
    outcome_error: Vec<String>,
    /// (type, Retry-After value, how many times) answering 429.
    rate_limit: Vec<(String, String, usize)>,
    /// (type, x-ms-retry-after-ms value, how many times) answering 429 (Azure API for FHIR), with a
    /// `Retry-After: 3600` the client must not prefer.
    ms_rate_limit: Vec<(String, String, usize)>,
    /// The last ExplanationOfBenefit page links back to page 2 (else it has no `next`).
    eob_repeated_next: bool,
    /// Types whose search pages never end: every page links to the next one.
    endless: Vec<String>,
    /// (type, status, how many times) answering a 5xx.
    server_error: Vec<(String, u16, usize)>,
    /// The first access token stops working after this many FHIR requests.
    expire_first_token_after: Option<usize>,
    /// Every FHIR request answers 401.
    always_401: bool,
    /// The refresh grant answers 400 invalid_grant.
    refresh_invalid_grant: bool,
    /// (type, max _count answered quickly): larger pages take 1.5 s.
    slow_over_count: Option<(String, u32)>,
    /// No `.well-known/smart-configuration` (discovery must use /metadata).
    no_well_known: bool,
    /// The code exchange answers this status and body.
    token_error: Option<(u16, String)>,
    /// No `refresh_token` in the token response.
    no_refresh_token: bool,
    /// No `patient` in the token response (the sync must find the Patient).
    no_patient_in_token: bool,
    /// `next` of the Coverage page points to this other origin.
    coverage_cross_origin_next: Option<String>,
    /// Coverage ids the search no longer returns (deleted at the payer).
    coverage_deleted: Vec<String>,
    /// Coverage ids the search returns with other content (`status: cancelled`).
    coverage_changed: Vec<String>,
}

#[derive(Default)]
struct Tokens {
    access: HashMap<String, usize>,
    refresh: Vec<String>,
    codes: HashMap<String, (String, String)>,
    issued: usize,
    refreshes: usize,
    first_access: Option<String>,
    last_authorize: Option<HashMap<String, String>>,
}

struct PayerInner {
    base: String,
    fx: Fixtures,
    faults: Mutex<Faults>,
    tokens: Mutex<Tokens>,
    hits: Mutex<Vec<String>>,
}

#[derive(Clone)]
struct TestPayer(Arc<PayerInner>);

impl TestPayer {
    async fn start(faults: Faults) -> TestPayer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let p = TestPayer(Arc::new(PayerInner {
            base,
            fx: load_fixtures(),
            faults: Mutex::new(faults),
            tokens: Mutex::new(Tokens::default()),
            hits: Mutex::new(Vec::new()),
        }));
        let app = Router::new().fallback(handle).with_state(p.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        p
    }
    fn fhir(&self) -> String {
        format!("{}/fhir", self.0.base)
    }
    fn hits(&self) -> Vec<String> {
        self.0.hits.lock().unwrap().clone()
    }
    /// Issues a token pair directly (for authorizations created without the OAuth dance).
    fn issue(&self) -> (String, String) {
        let mut t = self.0.tokens.lock().unwrap();
        t.issued += 1;
        let at = format!("at-{}-{}", t.issued, uuid::Uuid::new_v4().simple());
        let rt = format!("rt-{}-{}", t.issued, uuid::Uuid::new_v4().simple());
        t.access.insert(at.clone(), 0);
        t.refresh.push(rt.clone());
        if t.first_access.is_none() {
            t.first_access = Some(at.clone());
        }
        (at, rt)
    }
}

fn fhir_json(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn outcome(severity: &str, code: &str, text: &str) -> String {
    json!({"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": text}]}).to_string()
}

fn bundle(entries: &[String], next: Option<&str>, extra_entries: &[String]) -> String {
    let mut links = vec![];
    if let Some(n) = next {
        links.push(json!({"relation": "next", "url": n}).to_string());
    }
    let items: Vec<String> = entries
        .iter()
        .chain(extra_entries.iter())
        .map(|raw| format!("{{\"resource\":{raw}}}"))
        .collect();
    format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"link\":[{}],\"entry\":[{}]}}",
        links.join(","),
        items.join(",")
    )
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect()
}

async fn handle(State(p): State<TestPayer>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let q = query_map(req.uri().query());
    let full = match req.uri().query() {
        Some(qs) => format!("{path}?{qs}"),
        None => path.clone(),
    };
    p.0.hits.lock().unwrap().push(full);
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(String::from);
    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
    let faults = p.0.faults.lock().unwrap().clone();
    let fx = &p.0.fx;
    let fhir = p.fhir();

    match path.as_str() {
        "/fhir/.well-known/smart-configuration" if !faults.no_well_known => {
            return fhir_json(
                StatusCode::OK,
                "application/json",
                json!({"authorization_endpoint": format!("{}/authorize", p.0.base), "token_endpoint": format!("{}/token", p.0.base),
                       "capabilities": ["launch-standalone", "client-public"], "code_challenge_methods_supported": ["S256"]})
                .to_string(),
            )
        }
        "/fhir/.well-known/smart-configuration" => return (StatusCode::NOT_FOUND, "<html>not here</html>").into_response(),
        "/fhir/metadata" => {
            return fhir_json(
                StatusCode::OK,
                "application/fhir+json",
                json!({"resourceType": "CapabilityStatement", "rest": [{"mode": "server", "security": {"extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "authorize", "valueUri": format!("{}/authorize", p.0.base)},
                                  {"url": "token", "valueUri": format!("{}/token", p.0.base)}]}]}}]})
                .to_string(),
            )
        }
        "/authorize" => {
            let code = format!("code-{}", uuid::Uuid::new_v4().simple());
            let mut t = p.0.tokens.lock().unwrap();
            t.codes.insert(code.clone(), (q["code_challenge"].clone(), q["redirect_uri"].clone()));
            t.last_authorize = Some(q.clone());
            let loc = format!("{}?code={code}&state={}", q["redirect_uri"], urlencode(&q["state"]));
            return (StatusCode::FOUND, [(header::LOCATION, loc)]).into_response();
        }
        "/token" => {
            let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            let refreshing = form.get("grant_type").map(String::as_str) == Some("refresh_token");
            if !refreshing {
                if let Some((status, body)) = faults.token_error {
                    return fhir_json(StatusCode::from_u16(status).unwrap(), "application/json", body);
                }
                let mut t = p.0.tokens.lock().unwrap();
                let Some((challenge, redirect)) = t.codes.remove(form.get("code").map(String::as_str).unwrap_or("")) else {
                    return fhir_json(StatusCode::BAD_REQUEST, "application/json", json!({"error": "invalid_grant"}).to_string());
                };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if computed != challenge || form.get("redirect_uri") != Some(&redirect) {
                    return fhir_json(StatusCode::BAD_REQUEST, "application/json", json!({"error": "invalid_grant"}).to_string());
                }
                drop(t);
            } else {
                if faults.refresh_invalid_grant {
                    return fhir_json(StatusCode::BAD_REQUEST, "application/json", json!({"error": "invalid_grant"}).to_string());
                }
                let mut t = p.0.tokens.lock().unwrap();
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                // Rotation: a refresh token works once.
                let Some(i) = t.refresh.iter().position(|r| *r == rt) else {
                    return fhir_json(StatusCode::BAD_REQUEST, "application/json", json!({"error": "invalid_grant"}).to_string());
                };
                t.refresh.remove(i);
                t.refreshes += 1;
            }
            let (at, rt) = p.issue();
            let mut resp = json!({"access_token": at, "token_type": "bearer", "expires_in": 3600,
                                  "scope": "launch/patient openid fhirUser patient/*.read offline_access"});
            if !faults.no_refresh_token {
                resp["refresh_token"] = json!(rt);
            }
            if !faults.no_patient_in_token && !refreshing {
                resp["patient"] = json!(fx.patient_id);
            }
            return fhir_json(StatusCode::OK, "application/json;charset=UTF-8", resp.to_string());
        }
        _ => {}
    }

    // FHIR API: bearer token required.
    let Some(rest) = path.strip_prefix("/fhir/") else { return StatusCode::NOT_FOUND.into_response() };
    let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("").to_string();
    {
        let mut t = p.0.tokens.lock().unwrap();
        let first = t.first_access.clone();
        let ok = match t.access.get_mut(&token) {
            Some(uses) if !faults.always_401 => {
                *uses += 1;
                !(Some(&token) == first.as_ref() && faults.expire_first_token_after.is_some_and(|n| *uses > n))
            }
            _ => false,
        };
        if !ok {
            return fhir_json(StatusCode::UNAUTHORIZED, "application/fhir+json", outcome("error", "login", "invalid token"));
        }
    }
    let (ty, id) = match rest.split_once('/') {
        Some((t, i)) => (t.to_string(), Some(i.to_string())),
        None => (rest.to_string(), None),
    };
    {
        let mut f = p.0.faults.lock().unwrap();
        if let Some(r) = f.rate_limit.iter_mut().find(|r| r.0 == ty && r.2 > 0) {
            r.2 -= 1;
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, r.1.clone())], "slow down").into_response();
        }
        if let Some(r) = f.ms_rate_limit.iter_mut().find(|r| r.0 == ty && r.2 > 0) {
            r.2 -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-ms-retry-after-ms", r.1.clone()), ("retry-after", "3600".to_string())],
                "slow down",
            )
                .into_response();
        }
        if let Some(r) = f.server_error.iter_mut().find(|r| r.0 == ty && r.2 > 0) {
            r.2 -= 1;
            return (StatusCode::from_u16(r.1).unwrap(), [(header::CONTENT_TYPE, "text/html")], "<html><body>Bad gateway</body></html>")
                .into_response();
        }
    }
    if faults.forbidden.contains(&ty) {
        return fhir_json(StatusCode::FORBIDDEN, "application/fhir+json", outcome("error", "forbidden", "not in scope"));
    }
    if faults.html_error.contains(&ty) {
        return (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], "<html><h1>Bad Request</h1></html>")
            .into_response();
    }
    if faults.html_ok.contains(&ty) {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<!doctype html><html>Sign in</html>").into_response();
    }
    if faults.xml_ok.contains(&ty) {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/fhir+xml")], "<Bundle xmlns=\"http://hl7.org/fhir\"/>")
            .into_response();
    }
    if let Some((slow_ty, max)) = &faults.slow_over_count {
        let count: u32 = q.get("_count").and_then(|c| c.parse().ok()).unwrap_or(50);
        if *slow_ty == ty && count > *max {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
    }

    if let Some(id) = id {
        // Reads.
        let found = match ty.as_str() {
            "Patient" if id == fx.patient_id => Some(fx.patient.clone()),
            "Coverage" => fx
                .coverages
                .iter()
                .chain(std::iter::once(&fx.coverage_read))
                .find(|c| serde_json::from_str::<Value>(c).unwrap()["id"] == json!(id))
                .cloned(),
            _ => None,
        };
        return match found {
            Some(b) => fhir_json(StatusCode::OK, "application/fhir+json;charset=UTF-8", b),
            None => fhir_json(StatusCode::NOT_FOUND, "application/fhir+json", fx.not_found.clone()),
        };
    }
    // Searches.
    let page = q.get("_page").cloned().unwrap_or_default();
    let body = match ty.as_str() {
        "Patient" => fx.patient_search.clone(),
        "Coverage" => {
            let id_of = |c: &String| serde_json::from_str::<Value>(c).unwrap()["id"].as_str().unwrap().to_string();
            let served: Vec<String> = fx
                .coverages
                .iter()
                .filter(|c| !faults.coverage_deleted.contains(&id_of(c)))
                .map(|c| {
                    if !faults.coverage_changed.contains(&id_of(c)) {
                        return c.clone();
                    }
                    let mut v: Value = serde_json::from_str(c).unwrap();
                    v["status"] = json!("cancelled");
                    v.to_string()
                })
                .collect();
            bundle(&served, faults.coverage_cross_origin_next.as_deref(), &[])
        }
        "ExplanationOfBenefit" => {
            let pid = urlencode(&fx.patient_id);
            match page.as_str() {
                // Relative `next`, resolved against this response's URL.
                "" => bundle(&fx.eob_page1, Some(&format!("ExplanationOfBenefit?patient={pid}&_page=2")), &[]),
                // Absolute same-origin `next`, and an OperationOutcome warning entry.
                "2" => bundle(
                    &fx.eob_page2,
                    Some(&format!("{fhir}/ExplanationOfBenefit?patient={pid}&_page=3")),
                    &[outcome("warning", "informational", "some claims are delayed")],
                ),
                // `next` repeats page 2 (with the fault), else the last page.
                _ => {
                    let again = format!("{fhir}/ExplanationOfBenefit?patient={pid}&_page=2");
                    bundle(&fx.eob_page3, faults.eob_repeated_next.then_some(again.as_str()), &[])
                }
            }
        }
        t if faults.endless.iter().any(|x| x == t) => {
            let n: u64 = page.parse().unwrap_or(1);
            bundle(&[], Some(&format!("{fhir}/{t}?patient=x&_page={}", n + 1)), &[])
        }
        t if faults.outcome_error.iter().any(|x| x == t) => bundle(&[], None, &[outcome("error", "exception", "query failed")]),
        _ => bundle(&[], None, &[]),
    };
    let ct = if ty == "ExplanationOfBenefit" { "application/json+fhir; fhirVersion=4.0" } else { "application/json" };
    fhir_json(StatusCode::OK, ct, body)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------------------------
// Our server and rows
// ---------------------------------------------------------------------------------------------------------

async fn app_with(tweak: impl FnOnce(&mut link_sdk::server::settings::Settings)) -> TestApp {
    let (mut settings, dir, url) = test_settings().await;
    settings.sync_workers = 0;
    settings.sandbox = false;
    tweak(&mut settings);
    spawn_app_with(settings, dir, url).await
}

struct Linked {
    app_id: String,
    /// `sk_test_…` of the app.
    secret_key: String,
    endpoint: Endpoint,
    session_id: String,
}

async fn setup(app: &TestApp, payer: &TestPayer, usage: Usage, requested: &[&str], refreshable: bool) -> Linked {
    let now = app.clock.now_secs();
    let (a, keys) = apps::create(
        &app.state.db,
        now,
        apps::NewApp {
            name: "Sync test app".into(),
            allowed_origins: vec![],
            redirect_uris: vec![],
            webhook_url: None,
            logo_url: None,
            brand_color: None,
        },
    )
    .await
    .unwrap();
    let endpoint = Endpoint {
        id: uuid::Uuid::new_v4().to_string(),
        name: "Test Payer".into(),
        aliases: vec![],
        logo_url: None,
        mode: Mode::Test,
        fhir_base_url: payer.fhir(),
        authorize_url: None,
        token_url: None,
        client_id: "link-sdk-test".into(),
        client_secret_ref: None,
        scopes: None,
        refreshable,
        resource_types: vec![],
    };
    endpoints::upsert(&app.state.db, now, &endpoint).await.unwrap();
    let session_id = crate::common::new_session_id();
    sqlx::query(
        "INSERT INTO link_sessions (id, app_id, mode, external_id, usage, options, endpoint_id, nonce, step, expires_at, \
         created_at, updated_at) VALUES ($1, $2, 'test', 'user-1', $3, $4, $5, 'n', 'connect', $6, $7, $7)",
    )
    .bind(&session_id)
    .bind(&a.id)
    .bind(usage.as_str())
    .bind(json!({"requestedResources": requested}).to_string())
    .bind(&endpoint.id)
    .bind(now + 3600)
    .bind(now)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    Linked { app_id: a.id, endpoint, session_id, secret_key: keys.test_secret.expose_secret().to_string() }
}

trait NowSecs {
    fn now_secs(&self) -> i64;
}
impl NowSecs for link_sdk::server::platform::clock::ManualClock {
    fn now_secs(&self) -> i64 {
        use link_sdk::server::platform::clock::Clock as _;
        self.now()
    }
}

/// An authorization created directly with tokens the test payer issued, and its sync job queued.
async fn authorize_directly(app: &TestApp, payer: &TestPayer, l: &Linked, usage: Usage, requested: &[&str]) -> String {
    let now = app.clock.now_secs();
    let (at, rt) = payer.issue();
    let id = authorizations::create(
        &mut app.state.db.pool.acquire().await.unwrap(),
        &app.state.cipher,
        now,
        authorizations::NewAuthorization {
            app_id: l.app_id.clone(),
            mode: Mode::Test,
            external_id: "user-1".into(),
            endpoint_id: l.endpoint.id.clone(),
            link_session_id: Some(l.session_id.clone()),
            patient_id: Some(payer.0.fx.patient_id.clone()),
            usage_requested: usage,
            usage,
            downgraded: false,
            fhir_base: payer.fhir(),
            token_url: format!("{}/token", payer.0.base),
            resource_types: requested.iter().map(|s| s.to_string()).collect(),
            expunge_at: None,
            next_sync_at: if usage == Usage::Multiple { sync::next_resync_at(app.state.settings.resync_interval_secs, now) } else { None },
        },
        &authorizations::PayerTokens {
            access_token: SecretString::from(at),
            refresh_token: Some(SecretString::from(rt)),
            expires_at: Some(now + 3600),
            refresh_expires_at: None,
            scope: Some("patient/*.read".into()),
        },
    )
    .await
    .unwrap();
    sync::enqueue(&app.state.db, &id, now).await.unwrap();
    id
}

async fn drain(app: &TestApp) -> usize {
    let mut n = 0;
    while sync::run_once(&app.state).await {
        n += 1;
        assert!(n < 20, "sync keeps running");
    }
    n
}

async fn stored(app: &TestApp, authorization_id: &str) -> BTreeMap<(String, String), String> {
    let rows = sqlx::query("SELECT resource_type, id, body FROM resources WHERE authorization_id = $1")
        .bind(authorization_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| ((r.try_get("resource_type").unwrap(), r.try_get("id").unwrap()), r.try_get("body").unwrap()))
        .collect()
}

fn lu(v: &Value) -> String {
    v.pointer("/meta/lastUpdated").and_then(Value::as_str).unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn blue_button_fixtures_sync_without_loss_with_faults() {
    // Another origin, to check that a cross-origin `next` is never requested (the token must not leak).
    let other = TestPayer::start(Faults::default()).await;
    let payer = TestPayer::start(Faults {
        forbidden: vec!["Condition".into()],
        html_error: vec!["Procedure".into()],
        outcome_error: vec!["Observation".into()],
        html_ok: vec!["Encounter".into()],
        xml_ok: vec!["MedicationRequest".into()],
        coverage_cross_origin_next: Some(format!("{}/Coverage?patient=x&_page=2", other.fhir())),
        eob_repeated_next: true,
        ..Faults::default()
    })
    .await;
    let app = app_with(|_| {}).await;
    let types = [
        "Patient",
        "Coverage",
        "ExplanationOfBenefit",
        "Condition",
        "Procedure",
        "Observation",
        "Immunization",
        "Encounter",
        "MedicationRequest",
    ];
    let l = setup(&app, &payer, Usage::OneTime, &types, true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &types).await;

    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "pending");
    assert_eq!(drain(&app).await, 1);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "partial", "{st:?}");
    assert_eq!(st.exit_code, None);
    let skipped: BTreeMap<String, Value> =
        st.skipped.iter().map(|s| serde_json::to_value(s).unwrap()).map(|s| (s["type"].as_str().unwrap().to_string(), s)).collect();
    assert_eq!(
        skipped.keys().cloned().collect::<Vec<_>>(),
        vec!["Condition", "Encounter", "MedicationRequest", "Observation", "Procedure"]
    );
    assert!(skipped["Encounter"]["reason"].as_str().unwrap().contains("not FHIR JSON (text/html)"), "{skipped:?}");
    assert!(skipped["MedicationRequest"]["reason"].as_str().unwrap().contains("application/fhir+xml"), "{skipped:?}");
    assert_eq!(skipped["Condition"]["status"], json!(403));
    assert_eq!(skipped["Procedure"]["status"], json!(400));
    assert!(skipped["Procedure"]["reason"].as_str().unwrap().contains("text/html"), "{skipped:?}");
    assert!(skipped["Observation"]["reason"].as_str().unwrap().contains("OperationOutcome"));
    // Paging that stopped early makes the type incomplete (and the job partial), with the reason.
    let incomplete: BTreeMap<&str, &str> = st.incomplete.iter().map(|i| (i.resource_type.as_str(), i.reason.as_str())).collect();
    assert_eq!(incomplete.keys().copied().collect::<Vec<_>>(), vec!["Coverage", "ExplanationOfBenefit"], "{st:?}");
    assert!(incomplete["ExplanationOfBenefit"].contains("repeated next link"), "{incomplete:?}");
    assert!(incomplete["Coverage"].contains("another origin"), "{incomplete:?}");
    let warnings = st.warnings.join("\n");
    assert!(warnings.contains("some claims are delayed"), "{warnings}");
    assert!(warnings.contains("Coverage/part-a-contract1"), "unresolvable reference recorded: {warnings}");
    assert!(other.hits().is_empty(), "cross-origin next was requested: {:?}", other.hits());

    let fx = &payer.0.fx;
    let rows = stored(&app, &auth).await;
    // Every EOB stored, the newest version winning, byte for byte as served.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for raw in fx.eob_page1.iter().chain(&fx.eob_page2).chain(&fx.eob_page3) {
        let v: Value = serde_json::from_str(raw).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        match expected.get(&id) {
            Some(old) if lu(&serde_json::from_str(old).unwrap()) > lu(&v) => {}
            _ => {
                expected.insert(id, raw.clone());
            }
        }
    }
    let eobs: BTreeMap<&String, &String> =
        rows.iter().filter(|((t, _), _)| t == "ExplanationOfBenefit").map(|((_, id), b)| (id, b)).collect();
    assert_eq!(eobs.len(), expected.len());
    for (id, raw) in &expected {
        let body = eobs.get(id).unwrap_or_else(|| panic!("EOB {id} missing"));
        assert_eq!(*body, raw, "EOB {id} not stored byte-equal");
        assert_eq!(serde_json::from_str::<Value>(body).unwrap(), serde_json::from_str::<Value>(raw).unwrap());
        assert!(fx.all_text.contains(body.as_str()));
    }
    // Contained resources intact, never fetched.
    let inpatient: Value = serde_json::from_str(eobs[&"inpatient-4436342082".to_string()]).unwrap();
    assert_eq!(inpatient["contained"][0]["id"], json!("provider-org"));
    assert!(payer.hits().iter().all(|h| !h.contains("provider-org")));
    // Coverage and Patient stored; referenced coverages already stored were not read again.
    for c in &fx.coverages {
        let v: Value = serde_json::from_str(c).unwrap();
        let key = ("Coverage".to_string(), v["id"].as_str().unwrap().to_string());
        assert_eq!(rows.get(&key), Some(c));
    }
    assert_eq!(rows.get(&("Patient".to_string(), fx.patient_id.clone())), Some(&fx.patient));
    assert!(!payer.hits().iter().any(|h| h.starts_with("/fhir/Coverage/part-d")), "{:?}", payer.hits());
    assert!(payer.hits().iter().any(|h| h == "/fhir/Coverage/part-a-contract1"));
    assert!(!rows.keys().any(|(t, _)| t == "OperationOutcome"));
    // Progress counts per type.
    assert_eq!(st.progress["Coverage"], fx.coverages.len() as i64);
    assert_eq!(st.progress["Patient"], 1);

    // Index columns.
    let row = sqlx::query(
        "SELECT patient_ref, last_updated, last_updated_at, date_value, status, search_tokens FROM resources \
         WHERE authorization_id = $1 AND resource_type = 'ExplanationOfBenefit' AND id = 'inpatient-4436342082'",
    )
    .bind(&auth)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(row.try_get::<String, _>("patient_ref").unwrap(), format!("Patient/{}", fx.patient_id));
    assert_eq!(row.try_get::<String, _>("last_updated").unwrap(), "2021-02-17T00:32:37.547+00:00");
    assert!(row.try_get::<Option<i64>, _>("last_updated_at").unwrap().is_some());
    let tokens: Vec<String> = serde_json::from_str(&row.try_get::<String, _>("search_tokens").unwrap()).unwrap();
    assert!(tokens.iter().any(|t| t == "https://bluebutton.cms.gov/resources/codesystem/eob-type|INPATIENT"), "{tokens:?}");
}

#[tokio::test]
async fn retry_after_seconds_and_http_date_reschedule_the_job() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs((app.clock.now_secs() + 300) as u64));
    payer.0.faults.lock().unwrap().rate_limit =
        vec![("Coverage".into(), "120".into(), 1), ("ExplanationOfBenefit".into(), date, 1)];
    let types = ["Coverage", "ExplanationOfBenefit"];
    let l = setup(&app, &payer, Usage::OneTime, &types, true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &types).await;

    assert!(sync::run_once(&app.state).await);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "delayed");
    assert_eq!(st.delayed_until, Some(app.clock.now_secs() + 120));
    assert_eq!(st.progress.get("Patient"), Some(&1));
    assert!(!sync::run_once(&app.state).await, "the job waits for Retry-After without holding a worker");
    app.clock.advance(119);
    assert!(!sync::run_once(&app.state).await);
    app.clock.advance(2);
    assert!(sync::run_once(&app.state).await);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "delayed", "EOB asked for an HTTP-date 300 s after the start");
    assert_eq!(st.progress.get("Coverage"), Some(&4));
    app.clock.advance(180);
    assert!(sync::run_once(&app.state).await);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    // Resumed where it stopped: Coverage was searched once after its 429 and never again.
    let coverage_searches = payer.hits().iter().filter(|h| h.starts_with("/fhir/Coverage?")).count();
    assert_eq!(coverage_searches, 2);
}

#[tokio::test]
async fn ms_retry_after_is_honoured_and_long_waits_delay_the_job() {
    // Coverage asks for 300 ms (waited in place; its Retry-After of an hour is not preferred), EOB for 120 s
    // (the job is rescheduled as `delayed` and the worker is free).
    let payer = TestPayer::start(Faults {
        ms_rate_limit: vec![("Coverage".into(), "300".into(), 1), ("ExplanationOfBenefit".into(), "120000".into(), 1)],
        ..Faults::default()
    })
    .await;
    let app = app_with(|_| {}).await;
    let types = ["Coverage", "ExplanationOfBenefit"];
    let l = setup(&app, &payer, Usage::OneTime, &types, true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &types).await;
    let start = app.clock.now_secs();

    assert!(sync::run_once(&app.state).await);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "delayed", "{st:?}");
    assert_eq!(st.delayed_until, Some(start + 120));
    assert_eq!(st.progress.get("Coverage"), Some(&4), "the short wait was waited in place");
    assert_eq!((st.stats.rate_limit_waits, st.stats.rate_limit_wait_secs, st.stats.retries), (2, 121, 1), "{st:?}");
    assert!(st.status.is_running(), "a delayed first sync still holds the FHIR API at 429");
    assert!(!sync::run_once(&app.state).await, "a delayed job holds no worker");
    app.clock.advance(121);
    assert!(sync::run_once(&app.state).await);
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    assert_eq!((st.delayed_until, st.stats.rate_limit_waits), (None, 2), "the counts survive the resumption");
    assert!(st.finished_at.is_some());

    // The integrator sees the same in GET /link/users/{externalId}.
    let r = app.client.get(format!("{}/link/users/user-1", app.base_url)).bearer_auth(&l.secret_key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let sync = &v["authorizations"][0]["sync"];
    assert_eq!(sync["status"], "complete", "{v}");
    assert_eq!(sync["stats"], json!({"retries": 1, "page_size_reductions": 0, "rate_limit_waits": 2, "rate_limit_wait_secs": 121}));
    assert_eq!(sync["incomplete"], json!([]));
    assert_eq!(sync["delayed_until"], Value::Null);
}

#[tokio::test]
async fn endless_paging_stops_at_the_cap_and_ends_partial() {
    let payer = TestPayer::start(Faults { endless: vec!["Condition".into()], ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Condition"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Condition"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "partial", "{st:?}");
    assert!(st.skipped.is_empty());
    assert_eq!(st.incomplete.len(), 1);
    assert_eq!(st.incomplete[0].resource_type, "Condition");
    assert!(st.incomplete[0].reason.contains(&format!("cap of {} pages", sync::job::PAGE_CAP)), "{st:?}");
    let pages = payer.hits().iter().filter(|h| h.starts_with("/fhir/Condition?")).count();
    assert_eq!(pages as u32, sync::job::PAGE_CAP, "no page past the cap was requested");
}

#[tokio::test]
async fn short_retry_after_is_waited_in_place() {
    let payer = TestPayer::start(Faults { rate_limit: vec![("Coverage".into(), "1".into(), 1)], ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    assert_eq!(drain(&app).await, 1);
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "complete");
}

#[tokio::test]
async fn token_expiry_mid_sync_refreshes_once_and_saves_the_rotated_refresh_token() {
    let payer = TestPayer::start(Faults { expire_first_token_after: Some(3), ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let types = ["Coverage", "ExplanationOfBenefit"];
    let l = setup(&app, &payer, Usage::Multiple, &types, true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &types).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 1);
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &auth).await.unwrap().unwrap();
    let live_refresh = payer.0.tokens.lock().unwrap().refresh.clone();
    assert!(live_refresh.contains(&creds.refresh_token.unwrap().expose_secret().to_string()), "rotated refresh token stored");
    assert_eq!(authorizations::get(&app.state.db, &auth).await.unwrap().unwrap().state, "REFRESHED");
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_before_use() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    app.clock.advance(3_600);
    drain(&app).await;
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "complete");
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 1);
}

#[tokio::test]
async fn a_401_that_survives_refresh_fails_the_sync_and_invalid_grant_needs_reauth() {
    let payer = TestPayer::start(Faults { always_401: true, ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!((st.status.as_str(), st.exit_code), ("failed", Some(ExitCode::SyncFailed)));
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 1, "refreshed exactly once");

    payer.0.faults.lock().unwrap().refresh_invalid_grant = true;
    let auth2 = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth2).await.unwrap().unwrap();
    assert_eq!(st.status, "failed");
    assert_eq!(authorizations::get(&app.state.db, &auth2).await.unwrap().unwrap().state, "NEEDS_REAUTH");
}

#[tokio::test]
async fn server_errors_back_off_then_succeed_or_fail_the_sync() {
    let payer =
        TestPayer::start(Faults { server_error: vec![("Coverage".into(), 502, 2)], ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete");
    assert_eq!(st.stats.retries, 2, "each retry after a 502 is counted: {st:?}");

    payer.0.faults.lock().unwrap().server_error = vec![("Coverage".into(), 500, 100)];
    let auth2 = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth2).await.unwrap().unwrap();
    assert_eq!((st.status.as_str(), st.exit_code), ("failed", Some(ExitCode::PayerServerError)));
    assert!(st.warnings.iter().any(|w| w.contains("500")), "{st:?}");
}

#[tokio::test]
async fn a_timeout_retries_with_half_the_page_size() {
    let payer = TestPayer::start(Faults { slow_over_count: Some(("Coverage".into(), 25)), ..Faults::default() }).await;
    let app = app_with(|s| s.payer_timeout_secs = 1).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    let st = sync::status(&app.state.db, &auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete");
    assert_eq!(st.stats.page_size_reductions, 1, "{st:?}");
    assert!(payer.hits().iter().any(|h| h.starts_with("/fhir/Coverage?") && h.contains("_count=25")), "{:?}", payer.hits());
}

#[tokio::test]
async fn resync_on_demand_and_on_schedule() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    drain(&app).await;
    let now = app.clock.now_secs();
    let a = sync::request_resync(&app.state.db, &auth, now).await.unwrap();
    let b = sync::request_resync(&app.state.db, &auth, now).await.unwrap();
    assert_eq!(a, b, "one re-sync at a time");
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "pending");
    assert_eq!(drain(&app).await, 1);
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 0);
    app.clock.advance(app.state.settings.resync_interval_secs + 1);
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 1);
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 0);
    assert_eq!(drain(&app).await, 1);
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "complete");
}

// ---------------------------------------------------------------------------------------------------------
// Payer sign-in (begin / complete) against the test payer's authorization server
// ---------------------------------------------------------------------------------------------------------

/// Follows a hand-off to the test payer's authorize endpoint (which approves at once): the callback's parameters
/// and the hand-off value the payer window's cookie would carry back.
async fn follow_authorize(h: &Handoff) -> (CallbackParams, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client.get(&h.url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let p = CallbackParams { code: q.get("code").cloned(), state: q.get("state").cloned(), ..CallbackParams::default() };
    (p, h.binder.expose_secret().to_string())
}

#[tokio::test]
async fn begin_and_complete_create_the_authorization_and_queue_the_sync() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &[], true).await;

    let h = crate::common::begin_handoff(&app.state, &l.session_id, &l.endpoint, Usage::Multiple, &[]).await.unwrap();
    let url = h.url.clone();
    let u = url::Url::parse(&url).unwrap();
    let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
    assert!(url.starts_with(&format!("{}/authorize?", payer.0.base)));
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["aud"], payer.fhir());
    assert_eq!(q["redirect_uri"], format!("{}/link/callback", app.base_url));
    let scope: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["launch/patient", "openid", "fhirUser", "patient/*.read", "offline_access"] {
        assert!(scope.contains(&s), "{scope:?}");
    }
    // The state is stored only hashed.
    let stored_hash: String = sqlx::query("SELECT state_hash FROM payer_auth_requests WHERE link_session_id = $1")
        .bind(&l.session_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("state_hash")
        .unwrap();
    assert_ne!(stored_hash, q["state"]);

    let (params, bind) = follow_authorize(&h).await;
    let done = link_flow::payer_callback(&app.state, params.clone(), &[&bind]).await.unwrap();
    assert_eq!(done.link_session_id, l.session_id);
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!((a.usage, a.downgraded, a.state.as_str()), (Usage::Multiple, false, "AUTHORIZED"));
    assert_eq!(a.patient_id.as_deref(), Some(payer.0.fx.patient_id.as_str()));
    assert_eq!(a.app_id, l.app_id);
    assert_eq!(a.expunge_at, None);
    let row = sqlx::query("SELECT authorization_id, step FROM link_sessions WHERE id = $1")
        .bind(&l.session_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(row.try_get::<String, _>("authorization_id").unwrap(), done.authorization_id);
    // The public_token is minted in the same transaction: the session is syncing.
    assert_eq!(row.try_get::<String, _>("step").unwrap(), "syncing");
    assert_eq!(sync::status(&app.state.db, &done.authorization_id).await.unwrap().unwrap().status, "pending");
    // Payer tokens sealed at rest.
    let enc: Vec<u8> = sqlx::query("SELECT payer_access_token_enc FROM authorizations WHERE id = $1")
        .bind(&done.authorization_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .try_get("payer_access_token_enc")
        .unwrap();
    assert!(!String::from_utf8_lossy(&enc).contains("at-"));

    // `state` is single use.
    let replay = link_flow::payer_callback(&app.state, params, &[&bind]).await.unwrap_err();
    assert_eq!(replay, (Some(l.session_id.clone()), ExitCode::InvalidState));
    // The whole sync runs from there.
    drain(&app).await;
    let st = sync::status(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert!(matches!(st.status.as_str(), "complete" | "partial"), "{st:?}");
    assert!(st.progress["ExplanationOfBenefit"] > 0);
}

#[tokio::test]
async fn callback_failures_map_to_exit_codes() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let cov = vec!["Coverage".to_string()];
    let begin = || crate::common::begin_handoff(&app.state, &l.session_id, &l.endpoint, Usage::OneTime, &cov);
    let sid = Some(l.session_id.clone());

    // ONE_TIME asks no offline_access and names the requested types.
    let url = begin().await.unwrap().url;
    let q: HashMap<String, String> = url::Url::parse(&url).unwrap().query_pairs().into_owned().collect();
    assert!(!q["scope"].contains("offline_access"));
    assert!(q["scope"].contains("patient/Coverage.read") && q["scope"].contains("patient/Patient.read"));

    for (error, code) in [
        ("access_denied", ExitCode::PayerAccessDenied),
        ("invalid_scope", ExitCode::ScopeConfigurationError),
        ("invalid_request", ExitCode::PayerInvalidRequest),
        ("unsupported_response_type", ExitCode::PayerInvalidRequest),
        ("server_error", ExitCode::PayerServerError),
        ("temporarily_unavailable", ExitCode::PayerServerError),
        ("unauthorized_client", ExitCode::EndpointConfigurationError),
    ] {
        let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
        let r = link_flow::payer_callback(
            &app.state,
            CallbackParams { state: p.state.clone(), error: Some(error.into()), error_description: Some("x".into()), ..CallbackParams::default() },
            &[&bind],
        )
        .await;
        assert_eq!(r.unwrap_err(), (sid.clone(), code), "{error}");
        // An error callback ends the request: its state is used up.
        let again = link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap_err();
        assert_eq!(again.1, ExitCode::InvalidState);
    }
    // No code, no error.
    let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
    let r = link_flow::payer_callback(&app.state, CallbackParams { code: None, ..p.clone() }, &[&bind]).await;
    assert_eq!(r.unwrap_err(), (sid.clone(), ExitCode::MalformedPayerCallback));
    // Unknown state.
    let r = link_flow::payer_callback(&app.state, CallbackParams { state: Some("forged".into()), ..p.clone() }, &[&bind]).await;
    assert_eq!(r.unwrap_err(), (None, ExitCode::InvalidState));
    // An `iss` (RFC 9207) from another authorization server than the one the request went to.
    let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
    let other = CallbackParams { iss: Some("https://mix-up.example".into()), ..p.clone() };
    assert_eq!(link_flow::payer_callback(&app.state, other, &[&bind]).await.unwrap_err(), (sid.clone(), ExitCode::InvalidState));
    assert_eq!(link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap_err().1, ExitCode::InvalidState, "state spent");
    // Without the payer window's hand-off value (another browser): refused, and the state is spent.
    let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
    assert_eq!(link_flow::payer_callback(&app.state, p.clone(), &[]).await.unwrap_err(), (sid.clone(), ExitCode::BrowserMismatch));
    assert_eq!(link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap_err().1, ExitCode::InvalidState);
    // Expired state.
    let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
    app.clock.advance(link_sdk::server::store::payer_auth_requests::AUTH_REQUEST_TTL_SECS + 1);
    assert_eq!(link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap_err(), (sid.clone(), ExitCode::InvalidState));
    // Token endpoint failures.
    for (status, body, code) in [
        (400, json!({"error": "invalid_grant"}).to_string(), ExitCode::PayerTokenExchangeFailed),
        (401, json!({"error": "invalid_client"}).to_string(), ExitCode::EndpointConfigurationError),
        (503, "<html>down</html>".to_string(), ExitCode::PayerServerError),
        (500, json!({"error": "server_error"}).to_string(), ExitCode::PayerServerError),
    ] {
        payer.0.faults.lock().unwrap().token_error = Some((status, body));
        let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
        assert_eq!(link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap_err(), (sid.clone(), code), "{status}");
    }
    payer.0.faults.lock().unwrap().token_error = None;

    // ONE_TIME: expunge in 24 h.
    let (p, bind) = follow_authorize(&begin().await.unwrap()).await;
    let done = link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap();
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!(a.usage, Usage::OneTime);
    assert_eq!(a.expunge_at, Some(app.clock.now_secs() + link_sdk::domain::ONE_TIME_TTL_SECS));
}

#[tokio::test]
async fn multiple_without_refresh_token_is_downgraded_and_discovery_falls_back_to_metadata() {
    let payer = TestPayer::start(Faults { no_well_known: true, no_refresh_token: true, no_patient_in_token: true, ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    let h = crate::common::begin_handoff(&app.state, &l.session_id, &l.endpoint, Usage::Multiple, &["Coverage".into()]).await.unwrap();
    assert!(h.url.starts_with(&format!("{}/authorize?", payer.0.base)), "{}", h.url);
    let (p, bind) = follow_authorize(&h).await;
    let done = link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap();
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!((a.usage_requested, a.usage, a.downgraded), (Usage::Multiple, Usage::OneTime, true));
    assert!(a.expunge_at.is_some());
    assert_eq!(a.patient_id, None);
    // The sync finds the patient with `GET Patient`.
    drain(&app).await;
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!(a.patient_id.as_deref(), Some(payer.0.fx.patient_id.as_str()));
    assert_eq!(sync::status(&app.state.db, &a.id).await.unwrap().unwrap().status, "complete");

    // A non-refreshable endpoint downgrades too, even with a refresh token.
    payer.0.faults.lock().unwrap().no_refresh_token = false;
    let l2 = setup(&app, &payer, Usage::Multiple, &[], false).await;
    let h = crate::common::begin_handoff(&app.state, &l2.session_id, &l2.endpoint, Usage::Multiple, &[]).await.unwrap();
    let (p, bind) = follow_authorize(&h).await;
    let done = link_flow::payer_callback(&app.state, p, &[&bind]).await.unwrap();
    let a = authorizations::get(&app.state.db, &done.authorization_id).await.unwrap().unwrap();
    assert_eq!((a.usage, a.downgraded), (Usage::OneTime, true));

    // Discovery that finds nothing is an endpoint configuration error.
    let mut broken = l2.endpoint.clone();
    broken.fhir_base_url = format!("{}/nothing-here", payer.0.base);
    assert_eq!(
        crate::common::begin_handoff(&app.state, &l2.session_id, &broken, Usage::OneTime, &[]).await.unwrap_err(),
        ExitCode::EndpointConfigurationError
    );
}

// ---------------------------------------------------------------------------------------------------------
// Two instances on one PostgreSQL
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_instances_share_jobs_and_callbacks_on_postgres() {
    if std::env::var("TEST_DATABASE_URL").map(|v| v.is_empty()).unwrap_or(true) {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    }
    let key = SecretString::from(base64::engine::general_purpose::STANDARD.encode([3u8; 32]));
    let (mut s1, dir1, url) = test_settings().await;
    s1.sync_workers = 0;
    s1.sandbox = false;
    s1.encryption_key = Some(key.clone());
    let dir2 = tempfile::tempdir().unwrap();
    let mut s2 = link_sdk::server::settings::Settings::for_tests(dir2.path().to_path_buf());
    s2.database_url = Some(url.clone());
    s2.sync_workers = 0;
    s2.sandbox = false;
    s2.encryption_key = Some(key);
    let a = spawn_app_with(s1, dir1, url.clone()).await;
    let b = spawn_app_with(s2, dir2, url).await;
    b.clock.set(a.clock.now_secs());

    let payer = TestPayer::start(Faults::default()).await;
    let l = setup(&a, &payer, Usage::OneTime, &["Coverage"], true).await;
    // A link started on A completes its callback on B.
    let begun = crate::common::begin_handoff(&a.state, &l.session_id, &l.endpoint, Usage::OneTime, &["Coverage".into()]).await.unwrap();
    let (p, bind) = follow_authorize(&begun).await;
    let done = link_flow::payer_callback(&b.state, p, &[&bind]).await.unwrap();
    assert_eq!(done.link_session_id, l.session_id);

    // Several jobs, both instances claiming at once: each job runs exactly once.
    let mut auths = vec![done.authorization_id.clone()];
    for _ in 0..5 {
        auths.push(authorize_directly(&a, &payer, &l, Usage::OneTime, &["Coverage"]).await);
    }
    let (sa, sb) = (a.state.clone(), b.state.clone());
    let ta = tokio::spawn(async move {
        let mut n = 0;
        while sync::run_once(&sa).await {
            n += 1;
        }
        n
    });
    let tb = tokio::spawn(async move {
        let mut n = 0;
        while sync::run_once(&sb).await {
            n += 1;
        }
        n
    });
    let (na, nb) = (ta.await.unwrap(), tb.await.unwrap());
    assert_eq!(na + nb, auths.len(), "each job claimed exactly once ({na} + {nb})");
    for id in &auths {
        assert_eq!(sync::status(&a.state.db, id).await.unwrap().unwrap().status, "complete");
    }
    let patient_reads = payer.hits().iter().filter(|h| h.starts_with("/fhir/Patient/")).count();
    assert_eq!(patient_reads, auths.len());
}

// ---------------------------------------------------------------------------------------------------------
// Durability, workers, encryption at rest
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_job_whose_instance_died_is_taken_over_after_its_lease() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    // Claimed by an instance that then vanished.
    let claimed = sync::job::claim(&app.state).await.unwrap().expect("claimable");
    assert_eq!(claimed.authorization_id, auth);
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "syncing");
    assert!(!sync::run_once(&app.state).await, "a leased job is not run twice");
    app.clock.advance(sync::job::LEASE_SECS + 1);
    assert!(sync::run_once(&app.state).await);
    assert_eq!(sync::status(&app.state.db, &auth).await.unwrap().unwrap().status, "complete");
}

#[tokio::test]
async fn background_workers_run_queued_jobs_and_stop_on_shutdown() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|s| s.sync_workers = 2).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let a1 = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    let a2 = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s1 = sync::status(&app.state.db, &a1).await.unwrap().unwrap().status;
        let s2 = sync::status(&app.state.db, &a2).await.unwrap().unwrap().status;
        if s1 == "complete" && s2 == "complete" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "workers did not run the jobs ({s1}, {s2})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.state.shutdown.cancel();
}

#[tokio::test]
async fn resources_can_be_encrypted_at_rest() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|s| s.encrypt_resources = true).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    let rows = sqlx::query("SELECT resource_type, id, body, body_enc, body_key_id FROM resources WHERE authorization_id = $1")
        .bind(&auth)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        let (ty, id): (String, String) = (r.try_get("resource_type").unwrap(), r.try_get("id").unwrap());
        let body: Option<String> = r.try_get("body").unwrap();
        assert!(body.is_none());
        let text = link_sdk::server::store::resources::body_text(
            &app.state.cipher,
            &auth,
            &ty,
            &id,
            None,
            r.try_get("body_enc").unwrap(),
            r.try_get("body_key_id").unwrap(),
        )
        .unwrap();
        assert!(payer.0.fx.all_text.contains(&text));
    }
}

#[tokio::test]
async fn finished_syncs_queue_webhooks() {
    let payer = TestPayer::start(Faults { always_401: false, ..Faults::default() }).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::OneTime, &["Coverage"], true).await;
    sqlx::query("UPDATE apps SET webhook_url = 'http://127.0.0.1:9/hook' WHERE id = $1")
        .bind(&l.app_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let ok = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    payer.0.faults.lock().unwrap().always_401 = true;
    let bad = authorize_directly(&app, &payer, &l, Usage::OneTime, &["Coverage"]).await;
    drain(&app).await;
    let rows = sqlx::query("SELECT event, payload FROM webhook_deliveries WHERE app_id = $1")
        .bind(&l.app_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let events: Vec<(String, Value)> = rows
        .iter()
        .map(|r| (r.try_get("event").unwrap(), serde_json::from_str(&r.try_get::<String, _>("payload").unwrap()).unwrap()))
        .collect();
    let completed = events.iter().find(|(e, _)| e == "sync_completed").expect("sync_completed queued");
    assert_eq!(completed.1["data"]["authorization_id"], json!(ok));
    assert_eq!(completed.1["data"]["counts"]["Coverage"], json!(4));
    let failed = events.iter().find(|(e, _)| e == "sync_failed").expect("sync_failed queued");
    assert_eq!(failed.1["data"]["authorization_id"], json!(bad));
    assert_eq!(failed.1["data"]["exit_code"], json!("SYNC_FAILED"));
    // Both carry the authorization's lifetime, as introspect gives it.
    let now = app.clock.now_secs();
    assert_eq!(completed.1["data"]["last_synced_at"], json!(now));
    assert_eq!(completed.1["data"]["state"], json!("AUTHORIZED"));
    assert!(completed.1["data"]["expires_at"].is_i64(), "ONE_TIME: the expunge time");
    assert!(completed.1["data"].get("refresh_expires_at").is_some());
    assert_eq!(failed.1["data"]["last_synced_at"], Value::Null, "that authorization never synced");
}

/// The `sync_completed` payload of sync job `job`.
async fn completed_payload(app: &TestApp, app_id: &str, job: &str) -> Value {
    let rows = sqlx::query("SELECT payload FROM webhook_deliveries WHERE app_id = $1 AND event = 'sync_completed'")
        .bind(app_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str::<Value>(&r.try_get::<String, _>("payload").unwrap()).unwrap())
        .find(|p| p["data"]["job_id"] == json!(job))
        .unwrap_or_else(|| panic!("no sync_completed for {job}"))["data"]
        .clone()
}

#[tokio::test]
async fn resyncs_count_added_updated_unchanged_and_removed_resources() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    sqlx::query("UPDATE apps SET webhook_url = 'http://127.0.0.1:9/hook' WHERE id = $1")
        .bind(&l.app_id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    drain(&app).await;
    let changes = |d: &Value| [&d["added"], &d["updated"], &d["unchanged"], &d["removed"], &d["skipped"]].map(|v| v.as_u64().unwrap());
    let history = sync::history(&app.state.db, &auth).await.unwrap();
    let first = completed_payload(&app, &l.app_id, &history[0].job_id).await;
    let stored = first["added"].as_u64().unwrap();
    assert_eq!(stored, 5, "the Patient and 4 Coverage: {first}");
    assert_eq!(changes(&first), [stored, 0, 0, 0, 0], "{first}");

    // Nothing changed at the payer: every resource comes back unchanged, none added, updated or removed.
    app.clock.advance(1);
    let job = sync::request_resync(&app.state.db, &auth, app.clock.now_secs()).await.unwrap();
    drain(&app).await;
    let same = completed_payload(&app, &l.app_id, &job).await;
    assert_eq!(changes(&same), [0, 0, stored, 0, 0], "{same}");
    assert_eq!(same["status"], "complete");

    // The payer deleted one Coverage and changed another: one removed (gone from the FHIR data), one updated.
    let ids: Vec<String> =
        payer.0.fx.coverages.iter().map(|c| serde_json::from_str::<Value>(c).unwrap()["id"].as_str().unwrap().to_string()).collect();
    {
        let mut f = payer.0.faults.lock().unwrap();
        f.coverage_deleted = vec![ids[0].clone()];
        f.coverage_changed = vec![ids[1].clone()];
    }
    app.clock.advance(1);
    let job = sync::request_resync(&app.state.db, &auth, app.clock.now_secs()).await.unwrap();
    drain(&app).await;
    let changed = completed_payload(&app, &l.app_id, &job).await;
    assert_eq!(changes(&changed), [0, 1, stored - 2, 1, 0], "{changed}");
    let coverage_ids = |app: &TestApp, auth: String| {
        let db = app.state.db.clone();
        async move {
            let rows = sqlx::query("SELECT id FROM resources WHERE authorization_id = $1 AND resource_type = 'Coverage' ORDER BY id")
                .bind(auth)
                .fetch_all(&db.pool)
                .await
                .unwrap();
            rows.iter().map(|r| r.try_get::<String, _>("id").unwrap()).collect::<Vec<_>>()
        }
    };
    let left = coverage_ids(&app, auth.clone()).await;
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(!left.contains(&ids[0]));
    // The history carries the same counts.
    let runs = sync::history(&app.state.db, &auth).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!((runs[0].changes.added, runs[0].changes.updated, runs[0].changes.removed), (0, 1, 1));

    // A type skipped (403) removes nothing, whatever it returned before.
    payer.0.faults.lock().unwrap().forbidden = vec!["Coverage".into()];
    app.clock.advance(1);
    let job = sync::request_resync(&app.state.db, &auth, app.clock.now_secs()).await.unwrap();
    drain(&app).await;
    let skipped = completed_payload(&app, &l.app_id, &job).await;
    assert_eq!((skipped["removed"].as_u64(), skipped["skipped"].as_u64(), skipped["status"].as_str()), (Some(0), Some(1), Some("partial")), "{skipped}");
    assert_eq!(coverage_ids(&app, auth.clone()).await, left);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_authorization_call_the_payer_once() {
    let payer = TestPayer::start(Faults::default()).await;
    let app = app_with(|_| {}).await;
    let l = setup(&app, &payer, Usage::Multiple, &["Coverage"], true).await;
    let auth = authorize_directly(&app, &payer, &l, Usage::Multiple, &["Coverage"]).await;
    // Both callers found the same token stale (say, both got a 401 with it). The second may start before,
    // during or after the first's refresh (tokio decides); either way the payer is called once.
    let seen = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &auth).await.unwrap().unwrap().access_token.unwrap();
    let (s1, s2, a1, a2, k1, k2) =
        (app.state.clone(), app.state.clone(), auth.clone(), auth.clone(), seen.clone(), seen.clone());
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { refresh::refresh(&s1, &a1, &k1).await }),
        tokio::spawn(async move { refresh::refresh(&s2, &a2, &k2).await }),
    );
    let (t1, t2) = (r1.unwrap().unwrap().access_token, r2.unwrap().unwrap().access_token);
    assert_eq!(t1.expose_secret(), t2.expose_secret(), "the waiter uses the token the winner stored");
    assert_ne!(t1.expose_secret(), seen.expose_secret());
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 1);
    // A caller that still holds the old token after the refresh finished gets the new one, without a call.
    let late = refresh::refresh(&app.state, &auth, &seen).await.unwrap().access_token;
    assert_eq!(late.expose_secret(), t1.expose_secret());
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 1);
    // The lease is released afterwards: a refresh of the current token works.
    refresh::refresh(&app.state, &auth, &t1).await.unwrap();
    assert_eq!(payer.0.tokens.lock().unwrap().refreshes, 2);
}
