//! Lifecycle rules with a controlled clock (no sleeping): ONE_TIME expunge after 24 h, MULTIPLE refresh and
//! re-consent, downgrade made visible, revocation from the connections page expunging at once, the audit trail
//! (append-only, exported by the CLI), and a database file holding no token or secret in plain text.

use std::sync::{Arc, Mutex};

use axum::{extract::State, routing::post, Form, Json, Router};
use crate::common::{spawn_app, spawn_app_with, test_settings, TestApp};
use link_sdk::{
    domain::{Mode, StateReason, Usage, ONE_TIME_TTL_SECS},
    server::{
        platform::clock::Clock as _,
        services::{
            lifecycle::{
                self,
                sweep::{self, RefreshOutcome},
                transitions,
            },
            webhooks,
        },
        store::{
            apps::{self, CreatedKeys, NewApp},
            audit,
            authorizations::{self, NewAuthorization, PayerTokens},
            endpoints::{self, Endpoint},
            tokens::{self, TokenKind},
        },
    },
};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use sqlx::Row as _;

const ENDPOINT_ID: &str = "7d0c4b8e-5b8a-4f0e-9a55-2f3c0e1d4a10";

/// A fake payer token endpoint: answers refreshes from a script of responses and records what it got.
#[derive(Clone, Default)]
struct FakePayer {
    /// Responses to give, in order; the last one repeats. `None` → `invalid_grant`.
    script: Arc<Mutex<Vec<Option<Value>>>>,
    /// `refresh_token` values received.
    received: Arc<Mutex<Vec<String>>>,
    /// HTTP status of an `invalid_grant` answer (400 when unset, as RFC 6749 §5.2 says; some servers send 401
    /// or 403).
    refusal_status: Arc<Mutex<Option<u16>>>,
}

async fn token(State(p): State<FakePayer>, Form(form): Form<Vec<(String, String)>>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!(get("grant_type"), "refresh_token");
    p.received.lock().unwrap().push(get("refresh_token"));
    let next = {
        let mut s = p.script.lock().unwrap();
        if s.len() > 1 { s.remove(0) } else { s.first().cloned().flatten() }
    };
    match next {
        Some(body) => Json(body).into_response(),
        None => {
            let status = p.refusal_status.lock().unwrap().unwrap_or(400);
            (axum::http::StatusCode::from_u16(status).unwrap(), Json(json!({"error": "invalid_grant"}))).into_response()
        }
    }
}

async fn start_payer(p: FakePayer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let router = Router::new().route("/token", post(token)).with_state(p);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

struct Fixture {
    app_id: String,
    keys: CreatedKeys,
}

/// An app (with a webhook URL, so events are queued) and a directory endpoint.
async fn fixture(app: &TestApp) -> Fixture {
    let now = app.clock.now();
    let (created, keys) = apps::create(
        &app.state.db,
        now,
        NewApp {
            name: "Lifecycle test app".into(),
            allowed_origins: vec!["https://app.example".into()],
            // Nothing listens here: deliveries are only queued (delivery is the webhooks module's subject).
            webhook_url: Some("http://127.0.0.1:9/hooks".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    endpoints::upsert(
        &app.state.db,
        now,
        &Endpoint {
            id: ENDPOINT_ID.into(),
            name: "Test Health Plan".into(),
            aliases: vec![],
            logo_url: None,
            mode: Mode::Test,
            fhir_base_url: "http://127.0.0.1:9/fhir".into(),
            authorize_url: Some("http://127.0.0.1:9/authorize".into()),
            token_url: Some("http://127.0.0.1:9/token".into()),
            client_id: "link-sdk".into(),
            client_secret_ref: None,
            scopes: None,
            refreshable: true,
            resource_types: vec!["Patient".into(), "Coverage".into(), "ExplanationOfBenefit".into()],
        },
    )
    .await
    .unwrap();
    Fixture { app_id: created.id, keys }
}

struct Linked {
    id: String,
    payer_access: String,
    payer_refresh: String,
    access_token: String,
    refresh_token: String,
}

/// An authorization as the sync stores it (payer tokens sealed), two resources, and our tokens for it.
async fn link(app: &TestApp, f: &Fixture, external_id: &str, usage: Usage, token_url: &str, payer_expires_in: i64) -> Linked {
    let now = app.clock.now();
    let payer_access = format!("payer-access-{}", uuid::Uuid::new_v4().simple());
    let payer_refresh = format!("payer-refresh-{}", uuid::Uuid::new_v4().simple());
    let id = authorizations::create(
        &mut app.state.db.pool.acquire().await.unwrap(),
        &app.state.cipher,
        now,
        NewAuthorization {
            app_id: f.app_id.clone(),
            mode: Mode::Test,
            external_id: external_id.into(),
            endpoint_id: ENDPOINT_ID.into(),
            link_session_id: None,
            patient_id: Some("pat-1".into()),
            usage_requested: usage,
            usage,
            downgraded: false,
            fhir_base: "http://127.0.0.1:9/fhir".into(),
            token_url: token_url.into(),
            resource_types: vec![],
            expunge_at: (usage == Usage::OneTime).then_some(now + ONE_TIME_TTL_SECS),
            next_sync_at: None,
        },
        &PayerTokens {
            access_token: payer_access.clone().into(),
            refresh_token: (usage == Usage::Multiple).then(|| payer_refresh.clone().into()),
            expires_at: Some(now + payer_expires_in),
            refresh_expires_at: None,
            scope: Some("launch/patient patient/*.read offline_access".into()),
        },
    )
    .await
    .unwrap();
    for (rtype, rid, body) in [
        ("Patient", "pat-1", json!({"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Quixotefamily", "given": ["Dulcinea"]}],
                                    "birthDate": "1951-07-14", "identifier": [{"value": "MBR-77731-SECRETMEMBER"}]})),
        ("Coverage", "cov-1", json!({"resourceType": "Coverage", "id": "cov-1", "status": "active",
                                     "subscriberId": "SUBSCRIBER-99812-PLAIN"})),
    ] {
        insert_resource(app, &id, rtype, rid, &body.to_string()).await;
    }
    let access_token = tokens::issue(&app.state.db.pool, now, TokenKind::Access, &f.app_id, Some(&id), Some(86_400), json!({})).await.unwrap();
    let refresh_token = tokens::issue(&app.state.db.pool, now, TokenKind::Refresh, &f.app_id, Some(&id), None, json!({})).await.unwrap();
    Linked { id, payer_access, payer_refresh, access_token, refresh_token }
}

/// Writes a resource the way the sync does: through `store::resources::seal_body`.
async fn insert_resource(app: &TestApp, authorization_id: &str, rtype: &str, rid: &str, json: &str) {
    let (body, body_enc, key_id) = link_sdk::server::store::resources::seal_body(app.state.resource_store(), authorization_id, rtype, rid, json);
    sqlx::query(
        "INSERT INTO resources (authorization_id, resource_type, id, body, body_enc, body_key_id, fetched_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(authorization_id)
    .bind(rtype)
    .bind(rid)
    .bind(body)
    .bind(body_enc)
    .bind(key_id)
    .bind(app.clock.now())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    sqlx::query(sql).bind(id).fetch_one(&app.state.db.pool).await.unwrap().try_get::<i64, _>("n").unwrap()
}

async fn resources_of(app: &TestApp, id: &str) -> i64 {
    count(app, "SELECT COUNT(*) AS n FROM resources WHERE authorization_id = $1", id).await
}

async fn events(app: &TestApp, app_id: &str, event: &str) -> Vec<Value> {
    sqlx::query("SELECT payload FROM webhook_deliveries WHERE app_id = $1 AND event = $2 ORDER BY created_at")
        .bind(app_id)
        .bind(event)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.try_get::<String, _>("payload").unwrap()).unwrap())
        .collect()
}

async fn actions(app: &TestApp, authorization_id: &str) -> Vec<String> {
    crate::common::audit_actions(&app.state.db, authorization_id).await
}

/// Payer tokens destroyed, our tokens revoked, resources gone.
async fn assert_expunged(app: &TestApp, l: &Linked) {
    let row = sqlx::query(
        "SELECT payer_access_token_enc, payer_refresh_token_enc, expunged_at FROM authorizations WHERE id = $1",
    )
    .bind(&l.id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert!(row.try_get::<Option<Vec<u8>>, _>("payer_access_token_enc").unwrap().is_none());
    assert!(row.try_get::<Option<Vec<u8>>, _>("payer_refresh_token_enc").unwrap().is_none());
    assert!(row.try_get::<Option<i64>, _>("expunged_at").unwrap().is_some());
    assert_eq!(resources_of(app, &l.id).await, 0);
    let now = app.clock.now();
    assert!(tokens::verify(&app.state.db, now, TokenKind::Access, &l.access_token).await.unwrap().is_none());
    assert!(tokens::verify(&app.state.db, now, TokenKind::Refresh, &l.refresh_token).await.unwrap().is_none());
}

#[tokio::test]
async fn one_time_is_expunged_24_hours_after_authorization() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let l = link(&app, &f, "user-1", Usage::OneTime, "http://127.0.0.1:9/token", 3600).await;

    app.clock.advance(ONE_TIME_TTL_SECS - 1);
    sweep::sweep_once(&app.state).await.unwrap();
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert!(s.readable, "still readable one second before the end");
    assert_eq!(resources_of(&app, &l.id).await, 2);
    assert!(tokens::verify(&app.state.db, app.clock.now(), TokenKind::Access, &l.access_token).await.unwrap().is_some());

    app.clock.advance(1);
    // Refused the second the window ends, even before the sweep ran.
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert!(!s.readable);
    assert_eq!(s.reason, Some(StateReason::OneTimeExpired));

    sweep::sweep_once(&app.state).await.unwrap();
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert_eq!(s.state, "EXPIRED");
    assert_eq!(s.reason, Some(StateReason::OneTimeExpired));
    assert!(s.description().contains("24 hours"));
    assert_expunged(&app, &l).await;
    assert!(actions(&app, &l.id).await.contains(&"expunged".to_string()));
    // Expiry is not a revocation: no authorization_revoked event, one authorization.expired with a stable id.
    assert!(events(&app, &f.app_id, "authorization_revoked").await.is_empty());
    let ev = events(&app, &f.app_id, "authorization.expired").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event_id"], webhooks::event_id_for(webhooks::WebhookEvent::AuthorizationExpired, &l.id));
    assert_eq!((ev[0]["data"]["authorization_id"].as_str(), ev[0]["data"]["reason"].as_str()), (Some(l.id.as_str()), Some("one_time_expired")));

    // Idempotent: another sweep and another expunge change nothing and record nothing more.
    sweep::sweep_once(&app.state).await.unwrap();
    transitions::expunge_authorization(&app.state, &l.id, StateReason::Expired).await.unwrap();
    assert_eq!(actions(&app, &l.id).await.iter().filter(|a| *a == "expunged").count(), 1);
}

#[tokio::test]
async fn multiple_refreshes_then_moves_to_reauth_when_the_payer_refuses_and_expires_after_the_grace() {
    let (mut settings, dir, url) = test_settings().await;
    settings.reauth_grace_secs = 7 * 86_400;
    let app = spawn_app_with(settings, dir, url).await;
    let f = fixture(&app).await;
    let payer = FakePayer::default();
    *payer.script.lock().unwrap() = vec![
        Some(json!({"access_token": "payer-access-rotated-1", "refresh_token": "payer-refresh-rotated-1",
                    "token_type": "Bearer", "expires_in": 3600, "scope": "patient/*.read offline_access"})),
        None, // then invalid_grant
    ];
    let token_url = start_payer(payer.clone()).await;
    let l = link(&app, &f, "user-2", Usage::Multiple, &token_url, 3600).await;

    // Not yet within the refresh margin: nothing is sent to the payer.
    app.clock.advance(3600 - sweep::REFRESH_MARGIN_SECS - 1);
    sweep::sweep_once(&app.state).await.unwrap();
    assert!(payer.received.lock().unwrap().is_empty());

    // Within the margin: refreshed with the payer's refresh_token; the rotated tokens are stored sealed.
    app.clock.advance(2);
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(payer.received.lock().unwrap().as_slice(), std::slice::from_ref(&l.payer_refresh));
    let a = authorizations::get(&app.state.db, &l.id).await.unwrap().unwrap();
    assert_eq!(a.state, "REFRESHED");
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &l.id).await.unwrap().unwrap();
    assert_eq!(creds.access_token.unwrap().expose_secret(), "payer-access-rotated-1");
    assert_eq!(creds.refresh_token.unwrap().expose_secret(), "payer-refresh-rotated-1");
    assert!(actions(&app, &l.id).await.contains(&"payer.refreshed".to_string()));

    // Next refresh: the payer answers invalid_grant → NEEDS_REAUTH, still readable, authorization.needs_reauth sent.
    app.clock.advance(3600);
    assert_eq!(sweep::refresh_payer_token(&app.state, &l.id).await.unwrap(), RefreshOutcome::Refused);
    assert_eq!(payer.received.lock().unwrap().last().unwrap(), "payer-refresh-rotated-1");
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert_eq!(s.state, "NEEDS_REAUTH");
    assert_eq!(s.reason, Some(StateReason::PayerRefusedRefresh));
    assert!(s.readable, "stays readable until its own expiry");
    assert_eq!(resources_of(&app, &l.id).await, 2);
    let ev = events(&app, &f.app_id, "authorization.needs_reauth").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["data"]["authorization_id"], l.id.as_str());
    assert_eq!(ev[0]["data"]["external_id"], "user-2");
    assert!(ev[0]["data"]["readable_until"].is_string());
    assert!(actions(&app, &l.id).await.contains(&"payer.refresh_refused".to_string()));

    // The sweep does not ask the payer again, nor send a second event.
    let asked = payer.received.lock().unwrap().len();
    app.clock.advance(86_400);
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(payer.received.lock().unwrap().len(), asked);
    assert_eq!(events(&app, &f.app_id, "authorization.needs_reauth").await.len(), 1);
    assert!(transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap().readable);

    // At the end of the re-consent window (7 days after the refusal) it is expunged.
    app.clock.advance(6 * 86_400);
    sweep::sweep_once(&app.state).await.unwrap();
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert_eq!(s.state, "EXPIRED");
    assert!(!s.readable);
    assert_expunged(&app, &l).await;
}

#[tokio::test]
async fn multiple_whose_payer_grant_expired_needs_reauth_without_asking_the_payer() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let payer = FakePayer::default();
    let token_url = start_payer(payer.clone()).await;
    let l = link(&app, &f, "user-3", Usage::Multiple, &token_url, 86_400).await;
    sqlx::query("UPDATE authorizations SET payer_refresh_expires_at = $1 WHERE id = $2")
        .bind(app.clock.now() + 1000)
        .bind(&l.id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.clock.advance(999);
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(authorizations::get(&app.state.db, &l.id).await.unwrap().unwrap().state, "AUTHORIZED");
    app.clock.advance(1);
    sweep::sweep_once(&app.state).await.unwrap();
    let s = transitions::access_status(&app.state.db, app.clock.now(), &l.id).await.unwrap().unwrap();
    assert_eq!(s.state, "NEEDS_REAUTH");
    assert_eq!(s.reason, Some(StateReason::PayerGrantExpired));
    assert!(s.readable);
    assert!(payer.received.lock().unwrap().is_empty());
    assert_eq!(events(&app, &f.app_id, "authorization.needs_reauth").await.len(), 1);
}

#[tokio::test]
async fn pending_expiration_is_announced_once_before_the_payer_grant_ends_and_the_api_shows_the_lifetime() {
    use webhooks::{event_id_for, WebhookEvent};
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let payer = FakePayer::default();
    let token_url = start_payer(payer.clone()).await;
    let l = link(&app, &f, "user-9", Usage::Multiple, &token_url, 60 * 86_400).await;
    let access_token =
        tokens::issue(&app.state.db.pool, app.clock.now(), TokenKind::Access, &f.app_id, Some(&l.id), Some(60 * 86_400), json!({}))
            .await
            .unwrap();
    let set_end = |end: i64| {
        let (db, id) = (app.state.db.pool.clone(), l.id.clone());
        async move {
            sqlx::query("UPDATE authorizations SET payer_refresh_expires_at = $1 WHERE id = $2").bind(end).bind(id).execute(&db).await.unwrap();
        }
    };
    let ends = app.clock.now() + 10 * 86_400;
    set_end(ends).await;
    sweep::sweep_once(&app.state).await.unwrap();
    assert!(events(&app, &f.app_id, "authorization.pending_expiration").await.is_empty(), "10 days out: not yet");

    // Within the default 7 days: announced once, whatever the number of sweeps, with an id derived from the fact.
    app.clock.advance(3 * 86_400 + 1);
    sweep::sweep_once(&app.state).await.unwrap();
    sweep::sweep_once(&app.state).await.unwrap();
    let ev = events(&app, &f.app_id, "authorization.pending_expiration").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event_id"], event_id_for(WebhookEvent::PendingExpiration, &format!("{}|{ends}", l.id)));
    assert_eq!(ev[0]["data"]["authorization_id"], l.id.as_str());
    assert_eq!(ev[0]["data"]["external_id"], "user-9");
    assert_eq!(ev[0]["data"]["refresh_expires_at"], ends);
    assert_eq!(ev[0]["data"]["expires_in"], ends - app.clock.now());

    // Introspect and GET /link/users carry the lifetime fields.
    let r = app.client.get(format!("{}/link/introspect", app.base_url)).bearer_auth(&access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["state"].as_str(), v["refresh_expires_at"].as_i64()), (Some("AUTHORIZED"), Some(ends)), "{v}");
    assert!(v["expires_at"].is_null() && v["last_synced_at"].is_null() && v["sync"].is_null(), "{v}");
    let r = app
        .client
        .get(format!("{}/link/users/user-9", app.base_url))
        .bearer_auth(f.keys.test_secret.expose_secret())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["authorizations"][0]["refresh_expires_at"], ends, "{v}");
    assert_eq!(v["authorizations"][0]["state"], "AUTHORIZED");

    // The payer extended its grant: the new end is announced again, with another id.
    set_end(ends + 86_400).await;
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(events(&app, &f.app_id, "authorization.pending_expiration").await.len(), 1, "the new end is 8 days out");
    app.clock.advance(86_400);
    sweep::sweep_once(&app.state).await.unwrap();
    let ev = events(&app, &f.app_id, "authorization.pending_expiration").await;
    assert_eq!(ev.len(), 2);
    assert_ne!(ev[0]["event_id"], ev[1]["event_id"]);

    // When the grant ends: authorization.needs_reauth, once, with an id derived from the authorization, and the
    // API shows when the data goes.
    app.clock.advance(8 * 86_400);
    sweep::sweep_once(&app.state).await.unwrap();
    sweep::sweep_once(&app.state).await.unwrap();
    let ev = events(&app, &f.app_id, "authorization.needs_reauth").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["event_id"], event_id_for(WebhookEvent::NeedsReauth, &l.id));
    let expires_at = ev[0]["data"]["expires_at"].as_i64().unwrap();
    let r = app.client.get(format!("{}/link/introspect", app.base_url)).bearer_auth(&access_token).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["state"].as_str(), v["expires_at"].as_i64()), (Some("NEEDS_REAUTH"), Some(expires_at)), "{v}");
}

#[tokio::test]
async fn a_downgrade_is_recorded_once_for_the_operator() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let l = link(&app, &f, "user-4", Usage::OneTime, "http://127.0.0.1:9/token", 3600).await;
    // As the link flow stores a MULTIPLE request on an endpoint without refresh tokens.
    sqlx::query("UPDATE authorizations SET usage_requested = 'MULTIPLE', downgraded = 1 WHERE id = $1")
        .bind(&l.id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sweep::sweep_once(&app.state).await.unwrap();
    sweep::sweep_once(&app.state).await.unwrap();
    let trail = audit::query(&app.state.db, &audit::ExportFilter { action_prefix: Some("usage.".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["authorization_id"], l.id.as_str());
    assert_eq!(trail[0]["detail"]["usage_requested"], "MULTIPLE");
    assert_eq!(trail[0]["detail"]["billed_as"], "ONE_TIME");
    let view = authorizations::operator_view(&app.state.db, Some(&f.app_id), true).await.unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(view[0]["downgraded"], true);
    assert_eq!(view[0]["usage"], "ONE_TIME");
}

/// The `<input name="…" value="…">` values and the form action of the rendered page.
fn form_of(html: &str) -> (String, Vec<(String, String)>) {
    let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("a form").to_string();
    let mut fields = Vec::new();
    for part in html.split("<input").skip(1) {
        let attr = |n: &str| part.split(&format!("{n}=\"")).nth(1).and_then(|s| s.split('"').next()).map(str::to_string);
        if let (Some(name), Some(value)) = (attr("name"), attr("value")) {
            fields.push((name, value.replace("&amp;", "&")));
        }
    }
    (action.replace("&amp;", "&"), fields)
}

#[tokio::test]
async fn the_patient_removes_a_link_on_the_connections_page_which_expunges_at_once() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let mine = link(&app, &f, "patient-a", Usage::Multiple, "http://127.0.0.1:9/token", 86_400).await;
    let theirs = link(&app, &f, "patient-b", Usage::Multiple, "http://127.0.0.1:9/token", 86_400).await;

    // The page needs a grant minted with the secret key; a publishable key is refused.
    let mint = |key: String| {
        app.client
            .post(format!("{}/link/connections-url", app.base_url))
            .bearer_auth(key)
            .json(&json!({"externalId": "patient-a"}))
            .send()
    };
    assert_eq!(mint(f.keys.test_publishable.clone()).await.unwrap().status(), 401);
    let res = mint(f.keys.test_secret.expose_secret().to_string()).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let url = body["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/link/connections?token=ct_", app.base_url)));
    assert_eq!(body["expires_in"], lifecycle::connections::CONNECTIONS_GRANT_TTL_SECS);

    // Without a valid grant: no list.
    let res = app.get("/link/connections?token=ct_forged").await;
    assert_eq!(res.status(), 401);
    assert!(!res.text().await.unwrap().contains("Test Health Plan"));

    // The page lists the plan (rendered in full on the server: works without JavaScript).
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // Framable by the app's own origins only; never cached; sends no Referer (the URL carries the grant).
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors https://app.example"), "{csp}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let html = res.text().await.unwrap();
    assert!(html.contains("Your connected health plans"));
    assert!(html.contains("Test Health Plan"));
    assert!(html.contains("Your profile"), "what was shared");
    assert!(html.contains("Remove Test Health Plan"));
    assert!(!html.contains(&theirs.id), "another user's link is not listed");
    // Removing takes a confirmation: the list's Remove is a GET form to the same page asking to confirm.
    assert!(!html.contains("method=\"post\""), "no removal form before the patient confirms");
    let (ask, ask_fields) = form_of(&html);
    assert!(ask.starts_with("/link/connections#plan-"), "{ask}");
    assert!(ask_fields.iter().any(|(n, v)| n == "confirm" && v == &mine.id));
    let query: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&ask_fields).finish();
    let html = app.client.get(format!("{}/link/connections?{query}", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Remove Test Health Plan?") && html.contains("Yes, remove Test Health Plan"), "{html}");
    let (action, fields) = form_of(&html[html.find("method=\"post\"").map(|i| html[..i].rfind("<form").unwrap()).expect("the confirmation's form")..]);
    assert!(fields.iter().any(|(n, v)| n == "authorization_id" && v == &mine.id));
    assert!(fields.iter().any(|(n, v)| n == "confirmed" && v == "yes"));

    // A removal posted without the confirmation removes nothing and goes to the confirmation step.
    let unconfirmed: Vec<(String, String)> = fields.iter().filter(|(n, _)| n != "confirmed").cloned().collect();
    let res = app
        .client
        .post(format!("{}{}", app.base_url, action))
        .header("accept", "text/html")
        .form(&unconfirmed)
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with(&format!("confirm={}", mine.id)), "{location}");
    assert_eq!(resources_of(&app, &mine.id).await, 2, "nothing removed");

    // Another user's authorization cannot be removed with this grant.
    let token = fields.iter().find(|(n, _)| n == "token").unwrap().1.clone();
    let res = app
        .client
        .post(format!("{}{}", app.base_url, action))
        .header("accept", "text/html")
        .form(&[("token", token.as_str()), ("authorization_id", theirs.id.as_str()), ("confirmed", "yes")])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/link/connections?token=ct_") && location.ends_with("error=1"), "{location}");
    let html = app.client.get(format!("{}{}", app.base_url, location)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("could not be removed"));
    assert_eq!(resources_of(&app, &theirs.id).await, 2);
    assert_eq!(transitions::access_status(&app.state.db, app.clock.now(), &theirs.id).await.unwrap().unwrap().state, "AUTHORIZED");

    // The form, posted without JavaScript: revoked, expunged at once, back to the list.
    let res = app
        .client
        .post(format!("{}{}", app.base_url, action))
        .header("accept", "text/html")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "status {}", res.status());
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/link/connections?token=ct_") && location.ends_with("removed=1"));
    let s = transitions::access_status(&app.state.db, app.clock.now(), &mine.id).await.unwrap().unwrap();
    assert_eq!(s.state, "REVOKED");
    assert_eq!(s.reason, Some(StateReason::RevokedByPatient));
    assert_expunged(&app, &mine).await;
    let ev = events(&app, &f.app_id, "authorization_revoked").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["data"]["authorization_id"], mine.id.as_str());
    assert_eq!(ev[0]["data"]["reason"], "revoked_by_patient");
    let trail = actions(&app, &mine.id).await;
    assert!(trail.contains(&"authorization.revoked".to_string()) && trail.contains(&"expunged".to_string()));

    // The list no longer shows it; the other user's data is untouched.
    let html = app.client.get(format!("{}{}", app.base_url, location)).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("was removed"));
    assert!(html.contains("no connected health plans"));
    assert_eq!(resources_of(&app, &theirs.id).await, 2);

    // The grant expires.
    app.clock.advance(lifecycle::connections::CONNECTIONS_GRANT_TTL_SECS);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_audit_trail_is_append_only_and_exported_as_json_lines_by_the_cli() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let l = link(&app, &f, "user-5", Usage::OneTime, "http://127.0.0.1:9/token", 3600).await;
    transitions::expunge_authorization(&app.state, &l.id, StateReason::RevokedByApp).await.unwrap();

    for sql in ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"] {
        assert!(sqlx::query(sql).execute(&app.state.db.pool).await.is_err(), "{sql} must be refused");
    }

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_link-sdk"))
        .args(["--data-dir", app.dir.path().to_str().unwrap(), "--database-url", &app.database_url, "audit", "export"])
        .args(["--authorization", &l.id])
        // Logs (e.g. PostgreSQL notices while migrating) must not mix with the JSON lines on stdout.
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect();
    let got: Vec<&str> = lines.iter().map(|l| l["action"].as_str().unwrap()).collect();
    assert_eq!(got, ["authorization.revoked", "expunged"]);
    assert_eq!(lines[0]["actor"], format!("app:{}", f.app_id));
    assert!(lines.iter().all(|l| l["time"].as_str().unwrap().ends_with('Z')));
    // No health data or secrets in the trail.
    let text = serde_json::to_string(&lines).unwrap();
    for needle in ["Quixotefamily", "1951-07-14", "MBR-77731", &l.payer_access] {
        assert!(!text.contains(needle));
    }
}

/// Every secret or identifying string this test put in the database, and the file's bytes.
#[tokio::test]
async fn the_database_file_holds_no_token_or_secret_in_plain_text() {
    let (mut settings, dir, url) = test_settings().await;
    settings.encrypt_resources = true;
    let app = spawn_app_with(settings, dir, url).await;
    let f = fixture(&app).await;
    let l = link(&app, &f, "user-6", Usage::Multiple, "http://127.0.0.1:9/token", 3600).await;
    let public_token =
        tokens::issue(&app.state.db.pool, app.clock.now(), TokenKind::Public, &f.app_id, Some(&l.id), Some(1800), json!({})).await.unwrap();
    let webhook_secret = webhooks::ensure_signing_secret(&app.state, &f.app_id).await.unwrap();
    let (connections_url, _) = lifecycle::connections::mint_connections_url(&app.state, &f.app_id, Mode::Test, "user-6").await.unwrap();
    let connections_token = connections_url.split("token=").nth(1).unwrap().to_string();

    // The resources open again with the key (sealed, not lost).
    let row = sqlx::query("SELECT body, body_enc, body_key_id FROM resources WHERE authorization_id = $1 AND id = 'pat-1'")
        .bind(&l.id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let body: Option<String> = row.try_get("body").unwrap();
    assert!(body.is_none(), "stored encrypted");
    let opened = link_sdk::server::store::resources::body_text(
        &app.state.cipher,
        &l.id,
        "Patient",
        "pat-1",
        body,
        row.try_get("body_enc").unwrap(),
        row.try_get("body_key_id").unwrap(),
    )
    .unwrap();
    assert!(opened.contains("Quixotefamily"));
    // Bound to its row: the same ciphertext does not open as another resource.
    assert!(link_sdk::server::store::resources::body_text(&app.state.cipher, &l.id, "Patient", "pat-2", None, row.try_get("body_enc").unwrap(), row.try_get("body_key_id").unwrap()).is_err());

    let secrets: Vec<(&str, String)> = vec![
        ("payer access_token", l.payer_access.clone()),
        ("payer refresh_token", l.payer_refresh.clone()),
        ("our access_token", l.access_token.clone()),
        ("our refresh_token", l.refresh_token.clone()),
        ("public_token", public_token),
        ("test secret key", f.keys.test_secret.expose_secret().to_string()),
        ("live secret key", f.keys.live_secret.expose_secret().to_string()),
        ("webhook signing secret", webhook_secret.expose_secret().to_string()),
        ("connections grant", connections_token),
        ("patient name", "Quixotefamily".into()),
        ("birth date", "1951-07-14".into()),
        ("member id", "MBR-77731-SECRETMEMBER".into()),
        ("subscriber id", "SUBSCRIBER-99812-PLAIN".into()),
    ];

    if app.database_url.starts_with("sqlite:") {
        // Fold the write-ahead log into the file, then read every byte SQLite keeps on disk.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&app.state.db.pool).await.unwrap();
        let path = app.dir.path().join("test.db");
        let mut bytes = std::fs::read(&path).unwrap();
        for extra in ["test.db-wal", "test.db-journal"] {
            if let Ok(b) = std::fs::read(app.dir.path().join(extra)) {
                bytes.extend(b);
            }
        }
        assert!(bytes.len() > 4096);
        for (what, value) in &secrets {
            if let Some(at) = plain_text_at(&bytes, value) {
                panic!("{what} found in plain text in the database file at byte {at} of {}", bytes.len());
            }
        }
        // Sanity check of the method: non-secret values are found.
        assert!(bytes.windows(16).any(|w| w == b"Test Health Plan"));
    } else {
        // PostgreSQL: no file to read; check every text column of the tables that could hold them.
        for (table, cols) in [
            ("authorizations", "COALESCE(payer_scope,'') || external_id"),
            ("tokens", "token_hash || detail"),
            ("api_keys", "publishable_key || secret_hash"),
            ("resources", "COALESCE(body,'')"),
            ("connections_grants", "token_hash"),
        ] {
            let rows = sqlx::query(&format!("SELECT {cols} AS t FROM {table}")).fetch_all(&app.state.db.pool).await.unwrap();
            for r in rows {
                let t: String = r.try_get("t").unwrap();
                for (what, value) in &secrets {
                    assert!(!t.contains(value.as_str()), "{what} found in {table}");
                }
            }
        }
    }
}

/// Where `value` is in `bytes` in plain text, if anywhere.
///
/// A short value (the sandbox member's family name is "Doe") turns up by chance in a few hundred KB of ciphertext:
/// 3 bytes match at one offset with probability 2^-24, about once in 40 runs of the full-link test. A leaked short
/// value would be a JSON string, so it is looked for quoted (2^-40 per offset). Values of 8 bytes or more are looked
/// for as they are.
fn plain_text_at(bytes: &[u8], value: &str) -> Option<usize> {
    let needle = if value.len() < 8 { format!("\"{value}\"") } else { value.to_string() };
    bytes.windows(needle.len()).position(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn expunged_resources_leave_no_trace_in_the_sqlite_file() {
    let app = spawn_app().await; // resources stored in clear (the default)
    if !app.database_url.starts_with("sqlite:") {
        return;
    }
    let f = fixture(&app).await;
    let l = link(&app, &f, "user-7", Usage::OneTime, "http://127.0.0.1:9/token", 3600).await;
    let path = app.dir.path().join("test.db");
    let file_has = |needle: &str| {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Ok(b) = std::fs::read(app.dir.path().join("test.db-wal")) {
            bytes.extend(b);
        }
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&app.state.db.pool).await.unwrap();
    assert!(file_has("MBR-77731-SECRETMEMBER"), "stored in clear before the expunge");
    transitions::expunge_authorization(&app.state, &l.id, StateReason::RevokedByOperator).await.unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&app.state.db.pool).await.unwrap();
    assert!(!file_has("MBR-77731-SECRETMEMBER"), "overwritten, not left in free pages");
    assert!(!file_has("SUBSCRIBER-99812-PLAIN"));
}

// ---------------------------------------------------------------------------------------------------------
// A full link (Link screens → sandbox payer → callback → sync → exchange → FHIR read), end to end.

fn hidden(page: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = page.find(&needle).unwrap_or_else(|| panic!("no hidden {name}")) + needle.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_string()
}

fn location(r: &reqwest::Response) -> String {
    r.headers().get("location").expect("a redirect").to_str().unwrap().to_string()
}

/// Runs the whole flow for `external_id`; returns (authorization id, our access_token).
async fn full_link(app: &TestApp, f: &Fixture, external_id: &str) -> (String, String) {
    use link_sdk::server::{services::sync, surfaces::sandbox};
    let origin = "https://app.example";
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let r = app
        .get(&format!(
            "/link?publishableKey={}&externalId={external_id}&usage=MULTIPLE&origin={}&nonce=abcdef0123456789",
            f.keys.test_publishable,
            enc(origin)
        ))
        .await;
    assert_eq!(r.status(), 303);
    let sid = location(&r).strip_prefix("/link/s/").expect("session url").split('#').next().unwrap().to_string();
    for (path, form) in [("consent", vec![("choice", "given")]), ("explainer", vec![])] {
        let r = app.client.post(format!("{}/link/s/{sid}/{path}", app.base_url)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
    }
    let r = app.get(&format!("/link/s/{sid}/handoff?endpoint={}", sandbox::REFRESHABLE_ENDPOINT_ID)).await;
    assert!(r.status().is_redirection());
    let authorize = location(&r);
    // Sign in at the sandbox payer and approve.
    let r = app.client.get(&authorize).send().await.unwrap();
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
    let base = authorize.split('?').next().unwrap().to_string();
    let page = app
        .client
        .post(format!("{base}/sign-in"))
        .header("cookie", &cookie)
        .form(&[("request", request.as_str()), ("csrf", csrf.as_str()), ("username", sandbox::MEMBER_TYPICAL), ("password", sandbox::PASSWORD)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let login = hidden(&page, "login");
    let r = app
        .client
        .post(format!("{base}/decide"))
        .header("cookie", &cookie)
        .form(&[("request", request.as_str()), ("csrf", csrf.as_str()), ("login", login.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    assert_eq!(app.client.get(&callback).send().await.unwrap().status(), 200);
    let status: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    let public_token = status["publicToken"].as_str().expect("public token").to_string();
    // Sync to the end (the background worker may take some of the jobs).
    for _ in 0..200 {
        while sync::run_once(&app.state).await {}
        let authz: Option<String> = sqlx::query("SELECT authorization_id FROM link_sessions WHERE id = $1")
            .bind(&sid)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
            .try_get("authorization_id")
            .unwrap();
        if let Some(id) = authz {
            if let Some(s) = sync::status(&app.state.db, &id).await.unwrap() {
                if s.status == "complete" || s.status == "partial" {
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let r = app
        .client
        .post(format!("{}/link/exchange", app.base_url))
        .json(&json!({"public_token": public_token, "secret_key": f.keys.test_secret.expose_secret()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let access_token = v["access_token"].as_str().expect("access_token").to_string();
    let row = tokens::verify(&app.state.db, app.clock.now(), TokenKind::Access, &access_token).await.unwrap().expect("valid");
    (row.authorization_id.expect("authorization"), access_token)
}

#[tokio::test]
async fn a_full_link_and_read_leaves_an_audit_trail_and_no_plaintext_secret_in_the_database_file() {
    let (mut settings, dir, url) = test_settings().await;
    settings.encrypt_resources = true;
    let app = spawn_app_with(settings, dir, url).await;
    let f = fixture(&app).await;
    let (authz, access_token) = full_link(&app, &f, "full-user").await;

    // Read through the FHIR API.
    let r = app.client.get(format!("{}/fhir/Patient", app.base_url)).bearer_auth(&access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let bundle: Value = r.json().await.unwrap();
    let patient = bundle["entry"][0]["resource"].clone();
    assert_eq!(patient["resourceType"], "Patient");
    let r = app.client.get(format!("{}/fhir/ExplanationOfBenefit", app.base_url)).bearer_auth(&access_token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // The audit trail of the whole link and read, in order, with no health data in it.
    app.state.audit_queue.flush().await;
    let trail = audit::query(&app.state.db, &audit::ExportFilter { app_id: Some(f.app_id.clone()), ..Default::default() })
        .await
        .unwrap();
    let trail_actions: Vec<&str> = trail.iter().map(|l| l["action"].as_str().unwrap()).collect();
    let mut expected = ["consent.shown", "consent.given", "payer.authorized", "token.exchanged", "fhir.read"].into_iter().peekable();
    for a in &trail_actions {
        if expected.peek() == Some(a) {
            expected.next();
        }
    }
    assert!(expected.peek().is_none(), "missing {:?} in {trail_actions:?}", expected.peek());
    let reads: Vec<&Value> = trail.iter().filter(|l| l["action"] == "fhir.read").collect();
    assert_eq!(reads.len(), 2, "one record per FHIR read");
    assert!(reads.iter().all(|l| l["authorization_id"] == authz.as_str() && l["request_id"].is_string()));
    let trail_text = serde_json::to_string(&trail).unwrap();
    let family = patient["name"][0]["family"].as_str().expect("a family name").to_string();
    let birth = patient["birthDate"].as_str().expect("a birth date").to_string();
    assert!(!trail_text.contains(&family) && !trail_text.contains(&birth), "no health data in the audit trail");

    // The database holds none of the secrets in plain text.
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &authz).await.unwrap().unwrap();
    let mut secrets: Vec<(&str, String)> = vec![
        ("payer access_token", creds.access_token.expect("payer access token").expose_secret().to_string()),
        ("our access_token", access_token.clone()),
        ("test secret key", f.keys.test_secret.expose_secret().to_string()),
        ("patient family name", family.clone()),
        ("birth date", birth.clone()),
    ];
    if let Some(rt) = creds.refresh_token {
        secrets.push(("payer refresh_token", rt.expose_secret().to_string()));
    }
    // The member id (Patient.identifier) is identifying too: with --encrypt-resources it is not indexed in clear.
    if let Some(member_id) = patient["identifier"][0]["value"].as_str() {
        secrets.push(("member id", member_id.to_string()));
    }
    assert!(!trail_text.is_empty() && !secrets.iter().any(|(_, s)| trail_text.contains(s.as_str())));
    if app.database_url.starts_with("sqlite:") {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&app.state.db.pool).await.unwrap();
        let mut bytes = std::fs::read(app.dir.path().join("test.db")).unwrap();
        if let Ok(b) = std::fs::read(app.dir.path().join("test.db-wal")) {
            bytes.extend(b);
        }
        for (what, value) in &secrets {
            if let Some(at) = plain_text_at(&bytes, value) {
                panic!("{what} found in plain text in the database file at byte {at} of {}", bytes.len());
            }
        }
    }

    // The sync's webhook was queued for the app.
    let ev = events(&app, &f.app_id, "sync_completed").await;
    assert!(ev.iter().any(|e| e["data"]["authorization_id"] == authz.as_str()), "{ev:?}");

    // Revocation by the app expunges at once and the API answers 401 with the reason.
    transitions::expunge_authorization(&app.state, &authz, StateReason::RevokedByApp).await.unwrap();
    let r = app.client.get(format!("{}/fhir/Patient", app.base_url)).bearer_auth(&access_token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let body = r.text().await.unwrap();
    assert!(www.contains("revoked") || body.contains("revoked"), "the 401 says why: {www} {body}");
    assert_eq!(resources_of(&app, &authz).await, 0);
    assert_eq!(events(&app, &f.app_id, "authorization_revoked").await.len(), 1);
}

#[tokio::test]
async fn state_changes_made_by_other_parts_are_completed_by_the_sweep() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let a = link(&app, &f, "user-8", Usage::Multiple, "http://127.0.0.1:9/token", 86_400).await;
    let b = link(&app, &f, "user-9", Usage::Multiple, "http://127.0.0.1:9/token", 86_400).await;
    let now = app.clock.now();
    // As another part might: a bare state change, without expunge or notification.
    crate::common::set_state(&app.state.db, &a.id, "REVOKED", now).await;
    crate::common::set_state(&app.state.db, &b.id, "NEEDS_REAUTH", now).await;
    sweep::sweep_once(&app.state).await.unwrap();

    // Revoked → expunged at once, stays REVOKED; its revoker sends the event, not the sweep.
    let s = transitions::access_status(&app.state.db, app.clock.now(), &a.id).await.unwrap().unwrap();
    assert_eq!((s.state.as_str(), s.reason, s.readable), ("REVOKED", Some(StateReason::Revoked), false));
    assert_expunged(&app, &a).await;
    assert!(events(&app, &f.app_id, "authorization_revoked").await.is_empty());

    // NEEDS_REAUTH → readable window set and authorization.needs_reauth sent, once.
    let s = transitions::access_status(&app.state.db, app.clock.now(), &b.id).await.unwrap().unwrap();
    assert!(s.readable);
    assert_eq!(s.expunge_at, Some(now + app.state.settings.reauth_grace_secs));
    sweep::sweep_once(&app.state).await.unwrap();
    let ev = events(&app, &f.app_id, "authorization.needs_reauth").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["data"]["authorization_id"], b.id.as_str());
}

/// A payer that refuses a refresh with 403 `{"error":"invalid_grant"}` (a third-party SMART server's way):
/// the authorization moves to NEEDS_REAUTH exactly once, with one audit record and one `authorization.needs_reauth`
/// webhook, whether the scheduled sweep or a sync asked for the refresh: both go through the one refresh.
#[tokio::test]
async fn a_refresh_refused_with_403_invalid_grant_needs_reauth_once_from_the_sweep_and_from_a_sync() {
    let (mut settings, dir, url) = test_settings().await;
    settings.sync_workers = 0;
    let app = spawn_app_with(settings, dir, url).await;
    let f = fixture(&app).await;
    let payer = FakePayer::default();
    *payer.refusal_status.lock().unwrap() = Some(403);
    let token_url = start_payer(payer.clone()).await;
    let refused_once = |app_id: String, id: String| {
        let app = &app;
        async move {
            let a = authorizations::get(&app.state.db, &id).await.unwrap().unwrap();
            assert_eq!(a.state, "NEEDS_REAUTH");
            assert_eq!(a.state_reason, Some(StateReason::PayerRefusedRefresh));
            let ev: Vec<Value> =
                events(app, &app_id, "authorization.needs_reauth").await.into_iter().filter(|e| e["data"]["authorization_id"] == id.as_str()).collect();
            assert_eq!(ev.len(), 1, "one authorization.needs_reauth webhook");
            let refused = actions(app, &id).await.iter().filter(|a| *a == "payer.refresh_refused").count();
            assert_eq!(refused, 1, "one audit record");
        }
    };

    // The sweep refreshes a token about to expire; the payer refuses.
    let by_sweep = link(&app, &f, "user-sweep", Usage::Multiple, &token_url, 60).await;
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(payer.received.lock().unwrap().len(), 1);
    refused_once(f.app_id.clone(), by_sweep.id.clone()).await;

    // A sync finds its payer token expired and refreshes first; the payer refuses; the sync fails.
    let by_sync = link(&app, &f, "user-sync", Usage::Multiple, &token_url, -10).await;
    // Keep the sweep away from it (it would refresh it too), so that only the sync asks.
    sqlx::query("UPDATE authorizations SET refresh_after = $1 WHERE id = $2")
        .bind(app.clock.now() + 3600)
        .bind(&by_sync.id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    link_sdk::server::services::sync::enqueue(&app.state.db, &by_sync.id, app.clock.now()).await.unwrap();
    assert!(link_sdk::server::services::sync::run_once(&app.state).await);
    let st = link_sdk::server::services::sync::status(&app.state.db, &by_sync.id).await.unwrap().unwrap();
    assert_eq!(st.status, "failed");
    assert_eq!(payer.received.lock().unwrap().len(), 2);
    refused_once(f.app_id.clone(), by_sync.id.clone()).await;

    // Neither asks the payer again nor sends a second event.
    app.clock.advance(86_400);
    sweep::sweep_once(&app.state).await.unwrap();
    assert_eq!(payer.received.lock().unwrap().len(), 2);
    refused_once(f.app_id.clone(), by_sweep.id.clone()).await;
    refused_once(f.app_id.clone(), by_sync.id.clone()).await;
}


/// Token responses as payers in the field send them (RFC 6749 §5.1 bent: `expires_in` as a string or a float or
/// missing, `token_type` in lower case or missing, comma-separated `scope`) all refresh the grant; the stored
/// expiry and scope are normalised and a missing `expires_in` is taken as an hour.
#[tokio::test]
async fn token_responses_in_every_field_form_refresh_the_grant() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let payer = FakePayer::default();
    *payer.script.lock().unwrap() = vec![
        Some(json!({"access_token": "payer-a1", "refresh_token": "payer-r1", "token_type": "bearer", "expires_in": "1800"})),
        Some(json!({"access_token": "payer-a2", "token_type": "Bearer", "expires_in": 599.7,
                    "scope": "patient/*.read,offline_access"})),
        Some(json!({"access_token": "payer-a3"})),
    ];
    let token_url = start_payer(payer.clone()).await;
    // Tokens far from their expiry, so that only this test asks for the refreshes (not the background sweep).
    let l = link(&app, &f, "user-field", Usage::Multiple, &token_url, 3600).await;
    let expect = |access: &'static str, refresh: &'static str, expires_in: i64, scope: &'static str| {
        let app = &app;
        let id = l.id.clone();
        async move {
            assert_eq!(sweep::refresh_payer_token(&app.state, &id).await.unwrap(), RefreshOutcome::Refreshed);
            let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &id).await.unwrap().unwrap();
            assert_eq!(creds.access_token.unwrap().expose_secret(), access);
            assert_eq!(creds.refresh_token.unwrap().expose_secret(), refresh);
            let a = authorizations::get(&app.state.db, &id).await.unwrap().unwrap();
            assert_eq!(a.payer_token_expires_at, Some(app.clock.now() + expires_in));
            assert_eq!(a.payer_scope.as_deref(), Some(scope));
        }
    };
    let granted = "launch/patient patient/*.read offline_access";
    expect("payer-a1", "payer-r1", 1800, granted).await;
    expect("payer-a2", "payer-r1", 600, "patient/*.read offline_access").await;
    expect("payer-a3", "payer-r1", 3600, "patient/*.read offline_access").await;
}
