//! Byte-for-byte equality of the FHIR API's answers with golden digests recorded from an earlier build.
//!
//! One data set (the Blue Button fixtures under two users of one app, plus the sandbox member `jane.doe` linked
//! and synced over HTTP, which has every served type) is read through every search parameter, modifier, date
//! prefix, `_include`, paging case, `$everything` option, read and error the API has, with patient and
//! application tokens. Each answer is reduced to its status, its FHIR headers, the SHA-256 of its exact body
//! bytes and a readable skeleton (total, links, entries), and compared with `tests/it/golden/fhir_api.json`.
//!
//! Normalised before hashing, and only these: the server's base URL (a random port) and the Bundle's own `id`
//! (a random UUID) and `meta.lastUpdated` (the time of the request). Resource bytes are hashed, never stored, and
//! the fixture's ids and identifier values are written as aliases (`{fx:N}`, see [`Aliases`]) in the requests, the
//! keys and the skeletons, so no fixture data is copied into the repository.
//!
//! The same golden file holds for SQLite and PostgreSQL, and with resources encrypted at rest. To record it
//! again after an intended change of the API's answers: `FHIR_GOLDEN=write cargo test --test it fhir_golden::`.

use std::collections::BTreeMap;

use crate::api_support::*;
use link_sdk::{
    domain::Usage,
    server::{services::sync, store::authorizations, surfaces::sandbox},
};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Who sends a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    /// The fixture member's patient token (user-1).
    A,
    /// The same payer records linked by a second user (user-2), plus one claim only they have.
    B,
    /// The sandbox member `jane.doe`'s patient token.
    Sandbox,
    /// The application token of the app all three are linked to.
    App,
    /// The application token of another app, whose one member's sync is pending, then failed.
    Other,
    /// No `Authorization` header.
    Nobody,
    /// A token we never issued.
    Bogus,
}

struct Tokens {
    a: String,
    b: String,
    sandbox: String,
    app: String,
    other: String,
}

impl Tokens {
    fn of(&self, who: Who) -> Option<&str> {
        Some(match who {
            Who::A => &self.a,
            Who::B => &self.b,
            Who::Sandbox => &self.sandbox,
            Who::App => &self.app,
            Who::Other => &self.other,
            Who::Nobody => return None,
            Who::Bogus => "at_bogus0000000000000000000000000000000000",
        })
    }
}

/// The ids the requests name.
struct Ids {
    /// The fixture Patient id.
    fixture_patient: String,
    /// The sandbox member's Patient id.
    sandbox_patient: String,
    /// The authorization of [`Who::Other`].
    other_authorization: String,
}

/// The fixture's resource ids and identifier values (those of 8 characters or more), read from the shared
/// fixtures at run time and numbered in sorted order: `{fx:N}` stands for the N-th.
struct Aliases(Vec<String>);

impl Aliases {
    fn load() -> Self {
        let mut values = std::collections::BTreeSet::new();
        for r in fixture_resources() {
            values.insert(r["id"].as_str().unwrap().to_string());
            for i in r["identifier"].as_array().into_iter().flatten() {
                if let Some(v) = i["value"].as_str().filter(|v| v.len() >= 8) {
                    values.insert(v.to_string());
                }
            }
        }
        Aliases(values.into_iter().collect())
    }

    /// `s` with each `{fx:N}` replaced by the value it stands for.
    fn real(&self, s: &str) -> String {
        let mut out = s.to_string();
        for (n, v) in self.0.iter().enumerate().rev() {
            out = out.replace(&format!("{{fx:{n}}}"), v);
        }
        out
    }

    /// `s` with each fixture value replaced by its alias, the longest values first (one may contain another).
    fn alias(&self, s: &str) -> String {
        let mut order: Vec<usize> = (0..self.0.len()).collect();
        order.sort_by_key(|&n| std::cmp::Reverse(self.0[n].len()));
        let mut out = s.to_string();
        for n in order {
            out = out.replace(&self.0[n], &format!("{{fx:{n}}}"));
        }
        out
    }
}

/// Sets up the data set on a fresh server; returns the tokens and ids.
async fn data_set(app: &crate::common::TestApp, aliases: &Aliases) -> (Tokens, Ids) {
    let l = linked(app, Usage::OneTime, true).await;
    let b_auth = create_authorization(app, &l.keys, &l.endpoint, "user-2", patient(), Usage::OneTime).await;
    let mut b_data = fixture_resources();
    let mut extra = b_data.iter().find(|r| r["id"] == aliases.real("{fx:25}").as_str()).unwrap().clone();
    extra["id"] = json!("only-b");
    b_data.push(extra);
    store_resources(app, &b_auth, &b_data).await;
    let b_public = public_token(app, &l.keys, &b_auth).await;

    // The sandbox member, linked through the test-mode shortcut and synced by the sync worker over HTTP.
    let (s_public, s_auth) = link_sandbox_member(app, &l.keys, "sandbox-user", sandbox::MEMBER_TYPICAL).await;
    let st = sync::status(&app.state.db, &s_auth).await.unwrap().unwrap();
    assert_eq!(st.status, "complete", "{st:?}");
    let sandbox_patient = authorizations::get(&app.state.db, &s_auth).await.unwrap().unwrap().patient_id.unwrap();

    // Another app whose one member is still syncing (429), later failed (422).
    let other = create_app(app, "Other").await;
    let o_auth = create_authorization(app, &other, &l.endpoint, "user-o", patient(), Usage::OneTime).await;
    store_resources(app, &o_auth, &fixture_resources()).await;
    let o_public = public_token(app, &other, &o_auth).await;

    let tokens = Tokens {
        a: exchange(app, &l.public_token, &l.keys.sk).await["access_token"].as_str().unwrap().to_string(),
        b: exchange(app, &b_public, &l.keys.sk).await["access_token"].as_str().unwrap().to_string(),
        sandbox: exchange(app, &s_public, &l.keys.sk).await["access_token"].as_str().unwrap().to_string(),
        app: app_token(app, &l.keys).await,
        other: exchange(app, &o_public, &other.sk).await["access_token"].as_str().unwrap().to_string(),
    };
    (tokens, Ids { fixture_patient: patient().to_string(), sandbox_patient, other_authorization: o_auth })
}

/// Searches of the sandbox member's data: `(type, query)` for every search parameter of every type, with
/// matching and non-matching values, token forms (`code`, `system|code`, `|code`, `system|`, `:not`, `,`) and
/// every date prefix at several precisions.
const SANDBOX_SEARCHES: &[(&str, &str)] = &[
    // ExplanationOfBenefit
    ("ExplanationOfBenefit", ""),
    ("ExplanationOfBenefit", "patient=$PATIENT_ID"),
    ("ExplanationOfBenefit", "patient=%24PATIENT_ID"),
    ("ExplanationOfBenefit", "identifier=https://sandbox-health.sandbox.link-sdk.dev/claim-id|"),
    ("ExplanationOfBenefit", "identifier=|nothing"),
    ("ExplanationOfBenefit", "status=active"),
    ("ExplanationOfBenefit", "status:not=active"),
    ("ExplanationOfBenefit", "type=institutional"),
    ("ExplanationOfBenefit", "type=pharmacy,professional"),
    ("ExplanationOfBenefit", "type=http://terminology.hl7.org/CodeSystem/claim-type|pharmacy"),
    ("ExplanationOfBenefit", "type=|pharmacy"),
    ("ExplanationOfBenefit", "type:not=pharmacy"),
    ("ExplanationOfBenefit", "created=ge2025-05-01"),
    ("ExplanationOfBenefit", "created=lt2025-05-01T08:30:00Z"),
    ("ExplanationOfBenefit", "service-date=2025-06"),
    ("ExplanationOfBenefit", "service-date=eq2025-06-20"),
    ("ExplanationOfBenefit", "service-date=ne2025-06"),
    ("ExplanationOfBenefit", "service-date=gt2025-06-01"),
    ("ExplanationOfBenefit", "service-date=lt2025-06-01"),
    ("ExplanationOfBenefit", "service-date=ge2025-06-01"),
    ("ExplanationOfBenefit", "service-date=le2025-06-01"),
    ("ExplanationOfBenefit", "service-date=sa2025-06-01"),
    ("ExplanationOfBenefit", "service-date=eb2025-06-01"),
    ("ExplanationOfBenefit", "service-date=ap2025-06-01"),
    ("ExplanationOfBenefit", "service-date=2025"),
    ("ExplanationOfBenefit", "service-date=ge2025-05-01&service-date=lt2025-06-01"),
    ("ExplanationOfBenefit", "service-date=lt2025-05-01,gt2025-06-15"),
    ("ExplanationOfBenefit", "date=ge2025-06-01T00:00:00+02:00"),
    ("ExplanationOfBenefit", "date=ge2025-06-01T00:00:00%2B02:00"),
    ("ExplanationOfBenefit", "date=lt2025-06-01T00:00:00-05:00"),
    ("ExplanationOfBenefit", "date=lt2025-06-01T10:00"),
    ("ExplanationOfBenefit", "_lastUpdated=ge2025-06-01"),
    ("ExplanationOfBenefit", "_lastUpdated=lt2025-06-01T12:00:00.000+00:00"),
    ("ExplanationOfBenefit", "_id=carrier-0-0,pde-0-1,nope"),
    ("ExplanationOfBenefit", "_id=carrier-0-0&_id=pde-0-1"),
    ("ExplanationOfBenefit", "_id=carrier-0-0,pde-0-1&_id=pde-0-1"),
    ("ExplanationOfBenefit", "type=pharmacy&status=active&service-date=ge2025-01-01"),
    ("ExplanationOfBenefit", "_count=5"),
    ("ExplanationOfBenefit", "_count=5&_offset=5"),
    ("ExplanationOfBenefit", "_count=5&_offset=20"),
    ("ExplanationOfBenefit", "_count=5&_offset=3"),
    ("ExplanationOfBenefit", "_count=5&_offset=50"),
    ("ExplanationOfBenefit", "_count=0"),
    ("ExplanationOfBenefit", "_count=1000"),
    ("ExplanationOfBenefit", "_offset=2"),
    ("ExplanationOfBenefit", "type=pharmacy&_count=2&_offset=2"),
    ("ExplanationOfBenefit", "type=pharmacy&_count=0"),
    ("ExplanationOfBenefit", "_format=json&_pretty=true&_count=2"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:patient"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:provider"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:provider:Practitioner"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:insurer"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:care-team"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:coverage"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:facility"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:*"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:*&_count=3&_offset=3"),
    ("ExplanationOfBenefit", "_include=ExplanationOfBenefit:care-team&_include=ExplanationOfBenefit:insurer&type=pharmacy"),
    // Coverage
    ("Coverage", ""),
    ("Coverage", "beneficiary=$PATIENT_ID"),
    ("Coverage", "identifier=MB"),
    ("Coverage", "status=active"),
    ("Coverage", "type=HIP"),
    ("Coverage", "type=http://terminology.hl7.org/CodeSystem/v3-ActCode|DRUGPOL"),
    ("Coverage", "date=2023"),
    ("Coverage", "date=sa2019-12-31"),
    ("Coverage", "date=eb2026-01-01"),
    ("Coverage", "date=ap2025-12-31"),
    ("Coverage", "_include=Coverage:beneficiary"),
    ("Coverage", "_include=Coverage:payor"),
    ("Coverage", "_include=Coverage:patient"),
    ("Coverage", "_include=Coverage:*"),
    // Patient
    ("Patient", ""),
    ("Patient", "_id=$PATIENT_ID"),
    ("Patient", "patient=$PATIENT_ID"),
    ("Patient", "patient=$PATIENT_ID&_id=nope"),
    ("Patient", "identifier=http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType|pat"),
    ("Patient", "identifier=https://sandbox-health.sandbox.link-sdk.dev/patient-id|"),
    ("Patient", "gender=female"),
    ("Patient", "gender=male"),
    ("Patient", "gender:not=male"),
    ("Patient", "birthdate=1958-03-24"),
    ("Patient", "birthdate=lt1960"),
    ("Patient", "birthdate=gt1960"),
    ("Patient", "_include=Patient:general-practitioner"),
    ("Patient", "_include=Patient:organization"),
    ("Patient", "_include=Patient:*"),
    // Condition
    ("Condition", ""),
    ("Condition", "subject=$PATIENT_ID"),
    ("Condition", "clinical-status=active"),
    ("Condition", "status=http://terminology.hl7.org/CodeSystem/condition-clinical|active"),
    ("Condition", "category=problem-list-item"),
    ("Condition", "code=I10"),
    ("Condition", "code=http://hl7.org/fhir/sid/icd-10-cm|E119,http://hl7.org/fhir/sid/icd-10-cm|I10"),
    ("Condition", "identifier=x"),
    ("Condition", "onset-date=le2024"),
    ("Condition", "recorded-date=ge2025-01-01"),
    ("Condition", "date=2024"),
    ("Condition", "_include=Condition:patient"),
    ("Condition", "_include=Condition:*"),
    // Observation
    ("Observation", ""),
    ("Observation", "status=final"),
    ("Observation", "category=vital-signs"),
    ("Observation", "category=laboratory&_count=2"),
    ("Observation", "code=http://loinc.org|8480-6"),
    ("Observation", "code:not=8480-6"),
    ("Observation", "date=ge2025-01-01T00:00:00Z"),
    ("Observation", "date=2025-06"),
    ("Observation", "date=lt2024-06-01"),
    ("Observation", "_include=Observation:performer"),
    ("Observation", "_include=Observation:patient"),
    ("Observation", "_include=Observation:*"),
    // MedicationRequest
    ("MedicationRequest", ""),
    ("MedicationRequest", "status=active"),
    ("MedicationRequest", "intent=order"),
    ("MedicationRequest", "category=community"),
    ("MedicationRequest", "code=860975"),
    ("MedicationRequest", "authoredon=2025"),
    ("MedicationRequest", "date=lt2025-01-01"),
    ("MedicationRequest", "_include=MedicationRequest:medication"),
    ("MedicationRequest", "_include=MedicationRequest:requester"),
    ("MedicationRequest", "_include=MedicationRequest:*"),
    // AllergyIntolerance
    ("AllergyIntolerance", ""),
    ("AllergyIntolerance", "clinical-status=active"),
    ("AllergyIntolerance", "status=inactive"),
    ("AllergyIntolerance", "category=food"),
    ("AllergyIntolerance", "code=http://snomed.info/sct|91936005"),
    ("AllergyIntolerance", "date=ge2025"),
    ("AllergyIntolerance", "patient=$PATIENT_ID&_include=AllergyIntolerance:patient"),
    // Immunization
    ("Immunization", ""),
    ("Immunization", "status=completed"),
    ("Immunization", "vaccine-code=140"),
    ("Immunization", "code=http://hl7.org/fhir/sid/cvx|208"),
    ("Immunization", "date=ge2025"),
    ("Immunization", "_include=Immunization:*"),
    // Procedure
    ("Procedure", ""),
    ("Procedure", "status=completed"),
    ("Procedure", "category=x"),
    ("Procedure", "code=99213,80053"),
    ("Procedure", "date=le2025-03"),
    ("Procedure", "_include=Procedure:performer"),
    // Encounter
    ("Encounter", ""),
    ("Encounter", "status=finished"),
    ("Encounter", "type=99213"),
    ("Encounter", "class=AMB"),
    ("Encounter", "class=http://terminology.hl7.org/CodeSystem/v3-ActCode|AMB"),
    ("Encounter", "identifier=x"),
    ("Encounter", "date=2025-06"),
    ("Encounter", "date=ge2025-06-01T09:00:00Z"),
    ("Encounter", "_include=Encounter:practitioner"),
    ("Encounter", "_include=Encounter:service-provider"),
    ("Encounter", "_include=Encounter:*"),
    // DiagnosticReport
    ("DiagnosticReport", ""),
    ("DiagnosticReport", "status=final"),
    ("DiagnosticReport", "category=LAB"),
    ("DiagnosticReport", "code=24323-8"),
    ("DiagnosticReport", "date=2025"),
    ("DiagnosticReport", "_include=DiagnosticReport:performer"),
    ("DiagnosticReport", "_include=DiagnosticReport:*"),
    // DocumentReference
    ("DocumentReference", ""),
    ("DocumentReference", "status=current"),
    ("DocumentReference", "type=34133-9"),
    ("DocumentReference", "category=clinical-note"),
    ("DocumentReference", "date=ge2025-01-01"),
    ("DocumentReference", "_include=DocumentReference:*"),
    // Shared (non-compartment) types
    ("Organization", ""),
    ("Organization", "identifier=http://hl7.org/fhir/sid/us-npi|"),
    ("Organization", "_id=org-payer"),
    ("Practitioner", ""),
    ("Practitioner", "identifier=http://hl7.org/fhir/sid/us-npi|"),
    ("PractitionerRole", ""),
    ("PractitionerRole", "_include=PractitionerRole:practitioner&_include=PractitionerRole:organization"),
    ("PractitionerRole", "identifier=x"),
    ("Location", ""),
    ("Location", "_lastUpdated=ge2000"),
    ("Location", "identifier=x"),
    ("Medication", ""),
    ("Medication", "identifier=x"),
];

/// Searches of the fixture member's data (the cases the other FHIR API tests assert on, and more).
const FIXTURE_SEARCHES: &[&str] = &[
    "ExplanationOfBenefit",
    "ExplanationOfBenefit?patient=$PATIENT_ID",
    "ExplanationOfBenefit?patient=Patient/{fixture}",
    "ExplanationOfBenefit?patient={fixture}",
    "ExplanationOfBenefit?type=PDE",
    "ExplanationOfBenefit?type=https://bluebutton.cms.gov/resources/codesystem/eob-type|PDE",
    "ExplanationOfBenefit?type=other|PDE",
    "ExplanationOfBenefit?type:not=PDE",
    "ExplanationOfBenefit?type=PDE,71",
    "ExplanationOfBenefit?status=active",
    "ExplanationOfBenefit?identifier=https://bluebutton.cms.gov/resources/variables/pde_id|{fx:1}",
    "ExplanationOfBenefit?service-date=ge2015-03-01",
    "ExplanationOfBenefit?service-date=lt2015-03-01",
    "ExplanationOfBenefit?service-date=2015-04",
    "ExplanationOfBenefit?service-date=ge2015-01-01&service-date=le2015-06-30",
    "ExplanationOfBenefit?_lastUpdated=gt2020-06-01",
    "ExplanationOfBenefit?_lastUpdated=lt2020-06-01",
    "ExplanationOfBenefit?_lastUpdated=eq2021-02-17",
    "ExplanationOfBenefit?_id={fx:41},{fx:26}",
    "ExplanationOfBenefit?patient=$PATIENT_ID&_count=5",
    "ExplanationOfBenefit?patient=$PATIENT_ID&_count=5&_offset=5",
    "ExplanationOfBenefit?patient=$PATIENT_ID&_count=5&_offset=10",
    "ExplanationOfBenefit?type=PDE&_count=4&_offset=8",
    "ExplanationOfBenefit?type=PDE&_include=ExplanationOfBenefit:patient&_include=ExplanationOfBenefit:coverage",
    "ExplanationOfBenefit?_include=ExplanationOfBenefit:*",
    "ExplanationOfBenefit?_include=ExplanationOfBenefit:provider",
    "Coverage?patient=$PATIENT_ID&status=active",
    "Coverage?_include=Coverage:payor&_include=Coverage:beneficiary",
    "Patient?_id=$PATIENT_ID",
    "Patient",
    // Errors.
    "ExplanationOfBenefit?foo=bar",
    "ExplanationOfBenefit?service-date=yesterday",
    "ExplanationOfBenefit?service-date=xx2020",
    "ExplanationOfBenefit?service-date:missing=true",
    "ExplanationOfBenefit?_count=abc",
    "ExplanationOfBenefit?_count=100000",
    "ExplanationOfBenefit?_count=-1",
    "ExplanationOfBenefit?_offset=x",
    "ExplanationOfBenefit?type:exact=PDE",
    "ExplanationOfBenefit?_id=bad%20id",
    "ExplanationOfBenefit?patient=Patient/someone-else",
    "ExplanationOfBenefit?patient=bad%20id",
    "ExplanationOfBenefit?patient=$PATIENT_ID&subject=other",
    "ExplanationOfBenefit?_include=Coverage:payor",
    "ExplanationOfBenefit?_include=ExplanationOfBenefit:nope",
    "ExplanationOfBenefit?_include=nope",
    "Observation?gender=female",
    "Basic",
    "Basic?x=1",
];

/// `$everything`, reads and errors, with the path after `/fhir/`.
const FIXTURE_OTHERS: &[&str] = &[
    "Patient/$PATIENT_ID/$everything",
    "Patient/{fixture}/$everything",
    "Patient/$PATIENT_ID/$everything?_type=Coverage,Patient",
    "Patient/$PATIENT_ID/$everything?_type=ExplanationOfBenefit&_count=3&_offset=6",
    "Patient/$PATIENT_ID/$everything?_since=2020-06-01T00:00:00Z",
    "Patient/$PATIENT_ID/$everything?_since=2021-01-01",
    "Patient/$PATIENT_ID/$everything?_since=2020-06-01T00:00:00Z&_count=4&_offset=4",
    "Patient/$PATIENT_ID/$everything?_count=10&_offset=10",
    "Patient/$PATIENT_ID/$everything?_count=0",
    "Patient/$PATIENT_ID/$everything?_format=json",
    "Patient/$PATIENT_ID/$everything?_type=Nope",
    "Patient/$PATIENT_ID/$everything?_since=x",
    "Patient/$PATIENT_ID/$everything?_count=6000",
    "Patient/$PATIENT_ID/$everything?foo=1",
    "Patient/other/$everything",
    "Patient/$PATIENT_ID/$other",
    "Patient/$PATIENT_ID",
    "Patient/{fixture}",
    "Patient/%24PATIENT_ID",
    "ExplanationOfBenefit/{fx:25}",
    "ExplanationOfBenefit/{fx:26}",
    "ExplanationOfBenefit/only-b",
    "Coverage/{fx:28}",
    "ExplanationOfBenefit/nope",
    "Patient/someone-else",
    "Patient/bad%20id",
    "Basic/1",
    "metadata",
];

/// `(who, method, path after /fhir/)` of every request, in order.
fn requests(ids: &Ids, aliases: &Aliases) -> Vec<(Who, &'static str, String)> {
    let fill = |s: &str| aliases.real(&s.replace("{fixture}", &ids.fixture_patient).replace("{sandbox}", &ids.sandbox_patient));
    let mut out = Vec::new();
    for (t, q) in SANDBOX_SEARCHES {
        let path = if q.is_empty() { t.to_string() } else { format!("{t}?{q}") };
        out.push((Who::Sandbox, "GET", path));
    }
    for who in [Who::A, Who::B] {
        for p in FIXTURE_SEARCHES.iter().chain(FIXTURE_OTHERS) {
            out.push((who, "GET", fill(p)));
        }
    }
    for p in [
        "Patient/$PATIENT_ID/$everything",
        "Patient/$PATIENT_ID/$everything?_type=Observation,Encounter&_count=7&_offset=7",
        "Patient/$PATIENT_ID/$everything?_since=2025-06-01",
        "Patient/$PATIENT_ID/$everything?_since=2025-06-01T12:00:00.000%2B00:00&_type=Condition,Patient",
        "Patient/$PATIENT_ID/$everything?_count=5000",
        "Patient/$PATIENT_ID",
        "ExplanationOfBenefit/carrier-0-0",
        "Observation/obs-0-1",
        "Organization/org-payer",
        "Practitioner/prac-1",
        "Observation/nope",
    ] {
        out.push((Who::Sandbox, "GET", p.to_string()));
    }
    // The application token sees every live authorization of its app: both fixture users and the sandbox member.
    for p in [
        "Patient",
        "Patient?_count=1",
        "Patient?_count=1&_offset=1",
        "Patient/{fixture}",
        "Patient/{sandbox}",
        "ExplanationOfBenefit",
        "ExplanationOfBenefit?_count=1000",
        "ExplanationOfBenefit?patient={fixture}",
        "ExplanationOfBenefit?patient=Patient/{sandbox}&type=pharmacy",
        "ExplanationOfBenefit?patient=not-linked",
        "ExplanationOfBenefit?type=PDE,pharmacy&_count=6&_offset=6",
        "ExplanationOfBenefit?_include=ExplanationOfBenefit:*&_count=20",
        "ExplanationOfBenefit?_include=ExplanationOfBenefit:patient&_count=30",
        "ExplanationOfBenefit/only-b",
        "ExplanationOfBenefit/carrier-0-0",
        "Coverage",
        "Coverage?status=active",
        "Observation?patient={sandbox}&_count=3",
        "Patient/{fixture}/$everything",
        "Patient/{sandbox}/$everything?_count=10",
        "Patient/not-linked/$everything",
        "Patient/$PATIENT_ID",
        "ExplanationOfBenefit?patient=$PATIENT_ID",
    ] {
        out.push((Who::App, "GET", fill(p)));
    }
    for who in [Who::Nobody, Who::Bogus] {
        for p in ["Patient/$PATIENT_ID", "ExplanationOfBenefit", "Patient/x/$everything", "metadata"] {
            out.push((who, "GET", p.to_string()));
        }
    }
    for m in ["DELETE", "POST", "PUT"] {
        out.push((Who::A, m, "Patient/$PATIENT_ID".to_string()));
        out.push((Who::A, m, "ExplanationOfBenefit".to_string()));
    }
    out
}

/// The requests of [`Who::Other`], whose member's sync is pending, then failed, then complete.
const SYNC_GATED: &[&str] = &["Patient/$PATIENT_ID", "ExplanationOfBenefit?patient=$PATIENT_ID", "Patient/$PATIENT_ID/$everything"];

/// Status, FHIR headers, body digest and skeleton of one answer, with the base URL and the Bundle's own id and
/// `meta.lastUpdated` normalised in the digest, and fixture values written as aliases in the skeleton.
async fn record(r: reqwest::Response, base_url: &str, aliases: &Aliases) -> Value {
    let status = r.status().as_u16();
    let mut headers = BTreeMap::new();
    for h in ["content-type", "cache-control", "etag", "retry-after", "www-authenticate", "allow"] {
        if let Some(v) = r.headers().get(h) {
            headers.insert(h.to_string(), v.to_str().unwrap().replace(base_url, "{base}"));
        }
    }
    let body = r.text().await.unwrap();
    let mut norm = body.replace(base_url, "{base}");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let skeleton = match v["resourceType"].as_str() {
        Some("Bundle") => {
            let id = v["id"].as_str().unwrap();
            let last_updated = v["meta"]["lastUpdated"].as_str().unwrap();
            norm = norm.replacen(&format!("\"id\":\"{id}\""), "\"id\":\"{bundle-id}\"", 1).replacen(
                &format!("\"meta\":{{\"lastUpdated\":\"{last_updated}\"}}"),
                "\"meta\":{\"lastUpdated\":\"{now}\"}",
                1,
            );
            let links: Vec<String> = v["link"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| format!("{} {}", l["relation"].as_str().unwrap(), l["url"].as_str().unwrap().replace(base_url, "{base}")))
                .collect();
            let entries: Vec<String> = v["entry"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            format!("{} {}", e["search"]["mode"].as_str().unwrap_or("-"), e["fullUrl"].as_str().unwrap_or("-").replace(base_url, ""))
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"total": v["total"], "link": links, "entry": entries})
        }
        // Our own text only: no payer data.
        Some("OperationOutcome") => v.clone(),
        Some(t) => json!(format!("{t}/{}", v["id"].as_str().unwrap_or("-"))),
        None => json!(null),
    };
    let digest = hex::encode(Sha256::digest(norm.as_bytes()));
    let skeleton: Value = serde_json::from_str(&aliases.alias(&skeleton.to_string())).unwrap();
    json!({"status": status, "headers": headers, "sha256": digest, "skeleton": skeleton})
}

async fn send(app: &crate::common::TestApp, tokens: &Tokens, aliases: &Aliases, who: Who, method: &str, path: &str) -> Value {
    let mut rb = app.client.request(method.parse().unwrap(), format!("{}/fhir/{path}", app.base_url));
    if let Some(t) = tokens.of(who) {
        rb = rb.bearer_auth(t);
    }
    record(rb.send().await.unwrap(), &app.base_url, aliases).await
}

/// Every request's answer, keyed by `who method path`.
async fn answers(encrypt_resources: bool) -> BTreeMap<String, Value> {
    let (mut settings, dir, url) = crate::common::test_settings().await;
    settings.sync_workers = 0;
    settings.encrypt_resources = encrypt_resources;
    let app = crate::common::spawn_app_with(settings, dir, url).await;
    let aliases = Aliases::load();
    let (tokens, ids) = data_set(&app, &aliases).await;
    let mut out = BTreeMap::new();
    for (who, method, path) in requests(&ids, &aliases) {
        let key = aliases.alias(&format!("{who:?} {method} /fhir/{}", path.replace(&ids.sandbox_patient, "{sandbox}")));
        let v = send(&app, &tokens, &aliases, who, method, &path).await;
        assert!(out.insert(key.clone(), v).is_none(), "{key} twice");
    }
    // The sync gate: pending (429), failed (422), complete (200).
    let job = sync::enqueue(&app.state.db, &ids.other_authorization, app.clock_now()).await.unwrap();
    for (phase, update) in [
        ("pending", None),
        ("failed", Some("UPDATE sync_jobs SET status = 'failed', exit_code = 'PAYER_SERVER_ERROR' WHERE id = $1")),
        ("complete", Some("UPDATE sync_jobs SET status = 'complete', exit_code = NULL WHERE id = $1")),
    ] {
        if let Some(sql) = update {
            sqlx::query(sql).bind(&job).execute(&app.state.db.pool).await.unwrap();
        }
        for p in SYNC_GATED {
            out.insert(format!("Other GET /fhir/{p} ({phase} sync)"), send(&app, &tokens, &aliases, Who::Other, "GET", p).await);
        }
    }
    out
}

fn golden_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden/fhir_api.json")
}

fn compare(actual: &BTreeMap<String, Value>) {
    if std::env::var("FHIR_GOLDEN").as_deref() == Ok("write") {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), text).unwrap();
        return;
    }
    let expected: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).expect("tests/it/golden/fhir_api.json")).unwrap();
    let mut diffs = Vec::new();
    for key in expected.keys().chain(actual.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (expected.get(key), actual.get(key)) {
            (Some(e), Some(a)) if e == a => {}
            (e, a) => diffs.push(format!(
                "{key}\n  expected: {}\n  actual:   {}",
                e.map_or("(none)".into(), Value::to_string),
                a.map_or("(none)".into(), Value::to_string)
            )),
        }
    }
    assert!(diffs.is_empty(), "{} of {} answers differ from the golden file:\n{}", diffs.len(), expected.len(), diffs.join("\n"));
}

#[tokio::test]
async fn answers_equal_the_golden_bytes() {
    compare(&answers(false).await);
}

#[tokio::test]
async fn answers_equal_the_golden_bytes_with_resources_encrypted_at_rest() {
    if std::env::var("FHIR_GOLDEN").as_deref() == Ok("write") {
        return;
    }
    compare(&answers(true).await);
}
