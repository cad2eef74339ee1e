//! Re-syncs asked for by the integrator (`POST /link/sync`) and the sync history (`GET /link/sync`): a sandbox
//! member linked through the test-mode shortcut, synced over HTTP by the real sync jobs, and the FHIR API still
//! serving the previous data while a re-sync runs.

use link_sdk::{
    domain::SyncStatus,
    server::{services::sync, surfaces::sandbox},
};
use serde_json::{json, Value};

use crate::api_support::{app_token, create_app, exchange, get_bearer, server, ClockNow as _, TestKeys};
use crate::common::TestApp;
use crate::payer_oauth::drain;

/// A sandbox member linked with `usage` for `keys`' app and exchanged: `(authorization_id, access_token)`.
async fn link_member(app: &TestApp, keys: &TestKeys, usage: &str) -> (String, String) {
    link_member_at(app, keys, sandbox::REFRESHABLE_ENDPOINT_ID, sandbox::MEMBER_TYPICAL, usage).await
}

/// `member` of the sandbox payer `endpoint_id` linked with `usage` and exchanged: `(authorization_id, access_token)`.
async fn link_member_at(app: &TestApp, keys: &TestKeys, endpoint_id: &str, member: &str, usage: &str) -> (String, String) {
    let r = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .json(&json!({"secret_key": keys.sk, "external_id": "resync-user", "endpoint_id": endpoint_id,
                      "member": member, "usage": usage}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let ex = exchange(app, v["public_token"].as_str().expect("public_token"), &keys.sk).await;
    (v["authorization_id"].as_str().unwrap().to_string(), ex["access_token"].as_str().unwrap().to_string())
}

/// `POST /link/sync` with the secret key as a Bearer credential.
async fn post_sync(app: &TestApp, sk: &str, body: Value) -> (u16, Option<String>, Value) {
    let r = app.client.post(format!("{}/link/sync", app.base_url)).bearer_auth(sk).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, retry_after, r.json().await.unwrap())
}

/// `GET /link/sync?authorization_id=…` with the secret key as a Bearer credential.
async fn history(app: &TestApp, sk: &str, authorization_id: &str) -> (u16, Value) {
    let r = app
        .client
        .get(format!("{}/link/sync?authorization_id={authorization_id}", app.base_url))
        .bearer_auth(sk)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_resync_is_queued_once_rate_limited_and_reads_keep_answering() {
    let app = server().await;
    let keys = create_app(&app, "Resync").await;
    let (authz, t) = link_member(&app, &keys, "MULTIPLE").await;
    drain(&app).await;
    let everything = "/fhir/Patient/$PATIENT_ID/$everything?_count=1000";
    let before: Value = get_bearer(&app, everything, &t).await.json().await.unwrap();
    let total = before["total"].as_u64().unwrap();
    assert!(total > 1, "{before}");

    // Asked by access token (a second later): one job queued, answered 202 with its status.
    app.clock.advance(1);
    let (status, _, v) = post_sync(&app, &keys.sk, json!({"access_token": t})).await;
    assert_eq!(status, 202, "{v}");
    assert_eq!((v["queued"].as_bool(), v["authorization_id"].as_str()), (Some(true), Some(authz.as_str())));
    assert_eq!(v["sync"]["status"], "pending");
    let job = v["job_id"].as_str().unwrap().to_string();

    // While it waits, the FHIR API serves the previous data (429 is for the first sync only).
    let r = get_bearer(&app, everything, &t).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["total"].as_u64(), Some(total));
    assert_eq!(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await.status(), 200);

    // Asked again (by id) while it is pending: the same job, not a second one, and not counted by the limit.
    let (status, _, v) = post_sync(&app, &keys.sk, json!({"authorization_id": authz})).await;
    assert_eq!((status, v["job_id"].as_str(), v["queued"].as_bool()), (202, Some(job.as_str()), Some(false)), "{v}");
    // The secret key may come in the body as well (form-encoded here).
    let r = app
        .client
        .post(format!("{}/link/sync", app.base_url))
        .form(&[("secret_key", keys.sk.as_str()), ("authorization_id", authz.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["job_id"].as_str(), Some(job.as_str()));

    // Mid-run too: the job marked as taken by a worker still keeps reads open.
    sqlx::query("UPDATE sync_jobs SET status = 'syncing' WHERE id = $1").bind(&job).execute(&app.state.db.pool).await.unwrap();
    assert_eq!(get_bearer(&app, everything, &t).await.status(), 200);
    sqlx::query("UPDATE sync_jobs SET status = 'pending' WHERE id = $1").bind(&job).execute(&app.state.db.pool).await.unwrap();
    drain(&app).await;
    assert_eq!(get_bearer(&app, everything, &t).await.json::<Value>().await.unwrap()["total"].as_u64(), Some(total));

    // Once it finished, another re-sync within the minute is refused: 429 with Retry-After, RFC 6749 JSON.
    let (status, retry_after, v) = post_sync(&app, &keys.sk, json!({"authorization_id": authz})).await;
    assert_eq!((status, v["error"].as_str()), (429, Some("temporarily_unavailable")), "{v}");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");

    // The history: both runs, newest first, each with when it ran and what it stored.
    let (status, h) = history(&app, &keys.sk, &authz).await;
    assert_eq!(status, 200, "{h}");
    let runs = h["sync_history"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{h}");
    assert_eq!(runs[0]["job_id"].as_str(), Some(job.as_str()));
    for run in runs {
        assert_eq!(run["status"], "complete", "{run}");
        let (created, started, finished) =
            (run["created_at"].as_i64().unwrap(), run["started_at"].as_i64().unwrap(), run["finished_at"].as_i64().unwrap());
        assert!(created <= started && started <= finished, "{run}");
    }
    // Nothing changed at the sandbox payer. The first sync read everything; the re-sync asked for changes only
    // (the payer lists `_lastUpdated`) and got none but the Patient, which is read by id every time: unchanged.
    // Nothing added, updated or removed.
    let (first, again) = (&runs[1], &runs[0]);
    assert!(first["added"].as_u64().unwrap() > 0, "{first}");
    assert!(first["counts"]["ExplanationOfBenefit"].as_i64().unwrap() > 0, "{first}");
    assert_eq!(first["incremental"], Value::Null, "{first}");
    assert!(again["incremental"]["types"].as_array().unwrap().contains(&json!("ExplanationOfBenefit")), "{again}");
    assert_eq!(again["counts"], json!({"Patient": 1}), "{again}");
    assert_eq!([&again["added"], &again["updated"], &again["removed"]], [&json!(0), &json!(0), &json!(0)], "{again}");
    let received: i64 = again["counts"].as_object().unwrap().values().map(|n| n.as_i64().unwrap()).sum();
    assert_eq!(again["unchanged"], json!(received), "{again}");
}

#[tokio::test]
async fn the_history_keeps_the_last_ten_runs() {
    let app = server().await;
    let keys = create_app(&app, "History").await;
    let (authz, _) = link_member(&app, &keys, "MULTIPLE").await;
    drain(&app).await;
    let mut jobs = Vec::new();
    for _ in 0..10 {
        app.clock.advance(60);
        jobs.push(sync::request_resync(&app.state.db, &authz, app.clock_now()).await.unwrap());
        drain(&app).await;
    }
    let (status, h) = history(&app, &keys.sk, &authz).await;
    assert_eq!(status, 200, "{h}");
    let listed: Vec<&str> = h["sync_history"].as_array().unwrap().iter().map(|r| r["job_id"].as_str().unwrap()).collect();
    jobs.reverse();
    assert_eq!(listed, jobs.iter().map(String::as_str).collect::<Vec<_>>(), "the ten newest, newest first (the first sync left out)");
}

#[tokio::test]
async fn another_apps_one_time_and_ended_authorizations_are_refused() {
    let app = server().await;
    let keys = create_app(&app, "Mine").await;
    let other = create_app(&app, "Other").await;
    let (authz, t) = link_member(&app, &keys, "MULTIPLE").await;
    drain(&app).await;

    // Another app's key: the same 404 as an unknown authorization, by id or by token; nothing queued.
    for body in [json!({"authorization_id": authz}), json!({"access_token": t}), json!({"authorization_id": "nope"})] {
        let (status, _, v) = post_sync(&app, &other.sk, body).await;
        assert_eq!((status, v["error"].as_str()), (404, Some("not_found")), "{v}");
    }
    assert_eq!(history(&app, &other.sk, &authz).await.0, 404);
    assert_eq!(history(&app, &keys.live_sk, &authz).await.0, 404, "the other mode's key");
    assert_eq!(sync::status(&app.state.db, &authz).await.unwrap().unwrap().status, "complete");

    // No key, a bad key, both names or neither.
    let r = app.client.post(format!("{}/link/sync", app.base_url)).json(&json!({"authorization_id": authz})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(post_sync(&app, "sk_test_nope", json!({"authorization_id": authz})).await.0, 401);
    let (status, _, v) = post_sync(&app, &keys.sk, json!({"authorization_id": authz, "access_token": t})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    assert_eq!(post_sync(&app, &keys.sk, json!({})).await.0, 400);

    // ONE_TIME: synced once, never re-synced.
    let (one_time, _) = link_member(&app, &keys, "ONE_TIME").await;
    drain(&app).await;
    let (status, _, v) = post_sync(&app, &keys.sk, json!({"authorization_id": one_time})).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("ONE_TIME"), "{v}");

    // Revoked, or waiting for the patient to link again: 409.
    for state in ["NEEDS_REAUTH", "REVOKED"] {
        crate::common::set_state(&app.state.db, &authz, state, app.clock_now()).await;
        let (status, _, v) = post_sync(&app, &keys.sk, json!({"authorization_id": authz})).await;
        assert_eq!((status, v["error"].as_str()), (409, Some("invalid_grant")), "{state}: {v}");
    }
    assert_eq!(sync::status(&app.state.db, &authz).await.unwrap().unwrap().status, "complete", "nothing queued");
}

#[tokio::test]
async fn scheduled_resyncs_are_jittered_and_queued_once_across_instances() {
    let app = server().await;
    let keys = create_app(&app, "Schedule").await;
    let (authz, _) = link_member(&app, &keys, "MULTIPLE").await;
    let (one_time, _) = link_member(&app, &keys, "ONE_TIME").await;
    drain(&app).await;
    let interval = app.state.settings.resync_interval_secs;
    assert_eq!(interval, 86_400, "the default");
    let next_of = |id: String| {
        let db = app.state.db.clone();
        async move {
            let row = sqlx::query("SELECT next_sync_at FROM authorizations WHERE id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
            sqlx::Row::try_get::<Option<i64>, _>(&row, "next_sync_at").unwrap()
        }
    };
    // Due one interval after the link, up to a tenth of it early.
    let linked = app.clock_now();
    let due = next_of(authz.clone()).await.expect("MULTIPLE is scheduled");
    assert!((linked + interval - interval / 10..=linked + interval).contains(&due), "{due} vs {linked}");
    assert_eq!(next_of(one_time.clone()).await, None, "ONE_TIME is never re-synced");
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 0, "not due yet");

    // Due, while an on-demand re-sync is pending: two instances' schedules at once claim it once, and the
    // authorization still has that one job only.
    app.clock.advance(interval + 1);
    let now = app.clock_now();
    let pending = sync::request_resync(&app.state.db, &authz, now).await.unwrap();
    let (a, b) = tokio::join!(sync::run_schedule(&app.state), sync::run_schedule(&app.state));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "exactly one instance claims the due re-sync");
    let runs = sync::history(&app.state.db, &authz).await.unwrap();
    assert_eq!((runs.len(), runs[0].job_id.as_str()), (2, pending.as_str()), "never two jobs at once: {runs:?}");
    let next = next_of(authz.clone()).await.unwrap();
    assert!((now + interval - interval / 10..=now + interval).contains(&next), "moved one jittered interval on");
    drain(&app).await;
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 0);

    // Once due again, the schedule queues a job of its own.
    app.clock.advance(interval + 1);
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 1);
    drain(&app).await;
    let runs = sync::history(&app.state.db, &authz).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].status, "complete");
}

#[tokio::test]
async fn re_syncs_queued_at_once_leave_one_unfinished_job() {
    let app = server().await;
    let keys = create_app(&app, "Queued at once").await;
    let (authz, _) = link_member(&app, &keys, "MULTIPLE").await;
    drain(&app).await;
    // Sixteen callers at once (on PostgreSQL, on separate connections at READ COMMITTED): one job between them.
    let now = app.clock_now();
    let calls = (0..16).map(|_| {
        let (db, id) = (app.state.db.clone(), authz.clone());
        tokio::spawn(async move { sync::request_resync(&db, &id, now).await.unwrap() })
    });
    let ids: std::collections::BTreeSet<String> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids.len(), 1, "every caller got the one queued job: {ids:?}");
    let unfinished = sqlx::query("SELECT COUNT(*) AS n FROM sync_jobs WHERE authorization_id = $1 AND status IN ('pending', 'syncing', 'delayed')")
        .bind(&authz)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&unfinished, "n").unwrap(), 1);
    // The database itself refuses a second unfinished job, whoever writes it.
    let second = sqlx::query(
        "INSERT INTO sync_jobs (id, authorization_id, status, run_after, created_at, updated_at) VALUES ($1, $2, 'pending', $3, $3, $3)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&authz)
    .bind(now)
    .execute(&app.state.db.pool)
    .await;
    assert!(second.is_err(), "a second unfinished job is refused");
    // Once that job has finished, the next one is queued.
    drain(&app).await;
    let next = sync::request_resync(&app.state.db, &authz, app.clock_now()).await.unwrap();
    assert!(!ids.contains(&next));
}

/// The sandbox member whose claims change every day at 00:00 UTC of the sandbox clock: one ExplanationOfBenefit
/// is gone for the day, the one gone the day before is back, one more is updated.
const CHANGING: &str = sandbox::MEMBER_CHANGING;

/// How many ExplanationOfBenefit of `patient` the searchset lists through our FHIR API, read with a fresh
/// application token (the clock moves by days here, past a patient access token's lifetime).
async fn stored_claims(app: &TestApp, keys: &TestKeys, patient: &str) -> usize {
    let token = app_token(app, keys).await;
    let r = get_bearer(app, &format!("/fhir/ExplanationOfBenefit?patient={patient}&_count=100"), &token).await;
    let v: Value = r.json().await.unwrap();
    v["entry"].as_array().unwrap_or_else(|| panic!("{v}")).len()
}

/// The `(resource_type, id)` of every resource stored for authorization `authz`.
async fn stored_keys(app: &TestApp, authz: &str) -> std::collections::BTreeSet<(String, String)> {
    let rows = sqlx::query("SELECT resource_type, id FROM resources WHERE authorization_id = $1")
        .bind(authz)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    rows.iter().map(|r| (sqlx::Row::try_get(r, "resource_type").unwrap(), sqlx::Row::try_get(r, "id").unwrap())).collect()
}

#[tokio::test]
async fn scheduled_resyncs_ask_for_changes_only_where_the_payer_offers_it_and_read_everything_weekly() {
    let app = server().await;
    let keys = create_app(&app, "Incremental").await;
    let (authz, t) = link_member_at(&app, &keys, sandbox::REFRESHABLE_ENDPOINT_ID, CHANGING, "MULTIPLE").await;
    // The same kind of member at a payer whose CapabilityStatement lists no `_lastUpdated`.
    let (plain, _) = link_member_at(&app, &keys, sandbox::FAULTY_ENDPOINT_ID, sandbox::MEMBER_TYPICAL, "MULTIPLE").await;
    drain(&app).await;
    let runs = |id: String| {
        let db = app.state.db.clone();
        async move { sync::history(&db, &id).await.unwrap() }
    };
    let first = runs(authz.clone()).await.remove(0);
    assert_eq!((first.status, first.incremental.clone()), (SyncStatus::Complete, None), "the first sync reads everything");
    let slots = sandbox::CHANGING_EOB_SLOTS;
    let patient: Value = get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await.json().await.unwrap();
    let patient = patient["id"].as_str().unwrap().to_string();
    assert_eq!(stored_claims(&app, &keys, &patient).await, slots - 1, "one slot is gone today");

    // A day later the schedule re-syncs both. Changes only, since the first sync's start less an hour: the claim
    // that came back is added, the updated one updated; the one gone today stays stored (only a full read can
    // tell it was deleted).
    let before = stored_keys(&app, &authz).await;
    app.clock.advance(86_400);
    assert_eq!(sync::run_schedule(&app.state).await.unwrap(), 2);
    drain(&app).await;
    let second = runs(authz.clone()).await.remove(0);
    let inc = second.incremental.clone().expect("asked for changes only");
    assert!(inc.types.contains(&"ExplanationOfBenefit".to_string()) && !inc.types.contains(&"Patient".to_string()), "{inc:?}");
    let since = time::OffsetDateTime::from_unix_timestamp(first.started_at.unwrap() - 3_600).unwrap();
    assert_eq!(inc.since, since.format(&time::format_description::well_known::Rfc3339).unwrap());
    // Added: the claim that came back, and whatever it refers to that no stored claim did (a Practitioner, an
    // Organization: which, depends on the day's slot).
    let new: Vec<(String, String)> = stored_keys(&app, &authz).await.into_iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(new.iter().filter(|(t, _)| t == "ExplanationOfBenefit").count(), 1, "{new:?}");
    assert_eq!(second.changes.added, new.len() as u64, "{second:?} {new:?}");
    assert_eq!((second.changes.updated, second.changes.removed), (1, 0), "{second:?}");
    assert_eq!(second.counts.get("ExplanationOfBenefit"), Some(&2), "only what changed was sent: {second:?}");
    assert_eq!(stored_claims(&app, &keys, &patient).await, slots);
    // The payer without `_lastUpdated`: a full read.
    let other = runs(plain.clone()).await.remove(0);
    assert_eq!((other.incremental.clone(), other.status), (None, SyncStatus::Complete), "{other:?}");

    // A week after the last full read, the next re-sync reads everything again, and the claim gone today is
    // removed.
    app.clock.advance(7 * 86_400);
    assert!(sync::run_schedule(&app.state).await.unwrap() >= 1);
    drain(&app).await;
    let third = runs(authz.clone()).await.remove(0);
    assert_eq!(third.incremental, None, "a full read at least weekly");
    assert_eq!(third.changes.removed, 1, "{third:?}");
    assert_eq!(stored_claims(&app, &keys, &patient).await, slots - 1);

    // Through the API: the history and the webhook-visible status say how each run asked.
    let (status, h) = history(&app, &keys.sk, &authz).await;
    assert_eq!(status, 200, "{h}");
    let listed = h["sync_history"].as_array().unwrap();
    assert_eq!(listed[0]["incremental"], Value::Null);
    assert_eq!(listed[1]["incremental"]["since"], json!(inc.since), "{h}");
}
