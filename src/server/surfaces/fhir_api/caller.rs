//! Who is asking and which rows they may read: the Bearer token's principal, the [`Scope`] of authorizations
//! it reaches (a patient token: its own authorization; an application token: every live authorization of its
//! app and mode, or those of one patient at one endpoint), the sync gate (429/422) on a patient's data, the audit record of
//! every read, and the parameter checks the handlers share.

use axum::{
    extract::{rejection::PathRejection, Path},
    http::{HeaderMap, StatusCode},
};
use serde_json::json;

use super::{error::FhirError, MAX_LIST_VALUES, MAX_OFFSET, RETRY_AFTER_SECS};
use crate::server::{
    fhir::{reference, search},
    platform::telemetry::request_id,
    services::access::{self, Principal},
    state::AppState,
    store::{
        audit::AuditEntry,
        authorizations,
        resources::Scope,
    },
};

/// The authenticated caller of one request.
pub(super) struct Caller {
    principal: Principal,
    /// The token's patient id (patient tokens only).
    patient: Option<String>,
    /// The request's time (Unix s).
    now: i64,
}

/// Authenticates the request's Bearer token.
pub(super) async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, FhirError> {
    let principal = access::authenticate_bearer(state, headers).await?;
    let patient = match &principal {
        Principal::Patient { authorization, .. } => authorization.patient_id.clone(),
        Principal::App { .. } => None,
    };
    Ok(Caller { principal, patient, now: state.clock.now() })
}

impl Caller {
    fn audit_authorization(&self) -> Option<&str> {
        match &self.principal {
            Principal::Patient { authorization, .. } => Some(&authorization.id),
            Principal::App { .. } => None,
        }
    }

    /// Everything the token may read.
    pub(super) fn base_scope(&self) -> Scope {
        match &self.principal {
            Principal::Patient { authorization, .. } => Scope::Authorizations(vec![authorization.id.clone()]),
            Principal::App { app_id, mode, .. } => {
                Scope::LiveOfApp { app_id: app_id.clone(), mode: *mode, now: self.now }
            }
        }
    }

    /// The scope for one patient: the payer patient `patient_id` at `endpoint` (an endpoint id), or at the one
    /// endpoint where it is linked when `endpoint` is `None`. Payers assign patient ids independently, so the same
    /// id at two endpoints is two people: an application token whose app has `patient_id` linked at more than one
    /// endpoint must name the endpoint (400 `multiple-matches` otherwise). 403 when it is not the token's patient
    /// (patient token) or not linked to the app at that endpoint (application token).
    pub(super) async fn scope_for_patient(
        &self,
        state: &AppState,
        patient_id: &str,
        endpoint: Option<&str>,
    ) -> Result<Scope, FhirError> {
        match &self.principal {
            Principal::Patient { authorization, .. } => {
                if authorization.patient_id.as_deref() == Some(patient_id)
                    && endpoint.is_none_or(|e| e == authorization.endpoint_id)
                {
                    Ok(Scope::Authorizations(vec![authorization.id.clone()]))
                } else {
                    Err(FhirError::forbidden("this token does not grant access to that patient"))
                }
            }
            Principal::App { app_id, mode, .. } => {
                let mut at_endpoints: Vec<(String, String)> = Vec::new();
                for id in authorizations::live_ids_for_patient(&state.db, app_id, *mode, patient_id, self.now).await? {
                    if let Some(a) = authorizations::get(&state.db, &id).await? {
                        if endpoint.is_none_or(|e| e == a.endpoint_id) {
                            at_endpoints.push((a.endpoint_id, id));
                        }
                    }
                }
                let Some((first, _)) = at_endpoints.first() else {
                    return Err(FhirError::forbidden("that patient is not linked to this application"));
                };
                if at_endpoints.iter().any(|(e, _)| e != first) {
                    return Err(FhirError::new(
                        StatusCode::BAD_REQUEST,
                        "multiple-matches",
                        format!(
                            "patient {patient_id} is linked at more than one endpoint (payers assign patient ids \
                             independently): add endpoint=<endpoint id>"
                        ),
                    ));
                }
                Ok(Scope::Authorizations(at_endpoints.into_iter().map(|(_, id)| id).collect()))
            }
        }
    }

    /// The scope of `GET /fhir/{type}/{id}`: a Patient is read only as one of the caller's patients (a patient
    /// token with a known patient, or an application token), at `endpoint` when given; anything else within the
    /// token's reach.
    pub(super) async fn read_scope(
        &self,
        state: &AppState,
        rtype: &str,
        id: &str,
        endpoint: Option<&str>,
    ) -> Result<Scope, FhirError> {
        let narrowed = match &self.principal {
            Principal::Patient { authorization, .. } => authorization.patient_id.is_some(),
            Principal::App { .. } => true,
        };
        if rtype == "Patient" && narrowed {
            self.scope_for_patient(state, id, endpoint).await
        } else {
            Ok(self.base_scope())
        }
    }

    /// Replaces `$PATIENT_ID` (raw or percent-encoded) by the token's patient id.
    pub(super) fn substitute(&self, s: &str) -> Result<String, FhirError> {
        if !s.contains("$PATIENT_ID") && !s.contains("%24PATIENT_ID") {
            return Ok(s.to_string());
        }
        let Some(p) = &self.patient else {
            return Err(FhirError::bad_param("$PATIENT_ID needs a patient access token with a known patient"));
        };
        Ok(s.replace("%24PATIENT_ID", p).replace("$PATIENT_ID", p))
    }

    /// The query string's parameters, in order, after `$PATIENT_ID` substitution.
    pub(super) fn query_params(&self, raw: Option<&str>) -> Result<Vec<(String, String)>, FhirError> {
        let raw = self.substitute(raw.unwrap_or(""))?;
        Ok(url::form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
    }

    /// Records a `fhir.read` audit event (interaction, types, count; never health data) with the request id,
    /// through the [`crate::server::store::audit::AuditQueue`] (off the request's path). A failure to record is
    /// logged.
    pub(super) async fn audit_read(&self, state: &AppState, headers: &HeaderMap, interaction: &str, types: &[&str], count: usize) {
        let app_id = self.principal.app_id().to_string();
        let actor = format!("app:{app_id}");
        let rid = request_id(headers);
        let entry = AuditEntry {
            actor: &actor,
            action: "fhir.read",
            app_id: Some(&app_id),
            authorization_id: self.audit_authorization(),
            request_id: rid.as_deref(),
            detail: Some(json!({"interaction": interaction, "resource_types": types, "count": count})),
        };
        if let Err(e) = state.audit_queue.record(&state.db, state.clock.now(), entry).await {
            tracing::error!(error = %format!("{e:#}"), "could not write an audit record");
        }
    }
}

/// 429 while the first sync of one of these authorizations runs; 422 when it failed (`sync::read_gate`: a
/// re-sync never holds reads back). An application-wide scope is never gated.
pub(super) async fn gate_on_sync(state: &AppState, scope: &Scope) -> Result<(), FhirError> {
    use crate::server::services::sync::{read_gate, ReadGate};
    let Scope::Authorizations(ids) = scope else { return Ok(()) };
    for id in ids {
        match read_gate(&state.db, id).await? {
            ReadGate::Open => {}
            ReadGate::FirstSyncRunning => return Err(FhirError::sync_running(RETRY_AFTER_SECS)),
            ReadGate::FirstSyncFailed(code) => {
                return Err(FhirError::sync_failed(code.map(|c| c.as_str()).unwrap_or("SYNC_FAILED")))
            }
        }
    }
    Ok(())
}

/// 404 `not-supported` unless the API serves `rtype`.
pub(super) fn check_type(rtype: &str) -> Result<(), FhirError> {
    if search::RESOURCE_TYPES.contains(&rtype) {
        Ok(())
    } else {
        Err(FhirError::unsupported_type(rtype))
    }
}

/// 400 unless `id` is a FHIR R4 id.
pub(super) fn check_id(id: &str) -> Result<(), FhirError> {
    if reference::is_valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::bad_param("the id is not a valid FHIR id"))
    }
}

/// The path's parameters, or 400 `invalid` when they do not decode (e.g. percent-encoded bytes that are not
/// UTF-8), in the API's error form instead of axum's plain-text rejection.
pub(super) fn path_params<T>(p: Result<Path<T>, PathRejection>) -> Result<T, FhirError> {
    p.map(|Path(t)| t).map_err(|_| FhirError::bad_param("the path is not valid UTF-8 after percent-decoding"))
}

/// `endpoint=<endpoint id>`: the endpoint (the `endpoint.id` of `/link/exchange` and `/link/users`) a patient
/// id is qualified with; 400 unless it has the shape of an id (endpoint ids are UUIDs, which are FHIR ids).
pub(super) fn parse_endpoint(v: &str) -> Result<String, FhirError> {
    if reference::is_valid_id(v) {
        Ok(v.to_string())
    } else {
        Err(FhirError::bad_param("endpoint must be an endpoint id"))
    }
}

/// A comma-separated list parameter's values: at most [`MAX_LIST_VALUES`], otherwise 400 `invalid`.
pub(super) fn split_list<'a>(name: &str, v: &'a str) -> Result<Vec<&'a str>, FhirError> {
    let list: Vec<&str> = v.split(',').collect();
    if list.len() > MAX_LIST_VALUES {
        return Err(FhirError::bad_param(format!("{name} lists at most {MAX_LIST_VALUES} values")));
    }
    Ok(list)
}

/// `_count`: an integer from 0 to `max`; otherwise 400 `invalid`.
pub(super) fn parse_count(v: &str, max: usize) -> Result<usize, FhirError> {
    bounded(v, max).ok_or_else(|| FhirError::bad_param(format!("_count must be an integer from 0 to {max}")))
}

/// `_offset`: an integer from 0 to [`MAX_OFFSET`]; otherwise 400 `invalid`.
pub(super) fn parse_offset(v: &str) -> Result<usize, FhirError> {
    if !is_decimal(v) {
        return Err(FhirError::bad_param("_offset must be a non-negative integer"));
    }
    bounded(v, MAX_OFFSET).ok_or_else(|| FhirError::bad_param(format!("_offset must be at most {MAX_OFFSET}")))
}

/// Whether `v` is a decimal integer: digits only, no sign or space.
fn is_decimal(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

/// `v` as a decimal integer from 0 to `max`.
fn bounded(v: &str, max: usize) -> Option<usize> {
    Some(v).filter(|v| is_decimal(v)).and_then(|v| v.parse::<usize>().ok()).filter(|n| *n <= max)
}
