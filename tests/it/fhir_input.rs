//! Hostile and malformed input to the FHIR API under /fhir, over real HTTP: `_offset`/`_count` out of range,
//! invalid dates, unknown paths, bytes that do not decode, repeated and oversized parameters, and application
//! tokens naming a patient id that two payers both assigned. Every answer is an OperationOutcome in
//! `application/fhir+json` with a 4xx status: never a 500, never a panic (the server runs unoptimised, with
//! overflow checks on).

use crate::api_support::*;
use link_sdk::{domain::Usage, server::surfaces::fhir_api::MAX_OFFSET};
use serde_json::{json, Value};

/// The OperationOutcome of an answer with this status (and the FHIR content type).
async fn outcome(r: reqwest::Response, status: u16) -> Value {
    let url = r.url().to_string();
    assert_eq!(r.status(), status, "{url}");
    assert_eq!(r.headers()["content-type"], "application/fhir+json", "{url}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["resourceType"], "OperationOutcome", "{url}");
    v
}

/// A 200 Bundle.
async fn bundle(r: reqwest::Response) -> Value {
    let url = r.url().to_string();
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.headers()["content-type"], "application/fhir+json", "{url}");
    r.json().await.unwrap()
}

fn ids(b: &Value) -> Vec<&str> {
    b["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect()
}

fn relations(b: &Value) -> Vec<&str> {
    b["link"].as_array().unwrap().iter().map(|l| l["relation"].as_str().unwrap()).collect()
}

async fn patient_token(app: &crate::common::TestApp, l: &Linked) -> String {
    exchange(app, &l.public_token, &l.keys.sk).await["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn offset_and_count_out_of_range_are_400_everywhere() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    // A plain search (paged by the database), a filtered one (paged in memory) and $everything.
    let bases = [
        "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID",
        "/fhir/ExplanationOfBenefit?status=active",
        "/fhir/Patient/$PATIENT_ID/$everything?_type=ExplanationOfBenefit",
    ];
    let too_big = (MAX_OFFSET + 1).to_string();
    for base in bases {
        for bad in [
            "_offset=9223372036854775807",
            "_offset=9223372036854775808",
            "_offset=18446744073709551615",
            "_offset=18446744073709551616",
            &format!("_offset={too_big}"),
            "_offset=-1",
            "_offset=%2B1",
            "_offset=",
            "_offset=1e3",
            "_count=9223372036854775808",
            "_count=-0",
            "_count=%20%201",
        ] {
            let o = outcome(get_bearer(&app, &format!("{base}&{bad}"), &t).await, 400).await;
            assert_eq!(o["issue"][0]["code"], "invalid", "{base}&{bad}");
            let name = bad.split('=').next().unwrap();
            assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains(name), "{o}");
        }
        // The largest offset is a page past the end: no entries, a `previous` link and no `next`.
        for count in ["", "&_count=1000"] {
            let b = bundle(get_bearer(&app, &format!("{base}&_offset={MAX_OFFSET}{count}"), &t).await).await;
            assert!(ids(&b).is_empty());
            assert_eq!(relations(&b), ["self", "first", "previous"]);
        }
    }
    // Valid paging still works the same: the second page of 5.
    let b = bundle(get_bearer(&app, "/fhir/ExplanationOfBenefit?status=active&_count=5&_offset=5", &t).await).await;
    assert_eq!(ids(&b).len(), 5);
    assert_eq!(relations(&b), ["self", "first", "next", "previous"]);
}

#[tokio::test]
async fn invalid_dates_are_400_naming_the_parameter() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let bad_values = [
        "2020-01-01T25:61:61Z",
        "2020-01-01T23:00:00%2B99:99",
        "2020-01-01T23:00:00-99:99",
        "2020-01-01T23:00:00%2B14:30",
        "2020-13",
        "2020-13-01",
        "2020-00-10",
        "2020-01-32",
        "2020-02-30",
        "2021-02-29",
        "2020-04-31",
        "2020-01-01T24:00:00Z",
        "2020-01-01T12:60Z",
        "2020-01-01T12:00:61Z",
        "2020-01-01T99999999999999999999:00Z",
        "2020-01-01T9223372036854775807:00Z",
        "2020-01-01T12:00:00.Z",
        "2020-01-01T12:00:00.x1Z",
        "2020-01-01T12:00:00:00Z",
        "2020-1-1",
        "ge2020-01-01T",
        "garbage",
        "lt",
        "%E2%98%83",
        "ge%00",
    ];
    for (param, path) in [
        ("date", "/fhir/ExplanationOfBenefit?date="),
        ("service-date", "/fhir/ExplanationOfBenefit?service-date=ge"),
        ("_lastUpdated", "/fhir/Coverage?_lastUpdated="),
        ("birthdate", "/fhir/Patient?birthdate="),
    ] {
        for v in bad_values {
            let o = outcome(get_bearer(&app, &format!("{path}{v}"), &t).await, 400).await;
            assert_eq!(o["issue"][0]["code"], "invalid");
            assert!(o["issue"][0]["diagnostics"].as_str().unwrap().starts_with(&format!("{param}: ")), "{o}");
        }
    }
    for v in ["2020-01-01T25:61:61Z", "2020-02-30", "2020-01-01T00:00:00%2B99:99"] {
        let o = outcome(get_bearer(&app, &format!("/fhir/Patient/$PATIENT_ID/$everything?_since={v}"), &t).await, 400).await;
        assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("_since"), "{o}");
    }
    // Valid dates at the edges of the calendar still answer.
    for v in [
        "2024-02-29",
        "2016-12-31T23:59:60Z",
        "ge2020-01-01T10:00:00%2B14:00",
        "le2020-01-01T10:00:00-12:00",
        "2020-01-01T10:00",
        "gt9999",
        "lt0001-01-01",
        "2020-06-15T10:20:30.123456789Z",
    ] {
        bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?date={v}"), &t).await).await;
    }
}

#[tokio::test]
async fn unknown_fhir_paths_are_operation_outcomes() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    for p in [
        "/fhir",
        "/fhir/",
        "/fhir/foo/bar/baz/qux",
        "/fhir/Patient/1/_history/2/x",
        "/fhir/Patient/1/_history/2",
        "/fhir/ExplanationOfBenefit/1/_history",
        "/fhir/ExplanationOfBenefit/",
        "/fhir/%FF/%FE/x/y",
    ] {
        for r in [get_bearer(&app, p, &t).await, app.get(p).await] {
            let o = outcome(r, 404).await;
            assert_eq!(o["issue"][0]["code"], "not-found", "{p}");
        }
    }
    // Known routes keep their answers: an unsupported operation is 404, other methods 405; any method on an
    // unknown path is the same 404.
    outcome(get_bearer(&app, "/fhir/Patient/$PATIENT_ID/_history", &t).await, 404).await;
    let r = app.client.post(format!("{}/fhir/Patient", app.base_url)).bearer_auth(&t).send().await.unwrap();
    outcome(r, 405).await;
    let r = app.client.delete(format!("{}/fhir/foo/bar/baz/qux", app.base_url)).bearer_auth(&t).send().await.unwrap();
    outcome(r, 404).await;
}

/// Each answer is FHIR JSON below 500: a Bundle (or the resource) when the input is a valid if odd search, an
/// OperationOutcome otherwise.
#[tokio::test]
async fn malformed_input_is_answered_in_fhir_form_never_a_500() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let t = patient_token(&app, &l).await;
    let apt = app_token(&app, &l.keys).await;
    let long = "a".repeat(10_000);
    let many_ids = vec!["x1"; 20_000].join(",");
    let many_includes = vec!["_include=ExplanationOfBenefit:*"; 200].join("&");
    let requests: Vec<String> = vec![
        format!("/fhir/Patient/{long}"),
        format!("/fhir/ExplanationOfBenefit/{long}"),
        format!("/fhir/Patient/{long}/$everything"),
        format!("/fhir/{long}"),
        format!("/fhir/ExplanationOfBenefit?_id={long}"),
        format!("/fhir/ExplanationOfBenefit?patient={long}"),
        format!("/fhir/ExplanationOfBenefit?identifier={long}"),
        format!("/fhir/ExplanationOfBenefit?_include={long}"),
        format!("/fhir/ExplanationOfBenefit?_id={many_ids}"),
        format!("/fhir/ExplanationOfBenefit?{many_includes}"),
        "/fhir/Patient/%00".into(),
        "/fhir/Patient/a%0Ab".into(),
        "/fhir/Patient/%FF".into(),
        "/fhir/%FF".into(),
        "/fhir/Patient/%FF/$everything".into(),
        "/fhir/Patient/$PATIENT_ID/%FF".into(),
        "/fhir/ExplanationOfBenefit?status=%00%0A%0D".into(),
        "/fhir/ExplanationOfBenefit?%FF=%FE".into(),
        "/fhir/ExplanationOfBenefit?status:not=%FF".into(),
        "/fhir/ExplanationOfBenefit?status:=active".into(),
        "/fhir/ExplanationOfBenefit?:=".into(),
        "/fhir/ExplanationOfBenefit?&&&=&".into(),
        "/fhir/ExplanationOfBenefit?_id=".into(),
        "/fhir/ExplanationOfBenefit?_id=,,".into(),
        "/fhir/ExplanationOfBenefit?patient=".into(),
        "/fhir/ExplanationOfBenefit?patient=Patient/".into(),
        "/fhir/ExplanationOfBenefit?patient=a&patient=b".into(),
        "/fhir/ExplanationOfBenefit?_count=1&_count=99999".into(),
        "/fhir/ExplanationOfBenefit?_include=".into(),
        "/fhir/ExplanationOfBenefit?_include=:".into(),
        "/fhir/ExplanationOfBenefit?_include=ExplanationOfBenefit:".into(),
        "/fhir/ExplanationOfBenefit?_include=ExplanationOfBenefit:%00".into(),
        "/fhir/ExplanationOfBenefit?_include=Patient:*".into(),
        "/fhir/ExplanationOfBenefit?_include:iterate=ExplanationOfBenefit:nope".into(),
        "/fhir/ExplanationOfBenefit?date=".into(),
        "/fhir/ExplanationOfBenefit?date=,".into(),
        "/fhir/ExplanationOfBenefit?date:missing=true".into(),
        "/fhir/Patient/$PATIENT_ID/$everything?_type=".into(),
        "/fhir/Patient/$PATIENT_ID/$everything?_type=,Patient".into(),
        "/fhir/Patient/$PATIENT_ID/$everything?_since=".into(),
        "/fhir/Patient/$PATIENT_ID/$everything?endpoint=%00".into(),
        "/fhir/Patient/$PATIENT_ID/$everything?foo=bar".into(),
        "/fhir/Patient/$PATIENT_ID?endpoint=%FF".into(),
        "/fhir/ExplanationOfBenefit?endpoint=x".into(),
    ];
    for token in [&t, &apt] {
        for p in &requests {
            let r = get_bearer(&app, p, token).await;
            let status = r.status().as_u16();
            let shown = &p[..p.len().min(120)];
            assert!(status < 500, "{status} for {shown}");
            assert_eq!(r.headers()["content-type"], "application/fhir+json", "{shown}");
            let v: Value = r.json().await.unwrap();
            let expected = if status == 200 { "Bundle" } else { "OperationOutcome" };
            assert!(v["resourceType"] == expected || (status == 200 && v["resourceType"] == "Patient"), "{status} {v} for {shown}");
        }
    }
    // Lists of more values than the API binds in one statement are refused, not sent to the database (a URI
    // of up to 64 KiB could otherwise list ~32,000 ids, past SQLite's limit of bound parameters).
    let ids = vec!["x1"; 1_001].join(",");
    let types = vec!["Patient"; 1_001].join(",");
    for p in [format!("/fhir/ExplanationOfBenefit?_id={ids}"), format!("/fhir/Patient/$PATIENT_ID/$everything?_type={types}")] {
        let o = outcome(get_bearer(&app, &p, &t).await, 400).await;
        assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("at most 1000 values"), "{o}");
    }
    // Repeating a parameter with the same value is not an error, and the server still answers.
    bundle(get_bearer(&app, "/fhir/ExplanationOfBenefit?patient=$PATIENT_ID&patient=$PATIENT_ID", &t).await).await;
    bundle(get_bearer(&app, "/fhir/metadata", &t).await).await;
}

/// Payers assign patient ids independently: the same id at two endpoints is two people. An application
/// token names the endpoint whenever its app has the id linked at more than one.
#[tokio::test]
async fn application_token_matches_a_patient_within_one_endpoint() {
    let app = server().await;
    // Payer 1: the fixture member, 13 EOBs. Payer 2: another person the payer happens to give the same id.
    let l = linked(&app, Usage::OneTime, true).await;
    let payer2 = create_endpoint(&app, true).await;
    let other = create_authorization(&app, &l.keys, &payer2, "user-2", patient(), Usage::OneTime).await;
    let mut someone_else = json!({"resourceType": "Patient", "id": patient(), "name": [{"family": "Elsewhere"}]});
    someone_else["meta"] = json!({"lastUpdated": "2024-01-01T00:00:00Z"});
    let eob = json!({"resourceType": "ExplanationOfBenefit", "id": "payer2-eob", "status": "active",
                     "patient": {"reference": format!("Patient/{}", patient())}});
    store_resources(&app, &other, &[someone_else.clone(), eob]).await;
    let (e1, e2) = (l.endpoint.id.as_str(), payer2.id.as_str());
    let apt = app_token(&app, &l.keys).await;
    let p = patient();

    // The bare id is ambiguous: 400 multiple-matches, for a search, a read and $everything.
    for path in [format!("/fhir/ExplanationOfBenefit?patient={p}"), format!("/fhir/Patient/{p}"), format!("/fhir/Patient/{p}/$everything")] {
        let o = outcome(get_bearer(&app, &path, &apt).await, 400).await;
        assert_eq!(o["issue"][0]["code"], "multiple-matches", "{path}");
        assert!(o["issue"][0]["diagnostics"].as_str().unwrap().contains("endpoint="), "{o}");
    }
    // Qualified with the endpoint, each answers only that payer's patient.
    let b = bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient=Patient/{p}&endpoint={e1}"), &apt).await).await;
    assert_eq!(b["total"], 13);
    assert!(!ids(&b).contains(&"payer2-eob"));
    let b = bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?endpoint={e2}&patient={p}"), &apt).await).await;
    assert_eq!(ids(&b), ["payer2-eob"]);
    let r = get_bearer(&app, &format!("/fhir/Patient/{p}?endpoint={e2}"), &apt).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), someone_else);
    let r = get_bearer(&app, &format!("/fhir/Patient/{p}?endpoint={e1}"), &apt).await;
    assert_eq!(r.json::<Value>().await.unwrap()["id"], p);
    assert_eq!(bundle(get_bearer(&app, &format!("/fhir/Patient/{p}/$everything?endpoint={e1}"), &apt).await).await["total"], 18);
    let b = bundle(get_bearer(&app, &format!("/fhir/Patient/{p}/$everything?endpoint={e2}"), &apt).await).await;
    assert_eq!(ids(&b), [p, "payer2-eob"]);
    // An endpoint where the app has not linked that id: 403; `endpoint` without a patient: 400.
    outcome(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={p}&endpoint=no-such-endpoint"), &apt).await, 403).await;
    outcome(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?endpoint={e1}"), &apt).await, 400).await;
    // The whole app's search still spans both payers.
    assert_eq!(bundle(get_bearer(&app, "/fhir/Patient", &apt).await).await["total"], 2);

    // A patient token reads its own patient, at its own endpoint only.
    let t = patient_token(&app, &l).await;
    assert_eq!(bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={p}"), &t).await).await["total"], 13);
    assert_eq!(bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={p}&endpoint={e1}"), &t).await).await["total"], 13);
    outcome(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={p}&endpoint={e2}"), &t).await, 403).await;
    outcome(get_bearer(&app, &format!("/fhir/Patient/{p}?endpoint={e2}"), &t).await, 403).await;

    // Once the second link is gone the bare id is unambiguous again.
    crate::common::set_state(&app.state.db, &other, "REVOKED", app.clock_now()).await;
    assert_eq!(bundle(get_bearer(&app, &format!("/fhir/ExplanationOfBenefit?patient={p}"), &apt).await).await["total"], 13);
}
