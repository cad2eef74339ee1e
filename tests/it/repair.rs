//! Repair mode end to end over HTTP with the sandbox payers: an authorization the payer refused to refresh
//! (`refresh.refused`, 403 `invalid_grant`) goes `NEEDS_REAUTH`; `POST /link/repair` gives a single-use repair
//! token; Link opened with it skips plan search, shows a renewal consent, and the sandbox sign-in as the same
//! member repairs the same authorization (same access and refresh tokens, state back, a sync, one
//! `authorization.repaired` webhook). A sign-in as another member changes nothing (`REPAIR_PATIENT_MISMATCH`).

use link_sdk::{
    domain::{StateReason, Usage},
    server::{
        platform::clock::Clock as _,
        services::{
            lifecycle::{sweep, transitions},
            sync,
            webhooks::{self, WebhookEvent},
        },
        store::{
            apps::{self, CreatedKeys, NewApp},
            authorizations,
        },
        surfaces::sandbox,
    },
};
use secrecy::ExposeSecret as _;
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::{
    api_support::exchange,
    common::{browser, spawn_app_with, test_settings, TestApp},
};

const ORIGIN: &str = "https://app.example";
const MEMBER_REFUSED: &str = "refresh.refused";
const REDIRECT_URI: &str = "https://app.example/callback";

/// A server whose tests drive the sync jobs themselves.
async fn server() -> TestApp {
    let (mut settings, dir, url) = test_settings().await;
    settings.sync_workers = 0;
    spawn_app_with(settings, dir, url).await
}

/// An app allowed to open Link from [`ORIGIN`], with a webhook URL (deliveries are only queued here).
async fn app_keys(app: &TestApp, name: &str) -> (String, CreatedKeys) {
    let (created, keys) = apps::create(
        &app.state.db,
        app.clock.now(),
        NewApp {
            name: name.into(),
            allowed_origins: vec![ORIGIN.into()],
            redirect_uris: vec![REDIRECT_URI.into()],
            webhook_url: Some("http://127.0.0.1:9/hooks".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (created.id, keys)
}

fn sk(keys: &CreatedKeys) -> String {
    keys.test_secret.expose_secret().to_string()
}

/// Runs the sync jobs due until the authorization's latest job has finished.
async fn sync_to_end(app: &TestApp, id: &str) -> String {
    for _ in 0..400 {
        while sync::run_once(&app.state).await {}
        if let Some(s) = sync::status(&app.state.db, id).await.unwrap() {
            if !matches!(s.status.as_str(), "pending" | "syncing" | "delayed") {
                return s.status.as_str().to_string();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the sync did not finish");
}

/// A MULTIPLE (or ONE_TIME) link of sandbox `member` through the test shortcut (a real sign-in at the sandbox),
/// synced and exchanged: (authorization id, access_token, refresh_token).
async fn linked(app: &TestApp, keys: &CreatedKeys, external_id: &str, member: &str, usage: Usage) -> (String, String, Option<String>) {
    let r = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .json(&json!({"secret_key": sk(keys), "external_id": external_id, "member": member, "usage": usage.as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let id = v["authorization_id"].as_str().unwrap().to_string();
    assert_eq!(sync_to_end(app, &id).await, "complete");
    let t = exchange(app, v["public_token"].as_str().unwrap(), &sk(keys)).await;
    (id, t["access_token"].as_str().unwrap().to_string(), t["refresh_token"].as_str().map(str::to_string))
}

async fn post_repair(app: &TestApp, body: Value) -> reqwest::Response {
    app.client.post(format!("{}/link/repair", app.base_url)).json(&body).send().await.unwrap()
}

/// `POST /link/repair` that must succeed: the repair token.
async fn repair_token(app: &TestApp, keys: &CreatedKeys, authorization_id: &str) -> String {
    let r = post_repair(app, json!({"secret_key": sk(keys), "authorization_id": authorization_id})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 1800);
    assert_eq!(v["authorization_id"], authorization_id);
    let token = v["repair_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("rpt_") && token.len() >= 47, "{token}");
    token
}

/// Opens Link in `client` with a repair token (the modal's entry, as link.js sends it).
async fn open_with(app: &TestApp, client: &reqwest::Client, pk: &str, token: &str, extra: &str) -> reqwest::Response {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    client
        .get(format!(
            "{}/link?publishableKey={pk}&repairToken={}&origin={}&nonce=abcdef0123456789{extra}",
            app.base_url,
            enc(token),
            enc(ORIGIN)
        ))
        .send()
        .await
        .unwrap()
}

fn session_of(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap();
    to.strip_prefix("/link/s/").expect("a session screen").split('#').next().unwrap().to_string()
}

async fn step_of(app: &TestApp, sid: &str) -> (String, Option<String>, Option<String>) {
    let row = sqlx::query("SELECT step, exit_code, authorization_id FROM link_sessions WHERE id = $1")
        .bind(sid)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    (row.get("step"), row.get("exit_code"), row.get("authorization_id"))
}

/// The repair session's screens in `client` up to the payer: the renewal consent (given), then straight to the
/// known plan (no search, no explainer) and the hand-off. Returns the session id and the payer's authorize URL.
async fn repair_until_payer(app: &TestApp, client: &reqwest::Client, pk: &str, token: &str) -> (String, String) {
    let sid = session_of(&open_with(app, client, pk, token, "").await);
    let page = client.get(format!("{}/link/s/{sid}", app.base_url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Renew Repair test app&#x27;s connection to your health plan") || page.contains("Renew Repair test app's connection"), "renewal consent");
    let r = client.post(format!("{}/link/s/{sid}/consent", app.base_url)).form(&[("choice", "given")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(step_of(app, &sid).await.0, "connect", "plan search and explainer skipped");
    let r = client.get(format!("{}/link/s/{sid}/handoff", app.base_url)).send().await.unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    assert!(authorize.contains("/sandbox/sandbox-health/"), "the same payer: {authorize}");
    (sid, authorize)
}

/// [`repair_until_payer`], then the sandbox sign-in as `member` and the callback. Returns the session id.
async fn repair_flow(app: &TestApp, client: &reqwest::Client, pk: &str, token: &str, member: &str) -> String {
    let (sid, authorize) = repair_until_payer(app, client, pk, token).await;
    let callback = sandbox::drive_consent(client, &authorize, member, true).await.unwrap();
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 200);
    sid
}

async fn events(app: &TestApp, app_id: &str, event: WebhookEvent) -> Vec<Value> {
    sqlx::query("SELECT payload FROM webhook_deliveries WHERE app_id = $1 AND event = $2 ORDER BY created_at")
        .bind(app_id)
        .bind(event.as_str())
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>("payload")).unwrap())
        .collect()
}

async fn actions(app: &TestApp, authorization_id: &str) -> Vec<String> {
    crate::common::audit_actions(&app.state.db, authorization_id).await
}

/// How many authorizations app `app_id` has.
async fn authorizations_of(app: &TestApp, app_id: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM authorizations WHERE app_id = $1")
        .bind(app_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get("n")
}

async fn fhir_patient(app: &TestApp, access_token: &str) -> reqwest::StatusCode {
    app.client.get(format!("{}/fhir/Patient", app.base_url)).bearer_auth(access_token).send().await.unwrap().status()
}

/// Everything of an authorization row a repair could change (sealed tokens included), as text.
async fn snapshot(app: &TestApp, id: &str) -> String {
    let row = sqlx::query(
        "SELECT state, state_reason, payer_access_token_enc, payer_refresh_token_enc, payer_token_expires_at, \
         payer_refresh_expires_at, expunge_at, next_sync_at, reauth_notified_at, repaired_at, updated_at, patient_id \
         FROM authorizations WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    format!(
        "{:?}",
        (
            row.get::<String, _>("state"),
            row.get::<Option<String>, _>("state_reason"),
            row.get::<Option<Vec<u8>>, _>("payer_access_token_enc"),
            row.get::<Option<Vec<u8>>, _>("payer_refresh_token_enc"),
            row.get::<Option<i64>, _>("payer_token_expires_at"),
            row.get::<Option<i64>, _>("payer_refresh_expires_at"),
            row.get::<Option<i64>, _>("expunge_at"),
            row.get::<Option<i64>, _>("next_sync_at"),
            row.get::<Option<i64>, _>("reauth_notified_at"),
            row.get::<Option<i64>, _>("repaired_at"),
            row.get::<i64, _>("updated_at"),
            row.get::<Option<String>, _>("patient_id"),
        )
    )
}

#[tokio::test]
async fn a_needs_reauth_authorization_is_repaired_in_place_and_its_tokens_keep_working() {
    let app = server().await;
    let (app_id, keys) = app_keys(&app, "Repair test app").await;
    let (id, access_token, refresh_token) = linked(&app, &keys, "user-1", MEMBER_REFUSED, Usage::Multiple).await;
    let refresh_token = refresh_token.expect("MULTIPLE has our refresh_token");

    // The payer refuses the refresh (403 invalid_grant): NEEDS_REAUTH, still readable in its grace window.
    assert_eq!(sweep::refresh_payer_token(&app.state, &id).await.unwrap(), sweep::RefreshOutcome::Refused);
    let a = authorizations::get(&app.state.db, &id).await.unwrap().unwrap();
    assert_eq!((a.state.as_str(), a.state_reason), ("NEEDS_REAUTH", Some(StateReason::PayerRefusedRefresh)));
    assert!(a.expunge_at.is_some());

    // The payer's URLs as recorded at the first sign-in are stale now (say the token endpoint moved): the
    // repair's sign-in discovers them again, and they must replace these.
    let (fhir_base, token_url): (String, String) = {
        let row = sqlx::query("SELECT payer_fhir_base, payer_token_url FROM authorizations WHERE id = $1")
            .bind(&id)
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        (row.get("payer_fhir_base"), row.get("payer_token_url"))
    };
    sqlx::query("UPDATE authorizations SET payer_fhir_base = $1, payer_token_url = $2 WHERE id = $3")
        .bind("https://old.payer.example/fhir")
        .bind("https://old.payer.example/oauth/token")
        .bind(&id)
        .execute(&app.state.db.pool)
        .await
        .unwrap();

    // The backend asks for a repair by access_token; the patient renews in Link as the same member.
    let r = post_repair(&app, json!({"secret_key": sk(&keys), "access_token": access_token})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "NEEDS_REAUTH");
    let token = v["repair_token"].as_str().unwrap().to_string();
    let patient = browser();
    let sid = repair_flow(&app, &patient, &keys.test_publishable, &token, MEMBER_REFUSED).await;
    let (step, code, authz) = step_of(&app, &sid).await;
    assert_eq!((step.as_str(), code, authz.as_deref()), ("syncing", None, Some(id.as_str())), "the same authorization");

    // The same authorization continues: active again, no expiry, new payer tokens, a sync.
    assert_eq!(sync_to_end(&app, &id).await, "complete");
    let a = authorizations::get(&app.state.db, &id).await.unwrap().unwrap();
    assert_eq!((a.state.as_str(), a.state_reason, a.expunge_at), ("EXCHANGED", None, None));
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &id).await.unwrap().unwrap();
    assert!(creds.refresh_token.is_some(), "a new payer refresh_token");
    assert_eq!(
        (creds.fhir_base.as_deref(), creds.token_url.as_deref()),
        (Some(fhir_base.as_str()), Some(token_url.as_str())),
        "the repair's sign-in replaced the payer's FHIR base and token endpoint"
    );
    let n = authorizations_of(&app, &app_id).await;
    assert_eq!(n, 1, "no second authorization");

    // The integrator's access_token reads FHIR; its refresh_token still refreshes.
    assert_eq!(fhir_patient(&app, &access_token).await, 200);
    let intro: Value = app
        .client
        .get(format!("{}/link/introspect", app.base_url))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((intro["active"].as_bool(), intro["state"].as_str()), (Some(true), Some("EXCHANGED")), "{intro}");
    let r = app
        .client
        .post(format!("{}/link/token", app.base_url))
        .basic_auth(&keys.test_publishable, Some(sk(&keys)))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the refresh_token issued before the repair");

    // The page's public_token (onSuccess) exchanges to the same authorization.
    let status: Value = patient.get(format!("{}/link/s/{sid}/status", app.base_url)).send().await.unwrap().json().await.unwrap();
    let public_token = status["publicToken"].as_str().expect("public_token for onSuccess");
    let again = exchange(&app, public_token, &sk(&keys)).await;
    let row = link_sdk::server::store::tokens::verify(
        &app.state.db,
        app.clock.now(),
        link_sdk::server::store::tokens::TokenKind::Access,
        again["access_token"].as_str().unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(row.authorization_id.as_deref(), Some(id.as_str()));

    // One authorization.repaired webhook, with its audit record.
    let ev = events(&app, &app_id, WebhookEvent::AuthorizationRepaired).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["data"]["authorization_id"], id.as_str());
    assert_eq!((ev[0]["data"]["previous_state"].as_str(), ev[0]["data"]["state"].as_str()), (Some("NEEDS_REAUTH"), Some("EXCHANGED")));
    let repaired_at = a_repaired_at(&app, &id).await;
    assert_eq!(ev[0]["event_id"], webhooks::event_id_for(WebhookEvent::AuthorizationRepaired, &format!("{id}|repaired:{repaired_at}")));
    assert_eq!(actions(&app, &id).await.iter().filter(|a| *a == "authorization.repaired").count(), 1);

    // The payer refuses again later: a second NEEDS_REAUTH episode is its own fact (its own event_id).
    app.clock.advance(60);
    assert_eq!(sweep::refresh_payer_token(&app.state, &id).await.unwrap(), sweep::RefreshOutcome::Refused);
    let ev = events(&app, &app_id, WebhookEvent::NeedsReauth).await;
    assert_eq!(ev.len(), 2, "one per episode");
    assert_ne!(ev[0]["event_id"], ev[1]["event_id"]);
}

async fn a_repaired_at(app: &TestApp, id: &str) -> i64 {
    sqlx::query("SELECT repaired_at FROM authorizations WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
        .get::<Option<i64>, _>("repaired_at")
        .expect("repaired_at")
}

#[tokio::test]
async fn a_repair_token_is_single_use_expires_is_stored_as_a_hash_and_is_its_apps_only() {
    let app = server().await;
    let (_, keys) = app_keys(&app, "Repair test app").await;
    let (_, other) = app_keys(&app, "Another app").await;
    // A live MULTIPLE authorization may be repaired too (the patient renews before the grant ends).
    let (id, _, _) = linked(&app, &keys, "user-2", sandbox::MEMBER_TYPICAL, Usage::Multiple).await;
    let token = repair_token(&app, &keys, &id).await;

    // Stored only as its SHA-256.
    let rows = sqlx::query("SELECT token_hash FROM tokens WHERE kind = 'repair'").fetch_all(&app.state.db.pool).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<String, _>("token_hash"), link_sdk::server::platform::crypto::hash_token(&token));

    // Another app's key neither opens it nor spends it.
    let r = open_with(&app, &browser(), &other.test_publishable, &token, "").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_REPAIR_TOKEN"));
    // Its own app opens one session with it; a second opening is refused.
    let sid = session_of(&open_with(&app, &browser(), &keys.test_publishable, &token, "").await);
    let row = sqlx::query("SELECT repair_authorization_id, endpoint_id, external_id FROM link_sessions WHERE id = $1")
        .bind(&sid)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(row.get::<Option<String>, _>("repair_authorization_id").as_deref(), Some(id.as_str()));
    assert_eq!(row.get::<Option<String>, _>("endpoint_id").as_deref(), Some(sandbox::REFRESHABLE_ENDPOINT_ID));
    assert_eq!(row.get::<String, _>("external_id"), "user-2");
    let r = open_with(&app, &browser(), &keys.test_publishable, &token, "").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_REPAIR_TOKEN"));

    // Expired after 30 minutes.
    let late = repair_token(&app, &keys, &id).await;
    app.clock.advance(1801);
    let r = open_with(&app, &browser(), &keys.test_publishable, &late, "").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_REPAIR_TOKEN"));

    // An externalId other than the authorization's user is refused.
    let t = repair_token(&app, &keys, &id).await;
    let r = open_with(&app, &browser(), &keys.test_publishable, &t, "&externalId=someone-else").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_USER"));
    // ... and leaves the token unspent, for POST /link/hosted as for GET /link.
    let hosted = |body: Value| app.client.post(format!("{}/link/hosted", app.base_url)).bearer_auth(sk(&keys)).json(&body).send();
    let r = hosted(json!({"repairToken": t, "externalId": "someone-else"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = hosted(json!({"repairToken": t, "usage": "ONE_TIME"})).await.unwrap();
    assert_eq!(r.status(), 400, "the authorization is MULTIPLE");
    let sid = session_of(&open_with(&app, &browser(), &keys.test_publishable, &t, "&externalId=user-2").await);
    assert_eq!(step_of(&app, &sid).await.0, "consent");
    let r = hosted(json!({"repairToken": t})).await.unwrap();
    assert_eq!(r.status(), 400, "spent by the session it opened");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The hosted (redirect_uri) flow gets the code at its redirect_uri, with its state.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let r = browser()
        .get(format!(
            "{}/link?publishableKey={}&repairToken={}&redirect_uri={}&state=xyz",
            app.base_url,
            keys.test_publishable,
            enc(&token),
            enc(REDIRECT_URI)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("{REDIRECT_URI}?error=INVALID_REPAIR_TOKEN&state=xyz").as_str());
    // A hosted repair session starts like the modal's.
    let t = repair_token(&app, &keys, &id).await;
    let r = browser()
        .get(format!("{}/link?publishableKey={}&repairToken={}&redirect_uri={}", app.base_url, keys.test_publishable, enc(&t), enc(REDIRECT_URI)))
        .send()
        .await
        .unwrap();
    let sid = session_of(&r);
    assert_eq!(step_of(&app, &sid).await.0, "consent");
    // Malformed tokens are refused the same way.
    let r = open_with(&app, &browser(), &keys.test_publishable, "rpt_nope", "").await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_repair_signed_in_as_another_patient_is_refused_and_changes_nothing() {
    let app = server().await;
    let (app_id, keys) = app_keys(&app, "Repair test app").await;
    let (id, access_token, _) = linked(&app, &keys, "user-3", sandbox::MEMBER_TYPICAL, Usage::Multiple).await;
    let before = snapshot(&app, &id).await;
    let token = repair_token(&app, &keys, &id).await;
    let patient = browser();
    let sid = repair_flow(&app, &patient, &keys.test_publishable, &token, sandbox::MEMBER_SUBSCRIBER).await;
    let (step, code, authz) = step_of(&app, &sid).await;
    assert_eq!((step.as_str(), code.as_deref(), authz), ("error", Some("REPAIR_PATIENT_MISMATCH"), None));

    // Nothing merged: the authorization is exactly as it was, no second one, no webhook; an audit record says why.
    assert_eq!(snapshot(&app, &id).await, before);
    let n = authorizations_of(&app, &app_id).await;
    assert_eq!(n, 1);
    assert!(events(&app, &app_id, WebhookEvent::AuthorizationRepaired).await.is_empty());
    assert!(actions(&app, &id).await.iter().any(|a| a == "repair.patient_mismatch"));
    assert_eq!(fhir_patient(&app, &access_token).await, 200);

    // Closing the error screen ends the session with that code (onExit).
    let r = patient.post(format!("{}/link/s/{sid}/exit", app.base_url)).form(&[("x", "1")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (step, code, _) = step_of(&app, &sid).await;
    assert_eq!((step.as_str(), code.as_deref()), ("exited", Some("REPAIR_PATIENT_MISMATCH")));
}

#[tokio::test]
async fn repair_is_refused_for_one_time_ended_unknown_and_other_apps_authorizations() {
    let app = server().await;
    let (_, keys) = app_keys(&app, "Repair test app").await;
    let (_, other) = app_keys(&app, "Another app").await;
    let err = |v: &Value| v["error"].as_str().unwrap_or_default().to_string();

    let (one_time, _, _) = linked(&app, &keys, "user-4", sandbox::MEMBER_TYPICAL, Usage::OneTime).await;
    let r = post_repair(&app, json!({"secret_key": sk(&keys), "authorization_id": one_time})).await;
    assert_eq!(r.status(), 409);
    assert_eq!(err(&r.json().await.unwrap()), "invalid_grant");

    let (id, _, _) = linked(&app, &keys, "user-5", sandbox::MEMBER_TYPICAL, Usage::Multiple).await;
    // Another app's key: as unknown.
    let r = post_repair(&app, json!({"secret_key": sk(&other), "authorization_id": id})).await;
    assert_eq!(r.status(), 404);
    let r = post_repair(&app, json!({"secret_key": sk(&keys), "authorization_id": uuid::Uuid::new_v4().to_string()})).await;
    assert_eq!(r.status(), 404);
    let r = post_repair(&app, json!({"secret_key": "sk_test_unknown", "authorization_id": id})).await;
    assert_eq!(r.status(), 401);
    let r = post_repair(&app, json!({"secret_key": sk(&keys)})).await;
    assert_eq!((r.status(), err(&r.json().await.unwrap())), (reqwest::StatusCode::BAD_REQUEST, "invalid_request".into()));

    // A token issued before the authorization was revoked no longer opens a session; no new token is issued.
    let token = repair_token(&app, &keys, &id).await;
    transitions::expunge_authorization(&app.state, &id, StateReason::RevokedByApp).await.unwrap();
    let r = open_with(&app, &browser(), &keys.test_publishable, &token, "").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("INVALID_REPAIR_TOKEN"));
    let r = post_repair(&app, json!({"secret_key": sk(&keys), "authorization_id": id})).await;
    assert_eq!(r.status(), 409);
}

/// A refresh of the old grant in flight (its lease held) finishes before the repair replaces the grant: the
/// callback waits for the lease, then repairs; afterwards the lease is free again.
#[tokio::test]
async fn a_repair_waits_for_a_payer_refresh_in_flight() {
    let app = server().await;
    let (_, keys) = app_keys(&app, "Repair test app").await;
    let (id, access_token, _) = linked(&app, &keys, "user-6", sandbox::MEMBER_TYPICAL, Usage::Multiple).await;
    let token = repair_token(&app, &keys, &id).await;
    let patient = browser();
    let (sid, authorize) = repair_until_payer(&app, &patient, &keys.test_publishable, &token).await;
    let callback = sandbox::drive_consent(&patient, &authorize, sandbox::MEMBER_TYPICAL, true).await.unwrap();
    let now = app.clock.now();
    assert!(authorizations::take_refresh_lease(&app.state.db, &id, "a-refresh", now + 60, now).await.unwrap());
    let back = tokio::spawn({
        let patient = patient.clone();
        async move { patient.get(&callback).send().await.unwrap().status() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!back.is_finished(), "the callback waits for the refresh lease");
    assert_eq!(step_of(&app, &sid).await.0, "payer");
    authorizations::release_refresh_lease(&app.state.db, &id, "a-refresh").await.unwrap();
    assert_eq!(back.await.unwrap(), 200);
    let (step, code, authz) = step_of(&app, &sid).await;
    assert_eq!((step.as_str(), code, authz.as_deref()), ("syncing", None, Some(id.as_str())));
    assert!(authorizations::take_refresh_lease(&app.state.db, &id, "later", now + 60, now).await.unwrap(), "released");
    assert_eq!(fhir_patient(&app, &access_token).await, 200);
}
