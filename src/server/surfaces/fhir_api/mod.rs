//! The FHIR R4 API under /fhir over the synced data: `metadata`, read, search (with `_include` and paging)
//! and `Patient/{id}/$everything`.
//!
//! Owner: [Integrator API]. Compiled only with `ssr`.
//!
//! - Authentication: a patient access token (`at_…`) sees only its own authorization's rows (the
//!   `resources` table is keyed by authorization, so two users never share rows, even for identical payer
//!   records); an application token (`app_…`) sees every live authorization of its app in its mode.
//! - Resources are returned exactly as stored (the payer's JSON bytes, never re-serialized): Bundles are
//!   assembled around the stored text.
//! - `$PATIENT_ID` in the path or query is the token's patient.
//! - Errors are `OperationOutcome` (FHIR R4 §3.1.0.4): 400 bad parameter, 401 (with `WWW-Authenticate`,
//!   RFC 6750), 403 another patient, 404, 422 after a failed sync, 429 with `Retry-After` while it runs.

use std::collections::BTreeSet;

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde_json::{json, Value};
use sqlx::Row as _;

use crate::server::fhir::{
    self,
    outcome::operation_outcome,
    search::{self, Criterion, DateValue, ParamKind, TokenValue},
};
use crate::server::{
    platform::telemetry::request_id,
    services::access::{self, AccessError, Principal},
    state::AppState,
    store::audit::{self, AuditEntry},
};

/// `Content-Type` of every FHIR response.
pub const FHIR_JSON: &str = "application/fhir+json";
/// Default page size of a search.
pub const DEFAULT_COUNT: usize = 100;
/// Default page size of `$everything`.
pub const DEFAULT_EVERYTHING_COUNT: usize = 1000;
/// Largest accepted `_count` of a search.
pub const MAX_COUNT: usize = 1000;
/// Largest accepted `_count` of `$everything` (a large member's whole record in one response).
pub const MAX_EVERYTHING_COUNT: usize = 5000;
/// `Retry-After` (seconds) while the patient's sync runs.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata))
        .route("/fhir/{rtype}", get(search_type))
        .route("/fhir/{rtype}/{id}", get(read))
        .route("/fhir/Patient/{id}/{operation}", get(everything))
        // This API is read-only: any other method is an OperationOutcome (`not-supported`), with `Allow`.
        .method_not_allowed_fallback(|| async {
            FhirError::new(StatusCode::METHOD_NOT_ALLOWED, "not-supported", "this FHIR API is read-only: use GET")
        })
}

// ---------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------

/// An error answered as a FHIR `OperationOutcome`.
#[derive(Debug)]
pub struct FhirError {
    status: StatusCode,
    code: &'static str,
    diagnostics: String,
    challenge: Option<String>,
    retry_after: Option<u64>,
}

impl FhirError {
    fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        FhirError { status, code, diagnostics: diagnostics.into(), challenge: None, retry_after: None }
    }
    /// 400 `invalid`: a bad parameter.
    pub fn bad_param(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", d)
    }
    /// 403 `forbidden`: another patient's data.
    pub fn forbidden(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", d)
    }
    /// 404 `not-found`.
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", d)
    }
    /// 500 `exception`; the cause is logged, never sent.
    pub fn internal(cause: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{cause:#}"), "internal error in the FHIR API");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal error")
    }
}

impl From<anyhow::Error> for FhirError {
    fn from(e: anyhow::Error) -> Self {
        FhirError::internal(e)
    }
}

impl From<sqlx::Error> for FhirError {
    fn from(e: sqlx::Error) -> Self {
        FhirError::internal(e.into())
    }
}

impl From<AccessError> for FhirError {
    fn from(e: AccessError) -> Self {
        let challenge = e.challenge();
        let mut f = match e {
            AccessError::Internal(cause) => return FhirError::internal(cause),
            AccessError::Missing => FhirError::new(StatusCode::UNAUTHORIZED, "login", AccessError::Missing.to_string()),
            AccessError::Invalid(d) => FhirError::new(StatusCode::UNAUTHORIZED, "login", d),
        };
        f.challenge = Some(challenge);
        f
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = operation_outcome("error", self.code, &self.diagnostics).to_string();
        let mut resp = fhir_response(self.status, body);
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

fn fhir_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

type FhirResult = Result<Response, FhirError>;

// ---------------------------------------------------------------------------------------------------------
// Who is asking, and which rows they may see
// ---------------------------------------------------------------------------------------------------------

/// SQL condition on `authorizations a`: not revoked, expired or expunged.
const LIVE_AUTHORIZATION: &str =
    "a.revoked_at IS NULL AND a.expunged_at IS NULL AND a.state NOT IN ('REVOKED', 'EXPIRED')";

/// The rows a request may read.
#[derive(Debug, Clone)]
enum Scope {
    /// One authorization (patient token, or an application token narrowed to one patient).
    Authorizations(Vec<String>),
    /// Every live authorization of an app in a mode (application token).
    App { app_id: String, mode: String, now: i64 },
}

impl Scope {
    /// SQL restricting `r.authorization_id`, with its bind values, placeholders numbered from `start`.
    fn sql(&self, start: usize) -> (String, Vec<String>) {
        match self {
            Scope::Authorizations(ids) => {
                let ph: Vec<String> = (0..ids.len()).map(|i| format!("${}", start + i)).collect();
                (format!("r.authorization_id IN ({})", ph.join(", ")), ids.clone())
            }
            Scope::App { app_id, mode, now } => (
                format!(
                    "r.authorization_id IN (SELECT a.id FROM authorizations a WHERE a.app_id = ${} AND a.mode = ${} \
                     AND {LIVE_AUTHORIZATION} AND (a.expunge_at IS NULL OR a.expunge_at > {now}) \
                     AND NOT (a.usage = 'ONE_TIME' AND a.created_at + {ttl} <= {now}))",
                    start,
                    start + 1,
                    ttl = crate::server::services::payer::oauth::ONE_TIME_TTL_SECS,
                ),
                vec![app_id.clone(), mode.clone()],
            ),
        }
    }
}

struct Caller {
    principal: Principal,
    /// The token's patient id (patient tokens only).
    patient: Option<String>,
    /// The request's time (Unix s).
    now: i64,
}

impl Caller {
    fn audit_authorization(&self) -> Option<&str> {
        match &self.principal {
            Principal::Patient { authorization, .. } => Some(&authorization.id),
            Principal::App { .. } => None,
        }
    }

    fn base_scope(&self) -> Scope {
        match &self.principal {
            Principal::Patient { authorization, .. } => Scope::Authorizations(vec![authorization.id.clone()]),
            Principal::App { app_id, mode, .. } => {
                Scope::App { app_id: app_id.clone(), mode: mode.as_str().into(), now: self.now }
            }
        }
    }

    /// The scope for one patient id: 403 when it is not the token's patient (patient token) or not linked to
    /// the app (application token).
    async fn scope_for_patient(&self, state: &AppState, patient_id: &str) -> Result<Scope, FhirError> {
        match &self.principal {
            Principal::Patient { authorization, .. } => {
                if authorization.patient_id.as_deref() == Some(patient_id) {
                    Ok(Scope::Authorizations(vec![authorization.id.clone()]))
                } else {
                    Err(FhirError::forbidden("this token does not grant access to that patient"))
                }
            }
            Principal::App { app_id, mode, .. } => {
                let ids: Vec<String> = sqlx::query(&format!(
                    "SELECT a.id FROM authorizations a WHERE a.app_id = $1 AND a.mode = $2 AND a.patient_id = $3 \
                     AND {LIVE_AUTHORIZATION} AND (a.expunge_at IS NULL OR a.expunge_at > $4) \
                     AND NOT (a.usage = 'ONE_TIME' AND a.created_at + {ttl} <= $4) ORDER BY a.created_at, a.id",
                    ttl = crate::server::services::payer::oauth::ONE_TIME_TTL_SECS
                ))
                .bind(app_id)
                .bind(mode.as_str())
                .bind(patient_id)
                .bind(self.now)
                .fetch_all(&state.db.pool)
                .await?
                .iter()
                .filter_map(|r| r.try_get::<String, _>("id").ok())
                .collect();
                if ids.is_empty() {
                    Err(FhirError::forbidden("that patient is not linked to this application"))
                } else {
                    Ok(Scope::Authorizations(ids))
                }
            }
        }
    }

    /// Replaces `$PATIENT_ID` (raw or percent-encoded) by the token's patient id.
    fn substitute(&self, s: &str) -> Result<String, FhirError> {
        if !s.contains("$PATIENT_ID") && !s.contains("%24PATIENT_ID") {
            return Ok(s.to_string());
        }
        let Some(p) = &self.patient else {
            return Err(FhirError::bad_param("$PATIENT_ID needs a patient access token with a known patient"));
        };
        Ok(s.replace("%24PATIENT_ID", p).replace("$PATIENT_ID", p))
    }
}

async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, FhirError> {
    let principal = access::authenticate_bearer(state, headers).await?;
    let patient = match &principal {
        Principal::Patient { authorization, .. } => authorization.patient_id.clone(),
        Principal::App { .. } => None,
    };
    Ok(Caller { principal, patient, now: state.clock.now() })
}

/// 429 while a sync of these authorizations runs; 422 when the latest one failed.
async fn gate_on_sync(state: &AppState, scope: &Scope) -> Result<(), FhirError> {
    let Scope::Authorizations(ids) = scope else { return Ok(()) };
    for id in ids {
        if let Some(st) = crate::server::services::sync::status(&state.db, id).await? {
            match st.status.as_str() {
                "pending" | "syncing" => {
                    let mut e = FhirError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "throttled",
                        "the patient's data is still being retrieved from the health plan; retry later",
                    );
                    e.retry_after = Some(RETRY_AFTER_SECS);
                    return Err(e);
                }
                "failed" => {
                    return Err(FhirError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "processing",
                        format!(
                            "retrieving the patient's data from the health plan failed ({})",
                            st.exit_code.map(|c| c.as_str()).unwrap_or("SYNC_FAILED")
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The stored JSON text of a row selected with `authorization_id, resource_type, id, body, body_enc,
/// body_key_id` (opened when resources are encrypted at rest).
fn row_body(state: &AppState, row: &sqlx::any::AnyRow) -> Result<String, FhirError> {
    let authz: String = row.try_get("authorization_id")?;
    let rtype: String = row.try_get("resource_type")?;
    let id: String = row.try_get("id")?;
    Ok(crate::server::store::resources::body_text(
        &state.cipher,
        &authz,
        &rtype,
        &id,
        row.try_get("body")?,
        row.try_get("body_enc")?,
        row.try_get("body_key_id")?,
    )?)
}

/// Columns `row_body` needs.
const BODY_COLS: &str = "r.authorization_id, r.resource_type, r.id, r.body, r.body_enc, r.body_key_id";

async fn audit_read(state: &AppState, headers: &HeaderMap, c: &Caller, interaction: &str, types: &[&str], count: usize) {
    let app_id = c.principal.app_id().to_string();
    let actor = format!("app:{app_id}");
    let rid = request_id(headers);
    if let Err(e) = audit::record(
        &state.db,
        state.clock.now(),
        AuditEntry {
            actor: &actor,
            action: "fhir.read",
            app_id: Some(&app_id),
            authorization_id: c.audit_authorization(),
            request_id: rid.as_deref(),
            detail: Some(json!({"interaction": interaction, "resource_types": types, "count": count})),
        },
    )
    .await
    {
        tracing::error!(error = %format!("{e:#}"), "could not write an audit record");
    }
}

fn check_type(rtype: &str) -> Result<(), FhirError> {
    if search::RESOURCE_TYPES.contains(&rtype) {
        Ok(())
    } else {
        Err(FhirError::new(StatusCode::NOT_FOUND, "not-supported", format!("resource type {rtype} is not supported")))
    }
}

fn check_id(id: &str) -> Result<(), FhirError> {
    if fhir::reference::is_valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::bad_param("the id is not a valid FHIR id"))
    }
}

fn parse_query(c: &Caller, raw: Option<&str>) -> Result<Vec<(String, String)>, FhirError> {
    let raw = c.substitute(raw.unwrap_or(""))?;
    Ok(url::form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

fn parse_count(v: &str, max: usize) -> Result<usize, FhirError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| FhirError::bad_param(format!("_count must be an integer from 0 to {max}")))
}

fn parse_offset(v: &str) -> Result<usize, FhirError> {
    v.parse::<usize>().map_err(|_| FhirError::bad_param("_offset must be a non-negative integer"))
}

// ---------------------------------------------------------------------------------------------------------
// GET /fhir/metadata
// ---------------------------------------------------------------------------------------------------------

async fn metadata(State(state): State<AppState>) -> Response {
    let mut resp = fhir_response(StatusCode::OK, capability_statement(&state.public_url).to_string());
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// The CapabilityStatement: exactly the types, interactions, search parameters, includes and operation
/// this module implements (built from the same tables the handlers use).
pub fn capability_statement(public_url: &str) -> Value {
    let resources: Vec<Value> = search::RESOURCE_TYPES
        .iter()
        .map(|t| {
            let mut params = vec![
                json!({"name": "_id", "type": "token"}),
                json!({"name": "_lastUpdated", "type": "date"}),
            ];
            if search::patient_paths(t).is_some() {
                params.push(json!({"name": "patient", "type": "reference"}));
            }
            for p in search::params_for(t) {
                let ty = match p.kind {
                    ParamKind::Token => "token",
                    ParamKind::Date => "date",
                };
                params.push(json!({"name": p.name, "type": ty}));
            }
            let includes: Vec<String> = INCLUDE_NAMES
                .iter()
                .filter(|n| search::include_paths(t, n).is_some())
                .map(|n| format!("{t}:{n}"))
                .chain(std::iter::once(format!("{t}:*")))
                .collect();
            let mut r = json!({
                "type": t,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": params,
                "searchInclude": includes,
            });
            if *t == "Patient" {
                r["operation"] = json!([{"name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-29",
        "kind": "instance",
        "software": {"name": "link-sdk", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Synced payer data (read-only)", "url": format!("{public_url}/fhir")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                          "code": "OAuth"}]}],
                "description": "Bearer access_token from /link/exchange (one patient) or an application token from /link/token client_credentials (every patient linked to the app)."
            },
            "resource": resources,
            "searchParam": [{"name": "_count", "type": "number"}, {"name": "_include", "type": "special"}]
        }]
    })
}

const INCLUDE_NAMES: &[&str] = &[
    "patient",
    "beneficiary",
    "payor",
    "provider",
    "insurer",
    "care-team",
    "coverage",
    "facility",
    "general-practitioner",
    "organization",
    "medication",
    "requester",
    "practitioner",
    "service-provider",
    "performer",
];

// ---------------------------------------------------------------------------------------------------------
// GET /fhir/{type}/{id}
// ---------------------------------------------------------------------------------------------------------

async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((rtype, id)): Path<(String, String)>,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    check_type(&rtype)?;
    let id = c.substitute(&id)?;
    check_id(&id)?;
    let scope = if rtype == "Patient" {
        match &c.principal {
            // A patient token may read only its own Patient; an app token only a patient linked to it.
            Principal::Patient { authorization, .. } if authorization.patient_id.is_some() => {
                c.scope_for_patient(&state, &id).await?
            }
            Principal::App { .. } => c.scope_for_patient(&state, &id).await?,
            _ => c.base_scope(),
        }
    } else {
        c.base_scope()
    };
    gate_on_sync(&state, &scope).await?;
    let (cond, binds) = scope.sql(3);
    let sql = format!(
        "SELECT {BODY_COLS}, r.version_id FROM resources r WHERE r.resource_type = $1 AND r.id = $2 AND {cond} \
         ORDER BY r.authorization_id LIMIT 1"
    );
    let mut q = sqlx::query(&sql).bind(&rtype).bind(&id);
    for b in &binds {
        q = q.bind(b);
    }
    let Some(row) = q.fetch_optional(&state.db.pool).await? else {
        return Err(FhirError::not_found(format!("{rtype}/{id} is not known")));
    };
    let body = row_body(&state, &row)?;
    let version: Option<String> = row.try_get("version_id")?;
    audit_read(&state, &headers, &c, "read", &[rtype.as_str()], 1).await;
    let mut resp = fhir_response(StatusCode::OK, body);
    if let Some(v) = version.and_then(|v| HeaderValue::from_str(&format!("W/\"{v}\"")).ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

// ---------------------------------------------------------------------------------------------------------
// Bundles
// ---------------------------------------------------------------------------------------------------------

struct Entry {
    rtype: String,
    id: String,
    body: String,
    mode: &'static str,
}

struct Page<'a> {
    base: &'a str,
    path: &'a str,
    params: &'a [(String, String)],
    total: usize,
    offset: usize,
    count: usize,
}

fn link_url(p: &Page<'_>, offset: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in p.params {
        if k != "_offset" && k != "_count" {
            s.append_pair(k, v);
        }
    }
    s.append_pair("_count", &p.count.to_string());
    if offset > 0 {
        s.append_pair("_offset", &offset.to_string());
    }
    format!("{}{}?{}", p.base, p.path, s.finish())
}

/// Assembles a `searchset` Bundle around the stored resource texts (no re-serialization).
fn bundle(p: &Page<'_>, entries: &[Entry], now: i64) -> String {
    let mut links = vec![json!({"relation": "self", "url": link_url(p, p.offset)})];
    links.push(json!({"relation": "first", "url": link_url(p, 0)}));
    if p.count > 0 && p.offset + p.count < p.total {
        links.push(json!({"relation": "next", "url": link_url(p, p.offset + p.count)}));
    }
    if p.offset > 0 {
        links.push(json!({"relation": "previous", "url": link_url(p, p.offset.saturating_sub(p.count.max(1)))}));
    }
    let head = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "meta": {"lastUpdated": crate::server::services::webhooks::rfc3339(now)},
        "type": "searchset",
        "total": p.total,
        "link": links,
    })
    .to_string();
    let size: usize = entries.iter().map(|e| e.body.len() + 120).sum();
    let mut out = String::with_capacity(head.len() + size + 16);
    out.push_str(&head[..head.len() - 1]);
    out.push_str(",\"entry\":[");
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"fullUrl\":");
        out.push_str(&Value::String(format!("{}/fhir/{}/{}", p.base, e.rtype, e.id)).to_string());
        out.push_str(",\"resource\":");
        out.push_str(&e.body);
        out.push_str(",\"search\":{\"mode\":\"");
        out.push_str(e.mode);
        out.push_str("\"}}");
    }
    out.push_str("]}");
    out
}

// ---------------------------------------------------------------------------------------------------------
// GET /fhir/{type}?…
// ---------------------------------------------------------------------------------------------------------

enum Include {
    Paths(&'static [&'static str]),
    All,
}

async fn search_type(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(rtype): Path<String>,
    RawQuery(raw): RawQuery,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    check_type(&rtype)?;
    let params = parse_query(&c, raw.as_deref())?;
    let mut criteria: Vec<Criterion> = Vec::new();
    let mut ids: Option<Vec<String>> = None;
    let mut patient: Option<String> = None;
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    let mut includes: Vec<Include> = Vec::new();
    for (k, v) in &params {
        let (name, modifier) = match k.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (k.as_str(), None),
        };
        match name {
            "_format" | "_pretty" => {}
            "_count" => count = parse_count(v, MAX_COUNT)?,
            "_offset" => offset = parse_offset(v)?,
            "_id" => {
                let list: Vec<String> = v.split(',').map(str::to_owned).collect();
                for i in &list {
                    check_id(i)?;
                }
                ids = Some(match ids {
                    None => list,
                    Some(prev) => prev.into_iter().filter(|x| list.contains(x)).collect(),
                });
            }
            "_include" => {
                let (src, what) = v
                    .split_once(':')
                    .ok_or_else(|| FhirError::bad_param("_include must be Type:parameter"))?;
                let what = what.split(':').next().unwrap_or(what);
                if src != rtype {
                    return Err(FhirError::bad_param(format!("_include source must be {rtype}")));
                }
                if what == "*" {
                    includes.push(Include::All);
                } else {
                    let paths = search::include_paths(&rtype, what)
                        .ok_or_else(|| FhirError::bad_param(format!("_include {v} is not supported")))?;
                    includes.push(Include::Paths(paths));
                }
            }
            "patient" | "beneficiary" | "subject"
                if search::patient_paths(&rtype).is_some() || (rtype == "Patient" && name == "patient") =>
            {
                let id = v.strip_prefix("Patient/").unwrap_or(v);
                check_id(id).map_err(|_| FhirError::bad_param("patient must be Patient/<id> or <id>"))?;
                if patient.as_deref().is_some_and(|p| p != id) {
                    return Err(FhirError::bad_param("conflicting patient parameters"));
                }
                patient = Some(id.to_string());
            }
            _ => {
                let p = search::find_param(&rtype, name).ok_or_else(|| {
                    FhirError::bad_param(format!("search parameter {name} is not supported for {rtype}"))
                })?;
                match p.kind {
                    ParamKind::Token => {
                        let negate = match modifier {
                            None => false,
                            Some("not") => true,
                            Some(m) => return Err(FhirError::bad_param(format!("modifier :{m} is not supported"))),
                        };
                        criteria.push(Criterion::Token {
                            paths: p.paths,
                            values: v.split(',').map(TokenValue::parse).collect(),
                            negate,
                        });
                    }
                    ParamKind::Date => {
                        if let Some(m) = modifier {
                            return Err(FhirError::bad_param(format!("modifier :{m} is not supported")));
                        }
                        let values = v
                            .split(',')
                            .map(|x| DateValue::parse(x).ok_or_else(|| FhirError::bad_param(format!("{name}: {x} is not a valid FHIR date"))))
                            .collect::<Result<Vec<_>, _>>()?;
                        criteria.push(Criterion::Date { paths: p.paths, values });
                    }
                }
            }
        }
    }
    let scope = match &patient {
        Some(p) => c.scope_for_patient(&state, p).await?,
        None => c.base_scope(),
    };
    gate_on_sync(&state, &scope).await?;
    // For Patient, `patient=` means the Patient itself.
    if rtype == "Patient" {
        if let Some(p) = &patient {
            ids = Some(match ids {
                None => vec![p.clone()],
                Some(prev) => prev.into_iter().filter(|x| x == p).collect(),
            });
        }
    }

    let (cond, mut binds) = scope.sql(2);
    let mut sql_where = format!("r.resource_type = $1 AND {cond}");
    if let Some(ids) = &ids {
        if ids.is_empty() {
            sql_where.push_str(" AND 1 = 0");
        } else {
            let start = 2 + binds.len();
            let ph: Vec<String> = (0..ids.len()).map(|i| format!("${}", start + i)).collect();
            sql_where.push_str(&format!(" AND r.id IN ({})", ph.join(", ")));
            binds.extend(ids.iter().cloned());
        }
    }

    let (total, rows): (usize, Vec<(String, String, String)>) = if criteria.is_empty() {
        let sql = format!("SELECT COUNT(*) AS n FROM resources r WHERE {sql_where}");
        let mut q = sqlx::query(&sql).bind(&rtype);
        for b in &binds {
            q = q.bind(b);
        }
        let total: i64 = q.fetch_one(&state.db.pool).await?.try_get("n")?;
        let sql = format!(
            "SELECT {BODY_COLS} FROM resources r WHERE {sql_where} \
             ORDER BY r.id, r.authorization_id LIMIT {count} OFFSET {offset}"
        );
        let mut q = sqlx::query(&sql).bind(&rtype);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&state.db.pool).await?;
        (total as usize, rows.iter().map(|r| row_triple(&state, r)).collect::<Result<_, _>>()?)
    } else {
        let sql = format!("SELECT {BODY_COLS} FROM resources r WHERE {sql_where} ORDER BY r.id, r.authorization_id");
        let mut q = sqlx::query(&sql).bind(&rtype);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&state.db.pool).await?;
        let keys: BTreeSet<&str> = criteria.iter().flat_map(|c| c.top_level_keys()).collect();
        let mut matched = Vec::new();
        for row in &rows {
            let (a, id, body) = row_triple(&state, row)?;
            if !criteria.iter().all(|cr| cr.may_match_raw(&body)) {
                continue;
            }
            let Some(v) = search::parse_fields(&body, &keys) else { continue };
            if criteria.iter().all(|cr| cr.matches(&v)) {
                matched.push((a, id, body));
            }
        }
        let total = matched.len();
        (total, matched.into_iter().skip(offset).take(count).collect())
    };

    let mut entries: Vec<Entry> = Vec::with_capacity(rows.len());
    let mut included: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for (authz, id, body) in rows {
        if !includes.is_empty() {
            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                let mut refs = Vec::new();
                for inc in &includes {
                    match inc {
                        Include::All => fhir::index::references(&v, &mut refs),
                        Include::Paths(paths) => {
                            for p in *paths {
                                for el in search::values_at(&v, p) {
                                    if let Some(r) = el.get("reference").and_then(Value::as_str) {
                                        refs.push(r.to_string());
                                    }
                                }
                            }
                        }
                    }
                }
                for r in refs {
                    if let Some((t, i)) = fhir::reference::served_target(&r) {
                        let key = (authz.clone(), t.to_string(), i.to_string());
                        if included.insert(key.clone()) {
                            wanted.push(key);
                        }
                    }
                }
            }
        }
        entries.push(Entry { rtype: rtype.clone(), id, body, mode: "match" });
    }
    let mut seen: BTreeSet<(String, String)> = entries.iter().map(|e| (e.rtype.clone(), e.id.clone())).collect();
    for (authz, t, i) in wanted {
        if !seen.insert((t.clone(), i.clone())) {
            continue;
        }
        let row = sqlx::query(&format!(
            "SELECT {BODY_COLS} FROM resources r WHERE r.authorization_id = $1 AND r.resource_type = $2 AND r.id = $3"
        ))
        .bind(&authz)
        .bind(&t)
        .bind(&i)
        .fetch_optional(&state.db.pool)
        .await?;
        if let Some(row) = row {
            let body = row_body(&state, &row)?;
            entries.push(Entry { rtype: t, id: i, body, mode: "include" });
        }
    }
    let path = format!("/fhir/{rtype}");
    let page = Page { base: &state.public_url, path: &path, params: &params, total, offset, count };
    let body = bundle(&page, &entries, state.clock.now());
    audit_read(&state, &headers, &c, "search-type", &[rtype.as_str()], entries.len()).await;
    Ok(fhir_response(StatusCode::OK, body))
}

fn row_triple(state: &AppState, row: &sqlx::any::AnyRow) -> Result<(String, String, String), FhirError> {
    Ok((row.try_get("authorization_id")?, row.try_get("id")?, row_body(state, row)?))
}

// ---------------------------------------------------------------------------------------------------------
// GET /fhir/Patient/{id}/$everything
// ---------------------------------------------------------------------------------------------------------

async fn everything(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, operation)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    if operation != "$everything" {
        return Err(FhirError::not_found(format!("operation {operation} is not supported")));
    }
    let id = c.substitute(&id)?;
    check_id(&id)?;
    let params = parse_query(&c, raw.as_deref())?;
    let mut types: Option<Vec<String>> = None;
    let mut since: Option<i64> = None;
    let mut count = DEFAULT_EVERYTHING_COUNT;
    let mut offset = 0usize;
    for (k, v) in &params {
        match k.as_str() {
            "_format" | "_pretty" => {}
            "_count" => count = parse_count(v, MAX_EVERYTHING_COUNT)?,
            "_offset" => offset = parse_offset(v)?,
            "_type" => {
                let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
                for t in &list {
                    if !search::RESOURCE_TYPES.contains(&t.as_str()) {
                        return Err(FhirError::bad_param(format!("_type: {t} is not a supported resource type")));
                    }
                }
                types = Some(list);
            }
            "_since" => {
                since = Some(
                    search::parse_fhir_date(v)
                        .ok_or_else(|| FhirError::bad_param("_since must be a FHIR instant"))?
                        .0,
                )
            }
            other => return Err(FhirError::bad_param(format!("parameter {other} is not supported by $everything"))),
        }
    }
    let scope = c.scope_for_patient(&state, &id).await?;
    gate_on_sync(&state, &scope).await?;
    let (cond, mut binds) = scope.sql(1);
    let mut sql_where = cond;
    if let Some(types) = &types {
        let start = 1 + binds.len();
        let ph: Vec<String> = (0..types.len()).map(|i| format!("${}", start + i)).collect();
        sql_where.push_str(&format!(" AND r.resource_type IN ({})", ph.join(", ")));
        binds.extend(types.iter().cloned());
    }
    let order = "ORDER BY CASE WHEN r.resource_type = 'Patient' THEN 0 ELSE 1 END, r.resource_type, r.id, r.authorization_id";
    let (total, rows) = if since.is_none() {
        let sql = format!("SELECT COUNT(*) AS n FROM resources r WHERE {sql_where}");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let total: i64 = q.fetch_one(&state.db.pool).await?.try_get("n")?;
        let sql = format!(
            "SELECT {BODY_COLS} FROM resources r WHERE {sql_where} {order} LIMIT {count} OFFSET {offset}"
        );
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&state.db.pool).await?;
        let rows: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| -> Result<_, FhirError> { Ok((r.try_get("resource_type")?, r.try_get("id")?, row_body(&state, r)?)) })
            .collect::<Result<_, _>>()?;
        (total as usize, rows)
    } else {
        let since = since.unwrap_or(i64::MIN);
        let sql = format!("SELECT {BODY_COLS}, r.last_updated_at FROM resources r WHERE {sql_where} {order}");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&state.db.pool).await?;
        let mut matched = Vec::new();
        for r in &rows {
            let body = row_body(&state, r)?;
            let at: Option<i64> = r.try_get("last_updated_at").unwrap_or(None);
            let at = match at {
                Some(a) => Some(a),
                None => serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.pointer("/meta/lastUpdated").and_then(Value::as_str).and_then(search::parse_fhir_date))
                    .map(|r| r.0),
            };
            if at.is_some_and(|a| a >= since) {
                matched.push((r.try_get("resource_type")?, r.try_get("id")?, body));
            }
        }
        let total = matched.len();
        (total, matched.into_iter().skip(offset).take(count).collect())
    };
    let mut type_names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    type_names.dedup();
    let entries: Vec<Entry> =
        rows.into_iter().map(|(rtype, id, body)| Entry { rtype, id, body, mode: "match" }).collect();
    let path = format!("/fhir/Patient/{id}/$everything");
    let page = Page { base: &state.public_url, path: &path, params: &params, total, offset, count };
    let body = bundle(&page, &entries, state.clock.now());
    let type_refs: Vec<&str> = type_names.iter().map(String::as_str).collect();
    audit_read(&state, &headers, &c, "everything", &type_refs, entries.len()).await;
    Ok(fhir_response(StatusCode::OK, body))
}

// ---------------------------------------------------------------------------------------------------------
// OpenAPI description of these routes (served by `surfaces::openapi`)
// ---------------------------------------------------------------------------------------------------------

/// The OpenAPI 3.1 `paths` of the /fhir routes, generated from the search-parameter tables.
pub fn openapi_paths() -> serde_json::Map<String, Value> {
    let mut paths = serde_json::Map::new();
    let fhir_resp = |d: &str| json!({"description": d, "content": {FHIR_JSON: {"schema": {"type": "object"}}}});
    let errors = json!({
        "400": fhir_resp("OperationOutcome: bad parameter"),
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "403": fhir_resp("OperationOutcome: another patient's data"),
        "404": fhir_resp("OperationOutcome: not found"),
        "422": fhir_resp("OperationOutcome: the patient's sync failed"),
        "429": {"description": "The patient's sync is running (Retry-After)", "headers": {"Retry-After": {"schema": {"type": "integer"}}}}
    });
    let with = |ok: Value| {
        let mut r = errors.clone();
        r["200"] = ok;
        r
    };
    paths.insert("/fhir/metadata".into(), json!({"get": {"summary": "CapabilityStatement", "responses": {"200": fhir_resp("CapabilityStatement")}}}));
    for t in search::RESOURCE_TYPES {
        let mut params: Vec<Value> = ["_id", "_lastUpdated", "_count", "_offset", "_include"]
            .iter()
            .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string"}}))
            .collect();
        if search::patient_paths(t).is_some() || *t == "Patient" {
            params.push(json!({"name": "patient", "in": "query", "schema": {"type": "string"}, "description": "Patient/<id>, <id> or $PATIENT_ID"}));
        }
        for p in search::params_for(t) {
            let d = match p.kind {
                ParamKind::Token => "token: [system]|[code], comma = OR, :not",
                ParamKind::Date => "date with prefix eq|ne|gt|lt|ge|le|sa|eb|ap",
            };
            params.push(json!({"name": p.name, "in": "query", "schema": {"type": "string"}, "description": d}));
        }
        paths.insert(
            format!("/fhir/{t}"),
            json!({"get": {"summary": format!("Search {t}"), "security": [{"bearer": []}], "parameters": params,
                           "responses": with(fhir_resp("searchset Bundle with total and links"))}}),
        );
        paths.insert(
            format!("/fhir/{t}/{{id}}"),
            json!({"get": {"summary": format!("Read {t}"), "security": [{"bearer": []}],
                           "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                           "responses": with(fhir_resp(t))}}),
        );
    }
    paths.insert(
        "/fhir/Patient/{id}/$everything".into(),
        json!({"get": {"summary": "Everything about the patient", "security": [{"bearer": []}],
            "parameters": [
                {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "_type", "in": "query", "schema": {"type": "string"}},
                {"name": "_since", "in": "query", "schema": {"type": "string"}},
                {"name": "_count", "in": "query", "schema": {"type": "integer"}},
                {"name": "_offset", "in": "query", "schema": {"type": "integer"}}],
            "responses": with(fhir_resp("searchset Bundle"))}}),
    );
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_lists_everything_on_patient() {
        let cs = capability_statement("http://x");
        let patient = cs["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
        assert_eq!(patient["operation"][0]["name"], "everything");
    }
}
