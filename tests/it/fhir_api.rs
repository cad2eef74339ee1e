//! The FHIR R4 API under /fhir over real HTTP: metadata, read, search parameters, paging, _include,
//! $everything, $PATIENT_ID, errors as OperationOutcome, 429/422 around sync, isolation between users,
//! application tokens, and one end-to-end link of a sandbox member.

use std::collections::BTreeMap;

use crate::api_support::*;
use link_sdk::{domain::Usage, server::{services::sync, store::authorizations, surfaces::sandbox}};
use serde_json::{json, Value};

async fn ok_json(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    r.json().await.unwrap()
}

async fn outcome(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["content-type"], "application/fhir+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome");
    v
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect()
}

async fn patient_token(app: &crate::common::TestApp, l: &Linked) -> String {
    exchange(app, &l.public_token, &l.keys.sk).await["access_token"].as_str().unwrap().to_string()
}

fn fixture(rtype: &str, id: &str) -> Value {
    fixture_resources().into_iter().find(|r| r["resourceType"] == rtype && r["id"] == id).unwrap()
}

#[tokio::test]
async fn metadata_is_a_capability_statement() {
    let app = server().await;
    let v = ok_json(app.get("/fhir/metadata").await).await;
    assert_eq!(v["resourceType"], "CapabilityStatement");
    assert_eq!(v["fhirVersion"], "4.0.1");
    let eob = v["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "ExplanationOfBenefit").unwrap();
    let names: Vec<&str> = eob["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in ["_id", "_lastUpdated", "patient", "type", "service-date", "status", "identifier"] {
        assert!(names.contains(&n), "{n}");
    }
}

#[tokio::test]
async fn read_returns_the_payer_json_and_errors_are_operation_outcomes() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let p = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await).await;
    assert_eq!(p, fixture("Patient", patient()));
    let p2 = ok_json(get_bearer(&app, &format!("/fhir/Patient/{}", patient()), &t).await).await;
    assert_eq!(p, p2);
    let carrier = fixture_id("eob_read_carrier_v2.json", None);
    let e = ok_json(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit/{carrier}"), &t).await).await;
    assert_eq!(e, fixture("ExplanationOfBenefit", &carrier));
    // 404, 403 (another patient), 401 (with WWW-Authenticate), 400 (bad id), unsupported type.
    outcome(get_bearer(&app, "/fhir/ExplanationOfBenefit/nope", &t).await, 404).await;
    outcome(get_bearer(&app, "/fhir/Patient/someone-else", &t).await, 403).await;
    let r = app.get("/fhir/Patient/$PATIENT_ID").await;
    assert!(r.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let o = outcome(r, 401).await;
    assert_eq!(o["issue"][0]["code"], "login");
    outcome(get_bearer(&app, "/fhir/Patient/x", "at_bogus").await, 401).await;
    outcome(get_bearer(&app, "/fhir/Patient/bad%20id", &t).await, 400).await;
    outcome(get_bearer(&app, "/fhir/Basic/1", &t).await, 404).await;
    // Every read is audited with the request id and no health data (queued: wait for the writer).
    app.state.audit_queue.flush().await;
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'fhir.read' AND request_id IS NOT NULL")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert!(n.0 >= 3);
}

#[tokio::test]
async fn search_parameters() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let s = |q: &str| {
        let url = format!("/fhir/ExplanationOfBenefit?{q}");
        let (app, t) = (&app, t.clone());
        async move { get_bearer(app, &url, &t).await }
    };
    let all = ok_json(s("patient=$PATIENT_ID").await).await;
    assert_eq!(all["resourceType"], "Bundle");
    assert_eq!(all["type"], "searchset");
    assert_eq!(all["total"], 13);
    assert_eq!(ids(&all).len(), 13);
    assert_eq!(all["entry"][0]["search"]["mode"], "match");
    assert_eq!(ok_json(s(&format!("patient=Patient/{}", patient())).await).await["total"], 13);
    // Token parameters.
    assert_eq!(ok_json(s("type=PDE").await).await["total"], 10);
    assert_eq!(ok_json(s("type=https://bluebutton.cms.gov/resources/codesystem/eob-type|PDE").await).await["total"], 10);
    assert_eq!(ok_json(s("type=other|PDE").await).await["total"], 0);
    assert_eq!(ok_json(s("type:not=PDE").await).await["total"], 3);
    assert_eq!(ok_json(s("type=PDE,71").await).await["total"], 11);
    assert_eq!(ok_json(s("status=active").await).await["total"], 13);
    assert_eq!(ok_json(s("identifier=https://bluebutton.cms.gov/resources/variables/pde_id|-3269834580").await).await["total"], 1);
    // Dates with prefixes.
    assert_eq!(ok_json(s("service-date=ge2015-03-01").await).await["total"], 12);
    assert_eq!(ok_json(s("service-date=lt2015-03-01").await).await["total"], 1);
    assert_eq!(ok_json(s("service-date=2015-04").await).await["total"], 1);
    assert_eq!(ok_json(s("service-date=ge2015-01-01&service-date=le2015-06-30").await).await["total"], 2);
    assert_eq!(ok_json(s("_lastUpdated=gt2020-06-01").await).await["total"], 8);
    assert_eq!(ok_json(s("_lastUpdated=lt2020-06-01").await).await["total"], 5);
    assert_eq!(ok_json(s("_lastUpdated=eq2021-02-17").await).await["total"], 1);
    // _id.
    let (pde, inpatient) = (fixture_id("eob_search_v2.json", Some(9)), fixture_id("eob_read_in_pt_v2.json", None));
    let one = ok_json(s(&format!("_id={pde},{inpatient}")).await).await;
    assert_eq!(one["total"], 2);
    // Other types.
    let cov = ok_json(get_bearer(&app, "/fhir/Coverage?patient=$PATIENT_ID&status=active", &t).await).await;
    assert_eq!(cov["total"], 4);
    let pat = ok_json(get_bearer(&app, "/fhir/Patient?_id=$PATIENT_ID", &t).await).await;
    assert_eq!(pat["total"], 1);
    // Bad parameters are 400.
    outcome(s("foo=bar").await, 400).await;
    outcome(s("service-date=yesterday").await, 400).await;
    outcome(s("_count=abc").await, 400).await;
    outcome(s("_count=100000").await, 400).await;
    outcome(s("type:exact=PDE").await, 400).await;
    // Another patient: 403.
    outcome(s("patient=Patient/someone-else").await, 403).await;
}

#[tokio::test]
async fn paging_with_count_and_links() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let mut url = "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID&_count=5".to_string();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let b = ok_json(get_bearer(&app, &url, &t).await).await;
        assert_eq!(b["total"], 13);
        let links: BTreeMap<String, String> = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["relation"].as_str().unwrap().to_string(), l["url"].as_str().unwrap().to_string()))
            .collect();
        assert!(links.contains_key("self"));
        seen.extend(ids(&b));
        pages += 1;
        match links.get("next") {
            Some(n) => url = n.strip_prefix(&app.base_url).unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 13);
    // Filtered searches page the same way.
    let b = ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit?type=PDE&_count=4&_offset=8", &t).await).await;
    assert_eq!(b["total"], 10);
    assert_eq!(ids(&b).len(), 2);
    assert!(b["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"));
}

#[tokio::test]
async fn include_adds_referenced_resources() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let b = ok_json(
        get_bearer(&app, "/fhir/ExplanationOfBenefit?type=PDE&_include=ExplanationOfBenefit:patient&_include=ExplanationOfBenefit:coverage", &t)
            .await,
    )
    .await;
    assert_eq!(b["total"], 10);
    let included: Vec<(String, String)> = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| (e["resource"]["resourceType"].as_str().unwrap().into(), e["resource"]["id"].as_str().unwrap().into()))
        .collect();
    assert!(included.contains(&("Patient".into(), patient().into())));
    assert!(included.contains(&("Coverage".into(), format!("part-d-{}", patient()))));
    assert_eq!(included.len(), 2, "each included once");
    outcome(get_bearer(&app, "/fhir/ExplanationOfBenefit?_include=Coverage:payor", &t).await, 400).await;
}

#[tokio::test]
async fn everything_with_type_since_and_paging() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let b = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything", &t).await).await;
    assert_eq!(b["total"], 18);
    assert_eq!(b["entry"][0]["resource"]["resourceType"], "Patient");
    // Every resource exactly as stored.
    for e in b["entry"].as_array().unwrap() {
        let r = &e["resource"];
        assert_eq!(r, &fixture(r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap()));
    }
    let c = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_type=Coverage,Patient", &t).await).await;
    assert_eq!(c["total"], 5);
    let s = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_since=2020-06-01T00:00:00Z", &t).await).await;
    assert_eq!(s["total"], 13);
    let p = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_count=10&_offset=10", &t).await).await;
    assert_eq!(ids(&p).len(), 8);
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_type=Nope", &t).await, 400).await;
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_since=x", &t).await, 400).await;
    outcome(get_bearer(&app, "/fhir/Patient/other/$everything", &t).await, 403).await;
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$other", &t).await, 404).await;
}

#[tokio::test]
async fn sync_running_is_429_and_failed_sync_is_422() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let job = sync::enqueue(&app.state.db, &l.authorization_id, app.clock_now()).await.unwrap();
    let r = get_bearer(&app, "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID", &t).await;
    assert_eq!(r.headers()["retry-after"], "5");
    outcome(r, 429).await;
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await, 429).await;
    sqlx::query("UPDATE sync_jobs SET status = 'failed', exit_code = 'PAYER_SERVER_ERROR' WHERE id = $1")
        .bind(&job)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let o = outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything", &t).await, 422).await;
    assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("PAYER_SERVER_ERROR"));
    sqlx::query("UPDATE sync_jobs SET status = 'complete', exit_code = NULL WHERE id = $1")
        .bind(&job)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await).await;
}

#[tokio::test]
async fn two_users_with_the_same_payer_records_never_see_each_other() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    // A family member linked under another externalId, whose payer returned the same records plus one more.
    let b_auth = create_authorization(&app, &l.keys, &l.endpoint, "user-2", patient(), Usage::OneTime).await;
    let mut b_data = fixture_resources();
    let mut extra = fixture("ExplanationOfBenefit", &fixture_id("eob_read_carrier_v2.json", None));
    extra["id"] = json!("only-b");
    b_data.push(extra);
    store_resources(&app, &b_auth, &b_data).await;
    let b_public = public_token(&app, &l.keys, &b_auth).await;
    let ta = patient_token(&app, &l).await;
    let tb = exchange(&app, &b_public, &l.keys.sk).await["access_token"].as_str().unwrap().to_string();

    outcome(get_bearer(&app, "/fhir/ExplanationOfBenefit/only-b", &ta).await, 404).await;
    ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit/only-b", &tb).await).await;
    assert_eq!(ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit", &ta).await).await["total"], 13);
    assert_eq!(ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit", &tb).await).await["total"], 14);
    assert_eq!(ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything", &ta).await).await["total"], 18);
    assert_eq!(ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything", &tb).await).await["total"], 19);
    // Revoking one leaves the other untouched.
    sqlx::query("DELETE FROM resources WHERE authorization_id = $1").bind(&b_auth).execute(&app.state.db.pool).await.unwrap();
    assert_eq!(ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit", &ta).await).await["total"], 13);
    // Another app's token sees neither.
    let other = create_app(&app, "Other").await;
    let apt = app_token(&app, &other).await;
    assert_eq!(ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit", &apt).await).await["total"], 0);
    outcome(get_bearer(&app, &format!("/fhir/Patient/{}", patient()), &apt).await, 403).await;
}

#[tokio::test]
async fn application_token_reads_every_patient_of_its_app_only() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let second = create_authorization(&app, &l.keys, &l.endpoint, "user-2", "second-patient", Usage::OneTime).await;
    let mut p2 = fixture("Patient", patient());
    p2["id"] = json!("second-patient");
    store_resources(&app, &second, &[p2]).await;
    let t = app_token(&app, &l.keys).await;
    assert_eq!(ok_json(get_bearer(&app, "/fhir/Patient", &t).await).await["total"], 2);
    ok_json(get_bearer(&app, "/fhir/Patient/second-patient", &t).await).await;
    assert_eq!(ok_json(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={}", patient()), &t).await).await["total"], 13);
    assert_eq!(ok_json(get_bearer(&app, "/fhir/ExplanationOfBenefit?patient=second-patient", &t).await).await["total"], 0);
    outcome(get_bearer(&app, "/fhir/ExplanationOfBenefit?patient=not-linked", &t).await, 403).await;
    // $PATIENT_ID needs a patient token.
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await, 400).await;
    // A revoked authorization drops out.
    crate::common::set_state(&app.state.db, &second, "REVOKED", app.clock_now()).await;
    assert_eq!(ok_json(get_bearer(&app, "/fhir/Patient", &t).await).await["total"], 1);
}

/// The whole path: a sandbox member linked through the real payer OAuth (test-mode shortcut), synced by the
/// sync worker over HTTP, exchanged, and every synced resource read back equal to what the payer serves.
#[tokio::test]
async fn sandbox_member_end_to_end() {
    let app = server().await;
    let k = create_app(&app, "E2E").await;
    let r = app
        .client
        .post(format!("{}/link/test/public_token", app.base_url))
        .json(&json!({"secret_key": k.sk, "external_id": "e2e-user", "endpoint_id": sandbox::REFRESHABLE_ENDPOINT_ID,
                      "member": sandbox::MEMBER_TYPICAL, "usage": "MULTIPLE"}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    let public = v["public_token"].as_str().unwrap().to_string();
    let authz = v["authorization_id"].as_str().unwrap().to_string();
    let ex = exchange(&app, &public, &k.sk).await;
    let t = ex["access_token"].as_str().unwrap().to_string();
    assert!(ex["refresh_token"].is_string());
    // While the sync is pending: 429.
    let st = sync::status(&app.state.db, &authz).await.unwrap().expect("a sync job");
    if matches!(st.status.as_str(), "pending" | "syncing") {
        outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything", &t).await, 429).await;
    }
    for _ in 0..20 {
        if !sync::run_once(&app.state).await {
            break;
        }
    }
    let st = sync::status(&app.state.db, &authz).await.unwrap().unwrap();
    assert!(matches!(st.status.as_str(), "complete" | "partial"), "{st:?}");
    let all = ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/$everything?_count=1000", &t).await).await;
    let n = all["total"].as_u64().unwrap();
    assert!(n > 1);
    // Compare each resource with the payer's own answer, fetched with the payer token.
    let creds = authorizations::payer_credentials(&app.state.db, &app.state.cipher, &authz).await.unwrap().unwrap();
    let payer_token = {
        use secrecy::ExposeSecret as _;
        creds.access_token.unwrap().expose_secret().to_string()
    };
    let base = creds.fhir_base.unwrap();
    for e in all["entry"].as_array().unwrap() {
        let rt = e["resource"]["resourceType"].as_str().unwrap();
        let id = e["resource"]["id"].as_str().unwrap();
        let ours = ok_json(get_bearer(&app, &format!("/fhir/{rt}/{id}"), &t).await).await;
        assert_eq!(ours, e["resource"]);
        let payer: Value = app
            .client
            .get(format!("{base}/{rt}/{id}"))
            .bearer_auth(&payer_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ours, payer, "{rt}/{id}");
    }
}

#[tokio::test]
async fn one_time_data_is_unreadable_after_24_hours() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let m = create_authorization(&app, &l.keys, &l.endpoint, "user-2", "multi-patient", Usage::Multiple).await;
    let mut p2 = fixture("Patient", patient());
    p2["id"] = json!("multi-patient");
    store_resources(&app, &m, &[p2]).await;
    let t = patient_token(&app, &l).await;
    ok_json(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await).await;
    app.clock.advance(86_400 - 10);
    let apt = app_token(&app, &l.keys).await;
    assert_eq!(ok_json(get_bearer(&app, "/fhir/Patient", &apt).await).await["total"], 2);
    app.clock.advance(20);
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t).await, 401).await;
    let b = ok_json(get_bearer(&app, "/fhir/Patient", &apt).await).await;
    assert_eq!(b["total"], 1);
    assert_eq!(b["entry"][0]["resource"]["id"], "multi-patient");
}

/// Read records go through the audit queue, written in batches off the request's path: 40 reads at once leave 40
/// records. A queue whose writer was stopped (as at shutdown) has written everything queued before, and writes
/// a later record itself: none is lost.
#[tokio::test]
async fn every_read_leaves_one_audit_record_through_the_queue() {
    use link_sdk::server::store::audit::{AuditEntry, AuditQueue};
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let count = |action: &'static str| {
        let (pool, id) = (app.state.db.pool.clone(), l.authorization_id.clone());
        async move {
            sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM audit_events WHERE action = $1 AND authorization_id = $2")
                .bind(action)
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
                .0
        }
    };
    app.state.audit_queue.flush().await;
    let before = count("fhir.read").await;
    let reads = (0..40).map(|_| get_bearer(&app, "/fhir/Patient/$PATIENT_ID", &t));
    for r in futures::future::join_all(reads).await {
        assert_eq!(r.status(), 200);
    }
    app.state.audit_queue.flush().await;
    assert_eq!(count("fhir.read").await, before + 40, "one record per read");

    let q = AuditQueue::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = q.spawn_writer(app.state.db.clone(), stop.clone()).expect("the first writer starts");
    assert!(q.spawn_writer(app.state.db.clone(), stop.clone()).is_none(), "one writer per queue");
    let entry = |action| AuditEntry { actor: "system", action, authorization_id: Some(&l.authorization_id), ..Default::default() };
    for _ in 0..10 {
        q.record(&app.state.db, app.clock_now(), entry("test.queued")).await.unwrap();
    }
    stop.cancel();
    writer.await.unwrap();
    assert_eq!(count("test.queued").await, 10, "written at shutdown");
    q.record(&app.state.db, app.clock_now(), entry("test.after")).await.unwrap();
    assert_eq!(count("test.after").await, 1, "written by record itself once the writer has stopped");
}
