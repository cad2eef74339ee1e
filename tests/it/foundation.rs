//! The foundation over real HTTP: pages render on the server, health and readiness, security headers,
//! request ids, static assets, and data that survives a restart.

use crate::common::spawn_app;

#[tokio::test]
async fn start_page_is_server_rendered_html_with_security_headers() {
    let app = spawn_app().await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("x-request-id"));
    let body = resp.text().await.unwrap();
    assert!(body.starts_with("<!DOCTYPE html>"));
    assert!(body.contains("Connect patients to their health plan"));
    // Every inline script carries this response's nonce.
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    for (i, _) in body.match_indices("<script") {
        let tag = &body[i..body[i..].find('>').unwrap() + i];
        assert!(tag.contains(&format!("nonce=\"{nonce}\"")), "script without nonce: {tag}");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn unknown_page_is_a_readable_404() {
    let app = spawn_app().await;
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Page not found"));
}

#[tokio::test]
async fn client_request_ids_are_replaced() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(format!("{}/healthz", app.base_url))
        .header("x-request-id", "forged")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "forged");
    assert!(id.len() >= 16);
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let app = spawn_app().await;
    let raw = reqwest::Client::builder().no_brotli().no_gzip().build().unwrap();
    let r = raw.get(format!("{}/", app.base_url)).header("accept-encoding", "br").send().await.unwrap();
    assert_eq!(r.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("br"));
}

#[tokio::test]
async fn data_survives_a_restart() {
    let (settings, dir, url) = crate::common::test_settings().await;
    let app = crate::common::spawn_app_with(settings.clone(), dir, url.clone()).await;
    sqlx::query("INSERT INTO audit_events (id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind("restart-check")
        .bind(1_i64)
        .bind("test")
        .bind("restart")
        .bind("{}")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    app.state.shutdown.cancel();
    let dir = app.dir;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let again = crate::common::spawn_app_with(settings, dir, url).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE id = $1")
        .bind("restart-check")
        .fetch_one(&again.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn graceful_shutdown_finishes_and_stops() {
    let (settings, dir, url) = crate::common::test_settings().await;
    let clock = link_sdk::server::platform::clock::ManualClock::new();
    let app = link_sdk::server::startup::Application::build(settings, std::sync::Arc::new(clock)).await.unwrap();
    let token = app.state.shutdown.clone();
    let base = app.base_url();
    let handle = tokio::spawn(app.run_until(std::future::pending()));
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
    token.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), handle).await.expect("stops").unwrap().unwrap();
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
    drop((dir, url));
}
