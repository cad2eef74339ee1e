//! The hosted Link screens at `/link/s/:sid`: consent → explainer → search/select → payer sign-in (popup) →
//! syncing → success, plus error, exit and expired screens.
//!
//! Compiled in both builds. Every screen renders on the server (`SsrMode::Async`, so the response headers,
//! including the CSP `frame-ancestors` of the app, are set before the first byte). Steps move forward through
//! plain HTML forms posted to `server::link` handlers, so the flow works without JavaScript. Two parts are
//! islands that hydrate: [`PlanSearch`] (results follow the input) and [`SyncProgress`] (live counts); every
//! other screen (consent, explainer, payer, success, error) loads no wasm at all.
//! The browser glue that needs no reactivity (postMessage to the host page, the payer popup, Esc, focus trap,
//! status polling) lives in `/link/frame.js`, loaded by every screen.

use leptos::prelude::*;
use leptos_meta::Title;

pub mod model;

pub use model::{PlanHealth, PlanView, PrecheckView, Screen, ScreenPolicy};

use crate::{
    domain::LinkStep,
    i18n::{self, msgs, with_app, ConsentText, Msgs},
};

/// Plans of the session's mode matching `q` (name and aliases).
#[server]
pub async fn search_plans(sid: String, q: String) -> Result<Vec<PlanView>, ServerFnError> {
    let state = expect_context::<crate::server::state::AppState>();
    let plans = crate::server::services::link_flow::plans_for_session(&state, &sid, &q).await.map_err(|e| {
        tracing::error!(error = %e, "searching plans");
        ServerFnError::new("Search is not available right now.")
    })?;
    Ok(plans.into_iter().map(PlanView::from).collect())
}

/// Records received so far, (kind in plain words, count), for the syncing screen.
#[server]
pub async fn sync_progress(sid: String) -> Result<Vec<(String, i64)>, ServerFnError> {
    let state = expect_context::<crate::server::state::AppState>();
    crate::server::services::link_flow::sync_progress_of_session(&state, &sid).await.map_err(|e| {
        tracing::error!(error = %e, "reading sync progress");
        ServerFnError::new("Progress is not available right now.")
    })
}

/// The screen of the requested session, loaded by the server before rendering (`None`: unknown session), with
/// the policy its response must carry. Provided as context by the `/link/s/{sid}` handler.
#[derive(Debug, Clone)]
pub struct PreloadedScreen(pub Option<(Screen, ScreenPolicy)>);

/// `/link/s/:sid`: the current screen of a Link session, from the [`PreloadedScreen`] its handler loaded, so the
/// page renders without waiting on anything. Without one (an unknown session) it shows the expired screen.
#[component]
pub fn LinkPage() -> impl IntoView {
    match use_context::<PreloadedScreen>().and_then(|PreloadedScreen(found)| found) {
        Some((s, _policy)) => {
            // The security-headers middleware turns these into the CSP's frame-ancestors and form-action.
            #[cfg(feature = "ssr")]
            if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
                use crate::server::platform::http::{FORM_ACTION_HEADER, FRAME_ANCESTORS_HEADER};
                if let Ok(v) = axum::http::HeaderValue::from_str(&_policy.frame_ancestors) {
                    resp.insert_header(FRAME_ANCESTORS_HEADER, v);
                }
                if let Ok(v) = axum::http::HeaderValue::from_str(&_policy.form_targets) {
                    resp.insert_header(FORM_ACTION_HEADER, v);
                }
                if s.expired {
                    resp.set_status(axum::http::StatusCode::NOT_FOUND);
                }
            }
            view! { <LinkFrame s=s/> }.into_any()
        }
        None => view! { <ExpiredScreen/> }.into_any(),
    }
}

/// The modal chrome around every step: header with app identity, test badge and close button.
#[component]
fn LinkFrame(s: Screen) -> impl IntoView {
    let m = msgs(&s.lang);
    let title = format!("{} · {}", m.dialog_label, s.app_name);
    let close_action = format!("/link/s/{}/exit", s.sid);
    let logo = s.logo_url.clone().map(|src| view! { <img class="link-logo" src=src alt="" width="32" height="32"/> });
    let initial = s.app_name.chars().next().unwrap_or('?').to_uppercase().to_string();
    // In the modal every screen can be closed (frame.js and link.js turn it into exactly one onSuccess or
    // onExit); a hosted flow that already went back to the app has nothing left to close.
    let closable = !(s.hosted && s.step.is_ended());
    let body = step_view(&s, m);
    view! {
        <crate::app::PageLang lang=s.lang.clone()/>
        <Title text=title/>
        <div class="link-modal" lang=s.lang.clone()>
            <div
                class="link-dialog"
                role="dialog"
                aria-modal="true"
                aria-labelledby="link-title"
                id="link-root"
                data-link-session=s.sid.clone()
                data-step=if s.expired { "expired" } else { s.step.as_str() }
                data-nonce=s.nonce.clone()
                data-host-origin=s.host_origin.clone().unwrap_or_default()
                data-hosted=s.hosted.to_string()
                data-auto-exit=s.auto_exit.to_string()
                data-multiple-plans=s.multiple_plans.to_string()
                data-exit-code=s.exit_code.clone().unwrap_or_default()
                data-brand=s.brand_color.clone().unwrap_or_default()
                data-brand-ink=s.brand_ink.clone().unwrap_or_default()
                // The shell's boot script sets it to "true" once the page is interactive (tests and the benchmark).
                data-hydrated="false"
            >
                <header class="link-header">
                    <div class="link-app">
                        {match logo {
                            Some(l) => l.into_any(),
                            None => view! { <span class="link-logo link-initial" aria-hidden="true">{initial}</span> }.into_any(),
                        }}
                        <span class="link-app-name">{s.app_name.clone()}</span>
                        {s.test_mode.then(|| view! { <span class="badge test" data-testid="test-mode">{m.test_mode}</span> })}
                    </div>
                    {closable.then(|| view! {
                        <form method="post" action=close_action id="link-close-form">
                            <button type="submit" class="link-close" aria-label=m.close title=m.close>
                                <span aria-hidden="true">"×"</span>
                            </button>
                        </form>
                    })}
                </header>
                <div class="link-body">{body}</div>
            </div>
        </div>
        <script src="/link/frame.js" defer></script>
    }
}

fn step_view(s: &Screen, m: &'static Msgs) -> AnyView {
    if s.expired {
        return expired_view(s, m);
    }
    match s.step {
        LinkStep::Consent => consent_view(s, m),
        LinkStep::Explainer => explainer_view(s, m),
        LinkStep::Search => view! { <SearchStep s=s.clone()/> }.into_any(),
        LinkStep::Connect => connect_view(s, m),
        LinkStep::Payer | LinkStep::Authorized => payer_view(s, m, true),
        LinkStep::Syncing => view! { <SyncingStep s=s.clone()/> }.into_any(),
        LinkStep::Success | LinkStep::Done => success_view(s, m),
        LinkStep::Error => error_view(s, m),
        LinkStep::Exited => exited_view(s, m),
    }
}

fn consent_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let mut t = ConsentText::new(&s.lang, &s.app_name, &s.usage, &s.requested_resources);
    if s.renewal {
        t = t.renewal(&s.lang, &s.app_name);
    }
    let action = format!("/link/s/{}/consent", s.sid);
    let sig_error = s.form_error.as_deref() == Some("signature");
    view! {
        {language_picker(s, m)}
        <h1 id="link-title" tabindex="-1">{t.title}</h1>
        <p>{t.intro}</p>
        <h2>{t.what}</h2>
        <ul class="link-list">{t.items.into_iter().map(|i| view! { <li>{i}</li> }).collect_view()}</ul>
        <h2>{t.how_long_title}</h2>
        <p>{t.how_long}</p>
        <h2>{t.withdraw_title}</h2>
        <p>{t.withdraw}</p>
        // Without a signature field the two choices stay in view while the patient reads (sticky at the bottom),
        // so declining is never harder to find than agreeing.
        <form
            method="post"
            action=action
            class=if s.require_signature { "link-actions" } else { "link-actions link-sticky" }
            data-event="CONSENT"
        >
            {s.require_signature.then(|| view! {
                <div class="field">
                    <label for="link-signature">{m.signature_label}</label>
                    <input
                        id="link-signature"
                        name="signature"
                        type="text"
                        autocomplete="name"
                        required
                        maxlength="200"
                        aria-describedby="link-signature-hint"
                        aria-invalid=sig_error.to_string()
                    />
                    <p class="hint" id="link-signature-hint">{m.signature_hint}</p>
                    {sig_error.then(|| view! { <p class="alert error" role="alert">{m.signature_missing}</p> })}
                </div>
            })}
            <button type="submit" name="choice" value="given" class="button primary block" data-event="CONSENT_GIVEN">
                {m.agree}
            </button>
            <button type="submit" name="choice" value="declined" class="button link block" formnovalidate data-event="CONSENT_DECLINED">
                {m.decline}
            </button>
        </form>
    }
    .into_any()
}

/// The consent screen's language picker: one submit button per shipped language, each named in its own language
/// (and marked with it), posted to `/link/s/{sid}/language` (works without JavaScript); the session keeps the
/// choice for every later screen.
fn language_picker(s: &Screen, m: &'static Msgs) -> impl IntoView {
    let action = format!("/link/s/{}/language", s.sid);
    let current = i18n::shipped(&s.lang).unwrap_or("en");
    view! {
        <form method="post" action=action class="link-lang" aria-labelledby="link-lang-label">
            <span id="link-lang-label" class="link-lang-label">{m.language_label}</span>
            {i18n::LANGUAGES
                .iter()
                .map(|(code, name)| {
                    let chosen = *code == current;
                    view! {
                        <button
                            type="submit"
                            name="language"
                            value=*code
                            lang=*code
                            formnovalidate
                            aria-current=chosen.then_some("true")
                        >
                            {*name}
                        </button>
                    }
                })
                .collect_view()}
        </form>
    }
}

fn explainer_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let action = format!("/link/s/{}/explainer", s.sid);
    view! {
        <h1 id="link-title" tabindex="-1">{m.explainer_title}</h1>
        <ol class="link-steps">
            <li>{m.explainer_step1}</li>
            <li>{with_app(m.explainer_step2, &s.app_name)}</li>
            <li>{with_app(m.explainer_step3, &s.app_name)}</li>
        </ol>
        <h2>{m.explainer_safe_title}</h2>
        <p>{with_app(m.explainer_safe, &s.app_name)}</p>
        <form method="post" action=action class="link-actions">
            <button type="submit" class="button primary block">{m.continue_}</button>
        </form>
    }
    .into_any()
}

fn handoff_href(sid: &str, endpoint: &str) -> String {
    format!("/link/s/{sid}/handoff?endpoint={endpoint}")
}

/// The plain-words note of a plan's health and its style (`None`: nothing worth saying).
fn health_note(h: PlanHealth, m: &'static Msgs) -> Option<(String, &'static str)> {
    match h {
        PlanHealth::Unknown | PlanHealth::Working { minutes: None } => None,
        PlanHealth::Working { minutes: Some(0 | 1) } => Some((m.health_usual_minute.to_string(), "link-plan-health")),
        PlanHealth::Working { minutes: Some(n) } => {
            Some((m.health_usual_minutes.replace("{minutes}", &n.to_string()), "link-plan-health"))
        }
        PlanHealth::Unsteady => Some((m.health_unsteady.to_string(), "link-plan-health warn")),
        PlanHealth::Failing => Some((m.health_failing.to_string(), "link-plan-health bad")),
    }
}

/// Where choosing a plan leads: its pre-check screen when the directory has one, else the hand-off.
fn plan_href(sid: &str, p: &PlanView) -> String {
    if !p.precheck {
        return handoff_href(sid, &p.id);
    }
    match &p.brand_id {
        Some(b) => format!("/link/s/{sid}?precheck={}&brand={b}", p.id),
        None => format!("/link/s/{sid}?precheck={}", p.id),
    }
}

fn plan_item(sid: &str, p: PlanView, m: &'static Msgs) -> impl IntoView {
    let href = plan_href(sid, &p);
    // Only a direct hand-off opens the payer's window from this click (frame.js reads `data-connect`).
    let connect = (!p.precheck).then(|| p.id.clone());
    let rel = (!p.precheck).then_some("external");
    let note = health_note(p.health, m);
    // The note is part of the link's name, so a screen reader hears it before choosing.
    let label = match &note {
        Some((text, _)) => format!("{}. {text}", m.connect_to.replace("{plan}", &p.name)),
        None => m.connect_to.replace("{plan}", &p.name),
    };
    let aliases = (!p.aliases.is_empty()).then(|| p.aliases.join(", "));
    view! {
        <li>
            <a class="link-plan" href=href rel=rel data-connect=connect aria-label=label>
                <span class="link-plan-text">
                    <span class="link-plan-name">{p.name.clone()}</span>
                    {aliases.map(|a| view! { <span class="link-plan-aliases">{a}</span> })}
                    {note.map(|(text, class)| view! { <span class=class>{text}</span> })}
                </span>
                <span class="link-plan-go" aria-hidden="true">{m.connect}" ›"</span>
            </a>
        </li>
    }
}

/// Search and select: a plain GET form (works without JavaScript) whose results follow the input once hydrated.
#[component]
fn SearchStep(s: Screen) -> impl IntoView {
    let m = msgs(&s.lang);
    view! {
        <crate::app::IslandAssets/>
        {match s.precheck.clone() {
            Some(p) => precheck_view(&s, p, m).into_any(),
            None => view! {
                <h1 id="link-title" tabindex="-1">{m.search_title}</h1>
                <PlanSearch sid=s.sid.clone() lang=s.lang.clone() query=s.query.clone() results=s.results.clone()/>
                {missing_plan_view(&s, m)}
            }
            .into_any(),
        }}
        {payer_view(&s, m, false)}
    }
}

/// The pre-check before the hand-off: the online account the plan's sign-in needs (with where to create one),
/// the sign-in service and plan types when known; continue (the hand-off), choose another plan, or "Remind me
/// later" (ends the session, `PATIENT_CANCELLED` after the `REMIND_LATER` event).
fn precheck_view(s: &Screen, p: PrecheckView, m: &'static Msgs) -> impl IntoView {
    let plan = p.plan.name.clone();
    let portal = p.portal_name.clone().unwrap_or_else(|| plan.clone());
    let account = m.precheck_account.replace("{portal}", &portal).replace("{plan}", &plan);
    let idp = p.identity_provider.as_ref().map(|i| m.precheck_idp.replace("{plan}", &plan).replace("{idp}", i));
    let types = (!p.plan_types.is_empty()).then(|| m.precheck_types.replace("{types}", &p.plan_types.join(", ")));
    let href = handoff_href(&s.sid, &p.plan.id);
    let remind = format!("/link/s/{}/remind-later", s.sid);
    let back = format!("/link/s/{}", s.sid);
    view! {
        <h1 id="link-title" tabindex="-1">{m.precheck_title}</h1>
        <div class="card link-plan-card"><span class="link-plan-name">{plan.clone()}</span></div>
        <p>{account}</p>
        {idp.map(|t| view! { <p>{t}</p> })}
        {types.map(|t| view! { <p>{t}</p> })}
        {p.portal_url.map(|u| view! {
            <p>
                {m.precheck_no_account}" "
                <a href=u target="_blank" rel="noopener noreferrer">{m.precheck_create}</a>
                " "<span class="hint">{m.precheck_new_tab}</span>
            </p>
        })}
        <div class="link-actions">
            <a class="button primary block" href=href rel="external" data-connect=p.plan.id.clone()>
                {m.connect_to.replace("{plan}", &plan)}
            </a>
            <form method="post" action=remind>
                <input type="hidden" name="endpoint" value=p.plan.id.clone() />
                <button type="submit" class="button block" data-event="REMIND_LATER">{m.remind_later}</button>
            </form>
            <a class="button link block" href=back>{m.choose_another}</a>
        </div>
    }
}

/// "Can't find your plan?": a disclosure with a plain form; sending the plan's name ends the session
/// (`PATIENT_CANCELLED`, after the `PLAN_NOT_FOUND` event).
fn missing_plan_view(s: &Screen, m: &'static Msgs) -> impl IntoView {
    let action = format!("/link/s/{}/missing-plan", s.sid);
    view! {
        <details class="link-missing">
            <summary>{m.missing_summary}</summary>
            <form method="post" action=action class="link-missing-form">
                <p id="link-missing-intro">{m.missing_intro}</p>
                <div class="field">
                    <label for="link-missing-name">{m.missing_label}</label>
                    <input
                        id="link-missing-name"
                        name="plan_name"
                        type="text"
                        required
                        maxlength="120"
                        autocomplete="off"
                        aria-describedby="link-missing-intro"
                    />
                </div>
                <button type="submit" class="button block" data-event="PLAN_NOT_FOUND">{m.missing_send}</button>
            </form>
        </details>
    }
}

/// The plan search form and its results (an island). Server-rendered for `query` with `results`; once
/// hydrated, each input asks [`search_plans`] and shows the answer to the newest request only.
#[island]
fn PlanSearch(sid: String, lang: String, query: String, results: Vec<PlanView>) -> impl IntoView {
    let m = msgs(&lang);
    let action = format!("/link/s/{sid}");
    let (text, set_text) = signal(query.clone());
    let list = RwSignal::new(results);
    // Sequence number of the newest search, so a slow answer never replaces a newer one.
    let newest = StoredValue::new(0u64);
    let fetch_sid = sid.clone();
    let on_input = move |ev| {
        let q = event_target_value(&ev);
        set_text.set(q.clone());
        let n = newest.get_value() + 1;
        newest.set_value(n);
        let sid = fetch_sid.clone();
        leptos::task::spawn_local(async move {
            // On failure the previous results stay; the plain form still submits.
            if let Ok(found) = search_plans(sid, q).await {
                if newest.get_value() == n {
                    list.set(found);
                }
            }
        });
    };
    view! {
        <form method="get" action=action role="search" class="link-search" data-event="SEARCH">
            <label for="link-q">{m.search_label}</label>
            <div class="link-search-row">
                <input
                    id="link-q"
                    name="q"
                    type="search"
                    autocomplete="off"
                    spellcheck="false"
                    aria-describedby="link-q-hint"
                    aria-controls="link-results"
                    value=query
                    prop:value=move || text.get()
                    on:input=on_input
                />
                <button type="submit" class="button">{m.search_button}</button>
            </div>
            <p class="hint" id="link-q-hint">{m.search_hint}</p>
        </form>
        {move || {
            let found = list.get();
            let count = found.len();
            view! {
                <p class="visually-hidden" role="status">{format!("{count}")}" "{m.results_label}</p>
                {if found.is_empty() {
                    view! { <p class="hint" id="link-results">{m.no_results}</p> }.into_any()
                } else {
                    view! {
                        <ul class="link-plans" id="link-results" aria-label=m.results_label>
                            {found.into_iter().map(|p| plan_item(&sid, p, m)).collect_view()}
                        </ul>
                    }
                    .into_any()
                }}
            }
        }}
    }
}

fn connect_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let plan = s.endpoint.clone();
    view! {
        <div id="link-step">
            <h1 id="link-title" tabindex="-1">{m.connect_title}</h1>
            <p>{m.connect_intro}</p>
            {plan.map(|p| {
                let href = handoff_href(&s.sid, &p.id);
                view! {
                    <div class="card link-plan-card"><span class="link-plan-name">{p.name.clone()}</span></div>
                    <a class="button primary block" href=href rel="external" data-connect=p.id.clone()>
                        {m.connect_to.replace("{plan}", &p.name)}
                    </a>
                }
            })}
        </div>
        {payer_view(s, m, false)}
    }
    .into_any()
}

/// The "sign in with your plan" panel: the whole screen at the payer step, and a hidden panel on the search and
/// connect screens that frame.js reveals when it opens the popup (so it keeps the popup's handle).
fn payer_view(s: &Screen, m: &'static Msgs, visible: bool) -> AnyView {
    let retry = format!("/link/s/{}/retry", s.sid);
    let reopen = s.endpoint.as_ref().map(|p| handoff_href(&s.sid, &p.id)).unwrap_or_default();
    let blocked = s.wait.as_deref() == Some("blocked");
    let heading_id = if visible { "link-title" } else { "link-wait-title" };
    view! {
        <section id="link-wait" class="link-wait" hidden=!visible aria-labelledby=heading_id>
            <h1 id=heading_id tabindex="-1">{m.payer_title}</h1>
            <p data-wait="waiting" hidden=blocked>{m.payer_waiting}</p>
            <p data-wait="blocked" class="alert warn" hidden=!blocked>{m.payer_blocked}</p>
            <p data-wait="closed" class="alert warn" hidden=true>{m.payer_closed}</p>
            <div class="link-actions">
                <a class="button primary block" href=reopen rel="external" data-reopen="">{m.continue_to_plan}</a>
                {(!s.endpoint_fixed).then(|| view! {
                    <form method="post" action=retry data-wait-cancel="">
                        <button type="submit" class="button link block">{m.choose_another}</button>
                    </form>
                })}
            </div>
        </section>
    }
    .into_any()
}

/// Syncing: progress by resource type, refreshed every second once hydrated.
#[component]
fn SyncingStep(s: Screen) -> impl IntoView {
    let m = msgs(&s.lang);
    view! {
        <crate::app::IslandAssets/>
        <h1 id="link-title" tabindex="-1">{m.syncing_title}</h1>
        <p>{m.syncing_intro}</p>
        <div class="link-spinner" aria-hidden="true"></div>
        <h2 id="link-progress-title">{m.syncing_progress}</h2>
        <SyncProgress sid=s.sid.clone() lang=s.lang.clone() progress=s.progress.clone()/>
        // Without JavaScript nothing polls: the patient reloads this screen (it moves on once the sync is done).
        <noscript>
            <p class="link-actions">
                <a class="button block" href=format!("/link/s/{}", s.sid)>{m.syncing_check_again}</a>
            </p>
        </noscript>
    }
}

/// Records received so far by resource type (an island): server-rendered with `progress`, then asks
/// [`sync_progress`] every second (1,000 ms) once hydrated. frame.js moves the screen on when the sync ends.
#[island]
fn SyncProgress(sid: String, lang: String, progress: Vec<(String, i64)>) -> impl IntoView {
    let m = msgs(&lang);
    let list = RwSignal::new(progress);
    Effect::new(move |_| {
        let sid = sid.clone();
        set_interval(
            move || {
                let sid = sid.clone();
                leptos::task::spawn_local(async move {
                    if let Ok(p) = sync_progress(sid).await {
                        list.set(p);
                    }
                });
            },
            std::time::Duration::from_millis(1000),
        );
    });
    move || {
        let found = list.get();
        if found.is_empty() {
            view! { <p class="hint">{m.syncing_none_yet}</p> }.into_any()
        } else {
            view! {
                <ul class="link-progress" aria-labelledby="link-progress-title" data-testid="sync-progress">
                    {found.into_iter().map(|(t, n)| view! { <li><span>{t}</span><strong>{n}</strong></li> }).collect_view()}
                </ul>
            }
            .into_any()
        }
    }
}

fn success_view(s: &Screen, m: &'static Msgs) -> AnyView {
    if s.multiple_plans && s.step == LinkStep::Success {
        return several_plans_view(s, m);
    }
    let finish = format!("/link/s/{}/finish", s.sid);
    // A hosted flow that already went back to the app (the patient came back here) has nothing left to do.
    let returned = s.hosted && s.step == LinkStep::Done;
    let auto = (s.auto_exit || s.step == LinkStep::Done) && !returned;
    view! {
        <div class="link-success-mark" aria-hidden="true">"✓"</div>
        <h1 id="link-title" tabindex="-1">{m.success_title}</h1>
        <p>{with_app(m.success_intro, &s.app_name)}</p>
        {auto.then(|| view! { <p role="status" class="hint">{with_app(m.success_closing, &s.app_name)}</p> })}
        {if returned {
            view! { <p class="hint">{with_app(m.success_returned, &s.app_name)}</p> }.into_any()
        } else if s.hosted {
            view! { <a class="button primary block" href=finish rel="external" data-finish="">{m.continue_}</a> }.into_any()
        } else if !auto {
            view! { <button type="button" class="button primary block" data-action="success">{m.continue_}</button> }.into_any()
        } else {
            ().into_any()
        }}
    }
    .into_any()
}

/// The success screen of a modal opened with `multiplePlans`: each plan linked is already with the host page
/// (`onSuccess`); the patient connects another plan (back to the search) or is done (the close's success).
fn several_plans_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let another = format!("/link/s/{}/another", s.sid);
    let done = format!("/link/s/{}/exit", s.sid);
    let linked = s.plans_linked + 1;
    view! {
        <div class="link-success-mark" aria-hidden="true">"✓"</div>
        <h1 id="link-title" tabindex="-1">{m.success_title}</h1>
        <p>{with_app(m.success_intro, &s.app_name)}</p>
        {(linked > 1).then(|| view! {
            <p class="hint" data-testid="plans-linked">{m.success_count.replace("{n}", &linked.to_string())}</p>
        })}
        <p>{m.success_more}</p>
        <div class="link-actions">
            <form method="post" action=another>
                <button type="submit" class="button primary block" data-testid="another-plan" data-event="ANOTHER_PLAN">{m.success_another}</button>
            </form>
            <form method="post" action=done>
                <button type="submit" class="button block" data-testid="plans-done">{m.success_done}</button>
            </form>
        </div>
    }
    .into_any()
}

fn error_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let code = s.exit_code.clone().unwrap_or_else(|| "PATIENT_CANCELLED".into());
    let retry = format!("/link/s/{}/retry", s.sid);
    let exit = format!("/link/s/{}/exit", s.sid);
    view! {
        <h1 id="link-title" tabindex="-1">{m.error_title}</h1>
        <p role="alert">{i18n::exit_message(&s.lang, &code)}</p>
        <p class="hint">{m.error_code_label}": "<code data-testid="exit-code">{code.clone()}</code></p>
        <div class="link-actions">
            <form method="post" action=retry>
                <button type="submit" class="button primary block">
                    {if s.endpoint_fixed { m.try_again } else { m.choose_another }}
                </button>
            </form>
            <form method="post" action=exit>
                <button type="submit" class="button block">{m.exit}</button>
            </form>
        </div>
    }
    .into_any()
}

fn exited_view(_s: &Screen, m: &'static Msgs) -> AnyView {
    view! {
        <h1 id="link-title" tabindex="-1">{m.exited_title}</h1>
        <p>{m.exited_intro}</p>
    }
    .into_any()
}

/// A known session that timed out before it ended. The modal's frame.js ends it for the host page at once
/// (`onExit`); a hosted flow offers to go back to the app, which ends it there with `PATIENT_CANCELLED`.
fn expired_view(s: &Screen, m: &'static Msgs) -> AnyView {
    let exit = format!("/link/s/{}/exit", s.sid);
    view! {
        <h1 id="link-title" tabindex="-1">{m.expired_title}</h1>
        <p>{m.expired_intro}</p>
        {s.hosted.then(|| view! {
            <form method="post" action=exit class="link-actions">
                <button type="submit" class="button primary block">{with_app(m.return_to_app, &s.app_name)}</button>
            </form>
        })}
    }
    .into_any()
}

/// Unknown session.
#[component]
fn ExpiredScreen() -> impl IntoView {
    // The session (and its language) is unknown: the language comes from the browser's Accept-Language.
    #[allow(unused_mut)]
    let mut lang = "en";
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
            // Any page may frame this one: it has no action, and it lets the modal of a timed-out session
            // tell its host page (frame.js) instead of being blocked.
            resp.insert_header(crate::server::platform::http::FRAME_ANCESTORS_HEADER, axum::http::HeaderValue::from_static("*"));
        }
        if let Some(parts) = use_context::<axum::http::request::Parts>() {
            let accept = parts.headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
            lang = i18n::negotiate(accept.unwrap_or(""));
        }
    }
    let m = msgs(lang);
    view! {
        <crate::app::PageLang lang=lang/>
        <Title text=m.expired_title/>
        <main class="page narrow" id="main" lang=lang>
            <div class="card" id="link-root" data-step="expired">
                <h1 id="link-title">{m.expired_title}</h1>
                <p>{m.expired_intro}</p>
            </div>
        </main>
        <script src="/link/frame.js" defer></script>
    }
}
