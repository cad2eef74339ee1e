//! The steps' plain HTML forms (`POST /link/s/{sid}/{consent,language,explainer,retry,another,exit,done,missing-plan,remind-later}`): each requires the
//! session's binding (its cookie, or the `bind` field frame.js adds), moves the session on with one conditional
//! update from the step it expects, then redirects to the session's screen (or, in the hosted flow, to the
//! app's `redirect_uri` when the session ends). A post without the binding changes nothing and gets the "opened
//! in another browser" page.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use serde_json::json;

use crate::{
    domain::{ExitCode, LinkEventName, LinkStep},
    i18n::{self, ConsentText, CONSENT_TEXT_VERSION},
    server::{
        services::{
            insights::{self, NewEvent},
            link_flow,
        },
        state::AppState,
        store::{
            apps,
            audit::{self, AuditEntry},
            consents::{self, ConsentChoice, NewConsent},
            endpoints,
            link_sessions::{self, LinkSession},
            plan_requests,
        },
        surfaces::{
            binding::{self, form_field, BIND_FIELD},
            hosted_link::{
                pages::other_browser_page,
                respond::{bound_or_refused, see_other, session_url, FlowResult, Sid},
            },
        },
    },
};

/// Loads the bound live session of a step's post, or returns the response to send instead.
macro_rules! bound {
    ($state:expr, $sid:expr, $headers:expr, $body:expr) => {{
        let field = form_field(&$body, BIND_FIELD);
        match bound_or_refused(&$state, &$sid, &$headers, field.as_deref()).await? {
            Ok(s) => s,
            Err(response) => return Ok(response),
        }
    }};
}

/// The step after consent/explainer: search, or connect when the integrator fixed the endpoint.
pub fn pick_step(s: &LinkSession) -> LinkStep {
    if s.endpoint_fixed {
        LinkStep::Connect
    } else {
        LinkStep::Search
    }
}

/// Ends the session with `code` and answers where the patient goes: the app's `redirect_uri` (hosted flow) or
/// the session's screen (which now shows the ending, and tells the host page).
pub async fn end_with(state: &AppState, s: &LinkSession, code: ExitCode) -> FlowResult {
    let to = link_flow::end(state, s, code).await?;
    Ok(see_other(&to.unwrap_or_else(|| session_url(&s.id))))
}

/// `POST /link/s/{sid}/consent` (`choice` = `given` or `declined`, and the typed `signature` when the app asks for
/// one): records the choice with the exact text shown; declining ends the session.
pub async fn consent(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    let choice = form_field(&body, "choice");
    let signature = form_field(&body, "signature");
    if s.step != LinkStep::Consent {
        return Ok(see_other(&session_url(&sid)));
    }
    let app = apps::get(&state.db, &s.app_id).await?.ok_or_else(|| anyhow::anyhow!("link session of a missing app"))?;
    let given = choice.as_deref() == Some("given");
    let signature = signature
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(200).collect::<String>());
    if given && app.require_signature && signature.is_none() {
        return Ok(see_other(&format!("{}?err=signature", session_url(&sid))));
    }
    let mut text = ConsentText::new(&s.options.language, &app.name, s.usage.as_str(), &s.options.requested_resources);
    if s.repair_authorization_id.is_some() {
        text = text.renewal(&s.options.language, &app.name);
    }
    let text = text.plain();
    let scope = link_flow::consent_scope(&s);
    let now = state.clock.now();
    let consent = NewConsent {
        session: &s,
        scope: &scope,
        text: &text,
        language: &s.options.language,
        choice: if given { ConsentChoice::Given } else { ConsentChoice::Declined },
        signature_name: if given { signature.as_deref() } else { None },
    };
    consents::record(&state.db, now, consent).await?;
    let entry = AuditEntry {
        actor: "patient",
        action: if given { "consent.given" } else { "consent.declined" },
        app_id: Some(&s.app_id),
        detail: Some(json!({"usage": s.usage.as_str(), "scope": scope, "text_version": CONSENT_TEXT_VERSION,
                            "renewal": s.repair_authorization_id.is_some()})),
        ..Default::default()
    };
    audit::record(&state.db.pool, now, entry).await?;
    let name = if given { LinkEventName::ConsentGiven } else { LinkEventName::ConsentDeclined };
    insights::note(&state.db, now, &s, NewEvent::new(name, LinkStep::Consent)).await;
    if !given {
        return end_with(&state, &s, ExitCode::PatientCancelled).await;
    }
    let next = if s.options.skip_explainer { pick_step(&s) } else { LinkStep::Explainer };
    link_sessions::advance(&state.db, now, &sid, LinkStep::Consent, next, None).await?;
    Ok(see_other(&session_url(&sid)))
}

/// `POST /link/s/{sid}/language` (`language` = `en`, `es` or `ko`): the consent screen's language picker. Keeps the
/// choice on the session (`options.language`: every later screen, the consent text recorded and the payer window's
/// pages are in it), records `LANGUAGE_CHANGED` with `{from, to}`, and shows the screen again. After the consent
/// step, with a language we do not ship or the one already chosen, nothing changes.
pub async fn language(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    let to = form_field(&body, "language").as_deref().and_then(i18n::shipped);
    if let Some(to) = to.filter(|to| s.step == LinkStep::Consent && *to != s.options.language) {
        let now = state.clock.now();
        link_sessions::set_language(&state.db, now, &s, to).await?;
        let event = NewEvent::new(LinkEventName::LanguageChanged, LinkStep::Consent)
            .detail(json!({"from": s.options.language, "to": to}));
        insights::note(&state.db, now, &s, event).await;
    }
    Ok(see_other(&session_url(&sid)))
}

/// `POST /link/s/{sid}/explainer`: on to search (or connect).
pub async fn explainer(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    link_sessions::advance(&state.db, state.clock.now(), &sid, LinkStep::Explainer, pick_step(&s), None).await?;
    Ok(see_other(&session_url(&sid)))
}

/// `POST /link/s/{sid}/retry`: back to search (or connect) after a recoverable error or an abandoned sign-in
/// (the sign-in it abandons can no longer finish: its payer requests are voided).
pub async fn retry(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    if matches!(s.step, LinkStep::Error | LinkStep::Payer | LinkStep::Search | LinkStep::Connect) {
        link_flow::back_to_plans(&state, &s, pick_step(&s)).await?;
    }
    Ok(see_other(&session_url(&sid)))
}

/// `POST /link/s/{sid}/another`: "Connect another plan" on the success screen of a session opened with
/// `multiplePlans`: back to the plan search ([`link_flow::another_plan`]). Any other session or step just shows
/// the session's screen again (an integrator that did not opt in never goes back to search after success).
pub async fn another(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    if s.expires_at > state.clock.now() {
        link_flow::another_plan(&state, &s).await?;
    }
    Ok(see_other(&session_url(&sid)))
}

/// `POST /link/s/{sid}/missing-plan` (`plan_name`): "Can't find your plan?" at the search step. Stores the name
/// the patient typed for the operator (`link-sdk endpoints requests`; nothing else of the patient), then ends the
/// session with `PATIENT_CANCELLED`, after the `PLAN_NOT_FOUND` event (recorded here; the page sends its onEvent). An empty name, or
/// another step, just shows the session's screen again.
pub async fn missing_plan(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    let name = form_field(&body, "plan_name").map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let Some(name) = name.filter(|_| at_live_search(&state, &s)) else { return Ok(see_other(&session_url(&sid))) };
    let now = state.clock.now();
    plan_requests::record(&state.db, now, &s.app_id, s.mode, &name, &s.options.language).await?;
    insights::note(&state.db, now, &s, NewEvent::new(LinkEventName::PlanNotFound, s.step)).await;
    end_with(&state, &s, ExitCode::PatientCancelled).await
}

/// `POST /link/s/{sid}/remind-later`: "Remind me later" on the pre-check screen ends the session with
/// `PATIENT_CANCELLED`, after the `REMIND_LATER` event (recorded with the plan, `endpoint`; the page sends its
/// onEvent too). Another step just shows the session's screen again.
pub async fn remind_later(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    if !at_live_search(&state, &s) {
        return Ok(see_other(&session_url(&sid)));
    }
    // The plan whose pre-check it was (a form field: only an endpoint of the directory is named in the event).
    let mut event = NewEvent::new(LinkEventName::RemindLater, s.step);
    if let Some(id) = form_field(&body, "endpoint").filter(|id| uuid::Uuid::parse_str(id).is_ok()) {
        if endpoints::get(&state.db, &id).await?.is_some_and(|e| e.mode == s.mode) {
            event = event.endpoint(&id);
        }
    }
    insights::note(&state.db, state.clock.now(), &s, event).await;
    end_with(&state, &s, ExitCode::PatientCancelled).await
}

/// `POST /link/s/{sid}/event` (`name`, and `queryLength` or `endpoint`): a step only the page sees, sent by
/// frame.js as a beacon (see [`insights::client_event`]: `SEARCH`, `ENDPOINT_SELECTED`, `POPUP_BLOCKED`,
/// `POPUP_CLOSED`). Bound like every step; answers 204 whether or not it was kept (an unknown name, an ended
/// session or one over its quota records nothing).
pub async fn event(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    let endpoint_id = form_field(&body, "endpoint").filter(|id| uuid::Uuid::parse_str(id).is_ok());
    let endpoint_known = match endpoint_id.as_deref() {
        Some(id) => endpoints::get(&state.db, id).await?.is_some_and(|e| e.mode == s.mode),
        None => false,
    };
    let reported = insights::ClientEvent {
        name: form_field(&body, "name").unwrap_or_default(),
        query_length: form_field(&body, "queryLength").and_then(|n| n.parse().ok()),
        endpoint_id,
    };
    insights::client_event(&state.db, state.clock.now(), &s, reported, endpoint_known).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether the session is at the plan search (where the pre-check is shown too) and has not timed out.
fn at_live_search(state: &AppState, s: &LinkSession) -> bool {
    s.step == LinkStep::Search && s.expires_at > state.clock.now()
}

/// `POST /link/s/{sid}/exit`: the close button (×), Esc, the error screen's Exit, the expired screen's Return,
/// and link.js closing the modal (a beacon from frame.js). What closing means, per step (the contract in
/// `public/link.d.ts`):
/// - before the payer authorized: `PATIENT_CANCELLED`;
/// - on the error screen: that error's code;
/// - after the payer authorized (syncing, success): success, with the `public_token` `onSyncing` delivered (the
///   sync goes on; the integrator's backend sees 429 until the data is ready);
/// - a session that timed out before it ended: `PATIENT_CANCELLED`;
/// - an ended session: its ending again (the screen repeats it to the host page; a hosted flow already went back
///   to the app);
/// - a `multiplePlans` session that linked a plan: success at any step ("Done" on its success screen is this
///   close), see [`link_flow::finish_linked`].
///
/// The hosted flow ends with a 303 to its `redirect_uri` (its screens' CSP allows that target, see
/// `ScreenPolicy`); the modal's screen then tells the host page.
pub async fn exit(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let Some(s) = link_sessions::get(&state.db, &sid).await? else { return Ok(see_other(&session_url(&sid))) };
    let field = form_field(&body, BIND_FIELD);
    if !link_flow::is_bound(&s, binding::presented(&state, &headers, &sid, field.as_deref())) {
        return Ok(other_browser_page(&s.options.language, s.host_origin.as_deref(), &s.nonce));
    }
    if s.options.multiple_plans && s.redirect_uri.is_none() && !s.step.is_ended() && link_flow::has_linked_plans(&s) {
        link_flow::finish_linked(&state, &s).await?;
        return Ok(see_other(&session_url(&sid)));
    }
    if s.expires_at <= state.clock.now() {
        if s.step.is_ended() {
            return Ok(see_other(&session_url(&sid)));
        }
        return end_with(&state, &s, ExitCode::PatientCancelled).await;
    }
    match s.step {
        LinkStep::Exited | LinkStep::Done => Ok(see_other(&session_url(&sid))),
        LinkStep::Syncing | LinkStep::Success => match s.host_origin {
            // Top-level (a `redirect_uri`, or a hosted link's "done" screen): the result is handed over now.
            None => match link_flow::finish_hosted(&state, &s).await? {
                Some(url) => Ok(see_other(&url)),
                None => Ok(see_other(&session_url(&sid))),
            },
            Some(_) => {
                let now = state.clock.now();
                let moved = link_sessions::advance(&state.db, now, &sid, s.step, LinkStep::Done, None).await?;
                if moved && s.step == LinkStep::Syncing {
                    // The modal hands the `public_token` over while the sync runs: that is the session's success.
                    let done = LinkSession { step: LinkStep::Done, ..s.clone() };
                    insights::note(&state.db, now, &done, NewEvent::new(LinkEventName::Success, s.step)).await;
                }
                Ok(see_other(&session_url(&sid)))
            }
        },
        // The error's own code.
        LinkStep::Error => end_with(&state, &s, s.exit_code.unwrap_or(ExitCode::PatientCancelled)).await,
        LinkStep::Consent
        | LinkStep::Explainer
        | LinkStep::Search
        | LinkStep::Connect
        | LinkStep::Payer
        | LinkStep::Authorized => end_with(&state, &s, ExitCode::PatientCancelled).await,
    }
}

/// `POST /link/s/{sid}/done`: the modal has told the host page about success: forget the sealed public token.
pub async fn done(State(state): State<AppState>, Sid(sid): Sid, headers: HeaderMap, body: Bytes) -> FlowResult {
    let s = bound!(state, sid, headers, body);
    let now = state.clock.now();
    if matches!(s.step, LinkStep::Success | LinkStep::Done) {
        link_sessions::advance(&state.db, now, &sid, LinkStep::Success, LinkStep::Done, None).await?;
        link_sessions::clear_public_token(&state.db, now, &sid).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
