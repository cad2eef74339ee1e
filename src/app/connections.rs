//! The connections page (`/link/connections?token=ct_…`): a patient sees the health plans they linked to one
//! app — what was shared, when, for how long — and removes any of them, which revokes the authorization,
//! deletes its data at once and sends the app an `authorization_revoked` webhook.
//!
//! Compiled in both builds; the server functions' bodies run only on the server.
//!
//! Access: the page needs a short-lived grant token minted by the integrator's backend with its secret key
//! (`POST /link/connections-url`, see `server::services::lifecycle::connections`), never a publishable key + `externalId` (both are
//! public, so they would let anyone manage another user's links). It renders fully on the server
//! (`SsrMode::Async`), and removal works without JavaScript in two steps: "Remove" is a GET form that shows the
//! page again with that card asking for confirmation (`confirm=<authorization id>`), and only that step's
//! "Yes, remove" form POSTs the removal (the server refuses a removal that does not say `confirmed=yes`). Once
//! hydrated, the same two steps happen in place.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::i18n::{self, msgs, Msgs};

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

/// Error codes the server functions return (as `ServerFnError::ServerError`); the page shows each in the
/// patient's language ([`error_text`]). A missing, unknown or expired grant gives no detail on which.
const ERR_EXPIRED: &str = "expired";
/// A removal that did not happen (not this user's, or already removed).
const ERR_NOT_REMOVED: &str = "not_removed";
/// A removal posted without its confirmation step.
const ERR_NOT_CONFIRMED: &str = "not_confirmed";
/// Anything else (logged on the server, never sent).
const ERR_INTERNAL: &str = "internal";
/// The value of the confirmation step's `confirmed` field.
const CONFIRMED: &str = "yes";

/// Lists the grant's user's active connections, worded in `lang` (`en`, `es` or `ko`).
///
/// # Errors
/// A missing, unknown or expired token (`expired`); internal errors are logged, never sent (`internal`).
#[server(endpoint = "connections/list")]
pub async fn list_connections(token: String, lang: String) -> Result<ConnectionsView, ServerFnError> {
    ssr::list(token, lang).await
}

/// Removes one connection (revokes and expunges at once) once the patient confirmed it (`confirmed=yes`, sent
/// only by the confirmation step). Returns the plan's name for the message. A plain form POST (no JavaScript) is
/// answered with a redirect back to the page (keeping `lang`); one without the confirmation goes to that step.
///
/// # Errors
/// A missing, unknown or expired token (`expired`), an authorization that is not this user's (`not_removed`), or
/// no confirmation (`not_confirmed`, nothing removed).
#[server(endpoint = "connections/remove")]
pub async fn remove_connection(
    token: String,
    authorization_id: String,
    lang: Option<String>,
    confirmed: Option<String>,
) -> Result<String, ServerFnError> {
    ssr::remove(token, authorization_id, lang, confirmed.as_deref() == Some(CONFIRMED)).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use leptos::prelude::*;

    use super::{ConnectionItem, ConnectionsView, ERR_EXPIRED, ERR_INTERNAL, ERR_NOT_CONFIRMED, ERR_NOT_REMOVED};
    use crate::i18n::{self, msgs};
    use crate::{
        domain::{AuthorizationState, Usage},
        server::{
            platform::http::FRAME_ANCESTORS_HEADER,
            services::lifecycle::connections::{self, connections_grant, revoke_as_patient},
            state::AppState,
            store::apps,
        },
    };

    fn safe_error(msg: &str) -> ServerFnError {
        ServerFnError::ServerError(msg.to_string())
    }

    fn internal(e: anyhow::Error) -> ServerFnError {
        tracing::error!(error = %e, "connections page");
        safe_error(ERR_INTERNAL)
    }

    fn deny() -> ServerFnError {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::UNAUTHORIZED);
        }
        safe_error(ERR_EXPIRED)
    }

    /// [`list_with`] for the server function: applies the response's status and `frame-ancestors` itself.
    pub async fn list(token: String, lang: String) -> Result<ConnectionsView, ServerFnError> {
        let state = expect_context::<AppState>();
        let listed = list_with(&state, token, lang).await;
        apply_to_response(&listed);
        listed.map(|(view, _)| view)
    }

    /// Sets the page response from a listing: 401 for an unknown or expired grant, else the app's origins as
    /// `frame-ancestors` (the integrator may show this page in its own iframe, like the Link modal).
    pub fn apply_to_response(listed: &Result<(ConnectionsView, String), ServerFnError>) {
        let Some(resp) = use_context::<leptos_axum::ResponseOptions>() else { return };
        match listed {
            Ok((_, frame_ancestors)) => {
                if let Ok(v) = axum::http::HeaderValue::from_str(frame_ancestors) {
                    resp.insert_header(FRAME_ANCESTORS_HEADER, v);
                }
            }
            Err(ServerFnError::ServerError(code)) if code == ERR_EXPIRED => {
                resp.set_status(axum::http::StatusCode::UNAUTHORIZED)
            }
            Err(_) => {}
        }
    }

    /// The grant's user's active connections worded in `lang`, and the app's origins (space-separated) for
    /// `frame-ancestors`. Needs no Leptos context.
    pub async fn list_with(
        state: &AppState,
        token: String,
        lang: String,
    ) -> Result<(ConnectionsView, String), ServerFnError> {
        let m = msgs(&lang);
        let expired = || safe_error(ERR_EXPIRED);
        let now = state.clock.now();
        let grant = connections_grant(&state.db, now, token.trim()).await.map_err(internal)?.ok_or_else(expired)?;
        let app = apps::get(&state.db, &grant.app_id).await.map_err(internal)?.ok_or_else(expired)?;
        let frame_ancestors = app.allowed_origins.join(" ");
        let at = |t: i64| i18n::human_time(&lang, t);
        let items = connections::list(state, &grant, now)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|c| {
                let needs_reconnect = c.authorization.state == AuthorizationState::NeedsReauth;
                let access = match (c.authorization.usage, needs_reconnect, c.readable_until) {
                    (_, true, Some(until)) => m.conn_access_ended.replace("{time}", &at(until)),
                    (Usage::OneTime, _, Some(until)) => m.conn_access_one_time.replace("{time}", &at(until)),
                    (_, _, Some(until)) => m.conn_access_until.replace("{time}", &at(until)),
                    _ => m.conn_access_ongoing.to_string(),
                };
                ConnectionItem {
                    authorization_id: c.authorization.id,
                    plan_name: c.endpoint.name.unwrap_or_else(|| m.conn_health_plan.to_string()),
                    plan_logo: c.endpoint.logo_url,
                    shared: i18n::record_kind_labels(&lang, &c.shared_types),
                    linked_on: at(c.authorization.created_at),
                    access,
                    needs_reconnect,
                }
            })
            .collect();
        Ok((
            ConnectionsView {
                app_name: app.name,
                brand_color: app.brand_color,
                test_mode: grant.mode == crate::domain::Mode::Test,
                items,
            },
            frame_ancestors,
        ))
    }

    pub async fn remove(
        token: String,
        authorization_id: String,
        lang: Option<String>,
        confirmed: bool,
    ) -> Result<String, ServerFnError> {
        let result = if confirmed {
            remove_inner(&token, &authorization_id, lang.as_deref().unwrap_or("en")).await
        } else {
            Err(safe_error(ERR_NOT_CONFIRMED))
        };
        // A form posted without JavaScript asks for HTML: send the browser back to the refreshed list (the
        // pages send no Referer, so the server-fn default of "back to the Referer" would land on `/`).
        let headers: axum::http::HeaderMap = leptos_axum::extract().await.unwrap_or_default();
        let wants_html = headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"));
        if wants_html {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("token", token.trim());
            if let Some(l) = lang.as_deref().and_then(crate::i18n::shipped) {
                query.append_pair("language", l);
            }
            let query = match &result {
                Ok(_) => query.append_pair("removed", "1").finish(),
                // The confirmation step this request skipped.
                Err(ServerFnError::ServerError(code)) if code == ERR_NOT_CONFIRMED => {
                    query.append_pair("confirm", &authorization_id).finish()
                }
                Err(_) => query.append_pair("error", "1").finish(),
            };
            leptos_axum::redirect(&format!("/link/connections?{query}"));
        }
        result
    }

    async fn remove_inner(token: &str, authorization_id: &str, lang: &str) -> Result<String, ServerFnError> {
        let state = expect_context::<AppState>();
        let now = state.clock.now();
        let grant = connections_grant(&state.db, now, token.trim()).await.map_err(internal)?.ok_or_else(deny)?;
        let plan = connections::plan_name(&state, &grant, authorization_id).await.map_err(internal)?;
        if !revoke_as_patient(&state, &grant, authorization_id).await.map_err(internal)? {
            return Err(safe_error(ERR_NOT_REMOVED));
        }
        Ok(plan.unwrap_or_else(|| msgs(lang).conn_health_plan.to_string()))
    }

    #[cfg(test)]
    mod tests {
        use crate::i18n::record_kind_labels as labels;

        #[test]
        fn labels_are_plain_ordered_and_distinct() {
            let types: Vec<String> =
                ["Organization", "ExplanationOfBenefit", "Practitioner", "Patient", "Medication", "MedicationRequest", "Basic"]
                    .map(String::from)
                    .to_vec();
            assert_eq!(
                labels("en", &types),
                ["Your profile", "Claims", "Medications", "Care providers", "Health care organizations", "Other records"]
            );
            assert_eq!(labels("es", &types)[1], "Reclamaciones");
        }
    }
}

/// The page's listing, loaded by its handler before rendering, in the language the handler chose
/// ([`i18n::choose`]).
#[derive(Debug, Clone)]
pub struct PreloadedConnections {
    /// `Ok((view, frame_ancestors))`, or the error [`list_connections`] would give.
    pub listed: Result<(ConnectionsView, String), ServerFnError>,
    /// `en`, `es` or `ko`.
    pub lang: &'static str,
}

/// `/link/connections`: the patient's linked plans with a Remove button for each, from the
/// [`PreloadedConnections`] its handler loaded (so the render waits on nothing), in that language. The list and
/// its Remove forms are the [`ConnectionList`] island. Without a preload (never the case: the handler always
/// provides it) it shows the internal-error message.
#[component]
pub fn ConnectionsPage() -> impl IntoView {
    let query = use_query_map();
    let (token, removed, failed, confirm) = query.with_untracked(|q| {
        (q.get("token").unwrap_or_default(), q.get("removed").is_some(), q.get("error").is_some(), q.get("confirm"))
    });
    let PreloadedConnections { listed, lang } = use_context::<PreloadedConnections>().unwrap_or_else(|| {
        PreloadedConnections { listed: Err(ServerFnError::ServerError(ERR_INTERNAL.into())), lang: "en" }
    });
    #[cfg(feature = "ssr")]
    ssr::apply_to_response(&listed);
    let m = msgs(lang);
    view! {
        <crate::app::PageLang lang=lang/>
        <Title text=format!("{} · Link SDK", m.conn_title)/>
        <main class="page narrow connections" id="main" lang=lang>
            {connections_body(listed.map(|(v, _)| v), token, lang, Notice { removed, failed, confirm })}
        </main>
    }
}

/// What the page's query asks it to show besides the list.
struct Notice {
    /// A removal without JavaScript succeeded (`removed=1`).
    removed: bool,
    /// A removal without JavaScript failed (`error=1`).
    failed: bool,
    /// The authorization whose removal the patient is asked to confirm (`confirm=…`).
    confirm: Option<String>,
}

/// What the page shows for a listing: the app, the intro and the [`ConnectionList`] island, or the error.
fn connections_body(listed: Result<ConnectionsView, ServerFnError>, token: String, lang: &'static str, notice: Notice) -> AnyView {
    let m = msgs(lang);
    match listed {
        Ok(v) => {
            let app_name = v.app_name.clone();
            view! {
                <crate::app::IslandAssets/>
                <div>
                    <p class="eyebrow">
                        {app_name.clone()}
                        {v.test_mode.then(|| view! { " " <span class="badge test">{m.test_mode}</span> })}
                    </p>
                    <h1>{m.conn_title}</h1>
                    <p class="lede">{i18n::with_app(m.conn_lede, &app_name)}</p>
                    <ConnectionList
                        token=token
                        lang=lang.to_string()
                        app_name=app_name.clone()
                        items=v.items
                        removed=notice.removed
                        failed=notice.failed
                        confirm=notice.confirm
                    />
                </div>
            }
            .into_any()
        }
        Err(e) => view! {
            <h1>{m.conn_title}</h1>
            <p class="alert error" role="alert">{error_text(&e, m)}</p>
            <p>{m.conn_go_back}</p>
        }
        .into_any(),
    }
}

/// The connections and their Remove forms (an island), worded in `lang`. Removing takes two steps: each card's
/// Remove (a GET form: without JavaScript the page comes back with `confirm` naming that card) shows a
/// confirmation whose "Yes, remove" form posts to the server function, which redirects back with `removed=1` or
/// `error=1` (`removed`/`failed`); once hydrated both steps happen in place and the list is read again from the
/// server.
#[island]
fn ConnectionList(
    token: String,
    lang: String,
    app_name: String,
    items: Vec<ConnectionItem>,
    removed: bool,
    failed: bool,
    confirm: Option<String>,
) -> impl IntoView {
    let m = msgs(&lang);
    let remove = ServerAction::<RemoveConnection>::new();
    let list = RwSignal::new(items);
    // The card asking for confirmation, if any.
    let confirming = RwSignal::new(confirm);
    let list_token = token.clone();
    let list_lang = lang.clone();
    Effect::new(move |_| {
        if remove.version().get() > 0 {
            confirming.set(None);
            let (token, lang) = (list_token.clone(), list_lang.clone());
            leptos::task::spawn_local(async move {
                if let Ok(v) = list_connections(token, lang).await {
                    list.set(v.items);
                }
            });
        }
    });
    let status = move || match remove.value().get() {
        Some(Ok(plan)) => {
            Some(view! { <p class="alert ok" role="status">{m.conn_removed.replace("{plan}", &plan)}</p> }.into_any())
        }
        Some(Err(e)) => Some(view! { <p class="alert error" role="alert">{error_text(&e, m)}</p> }.into_any()),
        None if removed => Some(view! { <p class="alert ok" role="status">{m.conn_removed_generic}</p> }.into_any()),
        None if failed => Some(view! { <p class="alert error" role="alert">{m.conn_not_removed}</p> }.into_any()),
        None => None,
    };
    view! {
        {status}
        {move || list.with(Vec::is_empty).then(|| view! {
            <p class="card empty" data-testid="no-connections">{m.conn_none}</p>
        })}
        <ul class="connection-list" aria-label=m.conn_list_label>
            {move || {
                let (token, lang, app_name) = (token.clone(), lang.clone(), app_name.clone());
                list.get()
                    .into_iter()
                    .map(|item| {
                        let ctx = CardContext { token: token.clone(), lang: lang.clone(), app_name: app_name.clone(), action: remove, confirming };
                        view! { <ConnectionCard item=item ctx=ctx/> }
                    })
                    .collect_view()
            }}
        </ul>
    }
}

/// What every card of the list shares.
#[derive(Clone)]
struct CardContext {
    /// The page's grant token (the forms carry it).
    token: String,
    /// `en`, `es` or `ko`.
    lang: String,
    /// The integrator app's name.
    app_name: String,
    /// The removal server function.
    action: ServerAction<RemoveConnection>,
    /// The card asking for confirmation, if any.
    confirming: RwSignal<Option<String>>,
}

/// `s` percent-encoded for a URL query (RFC 3986 unreserved characters kept).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Names of one card's parts: its heading, its question, the page it reloads without JavaScript.
#[derive(Clone)]
struct CardIds {
    /// The authorization the card shows.
    id: String,
    /// Id of the card's heading.
    heading: String,
    /// Id of the confirmation question.
    question: String,
    /// The plan's name.
    plan: String,
    /// The connections page of this grant and language.
    page: String,
}

/// Moves focus with the removal step: to the question when it appears, back to Remove when the patient keeps
/// the plan.
fn follow_focus(
    asked: impl Fn() -> bool + Clone + Send + Sync + 'static,
    question_ref: NodeRef<leptos::html::P>,
    remove_ref: NodeRef<leptos::html::Button>,
) {
    let was_asked = StoredValue::new(asked());
    Effect::new(move |_| {
        let now = asked();
        if now {
            if let Some(q) = question_ref.get() {
                let _ = q.focus();
            }
        } else if was_asked.get_value() {
            if let Some(b) = remove_ref.get() {
                let _ = b.focus();
            }
        }
        was_asked.set_value(now);
    });
}

/// The confirmation step: "Remove plan?", what happens, and Yes, remove / Keep it.
fn confirm_view(ids: CardIds, ctx: CardContext, question_ref: NodeRef<leptos::html::P>) -> AnyView {
    let m = msgs(&ctx.lang);
    let confirming = ctx.confirming;
    let keep = move |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        confirming.set(None);
    };
    let yes = m.conn_confirm_yes.replace("{plan}", &ids.plan);
    view! {
        <div class="connection-confirm" role="group" aria-labelledby=ids.question.clone()>
            <p id=ids.question.clone() class="connection-confirm-question" tabindex="-1" node_ref=question_ref>
                {m.conn_confirm_question.replace("{plan}", &ids.plan)}
            </p>
            <p>{i18n::with_app(m.conn_confirm_detail, &ctx.app_name).replace("{plan}", &ids.plan)}</p>
            <div class="connection-confirm-actions">
                <ActionForm action=ctx.action>
                    <input type="hidden" name="token" value=ctx.token.clone()/>
                    <input type="hidden" name="authorization_id" value=ids.id.clone()/>
                    <input type="hidden" name="lang" value=ctx.lang.clone()/>
                    <input type="hidden" name="confirmed" value=CONFIRMED/>
                    <button type="submit" class="button danger solid">{yes}</button>
                </ActionForm>
                <a class="button" href=format!("{}#{}", ids.page, ids.heading) on:click=keep>{m.conn_confirm_keep}</a>
            </div>
        </div>
    }
    .into_any()
}

/// The Remove button: a GET form that, without JavaScript, shows the page again with this card's confirmation.
fn ask_view(ids: CardIds, ctx: CardContext, remove_ref: NodeRef<leptos::html::Button>) -> AnyView {
    let m = msgs(&ctx.lang);
    let confirming = ctx.confirming;
    let id_for_ask = ids.id.clone();
    let ask = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        confirming.set(Some(id_for_ask.clone()));
    };
    view! {
        <form method="get" action=format!("/link/connections#{}", ids.heading) on:submit=ask>
            <input type="hidden" name="token" value=ctx.token.clone()/>
            <input type="hidden" name="language" value=ctx.lang.clone()/>
            <input type="hidden" name="confirm" value=ids.id.clone()/>
            <button type="submit" class="button danger" node_ref=remove_ref>
                {m.conn_remove.replace("{plan}", &ids.plan)}
            </button>
        </form>
    }
    .into_any()
}

#[component]
fn ConnectionCard(item: ConnectionItem, ctx: CardContext) -> impl IntoView {
    let m = msgs(&ctx.lang);
    let ids = CardIds {
        id: item.authorization_id.clone(),
        heading: format!("plan-{}", item.authorization_id),
        question: format!("confirm-{}", item.authorization_id),
        plan: item.plan_name.clone(),
        page: format!("/link/connections?token={}&language={}", query_value(ctx.token.trim()), query_value(&ctx.lang)),
    };
    let confirming = ctx.confirming;
    let asked = {
        let id = ids.id.clone();
        move || confirming.with(|c| c.as_deref() == Some(id.as_str()))
    };
    let question_ref = NodeRef::<leptos::html::P>::new();
    let remove_ref = NodeRef::<leptos::html::Button>::new();
    follow_focus(asked.clone(), question_ref, remove_ref);
    let step = {
        let (ids, ctx) = (ids.clone(), ctx.clone());
        move || {
            if asked() {
                confirm_view(ids.clone(), ctx.clone(), question_ref)
            } else {
                ask_view(ids.clone(), ctx.clone(), remove_ref)
            }
        }
    };
    view! {
        <li class="card connection" aria-labelledby=ids.heading.clone() data-testid="connection">
            <div class="connection-head">
                {item.plan_logo.clone().map(|src| view! { <img src=src alt="" width="40" height="40"/> })}
                <h2 id=ids.heading.clone()>{item.plan_name.clone()}</h2>
                {item.needs_reconnect.then(|| view! { <span class="badge test">{m.conn_needs_reconnect}</span> })}
            </div>
            <dl class="facts">
                <dt>{m.conn_shared}</dt>
                <dd>{item.shared.join(", ")}</dd>
                <dt>{m.conn_linked}</dt>
                <dd>{item.linked_on.clone()}</dd>
                <dt>{m.conn_access}</dt>
                <dd>{item.access.clone()}</dd>
            </dl>
            {step}
        </li>
    }
}

/// The patient-facing text of a server function error in the page's language: our own codes map to their
/// messages; anything else (the request never got an answer) asks to check the connection.
fn error_text(e: &ServerFnError, m: &'static Msgs) -> &'static str {
    match e {
        ServerFnError::ServerError(code) if code == ERR_EXPIRED => m.conn_expired,
        ServerFnError::ServerError(code) if code == ERR_NOT_REMOVED => m.conn_not_removed,
        ServerFnError::ServerError(code) if code == ERR_NOT_CONFIRMED => m.conn_confirm_first,
        ServerFnError::ServerError(_) => m.conn_internal,
        _ => m.conn_unreachable,
    }
}
