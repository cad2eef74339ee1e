//! `GET /link/endpoints`: the plans a key's patients can pick (the picker's own choices: brands over their
//! endpoint, linkable endpoints of the key's mode only), each with its health from real link attempts.
//!
//! A publishable key (public, `pk_…`) or a secret key (`sk_…`) authenticates, as `Authorization: Bearer …`;
//! a publishable key may also come as `publishableKey` in the query. Neither reveals anything of a patient:
//! the figures count attempts of every app on this server.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    http::HeaderMap,
};
use serde_json::{json, Value};

use crate::{
    domain::Mode,
    server::{
        services::{
            access::bearer_token,
            directory::{self, health::Health},
        },
        state::AppState,
        store::apps,
        surfaces::integrator_api::{
            clients::app_by_secret,
            error::{no_store, ApiResult, OAuthError},
        },
    },
};

/// Most choices one request returns (and the default).
pub const MAX_ENDPOINTS: i64 = 200;

/// The longest `name` searched for (characters; longer is cut).
const MAX_NAME: usize = 100;

/// The key's mode: a publishable key (Bearer or `publishableKey`) or a secret key (Bearer). 401 `invalid_client`
/// for an unknown key or none.
async fn mode_of_key(state: &AppState, headers: &HeaderMap, query: &HashMap<String, String>) -> ApiResult<Mode> {
    let key = bearer_token(headers).or(query.get("publishableKey").map(String::as_str));
    match key {
        Some(k) if k.starts_with("pk_") => apps::by_publishable_key(&state.db, k)
            .await?
            .map(|(_, mode)| mode)
            .ok_or_else(|| OAuthError::invalid_client("unknown publishable key")),
        Some(k) if k.starts_with("sk_") => Ok(app_by_secret(state, k).await?.1),
        Some(_) => Err(OAuthError::invalid_client("the key is neither a publishable (pk_…) nor a secret (sk_…) key")),
        None => Err(OAuthError::invalid_client("a publishable or secret key is required (Authorization: Bearer …)")),
    }
}

/// The health figures served to integrators.
pub fn health_json(h: &Health) -> Value {
    json!({
        "status": h.status,
        "attempts": h.attempts,
        "success_rate": h.success_rate,
        "median_connect_secs": h.median_connect_secs,
        "last_error_codes": h.last_error_codes,
        "checked_at": h.checked_at,
    })
}

/// `GET /link/endpoints?name=&limit=` → `{"endpoints": [{id, name, aliases, logo_url, brand, refreshable,
/// resources, health}]}`, by name. `name` matches names and aliases of brands and endpoints (empty: all);
/// `limit` 1–[`MAX_ENDPOINTS`]. Errors: 401 `invalid_client` (no or unknown key), 400 `invalid_request` (a bad
/// `limit`).
pub async fn endpoints(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let mode = mode_of_key(&state, &headers, &query).await?;
    let limit = match query.get("limit") {
        None => MAX_ENDPOINTS,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_ENDPOINTS).contains(n))
            .ok_or_else(|| OAuthError::invalid_request(format!("limit must be a whole number from 1 to {MAX_ENDPOINTS}")))?,
    };
    let name: String = query.get("name").map(|n| n.trim().chars().take(MAX_NAME).collect()).unwrap_or_default();
    let mut healths: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::new();
    for c in directory::search(&state, mode, &name, limit).await? {
        if !healths.contains_key(&c.endpoint.id) {
            let h = directory::health::current(&state, &c.endpoint.id).await?;
            healths.insert(c.endpoint.id.clone(), health_json(&h));
        }
        let brand = c.brand.as_ref().map(|b| {
            json!({"id": b.id, "name": b.name, "aliases": b.aliases, "logo_url": b.logo_url, "website": b.website,
                   "portal_name": b.portal_name, "portal_url": b.portal_url, "plan_types": b.plan_types})
        });
        out.push(json!({
            "id": c.endpoint.id,
            "name": c.name(),
            "aliases": c.brand.as_ref().map_or(&c.endpoint.aliases, |b| &b.aliases),
            "logo_url": c.logo_url(),
            "brand": brand,
            "refreshable": c.endpoint.refreshable,
            "resources": c.endpoint.resource_types,
            "health": healths[&c.endpoint.id],
        }));
    }
    Ok(no_store(json!({"endpoints": out})))
}
