//! The plan directory: what patients pick from and operators maintain.
//!
//! - [`import`]: our JSON and SMART User-access Brands bundles, idempotent, with a plan that a dry run prints;
//! - [`check`]: the setup assistant probing an endpoint the way a link would;
//! - [`health`]: health from real link attempts, announced by `endpoint.status_changed`;
//! - here: the choices a search offers ([`search`]: brands first, each with the endpoint that serves it, then
//!   endpoints no brand points to), and the operator's changes ([`set`], [`delete`]).
//!
//! A new link may only use a *linkable* endpoint (`store::endpoints::linkable_sql`: not disabled, a client id
//! set); existing authorizations keep working whatever the directory says.

pub mod check;
pub mod health;
pub mod import;

use serde::Serialize;
use serde_json::json;

use crate::{
    domain::{Mode, StateReason},
    server::{
        services::lifecycle::transitions,
        state::AppState,
        store::{
            audit::{self, AuditEntry},
            authorizations,
            brands::{self, Brand},
            endpoint_attempts, endpoint_health,
            endpoints::{self, Endpoint},
        },
    },
};

/// One thing a patient can pick: an endpoint, under the brand they searched for when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// The endpoint a link to this choice uses.
    pub endpoint: Endpoint,
    /// The brand shown, when the endpoint has brands.
    pub brand: Option<Brand>,
}

impl Choice {
    /// The name shown to the patient: the brand's, else the endpoint's.
    pub fn name(&self) -> &str {
        self.brand.as_ref().map_or(&self.endpoint.name, |b| &b.name)
    }

    /// The logo shown: the brand's, else the endpoint's.
    pub fn logo_url(&self) -> Option<&str> {
        self.brand.as_ref().and_then(|b| b.logo_url.as_deref()).or(self.endpoint.logo_url.as_deref())
    }
}

/// The choices of `mode` matching `query` by name or alias (of a brand, or of an endpoint: an endpoint with
/// brands is offered under each of them), linkable endpoints only, by name, at most `limit`.
///
/// # Errors
/// Database errors.
pub async fn search(state: &AppState, mode: Mode, query: &str, limit: i64) -> anyhow::Result<Vec<Choice>> {
    let db = &state.db;
    let mut out: Vec<Choice> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |out: &mut Vec<Choice>, endpoint: Endpoint, brand: Option<Brand>| {
        let key = (brand.as_ref().map(|b| b.id.clone()), endpoint.id.clone());
        if seen.insert(key) {
            out.push(Choice { endpoint, brand });
        }
    };
    for brand in brands::search(db, mode, query, limit).await? {
        for id in &brand.endpoint_ids {
            if let Some(e) = endpoints::get_linkable(db, id).await? {
                push(&mut out, e, Some(brand.clone()));
            }
        }
    }
    for e in endpoints::search(db, mode, query, limit).await? {
        let of = brands::of_endpoint(db, &e.id).await?;
        if of.is_empty() {
            push(&mut out, e, None);
        } else {
            for b in of {
                push(&mut out, e.clone(), Some(b));
            }
        }
    }
    out.sort_by(|a, b| a.name().to_lowercase().cmp(&b.name().to_lowercase()).then(a.endpoint.id.cmp(&b.endpoint.id)));
    out.truncate(limit.clamp(1, 200) as usize);
    Ok(out)
}

/// A choice as the picker shows it: with its endpoint's current [`Health`](health::Health) and the sign-in
/// service the plan uses, when the directory knows it.
#[derive(Debug, Clone)]
pub struct PlanChoice {
    /// The endpoint and the brand it is shown under.
    pub choice: Choice,
    /// The endpoint's health now.
    pub health: health::Health,
    /// The identity service the plan's sign-in uses (e.g. "Login.gov"), when known.
    pub identity_provider: Option<String>,
}

/// [`search`]'s choices, each with its endpoint's health and sign-in service (read once per endpoint).
///
/// # Errors
/// Database errors.
pub async fn plan_choices(state: &AppState, mode: Mode, query: &str, limit: i64) -> anyhow::Result<Vec<PlanChoice>> {
    let mut known: std::collections::HashMap<String, (health::Health, Option<String>)> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for choice in search(state, mode, query, limit).await? {
        let id = choice.endpoint.id.clone();
        let (health, identity_provider) = match known.get(&id) {
            Some(k) => k.clone(),
            None => {
                let k = (health::current(state, &id).await?, endpoints::profile(&state.db, &id).await?.and_then(|p| p.identity_provider));
                known.insert(id, k.clone());
                k
            }
        };
        out.push(PlanChoice { choice, health, identity_provider });
    }
    Ok(out)
}

/// The choice of linkable endpoint `id` of `mode` under brand `brand_id` (ignored unless it is a brand of that
/// endpoint), for its pre-check screen; `None` for an endpoint that is unknown, of another mode or not linkable.
///
/// # Errors
/// Database errors.
pub async fn precheck_choice(state: &AppState, mode: Mode, id: &str, brand_id: Option<&str>) -> anyhow::Result<Option<PlanChoice>> {
    let Some(endpoint) = endpoints::get_linkable(&state.db, id).await?.filter(|e| e.mode == mode) else { return Ok(None) };
    let brand = match brand_id {
        Some(b) => brands::get(&state.db, b).await?.filter(|b| b.mode == mode && b.endpoint_ids.contains(&endpoint.id)),
        None => None,
    };
    let identity_provider = endpoints::profile(&state.db, &endpoint.id).await?.and_then(|p| p.identity_provider);
    let health = health::current(state, &endpoint.id).await?;
    Ok(Some(PlanChoice { choice: Choice { endpoint, brand }, health, identity_provider }))
}

/// The fields `endpoints set` can change; `None` leaves a field as it is, `Some("")` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// Our OAuth `client_id` at the payer.
    pub client_id: Option<String>,
    /// The variable holding the client secret (`""`: a public client).
    pub client_secret_ref: Option<String>,
    /// Extra scopes (`""`: none).
    pub scopes: Option<String>,
    /// The authorize URL override (`""`: discover it).
    pub authorize_url: Option<String>,
    /// The token URL override (`""`: discover it).
    pub token_url: Option<String>,
    /// Whether the payer issues refresh tokens.
    pub refreshable: Option<bool>,
    /// The longest a patient's grant is kept, seconds (`Some(0)`: no cap).
    pub max_grant_secs: Option<i64>,
    /// The sign-in service the plan uses (`""`: unknown).
    pub identity_provider: Option<String>,
}

fn optional(v: String) -> Option<String> {
    let v = v.trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// Applies `change` to endpoint `id` (checked as an import entry is), records it in the audit trail, and
/// returns the endpoint.
///
/// # Errors
/// An unknown id, an invalid result (the entry is left as it was), database errors.
pub async fn set(state: &AppState, id: &str, change: EndpointChange) -> anyhow::Result<Endpoint> {
    let db = &state.db;
    let now = state.clock.now();
    let mut e = endpoints::get(db, id).await?.ok_or_else(|| anyhow::anyhow!("no endpoint {id}"))?;
    let profile = endpoints::profile(db, id).await?.unwrap_or_default();
    let mut fields = Vec::new();
    if let Some(v) = change.client_id {
        e.client_id = v.trim().to_string();
        fields.push("client_id");
    }
    if let Some(v) = change.client_secret_ref {
        e.client_secret_ref = optional(v);
        fields.push("client_secret_ref");
    }
    if let Some(v) = change.scopes {
        e.scopes = optional(v);
        fields.push("scopes");
    }
    if let Some(v) = change.authorize_url {
        e.authorize_url = optional(v);
        fields.push("authorize_url");
    }
    if let Some(v) = change.token_url {
        e.token_url = optional(v);
        fields.push("token_url");
    }
    if let Some(v) = change.refreshable {
        e.refreshable = v;
        fields.push("refreshable");
    }
    let identity_provider = match change.identity_provider {
        Some(v) => {
            fields.push("identity_provider");
            optional(v)
        }
        None => profile.identity_provider,
    };
    let max_grant_secs = match change.max_grant_secs {
        Some(v) => {
            anyhow::ensure!(v >= 0, "--max-grant-secs must be 0 (no cap) or more");
            fields.push("max_grant_secs");
            (v > 0).then_some(v)
        }
        None => profile.max_grant_secs,
    };
    anyhow::ensure!(!fields.is_empty(), "nothing to set: give at least one option (see link-sdk endpoints set --help)");
    e.validate()?;
    endpoints::upsert(db, now, &e).await?;
    endpoints::set_profile(db, now, id, identity_provider.as_deref(), max_grant_secs).await?;
    audit::record(
        &db.pool,
        now,
        AuditEntry {
            actor: "operator",
            action: "endpoint.updated",
            detail: Some(json!({"endpoint_id": id, "fields": fields})),
            ..Default::default()
        },
    )
    .await?;
    Ok(e)
}

/// Disables or enables an endpoint for new links (audited). Returns false when it already was so.
///
/// # Errors
/// An unknown id, database errors.
pub async fn set_disabled(state: &AppState, id: &str, disabled: bool) -> anyhow::Result<bool> {
    let now = state.clock.now();
    anyhow::ensure!(endpoints::get(&state.db, id).await?.is_some(), "no endpoint {id}");
    let changed = endpoints::set_disabled(&state.db, now, id, disabled).await?;
    if changed {
        let action = if disabled { "endpoint.disabled" } else { "endpoint.enabled" };
        let entry = AuditEntry { actor: "operator", action, detail: Some(json!({"endpoint_id": id})), ..Default::default() };
        audit::record(&state.db.pool, now, entry).await?;
    }
    Ok(changed)
}

/// What [`delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted, after revoking this many authorizations.
    Done(usize),
    /// Refused: this many live authorizations use it (delete with force to revoke them first).
    InUse(i64),
}

/// Deletes an endpoint with its brand links, attempts and health. Refuses while live authorizations use it,
/// unless `force`, which first revokes (and expunges) every authorization of the endpoint not expunged yet,
/// each with its `authorization_revoked` webhook (reason `revoked_by_operator`).
///
/// # Errors
/// An unknown id, database errors.
pub async fn delete(state: &AppState, id: &str, force: bool) -> anyhow::Result<Deleted> {
    let db = &state.db;
    let now = state.clock.now();
    anyhow::ensure!(endpoints::get(db, id).await?.is_some(), "no endpoint {id}");
    let live = authorizations::live_count_for_endpoint(db, id, now).await?;
    if live > 0 && !force {
        return Ok(Deleted::InUse(live));
    }
    let mut revoked = 0;
    for a in authorizations::unexpunged_ids_for_endpoint(db, id).await? {
        transitions::expunge_authorization(state, &a, StateReason::RevokedByOperator).await?;
        revoked += 1;
    }
    let mut tx = db.begin_write().await?;
    brands::unlink_endpoint(&mut tx, id).await?;
    endpoint_attempts::delete_for_endpoint(&mut tx, id).await?;
    endpoint_health::delete(&mut tx, id).await?;
    endpoints::delete(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        now,
        AuditEntry {
            actor: "operator",
            action: "endpoint.deleted",
            detail: Some(json!({"endpoint_id": id, "authorizations_revoked": revoked})),
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Deleted::Done(revoked))
}
