//! The connections page (`/link/connections?token=ct_…`): a patient sees the health plans they linked to one
//! app — what was shared, when, for how long — and removes any of them, which revokes the authorization,
//! deletes its data at once and sends the app an `authorization_revoked` webhook.
//!
//! Owner: [Lifecycle]. Compiled in both builds; the server functions' bodies run only on the server.
//!
//! Access: the page needs a short-lived grant token minted by the integrator's backend with its secret key
//! (`POST /link/connections-url`, see `server::lifecycle`), never a publishable key + `externalId` (both are
//! public, so they would let anyone manage another user's links). It renders fully on the server
//! (`SsrMode::Async`), and "Remove" is a plain form POST, so it works without JavaScript; once hydrated the
//! same form updates the list in place.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

/// One linked health plan, as shown to the patient (already formatted on the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionItem {
    /// The authorization id (the form's hidden value; not shown).
    pub authorization_id: String,
    /// The health plan's display name.
    pub plan_name: String,
    /// The plan's logo URL, if any.
    pub plan_logo: Option<String>,
    /// What was shared, in plain words (e.g. "Claims and benefits").
    pub shared: Vec<String>,
    /// When it was linked, e.g. "29 Nov 2026, 22:18 UTC".
    pub linked_on: String,
    /// For how long, e.g. "One-time: ends 30 Nov 2026, 22:18 UTC".
    pub access: String,
    /// True when the plan ended long-term access and the patient must link again.
    pub needs_reconnect: bool,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionsView {
    /// The integrator app's name.
    pub app_name: String,
    /// The app's brand colour (`#rrggbb`), if set.
    pub brand_color: Option<String>,
    /// True for test-mode (sandbox) connections.
    pub test_mode: bool,
    /// Active connections, newest first.
    pub items: Vec<ConnectionItem>,
}

/// Message shown for a missing, unknown or expired grant (no detail on which).
#[cfg(feature = "ssr")]
const LINK_EXPIRED: &str = "This page's link has expired or is not valid.";
/// Message shown when a removal did not happen (not this user's, or already removed).
const NOT_REMOVED: &str = "That connection could not be removed. It may already have been removed.";

/// Lists the grant's user's active connections.
///
/// # Errors
/// A missing, unknown or expired token (a fixed, safe message); internal errors are logged, never sent.
#[server(endpoint = "connections/list")]
pub async fn list_connections(token: String) -> Result<ConnectionsView, ServerFnError> {
    ssr::list(token).await
}

/// Removes one connection (revokes and expunges at once). Returns the plan's name for the confirmation.
/// A plain form POST (no JavaScript) is answered with a redirect back to the page.
///
/// # Errors
/// A missing, unknown or expired token, or an authorization that is not this user's (fixed, safe messages).
#[server(endpoint = "connections/remove")]
pub async fn remove_connection(token: String, authorization_id: String) -> Result<String, ServerFnError> {
    ssr::remove(token, authorization_id).await
}

#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;
    use sqlx::Row as _;

    use super::{ConnectionItem, ConnectionsView, LINK_EXPIRED, NOT_REMOVED};
    use crate::server::{apps, http::FRAME_ANCESTORS_HEADER, lifecycle, startup::AppState};

    fn safe_error(msg: &str) -> ServerFnError {
        ServerFnError::ServerError(msg.to_string())
    }

    fn internal(e: anyhow::Error) -> ServerFnError {
        tracing::error!(error = %e, "connections page");
        safe_error("Something went wrong on our side. Please try again in a moment.")
    }

    fn deny() -> ServerFnError {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::UNAUTHORIZED);
        }
        safe_error(LINK_EXPIRED)
    }

    /// "29 Nov 2026, 22:18 UTC".
    fn human_time(unix: i64) -> String {
        let fmt = time::macros::format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
        time::OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&fmt).ok()).unwrap_or_default()
    }

    /// Plain words for a FHIR resource type, in the order they are listed.
    const LABELS: &[(&str, &str)] = &[
        ("Patient", "Your profile (name, birth date, member id)"),
        ("Coverage", "Insurance coverage"),
        ("ExplanationOfBenefit", "Claims and benefits"),
        ("Condition", "Conditions"),
        ("Observation", "Test results and vital signs"),
        ("DiagnosticReport", "Lab and imaging reports"),
        ("MedicationRequest", "Medications"),
        ("MedicationStatement", "Medications"),
        ("MedicationDispense", "Medications"),
        ("Medication", "Medications"),
        ("AllergyIntolerance", "Allergies"),
        ("Immunization", "Immunizations"),
        ("Procedure", "Procedures"),
        ("Encounter", "Visits"),
        ("CarePlan", "Care plans"),
        ("Goal", "Care plans"),
        ("DocumentReference", "Clinical documents"),
        ("Practitioner", "Care providers"),
        ("PractitionerRole", "Care providers"),
        ("Organization", "Care providers"),
        ("Location", "Care providers"),
    ];

    /// The distinct plain-words labels of some resource types, in [`LABELS`] order (unknown types last).
    fn labels(types: &[String]) -> Vec<String> {
        let rank = |t: &str| LABELS.iter().position(|(k, _)| *k == t).unwrap_or(LABELS.len());
        let mut sorted: Vec<&String> = types.iter().collect();
        sorted.sort_by_key(|t| (rank(t), t.as_str()));
        let mut out: Vec<String> = Vec::new();
        for t in sorted {
            let label = LABELS.iter().find(|(k, _)| *k == t.as_str()).map_or(t.as_str(), |(_, l)| *l).to_string();
            if !out.contains(&label) {
                out.push(label);
            }
        }
        out
    }

    fn parse_types(json: &str) -> Vec<String> {
        serde_json::from_str(json).unwrap_or_default()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn labels_are_plain_ordered_and_distinct() {
            let types: Vec<String> =
                ["Organization", "ExplanationOfBenefit", "Practitioner", "Patient", "Medication", "MedicationRequest", "Basic"]
                    .map(String::from)
                    .to_vec();
            assert_eq!(
                super::labels(&types),
                ["Your profile (name, birth date, member id)", "Claims and benefits", "Medications", "Care providers", "Basic"]
            );
        }
    }

    pub async fn list(token: String) -> Result<ConnectionsView, ServerFnError> {
        let state = expect_context::<AppState>();
        let now = state.clock.now();
        let grant = lifecycle::connections_grant(&state.db, now, token.trim()).await.map_err(internal)?.ok_or_else(deny)?;
        let app = apps::get(&state.db, &grant.app_id).await.map_err(internal)?.ok_or_else(deny)?;
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            // The integrator may show this page in its own iframe, like the Link modal.
            if let Ok(v) = axum::http::HeaderValue::from_str(&app.allowed_origins.join(" ")) {
                resp.insert_header(FRAME_ANCESTORS_HEADER, v);
            }
        }
        let rows = sqlx::query(
            "SELECT a.id, a.usage, a.state, a.created_at, a.expunge_at, a.resource_types, \
             e.name AS plan_name, e.logo_url AS plan_logo, e.resource_types AS endpoint_types \
             FROM authorizations a LEFT JOIN endpoints e ON e.id = a.endpoint_id \
             WHERE a.app_id = $1 AND a.mode = $2 AND a.external_id = $3 AND a.expunged_at IS NULL \
             AND a.state NOT IN ('REVOKED', 'EXPIRED') ORDER BY a.created_at DESC, a.id",
        )
        .bind(&grant.app_id)
        .bind(grant.mode.as_str())
        .bind(&grant.external_id)
        .fetch_all(&state.db.pool)
        .await
        .map_err(|e| internal(e.into()))?;
        let mut items = Vec::new();
        for r in rows {
            let item = async {
                let id: String = r.try_get("id")?;
                let status = lifecycle::access_status(&state.db, now, &id).await?;
                if !status.as_ref().is_some_and(|s| s.readable) {
                    return anyhow::Ok(None);
                }
                let usage: String = r.try_get("usage")?;
                let st: String = r.try_get("state")?;
                let created_at: i64 = r.try_get("created_at")?;
                let expunge_at = status.and_then(|s| s.expunge_at);
                let synced: Vec<String> =
                    sqlx::query("SELECT DISTINCT resource_type FROM resources WHERE authorization_id = $1 ORDER BY resource_type")
                        .bind(&id)
                        .fetch_all(&state.db.pool)
                        .await?
                        .iter()
                        .filter_map(|row| row.try_get::<String, _>("resource_type").ok())
                        .collect();
                let mut types = synced;
                if types.is_empty() {
                    types = parse_types(&r.try_get::<String, _>("resource_types").unwrap_or_default());
                }
                if types.is_empty() {
                    types = parse_types(&r.try_get::<Option<String>, _>("endpoint_types")?.unwrap_or_default());
                }
                let shared = labels(&types);
                let needs_reconnect = st == "NEEDS_REAUTH";
                let access = match (usage.as_str(), needs_reconnect, expunge_at) {
                    (_, true, Some(until)) => {
                        format!("Your plan ended ongoing access. The copy is kept until {} unless you remove it.", human_time(until))
                    }
                    ("ONE_TIME", _, Some(until)) => format!("One-time: access ends and the copy is deleted {}", human_time(until)),
                    (_, _, Some(until)) => format!("Ongoing, until {}", human_time(until)),
                    _ => "Ongoing, until you remove it".to_string(),
                };
                anyhow::Ok(Some(ConnectionItem {
                    authorization_id: id,
                    plan_name: r.try_get::<Option<String>, _>("plan_name")?.unwrap_or_else(|| "Health plan".to_string()),
                    plan_logo: r.try_get("plan_logo")?,
                    shared,
                    linked_on: human_time(created_at),
                    access,
                    needs_reconnect,
                }))
            }
            .await
            .map_err(internal)?;
            items.extend(item);
        }
        Ok(ConnectionsView {
            app_name: app.name,
            brand_color: app.brand_color,
            test_mode: grant.mode == crate::domain::Mode::Test,
            items,
        })
    }

    pub async fn remove(token: String, authorization_id: String) -> Result<String, ServerFnError> {
        let result = remove_inner(&token, &authorization_id).await;
        // A form posted without JavaScript asks for HTML: send the browser back to the refreshed list (the
        // pages send no Referer, so the server-fn default of "back to the Referer" would land on `/`).
        let headers: axum::http::HeaderMap = leptos_axum::extract().await.unwrap_or_default();
        let wants_html = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if wants_html {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token.trim())
                .append_pair(if result.is_ok() { "removed" } else { "error" }, "1")
                .finish();
            leptos_axum::redirect(&format!("/link/connections?{query}"));
        }
        result
    }

    async fn remove_inner(token: &str, authorization_id: &str) -> Result<String, ServerFnError> {
        let state = expect_context::<AppState>();
        let now = state.clock.now();
        let grant = lifecycle::connections_grant(&state.db, now, token.trim()).await.map_err(internal)?.ok_or_else(deny)?;
        let plan: Option<String> = sqlx::query(
            "SELECT e.name FROM authorizations a LEFT JOIN endpoints e ON e.id = a.endpoint_id WHERE a.id = $1",
        )
        .bind(authorization_id)
        .fetch_optional(&state.db.pool)
        .await
        .map_err(|e| internal(e.into()))?
        .and_then(|r| r.try_get::<Option<String>, _>("name").ok().flatten());
        if !lifecycle::revoke_as_patient(&state, &grant, authorization_id).await.map_err(internal)? {
            return Err(safe_error(NOT_REMOVED));
        }
        Ok(plan.unwrap_or_else(|| "Health plan".to_string()))
    }
}

/// `/link/connections`: the patient's linked plans with a Remove button for each. Rendered on the server;
/// the list and its Remove forms are the [`ConnectionList`] island.
#[component]
pub fn ConnectionsPage() -> impl IntoView {
    let query = use_query_map();
    let (token, removed, failed) = query.with_untracked(|q| {
        (q.get("token").unwrap_or_default(), q.get("removed").is_some(), q.get("error").is_some())
    });
    let list_token = token.clone();
    let connections = Resource::new(|| (), move |_| list_connections(list_token.clone()));

    view! {
        <Title text="Your connected health plans · Link SDK"/>
        <main class="page narrow connections" id="main">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading your connections…"</p> }>
                {move || {
                    let token = token.clone();
                    Suspend::new(async move {
                        match connections.await {
                            Ok(v) => {
                                let app_name = v.app_name.clone();
                                view! {
                                    <crate::app::IslandAssets/>
                                    <div>
                                        <p class="eyebrow">
                                            {app_name.clone()}
                                            {v.test_mode.then(|| view! { " " <span class="badge test">"Test mode"</span> })}
                                        </p>
                                        <h1>"Your connected health plans"</h1>
                                        <p class="lede">
                                            {format!("You shared data from these health plans with {app_name}. Removing one stops the sharing and deletes the copy we hold, right away.")}
                                        </p>
                                        <ConnectionList token=token items=v.items removed=removed failed=failed/>
                                    </div>
                                }
                                .into_any()
                            }
                            Err(e) => view! {
                                <h1>"Your connected health plans"</h1>
                                <p class="alert error" role="alert">{error_text(&e)}</p>
                                <p>"Go back to the app you came from and open your connected plans again."</p>
                            }
                            .into_any(),
                        }
                    })
                }}
            </Suspense>
        </main>
    }
}

/// The connections and their Remove forms (an island). Without JavaScript each form posts to the server
/// function, which redirects back with `removed=1` or `error=1` (`removed`/`failed`); once hydrated the form
/// calls it in place and the list is read again from the server.
#[island]
fn ConnectionList(token: String, items: Vec<ConnectionItem>, removed: bool, failed: bool) -> impl IntoView {
    let remove = ServerAction::<RemoveConnection>::new();
    let list = RwSignal::new(items);
    let list_token = token.clone();
    Effect::new(move |_| {
        if remove.version().get() > 0 {
            let token = list_token.clone();
            leptos::task::spawn_local(async move {
                if let Ok(v) = list_connections(token).await {
                    list.set(v.items);
                }
            });
        }
    });
    let status = move || match remove.value().get() {
        Some(Ok(plan)) => Some(view! {
            <p class="alert ok" role="status">{format!("{plan} was removed. Its data has been deleted.")}</p>
        }
        .into_any()),
        Some(Err(e)) => Some(view! { <p class="alert error" role="alert">{error_text(&e)}</p> }.into_any()),
        None if removed => Some(view! {
            <p class="alert ok" role="status">"The connection was removed. Its data has been deleted."</p>
        }
        .into_any()),
        None if failed => Some(view! { <p class="alert error" role="alert">{NOT_REMOVED}</p> }.into_any()),
        None => None,
    };
    view! {
        {status}
        {move || list.with(Vec::is_empty).then(|| view! {
            <p class="card empty" data-testid="no-connections">"You have no connected health plans."</p>
        })}
        <ul class="connection-list" aria-label="Connected health plans">
            {move || {
                let token = token.clone();
                list.get()
                    .into_iter()
                    .map(|item| view! { <ConnectionCard item=item token=token.clone() action=remove/> })
                    .collect_view()
            }}
        </ul>
    }
}

#[component]
fn ConnectionCard(item: ConnectionItem, token: String, action: ServerAction<RemoveConnection>) -> impl IntoView {
    let heading_id = format!("plan-{}", item.authorization_id);
    let label = format!("Remove {}", item.plan_name);
    view! {
        <li class="card connection" aria-labelledby=heading_id.clone() data-testid="connection">
            <div class="connection-head">
                {item.plan_logo.clone().map(|src| view! { <img src=src alt="" width="40" height="40"/> })}
                <h2 id=heading_id.clone()>{item.plan_name.clone()}</h2>
                {item.needs_reconnect.then(|| view! { <span class="badge test">"Needs reconnecting"</span> })}
            </div>
            <dl class="facts">
                <dt>"Shared"</dt>
                <dd>{item.shared.join(", ")}</dd>
                <dt>"Linked"</dt>
                <dd>{item.linked_on.clone()}</dd>
                <dt>"Access"</dt>
                <dd>{item.access.clone()}</dd>
            </dl>
            <ActionForm action=action>
                <input type="hidden" name="token" value=token/>
                <input type="hidden" name="authorization_id" value=item.authorization_id.clone()/>
                <button type="submit" class="button danger">{label}</button>
            </ActionForm>
        </li>
    }
}

/// The patient-safe text of a server function error (only our own fixed messages ever reach here).
fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(msg) => msg.clone(),
        _ => "We could not reach the server. Check your connection and try again.".to_string(),
    }
}
