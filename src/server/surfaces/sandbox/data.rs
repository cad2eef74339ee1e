//! Deterministic synthetic members and their FHIR R4 resources, shaped like CMS Blue Button 2.0 / CARIN
//! Blue Button payloads. Nothing is stored: every resource is a pure function of (seed, payer, member, type,
//! index), so the 2,400-EOB member costs nothing until a page of it is asked for.
//!
//! Resource ids: `{prefix}-{member number}-{index}` for member-owned resources (e.g. `carrier-0-17`,
//! `cond-0-2`, `coverage-3-0`), a seed-derived negative number for Patients (Blue Button style), and fixed ids
//! for shared resources (`org-payer`, `org-1`…, `prac-1`…, `role-1`…, `loc-1`…, `med-1`…).

use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{Faults, PayerConfig};

/// A sandbox test member (the same roster on every payer).
#[derive(Debug, Clone)]
pub struct Member {
    /// Sign-in username.
    pub username: &'static str,
    /// Given name.
    pub given: &'static str,
    /// Family name.
    pub family: &'static str,
    /// FHIR administrative gender.
    pub gender: &'static str,
    /// Birth date, `YYYY-MM-DD`.
    pub birth_date: &'static str,
    /// What signing in as this member shows (listed on the sign-in page).
    pub scenario: &'static str,
    /// Number of ExplanationOfBenefit resources.
    pub eob_count: usize,
    /// Whether the member has clinical records (Condition, Observation, …).
    pub clinical: bool,
    /// Username of the subscriber when this member is a dependent on someone else's Coverage.
    pub subscriber: Option<&'static str>,
    /// Faults triggered by signing in as this member.
    pub faults: Faults,
}

#[allow(clippy::too_many_arguments)]
fn m(
    username: &'static str,
    given: &'static str,
    family: &'static str,
    gender: &'static str,
    birth_date: &'static str,
    scenario: &'static str,
    eob_count: usize,
    clinical: bool,
) -> Member {
    Member {
        username,
        given,
        family,
        gender,
        birth_date,
        scenario,
        eob_count,
        clinical,
        subscriber: None,
        faults: Faults::default(),
    }
}

/// The roster: five ordinary members, then one member per fault (see the module docs of `sandbox`).
pub fn members() -> &'static [Member] {
    static ROSTER: OnceLock<Vec<Member>> = OnceLock::new();
    ROSTER.get_or_init(|| {
        const FAULT_EOBS: usize = 60;
        vec![
            m("jane.doe", "Jane", "Doe", "female", "1958-03-24", "Claims of every type and clinical records", 24, true),
            m("new.member", "Robin", "Nguyen", "other", "1996-11-02", "Newly enrolled: no claims yet", 0, false),
            m("big.claims", "Walter", "Brooks", "male", "1944-07-09", "2,400 claims (large download)", 2400, false),
            m("alex.rivera", "Alex", "Rivera", "female", "1975-05-14", "Family plan subscriber", 12, true),
            Member {
                subscriber: Some("alex.rivera"),
                ..m("sam.rivera", "Sam", "Rivera", "male", "2008-09-30", "Dependent on Alex Rivera's plan", 6, false)
            },
            Member {
                faults: Faults { deny_consent: true, ..Faults::default() },
                ..m(
                    "deny.consent",
                    "Dana",
                    "Denton",
                    "female",
                    "1969-01-20",
                    "Declines to share (access_denied)",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { token_error: Some("invalid_grant"), ..Faults::default() },
                ..m(
                    "token.error",
                    "Terry",
                    "Tran",
                    "male",
                    "1981-02-11",
                    "Token exchange fails (invalid_grant)",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { slow_token: true, ..Faults::default() },
                ..m(
                    "token.slow",
                    "Sloane",
                    "Tate",
                    "female",
                    "1972-12-01",
                    "Token endpoint too slow (timeout)",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { callback_without_code: true, ..Faults::default() },
                ..m("no.code", "Nico", "Codd", "male", "1990-06-06", "Callback without a code", FAULT_EOBS, true)
            },
            Member {
                faults: Faults { alter_state: true, ..Faults::default() },
                ..m(
                    "bad.state",
                    "Stacy",
                    "Bates",
                    "female",
                    "1985-04-17",
                    "Callback with an altered state",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { server_error_types: vec!["ExplanationOfBenefit"], ..Faults::default() },
                ..m(
                    "server.error",
                    "Sergio",
                    "Ruiz",
                    "male",
                    "1962-08-23",
                    "Claims requests fail with 500",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { rate_limit_every: 3, ..Faults::default() },
                ..m(
                    "rate.limited",
                    "Rita",
                    "Lim",
                    "female",
                    "1977-10-10",
                    "Rate limited (429 on some pages)",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { access_token_ttl: Some(60), access_token_max_requests: Some(4), ..Faults::default() },
                ..m(
                    "short.token",
                    "Shea",
                    "Short",
                    "other",
                    "1988-03-03",
                    "Access tokens expire quickly",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { relative_next: true, ..Faults::default() },
                ..m("relative.next", "Reese", "Next", "female", "1993-09-19", "Relative paging links", FAULT_EOBS, true)
            },
            Member {
                faults: Faults { plan_unreachable: true, ..Faults::default() },
                ..m(
                    "plan.unreachable",
                    "Pat",
                    "Unger",
                    "male",
                    "1950-02-28",
                    "Plan not available through the API",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { reject_scope: true, ..Faults::default() },
                ..m("scope.rejected", "Scott", "Ope", "male", "1971-07-17", "Scope refused", FAULT_EOBS, true)
            },
            Member {
                faults: Faults { no_patient_context: true, ..Faults::default() },
                ..m("no.patient", "Noel", "Context", "male", "1966-06-06", "No patient context", FAULT_EOBS, true)
            },
            Member {
                faults: Faults { daily_changes: true, ..Faults::default() },
                ..m(
                    super::MEMBER_CHANGING,
                    "Cora",
                    "Chang",
                    "female",
                    "1980-02-29",
                    "Claims that change every day",
                    changing::SLOTS,
                    false,
                )
            },
            Member {
                faults: Faults {
                    narrow_scopes: Some(&["Patient", "Coverage", "ExplanationOfBenefit"]),
                    ..Faults::default()
                },
                ..m(
                    "narrow.scope",
                    "Nora",
                    "Wong",
                    "female",
                    "1966-05-05",
                    "Grants claims and coverage only",
                    FAULT_EOBS,
                    true,
                )
            },
            Member {
                faults: Faults { refresh_refused: true, ..Faults::default() },
                ..m(
                    "refresh.refused",
                    "Remy",
                    "Fresh",
                    "other",
                    "1980-08-08",
                    "Plan refuses to refresh access (sign in again)",
                    FAULT_EOBS,
                    true,
                )
            },
        ]
    })
}

/// The member number of `username`.
pub fn member_by_username(username: &str) -> Option<usize> {
    members().iter().position(|m| m.username == username)
}

/// SplitMix64: tiny, fast, and good enough for synthetic data.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, label: &str, a: u64, b: u64) -> Self {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(label.as_bytes());
        h.update(a.to_le_bytes());
        h.update(b.to_le_bytes());
        let d = h.finalize();
        Rng(u64::from_le_bytes(d[..8].try_into().expect("8 bytes")))
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A money amount in `[lo, hi)` dollars, rounded to cents.
    pub fn money(&mut self, lo: u64, hi: u64) -> f64 {
        let cents = lo * 100 + self.below((hi - lo) * 100);
        cents as f64 / 100.0
    }
}

/// What the generators need to know about where they are served.
pub(crate) struct Ctx<'a> {
    pub seed: u64,
    pub payer: &'a PayerConfig,
}

/// The Patient id of member `n` under `seed` (Blue Button style negative number).
pub fn patient_id(seed: u64, n: usize) -> String {
    let mut r = Rng::new(seed, "patient-id", 0, 0);
    format!("-{}", 10_000_000_000_000u64 + r.below(90_000) * 100_000_000 + 1_000 + n as u64)
}

/// The member number owning Patient `id`.
pub fn member_by_patient_id(seed: u64, id: &str) -> Option<usize> {
    (0..members().len()).find(|&n| patient_id(seed, n) == id)
}

const CLINICAL_COUNTS: &[(&str, &str, usize)] = &[
    ("Condition", "cond", 4),
    ("Observation", "obs", 12),
    ("MedicationRequest", "medrx", 4),
    ("AllergyIntolerance", "allergy", 2),
    ("Immunization", "imm", 3),
    ("Procedure", "proc", 3),
    ("Encounter", "enc", 5),
    ("DiagnosticReport", "dr", 2),
    ("DocumentReference", "doc", 2),
];

/// How many resources of `rtype` member `n` has (patient-compartment types only).
pub fn count(n: usize, rtype: &str) -> usize {
    let member = &members()[n];
    match rtype {
        "Patient" => 1,
        "Coverage" => 2,
        "ExplanationOfBenefit" => member.eob_count,
        _ => CLINICAL_COUNTS
            .iter()
            .find(|(t, _, _)| *t == rtype)
            .map(|(_, _, c)| if member.clinical { *c } else { 0 })
            .unwrap_or(0),
    }
}

const EOB_KINDS: [&str; 8] = ["carrier", "pde", "carrier", "outpatient", "pde", "carrier", "inpatient", "pde"];

fn prefix(rtype: &str, idx: usize) -> Option<&'static str> {
    match rtype {
        "Coverage" => Some("coverage"),
        "ExplanationOfBenefit" => Some(EOB_KINDS[idx % EOB_KINDS.len()]),
        _ => CLINICAL_COUNTS.iter().find(|(t, _, _)| *t == rtype).map(|(_, p, _)| *p),
    }
}

/// The id of resource `idx` of `rtype` of member `n`.
pub fn resource_id(seed: u64, n: usize, rtype: &str, idx: usize) -> String {
    if rtype == "Patient" {
        return patient_id(seed, n);
    }
    format!("{}-{n}-{idx}", prefix(rtype, idx).unwrap_or("x"))
}

/// Parses a member-owned id back into (member, index), checking it names an existing resource of `rtype`.
pub fn parse_id(seed: u64, rtype: &str, id: &str) -> Option<(usize, usize)> {
    if rtype == "Patient" {
        return member_by_patient_id(seed, id).map(|n| (n, 0));
    }
    let mut parts = id.rsplitn(3, '-');
    let idx: usize = parts.next()?.parse().ok()?;
    let n: usize = parts.next()?.parse().ok()?;
    let pre = parts.next()?;
    if n >= members().len() || idx >= count(n, rtype) || prefix(rtype, idx)? != pre {
        return None;
    }
    Some((n, idx))
}

/// `YYYY-MM-DD`, `days` before 2025-06-30.
fn date_before(days: i64) -> String {
    let anchor = time::macros::date!(2025 - 06 - 30);
    (anchor - time::Duration::days(days)).to_string()
}

fn last_updated(days: i64) -> String {
    format!("{}T12:00:00.000+00:00", date_before(days.max(0)))
}

const C4BB_ID_TYPE: &str = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType";
const C4BB_ADJ: &str = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication";
const C4BB_SUPPORT: &str = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType";
const C4BB_ROLE: &str = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole";
const HL7_ADJ: &str = "http://terminology.hl7.org/CodeSystem/adjudication";

const DIAGNOSES: &[(&str, &str)] = &[
    ("E119", "Type 2 diabetes mellitus without complications"),
    ("I10", "Essential (primary) hypertension"),
    ("J45909", "Unspecified asthma, uncomplicated"),
    ("E785", "Hyperlipidemia, unspecified"),
    ("M810", "Age-related osteoporosis without current pathological fracture"),
    ("K219", "Gastro-esophageal reflux disease without esophagitis"),
    ("M545", "Low back pain"),
    ("J069", "Acute upper respiratory infection, unspecified"),
];
const PROCEDURES: &[(&str, &str)] = &[
    ("99213", "Office or other outpatient visit, established patient, low complexity"),
    ("99214", "Office or other outpatient visit, established patient, moderate complexity"),
    ("80053", "Comprehensive metabolic panel"),
    ("93000", "Electrocardiogram, routine, with interpretation and report"),
    ("71046", "Radiologic examination, chest; 2 views"),
    ("36415", "Collection of venous blood by venipuncture"),
    ("85025", "Complete blood count with automated differential"),
    ("45378", "Colonoscopy, flexible; diagnostic"),
];
const REVENUE: &[(&str, &str)] = &[
    ("0450", "Emergency room - general classification"),
    ("0300", "Laboratory - general classification"),
    ("0320", "Radiology - diagnostic - general classification"),
    ("0250", "Pharmacy - general classification"),
    ("0111", "Room & board - private medical or general"),
    ("0730", "EKG/ECG - general classification"),
];
const DRGS: &[(&str, &str)] = &[
    ("191", "Chronic obstructive pulmonary disease with CC"),
    ("292", "Heart failure and shock with CC"),
    ("470", "Major hip and knee joint replacement without MCC"),
    ("872", "Septicemia or severe sepsis without MV >96 hours without MCC"),
];
/// (RxNorm, name, NDC)
const MEDICATIONS: &[(&str, &str, &str)] = &[
    ("860975", "metformin hydrochloride 500 MG Oral Tablet", "00093104801"),
    ("314076", "lisinopril 10 MG Oral Tablet", "68180051301"),
    ("617312", "atorvastatin 40 MG Oral Tablet", "00378395205"),
    ("745679", "albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", "00173068220"),
    ("197361", "amlodipine 5 MG Oral Tablet", "00093716701"),
    ("310964", "ibuprofen 600 MG Oral Tablet", "00904585461"),
    ("198211", "simvastatin 20 MG Oral Tablet", "16714068302"),
    ("311995", "omeprazole 20 MG Delayed Release Oral Capsule", "62175011843"),
    ("313782", "acetaminophen 325 MG Oral Tablet", "00536322101"),
    ("312940", "sertraline 50 MG Oral Tablet", "16729000101"),
];
const ORGS: &[(&str, &str, &str)] = &[
    ("Riverside General Hospital", "prov", "Springfield"),
    ("Lakeview Medical Center", "prov", "Shelbyville"),
    ("Northside Family Clinic", "prov", "Springfield"),
    ("Valley Imaging Associates", "prov", "Capital City"),
    ("Main Street Pharmacy", "prov", "Springfield"),
    ("Hillcrest Laboratory Services", "prov", "Ogdenville"),
    ("Bayside Orthopedics", "prov", "North Haverbrook"),
    ("Summit Urgent Care", "prov", "Capital City"),
];
const GIVEN: &[&str] =
    &["Maria", "James", "Aisha", "Wei", "Carlos", "Priya", "Samuel", "Elena", "David", "Fatima", "Kevin", "Grace"];
const FAMILY: &[&str] =
    &["Patel", "Johnson", "Kim", "Okafor", "Garcia", "Schmidt", "Chen", "Haddad", "Miller", "Santos", "Novak", "Reyes"];
const SPECIALTIES: &[(&str, &str)] = &[
    ("207Q00000X", "Family Medicine"),
    ("207R00000X", "Internal Medicine"),
    ("207RC0000X", "Cardiovascular Disease"),
    ("2085R0202X", "Diagnostic Radiology"),
    ("207X00000X", "Orthopaedic Surgery"),
    ("183500000X", "Pharmacist"),
];

const N_ORGS: usize = 8;
const N_PRACS: usize = 12;
const N_LOCS: usize = 6;

fn npi(seed: u64, label: &str, i: usize) -> String {
    let mut r = Rng::new(seed, label, i as u64, 7);
    format!("1{:09}", r.below(1_000_000_000))
}

fn money(v: f64) -> Value {
    json!({"value": v, "currency": "USD"})
}

fn adjudication(code: &str, display: &str, amount: f64) -> Value {
    json!({
        "category": {"coding": [{"system": C4BB_ADJ, "code": code, "display": display}]},
        "amount": money(amount)
    })
}

fn claim_type(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": code, "display": display}]})
}

/// ExplanationOfBenefit `idx` of member `n` (CARIN Blue Button profiles).
fn eob(ctx: &Ctx<'_>, n: usize, idx: usize) -> Value {
    let mut r = Rng::new(ctx.seed, "eob", n as u64, idx as u64);
    let kind = EOB_KINDS[idx % EOB_KINDS.len()];
    let id = format!("{kind}-{n}-{idx}");
    let pid = patient_id(ctx.seed, n);
    // Newest first by index, about two days apart, so the large member spans ~13 years.
    let days = (idx as i64) * 2 + r.below(2) as i64;
    let start = date_before(days + 3);
    let end = date_before(days);
    let org = 1 + r.below(N_ORGS as u64) as usize;
    let prac = 1 + r.below(N_PRACS as u64) as usize;
    let claim_no = format!("{}{:06}", 30_000 + r.below(60_000), idx);
    let dx = *r.pick(DIAGNOSES);
    let dx2 = *r.pick(DIAGNOSES);
    let (org_name, _, city) = ORGS[org - 1];
    let mut items = Vec::new();
    let (profile, ctype, sub, submitted, paid, patient_paid);
    let mut contained = Vec::new();
    let mut extra = serde_json::Map::new();
    match kind {
        "inpatient" | "outpatient" => {
            let inpatient = kind == "inpatient";
            profile = if inpatient {
                "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Inpatient-Institutional"
            } else {
                "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Outpatient-Institutional"
            };
            ctype = claim_type("institutional", "Institutional");
            sub = Some(
                json!({"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType", "code": kind, "display": if inpatient {"Inpatient"} else {"Outpatient"}}]}),
            );
            contained.push(json!({
                "resourceType": "Organization",
                "id": "provider-org",
                "meta": {"profile": ["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Organization"]},
                "identifier": [{"type": {"coding": [{"system": C4BB_ID_TYPE, "code": "npi", "display": "National Provider Identifier"}]}, "system": "http://hl7.org/fhir/sid/us-npi", "value": npi(ctx.seed, "org", org)}],
                "active": true,
                "name": org_name,
                "address": [{"city": city, "state": "IL"}]
            }));
            let lines = if inpatient { 4 } else { 2 + r.below(3) as usize };
            let mut total = 0.0;
            let mut total_paid = 0.0;
            for line in 0..lines {
                let (rev, rev_display) = *r.pick(REVENUE);
                let charge = if inpatient { r.money(800, 9_000) } else { r.money(40, 1_200) };
                let allowed = (charge * 0.7 * 100.0).round() / 100.0;
                let pay = (allowed * 0.8 * 100.0).round() / 100.0;
                total += charge;
                total_paid += pay;
                let (cpt, cpt_display) = *r.pick(PROCEDURES);
                items.push(json!({
                    "sequence": line + 1,
                    "revenue": {"coding": [{"system": "https://www.nubc.org/CodeSystem/RevenueCodes", "code": rev, "display": rev_display}]},
                    "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt, "display": cpt_display}]},
                    "servicedDate": start,
                    "quantity": {"value": 1 + r.below(3)},
                    "adjudication": [
                        adjudication("submitted", "Submitted Amount", charge),
                        adjudication("allowedamount", "Allowed Amount", allowed),
                        adjudication("paidtoprovider", "Paid to provider", pay),
                    ]
                }));
            }
            submitted = (total * 100.0_f64).round() / 100.0;
            paid = (total_paid * 100.0_f64).round() / 100.0;
            patient_paid = ((submitted * 0.7 - paid).max(0.0) * 100.0).round() / 100.0;
            extra.insert("provider".into(), json!({"reference": "#provider-org"}));
            extra.insert(
                "facility".into(),
                json!({"reference": format!("Location/loc-{}", 1 + org % N_LOCS), "display": org_name}),
            );
            let mut support = vec![
                json!({"sequence": 1, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "clmrecvddate", "display": "Claim Received Date"}]}, "timingDate": end}),
                json!({"sequence": 2, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "typeofbill", "display": "Type of Bill"}]}, "code": {"coding": [{"system": "https://www.nubc.org/CodeSystem/TypeOfBill", "code": if inpatient {"0111"} else {"0131"}}]}}),
            ];
            if inpatient {
                let (drg, drg_display) = *r.pick(DRGS);
                support.push(json!({"sequence": 3, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "admissionperiod", "display": "Admission Period"}]}, "timingPeriod": {"start": start, "end": end}}));
                support.push(json!({"sequence": 4, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "discharge-status", "display": "Discharge Status"}]}, "code": {"coding": [{"system": "https://www.nubc.org/CodeSystem/PatDischargeStatus", "code": "01", "display": "Discharged to home or self care"}]}}));
                extra.insert("diagnosis".into(), json!([
                    {"sequence": 1, "packageCode": {"coding": [{"system": "https://www.cms.gov/Medicare/Medicare-Fee-for-Service-Payment/AcuteInpatientPPS/MS-DRG-Classifications-and-Software", "code": drg, "display": drg_display}]}, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": dx.0, "display": dx.1}]}, "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "code": "principal", "display": "Principal Diagnosis"}]}]},
                    {"sequence": 2, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": dx2.0, "display": dx2.1}]}, "type": [{"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimDiagnosisType", "code": "secondary", "display": "Secondary"}]}]}
                ]));
            } else {
                extra.insert("diagnosis".into(), json!([
                    {"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": dx.0, "display": dx.1}]}, "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "code": "principal", "display": "Principal Diagnosis"}]}]}
                ]));
            }
            extra.insert("supportingInfo".into(), Value::Array(support));
            extra.insert("careTeam".into(), json!([
                {"sequence": 1, "provider": {"reference": format!("Practitioner/prac-{prac}")}, "role": {"coding": [{"system": C4BB_ROLE, "code": "attending", "display": "Attending"}]}}
            ]));
        }
        "carrier" => {
            profile = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Professional-NonClinician";
            ctype = claim_type("professional", "Professional");
            sub = None;
            contained.push(json!({
                "resourceType": "Practitioner",
                "id": "referring",
                "identifier": [{"type": {"coding": [{"system": C4BB_ID_TYPE, "code": "npi", "display": "National Provider Identifier"}]}, "system": "http://hl7.org/fhir/sid/us-npi", "value": npi(ctx.seed, "referring", idx)}],
                "name": [{"family": *r.pick(FAMILY), "given": [*r.pick(GIVEN)], "prefix": ["Dr."]}]
            }));
            let lines = 1 + r.below(3) as usize;
            let mut total = 0.0;
            let mut total_paid = 0.0;
            for line in 0..lines {
                let (cpt, cpt_display) = *r.pick(PROCEDURES);
                let charge = r.money(25, 650);
                let allowed = (charge * 0.65 * 100.0).round() / 100.0;
                let pay = (allowed * 0.8 * 100.0).round() / 100.0;
                total += charge;
                total_paid += pay;
                items.push(json!({
                    "sequence": line + 1,
                    "careTeamSequence": [1],
                    "diagnosisSequence": [1],
                    "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": cpt, "display": cpt_display}]},
                    "servicedPeriod": {"start": start, "end": start},
                    "locationCodeableConcept": {"coding": [{"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": "11", "display": "Office"}]},
                    "quantity": {"value": 1},
                    "adjudication": [
                        adjudication("submitted", "Submitted Amount", charge),
                        adjudication("allowedamount", "Allowed Amount", allowed),
                        adjudication("paidtoprovider", "Paid to provider", pay),
                        adjudication("paidbypatient", "Paid by patient", ((allowed - pay) * 100.0).round() / 100.0),
                    ]
                }));
            }
            submitted = (total * 100.0_f64).round() / 100.0;
            paid = (total_paid * 100.0_f64).round() / 100.0;
            patient_paid = ((submitted * 0.65 - paid).max(0.0) * 100.0).round() / 100.0;
            extra.insert("provider".into(), json!({"reference": format!("Practitioner/prac-{prac}")}));
            extra.insert("referral".into(), json!({"reference": "#referring"}));
            extra.insert("careTeam".into(), json!([
                {"sequence": 1, "provider": {"reference": format!("Practitioner/prac-{prac}")}, "role": {"coding": [{"system": C4BB_ROLE, "code": "performing", "display": "Performing provider"}]}},
                {"sequence": 2, "provider": {"reference": "#referring"}, "role": {"coding": [{"system": C4BB_ROLE, "code": "referring", "display": "Referring"}]}}
            ]));
            extra.insert("diagnosis".into(), json!([
                {"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": dx.0, "display": dx.1}]}, "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "code": "principal", "display": "Principal Diagnosis"}]}]}
            ]));
            extra.insert("supportingInfo".into(), json!([
                {"sequence": 1, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "clmrecvddate", "display": "Claim Received Date"}]}, "timingDate": end}
            ]));
        }
        _ => {
            profile = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit-Pharmacy";
            ctype = claim_type("pharmacy", "Pharmacy");
            sub = None;
            let med = r.below(MEDICATIONS.len() as u64) as usize;
            let (_, med_name, ndc) = MEDICATIONS[med];
            contained.push(json!({
                "resourceType": "Organization",
                "id": "pharmacy",
                "identifier": [{"type": {"coding": [{"system": C4BB_ID_TYPE, "code": "npi", "display": "National Provider Identifier"}]}, "system": "http://hl7.org/fhir/sid/us-npi", "value": npi(ctx.seed, "org", 5)}],
                "name": ORGS[4].0
            }));
            let charge = r.money(4, 320);
            let pay = (charge * 0.85 * 100.0).round() / 100.0;
            submitted = charge;
            paid = pay;
            patient_paid = ((charge - pay) * 100.0).round() / 100.0;
            let supply = *r.pick(&[30u64, 30, 60, 90]);
            items.push(json!({
                "sequence": 1,
                "productOrService": {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": ndc, "display": med_name}]},
                "servicedDate": start,
                "quantity": {"value": supply},
                "adjudication": [
                    adjudication("submitted", "Submitted Amount", charge),
                    adjudication("paidtoprovider", "Paid to provider", pay),
                    adjudication("paidbypatient", "Paid by patient", patient_paid),
                ]
            }));
            extra.insert("provider".into(), json!({"reference": "#pharmacy"}));
            extra.insert("careTeam".into(), json!([
                {"sequence": 1, "provider": {"reference": format!("Practitioner/prac-{prac}")}, "role": {"coding": [{"system": C4BB_ROLE, "code": "prescribing", "display": "Prescribing provider"}]}}
            ]));
            extra.insert("supportingInfo".into(), json!([
                {"sequence": 1, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "dayssupply", "display": "Days Supply"}]}, "valueQuantity": {"value": supply}},
                {"sequence": 2, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "refillnum", "display": "Refill Number"}]}, "valueQuantity": {"value": r.below(6)}},
                {"sequence": 3, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "brandgenericindicator", "display": "Brand Generic Indicator"}]}, "code": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBPayerClaimBrandGenericIndicator", "code": "generic", "display": "Generic"}]}},
                {"sequence": 4, "category": {"coding": [{"system": C4BB_SUPPORT, "code": "rxorigincode", "display": "Rx Origin Code"}]}, "code": {"coding": [{"system": "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBRxOriginCode", "code": "1", "display": "Written"}]}}
            ]));
        }
    }
    let coverage = if kind == "pde" { 1 } else { 0 };
    let mut eob = json!({
        "resourceType": "ExplanationOfBenefit",
        "id": id,
        "meta": {"lastUpdated": last_updated(days - 5), "profile": [profile]},
        "contained": contained,
        "identifier": [{
            "type": {"coding": [{"system": C4BB_ID_TYPE, "code": "uc", "display": "Unique Claim ID"}]},
            "system": format!("https://{}.sandbox.link-sdk.dev/claim-id", ctx.payer.slug),
            "value": claim_no
        }],
        "status": "active",
        "type": ctype,
        "use": "claim",
        "patient": {"reference": format!("Patient/{pid}")},
        "billablePeriod": {"start": start, "end": end},
        "created": format!("{end}T08:30:00+00:00"),
        "insurer": {"reference": "Organization/org-payer", "display": ctx.payer.name},
        "outcome": "complete",
        "insurance": [{"focal": true, "coverage": {"reference": format!("Coverage/coverage-{n}-{coverage}")}}],
        "item": items,
        "total": [
            {"category": {"coding": [{"system": HL7_ADJ, "code": "submitted", "display": "Submitted Amount"}]}, "amount": money(submitted)},
            {"category": {"coding": [{"system": HL7_ADJ, "code": "benefit", "display": "Benefit Amount"}]}, "amount": money(paid)},
            {"category": {"coding": [{"system": C4BB_ADJ, "code": "paidbypatient", "display": "Paid by patient"}]}, "amount": money(patient_paid)}
        ],
        "payment": {"date": end, "amount": money(paid)}
    });
    let obj = eob.as_object_mut().expect("object");
    if let Some(sub) = sub {
        obj.insert("subType".into(), sub);
    }
    for (k, v) in extra {
        obj.insert(k, v);
    }
    eob
}

fn patient(ctx: &Ctx<'_>, n: usize) -> Value {
    let member = &members()[n];
    let pid = patient_id(ctx.seed, n);
    let mut r = Rng::new(ctx.seed, "patient", n as u64, 0);
    let member_no = format!("{}{:08}", ctx.payer.slug[8..9].to_uppercase(), 10_000_000 + r.below(89_999_999));
    json!({
        "resourceType": "Patient",
        "id": pid,
        "meta": {
            "lastUpdated": last_updated(30),
            "profile": ["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Patient"]
        },
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB", "display": "Member Number"}]},
             "system": format!("https://{}.sandbox.link-sdk.dev/member-id", ctx.payer.slug), "value": member_no},
            {"type": {"coding": [{"system": C4BB_ID_TYPE, "code": "pat", "display": "Patient Internal Identifier"}]},
             "system": format!("https://{}.sandbox.link-sdk.dev/patient-id", ctx.payer.slug), "value": pid}
        ],
        "active": true,
        "name": [{"use": "usual", "family": member.family, "given": [member.given]}],
        "telecom": [{"system": "phone", "value": format!("555-01{:02}", n), "use": "home"}],
        "gender": member.gender,
        "birthDate": member.birth_date,
        "address": [{"line": [format!("{} Maple Street", 100 + r.below(800))], "city": "Springfield", "state": "IL", "postalCode": format!("627{:02}", r.below(100)), "country": "US"}]
    })
}

fn coverage(ctx: &Ctx<'_>, n: usize, idx: usize) -> Value {
    let member = &members()[n];
    let pid = patient_id(ctx.seed, n);
    let subscriber_n = member.subscriber.and_then(member_by_username).unwrap_or(n);
    let mut r = Rng::new(ctx.seed, "subscriber-id", subscriber_n as u64, 0);
    let subscriber_id = format!("SBX{:09}", r.below(1_000_000_000));
    let (relationship, rel_display) = if subscriber_n == n { ("self", "Self") } else { ("child", "Child") };
    let pharmacy = idx == 1;
    json!({
        "resourceType": "Coverage",
        "id": format!("coverage-{n}-{idx}"),
        "meta": {
            "lastUpdated": last_updated(60),
            "profile": ["http://hl7.org/fhir/us/carin-bb/StructureDefinition/C4BB-Coverage"]
        },
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB", "display": "Member Number"}]},
                        "value": format!("{subscriber_id}-{:02}", if subscriber_n == n { 1 } else { 2 })}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": if pharmacy {"DRUGPOL"} else {"HIP"}, "display": if pharmacy {"drug policy"} else {"health insurance plan policy"}}]},
        "subscriber": {"reference": format!("Patient/{}", patient_id(ctx.seed, subscriber_n))},
        "subscriberId": subscriber_id,
        "beneficiary": {"reference": format!("Patient/{pid}")},
        "dependent": if subscriber_n == n { "01" } else { "02" },
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": relationship, "display": rel_display}]},
        "period": {"start": "2020-01-01", "end": "2025-12-31"},
        "payor": [{"reference": "Organization/org-payer", "display": ctx.payer.name}],
        "class": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group", "display": "Group"}]},
             "value": format!("GRP{:05}", 10_000 + (subscriber_n * 37) % 90_000), "name": format!("{} Employer Group", ctx.payer.name)},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan", "display": "Plan"}]},
             "value": if pharmacy {"RX-STD"} else {"PPO-GOLD"}, "name": if pharmacy {"Standard Pharmacy Benefit"} else {"Gold PPO"}}
        ],
        "network": "Sandbox Preferred Network"
    })
}

fn code(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn clinical(ctx: &Ctx<'_>, n: usize, rtype: &str, idx: usize) -> Value {
    let mut r = Rng::new(ctx.seed, rtype, n as u64, idx as u64);
    let pid = patient_id(ctx.seed, n);
    let subject = json!({"reference": format!("Patient/{pid}")});
    let id = resource_id(ctx.seed, n, rtype, idx);
    let days = (idx as i64) * 45 + r.below(30) as i64;
    let when = date_before(days);
    let enc_ref = json!({"reference": format!("Encounter/enc-{n}-{}", idx % 5)});
    let prac = 1 + r.below(N_PRACS as u64) as usize;
    let meta = json!({"lastUpdated": last_updated(days)});
    match rtype {
        "Condition" => {
            let (c, d) = DIAGNOSES[(idx + n) % DIAGNOSES.len()];
            json!({
                "resourceType": "Condition", "id": id, "meta": meta,
                "clinicalStatus": code("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "verificationStatus": code("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
                "category": [code("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")],
                "code": code("http://hl7.org/fhir/sid/icd-10-cm", c, d),
                "subject": subject, "onsetDateTime": date_before(days + 400), "recordedDate": when
            })
        }
        "Observation" => {
            const LABS: &[(&str, &str, &str, u64, u64)] = &[
                ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 50, 90),
                ("8480-6", "Systolic blood pressure", "mm[Hg]", 1100, 1500),
                ("29463-7", "Body weight", "kg", 550, 1100),
                ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 1500, 2600),
                ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 700, 1800),
                ("8867-4", "Heart rate", "/min", 550, 950),
            ];
            let (loinc, name, unit, lo, hi) = LABS[idx % LABS.len()];
            let value = (lo + r.below(hi - lo)) as f64 / 10.0;
            let category = if matches!(loinc, "8480-6" | "29463-7" | "8867-4") {
                ("vital-signs", "Vital Signs")
            } else {
                ("laboratory", "Laboratory")
            };
            json!({
                "resourceType": "Observation", "id": id, "meta": meta, "status": "final",
                "category": [code("http://terminology.hl7.org/CodeSystem/observation-category", category.0, category.1)],
                "code": code("http://loinc.org", loinc, name),
                "subject": subject, "encounter": enc_ref, "effectiveDateTime": format!("{when}T09:15:00Z"),
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
            })
        }
        "MedicationRequest" => {
            let med = (idx + n) % MEDICATIONS.len();
            json!({
                "resourceType": "MedicationRequest", "id": id, "meta": meta, "status": "active", "intent": "order",
                "medicationReference": {"reference": format!("Medication/med-{}", med + 1), "display": MEDICATIONS[med].1},
                "subject": subject, "encounter": enc_ref, "authoredOn": when,
                "requester": {"reference": format!("Practitioner/prac-{prac}")},
                "dosageInstruction": [{"text": "Take one tablet by mouth daily", "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}}]
            })
        }
        "AllergyIntolerance" => {
            const ALLERGIES: &[(&str, &str)] = &[
                ("91936005", "Allergy to penicillin"),
                ("300913006", "Shellfish allergy"),
                ("418689008", "Allergy to grass pollen"),
            ];
            let (c, d) = ALLERGIES[(idx + n) % ALLERGIES.len()];
            json!({
                "resourceType": "AllergyIntolerance", "id": id, "meta": meta,
                "clinicalStatus": code("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
                "verificationStatus": code("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
                "code": code("http://snomed.info/sct", c, d), "patient": subject, "recordedDate": when,
                "criticality": "low"
            })
        }
        "Immunization" => {
            const VACCINES: &[(&str, &str)] = &[
                ("140", "Influenza, seasonal, injectable, preservative free"),
                ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose"),
                ("115", "Tdap"),
                ("33", "pneumococcal polysaccharide vaccine, 23 valent"),
            ];
            let (c, d) = VACCINES[idx % VACCINES.len()];
            json!({
                "resourceType": "Immunization", "id": id, "meta": meta, "status": "completed",
                "vaccineCode": code("http://hl7.org/fhir/sid/cvx", c, d), "patient": subject,
                "occurrenceDateTime": when, "primarySource": false,
                "location": {"reference": format!("Location/loc-{}", 1 + idx % N_LOCS)}
            })
        }
        "Procedure" => {
            let (c, d) = PROCEDURES[(idx * 3 + n) % PROCEDURES.len()];
            json!({
                "resourceType": "Procedure", "id": id, "meta": meta, "status": "completed",
                "code": code("http://www.ama-assn.org/go/cpt", c, d), "subject": subject, "encounter": enc_ref,
                "performedDateTime": when,
                "performer": [{"actor": {"reference": format!("Practitioner/prac-{prac}")}}]
            })
        }
        "Encounter" => {
            let org = 1 + (idx + n) % N_ORGS;
            json!({
                "resourceType": "Encounter", "id": id, "meta": meta, "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [code("http://www.ama-assn.org/go/cpt", "99213", "Office or other outpatient visit")],
                "subject": subject,
                "participant": [{"individual": {"reference": format!("Practitioner/prac-{prac}")}}],
                "period": {"start": format!("{when}T09:00:00Z"), "end": format!("{when}T09:40:00Z")},
                "location": [{"location": {"reference": format!("Location/loc-{}", 1 + org % N_LOCS)}}],
                "serviceProvider": {"reference": format!("Organization/org-{org}")}
            })
        }
        "DiagnosticReport" => {
            json!({
                "resourceType": "DiagnosticReport", "id": id, "meta": meta, "status": "final",
                "category": [code("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
                "code": code("http://loinc.org", "24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
                "subject": subject, "encounter": enc_ref, "effectiveDateTime": format!("{when}T10:00:00Z"), "issued": format!("{when}T16:00:00Z"),
                "performer": [{"reference": "Organization/org-6"}],
                "result": [
                    {"reference": format!("Observation/obs-{n}-{}", (idx * 6) % 12)},
                    {"reference": format!("Observation/obs-{n}-{}", (idx * 6 + 4) % 12)}
                ]
            })
        }
        _ => {
            use base64::Engine as _;
            let member = &members()[n];
            let note = format!(
                "Visit summary for {} {}.\nSeen for routine follow-up. Continue current medications. Return in 3 months.\n",
                member.given, member.family
            );
            json!({
                "resourceType": "DocumentReference", "id": id, "meta": meta, "status": "current",
                "type": code("http://loinc.org", "34133-9", "Summary of episode note"),
                "category": [code("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note", "Clinical Note")],
                "subject": subject, "date": format!("{when}T17:00:00Z"),
                "author": [{"reference": format!("Practitioner/prac-{prac}")}],
                "content": [{"attachment": {"contentType": "text/plain", "data": base64::engine::general_purpose::STANDARD.encode(note), "title": "Visit summary"}}],
                "context": {"encounter": [enc_ref]}
            })
        }
    }
}

/// The claims of members with the `daily_changes` fault: [`SLOTS`](changing::SLOTS) ExplanationOfBenefit slots
/// that change every day (day `d` = sandbox clock ÷ 86,400, so at 00:00 UTC):
/// - slot `d mod SLOTS` is gone for the day (search skips it, a read answers 404);
/// - the slot gone on day `d − 1` is back (as of day `d`);
/// - slot `(d + 3) mod SLOTS` is updated on day `d`.
///
/// A resource's `meta.lastUpdated` is 00:00 UTC of the last day it came back or was updated, and its
/// `meta.versionId` that day's number, so a `_lastUpdated` search finds exactly what changed.
pub mod changing {
    use serde_json::{json, Value};

    /// ExplanationOfBenefit slots of a changing member.
    pub const SLOTS: usize = 10;

    fn day(now: i64) -> i64 {
        now.div_euclid(86_400)
    }

    /// Whether slot `idx` is gone at `now`.
    pub fn absent(idx: usize, now: i64) -> bool {
        day(now).rem_euclid(SLOTS as i64) == idx as i64
    }

    /// The last day ≤ today on which slot `idx` came back or was updated.
    fn touched(idx: usize, now: i64) -> i64 {
        let (d, n, i) = (day(now), SLOTS as i64, idx as i64);
        let back = d - (d - (i + 1)).rem_euclid(n);
        let updated = d - (d - (i - 3)).rem_euclid(n);
        back.max(updated)
    }

    /// Sets the `meta.lastUpdated` and `meta.versionId` of slot `idx`'s resource as of `now`.
    pub fn stamp(resource: &mut Value, idx: usize, now: i64) {
        let day = touched(idx, now);
        let at = time::OffsetDateTime::from_unix_timestamp(day * 86_400)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
            meta.insert("lastUpdated".into(), json!(at));
            meta.insert("versionId".into(), json!(day.to_string()));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn each_day_one_slot_goes_one_comes_back_and_one_is_updated() {
            let today = 20_000 * 86_400 + 3_600;
            let tomorrow = today + 86_400;
            let gone: Vec<usize> = (0..SLOTS).filter(|i| absent(*i, today)).collect();
            let gone_tomorrow: Vec<usize> = (0..SLOTS).filter(|i| absent(*i, tomorrow)).collect();
            assert_eq!((gone.len(), gone_tomorrow.len()), (1, 1));
            assert_ne!(gone, gone_tomorrow);
            let changed: Vec<usize> = (0..SLOTS).filter(|i| touched(*i, tomorrow) == day(tomorrow)).collect();
            assert_eq!(changed.len(), 2, "the one back and the one updated");
            assert!(changed.contains(&gone[0]));
            assert!((0..SLOTS).all(|i| touched(i, tomorrow) <= day(tomorrow)));
        }
    }
}

/// Resource `idx` of `rtype` of member `n`.
pub(crate) fn generate(ctx: &Ctx<'_>, n: usize, rtype: &str, idx: usize) -> Value {
    match rtype {
        "Patient" => patient(ctx, n),
        "Coverage" => coverage(ctx, n, idx),
        "ExplanationOfBenefit" => eob(ctx, n, idx),
        _ => clinical(ctx, n, rtype, idx),
    }
}

/// A shared (non-compartment) resource by id: the payer Organization, provider Organizations, Practitioners,
/// PractitionerRoles, Locations and Medications.
pub(crate) fn shared(ctx: &Ctx<'_>, rtype: &str, id: &str) -> Option<Value> {
    let num = |p: &str, max: usize| -> Option<usize> {
        let i: usize = id.strip_prefix(p)?.parse().ok()?;
        (1..=max).contains(&i).then_some(i)
    };
    match rtype {
        "Organization" if id == "org-payer" => Some(json!({
            "resourceType": "Organization", "id": "org-payer", "active": true,
            "type": [code("http://terminology.hl7.org/CodeSystem/organization-type", "pay", "Payer")],
            "name": ctx.payer.name,
            "telecom": [{"system": "url", "value": format!("https://{}.sandbox.link-sdk.dev", ctx.payer.slug)}]
        })),
        "Organization" => {
            let i = num("org-", N_ORGS)?;
            let (name, _, city) = ORGS[i - 1];
            Some(json!({
                "resourceType": "Organization", "id": id, "active": true,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi(ctx.seed, "org", i)}],
                "type": [code("http://terminology.hl7.org/CodeSystem/organization-type", "prov", "Healthcare Provider")],
                "name": name, "address": [{"city": city, "state": "IL", "country": "US"}]
            }))
        }
        "Practitioner" => {
            let i = num("prac-", N_PRACS)?;
            let mut r = Rng::new(ctx.seed, "practitioner", i as u64, 0);
            Some(json!({
                "resourceType": "Practitioner", "id": id, "active": true,
                "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi(ctx.seed, "prac", i)}],
                "name": [{"family": *r.pick(FAMILY), "given": [*r.pick(GIVEN)], "prefix": ["Dr."]}]
            }))
        }
        "PractitionerRole" => {
            let i = num("role-", N_PRACS)?;
            let (c, d) = SPECIALTIES[i % SPECIALTIES.len()];
            Some(json!({
                "resourceType": "PractitionerRole", "id": id, "active": true,
                "practitioner": {"reference": format!("Practitioner/prac-{i}")},
                "organization": {"reference": format!("Organization/org-{}", 1 + i % N_ORGS)},
                "location": [{"reference": format!("Location/loc-{}", 1 + i % N_LOCS)}],
                "specialty": [code("http://nucc.org/provider-taxonomy", c, d)]
            }))
        }
        "Location" => {
            let i = num("loc-", N_LOCS)?;
            let (name, _, city) = ORGS[(i - 1) % ORGS.len()];
            Some(json!({
                "resourceType": "Location", "id": id, "status": "active", "name": format!("{name} — Main Campus"),
                "address": {"line": [format!("{} Center Avenue", 10 * i)], "city": city, "state": "IL", "country": "US"},
                "managingOrganization": {"reference": format!("Organization/org-{i}")}
            }))
        }
        "Medication" => {
            let i = num("med-", MEDICATIONS.len())?;
            let (rx, name, ndc) = MEDICATIONS[i - 1];
            Some(json!({
                "resourceType": "Medication", "id": id, "status": "active",
                "code": {"coding": [
                    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rx, "display": name},
                    {"system": "http://hl7.org/fhir/sid/ndc", "code": ndc, "display": name}
                ], "text": name}
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_generation_is_deterministic() {
        let payers = super::super::default_payers();
        let ctx = Ctx { seed: 7, payer: &payers[0] };
        for (n, _) in members().iter().enumerate() {
            for rtype in super::super::SUPPORTED_RESOURCE_TYPES {
                for idx in 0..count(n, rtype).min(20) {
                    let id = resource_id(7, n, rtype, idx);
                    assert_eq!(parse_id(7, rtype, &id), Some((n, idx)), "{rtype}/{id}");
                    let a = generate(&ctx, n, rtype, idx);
                    assert_eq!(a["id"], id.as_str());
                    assert_eq!(a, generate(&ctx, n, rtype, idx));
                }
            }
        }
        assert!(parse_id(7, "ExplanationOfBenefit", "carrier-1-0").is_none(), "new.member has no claims");
    }
}
