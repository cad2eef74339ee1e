//! `GET /link/sessions/{id}` and `GET /link/sessions`: the steps of Link sessions, for the integrator's backend
//! (secret key: HTTP Basic `publishableKey:secretKey` or `Authorization: Bearer sk_…`). A session is named by its
//! public id (`lsn_…`, also in the `link.events` webhook); only the key's own app and mode are visible, and
//! another app's session is a 404 like an unknown one. Nothing here is health data.

use axum::{
    extract::{Path, RawQuery, State},
    http::HeaderMap,
};
use serde_json::{json, Value};

use crate::server::{
    services::insights::{events_json, session_json},
    state::AppState,
    store::{
        link_events,
        link_sessions::{self, LinkSession, SessionFilter},
    },
    surfaces::integrator_api::{
        clients::app_by_secret_header,
        error::{no_store, ApiResult, OAuthError},
    },
};

/// Sessions per page when `limit` is not given.
const DEFAULT_LIMIT: i64 = 20;
/// Most sessions per page.
const MAX_LIMIT: i64 = 100;

async fn with_events(state: &AppState, s: &LinkSession) -> ApiResult<Value> {
    let events = match &s.public_id {
        Some(id) => link_events::of_session(&state.db.pool, id).await?,
        None => Vec::new(),
    };
    let mut v = session_json(s, state.clock.now());
    v["events"] = events_json(&events);
    Ok(v)
}

/// `GET /link/sessions/{id}` → the session (`{id, externalId, mode, usage, status, step, endpoint_id, exit_code,
/// created_at, expires_at}`) with its `events` (`[{name, step, at, endpoint_id, exit_code, metadata}]`, oldest
/// first). 404 `not_found` for an unknown id or another app's session.
pub async fn session(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> ApiResult {
    let (app, mode) = app_by_secret_header(&state, &headers).await?;
    let s = link_sessions::get_public(&state.db, &app.id, mode, &id)
        .await?
        .ok_or_else(|| OAuthError::not_found("no Link session with this id for this key"))?;
    Ok(no_store(with_events(&state, &s).await?))
}

/// A query parameter as an integer, or `invalid_request`.
fn int_param(v: Option<&String>, name: &str) -> ApiResult<Option<i64>> {
    v.map(|t| t.parse::<i64>().map_err(|_| OAuthError::invalid_request(format!("{name} must be an integer (Unix seconds)"))))
        .transpose()
}

/// The keyset cursor `{created_at}.{public_id}` of a page's last session.
fn cursor_of(s: &LinkSession) -> Option<String> {
    s.public_id.as_ref().map(|p| format!("{}.{p}", s.created_at))
}

fn parse_cursor(c: &str) -> ApiResult<(i64, String)> {
    c.split_once('.')
        .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_string())))
        .filter(|(_, id)| id.starts_with("lsn_") && id.len() <= 64)
        .ok_or_else(|| OAuthError::invalid_request("cursor is not one this API returned"))
}

/// `GET /link/sessions?externalId&since&until&limit&cursor` → `{sessions: [...], next_cursor}`: the key's
/// sessions (of one user with `externalId`) created in `[since, until)` (Unix seconds), newest first, each with
/// its events; `limit` 1..=100 (default 20); pass `next_cursor` back as `cursor` for the next page (`null` on the
/// last).
pub async fn list(State(state): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> ApiResult {
    let (app, mode) = app_by_secret_header(&state, &headers).await?;
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if params.insert(k.to_string(), v.to_string()).is_some() {
            return Err(OAuthError::invalid_request(format!("parameter {k} is repeated")));
        }
    }
    let limit = int_param(params.get("limit"), "limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(OAuthError::invalid_request(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let external_id = params.get("externalId").map(String::as_str).filter(|e| !e.is_empty());
    let filter = SessionFilter {
        external_id,
        since: int_param(params.get("since"), "since")?.unwrap_or(0),
        until: int_param(params.get("until"), "until")?.unwrap_or(i64::MAX),
        before: params.get("cursor").map(|c| parse_cursor(c)).transpose()?,
        // One more than asked: whether there is a next page.
        limit: limit + 1,
    };
    let mut found = link_sessions::list_public(&state.db, &app.id, mode, &filter).await?;
    let more = found.len() as i64 > limit;
    found.truncate(limit as usize);
    let next_cursor = if more { found.last().and_then(cursor_of) } else { None };
    let mut sessions = Vec::with_capacity(found.len());
    for s in &found {
        sessions.push(with_events(&state, s).await?);
    }
    Ok(no_store(json!({"sessions": sessions, "next_cursor": next_cursor})))
}
