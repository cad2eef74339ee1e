//! FHIR R4 search parameters over stored resources: which parameters each type supports, how their values
//! parse (token `system|code`, date with `eq|ne|gt|lt|ge|le|sa|eb|ap` prefixes), and how they match the JSON
//! exactly as the payer sent it (FHIR R4 §3.1.1 "Search").
//!
//! Matching walks simple dotted element paths (arrays flattened), enough for the US Core / CARIN BB
//! parameters integrators use; choice elements (`effective[x]`) are listed by their concrete names.

use std::collections::BTreeSet;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

/// How a parameter's value is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `[system]|[code]` against `code`, `Coding`, `CodeableConcept`, `Identifier`.
    Token,
    /// A date/dateTime with an optional prefix, against `date`, `dateTime`, `instant`, `Period`.
    Date,
}

/// One supported search parameter of one resource type.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    /// The parameter name (`status`, `date`, …).
    pub name: &'static str,
    /// Its type.
    pub kind: ParamKind,
    /// Element paths it reads (dotted, arrays flattened).
    pub paths: &'static [&'static str],
}

const fn tok(name: &'static str, paths: &'static [&'static str]) -> SearchParam {
    SearchParam { name, kind: ParamKind::Token, paths }
}
const fn date(name: &'static str, paths: &'static [&'static str]) -> SearchParam {
    SearchParam { name, kind: ParamKind::Date, paths }
}

/// Resource types served by the API (the CapabilityStatement lists exactly these).
pub const RESOURCE_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "Coverage",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "ExplanationOfBenefit",
    "Immunization",
    "Location",
    "Medication",
    "MedicationRequest",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Procedure",
];

/// The element holding the patient reference of a type (`None`: not in the patient compartment, or Patient).
pub fn patient_paths(rtype: &str) -> Option<&'static [&'static str]> {
    Some(match rtype {
        "ExplanationOfBenefit" | "AllergyIntolerance" | "Immunization" => &["patient"],
        "Coverage" => &["beneficiary"],
        "Condition" | "Observation" | "MedicationRequest" | "Procedure" | "Encounter" | "DiagnosticReport"
        | "DocumentReference" => &["subject"],
        _ => return None,
    })
}

/// Parameters common to every type (besides `_id`, `_lastUpdated` handled the same way).
const COMMON: &[SearchParam] = &[date("_lastUpdated", &["meta.lastUpdated"])];

/// The type-specific search parameters (besides `_id`, `_lastUpdated`, `patient`), one row per
/// (type, parameter).
static PARAMS: &[(&str, SearchParam)] = &[
    ("ExplanationOfBenefit", tok("identifier", &["identifier"])),
    ("ExplanationOfBenefit", tok("status", &["status"])),
    ("ExplanationOfBenefit", tok("type", &["type"])),
    ("ExplanationOfBenefit", date("created", &["created"])),
    ("ExplanationOfBenefit", date("service-date", &["billablePeriod", "item.servicedDate", "item.servicedPeriod"])),
    ("ExplanationOfBenefit", date("date", &["billablePeriod", "created"])),
    ("Coverage", tok("identifier", &["identifier"])),
    ("Coverage", tok("status", &["status"])),
    ("Coverage", tok("type", &["type"])),
    ("Coverage", date("date", &["period"])),
    ("Patient", tok("identifier", &["identifier"])),
    ("Patient", tok("gender", &["gender"])),
    ("Patient", date("birthdate", &["birthDate"])),
    ("Condition", tok("identifier", &["identifier"])),
    ("Condition", tok("clinical-status", &["clinicalStatus"])),
    ("Condition", tok("status", &["clinicalStatus"])),
    ("Condition", tok("category", &["category"])),
    ("Condition", tok("code", &["code"])),
    ("Condition", date("onset-date", &["onsetDateTime", "onsetPeriod"])),
    ("Condition", date("recorded-date", &["recordedDate"])),
    ("Condition", date("date", &["onsetDateTime", "onsetPeriod", "recordedDate"])),
    ("Observation", tok("identifier", &["identifier"])),
    ("Observation", tok("status", &["status"])),
    ("Observation", tok("category", &["category"])),
    ("Observation", tok("code", &["code"])),
    ("Observation", date("date", &["effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"])),
    ("MedicationRequest", tok("identifier", &["identifier"])),
    ("MedicationRequest", tok("status", &["status"])),
    ("MedicationRequest", tok("intent", &["intent"])),
    ("MedicationRequest", tok("category", &["category"])),
    ("MedicationRequest", tok("code", &["medicationCodeableConcept"])),
    ("MedicationRequest", date("authoredon", &["authoredOn"])),
    ("MedicationRequest", date("date", &["authoredOn"])),
    ("AllergyIntolerance", tok("identifier", &["identifier"])),
    ("AllergyIntolerance", tok("clinical-status", &["clinicalStatus"])),
    ("AllergyIntolerance", tok("status", &["clinicalStatus"])),
    ("AllergyIntolerance", tok("category", &["category"])),
    ("AllergyIntolerance", tok("code", &["code"])),
    ("AllergyIntolerance", date("date", &["recordedDate"])),
    ("Immunization", tok("identifier", &["identifier"])),
    ("Immunization", tok("status", &["status"])),
    ("Immunization", tok("vaccine-code", &["vaccineCode"])),
    ("Immunization", tok("code", &["vaccineCode"])),
    ("Immunization", date("date", &["occurrenceDateTime"])),
    ("Procedure", tok("identifier", &["identifier"])),
    ("Procedure", tok("status", &["status"])),
    ("Procedure", tok("category", &["category"])),
    ("Procedure", tok("code", &["code"])),
    ("Procedure", date("date", &["performedDateTime", "performedPeriod"])),
    ("Encounter", tok("identifier", &["identifier"])),
    ("Encounter", tok("status", &["status"])),
    ("Encounter", tok("type", &["type"])),
    ("Encounter", tok("class", &["class"])),
    ("Encounter", date("date", &["period"])),
    ("DiagnosticReport", tok("identifier", &["identifier"])),
    ("DiagnosticReport", tok("status", &["status"])),
    ("DiagnosticReport", tok("category", &["category"])),
    ("DiagnosticReport", tok("code", &["code"])),
    ("DiagnosticReport", date("date", &["effectiveDateTime", "effectivePeriod"])),
    ("DocumentReference", tok("identifier", &["identifier"])),
    ("DocumentReference", tok("status", &["status"])),
    ("DocumentReference", tok("type", &["type"])),
    ("DocumentReference", tok("category", &["category"])),
    ("DocumentReference", date("date", &["date"])),
    ("Organization", tok("identifier", &["identifier"])),
    ("Practitioner", tok("identifier", &["identifier"])),
    ("PractitionerRole", tok("identifier", &["identifier"])),
    ("Location", tok("identifier", &["identifier"])),
    ("Medication", tok("identifier", &["identifier"])),
];

/// The type-specific search parameters of `rtype`.
pub fn params_for(rtype: &str) -> impl Iterator<Item = &'static SearchParam> + '_ {
    PARAMS.iter().filter(move |(t, _)| *t == rtype).map(|(_, p)| p)
}

/// Looks a parameter up for a type (including the common ones).
pub fn find_param(rtype: &str, name: &str) -> Option<SearchParam> {
    params_for(rtype).chain(COMMON.iter()).find(|p| p.name == name).copied()
}

/// Reference elements `_include=Type:name` can follow.
pub fn include_paths(rtype: &str, name: &str) -> Option<&'static [&'static str]> {
    Some(match (rtype, name) {
        (_, "patient") => patient_paths(rtype)?,
        ("Coverage", "beneficiary") => &["beneficiary"],
        ("Coverage", "payor") => &["payor"],
        ("ExplanationOfBenefit", "provider") => &["provider"],
        ("ExplanationOfBenefit", "insurer") => &["insurer"],
        ("ExplanationOfBenefit", "care-team") => &["careTeam.provider"],
        ("ExplanationOfBenefit", "coverage") => &["insurance.coverage"],
        ("ExplanationOfBenefit", "facility") => &["facility"],
        ("Patient", "general-practitioner") => &["generalPractitioner"],
        ("Patient", "organization") => &["managingOrganization"],
        ("MedicationRequest", "medication") => &["medicationReference"],
        ("MedicationRequest", "requester") => &["requester"],
        ("Encounter", "practitioner") => &["participant.individual"],
        ("Encounter", "service-provider") => &["serviceProvider"],
        ("PractitionerRole", "practitioner") => &["practitioner"],
        ("PractitionerRole", "organization") => &["organization"],
        ("Observation" | "DiagnosticReport", "performer") => &["performer"],
        ("Procedure", "performer") => &["performer.actor"],
        _ => return None,
    })
}

/// The values at a dotted path (arrays at any step flattened).
pub fn values_at<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![root];
    for seg in path.split('.') {
        let mut next = Vec::new();
        for v in cur {
            match v.get(seg) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(Value::Null) | None => {}
                Some(x) => next.push(x),
            }
        }
        cur = next;
    }
    cur
}

// ----------------------------------------------------------------------------------------------------------
// Tokens
// ----------------------------------------------------------------------------------------------------------

/// A parsed token value: `code`, `system|code`, `|code` (no system), `system|` (any code of the system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    /// `None`: any system; `Some("")`: no system.
    pub system: Option<String>,
    /// `None`: any code.
    pub code: Option<String>,
}

impl TokenValue {
    /// Parses one token value (after splitting on `,`).
    pub fn parse(s: &str) -> Self {
        match s.split_once('|') {
            None => TokenValue { system: None, code: Some(s.to_string()) },
            Some((sys, code)) => TokenValue {
                system: Some(sys.to_string()),
                code: (!code.is_empty()).then(|| code.to_string()),
            },
        }
    }

    fn matches_pair(&self, system: Option<&str>, code: Option<&str>) -> bool {
        let sys_ok = match &self.system {
            None => true,
            Some(s) if s.is_empty() => system.is_none_or(str::is_empty),
            Some(s) => system == Some(s.as_str()),
        };
        let code_ok = match &self.code {
            None => true,
            Some(c) => code == Some(c.as_str()),
        };
        sys_ok && code_ok
    }

    /// Whether an element (code string, Coding, CodeableConcept, Identifier) matches: one of its
    /// [`token_pairs`] does.
    pub fn matches(&self, v: &Value) -> bool {
        let mut pairs = Vec::new();
        token_pairs(v, &mut pairs);
        pairs.iter().any(|(system, code)| self.matches_pair(*system, Some(code)))
    }
}

/// The `(system, code)` pairs a token parameter matches in one element: a code string or boolean `(None,
/// code)`, a Coding `(system, code)`, each Coding of a CodeableConcept, an Identifier `(system, value)`.
pub fn token_pairs<'a>(v: &'a Value, out: &mut Vec<(Option<&'a str>, &'a str)>) {
    match v {
        Value::String(s) => out.push((None, s)),
        Value::Bool(b) => out.push((None, if *b { "true" } else { "false" })),
        Value::Object(m) => {
            if let Some(Value::Array(codings)) = m.get("coding") {
                codings.iter().for_each(|c| token_pairs(c, out));
                return;
            }
            let system = m.get("system").and_then(Value::as_str);
            if let Some(code) = m.get("code").and_then(Value::as_str).or_else(|| m.get("value").and_then(Value::as_str)) {
                out.push((system, code));
            }
        }
        _ => {}
    }
}

/// One search index value of a stored resource, read at sync time so searches filter in SQL: what a
/// parameter's matching reads from the resource ([`TokenValue::matches`], [`element_range`]), one value per
/// element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// A token parameter's `(system, code)` pair.
    Token {
        /// The parameter name.
        param: &'static str,
        /// `system`, when the element has one.
        system: Option<String>,
        /// The code (or Identifier value).
        code: String,
    },
    /// A date parameter's element range `[lo, hi)` in Unix s (open Period ends: `i64::MIN` / `i64::MAX`).
    Date {
        /// The parameter name.
        param: &'static str,
        /// Start.
        lo: i64,
        /// End (exclusive).
        hi: i64,
    },
}

/// The index values of every search parameter of `rtype` (including `_lastUpdated`) in a resource.
pub fn param_values(rtype: &str, v: &Value) -> Vec<ParamValue> {
    let mut out = Vec::new();
    for p in params_for(rtype).chain(COMMON.iter()) {
        for el in p.paths.iter().flat_map(|path| values_at(v, path)) {
            match p.kind {
                ParamKind::Token => {
                    let mut pairs = Vec::new();
                    token_pairs(el, &mut pairs);
                    out.extend(pairs.into_iter().map(|(system, code)| ParamValue::Token {
                        param: p.name,
                        system: system.map(String::from),
                        code: code.to_string(),
                    }));
                }
                ParamKind::Date => {
                    if let Some((lo, hi)) = element_range(el) {
                        out.push(ParamValue::Date { param: p.name, lo, hi });
                    }
                }
            }
        }
    }
    out.dedup();
    out
}

// ----------------------------------------------------------------------------------------------------------
// Dates
// ----------------------------------------------------------------------------------------------------------

/// Comparison prefix of a date parameter (FHIR R4 §3.1.1.4.2 "prefix").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// Equal: the resource's range lies within the parameter's.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Less than.
    Lt,
    /// Greater or equal.
    Ge,
    /// Less or equal.
    Le,
    /// Starts after.
    Sa,
    /// Ends before.
    Eb,
    /// Approximately (treated as overlapping).
    Ap,
}

/// A half-open time range `[lo, hi)` in Unix seconds (the implicit range of a date of some precision).
pub type Range = (i64, i64);

/// A parsed date parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateValue {
    /// The prefix (`eq` when absent).
    pub prefix: Prefix,
    /// The range the value denotes.
    pub range: Range,
}

impl DateValue {
    /// Parses `[prefix]date` (e.g. `ge2020-01-01`, `lt2021-03-04T10:00:00Z`).
    pub fn parse(s: &str) -> Option<Self> {
        let (prefix, rest) = if s.len() > 2 && s.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic) {
            let p = match &s[..2] {
                "eq" => Prefix::Eq,
                "ne" => Prefix::Ne,
                "gt" => Prefix::Gt,
                "lt" => Prefix::Lt,
                "ge" => Prefix::Ge,
                "le" => Prefix::Le,
                "sa" => Prefix::Sa,
                "eb" => Prefix::Eb,
                "ap" => Prefix::Ap,
                _ => return None,
            };
            (p, &s[2..])
        } else {
            (Prefix::Eq, s)
        };
        Some(DateValue { prefix, range: parse_fhir_date(rest)? })
    }

    /// Whether a resource's range satisfies this value.
    pub fn matches(&self, r: Range) -> bool {
        let p = self.range;
        match self.prefix {
            Prefix::Eq => r.0 >= p.0 && r.1 <= p.1,
            Prefix::Ne => !(r.0 >= p.0 && r.1 <= p.1),
            Prefix::Gt => r.1 > p.1,
            Prefix::Lt => r.0 < p.0,
            Prefix::Ge => r.1 > p.0,
            Prefix::Le => r.0 < p.1,
            Prefix::Sa => r.0 >= p.1,
            Prefix::Eb => r.1 <= p.0,
            Prefix::Ap => r.0 < p.1 && r.1 > p.0,
        }
    }
}

/// `s` as a number when it is exactly `width` ASCII digits.
fn digits(s: &str, width: usize) -> Option<i64> {
    (s.len() == width && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Unix seconds at the start of a calendar day; `None` unless the day exists (month 1–12, the month's days,
/// 29 February only in leap years), as the `time` crate's proleptic Gregorian calendar says.
fn day_start(y: i64, m: i64, d: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// The days in a month (`None` unless month is 1–12).
fn month_days(y: i64, m: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    Some(i64::from(month.length(i32::try_from(y).ok()?)))
}

/// Parses a FHIR `date`, `dateTime` or `instant` into the range its precision denotes
/// (`2020` → the year, `2020-03` → the month, `2020-03-04` → the day, a time → that second, or that minute when
/// it has no seconds). A time without offset is taken as UTC.
///
/// `None` unless it is `YYYY[-MM[-DD[Thh:mm[:ss[.f…]][Z|±hh:mm]]]]` with a day that exists in the calendar,
/// `hh` 00–23, `mm` 00–59, `ss` 00–60 (FHIR's leap second, taken as 59) and an offset within ±14:00 (FHIR R4
/// §2.24.0.1 `dateTime`).
pub fn parse_fhir_date(s: &str) -> Option<Range> {
    let s = s.trim();
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    if parts.len() > 3 {
        return None;
    }
    let y = digits(parts.first()?, 4)?;
    // Month and day, when present, are 01–12 and 01–31 (whether the day exists is checked by `day_start`); 0:
    // absent.
    let month = parts.get(1).map(|m| digits(m, 2).filter(|m| (1..=12).contains(m))).unwrap_or(Some(0))?;
    let day = parts.get(2).map(|d| digits(d, 2).filter(|d| (1..=31).contains(d))).unwrap_or(Some(0))?;
    match (month, day, time) {
        (0, _, None) => Some((day_start(y, 1, 1)?, day_start(y, 12, 31)? + 86_400)),
        (m, 0, None) => Some((day_start(y, m, 1)?, day_start(y, m, month_days(y, m)?)? + 86_400)),
        (m, d, None) => Some((day_start(y, m, d)?, day_start(y, m, d)? + 86_400)),
        (m, d, Some(t)) if m > 0 && d > 0 => {
            // hh:mm[:ss[.fff]](Z|±hh:mm)
            let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
                (c, 0)
            } else if let Some(i) = t
                .rfind(['+', '-'])
                // An unencoded `+` in a query string decodes to a space (clients send `+02:00` as is): a space where
                // the offset's sign goes is read as `+`.
                .or_else(|| t.rfind(' '))
                .filter(|i| *i >= 5)
            {
                let (c, o) = t.split_at(i);
                let sign = if o.starts_with('-') { -1 } else { 1 };
                let (oh, om) = o[1..].split_once(':')?;
                let (oh, om) = (digits(oh, 2)?, digits(om, 2)?);
                if oh > 14 || om > 59 || (oh == 14 && om > 0) {
                    return None;
                }
                (c, sign * (oh * 3600 + om * 60))
            } else {
                (t, 0)
            };
            let fields: Vec<&str> = clock.split(':').collect();
            let (h, mi) = (digits(fields.first()?, 2)?, digits(fields.get(1)?, 2)?);
            let sec = match fields.get(2) {
                Some(x) => {
                    let (whole, fraction) = x.split_once('.').unwrap_or((x, "0"));
                    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    digits(whole, 2)?
                }
                None => 0,
            };
            if fields.len() > 3 || h > 23 || mi > 59 || sec > 60 {
                return None;
            }
            let at = day_start(y, m, d)? + h * 3600 + mi * 60 + sec.min(59) - offset;
            // A time without seconds denotes that minute; with seconds, that second.
            let width = if fields.len() == 3 { 1 } else { 60 };
            Some((at, at + width))
        }
        _ => None,
    }
}

/// The time range of an element: a date string, or a Period `{start, end}` (open ends unbounded).
pub fn element_range(v: &Value) -> Option<Range> {
    match v {
        Value::String(s) => parse_fhir_date(s),
        Value::Object(m) => {
            let start = m.get("start").and_then(Value::as_str).and_then(parse_fhir_date);
            let end = m.get("end").and_then(Value::as_str).and_then(parse_fhir_date);
            if start.is_none() && end.is_none() {
                return None;
            }
            Some((start.map_or(i64::MIN, |r| r.0), end.map_or(i64::MAX, |r| r.1)))
        }
        _ => None,
    }
}

/// One parsed parameter of a search: the values are OR-ed (`,`), parameters are AND-ed.
#[derive(Debug, Clone)]
pub enum Criterion {
    /// A token parameter.
    Token {
        /// The parameter name.
        name: &'static str,
        /// Element paths.
        paths: &'static [&'static str],
        /// Alternatives.
        values: Vec<TokenValue>,
        /// `:not` modifier.
        negate: bool,
    },
    /// A date parameter.
    Date {
        /// The parameter name.
        name: &'static str,
        /// Element paths.
        paths: &'static [&'static str],
        /// Alternatives.
        values: Vec<DateValue>,
    },
}

/// Parses only the top-level elements named in `keys` out of a resource's JSON text (the others are
/// skipped without being built), so a filtered search over thousands of large resources stays cheap.
/// `None` when the text is not a JSON object.
pub fn parse_fields(raw: &str, keys: &BTreeSet<&str>) -> Option<Value> {
    struct Pick<'k>(&'k BTreeSet<&'k str>);
    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = Map<String, Value>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a FHIR resource object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = m.next_key::<String>()? {
                if self.0.contains(k.as_str()) {
                    out.insert(k, m.next_value::<Value>()?);
                } else {
                    m.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    Pick(keys).deserialize(&mut de).ok().map(Value::Object)
}

impl Criterion {
    /// The top-level elements this criterion reads.
    pub fn top_level_keys(&self) -> impl Iterator<Item = &'static str> {
        let paths: &'static [&'static str] = match self {
            Criterion::Token { paths, .. } | Criterion::Date { paths, .. } => paths,
        };
        paths.iter().map(|p| p.split('.').next().unwrap_or(p))
    }

    /// A cheap test on the stored JSON text before parsing it: `false` only when the resource cannot match
    /// (a positive token criterion none of whose codes occurs in the text).
    pub fn may_match_raw(&self, raw: &str) -> bool {
        match self {
            // Only codes a JSON writer cannot spell differently (no `/`, `\`, quotes, non-ASCII).
            Criterion::Token { values, negate: false, .. } => values.iter().any(|t| match &t.code {
                Some(c)
                    if c != "true"
                        && c != "false"
                        && c.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'\\' | b'"')) =>
                {
                    raw.contains(&format!("\"{c}\""))
                }
                _ => true,
            }),
            _ => true,
        }
    }

    /// Whether a resource satisfies it.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Criterion::Token { paths, values, negate, .. } => {
                let hit = paths
                    .iter()
                    .flat_map(|p| values_at(resource, p))
                    .any(|el| values.iter().any(|t| t.matches(el)));
                hit != *negate
            }
            Criterion::Date { paths, values, .. } => paths
                .iter()
                .flat_map(|p| values_at(resource, p))
                .filter_map(element_range)
                .any(|r| values.iter().any(|d| d.matches(r))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_parse_with_precision() {
        let y = parse_fhir_date("2020").unwrap();
        assert_eq!(y.1 - y.0, 366 * 86_400);
        let d = parse_fhir_date("2020-03-04").unwrap();
        assert_eq!(d.0, 1_583_280_000);
        let t = parse_fhir_date("2020-03-04T01:00:00+01:00").unwrap();
        assert_eq!(t.0, 1_583_280_000);
        assert_eq!(parse_fhir_date("2020-01-01T00:00:00.000+00:00").unwrap().0, 1_577_836_800);
        // An unencoded `+` arrives as a space, with or without fractional seconds.
        assert_eq!(parse_fhir_date("2020-01-01T02:00:00 02:00").unwrap().0, 1_577_836_800);
        assert_eq!(parse_fhir_date("2020-01-01T02:00:00.5 02:00").unwrap().0, 1_577_836_800);
        assert!(parse_fhir_date("20-1-1").is_none());
        assert!(parse_fhir_date("2020-13").is_none());
        assert_eq!(parse_fhir_date("2024-02").map(|r| r.1 - r.0), Some(29 * 86_400));
        assert_eq!(parse_fhir_date("9999").map(|r| r.1 - r.0), Some(365 * 86_400));
        assert_eq!(parse_fhir_date("2016-12-31T23:59:60Z").map(|r| r.1 - r.0), Some(1));
        assert_eq!(parse_fhir_date("2020-01-01T02:00:00.0 02:00"), parse_fhir_date("2020-01-01T00:00:00Z"));
        for bad in ["2020-01-01T25:61:61Z", "2020-01-01T23:59:59+99:99", "2020-01-01T10:00:00+14:30", "2020-13-01",
            "2020-00", "2020-01-32", "2021-02-29", "2020-02-30", "2020-01-01T24:00:00Z", "2020-01-01T10:00:00.Z",
            "2020-01-01T10:00:00:00Z", "2020-1-1", "2020-01-01T9999999999999999:00Z", "garbage", "", "2020-01-01T"]
        {
            assert!(parse_fhir_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn prefixes() {
        let day = parse_fhir_date("2020-03-04").unwrap();
        assert!(DateValue::parse("ge2020-03-04").unwrap().matches(day));
        assert!(DateValue::parse("le2020-03-04").unwrap().matches(day));
        assert!(DateValue::parse("eq2020-03").unwrap().matches(day));
        assert!(DateValue::parse("2020").unwrap().matches(day));
        assert!(!DateValue::parse("gt2020-03-04").unwrap().matches(day));
        assert!(!DateValue::parse("lt2020-03-04").unwrap().matches(day));
        assert!(DateValue::parse("gt2020-03-03").unwrap().matches(day));
        assert!(DateValue::parse("lt2020-03-05").unwrap().matches(day));
        assert!(DateValue::parse("xx2020").is_none());
    }

    #[test]
    fn parse_fields_keeps_only_named_elements() {
        let keys: BTreeSet<&str> = ["status", "meta"].into_iter().collect();
        let v = parse_fields(r#"{"resourceType":"X","status":"active","item":[{"a":1}],"meta":{"lastUpdated":"2020"}}"#, &keys)
            .unwrap();
        assert_eq!(v, json!({"status": "active", "meta": {"lastUpdated": "2020"}}));
        assert!(parse_fields("[1]", &keys).is_none());
    }

    #[test]
    fn tokens_match_codeable_concepts_and_identifiers() {
        let r = json!({"type": {"coding": [{"system": "s", "code": "PDE"}]}, "identifier": [{"system": "i", "value": "42"}], "status": "active"});
        assert!(TokenValue::parse("PDE").matches(&r["type"]));
        assert!(TokenValue::parse("s|PDE").matches(&r["type"]));
        assert!(!TokenValue::parse("x|PDE").matches(&r["type"]));
        assert!(TokenValue::parse("s|").matches(&r["type"]));
        assert!(values_at(&r, "identifier").iter().any(|v| TokenValue::parse("i|42").matches(v)));
        assert!(TokenValue::parse("active").matches(&r["status"]));
    }
}
