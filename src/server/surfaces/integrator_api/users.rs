//! `POST /link/revoke`, `GET /link/users/{externalId}` and `POST /link/connections-url`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::HeaderMap,
};
use serde_json::json;

use crate::{
    domain::StateReason,
    server::{
        platform::crypto,
        services::{
            access::{authenticate_bearer, bearer_token, Principal},
            lifecycle::{
                connections::{mint_connections_url, CONNECTIONS_GRANT_TTL_SECS},
                transitions::expunge_authorization,
            },
        },
        state::AppState,
        store::{apps, authorizations, endpoints},
        surfaces::integrator_api::{
            clients::{app_by_secret, app_by_secret_header, audit_event, parse_params, required},
            error::{no_store, ApiResult, OAuthError},
            grants::{endpoint_json, lifetime_json, patient_ref},
        },
    },
};

// POST /link/revoke
// ---------------------------------------------------------------------------------------------------------

/// `POST /link/revoke` (Bearer patient access token) `{secret_key}` → `{count}`: the token's authorization and that
/// same user's (`externalId`) other links to the same payer patient at the same endpoint (same app and mode) are
/// revoked, their tokens revoked and their data expunged. Another user of the app is never affected, even one who
/// linked the same payer patient.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let principal = authenticate_bearer(&state, &headers).await?;
    let params = parse_params(&headers, &body)?;
    let secret_key = required(&params, "secret_key")?;
    let (app, _) = app_by_secret(&state, secret_key).await?;
    let Principal::Patient { authorization, .. } = principal else {
        return Err(OAuthError::insufficient_scope("revoke takes a patient access token, not an application token"));
    };
    if !crypto::ct_eq(authorization.app_id.as_bytes(), app.id.as_bytes()) {
        return Err(OAuthError::invalid_client("the access token was not issued to this application"));
    }
    let ids: Vec<String> = match &authorization.patient_id {
        Some(pid) => {
            authorizations::unrevoked_ids_for_patient(
                &state.db,
                &app.id,
                authorization.mode,
                &authorization.external_id,
                &authorization.endpoint_id,
                pid,
            )
            .await?
        }
        None => vec![authorization.id.clone()],
    };
    for id in &ids {
        // Revokes our tokens, deletes the resources, destroys the payer tokens, audits and sends the
        // `authorization_revoked` webhook.
        expunge_authorization(&state, id, StateReason::RevokedByApp).await?;
        audit_event(&state, &headers, "token.revoked", &app.id, Some(id), None).await;
    }
    Ok(no_store(json!({"count": ids.len()})))
}

// ---------------------------------------------------------------------------------------------------------
// GET /link/users/{externalId}
// ---------------------------------------------------------------------------------------------------------

/// `GET /link/users/{externalId}` with the secret key (`Authorization: Bearer sk_…` or Basic `pk:sk`) →
/// `{externalId, authorizations: [{id, endpoint, usage, usage_requested, patient, created_at, state, expires_at,
/// refresh_expires_at, last_synced_at, sync}]}` (same mode as the key; see `grants::lifetime_json`).
pub async fn users(State(state): State<AppState>, headers: HeaderMap, Path(external_id): Path<String>) -> ApiResult {
    let (app, mode) = app_by_secret_header(&state, &headers).await?;
    let list = authorizations::list_for_user(&state.db, &app.id, &external_id).await?;
    let mut out = Vec::new();
    for a in list.into_iter().filter(|a| a.mode == mode) {
        let endpoint = endpoints::get(&state.db, &a.endpoint_id).await?;
        let types = authorizations::resource_types(&state.db, &a.id).await?;
        let mut item = json!({
            "id": a.id,
            "endpoint": endpoint_json(endpoint.as_ref(), &a, &types),
            "usage": a.usage.as_str(),
            "usage_requested": a.usage_requested.as_str(),
            "patient": patient_ref(&a),
            "created_at": a.created_at,
        });
        if let Some(o) = item.as_object_mut() {
            o.extend(lifetime_json(&state, &a).await?);
        }
        out.push(item);
    }
    Ok(no_store(json!({"externalId": external_id, "authorizations": out})))
}


// ---------------------------------------------------------------------------------------------------------
// POST /link/connections-url
// ---------------------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct ConnectionsUrlRequest {
    #[serde(alias = "external_id", rename = "externalId")]
    external_id: String,
    /// The secret key, when not sent as `Authorization: Bearer` (as in the other `/link/*` calls).
    #[serde(default)]
    secret_key: Option<String>,
}

/// `POST /link/connections-url`: a signed, short-lived URL of the connections page for one user (see
/// `services::lifecycle::mint_connections_url`). The secret key comes as `Authorization: Bearer sk_…` or as
/// `secret_key` in the body. Body `{"externalId": "…"}`; answer `{"url", "expires_in", "expires_at"}`.
pub async fn connections_url(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let parsed = serde_json::from_slice::<ConnectionsUrlRequest>(&body);
    let key = bearer_token(&headers)
        .map(str::to_string)
        .or_else(|| parsed.as_ref().ok().and_then(|r| r.secret_key.clone()))
        .filter(|s| s.starts_with("sk_"));
    let Some(sk) = key else { return Err(OAuthError::invalid_token("A valid secret key (sk_…) is required.")) };
    let (app, mode) = apps::by_secret_key(&state.db, state.clock.now(), &sk)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("A valid secret key (sk_…) is required."))?;
    let req = parsed.map_err(|_| OAuthError::invalid_request("Body must be JSON {\"externalId\": \"…\"}."))?;
    let external_id = req.external_id.trim();
    if external_id.is_empty() || external_id.len() > 256 {
        return Err(OAuthError::invalid_request("externalId must be 1 to 256 characters."));
    }
    let (url, expires_at) = mint_connections_url(&state, &app.id, mode, external_id).await?;
    Ok(no_store(json!({"url": url, "expires_in": CONNECTIONS_GRANT_TTL_SECS, "expires_at": expires_at})))
}

