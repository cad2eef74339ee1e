//! The FHIR API's answers for a large synced member, byte for byte, against a deliberately simple reference.
//!
//! The sandbox member `big.claims` (2,400 ExplanationOfBenefit and the resources they reference) is linked and
//! synced over HTTP. The reference reads the stored rows (`resources.body`, the payer's JSON text) once, parses
//! each with `serde_json::Value`, and for every request of a matrix (reads, 1,000-result pages and every paging
//! edge, token and date filters with each prefix, `_lastUpdated`, `_include`, `$everything` with `_type`,
//! `_since` and paging) filters, orders and pages in plain Rust, then writes the Bundle it expects: the head with
//! `serde_json`, each entry around the stored text. The server's answer must equal it exactly, except for the
//! Bundle's own `id` and `meta.lastUpdated`, which are taken from the answer.
//!
//! The reference uses the FHIR helpers' value-level rules (`TokenValue::matches`, `DateValue::matches`,
//! `element_range`, `values_at`, `served_target`): they define what a parameter means, while the server may
//! answer from SQL columns. [`super::fhir_golden`] pins every other parameter on a small member.

use std::collections::BTreeSet;

use link_sdk::{
    domain::Usage,
    server::{
        fhir::{
            index::references,
            reference::served_target,
            search::{self, DateValue, ParamKind, TokenValue},
        },
        surfaces::sandbox,
    },
};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::api_support::*;

/// One stored resource: its JSON text as stored and parsed.
struct Row {
    rtype: String,
    id: String,
    body: String,
    v: Value,
    last_updated_at: Option<i64>,
}

/// The member's stored resources, in no particular order.
async fn stored_rows(app: &crate::common::TestApp, authorization_id: &str) -> Vec<Row> {
    let rows = sqlx::query("SELECT resource_type, id, body, last_updated_at FROM resources WHERE authorization_id = $1")
        .bind(authorization_id)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            let body: String = r.try_get("body").unwrap();
            Row {
                rtype: r.try_get("resource_type").unwrap(),
                id: r.try_get("id").unwrap(),
                v: serde_json::from_str(&body).unwrap(),
                body,
                last_updated_at: r.try_get("last_updated_at").unwrap(),
            }
        })
        .collect()
}

/// Whether a resource meets one `name[:modifier]=value` parameter of `rtype` (values `,`-separated alternatives).
fn meets(rtype: &str, key: &str, value: &str, v: &Value) -> bool {
    let (name, modifier) = key.split_once(':').map_or((key, None), |(n, m)| (n, Some(m)));
    let p = search::find_param(rtype, name).unwrap_or_else(|| panic!("{rtype}?{name}"));
    let elements: Vec<&Value> = p.paths.iter().flat_map(|path| search::values_at(v, path)).collect();
    match p.kind {
        ParamKind::Token => {
            let hit = value.split(',').map(TokenValue::parse).any(|t| elements.iter().any(|e| t.matches(e)));
            hit != (modifier == Some("not"))
        }
        ParamKind::Date => {
            let values: Vec<DateValue> = value.split(',').map(|x| DateValue::parse(x).unwrap()).collect();
            elements.iter().filter_map(|e| search::element_range(e)).any(|r| values.iter().any(|d| d.matches(r)))
        }
    }
}

/// The expected Bundle text of one page: the head as the server writes it, with `id`/`lastUpdated` taken from
/// the answer, and one entry per resource around its stored text.
#[allow(clippy::too_many_arguments)]
fn expected_bundle(
    base: &str,
    path: &str,
    params: &[(String, String)],
    total: usize,
    offset: usize,
    count: usize,
    entries: &[(&Row, &str)],
    actual: &Value,
) -> String {
    let link = |o: usize| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params.iter().filter(|(k, _)| k != "_count" && k != "_offset") {
            s.append_pair(k, v);
        }
        s.append_pair("_count", &count.to_string());
        if o > 0 {
            s.append_pair("_offset", &o.to_string());
        }
        format!("{base}{path}?{}", s.finish())
    };
    let mut links = vec![json!({"relation": "self", "url": link(offset)}), json!({"relation": "first", "url": link(0)})];
    if count > 0 && offset + count < total {
        links.push(json!({"relation": "next", "url": link(offset + count)}));
    }
    if offset > 0 {
        links.push(json!({"relation": "previous", "url": link(offset.saturating_sub(count.max(1)))}));
    }
    let head = json!({"resourceType": "Bundle", "id": actual["id"], "meta": {"lastUpdated": actual["meta"]["lastUpdated"]},
                      "type": "searchset", "total": total, "link": links})
    .to_string();
    let mut out = head[..head.len() - 1].to_string();
    out.push_str(",\"entry\":[");
    for (i, (r, mode)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let full_url = Value::String(format!("{base}/fhir/{}/{}", r.rtype, r.id));
        out.push_str(&format!("{{\"fullUrl\":{full_url},\"resource\":{},\"search\":{{\"mode\":\"{mode}\"}}}}", r.body));
    }
    out.push_str("]}");
    out
}

/// `_count` and `_offset` of a query, with the defaults.
fn paging(params: &[(String, String)], default_count: usize) -> (usize, usize) {
    let get = |k: &str| params.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.parse::<usize>().unwrap());
    (get("_count").unwrap_or(default_count), get("_offset").unwrap_or(0))
}

/// What the reference expects for a search of `rtype` with `query` (the member's own data only).
fn expect_search(rows: &[Row], base: &str, rtype: &str, params: &[(String, String)], actual: &Value) -> String {
    let (count, offset) = paging(params, 100);
    let mut matched: Vec<&Row> = rows
        .iter()
        .filter(|r| r.rtype == rtype)
        .filter(|r| {
            params.iter().all(|(k, v)| match k.as_str() {
                "_count" | "_offset" | "_include" | "patient" | "_format" => true,
                "_id" => v.split(',').any(|i| i == r.id),
                _ => meets(rtype, k, v, &r.v),
            })
        })
        .collect();
    matched.sort_by(|a, b| a.id.cmp(&b.id));
    let total = matched.len();
    let page: Vec<&Row> = matched.into_iter().skip(offset).take(count).collect();
    // _include: the references of the page, in order, each once, none already a match, those stored.
    let mut wanted: Vec<(String, String)> = Vec::new();
    for r in &page {
        for (k, inc) in params.iter().filter(|(k, _)| k == "_include") {
            let _ = k;
            let what = inc.split(':').nth(1).unwrap();
            let mut refs = Vec::new();
            if what == "*" {
                references(&r.v, &mut refs);
            } else {
                for p in search::include_paths(rtype, what).unwrap() {
                    for el in search::values_at(&r.v, p) {
                        if let Some(s) = el.get("reference").and_then(Value::as_str) {
                            refs.push(s.to_string());
                        }
                    }
                }
            }
            for s in refs {
                if let Some((t, i)) = served_target(&s) {
                    let key = (t.to_string(), i.to_string());
                    if !wanted.contains(&key) {
                        wanted.push(key);
                    }
                }
            }
        }
    }
    let matched_keys: BTreeSet<(&str, &str)> = page.iter().map(|r| (r.rtype.as_str(), r.id.as_str())).collect();
    let mut entries: Vec<(&Row, &str)> = page.iter().map(|r| (*r, "match")).collect();
    for (t, i) in &wanted {
        if matched_keys.contains(&(t.as_str(), i.as_str())) {
            continue;
        }
        if let Some(r) = rows.iter().find(|r| &r.rtype == t && &r.id == i) {
            entries.push((r, "include"));
        }
    }
    expected_bundle(base, &format!("/fhir/{rtype}"), params, total, offset, count, &entries, actual)
}

/// What the reference expects for `Patient/{patient}/$everything` with `query`.
fn expect_everything(rows: &[Row], base: &str, patient: &str, params: &[(String, String)], actual: &Value) -> String {
    let (count, offset) = paging(params, 1000);
    let types: Option<Vec<&str>> = params.iter().find(|(k, _)| k == "_type").map(|(_, v)| v.split(',').collect());
    let since = params.iter().find(|(k, _)| k == "_since").map(|(_, v)| search::parse_fhir_date(v).unwrap().0);
    let mut matched: Vec<&Row> = rows
        .iter()
        .filter(|r| types.as_ref().is_none_or(|t| t.contains(&r.rtype.as_str())))
        .filter(|r| since.is_none_or(|s| r.last_updated_at.is_some_and(|a| a >= s)))
        .collect();
    matched.sort_by(|a, b| (a.rtype != "Patient", &a.rtype, &a.id).cmp(&(b.rtype != "Patient", &b.rtype, &b.id)));
    let total = matched.len();
    let entries: Vec<(&Row, &str)> = matched.into_iter().skip(offset).take(count).map(|r| (r, "match")).collect();
    expected_bundle(base, &format!("/fhir/Patient/{patient}/$everything"), params, total, offset, count, &entries, actual)
}

#[tokio::test]
async fn large_member_answers_equal_the_reference() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let (public, authz) = link_sandbox_member(&app, &l.keys, "big-user", sandbox::MEMBER_LARGE).await;
    let token = exchange(&app, &public, &l.keys.sk).await["access_token"].as_str().unwrap().to_string();
    let rows = stored_rows(&app, &authz).await;
    let eobs: Vec<&Row> = {
        let mut e: Vec<&Row> = rows.iter().filter(|r| r.rtype == "ExplanationOfBenefit").collect();
        e.sort_by(|a, b| a.id.cmp(&b.id));
        e
    };
    assert_eq!(eobs.len(), 2400, "big.claims synced");
    let patient = rows.iter().find(|r| r.rtype == "Patient").unwrap().id.clone();

    // Values for the filters, read from the data: the middle EOB's service start and creation, its type's
    // coding, an identifier system, and the middle `meta.lastUpdated`.
    let mid = &eobs[eobs.len() / 2].v;
    let service = mid["billablePeriod"]["start"].as_str().unwrap().to_string();
    let day = &service[..10];
    let month = &service[..7];
    let created = mid["created"].as_str().unwrap().to_string();
    let coding = &mid["type"]["coding"][0];
    let (type_system, type_code) = (coding["system"].as_str().unwrap(), coding["code"].as_str().unwrap());
    let id_system = mid["identifier"][0]["system"].as_str().unwrap_or("");
    let mut updated: Vec<i64> = rows.iter().filter_map(|r| r.last_updated_at).collect();
    updated.sort();
    let since_secs = updated[updated.len() / 2];
    let since = time::OffsetDateTime::from_unix_timestamp(since_secs).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap();
    let practitioner = rows.iter().find(|r| r.rtype == "Practitioner").unwrap().id.clone();
    let organization = rows.iter().find(|r| r.rtype == "Organization").unwrap().id.clone();

    // Reads by id: the stored text exactly, with the version's weak ETag.
    for (t, i) in [
        ("Patient", patient.as_str()),
        ("ExplanationOfBenefit", eobs[0].id.as_str()),
        ("ExplanationOfBenefit", eobs[1200].id.as_str()),
        ("ExplanationOfBenefit", eobs[2399].id.as_str()),
        ("Practitioner", practitioner.as_str()),
        ("Organization", organization.as_str()),
    ] {
        let resp = get_bearer(&app, &format!("/fhir/{t}/{i}"), &token).await;
        assert_eq!(resp.status(), 200, "{t}/{i}");
        let etag = resp.headers().get("etag").map(|h| h.to_str().unwrap().to_string());
        let body = resp.text().await.unwrap();
        let row = rows.iter().find(|r| r.rtype == t && r.id == i).unwrap();
        assert!(body == row.body, "{t}/{i}: the body is not the stored text");
        assert_eq!(etag, row.v["meta"]["versionId"].as_str().map(|v| format!("W/\"{v}\"")), "{t}/{i}");
    }

    let e = "ExplanationOfBenefit";
    let searches: Vec<(&str, String)> = vec![
        (e, String::new()),
        (e, "patient=$PATIENT_ID&_count=1000".into()),
        (e, "_count=1000&_offset=1000".into()),
        (e, "_count=1000&_offset=2000".into()),
        (e, "_count=50&_offset=2350".into()),
        (e, "_count=7&_offset=2399".into()),
        (e, "_count=10&_offset=2400".into()),
        (e, "_count=0".into()),
        (e, format!("_id={},{},nope", eobs[5].id, eobs[2000].id)),
        (e, "service-date=ge1900-01-01&_count=1000".into()),
        (e, "patient=$PATIENT_ID&service-date=ge1900-01-01&_count=1000&_offset=2000".into()),
        (e, format!("service-date={day}&_count=1000")),
        (e, format!("service-date={month}&_count=1000")),
        (e, format!("service-date=eq{day}")),
        (e, format!("service-date=ne{month}&_count=1000")),
        (e, format!("service-date=gt{day}&_count=1000")),
        (e, format!("service-date=lt{day}&_count=1000")),
        (e, format!("service-date=ge{day}&_count=1000&_offset=300")),
        (e, format!("service-date=le{day}&_count=1000")),
        (e, format!("service-date=sa{day}&_count=1000")),
        (e, format!("service-date=eb{day}&_count=1000")),
        (e, format!("service-date=ap{day}&_count=1000")),
        (e, format!("service-date=ge{month}&service-date=lt{day}&_count=1000")),
        (e, format!("service-date=lt{month},gt{day}&_count=1000")),
        (e, format!("created=ge{created}&_count=1000")),
        (e, format!("created=lt{}&_count=1000", &created[..4])),
        (e, format!("date=le{day}T12:00:00Z&_count=1000")),
        (e, format!("_lastUpdated=ge{since}&_count=1000")),
        (e, format!("_lastUpdated=lt{since}&_count=1000")),
        (e, format!("type={type_code}&_count=1000")),
        (e, format!("type={type_system}|{type_code}&_count=1000")),
        (e, format!("type=|{type_code}")),
        (e, format!("type={type_system}|&_count=1000")),
        (e, format!("type:not={type_code}&_count=1000")),
        (e, "type=pharmacy,professional&_count=1000".into()),
        (e, format!("type={type_code}&service-date=ge{day}&_count=1000")),
        (e, "status=active&_count=1000".into()),
        (e, "status:not=active".into()),
        (e, format!("identifier={id_system}|&_count=1000")),
        (e, "identifier=|nothing".into()),
        (e, "_include=ExplanationOfBenefit:*&_count=1000".into()),
        (e, "_include=ExplanationOfBenefit:provider&_count=200&_offset=100".into()),
        (e, "_include=ExplanationOfBenefit:patient&_include=ExplanationOfBenefit:care-team&_count=1000&_offset=1000".into()),
        (e, format!("_include=ExplanationOfBenefit:insurer&service-date=ge{day}&_count=1000")),
        ("Practitioner", "_count=1000".into()),
        ("Organization", String::new()),
        ("Patient", "_include=Patient:*".into()),
    ];
    for (rtype, query) in &searches {
        let path = if query.is_empty() { format!("/fhir/{rtype}") } else { format!("/fhir/{rtype}?{query}") };
        let resp = get_bearer(&app, &path, &token).await;
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.text().await.unwrap();
        let actual: Value = serde_json::from_str(&body).unwrap();
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.replace("$PATIENT_ID", &patient).as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let expected = expect_search(&rows, &app.base_url, rtype, &params, &actual);
        assert!(body == expected, "{path}: the Bundle differs from the reference (total {} vs expected {})", actual["total"],
            serde_json::from_str::<Value>(&expected).unwrap()["total"]);
    }

    for query in [
        "_count=5000".to_string(),
        String::new(),
        "_count=1000&_offset=1000".into(),
        "_count=1000&_offset=2000".into(),
        "_type=Practitioner,Organization,Location".into(),
        "_type=ExplanationOfBenefit&_count=100&_offset=2350".into(),
        format!("_since={since}&_count=5000"),
        format!("_since={since}&_type=ExplanationOfBenefit&_count=10&_offset=20"),
        "_count=0".into(),
    ] {
        let path = format!("/fhir/Patient/{patient}/$everything{}{query}", if query.is_empty() { "" } else { "?" });
        let resp = get_bearer(&app, &path, &token).await;
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.text().await.unwrap();
        let actual: Value = serde_json::from_str(&body).unwrap();
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let expected = expect_everything(&rows, &app.base_url, &patient, &params, &actual);
        assert!(body == expected, "{path}: the Bundle differs from the reference (total {} vs expected {})", actual["total"],
            serde_json::from_str::<Value>(&expected).unwrap()["total"]);
    }
}

/// A Bundle's text without its own `id` and `meta` (the request's time).
async fn bundle_without_id(app: &crate::common::TestApp, path: &str, token: &str) -> Value {
    let resp = get_bearer(app, path, token).await;
    assert_eq!(resp.status(), 200, "{path}");
    let mut v: Value = resp.json().await.unwrap();
    let head = v.as_object_mut().unwrap();
    head.remove("id");
    head.remove("meta");
    v
}

/// The number of search index rows.
async fn index_rows(app: &crate::common::TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM resource_params").fetch_one(&app.state.db.pool).await.unwrap().try_get("n").unwrap()
}

#[tokio::test]
async fn resources_stored_before_the_search_index_are_indexed_at_start_once() {
    let app = server().await;
    let l = linked(&app, Usage::OneTime, true).await;
    let token = exchange(&app, &l.public_token, &l.keys.sk).await["access_token"].as_str().unwrap().to_string();
    let queries = [
        "/fhir/ExplanationOfBenefit?type=PDE,carrier&_count=1000",
        "/fhir/ExplanationOfBenefit?service-date=ge2000-01-01&_count=1000",
        "/fhir/ExplanationOfBenefit?status:not=active",
        "/fhir/Coverage?status=active",
        "/fhir/Patient?birthdate=le2000",
        "/fhir/ExplanationOfBenefit?_lastUpdated=ge2000",
    ];
    let mut before = Vec::new();
    for q in queries {
        before.push(bundle_without_id(&app, q, &token).await);
    }
    assert!(before.iter().map(|b| b["total"].as_u64().unwrap()).sum::<u64>() > 0, "the filters match something");
    let rows = index_rows(&app).await;
    assert!(rows > 0);

    // As the rows of a database migrated from before the index: no index rows, version 0.
    sqlx::query("DELETE FROM resource_params").execute(&app.state.db.pool).await.unwrap();
    sqlx::query("UPDATE resources SET params_version = 0").execute(&app.state.db.pool).await.unwrap();
    let app = app.restart().await;
    assert_eq!(index_rows(&app).await, rows, "indexed at start");
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&bundle_without_id(&app, q, &token).await, b, "{q}");
    }
    let app = app.restart().await;
    assert_eq!(index_rows(&app).await, rows, "a second start indexes nothing again");
}
