//! The connections page's access: a publishable key and an `externalId` are both known to the browser, so
//! together they would let anyone list and remove another user's links. The page therefore opens only with a
//! short-lived grant minted by the integrator's *backend* with its secret key (`POST /link/connections-url`):
//! a 256-bit token stored only as a hash, bound to one app, mode and user, valid for
//! [`CONNECTIONS_GRANT_TTL_SECS`] (reusable within it so the page can be reloaded and its forms posted), and
//! never logged (request spans omit the query string; pages are sent with `Referrer-Policy: no-referrer`).

use crate::{
    domain::{Mode, StateReason},
    server::{
        platform::{crypto, db::Db},
        services::lifecycle::transitions::expunge_authorization,
        state::AppState,
        store::{
            authorizations::{self, Authorization},
            endpoints,
            connections_grants::{self, ConnectionsGrant},
            resources,
        },
    },
};

/// Lifetime of a connections-page grant, in seconds (15 min).
pub const CONNECTIONS_GRANT_TTL_SECS: i64 = 900;

/// Mints a connections-page URL for one user (`{public_url}/link/connections?token=ct_…`), valid
/// [`CONNECTIONS_GRANT_TTL_SECS`]. Returns the URL and its expiry (Unix s).
///
/// # Security
/// The URL is a bearer credential for that user's links: hand it only to that signed-in user, never log it.
///
/// # Errors
/// Database errors.
pub async fn mint_connections_url(
    state: &AppState,
    app_id: &str,
    mode: Mode,
    external_id: &str,
) -> anyhow::Result<(String, i64)> {
    let now = state.clock.now();
    let token = crypto::random_token("ct_");
    let grant = ConnectionsGrant {
        app_id: app_id.to_string(),
        mode,
        external_id: external_id.to_string(),
        expires_at: now + CONNECTIONS_GRANT_TTL_SECS,
    };
    connections_grants::insert(&state.db, &token, &grant, now).await?;
    Ok((format!("{}/link/connections?token={token}", state.public_url), grant.expires_at))
}

/// The grant behind a connections-page token, if it exists and has not expired.
///
/// # Errors
/// Database errors.
pub async fn connections_grant(db: &Db, now: i64, token: &str) -> anyhow::Result<Option<ConnectionsGrant>> {
    if !token.starts_with("ct_") || token.len() > 200 {
        return Ok(None);
    }
    connections_grants::find(db, token, now).await
}

/// Revokes (and expunges at once) one of the grant's user's authorizations, as the patient. Returns false when
/// the authorization does not belong to that user, app and mode (nothing done).
///
/// # Errors
/// Database errors.
pub async fn revoke_as_patient(state: &AppState, grant: &ConnectionsGrant, authorization_id: &str) -> anyhow::Result<bool> {
    if !authorizations::is_owned_by(&state.db, authorization_id, &grant.app_id, grant.mode, &grant.external_id).await? {
        return Ok(false);
    }
    expunge_authorization(state, authorization_id, StateReason::RevokedByPatient).await?;
    Ok(true)
}

/// What the connections page shows of an authorization's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The plan's name (`None` when the endpoint is gone from the directory).
    pub name: Option<String>,
    /// The plan's logo.
    pub logo_url: Option<String>,
}

/// One connection as the patient sees it on the connections page.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The authorization.
    pub authorization: Authorization,
    /// Its plan, from the directory.
    pub endpoint: Plan,
    /// The kinds of records shared: the types stored, else the types asked for, else the endpoint's.
    pub shared_types: Vec<String>,
    /// When its data stops being readable (Unix s), when set.
    pub readable_until: Option<i64>,
}

/// The grant's user's connections that are readable at `now`, newest first.
///
/// # Errors
/// Database errors.
pub async fn list(state: &AppState, grant: &ConnectionsGrant, now: i64) -> anyhow::Result<Vec<Connection>> {
    let open = authorizations::list_open_for_user(&state.db, &grant.app_id, grant.mode, &grant.external_id).await?;
    let mut out = Vec::new();
    for authorization in open.into_iter().filter(|a| a.is_live(now)) {
        let endpoint = endpoints::get(&state.db, &authorization.endpoint_id).await?;
        let mut shared_types = resources::stored_types(&state.db, &authorization.id).await?;
        if shared_types.is_empty() {
            shared_types = authorizations::resource_types(&state.db, &authorization.id).await?;
        }
        if shared_types.is_empty() {
            shared_types = endpoint.as_ref().map(|e| e.resource_types.clone()).unwrap_or_default();
        }
        let readable_until = authorization.data_ends_at();
        let plan = Plan { name: endpoint.as_ref().map(|e| e.name.clone()), logo_url: endpoint.and_then(|e| e.logo_url) };
        out.push(Connection { authorization, endpoint: plan, shared_types, readable_until });
    }
    Ok(out)
}

/// The name of the plan of one of the grant's user's authorizations (for the removal message).
///
/// # Errors
/// Database errors.
pub async fn plan_name(state: &AppState, grant: &ConnectionsGrant, authorization_id: &str) -> anyhow::Result<Option<String>> {
    if !authorizations::is_owned_by(&state.db, authorization_id, &grant.app_id, grant.mode, &grant.external_id).await? {
        return Ok(None);
    }
    let Some(a) = authorizations::get(&state.db, authorization_id).await? else { return Ok(None) };
    Ok(endpoints::get(&state.db, &a.endpoint_id).await?.map(|e| e.name))
}
