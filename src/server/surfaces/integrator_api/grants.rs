//! The token responses of the API: the `endpoint` object and the `access_token` (+ `refresh_token`) grant
//! issued for an authorization.

use serde_json::{json, Value};

use crate::{
    domain::Usage,
    server::{
        state::AppState,
        store::{
            authorizations::{self, Authorization},
            endpoints::{self, Endpoint},
            sync_jobs::{self, JobStatus},
            tokens::{self, TokenKind, ACCESS_TOKEN_TTL_SECS},
        },
        surfaces::integrator_api::error::ApiResult,
    },
};


/// The `endpoint` object of exchange/introspect/users: `{id, name, label[], refreshable, resources[]}`.
pub fn endpoint_json(endpoint: Option<&Endpoint>, authorization: &Authorization, resource_types: &[String]) -> Value {
    match endpoint {
        Some(e) => {
            let resources: Vec<String> =
                if resource_types.is_empty() { e.resource_types.clone() } else { resource_types.to_vec() };
            json!({
                "id": e.id,
                "name": e.name,
                "label": e.aliases,
                "refreshable": e.refreshable,
                "resources": resources,
            })
        }
        None => json!({"id": authorization.endpoint_id, "name": null, "label": [], "refreshable": false,
                       "resources": resource_types}),
    }
}

/// The `sync` object of users (and introspect): the latest sync job's outcome (schema `SyncStatus` in the
/// OpenAPI document). `delayed_until` is set only while the job waits for the payer (`status: delayed`).
pub fn sync_json(s: &JobStatus) -> Value {
    json!({
        "status": s.status,
        "progress": s.progress,
        "skipped": s.skipped,
        "incomplete": s.incomplete,
        "exit_code": s.exit_code.map(|c| c.as_str()),
        "warnings": s.warnings,
        "stats": s.stats,
        "changes": s.changes,
        "incremental": s.incremental,
        "delayed_until": s.delayed_until,
        "finished_at": s.finished_at,
    })
}

/// What an integrator needs to know about an authorization's lifetime, on introspect and users (schema
/// the lifetime fields of `Introspection` and `UserAuthorization`): `state`; `expires_at`, when its data is expunged (ONE_TIME: 24 h after the link; a
/// `NEEDS_REAUTH` one: the end of its re-consent window), `null` when none is set; `refresh_expires_at`, when the
/// payer's long-term grant ends (from the payer's `refresh_expires_in`), `null` when the payer did not say;
/// `last_synced_at`, when its latest sync with data finished; `sync`, the latest sync ([`sync_json`]). Times are
/// Unix seconds.
///
/// # Errors
/// Database errors.
pub async fn lifetime_json(state: &AppState, a: &Authorization) -> anyhow::Result<serde_json::Map<String, Value>> {
    let sync = sync_jobs::latest(&state.db, &a.id).await?;
    let last_synced_at = sync_jobs::last_succeeded_at(&state.db, &a.id).await?;
    let v = json!({
        "state": a.state,
        "expires_at": a.data_ends_at(),
        "refresh_expires_at": a.payer_refresh_expires_at,
        "last_synced_at": last_synced_at,
        "sync": sync.as_ref().map(sync_json),
    });
    Ok(v.as_object().cloned().unwrap_or_default())
}

/// `Patient/{id}` of the authorization's payer patient, or `null` until the sync found it.
pub fn patient_ref(a: &Authorization) -> Value {
    a.patient_id.as_ref().map(|p| Value::String(format!("Patient/{p}"))).unwrap_or(Value::Null)
}

/// Issues an access token (and a refresh token for MULTIPLE on a refreshable endpoint) for `authorization`,
/// and builds the exchange / token response.
pub async fn grant_response(state: &AppState, authorization: &Authorization, family: Option<&str>) -> ApiResult<Value> {
    let now = state.clock.now();
    let endpoint = endpoints::get(&state.db, &authorization.endpoint_id).await?;
    let types = authorizations::resource_types(&state.db, &authorization.id).await?;
    let refreshable = endpoint.as_ref().is_some_and(|e| e.refreshable) && authorization.usage == Usage::Multiple;
    // Never outlive the data: a ONE_TIME grant (or any scheduled expunge) ends the token with it.
    let mut ttl = ACCESS_TOKEN_TTL_SECS;
    if let Some(end) = authorization.data_ends_at() {
        ttl = ttl.min(end - now);
    }
    let ttl = ttl.max(1);
    let access = tokens::issue(
        &state.db.pool,
        now,
        TokenKind::Access,
        &authorization.app_id,
        Some(&authorization.id),
        Some(ttl),
        json!({}),
    )
    .await?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "patient": patient_ref(authorization),
        "endpoint": endpoint_json(endpoint.as_ref(), authorization, &types),
    });
    if refreshable {
        // The refresh token lives as long as the payer's grant: we cannot refresh past it.
        let ttl = authorization.payer_refresh_expires_at.map(|e| (e - now).max(1));
        let family = family.map(str::to_owned).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let refresh = tokens::issue(
            &state.db.pool,
            now,
            TokenKind::Refresh,
            &authorization.app_id,
            Some(&authorization.id),
            ttl,
            json!({"family": family}),
        )
        .await?;
        body["refresh_token"] = Value::String(refresh);
        body["refresh_expires_in"] = match ttl {
            Some(t) => json!(t),
            None => Value::Null,
        };
    }
    Ok(body)
}

