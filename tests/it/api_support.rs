//! Test data setup for the integrator API tests (the link_api and fhir_api modules): apps, endpoints,
//! authorizations and synced resources created through the product's own public functions, with the
//! payer JSON taken from the Blue Button 2.0 fixtures (`LINK_FIXTURES_DIR`, default `../shared/fixtures`).
#![allow(dead_code)]

use std::path::PathBuf;

use link_sdk::{
    domain::{Mode, Usage},
    server::{services::sync, surfaces::sandbox},
    server::store::{
        apps::{self, NewApp},
        authorizations::{self, NewAuthorization, PayerTokens},
        endpoints::{self, Endpoint},
        resources,
        tokens::{self, TokenKind},
    },
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{json, Value};

use crate::common::{spawn_app_with, test_settings, TestApp};

/// The payer's patient id in the fixtures (`Patient.id` of `patient_read_v2.json`, read from the fixtures folder
/// so that no fixture data is copied into the repository).
pub fn patient() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let path = fixtures_dir().join("bluebutton/patient_read_v2.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("patient fixture")).unwrap();
        v["id"].as_str().expect("Patient.id").to_string()
    })
}
/// Redirect URI registered for the test app.
pub const REDIRECT_URI: &str = "https://app.example/callback";

/// A server with sync workers off (tests drive jobs), the sandbox mounted.
pub async fn server() -> TestApp {
    let (mut settings, dir, url) = test_settings().await;
    settings.sync_workers = 0;
    spawn_app_with(settings, dir, url).await
}

/// An app and its keys.
pub struct TestKeys {
    pub app_id: String,
    pub pk: String,
    pub sk: String,
    pub live_pk: String,
    pub live_sk: String,
}

/// Creates an app with [`REDIRECT_URI`].
pub async fn create_app(app: &TestApp, name: &str) -> TestKeys {
    let (a, keys) = apps::create(
        &app.state.db,
        app.clock_now(),
        NewApp {
            name: name.into(),
            redirect_uris: vec![REDIRECT_URI.into()],
            ..Default::default()
        },
    )
    .await
    .expect("create app");
    TestKeys {
        app_id: a.id,
        pk: keys.test_publishable,
        sk: keys.test_secret.expose_secret().to_string(),
        live_pk: keys.live_publishable,
        live_sk: keys.live_secret.expose_secret().to_string(),
    }
}

/// A test-mode endpoint (`refreshable` as given).
pub async fn create_endpoint(app: &TestApp, refreshable: bool) -> Endpoint {
    let e = Endpoint {
        id: uuid::Uuid::new_v4().to_string(),
        name: "Blue Button fixtures".into(),
        aliases: vec!["Medicare".into()],
        logo_url: None,
        mode: Mode::Test,
        fhir_base_url: "https://payer.example/fhir".into(),
        authorize_url: Some("https://payer.example/authorize".into()),
        token_url: Some("https://payer.example/token".into()),
        client_id: "link-sdk".into(),
        client_secret_ref: None,
        scopes: None,
        refreshable,
        resource_types: vec!["Coverage".into(), "ExplanationOfBenefit".into(), "Patient".into()],
    };
    endpoints::upsert(&app.state.db, app.clock_now(), &e).await.expect("upsert endpoint");
    e
}

/// An authorization of `external_id` for `patient_id`, with payer tokens.
pub async fn create_authorization(
    app: &TestApp,
    keys: &TestKeys,
    endpoint: &Endpoint,
    external_id: &str,
    patient_id: &str,
    usage: Usage,
) -> String {
    authorizations::create(
        &mut app.state.db.pool.acquire().await.unwrap(),
        &app.state.cipher,
        app.clock_now(),
        NewAuthorization {
            app_id: keys.app_id.clone(),
            mode: Mode::Test,
            external_id: external_id.into(),
            endpoint_id: endpoint.id.clone(),
            link_session_id: None,
            patient_id: Some(patient_id.into()),
            usage_requested: usage,
            usage,
            downgraded: false,
            fhir_base: endpoint.fhir_base_url.clone(),
            token_url: endpoint.token_url.clone().unwrap_or_default(),
            resource_types: vec![],
            expunge_at: None,
            next_sync_at: None,
        },
        &PayerTokens {
            access_token: SecretString::from("payer-access".to_string()),
            refresh_token: Some(SecretString::from("payer-refresh".to_string())),
            expires_at: Some(app.clock_now() + 3600),
            refresh_expires_at: None,
            scope: Some("patient/*.read".into()),
        },
    )
    .await
    .expect("create authorization")
}

/// The folder holding the fixture sets (`bluebutton/…`): `LINK_FIXTURES_DIR`, or `../shared/fixtures` beside the
/// checkout (`.ci/test` checks it is there before any test runs).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var("LINK_FIXTURES_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    }
}

fn read_fixture(name: &str) -> Value {
    let p = fixtures_dir().join("bluebutton").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The `id` of the resource in fixture file `name` (a read), or of the `n`-th entry of a search Bundle's fixture:
/// tests name fixture resources through this, never by copying their ids.
pub fn fixture_id(name: &str, entry: Option<usize>) -> String {
    let v = read_fixture(name);
    let r = match entry {
        Some(n) => &v["entry"][n]["resource"],
        None => &v,
    };
    r["id"].as_str().unwrap_or_else(|| panic!("{name}: no id")).to_string()
}

/// The payer resources of the fixture member: Patient, 4 Coverage, 13 ExplanationOfBenefit (18 in all).
pub fn fixture_resources() -> Vec<Value> {
    let mut out = vec![read_fixture("patient_read_v2.json")];
    for bundle in ["coverage_search_v2.json", "eob_search_v2.json"] {
        for e in read_fixture(bundle)["entry"].as_array().unwrap() {
            out.push(e["resource"].clone());
        }
    }
    for f in ["eob_read_carrier_v2.json", "eob_read_in_pt_v2.json", "eob_read_out_pt_v2.json"] {
        out.push(read_fixture(f));
    }
    out
}

/// Stores resources for an authorization through the sync's own storage function.
pub async fn store_resources(app: &TestApp, authorization_id: &str, resources: &[Value]) {
    let items: Vec<resources::Indexed> = resources
        .iter()
        .map(|v| resources::index(&serde_json::to_string(v).unwrap(), v).expect("indexable resource"))
        .collect();
    resources::upsert(app.state.resource_store(), authorization_id, app.clock_now(), &items, None).await.expect("store resources");
}

/// Mints a `public_token` for an authorization, as the Link flow does at the payer callback.
pub async fn public_token(app: &TestApp, keys: &TestKeys, authorization_id: &str) -> String {
    tokens::issue(&app.state.db.pool, app.clock_now(), TokenKind::Public, &keys.app_id, Some(authorization_id), Some(1800), json!({}))
        .await
        .expect("issue public token")
}

/// Everything a typical test needs: an app, an endpoint, one linked user with the fixture data, and a
/// fresh `public_token`.
pub struct Linked {
    pub keys: TestKeys,
    pub endpoint: Endpoint,
    pub authorization_id: String,
    pub public_token: String,
}

/// Sets up [`Linked`] for `usage` on a refreshable (or not) endpoint.
pub async fn linked(app: &TestApp, usage: Usage, refreshable: bool) -> Linked {
    let keys = create_app(app, "Test app").await;
    let endpoint = create_endpoint(app, refreshable).await;
    let authorization_id = create_authorization(app, &keys, &endpoint, "user-1", patient(), usage).await;
    store_resources(app, &authorization_id, &fixture_resources()).await;
    let public_token = public_token(app, &keys, &authorization_id).await;
    Linked { keys, endpoint, authorization_id, public_token }
}

/// Links a sandbox `member` for `external_id` through the test-mode shortcut (`POST /link/test/public_token`,
/// MULTIPLE) and runs the sync queue until it is empty: the payer OAuth and the sync over HTTP. Returns the
/// `public_token` and the authorization id.
pub async fn link_sandbox_member(app: &TestApp, keys: &TestKeys, external_id: &str, member: &str) -> (String, String) {
    let r = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .json(&json!({"secret_key": keys.sk, "external_id": external_id, "endpoint_id": sandbox::REFRESHABLE_ENDPOINT_ID,
                      "member": member, "usage": "MULTIPLE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    while sync::run_once(&app.state).await {}
    (v["public_token"].as_str().unwrap().to_string(), v["authorization_id"].as_str().unwrap().to_string())
}

/// `POST /link/exchange` and the JSON answer (panics unless 200).
pub async fn exchange(app: &TestApp, public_token: &str, sk: &str) -> Value {
    let r = app
        .client
        .post(format!("{}/link/exchange", app.base_url))
        .json(&json!({"public_token": public_token, "secret_key": sk}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "exchange failed");
    r.json().await.unwrap()
}

/// `GET {path}` with a Bearer token.
pub async fn get_bearer(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client.get(format!("{}{}", app.base_url, path)).bearer_auth(token).send().await.unwrap()
}

/// A client-credentials application token.
pub async fn app_token(app: &TestApp, keys: &TestKeys) -> String {
    let r = app
        .client
        .post(format!("{}/link/token", app.base_url))
        .basic_auth(&keys.pk, Some(&keys.sk))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Extension: the server clock's now.
pub trait ClockNow {
    fn clock_now(&self) -> i64;
}

impl ClockNow for TestApp {
    fn clock_now(&self) -> i64 {
        use link_sdk::server::platform::clock::Clock as _;
        self.clock.now()
    }
}
