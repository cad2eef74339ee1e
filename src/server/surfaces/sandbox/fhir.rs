//! The sandbox's FHIR R4 server: CapabilityStatement, search by patient with `_count` paging (searchset
//! Bundles with `next` links), and read by id; bearer tokens enforced per RFC 6750 and the patient
//! compartment enforced per SMART (another patient's data → 403 OperationOutcome).

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Value};

use super::{
    auth::{self, AccessClaims},
    data::{self, members, Ctx},
    Faults, PayerConfig, Sandbox, Shared, SHARED_RESOURCE_TYPES, SUPPORTED_RESOURCE_TYPES,
};

/// Page size when `_count` is absent.
pub const DEFAULT_COUNT: usize = 50;
/// Largest page served, whatever `_count` asks.
pub const MAX_COUNT: usize = 250;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

fn fhir_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], serde_json::to_vec(body).unwrap_or_default()).into_response()
}

/// An OperationOutcome with one issue (FHIR R4 §OperationOutcome).
pub(crate) fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    fhir_response(
        status,
        &json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]
        }),
    )
}

fn unauthorized(slug: &str, error: Option<&str>) -> Response {
    let mut resp = outcome(StatusCode::UNAUTHORIZED, "login", error.unwrap_or("a bearer token is required"));
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"{slug}\", error=\"invalid_token\", error_description=\"{e}\""),
        None => format!("Bearer realm=\"{slug}\""),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Authenticates a FHIR request and applies the request-level faults, in this order: token (401), request
/// limit (401), rate limit (429), unreachable plan (403), 500s, scope (403).
async fn guard<'a>(
    sandbox: &'a Sandbox,
    slug: &str,
    headers: &HeaderMap,
    rtype: &str,
) -> Result<(&'a PayerConfig, AccessClaims, Faults), Response> {
    let Some(payer) = sandbox.payer(slug) else {
        return Err(outcome(StatusCode::NOT_FOUND, "not-found", "unknown payer"));
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
    else {
        return Err(unauthorized(slug, None));
    };
    let signer = match sandbox.signer().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(payer = slug, error = %e, "sandbox FHIR server cannot read its signing key");
            return Err(outcome(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal server error"));
        }
    };
    let claims = match auth::verify_access_token(signer, sandbox.now(), token.trim()) {
        Ok(c) if c.p == slug => c,
        Ok(_) => return Err(unauthorized(slug, Some("token issued for another server"))),
        Err(e) => return Err(unauthorized(slug, Some(e))),
    };
    let faults = payer.faults.merged(&members()[claims.m].faults);
    let seen = {
        let mut requests = sandbox.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() > 10_000 {
            let now = sandbox.now();
            requests.retain(|_, (_, exp)| *exp > now);
        }
        let entry = requests.entry(claims.j.clone()).or_insert((0, claims.exp));
        entry.0 += 1;
        entry.0
    };
    if faults.access_token_max_requests.is_some_and(|max| seen > max) {
        return Err(unauthorized(slug, Some("access token expired")));
    }
    if faults.rate_limit_every > 0 && seen % faults.rate_limit_every == 0 {
        let mut resp = outcome(StatusCode::TOO_MANY_REQUESTS, "throttled", "too many requests; retry later");
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(resp);
    }
    if faults.plan_unreachable {
        return Err(outcome(StatusCode::FORBIDDEN, "forbidden", "the member's plan is not available through this API"));
    }
    if faults.server_error_types.iter().any(|t| *t == "*" || *t == rtype) {
        return Err(outcome(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal server error"));
    }
    if SUPPORTED_RESOURCE_TYPES.contains(&rtype) && !auth::scope_allows(&claims.s, rtype) {
        let mut resp =
            outcome(StatusCode::FORBIDDEN, "forbidden", "the granted scope does not include this resource type");
        let v = format!("Bearer realm=\"{slug}\", error=\"insufficient_scope\"");
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return Err(resp);
    }
    Ok((payer, claims, faults))
}

fn forbidden_other_patient() -> Response {
    outcome(StatusCode::FORBIDDEN, "forbidden", "the access token does not grant access to this patient's data")
}

/// `GET {fhir_base}/{type}?patient=…&_count=…`: a searchset Bundle of the token's patient's resources.
/// `patient` (or `subject`, `beneficiary`; `Patient/x` or `x`) defaults to the token's patient; `_id` filters
/// Patient. `_getpagesoffset` is the paging cursor of `next` links.
pub async fn search(
    State(sandbox): State<Shared>,
    Path((slug, rtype)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (payer, claims, faults) = match guard(&sandbox, &slug, &headers, &rtype).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    if !SUPPORTED_RESOURCE_TYPES.contains(&rtype.as_str()) {
        return if SHARED_RESOURCE_TYPES.contains(&rtype.as_str()) {
            outcome(StatusCode::BAD_REQUEST, "not-supported", "search is not supported for this type; read by id")
        } else {
            outcome(StatusCode::NOT_FOUND, "not-supported", "unknown resource type")
        };
    }
    let own = data::patient_id(sandbox.seed, claims.m);
    let params = match parse_search_params(query.as_deref(), &own) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let search = Search { sandbox: &sandbox, payer, slug: &slug, rtype: &rtype, member: claims.m, own, faults, params };
    let (indices, total) = match search.select() {
        Ok(page) => page,
        Err(resp) => return resp,
    };
    fhir_response(StatusCode::OK, &search.bundle(&indices, total))
}

/// The search parameters the sandbox understands.
struct SearchParams {
    /// `_count`, clamped to 1..=[`MAX_COUNT`].
    count: usize,
    /// `_getpagesoffset`.
    offset: usize,
    /// `_id`.
    id_filter: Option<String>,
    /// `_lastUpdated` bounds, all of which must hold, with the values as given (carried into `next` links).
    last_updated: Vec<(LastUpdated, String)>,
}

/// One `_lastUpdated` bound: `ge`, `gt`, `le` or `lt` an instant (Unix seconds; a date means its 00:00 UTC).
#[derive(Clone, Copy)]
enum LastUpdated {
    Ge(i64),
    Gt(i64),
    Le(i64),
    Lt(i64),
}

impl LastUpdated {
    /// Reads `ge2026-12-01T00:00:00Z` (FHIR R4 §3.1.1.4.2 prefixes; only these four are served).
    fn parse(v: &str) -> Option<Self> {
        let (prefix, value) = v.split_at(v.len().min(2));
        let at = parse_instant(value)?;
        Some(match prefix {
            "ge" => Self::Ge(at),
            "gt" => Self::Gt(at),
            "le" => Self::Le(at),
            "lt" => Self::Lt(at),
            _ => return None,
        })
    }

    fn holds(self, at: i64) -> bool {
        match self {
            Self::Ge(b) => at >= b,
            Self::Gt(b) => at > b,
            Self::Le(b) => at <= b,
            Self::Lt(b) => at < b,
        }
    }
}

/// An RFC 3339 instant, or a `YYYY-MM-DD` date (its 00:00 UTC), as Unix seconds.
fn parse_instant(v: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(v, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let d = time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp())
}

/// Reads the query of a search; `patient` (`subject`, `beneficiary`) must name `own`, the token's patient
/// (403 otherwise), and malformed `_count`/`_getpagesoffset`/`_lastUpdated` are a 400 OperationOutcome.
fn parse_search_params(query: Option<&str>, own: &str) -> Result<SearchParams, Response> {
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut id_filter: Option<String> = None;
    let mut last_updated = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "patient" | "subject" | "beneficiary" => {
                let p = v.strip_prefix("Patient/").unwrap_or(v.as_ref());
                if p != own {
                    return Err(forbidden_other_patient());
                }
            }
            "_id" => id_filter = Some(v.into_owned()),
            "_lastUpdated" => match LastUpdated::parse(&v) {
                Some(b) => last_updated.push((b, v.into_owned())),
                None => {
                    return Err(outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "_lastUpdated must be ge, gt, le or lt followed by an instant or a date",
                    ))
                }
            },
            "_count" => match v.parse::<usize>() {
                Ok(c) => count = c.clamp(1, MAX_COUNT),
                Err(_) => return Err(outcome(StatusCode::BAD_REQUEST, "invalid", "_count must be a positive integer")),
            },
            "_getpagesoffset" => match v.parse::<usize>() {
                Ok(o) => offset = o,
                Err(_) => {
                    return Err(outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "_getpagesoffset must be a non-negative integer",
                    ))
                }
            },
            _ => {}
        }
    }
    Ok(SearchParams { count, offset, id_filter, last_updated })
}

/// Resource `idx` of `rtype` of member `n` as of `now`: generated, then stamped when the member's claims change
/// daily (`daily_changes`); `None` when it is gone today.
fn member_resource(ctx: &Ctx<'_>, faults: &Faults, n: usize, rtype: &str, idx: usize, now: i64) -> Option<Value> {
    let changing = faults.daily_changes && rtype == "ExplanationOfBenefit";
    if changing && data::changing::absent(idx, now) {
        return None;
    }
    let mut resource = data::generate(ctx, n, rtype, idx);
    if changing {
        data::changing::stamp(&mut resource, idx, now);
    }
    Some(resource)
}

/// A search the guard let through, with its parameters read.
struct Search<'a> {
    sandbox: &'a Sandbox,
    payer: &'a PayerConfig,
    slug: &'a str,
    rtype: &'a str,
    /// The member the access token was issued for.
    member: usize,
    /// That member's Patient id.
    own: String,
    faults: Faults,
    params: SearchParams,
}

impl Search<'_> {
    fn ctx(&self) -> Ctx<'_> {
        Ctx { seed: self.sandbox.seed, payer: self.payer }
    }

    /// Resource `idx` of the searched type as of now, `None` when it is gone today.
    fn resource(&self, idx: usize) -> Option<Value> {
        member_resource(&self.ctx(), &self.faults, self.member, self.rtype, idx, self.sandbox.now())
    }

    /// Whether resource `idx` exists now and meets every `_lastUpdated` bound (only then generated).
    fn matches(&self, idx: usize) -> bool {
        let changing = self.faults.daily_changes && self.rtype == "ExplanationOfBenefit";
        if self.params.last_updated.is_empty() && !changing {
            return true;
        }
        let Some(resource) = self.resource(idx) else { return false };
        let at = resource.pointer("/meta/lastUpdated").and_then(Value::as_str).and_then(parse_instant);
        self.params.last_updated.iter().all(|(b, _)| at.is_some_and(|at| b.holds(at)))
    }

    /// The indices of the member's resources on the page asked for, and the searchset's `total`.
    fn select(&self) -> Result<(Vec<usize>, usize), Response> {
        let (sandbox, rtype, n, own) = (self.sandbox, self.rtype, self.member, &self.own);
        let (faults, id_filter) = (&self.faults, &self.params.id_filter);
        let (count, offset) = (self.params.count, self.params.offset);
        // `_id` narrows to one resource of the member; another patient's id reveals nothing but an empty page,
        // except for Patient where it is a compartment question.
        match id_filter {
            Some(id) if rtype == "Patient" && id != own => Err(forbidden_other_patient()),
            Some(id) => {
                let found: Vec<usize> = match data::parse_id(sandbox.seed, rtype, id) {
                    Some((m, idx)) if m == n && self.matches(idx) => vec![idx],
                    _ => vec![],
                };
                let total = found.len();
                Ok((found, total))
            }
            // Fault `no.patient`: without an `_id` the payer cannot tell whose Patient resource is meant.
            None if rtype == "Patient" && faults.no_patient_context => Ok((vec![], 0)),
            None => {
                let all = data::count(n, rtype);
                let changing = faults.daily_changes && rtype == "ExplanationOfBenefit";
                if self.params.last_updated.is_empty() && !changing {
                    return Ok(((offset.min(all)..(offset + count).min(all)).collect(), all));
                }
                let kept: Vec<usize> = (0..all).filter(|&i| self.matches(i)).collect();
                let total = kept.len();
                Ok((kept.into_iter().skip(offset).take(count).collect(), total))
            }
        }
    }

    /// The searchset Bundle of the resources at `indices`, with its `self` link and, when more pages follow, a
    /// `next` link (relative under the `relative_next` fault).
    fn bundle(&self, indices: &[usize], total: usize) -> Value {
        let (sandbox, rtype, own) = (self.sandbox, self.rtype, &self.own);
        let (count, offset) = (self.params.count, self.params.offset);
        let fhir_base = sandbox.fhir_base(self.slug);
        let entries: Vec<Value> = indices
            .iter()
            .filter_map(|&idx| self.resource(idx))
            .map(|resource| {
                json!({
                    "fullUrl": format!("{fhir_base}/{rtype}/{}", resource["id"].as_str().unwrap_or("")),
                    "resource": resource,
                    "search": {"mode": "match"}
                })
            })
            .collect();
        let page_url = |off: usize, relative: bool| {
            let mut path = format!("{rtype}?patient={own}&_count={count}&_getpagesoffset={off}");
            for (_, v) in &self.params.last_updated {
                path.push_str("&_lastUpdated=");
                path.extend(url::form_urlencoded::byte_serialize(v.as_bytes()));
            }
            if relative {
                let base_path = url::Url::parse(&fhir_base).map(|u| u.path().to_string()).unwrap_or_default();
                format!("{}/{path}", base_path.trim_end_matches('/'))
            } else {
                format!("{fhir_base}/{path}")
            }
        };
        let mut links = vec![json!({"relation": "self", "url": page_url(offset, false)})];
        if self.params.id_filter.is_none() && offset + count < total {
            links.push(json!({"relation": "next", "url": page_url(offset + count, self.faults.relative_next)}));
        }
        json!({
            "resourceType": "Bundle",
            "id": crate::server::platform::crypto::random_id(12),
            "meta": {"lastUpdated": time::OffsetDateTime::from_unix_timestamp(sandbox.now()).ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()).unwrap_or_default()},
            "type": "searchset",
            "total": total,
            "link": links,
            "entry": entries,
        })
    }
}

/// `GET {fhir_base}/{type}/{id}`: a member's resource (403 when it belongs to another patient) or a shared
/// resource (Organization, Practitioner, PractitionerRole, Location, Medication).
pub async fn read(
    State(sandbox): State<Shared>,
    Path((slug, rtype, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let (payer, claims, faults) = match guard(&sandbox, &slug, &headers, &rtype).await {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let ctx = Ctx { seed: sandbox.seed, payer };
    if SHARED_RESOURCE_TYPES.contains(&rtype.as_str()) {
        return match data::shared(&ctx, &rtype, &id) {
            Some(r) => fhir_response(StatusCode::OK, &r),
            None => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
        };
    }
    if !SUPPORTED_RESOURCE_TYPES.contains(&rtype.as_str()) {
        return outcome(StatusCode::NOT_FOUND, "not-supported", "unknown resource type");
    }
    match data::parse_id(sandbox.seed, &rtype, &id) {
        Some((m, idx)) if m == claims.m => match member_resource(&ctx, &faults, m, &rtype, idx, sandbox.now()) {
            Some(r) => fhir_response(StatusCode::OK, &r),
            None => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
        },
        Some(_) => forbidden_other_patient(),
        None => outcome(StatusCode::NOT_FOUND, "not-found", "no such resource"),
    }
}

/// `GET {fhir_base}/metadata`: the CapabilityStatement (no token needed), with the SMART OAuth URIs.
pub async fn metadata(State(sandbox): State<Shared>, Path(slug): Path<String>) -> Response {
    let Some(payer) = sandbox.payer(&slug) else {
        return outcome(StatusCode::NOT_FOUND, "not-found", "unknown payer");
    };
    let base = format!("{}/sandbox/{}", sandbox.base_url, payer.slug);
    let search_params = |rtype: &str| {
        let mut p = vec![
            json!({"name": "patient", "type": "reference"}),
            json!({"name": "_id", "type": "token"}),
            json!({"name": "_count", "type": "number"}),
        ];
        if rtype == "Coverage" {
            p.push(json!({"name": "beneficiary", "type": "reference"}));
        }
        if payer.last_updated_search {
            p.push(json!({"name": "_lastUpdated", "type": "date"}));
        }
        p
    };
    let mut resources: Vec<Value> = SUPPORTED_RESOURCE_TYPES
        .iter()
        .map(|t| {
            json!({
                "type": t,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": search_params(t)
            })
        })
        .collect();
    resources.extend(SHARED_RESOURCE_TYPES.iter().map(|t| json!({"type": t, "interaction": [{"code": "read"}]})));
    let statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2025-06-30",
        "publisher": payer.name,
        "kind": "instance",
        "software": {"name": "Link SDK sandbox payer", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("{} (sandbox, synthetic data)", payer.name), "url": sandbox.fhir_base(&slug)},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "authorize", "valueUri": format!("{base}/authorize")},
                        {"url": "token", "valueUri": format!("{base}/token")}
                    ]
                }]
            },
            "resource": resources
        }]
    });
    fhir_response(StatusCode::OK, &statement)
}
