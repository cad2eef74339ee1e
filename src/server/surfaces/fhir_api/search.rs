//! `GET /fhir/{type}?…`: search one type (FHIR R4 §3.1.1) with `_id`, `_lastUpdated`, `patient` and the
//! type's token and date parameters, `_count`/`_offset` paging, and `_include` of referenced resources (each
//! included once, never one that already matched). Parameters are AND-ed; the first bad one is a 400.
//! `endpoint=<endpoint id>` qualifies the `patient` id with the endpoint it is at (payer ids collide across
//! payers, see `Caller::scope_for_patient`).

use std::collections::BTreeSet;

use axum::{
    extract::{rejection::PathRejection, Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
};
use serde_json::Value;

use super::{
    bundle::{bundle, Entry, Page, SearchMode},
    caller::{caller, check_id, check_type, gate_on_sync, parse_count, parse_endpoint, parse_offset, path_params, split_list},
    error::{fhir_response, FhirError},
    FhirResult, DEFAULT_COUNT, MAX_COUNT,
};
use crate::server::{
    fhir::{
        index::references,
        reference::served_target,
        search::{self, Criterion, DateValue, ParamKind, TokenValue},
    },
    state::AppState,
    store::resources::{self, Stored},
};

pub(super) async fn search_type(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> FhirResult {
    let c = caller(&state, &headers).await?;
    let rtype = path_params(path)?;
    check_type(&rtype)?;
    let params = c.query_params(raw.as_deref())?;
    let req = SearchRequest::parse(&rtype, &params)?;
    let scope = match &req.patient {
        Some(p) => c.scope_for_patient(&state, p, req.endpoint.as_deref()).await?,
        None => c.base_scope(),
    };
    gate_on_sync(&state, &scope).await?;
    let ids = req.ids_for(&rtype);
    let query = resources::Search {
        scope: &scope,
        resource_type: &rtype,
        ids: ids.as_deref(),
        criteria: &req.criteria,
        indexed: resources::params_indexed(state.resource_store()),
        count: req.count,
        offset: req.offset,
    };
    let found = resources::search(&state.db, &state.cipher, &query).await?;
    let keys = include_keys(&req.includes, &found.rows);
    let included = resources::read_many(&state.db, &state.cipher, &keys).await?;
    let entries: Vec<Entry> = (found.rows.into_iter().map(|resource| Entry { resource, mode: SearchMode::Match }))
        .chain(included.into_iter().map(|resource| Entry { resource, mode: SearchMode::Include }))
        .collect();
    let path = format!("/fhir/{rtype}");
    let page = Page { base: &state.public_url, path: &path, params: &params, total: found.total, offset: req.offset, count: req.count };
    let entry_count = entries.len();
    let body = bundle(&page, entries, state.clock.now());
    c.audit_read(&state, &headers, "search-type", &[rtype.as_str()], entry_count).await;
    Ok(fhir_response(StatusCode::OK, body))
}

/// What one `_include` follows.
enum Include {
    /// The references at these element paths (`Type:name`).
    Paths(&'static [&'static str]),
    /// Every reference in the resource (`Type:*`).
    All,
}

/// The parameters of one search, parsed and checked.
struct SearchRequest {
    criteria: Vec<Criterion>,
    /// `_id` (repeated: the intersection).
    ids: Option<Vec<String>>,
    /// `patient` / `subject` / `beneficiary`, as a bare id.
    patient: Option<String>,
    /// `endpoint`: the endpoint the patient id is at (only with a patient).
    endpoint: Option<String>,
    count: usize,
    offset: usize,
    includes: Vec<Include>,
}

impl SearchRequest {
    /// Parses the query parameters of a search of `rtype`, in order; the first bad one is the error.
    fn parse(rtype: &str, params: &[(String, String)]) -> Result<Self, FhirError> {
        let mut r = SearchRequest { criteria: Vec::new(), ids: None, patient: None, endpoint: None, count: DEFAULT_COUNT, offset: 0, includes: Vec::new() };
        for (k, v) in params {
            let (name, modifier) = match k.split_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (k.as_str(), None),
            };
            match name {
                "_format" | "_pretty" => {}
                "_count" => r.count = parse_count(v, MAX_COUNT)?,
                "_offset" => r.offset = parse_offset(v)?,
                "_id" => r.add_ids(v)?,
                "_include" => r.includes.push(parse_include(rtype, v)?),
                "endpoint" => r.endpoint = Some(parse_endpoint(v)?),
                "patient" | "beneficiary" | "subject"
                    if search::patient_paths(rtype).is_some() || (rtype == "Patient" && name == "patient") =>
                {
                    r.set_patient(v)?
                }
                _ => r.criteria.push(parse_criterion(rtype, name, modifier, v)?),
            }
        }
        if r.endpoint.is_some() && r.patient.is_none() {
            return Err(FhirError::bad_param("endpoint qualifies a patient id: use it with patient"));
        }
        Ok(r)
    }

    /// `_id=a,b`: these ids; a repeated `_id` keeps the ids in both.
    fn add_ids(&mut self, v: &str) -> Result<(), FhirError> {
        let list: Vec<String> = split_list("_id", v)?.into_iter().map(str::to_owned).collect();
        for i in &list {
            check_id(i)?;
        }
        self.ids = Some(match self.ids.take() {
            None => list,
            Some(prev) => prev.into_iter().filter(|x| list.contains(x)).collect(),
        });
        Ok(())
    }

    /// `patient=Patient/<id>` or `<id>`; repeating it with another id is a 400.
    fn set_patient(&mut self, v: &str) -> Result<(), FhirError> {
        let id = v.strip_prefix("Patient/").unwrap_or(v);
        check_id(id).map_err(|_| FhirError::bad_param("patient must be Patient/<id> or <id>"))?;
        if self.patient.as_deref().is_some_and(|p| p != id) {
            return Err(FhirError::bad_param("conflicting patient parameters"));
        }
        self.patient = Some(id.to_string());
        Ok(())
    }

    /// The ids to read: `_id`, and for `Patient` narrowed to the `patient` parameter (the Patient itself).
    fn ids_for(&self, rtype: &str) -> Option<Vec<String>> {
        match (&self.patient, self.ids.clone()) {
            (Some(p), None) if rtype == "Patient" => Some(vec![p.clone()]),
            (Some(p), Some(prev)) if rtype == "Patient" => Some(prev.into_iter().filter(|x| x == p).collect()),
            (_, ids) => ids,
        }
    }
}

/// `_include=Type:name[:target]` (`Type` must be the searched type) or `Type:*`.
fn parse_include(rtype: &str, v: &str) -> Result<Include, FhirError> {
    let (src, what) = v.split_once(':').ok_or_else(|| FhirError::bad_param("_include must be Type:parameter"))?;
    let what = what.split(':').next().unwrap_or(what);
    if src != rtype {
        return Err(FhirError::bad_param(format!("_include source must be {rtype}")));
    }
    if what == "*" {
        return Ok(Include::All);
    }
    let paths = search::include_paths(rtype, what).ok_or_else(|| FhirError::bad_param(format!("_include {v} is not supported")))?;
    Ok(Include::Paths(paths))
}

/// A token (`:not` allowed) or date parameter of `rtype`; its values (`,`) are alternatives.
fn parse_criterion(rtype: &str, name: &str, modifier: Option<&str>, v: &str) -> Result<Criterion, FhirError> {
    let p = search::find_param(rtype, name)
        .ok_or_else(|| FhirError::bad_param(format!("search parameter {name} is not supported for {rtype}")))?;
    let unsupported = |m: &str| FhirError::bad_param(format!("modifier :{m} is not supported"));
    match p.kind {
        ParamKind::Token => {
            let negate = match modifier {
                None => false,
                Some("not") => true,
                Some(m) => return Err(unsupported(m)),
            };
            Ok(Criterion::Token { name: p.name, paths: p.paths, values: v.split(',').map(TokenValue::parse).collect(), negate })
        }
        ParamKind::Date => {
            if let Some(m) = modifier {
                return Err(unsupported(m));
            }
            let values = v
                .split(',')
                .map(|x| DateValue::parse(x).ok_or_else(|| FhirError::bad_param(format!("{name}: {x} is not a valid FHIR date"))))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Criterion::Date { name: p.name, paths: p.paths, values })
        }
    }
}

/// The `(authorization, type, id)` of every resource the matches' `_include`s reference, in the order they
/// are met: each once, none that is already a match (by type and id), only types this API serves.
fn include_keys(includes: &[Include], matched: &[Stored]) -> Vec<(String, String, String)> {
    if includes.is_empty() {
        return Vec::new();
    }
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    let mut unique: BTreeSet<(String, String, String)> = BTreeSet::new();
    // Only the top-level elements the includes read are parsed, unless one follows every reference.
    let keys: Option<BTreeSet<&str>> = includes
        .iter()
        .map(|inc| match inc {
            Include::Paths(paths) => Some(paths.iter().map(|p| p.split('.').next().unwrap_or(p))),
            Include::All => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|ks| ks.into_iter().flatten().collect());
    for r in matched {
        let parsed = match &keys {
            Some(k) => search::parse_fields(&r.body, k),
            None => serde_json::from_str::<Value>(&r.body).ok(),
        };
        let Some(v) = parsed else { continue };
        for reference in included_references(includes, &v) {
            if let Some((t, i)) = served_target(&reference) {
                let key = (r.authorization_id.clone(), t.to_string(), i.to_string());
                if unique.insert(key.clone()) {
                    wanted.push(key);
                }
            }
        }
    }
    let mut seen: BTreeSet<(String, String)> = matched.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
    wanted.retain(|(_, t, i)| seen.insert((t.clone(), i.clone())));
    wanted
}

/// The reference strings of one resource that its `_include`s follow, in order.
fn included_references(includes: &[Include], v: &Value) -> Vec<String> {
    let mut refs = Vec::new();
    for inc in includes {
        match inc {
            Include::All => references(v, &mut refs),
            Include::Paths(paths) => {
                for p in *paths {
                    for el in search::values_at(v, p) {
                        if let Some(r) = el.get("reference").and_then(Value::as_str) {
                            refs.push(r.to_string());
                        }
                    }
                }
            }
        }
    }
    refs
}
