//! The integrator's /link/* API over real HTTP: exchange, introspect, token (refresh_token,
//! client_credentials, authorization_code), revoke, users, auth, the test-mode shortcut, /openapi.json,
//! and every error they document (RFC 6749 §5.2, RFC 6750 §3).

use crate::api_support::*;
use crate::common::TestApp;
use link_sdk::{
    domain::{Mode, Usage},
    server::{
        services::sync,
        store::{authorizations, link_sessions},
        surfaces::integrator_api,
    },
};
use serde_json::{json, Value};

async fn post_json(app: &crate::common::TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.post(format!("{}{}", app.base_url, path)).json(&body).send().await.unwrap()
}

async fn oauth_error(r: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    v
}

#[tokio::test]
async fn exchange_returns_the_documented_shape_and_marks_the_authorization() {
    let app = server().await;
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    assert!(v["access_token"].as_str().unwrap().starts_with("at_"));
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 86_400);
    assert!(v["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert!(v.get("refresh_expires_in").is_some());
    assert!(v["refresh_expires_in"].is_null(), "payer refresh expiry unknown → null");
    assert_eq!(v["patient"], format!("Patient/{}", patient()));
    assert_eq!(v["endpoint"]["id"], l.endpoint.id);
    assert_eq!(v["endpoint"]["name"], l.endpoint.name);
    assert_eq!(v["endpoint"]["label"], json!(["Medicare"]));
    assert_eq!(v["endpoint"]["refreshable"], true);
    assert_eq!(v["endpoint"]["resources"], json!(["Coverage", "ExplanationOfBenefit", "Patient"]));
    let a = authorizations::get(&app.state.db, &l.authorization_id).await.unwrap().unwrap();
    assert_eq!(a.state, "EXCHANGED");
    // Audited with our request id, no token in the record.
    let rows: Vec<(String, Option<String>, String)> = sqlx::query_as::<_, (String, Option<String>, String)>(
        "SELECT action, request_id, detail FROM audit_events WHERE authorization_id = $1",
    )
    .bind(&l.authorization_id)
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap();
    let ex = rows.iter().find(|r| r.0 == "token.exchanged").expect("audit record");
    assert!(ex.1.as_deref().is_some_and(|r| !r.is_empty()));
    assert!(!ex.2.contains("at_") && !ex.2.contains("public-token-"));
    // Only the hash is stored.
    let token = v["access_token"].as_str().unwrap();
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tokens WHERE token_hash = $1")
        .bind(link_sdk::server::platform::crypto::hash_token(token))
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n.0, 1);
}

#[tokio::test]
async fn exchange_one_time_or_non_refreshable_has_no_refresh_token() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    app.clock.advance(1000);
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    assert!(v.get("refresh_token").is_none());
    assert_eq!(v["expires_in"], 86_400 - 1000, "a ONE_TIME token ends with the data");
    let l2 = linked(&app, Usage::Multiple, false).await;
    let v = exchange(&app, &l2.public_token, &l2.keys.sk).await;
    assert!(v.get("refresh_token").is_none());
    assert_eq!(v["endpoint"]["refreshable"], false);
}

#[tokio::test]
async fn exchange_errors() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    // Missing parameters.
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token})).await;
    oauth_error(r, 400, "invalid_request").await;
    // Unknown secret key.
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token, "secret_key": "sk_test_nope"})).await;
    oauth_error(r, 401, "invalid_client").await;
    // Another app's secret key is refused and does not burn the token.
    let other = create_app(&app, "Other app").await;
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token, "secret_key": other.sk})).await;
    let v = oauth_error(r, 400, "invalid_grant").await;
    assert!(v["error_description"].as_str().unwrap().contains("not issued to this application"));
    // The live key of the same app is a different mode.
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token, "secret_key": l.keys.live_sk})).await;
    oauth_error(r, 400, "invalid_grant").await;
    // Unknown token.
    let r = post_json(&app, "/link/exchange", json!({"public_token": "public-token-nope", "secret_key": l.keys.sk})).await;
    oauth_error(r, 400, "invalid_grant").await;
    // First use works, second gets the specific error.
    exchange(&app, &l.public_token, &l.keys.sk).await;
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token, "secret_key": l.keys.sk})).await;
    let v = oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(v["error_description"], "public_token has already been exchanged");
}

#[tokio::test]
async fn public_token_expires_after_30_minutes() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    app.clock.advance(1801);
    let r = post_json(&app, "/link/exchange", json!({"public_token": l.public_token, "secret_key": l.keys.sk})).await;
    let v = oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(v["error_description"], "public_token has expired");
}

#[tokio::test]
async fn concurrent_exchanges_succeed_exactly_once() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let c = app.client.clone();
        let url = format!("{}/link/exchange", app.base_url);
        let body = json!({"public_token": l.public_token, "secret_key": l.keys.sk});
        handles.push(tokio::spawn(async move { c.post(url).json(&body).send().await.unwrap().status().as_u16() }));
    }
    let mut ok = 0;
    for h in handles {
        if h.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn introspect_patient_and_application_tokens_and_errors() {
    let app = server().await;
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let at = v["access_token"].as_str().unwrap();
    let r = get_bearer(&app, "/link/introspect", at).await;
    assert_eq!(r.status(), 200);
    let i: Value = r.json().await.unwrap();
    assert_eq!(i["active"], true);
    assert_eq!(i["patient"], format!("Patient/{}", patient()));
    assert_eq!(i["state"], "EXCHANGED");
    assert_eq!(i["user"]["externalId"], "user-1");
    assert_eq!(i["usage"], "MULTIPLE");
    assert_eq!(i["sub"], l.authorization_id);
    assert_eq!(i["endpoint"]["id"], l.endpoint.id);
    assert_eq!(i["exp"].as_i64().unwrap() - i["iat"].as_i64().unwrap(), 86_400);
    assert!(i["jti"].is_string());

    let apt = app_token(&app, &l.keys).await;
    let i: Value = get_bearer(&app, "/link/introspect", &apt).await.json().await.unwrap();
    assert_eq!(i["token_type"], "application");
    assert_eq!(i["sub"], l.keys.app_id);

    // No token: 401 with a bare Bearer challenge.
    let r = app.get("/link/introspect").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"link\"");
    // Bad token.
    let r = get_bearer(&app, "/link/introspect", "at_bogus").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("error=\"invalid_token\""));
    // A refresh token is not an access token.
    let r = get_bearer(&app, "/link/introspect", v["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 401);
    // Expired.
    app.clock.advance(86_401);
    let r = get_bearer(&app, "/link/introspect", at).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn refresh_rotates_and_detects_reuse() {
    let app = server().await;
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String, pk: String, sk: String| {
        let c = app.client.clone();
        let url = format!("{}/link/token", app.base_url);
        async move {
            c.post(url).basic_auth(pk, Some(sk)).form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]).send().await.unwrap()
        }
    };
    let r = refresh(rt.clone(), l.keys.pk.clone(), l.keys.sk.clone()).await;
    assert_eq!(r.status(), 200);
    let n: Value = r.json().await.unwrap();
    let at2 = n["access_token"].as_str().unwrap().to_string();
    let rt2 = n["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt2, rt);
    assert_eq!(n["patient"], format!("Patient/{}", patient()));
    // The refresh queued a re-sync.
    assert_eq!(sync::status(&app.state.db, &l.authorization_id).await.unwrap().unwrap().status, "pending");
    assert_eq!(get_bearer(&app, "/link/introspect", &at2).await.status(), 200);

    // JSON body works too, with client_id/client_secret.
    let r = app
        .client
        .post(format!("{}/link/token", app.base_url))
        .json(&json!({"grant_type": "refresh_token", "refresh_token": rt2, "client_id": l.keys.pk, "client_secret": l.keys.sk}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let n3: Value = r.json().await.unwrap();
    let at3 = n3["access_token"].as_str().unwrap().to_string();

    // Reusing a spent refresh token fails and revokes the grant's tokens.
    let r = refresh(rt.clone(), l.keys.pk.clone(), l.keys.sk.clone()).await;
    let e = oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(e["error_description"], "refresh_token has already been used");
    assert_eq!(get_bearer(&app, "/link/introspect", &at3).await.status(), 401);
}

/// `POST /link/token grant_type=refresh_token` with the link's app keys (HTTP Basic).
async fn refresh_grant(app: &TestApp, l: &Linked, rt: String) -> reqwest::Response {
    app.client
        .post(format!("{}/link/token", app.base_url))
        .basic_auth(&l.keys.pk, Some(&l.keys.sk))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refresh_retried_within_the_grace_window_gets_the_same_pair() {
    use link_sdk::server::{services::lifecycle, store::tokens::REFRESH_REUSE_GRACE_SECS};
    let app = server().await;
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let refresh = |rt: String| refresh_grant(&app, &l, rt);
    // The answer was lost on the way (a network retry): the same refresh token again gets the same new pair.
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    let first: Value = refresh(rt.clone()).await.json().await.unwrap();
    app.clock.advance(REFRESH_REUSE_GRACE_SECS - 1);
    let r = refresh(rt.clone()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again, first, "same access_token and refresh_token");
    let (at2, rt2) = (first["access_token"].as_str().unwrap().to_string(), first["refresh_token"].as_str().unwrap().to_string());
    assert_eq!(get_bearer(&app, "/link/introspect", &at2).await.status(), 200, "nothing was revoked");

    // Once the new refresh token was used, the old one again is a replay, even within the window.
    let third: Value = refresh(rt2.clone()).await.json().await.unwrap();
    let at3 = third["access_token"].as_str().unwrap().to_string();
    let again: Value = refresh(rt2.clone()).await.json().await.unwrap();
    assert_eq!(again, third, "rt2 retried at once: same pair");
    let rt3 = third["refresh_token"].as_str().unwrap().to_string();
    let _: Value = refresh(rt3.clone()).await.json().await.unwrap();
    let e = oauth_error(refresh(rt2).await, 400, "invalid_grant").await;
    assert_eq!(e["error_description"], "refresh_token has already been used");
    assert_eq!(get_bearer(&app, "/link/introspect", &at3).await.status(), 401, "the family is revoked");

    // After the window a reuse still revokes everything, and the sweep has cleared the kept answer.
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let rt = v["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| refresh_grant(&app, &l, rt);
    let first: Value = refresh(rt.clone()).await.json().await.unwrap();
    app.clock.advance(REFRESH_REUSE_GRACE_SECS + 1);
    lifecycle::sweep::sweep_once(&app.state).await.unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE reissue_enc IS NOT NULL")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(kept, 0, "the sweep clears kept answers after the window");
    let e = oauth_error(refresh(rt).await, 400, "invalid_grant").await;
    assert_eq!(e["error_description"], "refresh_token has already been used");
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(get_bearer(&app, "/link/introspect", at).await.status(), 401);
}

#[tokio::test]
async fn token_endpoint_errors() {
    let app = server().await;
    let l = linked(&app, Usage::Multiple, true).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let rt = v["refresh_token"].as_str().unwrap();
    let url = format!("{}/link/token", app.base_url);
    // No client authentication.
    let r = app.client.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).send().await.unwrap();
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    oauth_error(r, 401, "invalid_client").await;
    // Mismatched keys (publishable key of another app).
    let other = create_app(&app, "Other").await;
    let r = app.client.post(&url).basic_auth(&other.pk, Some(&l.keys.sk))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
    // Another app cannot use this refresh token.
    let r = app.client.post(&url).basic_auth(&other.pk, Some(&other.sk))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    // Missing grant_type / unsupported grant / missing refresh_token / repeated parameter.
    let r = app.client.post(&url).basic_auth(&l.keys.pk, Some(&l.keys.sk)).form(&[("x", "y")]).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    let r = app.client.post(&url).basic_auth(&l.keys.pk, Some(&l.keys.sk)).form(&[("grant_type", "password")]).send().await.unwrap();
    oauth_error(r, 400, "unsupported_grant_type").await;
    let r = app.client.post(&url).basic_auth(&l.keys.pk, Some(&l.keys.sk)).form(&[("grant_type", "refresh_token")]).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    let r = app.client.post(&url).basic_auth(&l.keys.pk, Some(&l.keys.sk))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=refresh_token&grant_type=refresh_token").send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    // Unknown refresh token.
    let r = app.client.post(&url).basic_auth(&l.keys.pk, Some(&l.keys.sk))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "rt_nope")]).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
}

#[tokio::test]
async fn client_credentials_issues_a_30_minute_application_token() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let r = app
        .client
        .post(format!("{}/link/token", app.base_url))
        .basic_auth(&l.keys.pk, Some(&l.keys.sk))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["access_token"].as_str().unwrap().starts_with("app_"));
    assert_eq!(v["expires_in"], 1800);
    assert!(v.get("refresh_token").is_none());
    let t = v["access_token"].as_str().unwrap();
    assert_eq!(get_bearer(&app, "/link/introspect", t).await.status(), 200);
    app.clock.advance(1801);
    assert_eq!(get_bearer(&app, "/link/introspect", t).await.status(), 401);
}

/// The end of a redirect-flow session: its `redirect_uri` with the authorization code (what `finish` redirects to).
async fn redirect_code(app: &crate::common::TestApp, sid: &str) -> String {
    let s = link_sessions::get(&app.state.db, sid).await.unwrap().expect("session");
    link_sdk::server::services::link_flow::redirect_flow_code(&app.state, &s).await.unwrap()
}

/// A redirect-flow session that reached an authorization (what the hosted screens do before `finish`).
async fn redirect_session(app: &crate::common::TestApp, l: &Linked, challenge: &str) -> String {
    let sid = link_sessions::create(
        &app.state.db.pool,
        app.clock_now(),
        link_sessions::NewSession {
            app_id: &l.keys.app_id,
            mode: Mode::Test,
            external_id: "user-1",
            usage: Usage::OneTime,
            options: Default::default(),
            endpoint_id: Some(&l.endpoint.id),
            host_origin: None,
            redirect_uri: Some(REDIRECT_URI),
            client_state: Some("xyz"),
            nonce: "n0nce",
            code_challenge: None,
            binder_hash: None,
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE link_sessions SET code_challenge = $1, authorization_id = $2 WHERE id = $3")
        .bind(challenge)
        .bind(&l.authorization_id)
        .bind(&sid)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    sid
}

#[tokio::test]
async fn authorization_code_grant_with_pkce() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let sid = redirect_session(&app, &l, &integrator_api::token::pkce_challenge(verifier)).await;
    let url = redirect_code(&app, &sid).await;
    let u = url::Url::parse(&url).unwrap();
    assert!(url.starts_with(REDIRECT_URI));
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["code"].clone();
    assert!(code.starts_with("ac_"));
    let token_url = format!("{}/link/token", app.base_url);
    let form = |verifier: &str, redirect: &str| {
        vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.clone()),
            ("code_verifier".to_string(), verifier.to_string()),
            ("redirect_uri".to_string(), redirect.to_string()),
            ("client_id".to_string(), l.keys.pk.clone()),
        ]
    };
    // Wrong redirect_uri and wrong verifier are refused (each consumes the code: single use).
    let r = app.client.post(&token_url).form(&form(verifier, "https://evil.example/cb")).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    let sid = redirect_session(&app, &l, &integrator_api::token::pkce_challenge(verifier)).await;
    let url = redirect_code(&app, &sid).await;
    let code2 = url::Url::parse(&url).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let mut f = form("x".repeat(43).as_str(), REDIRECT_URI);
    f[1].1 = code2.clone();
    let r = app.client.post(&token_url).form(&f).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    // Short verifier is a malformed request.
    let mut f = form("short", REDIRECT_URI);
    f[1].1 = code2;
    let r = app.client.post(&token_url).form(&f).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    // The right one.
    let sid = redirect_session(&app, &l, &integrator_api::token::pkce_challenge(verifier)).await;
    let url = redirect_code(&app, &sid).await;
    let code3 = url::Url::parse(&url).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let mut f = form(verifier, REDIRECT_URI);
    f[1].1 = code3.clone();
    let r = app.client.post(&token_url).form(&f).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["access_token"].as_str().unwrap().starts_with("at_"));
    assert_eq!(v["patient"], format!("Patient/{}", patient()));
    // Replay of the code: refused, and the token it granted is revoked.
    let r = app.client.post(&token_url).form(&f).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    assert_eq!(get_bearer(&app, "/link/introspect", v["access_token"].as_str().unwrap()).await.status(), 401);
}

/// `POST /link/token` with `authorization_code`: a client that sends credentials is authenticated with them (HTTP
/// Basic or `client_secret_post`, RFC 6749 §2.3.1), a wrong secret is 401 `invalid_client` (never ignored); a public
/// client sends only `client_id`; PKCE is required of both.
#[tokio::test]
async fn the_token_endpoint_authenticates_confidential_clients() {
    use base64::Engine as _;
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let token_url = format!("{}/link/token", app.base_url);
    let basic = |pk: &str, sk: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{pk}:{sk}")));
    let new_code = || async {
        let sid = redirect_session(&app, &l, &integrator_api::token::pkce_challenge(verifier)).await;
        let url = redirect_code(&app, &sid).await;
        url::Url::parse(&url).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string()
    };
    let form = |code: &str, extra: &[(&str, &str)]| {
        let mut f = vec![
            ("grant_type".to_string(), "authorization_code".to_string()),
            ("code".to_string(), code.to_string()),
            ("code_verifier".to_string(), verifier.to_string()),
            ("redirect_uri".to_string(), REDIRECT_URI.to_string()),
        ];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        f
    };
    // Basic with a wrong secret: refused, and the code is not spent.
    let code = new_code().await;
    let r = app.client.post(&token_url).header("authorization", basic(&l.keys.pk, "sk_test_wrong")).form(&form(&code, &[])).send().await.unwrap();
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    oauth_error(r, 401, "invalid_client").await;
    assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
    // The same secret in the body (client_secret_post): also refused.
    let r = app.client.post(&token_url).form(&form(&code, &[("client_id", &l.keys.pk), ("client_secret", "sk_test_wrong")])).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
    // Another app's keys, or a client_id that is not the authenticated one.
    let o = create_app(&app, "Other").await;
    let r = app.client.post(&token_url).header("authorization", basic(&o.pk, &o.sk)).form(&form(&code, &[])).send().await.unwrap();
    oauth_error(r, 400, "invalid_grant").await;
    let code = new_code().await;
    let r = app
        .client
        .post(&token_url)
        .header("authorization", basic(&l.keys.pk, &l.keys.sk))
        .form(&form(&code, &[("client_id", &o.pk)]))
        .send()
        .await
        .unwrap();
    oauth_error(r, 401, "invalid_client").await;
    // The right Basic credentials.
    let r = app.client.post(&token_url).header("authorization", basic(&l.keys.pk, &l.keys.sk)).form(&form(&code, &[])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // client_secret_post.
    let code = new_code().await;
    let r = app.client.post(&token_url).form(&form(&code, &[("client_id", &l.keys.pk), ("client_secret", &l.keys.sk)])).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A public client: client_id alone, PKCE its proof; without client_id nothing identifies it.
    let code = new_code().await;
    let r = app.client.post(&token_url).form(&form(&code, &[])).send().await.unwrap();
    oauth_error(r, 400, "invalid_request").await;
    let r = app.client.post(&token_url).form(&form(&code, &[("client_id", &l.keys.pk)])).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn link_auth_validates_parameters() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let challenge = integrator_api::token::pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    let base = |extra: &str| {
        format!(
            "/link/auth?response_type=code&client_id={}&redirect_uri={}&code_challenge={challenge}&code_challenge_method=S256&state=s1&flexpa_external_id=user-1{extra}",
            l.keys.pk,
            urlencode(REDIRECT_URI)
        )
    };
    // Unknown client, unregistered redirect_uri: 400, never a redirect.
    assert_eq!(app.get("/link/auth?client_id=pk_test_nope").await.status(), 400);
    let r = app.get(&format!("/link/auth?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F", l.keys.pk)).await;
    assert_eq!(r.status(), 400);
    // After the redirect_uri is trusted, errors go back to it with state.
    let r = app.get(&base("").replace("code_challenge_method=S256", "code_challenge_method=plain")).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT_URI) && loc.contains("error=invalid_request") && loc.contains("state=s1"), "{loc}");
    let r = app.get(&base("").replace("response_type=code", "response_type=token")).await;
    assert!(r.headers()["location"].to_str().unwrap().contains("error=unsupported_response_type"));
    let r = app.get(&base("&flexpa_endpoint_id=00000000-0000-0000-0000-000000000000")).await;
    assert!(r.headers()["location"].to_str().unwrap().contains("error=invalid_request"));
    // Valid: into the hosted Link flow, with a session carrying the challenge.
    let r = app.get(&base(&format!("&flexpa_endpoint_id={}", l.endpoint.id))).await;
    assert_eq!(r.status(), 303);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let sid = loc.strip_prefix("/link/s/").expect("hosted flow").to_string();
    let s = link_sessions::get(&app.state.db, &sid).await.unwrap().unwrap();
    assert_eq!(s.redirect_uri.as_deref(), Some(REDIRECT_URI));
    assert_eq!(s.client_state.as_deref(), Some("s1"));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn revoke_expunges_that_users_authorizations_of_that_patient_and_endpoint_only() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    // The same patient linked twice at that endpoint by this user, another patient, and another user of the app
    // who linked the very same payer patient (a family member, a shared device): never touched.
    let again = create_authorization(&app, &l.keys, &l.endpoint, "user-1", patient(), Usage::OneTime).await;
    let other = create_authorization(&app, &l.keys, &l.endpoint, "user-2", "other-patient", Usage::OneTime).await;
    let same_patient_other_user = create_authorization(&app, &l.keys, &l.endpoint, "user-3", patient(), Usage::OneTime).await;
    store_resources(&app, &other, &fixture_resources()).await;
    let v = exchange(&app, &l.public_token, &l.keys.sk).await;
    let at = v["access_token"].as_str().unwrap();
    // Errors first: no token, wrong secret, app token.
    let r = app.client.post(format!("{}/link/revoke", app.base_url)).json(&json!({"secret_key": l.keys.sk})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let o = create_app(&app, "Other").await;
    let r = app.client.post(format!("{}/link/revoke", app.base_url)).bearer_auth(at).json(&json!({"secret_key": o.sk})).send().await.unwrap();
    oauth_error(r, 401, "invalid_client").await;
    let apt = app_token(&app, &l.keys).await;
    let r = app.client.post(format!("{}/link/revoke", app.base_url)).bearer_auth(&apt).json(&json!({"secret_key": l.keys.sk})).send().await.unwrap();
    assert_eq!(r.status(), 403);

    let r = app.client.post(format!("{}/link/revoke", app.base_url)).bearer_auth(at).json(&json!({"secret_key": l.keys.sk})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["count"], 2);
    for id in [&l.authorization_id, &again] {
        assert_eq!(authorizations::get(&app.state.db, id).await.unwrap().unwrap().state, "REVOKED");
    }
    assert_eq!(authorizations::get(&app.state.db, &other).await.unwrap().unwrap().state, "AUTHORIZED");
    assert_eq!(authorizations::get(&app.state.db, &same_patient_other_user).await.unwrap().unwrap().state, "AUTHORIZED");
    let left: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM resources WHERE authorization_id = $1")
        .bind(&l.authorization_id).fetch_one(&app.state.db.pool).await.unwrap();
    assert_eq!(left.0, 0);
    let kept: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM resources WHERE authorization_id = $1")
        .bind(&other).fetch_one(&app.state.db.pool).await.unwrap();
    assert_eq!(kept.0, 18);
    // The token no longer works.
    let r = get_bearer(&app, "/link/introspect", at).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn users_lists_authorizations_with_sync_status() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let second = create_authorization(&app, &l.keys, &l.endpoint, "user-1", patient(), Usage::Multiple).await;
    sync::enqueue(&app.state.db, &second, app.clock_now()).await.unwrap();
    let r = app.client.get(format!("{}/link/users/user-1", app.base_url)).bearer_auth(&l.keys.sk).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["externalId"], "user-1");
    let list = v["authorizations"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let s = list.iter().find(|a| a["id"] == second.as_str()).unwrap();
    assert_eq!(s["sync"]["status"], "pending");
    assert_eq!(s["usage"], "MULTIPLE");
    assert_eq!(s["endpoint"]["id"], l.endpoint.id);
    // Basic pk:sk works too; another app sees nothing; no key → 401.
    let r = app.client.get(format!("{}/link/users/user-1", app.base_url)).basic_auth(&l.keys.pk, Some(&l.keys.sk)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let o = create_app(&app, "Other").await;
    let v: Value = app.client.get(format!("{}/link/users/user-1", app.base_url)).bearer_auth(&o.sk).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["authorizations"], json!([]));
    let r = app.get("/link/users/user-1").await;
    oauth_error(r, 401, "invalid_client").await;
}

#[tokio::test]
async fn test_shortcut_refuses_live_keys_and_bad_input() {
    let app = server().await;
    let k = create_app(&app, "A").await;
    let r = post_json(&app, "/link/test/public_token", json!({"secret_key": k.live_sk, "external_id": "u"})).await;
    oauth_error(r, 400, "unauthorized_client").await;
    let r = post_json(&app, "/link/test/public_token", json!({"secret_key": k.sk})).await;
    oauth_error(r, 400, "invalid_request").await;
    let r = post_json(&app, "/link/test/public_token", json!({"secret_key": k.sk, "external_id": "u", "endpoint_id": "nope"})).await;
    oauth_error(r, 400, "invalid_request").await;
}

#[tokio::test]
async fn openapi_document_describes_the_routes() {
    let app = server().await;
    let r = app.get("/openapi.json").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["openapi"], "3.1.0");
    for p in ["/link/exchange", "/link/introspect", "/link/token", "/link/revoke", "/link/users/{externalId}", "/link/auth",
              "/fhir/metadata", "/fhir/ExplanationOfBenefit", "/fhir/Patient/{id}/$everything"] {
        assert!(v["paths"].get(p).is_some(), "missing {p}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_answered_in_each_interfaces_error_form() {
    let app = server().await;
    let r = app.client.get(format!("{}/link/exchange", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "RFC 6749 §5.2 body: {v}");
    let r = app.client.delete(format!("{}/fhir/Patient/x", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome");
    assert_eq!(v["issue"][0]["code"], "not-supported");
}
