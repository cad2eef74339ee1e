//! Several plans in one sitting (`multiplePlans`) and the reuse of an existing authorization when the same plan
//! and payer patient sign in again, over HTTP with the sandbox payers: each plan its own authorization and
//! `public_token` (each exchanged once), one session and one consent, the `ANOTHER_PLAN` and `PLAN_REUSED`
//! events, and an integrator that did not opt in keeping today's single success.

use link_sdk::server::{
    store::{
        link_sessions,
        tokens::{self, TokenKind},
    },
    surfaces::sandbox,
};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::{
    common::{browser, spawn_app, TestApp},
    link::{
        enc, handoff, location, new_app, open, post_form, sandbox_sign_in, status_after_sync, step_of, to_search, Keys,
        Now as _, ORIGIN,
    },
};

/// A modal session's entry URL for user `user`, `usage`, with `extra` query parameters.
fn entry(pk: &str, user: &str, usage: &str, extra: &str) -> String {
    format!("/link?publishableKey={pk}&externalId={user}&usage={usage}&origin={}&nonce=abcdef0123456789{extra}", enc(ORIGIN))
}

/// Signs `member` in at `endpoint` from the search step and waits for the sync: returns the final `/status`.
async fn link_plan(app: &TestApp, sid: &str, endpoint: &str, member: &str) -> Value {
    let u = handoff(app, sid, endpoint).await;
    let callback = sandbox_sign_in(app, &u, member).await;
    let r = app.client.get(&callback).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("data-result=\"authorized\""));
    let status = status_after_sync(app, sid).await;
    assert_eq!(status["step"], "success", "{status}");
    status
}

/// The authorization a `public_token` stands for (before it is exchanged).
async fn authorization_of(app: &TestApp, token: &str) -> String {
    let row = tokens::verify(&app.state.db, app.clock_now(), TokenKind::Public, token).await.unwrap().expect("valid token");
    row.authorization_id.expect("an authorization")
}

/// `POST /link/exchange`: the status and JSON answer.
async fn exchange(app: &TestApp, keys: &Keys, token: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/link/exchange", app.base_url))
        .json(&json!({"public_token": token, "secret_key": keys.test_sk}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Exchanges `token` (must succeed) and returns the authorization its access token reads (`/link/introspect`).
async fn exchanged_authorization(app: &TestApp, keys: &Keys, token: &str) -> String {
    let (code, body) = exchange(app, keys, token).await;
    assert_eq!(code, 200, "{body}");
    let access = body["access_token"].as_str().unwrap();
    let r = app.client.get(format!("{}/link/introspect", app.base_url)).bearer_auth(access).send().await.unwrap();
    let intro: Value = r.json().await.unwrap();
    intro["sub"].as_str().expect("an authorization").to_string()
}

/// The names of a session's recorded events, in order.
async fn event_names(app: &TestApp, sid: &str) -> Vec<String> {
    let s = link_sessions::get(&app.state.db, sid).await.unwrap().unwrap();
    sqlx::query("SELECT name FROM link_events WHERE session_public_id = $1 ORDER BY seq")
        .bind(s.public_id.unwrap())
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .collect()
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query(sql).bind(bind).fetch_one(&app.state.db.pool).await.unwrap().get::<i64, _>(0)
}

#[tokio::test]
async fn two_plans_in_one_session_are_two_authorizations_with_a_public_token_each() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry(&keys.test_pk, "user-2p", "ONE_TIME", "&multiplePlans=true")).await;
    to_search(&app, &sid).await;

    let first = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    let t1 = first["publicToken"].as_str().expect("the first plan's token").to_string();
    assert_eq!(first["endpointId"], sandbox::REFRESHABLE_ENDPOINT_ID);
    assert_eq!(first["reused"], false);
    let page = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(page.contains("data-testid=\"another-plan\"") && page.contains("data-multiple-plans=\"true\""), "{page}");

    // Another browser cannot send the session back to search.
    let stranger = browser();
    stranger.post(format!("{}/link/s/{sid}/another", app.base_url)).form(&[("bind", "x")]).send().await.unwrap();
    assert_eq!(step_of(&app, &sid).await.0, "success");

    // "Connect another plan": back to search, no second consent, the first token's copy gone from the session.
    let r = post_form(&app, &format!("/link/s/{sid}/another"), &[]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(step_of(&app, &sid).await, ("search".into(), None));
    let status: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert!(status["publicToken"].is_null(), "{status}");

    let second = link_plan(&app, &sid, sandbox::NON_REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    let t2 = second["publicToken"].as_str().expect("the second plan's token").to_string();
    assert_ne!(t1, t2);
    assert_eq!(second["endpointId"], sandbox::NON_REFRESHABLE_ENDPOINT_ID);
    let page = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(page.contains("2 plans connected"), "{page}");

    // "Done" (the close) ends the session with success.
    let r = post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(step_of(&app, &sid).await, ("done".into(), None));

    let (a1, a2) = (authorization_of(&app, &t1).await, authorization_of(&app, &t2).await);
    assert_ne!(a1, a2, "each plan is its own authorization");
    for (token, authz) in [(&t1, &a1), (&t2, &a2)] {
        assert_eq!(&exchanged_authorization(&app, &keys, token).await, authz);
        let (again, body) = exchange(&app, &keys, token).await;
        assert_eq!(again, 400, "each public_token is exchanged once: {body}");
    }
    let user_authz = count(&app, "SELECT COUNT(*) FROM authorizations WHERE external_id = $1", "user-2p").await;
    assert_eq!(user_authz, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM consents WHERE link_session_id = $1", &sid).await, 1, "one consent");

    // One session in the funnel, a success; ANOTHER_PLAN once; the webhook's list is sent at the end, once.
    let names = event_names(&app, &sid).await;
    assert_eq!(names.iter().filter(|n| *n == "ANOTHER_PLAN").count(), 1, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "PAYER_AUTHORIZED").count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "CONSENT_GIVEN").count(), 1, "{names:?}");
    let outcomes = count(&app, "SELECT COUNT(*) FROM link_outcomes WHERE app_id = $1", &keys.app_id).await;
    assert_eq!(outcomes, 1, "one session counts once");
    let succeeded =
        count(&app, "SELECT COUNT(*) FROM link_outcomes WHERE app_id = $1 AND succeeded_at IS NOT NULL AND ended_at IS NULL", &keys.app_id).await;
    assert_eq!(succeeded, 1);
    let reported = count(&app, "SELECT COUNT(*) FROM link_outcomes WHERE app_id = $1 AND reported_at IS NOT NULL", &keys.app_id).await;
    assert_eq!(reported, 1, "link.events queued when the session is done");
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    let r = app
        .client
        .get(format!("{}/link/sessions/{}", app.base_url, s.public_id.unwrap()))
        .bearer_auth(&keys.test_sk)
        .send()
        .await
        .unwrap();
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["status"], "success", "{read}");
}

#[tokio::test]
async fn the_same_plan_signed_in_twice_reuses_its_authorization() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry(&keys.test_pk, "user-again", "MULTIPLE", "&multiplePlans=true")).await;
    to_search(&app, &sid).await;
    let first = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    let t1 = first["publicToken"].as_str().unwrap().to_string();
    let a1 = authorization_of(&app, &t1).await;
    post_form(&app, &format!("/link/s/{sid}/another"), &[]).await;

    let second = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    assert_eq!(second["reused"], true, "{second}");
    let t2 = second["publicToken"].as_str().unwrap().to_string();
    assert_ne!(t1, t2, "a token of its own");
    assert_eq!(authorization_of(&app, &t2).await, a1, "the token stands for the existing authorization");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM authorizations WHERE external_id = $1", "user-again").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sync_jobs WHERE authorization_id = $1", &a1).await, 2, "re-synced");
    let names = event_names(&app, &sid).await;
    assert_eq!(names.iter().filter(|n| *n == "PLAN_REUSED").count(), 1, "{names:?}");
    let audit = sqlx::query("SELECT detail FROM audit_events WHERE action = 'payer.authorized' AND authorization_id = $1")
        .bind(&a1)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let mut reused: Vec<bool> = audit
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.get::<String, _>("detail")).unwrap()["reused"].as_bool().unwrap())
        .collect();
    reused.sort();
    assert_eq!(reused, vec![false, true]);
    // Both tokens exchange (once each), to the one authorization, which still reads its data with fresh tokens.
    for token in [&t1, &t2] {
        assert_eq!(exchanged_authorization(&app, &keys, token).await, a1);
    }

    // Back to the search once more, then closed there: still the session's success (the plans stay linked).
    post_form(&app, &format!("/link/s/{sid}/another"), &[]).await;
    assert_eq!(step_of(&app, &sid).await.0, "search");
    post_form(&app, &format!("/link/s/{sid}/exit"), &[]).await;
    assert_eq!(step_of(&app, &sid).await, ("done".into(), None), "closing after a linked plan is a success");
    let status: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert!(status["publicToken"].is_null(), "no token of an unfinished round: {status}");

    // Never across apps, never for a ONE_TIME link: each of those is a new authorization.
    let other = new_app(&app, false).await;
    let sid = open(&app, &entry(&other.test_pk, "user-again", "MULTIPLE", "")).await;
    to_search(&app, &sid).await;
    let s = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    assert_eq!(s["reused"], false);
    assert_ne!(authorization_of(&app, s["publicToken"].as_str().unwrap()).await, a1);
    let sid = open(&app, &entry(&keys.test_pk, "user-again", "ONE_TIME", "")).await;
    to_search(&app, &sid).await;
    let s = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    assert_eq!(s["reused"], false);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM authorizations WHERE external_id = $1", "user-again").await, 3);
}

#[tokio::test]
async fn without_multiple_plans_success_never_goes_back_to_search() {
    let app = spawn_app().await;
    let keys = new_app(&app, false).await;
    let sid = open(&app, &entry(&keys.test_pk, "user-one", "ONE_TIME", "")).await;
    to_search(&app, &sid).await;
    let status = link_plan(&app, &sid, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL).await;
    let token = status["publicToken"].as_str().unwrap().to_string();
    let page = app.get(&format!("/link/s/{sid}")).await.text().await.unwrap();
    assert!(!page.contains("another-plan") && page.contains("data-multiple-plans=\"false\""), "{page}");
    let r = post_form(&app, &format!("/link/s/{sid}/another"), &[]).await;
    assert_eq!(location(&r), format!("/link/s/{sid}"));
    assert_eq!(step_of(&app, &sid).await, ("success".into(), None), "still on the success screen");
    let status: Value = app.get(&format!("/link/s/{sid}/status")).await.json().await.unwrap();
    assert_eq!(status["publicToken"].as_str(), Some(token.as_str()), "the token is still there for onSuccess");
    assert!(!event_names(&app, &sid).await.iter().any(|n| n == "ANOTHER_PLAN"));
    // The hosted flow ignores the option: it ends with one redirect carrying one result.
    let url = format!(
        "/link?publishableKey={}&externalId=u&usage=ONE_TIME&redirect_uri={}&multiplePlans=true",
        keys.test_pk,
        enc(crate::link::REDIRECT)
    );
    let hosted = open(&app, &url).await;
    assert!(!link_sessions::get(&app.state.db, &hosted).await.unwrap().unwrap().options.multiple_plans);
}
