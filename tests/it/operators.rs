//! Operators: apps and keys, the endpoint directory, the management CLI, local bootstrap and the demo app.

use std::process::Command;

use crate::common::spawn_app;
use link_sdk::domain::Mode;
use link_sdk::server::store::{apps::{self, AppUpdate, NewApp}, endpoints::{self, Endpoint}};
use link_sdk::server::platform::clock::Clock as _;
use secrecy::ExposeSecret as _;
use sqlx::Row as _;

fn new_app(name: &str) -> NewApp {
    NewApp {
        name: name.into(),
        allowed_origins: vec!["https://app.example".into()],
        redirect_uris: vec!["https://app.example/link/done".into()],
        webhook_url: Some("https://app.example/hooks".into()),
        logo_url: Some("https://app.example/logo.png".into()),
        brand_color: Some("#0b5fff".into()),
    }
}

fn endpoint(id: &str, name: &str, aliases: &[&str], mode: Mode) -> Endpoint {
    Endpoint {
        id: id.into(),
        name: name.into(),
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        logo_url: None,
        mode,
        fhir_base_url: "https://fhir.payer.example/r4".into(),
        authorize_url: None,
        token_url: None,
        client_id: "client-1".into(),
        client_secret_ref: Some("LINK_PAYER_SECRET_OPERATORS".into()),
        scopes: None,
        refreshable: false,
        resource_types: vec!["Coverage".into()],
    }
}

#[tokio::test]
async fn app_keys_are_typed_and_found_and_secrets_are_stored_only_hashed() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let now = app.clock.now();
    let (created, keys) = apps::create(db, now, new_app("Acme Health")).await.unwrap();
    assert!(keys.test_publishable.starts_with("pk_test_"));
    assert!(keys.live_publishable.starts_with("pk_live_"));
    assert!(keys.test_secret.expose_secret().starts_with("sk_test_"));
    assert!(keys.live_secret.expose_secret().starts_with("sk_live_"));
    assert_eq!(created.brand_color.as_deref(), Some("#0b5fff"));

    let (found, mode) = apps::by_publishable_key(db, &keys.test_publishable).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), mode), (created.id.as_str(), Mode::Test));
    assert_eq!(found, created);
    let (_, mode) = apps::by_publishable_key(db, &keys.live_publishable).await.unwrap().unwrap();
    assert_eq!(mode, Mode::Live);
    assert!(apps::by_publishable_key(db, "pk_test_nope").await.unwrap().is_none());

    let (found, mode) = apps::by_secret_key(db, now, keys.live_secret.expose_secret()).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), mode), (created.id.as_str(), Mode::Live));
    assert!(apps::by_secret_key(db, now, "sk_test_wrong").await.unwrap().is_none());
    // A publishable key is not a secret key.
    assert!(apps::by_secret_key(db, now, &keys.test_publishable).await.unwrap().is_none());
    assert_eq!(apps::get(db, &created.id).await.unwrap().unwrap(), created);

    // No column of any row holds a plain secret key.
    for table in ["api_keys", "apps", "audit_events"] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(&db.pool).await.unwrap();
        for row in rows {
            for i in 0..row.len() {
                if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                    assert!(!v.contains(keys.test_secret.expose_secret()), "plain secret in {table}");
                    assert!(!v.contains(keys.live_secret.expose_secret()), "plain secret in {table}");
                }
            }
        }
    }
    let hashes: Vec<String> = sqlx::query("SELECT secret_hash FROM api_keys WHERE app_id = $1")
        .bind(&created.id)
        .fetch_all(&db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert_eq!(hashes.len(), 2);
    assert!(hashes.iter().all(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())));
}

#[tokio::test]
async fn rotated_secret_keeps_working_for_the_grace_period_only() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let (created, keys) = apps::create(db, app.clock.now(), new_app("Rotator")).await.unwrap();
    let old = keys.test_secret.expose_secret().to_string();

    let new = apps::rotate_secret(db, app.clock.now(), &created.id, Mode::Test, 600).await.unwrap();
    assert_ne!(new.expose_secret(), old);
    assert!(apps::by_secret_key(db, app.clock.now(), new.expose_secret()).await.unwrap().is_some());
    assert!(apps::by_secret_key(db, app.clock.now(), &old).await.unwrap().is_some(), "grace period");

    app.clock.advance(599);
    assert!(apps::by_secret_key(db, app.clock.now(), &old).await.unwrap().is_some());
    app.clock.advance(1);
    assert!(apps::by_secret_key(db, app.clock.now(), &old).await.unwrap().is_none(), "grace over");
    assert!(apps::by_secret_key(db, app.clock.now(), new.expose_secret()).await.unwrap().is_some());
    // The live key was untouched.
    assert!(apps::by_secret_key(db, app.clock.now(), keys.live_secret.expose_secret()).await.unwrap().is_some());

    // Rotation without grace revokes the previous secret at once.
    let newer = apps::rotate_secret(db, app.clock.now(), &created.id, Mode::Test, 0).await.unwrap();
    assert!(apps::by_secret_key(db, app.clock.now(), new.expose_secret()).await.unwrap().is_none());
    assert!(apps::by_secret_key(db, app.clock.now(), newer.expose_secret()).await.unwrap().is_some());
}

#[tokio::test]
async fn app_update_changes_only_what_is_given() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let (created, _) = apps::create(db, app.clock.now(), new_app("Before")).await.unwrap();
    let updated = apps::update(
        db,
        app.clock.now(),
        &created.id,
        AppUpdate {
            name: Some("After".into()),
            brand_color: Some(String::new()),
            allowed_origins: Some(vec!["https://a.example".into(), "https://b.example/".into()]),
            require_signature: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "After");
    assert_eq!(updated.brand_color, None);
    assert_eq!(updated.allowed_origins, vec!["https://a.example", "https://b.example"]);
    assert_eq!(updated.redirect_uris, created.redirect_uris);
    assert_eq!(updated.logo_url, created.logo_url);
    assert!(updated.require_signature);
    assert_eq!(apps::get(db, &created.id).await.unwrap().unwrap(), updated);
    assert!(apps::update(db, 0, &created.id, AppUpdate { brand_color: Some("red".into()), ..Default::default() })
        .await
        .is_err());
}

#[tokio::test]
async fn directory_upserts_in_place_and_searches_names_and_aliases_by_mode() {
    let app = spawn_app().await;
    let db = &app.state.db;
    let now = app.clock.now();
    let id = "0b7e2c1a-5d3f-4e8a-9b6c-1d2e3f4a5b60";
    let mut e = endpoint(id, "Acme Mutual", &["AM Health"], Mode::Live);
    endpoints::upsert(db, now, &e).await.unwrap();
    e.name = "Acme Mutual Insurance".into();
    e.aliases = vec!["Acme 100%".into(), "AMI".into()];
    e.refreshable = true;
    endpoints::upsert(db, now + 1, &e).await.unwrap();
    assert_eq!(endpoints::get(db, id).await.unwrap().unwrap(), e);
    let live: Vec<_> = endpoints::list(db).await.unwrap().into_iter().filter(|x| x.mode == Mode::Live).collect();
    assert_eq!(live.len(), 1, "upsert updated in place");

    let other = endpoint("0b7e2c1a-5d3f-4e8a-9b6c-1d2e3f4a5b61", "Zenith Care", &[], Mode::Live);
    endpoints::upsert(db, now, &other).await.unwrap();
    let test_one = endpoint("0b7e2c1a-5d3f-4e8a-9b6c-1d2e3f4a5b62", "Acme Test Plan", &[], Mode::Test);
    endpoints::upsert(db, now, &test_one).await.unwrap();

    let names = |v: Vec<Endpoint>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
    assert_eq!(names(endpoints::search(db, Mode::Live, "ami", 10).await.unwrap()), vec!["Acme Mutual Insurance"]);
    assert_eq!(names(endpoints::search(db, Mode::Live, "ACME", 10).await.unwrap()), vec!["Acme Mutual Insurance"]);
    assert_eq!(names(endpoints::search(db, Mode::Live, "", 10).await.unwrap()), vec!["Acme Mutual Insurance", "Zenith Care"]);
    assert_eq!(names(endpoints::search(db, Mode::Live, "", 1).await.unwrap()).len(), 1);
    assert!(endpoints::search(db, Mode::Live, "test plan", 10).await.unwrap().is_empty());
    assert!(names(endpoints::search(db, Mode::Test, "acme", 10).await.unwrap()).contains(&"Acme Test Plan".to_string()));
    // LIKE wildcards are literal.
    assert_eq!(names(endpoints::search(db, Mode::Live, "100%", 10).await.unwrap()), vec!["Acme Mutual Insurance"]);
    assert!(endpoints::search(db, Mode::Live, "_", 10).await.unwrap().is_empty());

    std::env::set_var("LINK_PAYER_SECRET_OPERATORS_TEST", "s3cret");
    e.client_secret_ref = Some("LINK_PAYER_SECRET_OPERATORS_TEST".into());
    assert_eq!(e.client_secret().unwrap().expose_secret(), "s3cret");
    e.client_secret_ref = Some("LINK_PAYER_SECRET_OPERATORS_UNSET".into());
    assert!(e.client_secret().is_none());
}

/// Runs the built binary with a temp data folder (and the test database) and returns stdout.
fn cli(dir: &std::path::Path, database_url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(database_url)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run link-sdk");
    assert!(
        out.status.success(),
        "link-sdk {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn cli_creates_lists_rotates_apps_and_imports_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::common::fresh_database_url(&dir).await;
    let d = dir.path();

    let text = cli(d, &url, &["apps", "create", "--name", "CLI app", "--allowed-origin", "http://localhost:5173",
        "--redirect-uri", "myapp://link", "--brand-color", "#112233"]);
    assert!(text.contains("pk_test_") && text.contains("sk_test_") && text.contains("pk_live_") && text.contains("sk_live_"));
    assert!(text.contains("cannot be shown again"));

    let created: serde_json::Value =
        serde_json::from_str(&cli(d, &url, &["apps", "create", "--name", "JSON app", "--json"])).unwrap();
    let app_id = created["id"].as_str().unwrap().to_string();
    let sk_test = created["secret_keys"]["test"].as_str().unwrap().to_string();
    assert!(sk_test.starts_with("sk_test_"));

    let listed = cli(d, &url, &["apps", "list", "--json"]);
    assert!(!listed.contains("sk_test_") && !listed.contains("sk_live_"), "list never shows secrets");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let by_name = |n: &str| listed.as_array().unwrap().iter().find(|a| a["name"] == n).cloned().unwrap();
    assert_eq!(by_name("CLI app")["brand_color"], "#112233");
    assert_eq!(by_name("JSON app")["keys"].as_array().unwrap().len(), 2);
    assert!(cli(d, &url, &["apps", "list"]).contains("JSON app"));

    let rotated: serde_json::Value = serde_json::from_str(&cli(
        d,
        &url,
        &["apps", "rotate-secret", "--app", &app_id, "--mode", "test", "--grace-secs", "3600", "--json"],
    ))
    .unwrap();
    let new_sk = rotated["secret_key"].as_str().unwrap();
    assert!(new_sk.starts_with("sk_test_") && new_sk != sk_test);

    // The webhook signing secret: created with the app when it has a webhook URL, stable, rotatable.
    let hooked: serde_json::Value = serde_json::from_str(&cli(
        d,
        &url,
        &["apps", "create", "--name", "Hooked", "--webhook-url", "https://hooks.example/link", "--json"],
    ))
    .unwrap();
    let whsec = hooked["webhook_secret"].as_str().unwrap().to_string();
    assert!(whsec.starts_with("whsec_"));
    let hooked_id = hooked["id"].as_str().unwrap();
    assert!(cli(d, &url, &["apps", "webhook-secret", "--app", hooked_id]).contains(&whsec));
    let rotated_hook = cli(d, &url, &["apps", "webhook-secret", "--app", hooked_id, "--rotate"]);
    assert!(rotated_hook.contains("whsec_") && !rotated_hook.contains(&whsec));

    let updated: serde_json::Value = serde_json::from_str(&cli(
        d,
        &url,
        &["apps", "update", "--app", &app_id, "--name", "Renamed", "--allowed-origin", "https://x.example", "--json"],
    ))
    .unwrap();
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["allowed_origins"], serde_json::json!(["https://x.example"]));

    // Endpoint import: twice updates in place.
    let file = d.join("endpoints.json");
    let write = |name: &str| {
        std::fs::write(
            &file,
            serde_json::json!([{
                "id": "3c9d7e1f-2a4b-4c6d-8e0f-1a2b3c4d5e6f", "name": name, "aliases": ["XP"], "mode": "live",
                "fhir_base_url": "https://fhir.x.example/r4", "client_id": "cid", "client_secret_ref": "LINK_PAYER_SECRET_X",
                "refreshable": true, "resource_types": ["Coverage", "ExplanationOfBenefit"]
            }])
            .to_string(),
        )
        .unwrap()
    };
    write("X Payer");
    assert!(cli(d, &url, &["endpoints", "import", file.to_str().unwrap()]).contains("1 created, 0 updated"));
    write("X Payer Renamed");
    assert!(cli(d, &url, &["endpoints", "import", file.to_str().unwrap()]).contains("0 created, 1 updated"));
    let listed: Vec<Endpoint> =
        serde_json::from_str(&cli(d, &url, &["endpoints", "list", "--mode", "live", "--json"])).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "X Payer Renamed");
    assert_eq!(listed[0].client_secret_ref.as_deref(), Some("LINK_PAYER_SECRET_X"));
    assert!(cli(d, &url, &["endpoints", "list"]).contains("X Payer Renamed"));

    // The example file of the docs imports.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/endpoints.example.json");
    assert!(cli(d, &url, &["endpoints", "import", example]).contains("2 created"));

    // The audit trail records the operator's actions, never a secret.
    let audit = cli(d, &url, &["audit", "export"]);
    assert!(audit.lines().count() >= 5, "{audit}");
    assert!(audit.contains("app.secret_rotated"));
    assert!(!audit.contains("sk_test_"));
}

#[tokio::test]
async fn local_bootstrap_creates_one_demo_app_and_follows_the_public_url() {
    use link_sdk::server::startup::Application;
    let app = spawn_app().await;
    let db = &app.state.db;

    let demos: Vec<_> =
        apps::list(db).await.unwrap().into_iter().filter(|a| a.name == link_sdk::server::surfaces::demo::DEMO_APP_NAME).collect();
    assert_eq!(demos.len(), 1);
    assert_eq!(demos[0].allowed_origins, vec![app.base_url.clone()]);
    assert_eq!(demos[0].redirect_uris, vec![format!("{}/demo/callback", app.base_url)]);
    let file = app.dir.path().join(link_sdk::server::surfaces::demo::DEMO_KEYS_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let keys: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let sk = keys["secret_key"].as_str().unwrap();
    let (found, mode) = apps::by_secret_key(db, app.clock.now(), sk).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), mode), (demos[0].id.as_str(), Mode::Test));

    // A second start on the same data (another port) keeps the one demo app and its keys, with new URLs.
    let mut settings = (*app.state.settings).clone();
    settings.addr = "127.0.0.1:0".parse().unwrap();
    let second = Application::build(settings, app.state.clock.clone()).await.unwrap();
    let banner = second.banner.join("\n");
    assert!(banner.contains(keys["publishable_key"].as_str().unwrap()));
    // The secret key is printed only to a terminal (never into captured output such as a CI log).
    assert_eq!(banner.contains(sk), std::io::IsTerminal::is_terminal(&std::io::stdout()), "{banner}");
    assert!(banner.contains(&file.display().to_string()), "the banner says where the keys are");
    let second_url = second.base_url();
    assert_ne!(second_url, app.base_url);
    let demos: Vec<_> =
        apps::list(db).await.unwrap().into_iter().filter(|a| a.name == link_sdk::server::surfaces::demo::DEMO_APP_NAME).collect();
    assert_eq!(demos.len(), 1);
    assert_eq!(demos[0].allowed_origins, vec![second_url.clone()]);
    assert_eq!(demos[0].redirect_uris, vec![format!("{second_url}/demo/callback")]);
}

#[tokio::test]
async fn demo_page_renders_with_its_script_and_the_link_button() {
    let app = spawn_app().await;
    let res = app.get("/demo").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let cookie = res.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let html = res.text().await.unwrap();
    assert!(html.contains("Connect your health data"));
    assert!(html.contains(r#"src="/link.js""#));
    assert!(html.contains(r#"src="/demo/demo.js""#));
    assert!(html.contains("pk_test_"));
    assert!(!html.contains("sk_test_"), "the secret key stays on the demo's backend");

    let js = app.get("/demo/demo.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let js = js.text().await.unwrap();
    assert!(js.contains("FlexpaLink.create") && js.contains("/demo/api/exchange"));
    assert_eq!(app.get("/demo/demo.css").await.status(), 200);

    // The demo's backend refuses a bogus public_token cleanly.
    let res = app
        .client
        .post(format!("{}/demo/api/exchange", app.base_url))
        .header("cookie", cookie.split(';').next().unwrap())
        .json(&serde_json::json!({"public_token": "public-token-bogus"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error() || res.status().is_server_error());
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"].is_string());
    // Without a demo session there is nothing to show.
    let res = app.get("/demo/api/records").await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["links"], serde_json::json!([]));
}

#[tokio::test]
async fn serves_https_with_the_given_certificate() {
    let (mut settings, dir, url) = crate::common::test_settings().await;
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("openssl is not available: skipping the TLS test");
        return;
    }
    settings.tls_cert = Some(cert);
    settings.tls_key = Some(key);
    settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let app = crate::common::spawn_app_with(settings, dir, url).await;
    assert!(app.base_url.starts_with("https://127.0.0.1:"), "{}", app.base_url);
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let res = client
        .get(format!("{}/healthz", app.base_url))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Served over TLS directly: browsers are told never to come back over plain HTTP (RFC 6797).
    assert_eq!(res.headers()["strict-transport-security"], "max-age=31536000");
    // Plain HTTP on the TLS port is refused.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/healthz", app.port)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // A key that does not match the certificate fails at start, not at the first request.
    let (mut settings, dir, url) = crate::common::test_settings().await;
    let other = dir.path().join("other.pem");
    Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&other).output().unwrap();
    settings.tls_cert = Some(app.dir.path().join("cert.pem"));
    settings.tls_key = Some(other);
    let _ = url;
    let err = link_sdk::server::startup::Application::build(settings, app.state.clock.clone()).await.err().unwrap();
    assert!(format!("{err:#}").contains("TLS"), "{err:#}");
}

/// The cookie a response sets, as a `Cookie` request header value.
fn set_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers().get("set-cookie").map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
}

/// The demo cookie `demo_session=<base64url sealed>.<key id>` holds no access token (`at_…`) in clear.
///
/// The check is on the decoded bytes: "at_" is three base64url characters, so the encoded text of a sealed cookie
/// contains it by chance about once in several hundred runs, while 3 given bytes among a few hundred random ones
/// almost never turn up.
fn assert_sealed(cookie: &str) {
    use base64::Engine as _;
    let value = cookie.strip_prefix("demo_session=").expect("the demo cookie");
    let (sealed, key_id) = value.split_once('.').expect("sealed.key_id");
    assert!(!sealed.starts_with("at_") && !key_id.is_empty(), "{cookie}");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sealed).expect("base64url");
    assert!(!bytes.windows(3).any(|w| w == b"at_"), "the access token is sealed in the cookie");
}

#[tokio::test]
async fn demo_backend_exchanges_reads_coverage_and_claims_and_revokes() {
    let app = spawn_app().await;
    let keys: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app.dir.path().join(link_sdk::server::surfaces::demo::DEMO_KEYS_FILE)).unwrap(),
    )
    .unwrap();
    let page = app.get("/demo").await;
    let mut cookie = set_cookie(&page).unwrap();
    let html = page.text().await.unwrap();
    let external_id = html.split("data-external-id=\"").nth(1).unwrap().split('"').next().unwrap().to_string();

    // Link the sandbox's typical member without the UI (test-mode shortcut), as the modal would.
    let res = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .json(&serde_json::json!({"secret_key": keys["secret_key"], "external_id": external_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let public_token = res.json::<serde_json::Value>().await.unwrap()["public_token"].as_str().unwrap().to_string();

    let res = app
        .client
        .post(format!("{}/demo/api/exchange", app.base_url))
        .header("cookie", &cookie)
        .header("origin", &app.base_url)
        .json(&serde_json::json!({"public_token": public_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    cookie = set_cookie(&res).unwrap();
    assert_sealed(&cookie);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["link"]["endpoint"], "Sandbox Health Plan");

    // Records: Coverage and claims once the sync is done (the demo waits out 429 itself, then asks to poll).
    let mut records = serde_json::Value::Null;
    for _ in 0..10 {
        records = app
            .client
            .get(format!("{}/demo/api/records", app.base_url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if records["links"][0]["status"] != "syncing" {
            break;
        }
    }
    let link = &records["links"][0];
    assert_eq!(link["status"], "ready", "{records}");
    assert!(!link["coverage"].as_array().unwrap().is_empty(), "{records}");
    assert!(!link["claims"].as_array().unwrap().is_empty(), "{records}");
    assert!(!records.to_string().contains("at_"), "no token reaches the page");

    // A cross-site POST is refused.
    let res = app
        .client
        .post(format!("{}/demo/api/revoke", app.base_url))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({"link": link["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let res = app
        .client
        .post(format!("{}/demo/api/revoke", app.base_url))
        .header("cookie", &cookie)
        .header("origin", &app.base_url)
        .json(&serde_json::json!({"link": link["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    cookie = set_cookie(&res).unwrap();
    let records: serde_json::Value = app
        .client
        .get(format!("{}/demo/api/records", app.base_url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(records["links"], serde_json::json!([]));
}

#[test]
fn settings_doc_lists_every_setting() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut checked = 0;
    for args in [&["--help"][..], &["sandbox", "--help"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_link-sdk")).args(args).output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        for line in help.lines() {
            // Flag lines are indented by six spaces; wrapped descriptions by more.
            let Some(flag) = line.strip_prefix("      --").map(|r| r.split([' ', '<', ',']).next().unwrap()) else {
                continue;
            };
            if ["help", "version"].contains(&flag) {
                continue;
            }
            assert!(doc.contains(&format!("`--{flag}`")), "README.md does not document --{flag}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} flags found in --help");
}
