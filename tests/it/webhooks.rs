//! Webhooks against a real receiver on loopback: signatures verified with the public `verify_signature`,
//! deliveries retried with backoff after failures (the clock is moved, never slept on), and each `event_id`
//! processed once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post, Router};
use crate::common::{spawn_app, TestApp};
use link_sdk::server::{
    platform::clock::{Clock as _, ManualClock},
    services::webhooks::{self, Envelope, DEFAULT_TOLERANCE_SECS, MAX_ATTEMPTS, SIGNATURE_HEADER},
    store::apps::{self, NewApp},
};
use secrecy::ExposeSecret as _;
use serde_json::json;
use sqlx::Row as _;

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Every request, in order: (event_id, signature valid, answered status).
    attempts: Vec<(String, bool, u16)>,
    /// Events processed (valid signature, answered 2xx, first time seen).
    processed: Vec<Envelope>,
    /// event_id → times it was processed (must stay 1).
    processed_count: HashMap<String, u32>,
}

#[derive(Clone)]
struct Receiver {
    secret: Arc<Mutex<String>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<Mutex<u32>>,
    seen: Arc<Mutex<Seen>>,
    clock: ManualClock,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let secret = r.secret.lock().unwrap().clone();
    let valid = webhooks::verify_signature(&secret, &header, &body, r.clock.now(), DEFAULT_TOLERANCE_SECS);
    let envelope: Option<Envelope> = serde_json::from_slice(&body).ok();
    let event_id = envelope.as_ref().map(|e| e.event_id.clone()).unwrap_or_default();
    let status = {
        let mut fail = r.fail_first.lock().unwrap();
        if !valid {
            StatusCode::UNAUTHORIZED
        } else if *fail > 0 {
            *fail -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    };
    let mut guard = r.seen.lock().unwrap();
    let seen = &mut *guard;
    seen.attempts.push((event_id.clone(), valid, status.as_u16()));
    if status == StatusCode::OK {
        // A receiver de-duplicates on event_id: a repeat is acknowledged but not processed again.
        let count = seen.processed_count.entry(event_id).or_insert(0);
        if *count == 0 {
            seen.processed.push(envelope.expect("valid envelope"));
        }
        *count += 1;
    }
    status
}

/// Starts a receiver on 127.0.0.1:0 and returns its URL.
async fn start_receiver(r: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let router = Router::new().route("/hooks", post(receive)).with_state(r);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn setup(fail_first: u32) -> (TestApp, Receiver, String) {
    let app = spawn_app().await;
    let receiver = Receiver {
        secret: Arc::new(Mutex::new(String::new())),
        fail_first: Arc::new(Mutex::new(fail_first)),
        seen: Arc::new(Mutex::new(Seen::default())),
        clock: app.clock.clone(),
    };
    let url = start_receiver(receiver.clone()).await;
    let (created, _keys) = apps::create(
        &app.state.db,
        app.clock.now(),
        NewApp { name: "Webhook test app".into(), webhook_url: Some(url), ..Default::default() },
    )
    .await
    .unwrap();
    let secret = webhooks::ensure_signing_secret(&app.state, &created.id).await.unwrap();
    assert!(secret.expose_secret().starts_with("whsec_"));
    // The same secret on every call (it is stored sealed, not regenerated).
    let again = webhooks::ensure_signing_secret(&app.state, &created.id).await.unwrap();
    assert_eq!(secret.expose_secret(), again.expose_secret());
    *receiver.secret.lock().unwrap() = secret.expose_secret().to_string();
    (app, receiver, created.id)
}

/// Runs delivery passes (ours and the background worker's) until the receiver has seen `n` requests.
async fn deliver_until_attempts(app: &TestApp, r: &Receiver, n: usize) {
    for _ in 0..200 {
        webhooks::deliver_due_once(&app.state).await.unwrap();
        if r.seen.lock().unwrap().attempts.len() >= n {
            // Let the worker's bookkeeping of an in-flight attempt land.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("receiver saw {} requests, expected {n}", r.seen.lock().unwrap().attempts.len());
}

async fn delivery_rows(app: &TestApp, app_id: &str) -> Vec<(String, i64, Option<i64>, i64, Option<i64>)> {
    sqlx::query(
        "SELECT event_id, attempts, delivered_at, next_attempt_at, dead_at FROM webhook_deliveries \
         WHERE app_id = $1 ORDER BY event_id",
    )
    .bind(app_id)
    .fetch_all(&app.state.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| {
        (
            r.try_get("event_id").unwrap(),
            r.try_get("attempts").unwrap(),
            r.try_get("delivered_at").unwrap(),
            r.try_get("next_attempt_at").unwrap(),
            r.try_get("dead_at").unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_and_each_event_is_processed_once() {
    let (app, r, app_id) = setup(2).await;
    let now = app.clock.now();
    enqueue(&app, now, &app_id, "sync_completed", json!({"authorization_id": "a1", "status": "complete"}))
        .await
        .unwrap();
    enqueue(&app, now, &app_id, "sync_failed", json!({"authorization_id": "a2", "exit_code": "PAYER_SERVER_ERROR"}))
        .await
        .unwrap();

    // First attempt of both fails (the receiver answers 500 twice).
    deliver_until_attempts(&app, &r, 2).await;
    let rows = delivery_rows(&app, &app_id).await;
    assert_eq!(rows.len(), 2);
    for (_, attempts, delivered, next, dead) in &rows {
        assert_eq!(*attempts, 1);
        assert!(delivered.is_none() && dead.is_none());
        // Exponential backoff with jitter: the first retry waits 15 to 30 s.
        assert!((now + 15..=now + 30).contains(next), "next attempt at +{}", next - now);
    }

    // Not due yet: nothing is sent however often the worker runs.
    assert_eq!(webhooks::deliver_due_once(&app.state).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1200)).await; // one tick of the background worker
    assert_eq!(r.seen.lock().unwrap().attempts.len(), 2);

    // Move past the backoff: the retries succeed.
    app.clock.advance(31);
    deliver_until_attempts(&app, &r, 4).await;
    let rows = delivery_rows(&app, &app_id).await;
    for (_, attempts, delivered, _, _) in &rows {
        assert_eq!(*attempts, 2);
        assert!(delivered.is_some());
    }

    // Nothing more is sent once delivered.
    app.clock.advance(86_400);
    assert_eq!(webhooks::deliver_due_once(&app.state).await.unwrap(), 0);

    let seen = r.seen.lock().unwrap();
    assert_eq!(seen.attempts.len(), 4);
    assert!(seen.attempts.iter().all(|(_, valid, _)| *valid), "every request carried a valid signature");
    // event_id is stable across retries: each id was seen exactly twice (one failure, one success).
    let mut per_id: HashMap<&str, Vec<u16>> = HashMap::new();
    for (id, _, status) in &seen.attempts {
        per_id.entry(id.as_str()).or_default().push(*status);
    }
    assert_eq!(per_id.len(), 2);
    for statuses in per_id.values() {
        assert_eq!(statuses, &vec![500, 200]);
    }
    assert!(seen.processed_count.values().all(|n| *n == 1));
    let events: HashSet<&str> = seen.processed.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, HashSet::from(["sync_completed", "sync_failed"]));
    for e in &seen.processed {
        assert!(e.event_id.starts_with("evt_"));
        assert_eq!(e.version, webhooks::ENVELOPE_VERSION);
        assert!(e.timestamp.ends_with('Z'));
        assert!(e.data.get("authorization_id").is_some());
    }
    let stored: HashSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    let processed: HashSet<String> = seen.processed.iter().map(|e| e.event_id.clone()).collect();
    assert_eq!(stored, processed);
}

#[tokio::test]
async fn a_delivery_is_given_up_after_the_last_attempt() {
    let (app, r, app_id) = setup(u32::MAX).await;
    enqueue(&app, app.clock.now(), &app_id, "authorization.needs_reauth", json!({"authorization_id": "a1"}))
        .await
        .unwrap();
    for attempt in 1..=MAX_ATTEMPTS as usize {
        deliver_until_attempts(&app, &r, attempt).await;
        // The longest backoff (6 h cap, jitter included) is always passed by 7 h.
        app.clock.advance(7 * 3600);
    }
    let rows = delivery_rows(&app, &app_id).await;
    assert_eq!(rows[0].1, MAX_ATTEMPTS);
    assert!(rows[0].4.is_some(), "marked dead");
    assert!(rows[0].2.is_none());
    assert_eq!(webhooks::deliver_due_once(&app.state).await.unwrap(), 0);
    assert_eq!(r.seen.lock().unwrap().attempts.len(), MAX_ATTEMPTS as usize);
    assert!(r.seen.lock().unwrap().processed.is_empty());
}

#[tokio::test]
async fn signatures_bind_secret_body_and_time() {
    let (app, r, app_id) = setup(0).await;
    enqueue(&app, app.clock.now(), &app_id, "authorization_revoked", json!({"authorization_id": "a9"}))
        .await
        .unwrap();
    deliver_until_attempts(&app, &r, 1).await;
    assert_eq!(r.seen.lock().unwrap().processed.len(), 1);

    let secret = r.secret.lock().unwrap().clone();
    let body = br#"{"event_id":"evt_x"}"#;
    let now = app.clock.now();
    let header = webhooks::sign(&secret, now, body);
    assert!(webhooks::verify_signature(&secret, &header, body, now, DEFAULT_TOLERANCE_SECS));
    assert!(!webhooks::verify_signature(&secret, &header, body, now + DEFAULT_TOLERANCE_SECS + 1, DEFAULT_TOLERANCE_SECS));
    assert!(!webhooks::verify_signature("whsec_other", &header, body, now, DEFAULT_TOLERANCE_SECS));
    assert!(!webhooks::verify_signature(&secret, &header, br#"{"event_id":"evt_y"}"#, now, DEFAULT_TOLERANCE_SECS));

    // The secret is stored sealed, never in clear.
    let row = sqlx::query("SELECT webhook_secret_enc, webhook_key_id FROM apps WHERE id = $1")
        .bind(&app_id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let enc: Vec<u8> = row.try_get("webhook_secret_enc").unwrap();
    assert!(!enc.windows(secret.len()).any(|w| w == secret.as_bytes()));
}

#[tokio::test]
async fn an_app_without_a_webhook_url_gets_nothing_queued() {
    let app = spawn_app().await;
    let (created, _) = apps::create(&app.state.db, app.clock.now(), NewApp { name: "No hooks".into(), ..Default::default() })
        .await
        .unwrap();
    enqueue(&app, app.clock.now(), &created.id, "sync_completed", json!({})).await.unwrap();
    assert!(webhooks::list_deliveries(&app.state.db, &created.id, 10).await.unwrap().is_empty());
}

/// Queues `event` (its wire name) for `app_id`, as the product does.
async fn enqueue(app: &TestApp, now: i64, app_id: &str, event: &str, data: serde_json::Value) -> anyhow::Result<()> {
    let mut conn = app.state.db.pool.acquire().await?;
    let event = webhooks::WebhookEvent::parse(event).expect("a documented event");
    webhooks::enqueue(&mut conn, now, app_id, event, data).await
}
