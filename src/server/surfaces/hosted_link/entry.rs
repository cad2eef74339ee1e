//! `GET /link?publishableKey&externalId&usage&origin&nonce&…` (or `…&repairToken` for repair mode): the
//! `create()` options as link.js (or the hosted flow's link) sends them. Validates them in order, creates the session and redirects to its first screen, or
//! ends at once with an [`ExitCode`] (an exit page for the modal, `redirect_uri?error=…` for the hosted flow).
//!
//! A session needs somewhere to deliver its result: an allowed `origin` (the modal's host page) or a registered
//! `redirect_uri` (the hosted flow); a request with neither is refused. The browser that asked gets the session's
//! binder (`services::link_flow::new_binder`) as a cookie and, in the modal, also in the first screen's URL
//! fragment (see `surfaces::binding`).

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use secrecy::ExposeSecret as _;
use serde::Deserialize;

use crate::{
    domain::{ExitCode, Mode, Usage},
    i18n,
    server::{
        platform::{crypto, rate_limit::Limited, tls::ClientIp},
        services::{
            insights,
            link_flow::{self, redirect_with},
            repair,
        },
        state::AppState,
        store::{
            apps::{self, App},
            authorizations, endpoints,
            link_sessions::{NewSession, SessionOptions},
        },
        surfaces::{
            binding,
            hosted_link::{
                origins::{origin_allowed, origin_hint, valid_origin},
                pages::{ending_page, exit_page, exit_page_with_hint, plain_page},
                respond::{see_other, session_url, FlowResult, PageQuery},
            },
        },
    },
};

/// Query of `GET /link` (the `create()` options as link.js sends them; the hosted flow uses the same names).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryParams {
    publishable_key: Option<String>,
    external_id: Option<String>,
    usage: Option<String>,
    endpoint: Option<String>,
    origin: Option<String>,
    nonce: Option<String>,
    auto_exit: Option<String>,
    skip_syncing: Option<String>,
    skip_explainer: Option<String>,
    multiple_plans: Option<String>,
    requested_resources: Option<String>,
    language: Option<String>,
    #[serde(rename = "redirect_uri")]
    redirect_uri: Option<String>,
    state: Option<String>,
    /// Repair mode: a repair token from `POST /link/repair` (single use; `externalId`, `usage` and `endpoint` then
    /// come from its authorization).
    repair_token: Option<String>,
}

fn flag(v: &Option<String>, default: bool) -> bool {
    match v.as_deref() {
        Some("true") | Some("1") => true,
        Some("false") | Some("0") => false,
        _ => default,
    }
}

fn valid_nonce(n: &str) -> bool {
    (8..=128).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// FHIR resource type names from the comma-separated `requestedResources` (anything else is dropped).
fn requested_resources(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|r| {
            !r.is_empty()
                && r.len() < 64
                && r.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && r.chars().all(|c| c.is_ascii_alphabetic())
        })
        .map(str::to_string)
        .collect()
}

/// How a failure at the entry reaches whoever asked: the modal's host page through an exit page, or the hosted
/// flow's registered `redirect_uri`.
struct Ending<'a> {
    lang: &'static str,
    host_origin: Option<String>,
    nonce: String,
    redirect_uri: Option<&'a str>,
    client_state: Option<String>,
}

impl Ending<'_> {
    fn fail(&self, code: ExitCode) -> Response {
        match self.redirect_uri {
            Some(ru) => {
                let mut params = vec![("error", code.as_str())];
                if let Some(s) = &self.client_state {
                    params.push(("state", s));
                }
                see_other(&redirect_with(ru, &params))
            }
            // Bad input: 400, with the page that tells the modal's host page the code.
            None => {
                let mut page = exit_page(self.lang, self.host_origin.as_deref(), &self.nonce, code);
                *page.status_mut() = StatusCode::BAD_REQUEST;
                page
            }
        }
    }
}

/// A session's settings once every option checked out.
struct Valid {
    app: App,
    mode: Mode,
    external_id: String,
    usage: Usage,
    endpoint_id: Option<String>,
    options: SessionOptions,
    /// Repair mode: the authorization the session renews.
    repairs: Option<String>,
}

/// `GET /link`.
pub async fn entry(
    State(state): State<AppState>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    PageQuery(p): PageQuery<EntryParams>,
) -> FlowResult {
    let lang = i18n::choose(p.language.as_deref(), headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()));
    let mut ending = Ending {
        lang,
        host_origin: p.origin.clone().filter(|o| valid_origin(o)),
        nonce: p.nonce.clone().filter(|n| valid_nonce(n)).unwrap_or_else(|| crypto::random_id(16)),
        redirect_uri: None,
        client_state: p.state.clone().map(|s| s.chars().take(512).collect::<String>()),
    };
    // Sessions per client address: a burst of requests must not become a burst of sessions.
    if let Err(limited) = state.limits.sessions.check(client.map(|c| c.0 .0)) {
        return Ok(rate_limited(&ending, limited));
    }
    let valid = match validate(&state, &p, &mut ending).await? {
        Ok(v) => v,
        Err(response) => return Ok(response),
    };
    let now = state.clock.now();
    let hosted = ending.redirect_uri.is_some();
    let (binder, binder_hash) = link_flow::new_binder();
    let mut tx = state.db.begin_write().await?;
    let sid = link_flow::open_session(
        &mut tx,
        now,
        NewSession {
            app_id: &valid.app.id,
            mode: valid.mode,
            external_id: &valid.external_id,
            usage: valid.usage,
            options: valid.options,
            endpoint_id: valid.endpoint_id.as_deref(),
            host_origin: if hosted { None } else { ending.host_origin.as_deref() },
            redirect_uri: ending.redirect_uri,
            client_state: ending.client_state.as_deref(),
            nonce: &ending.nonce,
            code_challenge: None,
            binder_hash: Some(&binder_hash),
        },
        valid.repairs.as_deref(),
    )
    .await?;
    tx.commit().await?;
    insights::opened(&state.db, now, &sid).await;
    // The modal's frame keeps a copy of the binder (from the fragment, which no server sees), so it works with
    // third-party cookies blocked; the hosted flow is first-party and needs only the cookie.
    let to = if hosted { session_url(&sid) } else { format!("{}#bind={}", session_url(&sid), binder.expose_secret()) };
    let mut resp = see_other(&to);
    if let Some(v) = binding::binder_cookie(&state, &sid, &binder, !hosted) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// The answer to a session creation over the limit: 429 with `Retry-After`; in the modal an ending page
/// (`onExit({code: 'RATE_LIMITED'})`), else a plain page.
fn rate_limited(ending: &Ending<'_>, limited: Limited) -> Response {
    let m = i18n::msgs(ending.lang);
    let mut resp = ending_page(
        ending.lang,
        ending.host_origin.as_deref(),
        &ending.nonce,
        ExitCode::RateLimited,
        (m.rate_limited_title, m.rate_limited_intro),
        None,
    );
    limited.apply(&mut resp);
    resp
}

/// Checks the options in the order integrators expect the exit codes: key, redirect target, origin, user,
/// usage, endpoint. `Ok(Err(response))` ends the request with that response.
async fn validate<'a>(
    state: &AppState,
    p: &'a EntryParams,
    ending: &mut Ending<'a>,
) -> anyhow::Result<Result<Valid, Response>> {
    let pk = p.publishable_key.clone().unwrap_or_default();
    if Mode::of_publishable_key(&pk).is_none() {
        return Ok(Err(ending.fail(ExitCode::InvalidPublishableKey)));
    }
    let Some((app, mode)) = apps::by_publishable_key(&state.db, &pk).await? else {
        return Ok(Err(ending.fail(ExitCode::InvalidPublishableKey)));
    };
    if let Some(ru) = &p.redirect_uri {
        if !app.redirect_uris.iter().any(|r| r == ru) {
            tracing::warn!(app_id = %app.id, "hosted link with an unregistered redirect_uri");
            let page = plain_page(
                ending.lang,
                "The app could not start the connection.",
                "This redirect address is not registered for the app.",
            );
            return Ok(Err((StatusCode::BAD_REQUEST, page).into_response()));
        }
        // From here on, failures go back to the app's registered redirect_uri.
        ending.redirect_uri = Some(ru);
    }
    if p.origin.is_none() && ending.redirect_uri.is_none() {
        // Nowhere to deliver the result: link.js always sends its page's origin; a hosted flow names its
        // registered redirect_uri. (A session anyone could finish from a bare HTTP client is not made.)
        tracing::warn!(app_id = %app.id, "link opened with neither an origin nor a redirect_uri: refused");
        let page = plain_page(
            ending.lang,
            "The app could not start the connection.",
            "Open Link from the app's page (link.js) or with a registered redirect_uri.",
        );
        return Ok(Err((StatusCode::BAD_REQUEST, page).into_response()));
    }
    if let Some(origin) = &p.origin {
        if ending.host_origin.is_none() || !origin_allowed(state, &app, mode, origin) {
            // Origins are public (every request carries its page's); the log names the fix for the operator.
            tracing::warn!(app_id = %app.id, origin = %origin.chars().take(200).collect::<String>().escape_debug(),
                "link opened from an origin the app has not registered: `link-sdk apps update --app <id> --allowed-origin <origin>`");
            if ending.redirect_uri.is_some() {
                return Ok(Err(ending.fail(ExitCode::InvalidPublishableKey)));
            }
            let hint = ending.host_origin.as_deref().map(|o| origin_hint(o, mode));
            let mut page = exit_page_with_hint(ending.lang, ending.host_origin.as_deref(), &ending.nonce, ExitCode::InvalidPublishableKey, hint);
            *page.status_mut() = StatusCode::FORBIDDEN;
            return Ok(Err(page));
        }
    }
    if let Some(token) = p.repair_token.as_deref() {
        return Ok(repair_session(state, p, ending, app, mode, token).await?);
    }
    let external_id = p.external_id.clone().unwrap_or_default();
    if !link_flow::valid_external_id(&external_id) {
        return Ok(Err(ending.fail(ExitCode::InvalidUser)));
    }
    let Some(usage) = p.usage.as_deref().and_then(Usage::parse) else {
        return Ok(Err(ending.fail(ExitCode::InvalidUsage)));
    };
    let endpoint_id = match p.endpoint.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(e) if uuid::Uuid::parse_str(e).is_err() => return Ok(Err(ending.fail(ExitCode::InvalidEndpoint))),
        Some(e) => match endpoints::get(&state.db, e).await? {
            Some(ep) if ep.mode != mode => return Ok(Err(ending.fail(ExitCode::EndpointModeMismatch))),
            Some(ep) => Some(ep.id),
            None => return Ok(Err(ending.fail(ExitCode::InvalidEndpoint))),
        },
    };
    let options = SessionOptions {
        auto_exit: flag(&p.auto_exit, true),
        skip_syncing: flag(&p.skip_syncing, false),
        skip_explainer: flag(&p.skip_explainer, false),
        requested_resources: requested_resources(p.requested_resources.as_deref()),
        // The hosted flow ends with one redirect carrying one result: several plans are the modal's.
        multiple_plans: flag(&p.multiple_plans, false) && ending.redirect_uri.is_none(),
        language: ending.lang.into(),
    };
    Ok(Ok(Valid { app, mode, external_id: external_id.trim().to_string(), usage, endpoint_id, options, repairs: None }))
}

/// Repair mode (`repairToken`): the token is redeemed now (single use, see `services::repair::redeem`), and the
/// session takes the user, usage and plan of the authorization it repairs (`externalId` and `usage`, when given,
/// must be the same, else `INVALID_USER` / `INVALID_USAGE` with the token unspent); plan search and the explainer
/// are skipped, and a session repairs one plan.
async fn repair_session<'a>(
    state: &AppState,
    p: &'a EntryParams,
    ending: &Ending<'a>,
    app: App,
    mode: Mode,
    token: &str,
) -> anyhow::Result<Result<Valid, Response>> {
    let named = repair::Named { external_id: p.external_id.as_deref(), usage: p.usage.as_deref(), endpoint_id: None };
    let a = match repair::redeem(state, token, &app.id, mode, named).await? {
        Ok(a) => a,
        Err(code) => return Ok(Err(ending.fail(code))),
    };
    let options = SessionOptions {
        auto_exit: flag(&p.auto_exit, true),
        skip_syncing: flag(&p.skip_syncing, false),
        skip_explainer: true,
        requested_resources: authorizations::resource_types(&state.db, &a.id).await?,
        multiple_plans: false,
        language: ending.lang.into(),
    };
    Ok(Ok(Valid {
        app,
        mode,
        external_id: a.external_id.clone(),
        usage: a.usage,
        endpoint_id: Some(a.endpoint_id.clone()),
        options,
        repairs: Some(a.id),
    }))
}
