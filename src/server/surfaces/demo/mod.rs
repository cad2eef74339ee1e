//! The demo integrator app at /demo, and local-mode bootstrap (demo app with test keys).
//!
//! The demo is written the way an integrator would write their own app, using only the public contract:
//! its page loads `/link.js` and calls `FlexpaLink.create(...)` / `open()`; its backend (the `/demo/api/*`
//! routes) exchanges the `public_token` with the secret key over HTTP (`POST /link/exchange`), keeps the
//! access tokens server-side, and reads Coverage and ExplanationOfBenefit through `GET /fhir/...`, waiting
//! out `429 Retry-After` while the sync runs. It never calls our Rust functions for any of that: it could
//! be a separate process.
//!
//! The demo's "session store" is an HttpOnly cookie sealed with the server's AES-256-GCM keyring (the page's
//! script cannot read it, and a tampered cookie fails authentication), so the demo needs no tables of its own
//! and works across instances. Its secret key lives in `{data-dir}/demo-app.json` (mode 0600) because the
//! database only holds its hash; that file exists in local mode only, so `/demo` is inert in production.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use anyhow::Context as _;
use axum::{
    extract::{Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::server::{platform::crypto, state::AppState, store::apps::{self, AppUpdate, NewApp}};
use crate::domain::Mode;

/// Name of the app created for the demo in local mode.
pub const DEMO_APP_NAME: &str = "Demo app";
/// File under `--data-dir` holding the demo app's test keys (0600; local mode only).
pub const DEMO_KEYS_FILE: &str = "demo-app.json";
const COOKIE: &str = "demo_session";
const COOKIE_AAD: &str = "link-sdk demo session v1";
/// Links kept per demo session (bounds the cookie's size).
const MAX_LINKS: usize = 10;
/// How long the demo backend itself waits out `429 Retry-After` before telling the page to poll again.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(6);

/// The demo app's test keys as kept in [`DEMO_KEYS_FILE`].
#[derive(Clone, Serialize, Deserialize)]
struct DemoKeys {
    app_id: String,
    publishable_key: String,
    secret_key: String,
}

impl std::fmt::Debug for DemoKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoKeys").field("app_id", &self.app_id).field("secret_key", &"[redacted]").finish()
    }
}

fn keys_path(state: &AppState) -> PathBuf {
    state.settings.data_dir.join(DEMO_KEYS_FILE)
}

/// The local demo app's keys; never in production mode, even if a file was left from a local run.
fn read_keys(state: &AppState) -> Option<DemoKeys> {
    if state.settings.run_mode != crate::server::settings::RunMode::Local {
        return None;
    }
    let text = std::fs::read_to_string(keys_path(state)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_keys(state: &AppState, keys: &DemoKeys) -> anyhow::Result<()> {
    let path = keys_path(state);
    std::fs::create_dir_all(&state.settings.data_dir)?;
    // write_private refuses to overwrite, which is right for key files generally; here we replace it (a file
    // that is not there is fine; any other failure shows in write_private's error).
    let _ = std::fs::remove_file(&path);
    crypto::write_private(&path, &serde_json::to_string_pretty(keys)?)
}

/// Local-mode start-up: creates the demo app with test keys once and returns what the banner prints.
///
/// The app's allowed origin and redirect URI follow `state.public_url`, which can change between runs
/// (another port), so they are rewritten at every start. The secret key is kept in a 0600 file under
/// `--data-dir` so it can be printed at each start (when stdout is a terminal) and used by the demo's backend.
///
/// # Errors
/// Database or file-system errors.
pub async fn bootstrap_local(state: &AppState) -> anyhow::Result<Vec<String>> {
    let now = state.clock.now();
    let origin = state.public_url.to_string();
    let redirect = format!("{origin}/demo/callback");
    let keys = match trusted_keys(state, now).await? {
        Some(k) => k,
        None => {
            let k = recover_or_create_app(state, now, &origin, &redirect).await?;
            write_keys(state, &k).context("writing the demo app's keys")?;
            k
        }
    };
    apps::update(
        &state.db,
        now,
        &keys.app_id,
        AppUpdate {
            allowed_origins: Some(vec![origin.clone()]),
            redirect_uris: Some(vec![redirect]),
            ..Default::default()
        },
    )
    .await?;
    Ok(banner(state, &keys))
}

/// The keys of [`DEMO_KEYS_FILE`] when its secret key still authenticates the same app in test mode.
async fn trusted_keys(state: &AppState, now: i64) -> anyhow::Result<Option<DemoKeys>> {
    let mut keys = None;
    if let Some(k) = read_keys(state) {
        // The file is only trusted if the database agrees (the database may have been reset or replaced).
        if let Some((app, Mode::Test)) = apps::by_secret_key(&state.db, now, &k.secret_key).await? {
            if app.id == k.app_id {
                keys = Some(k);
            }
        }
    }
    Ok(keys)
}

/// New keys for the demo app when the file cannot be trusted: a new test secret of the existing demo app, or a
/// new demo app allowing `origin` and `redirect`.
async fn recover_or_create_app(state: &AppState, now: i64, origin: &str, redirect: &str) -> anyhow::Result<DemoKeys> {
    use secrecy::ExposeSecret as _;
    // The file was lost but the app may exist: rotate its test secret rather than add a second demo app.
    let existing = apps::list(&state.db)
        .await?
        .into_iter()
        .find(|a| a.name == DEMO_APP_NAME && a.redirect_uris.iter().any(|r| r.ends_with("/demo/callback")));
    let k = match existing {
        Some(app) => {
            let sk = apps::rotate_secret(&state.db, now, &app.id, Mode::Test, 0).await?;
            let pk = apps::keys(&state.db, &app.id)
                .await?
                .into_iter()
                .find(|k| k.mode == Mode::Test)
                .context("demo app has no test key")?
                .publishable_key;
            DemoKeys { app_id: app.id, publishable_key: pk, secret_key: sk.expose_secret().to_string() }
        }
        None => {
            let (app, created) = apps::create(
                &state.db,
                now,
                NewApp {
                    name: DEMO_APP_NAME.into(),
                    allowed_origins: vec![origin.to_string()],
                    redirect_uris: vec![redirect.to_string()],
                    webhook_url: None,
                    logo_url: None,
                    brand_color: Some("#3b5bdb".into()),
                },
            )
            .await?;
            DemoKeys {
                app_id: app.id,
                publishable_key: created.test_publishable,
                secret_key: created.test_secret.expose_secret().to_string(),
            }
        }
    };
    Ok(k)
}

/// The start-up banner's lines about the demo app.
fn banner(state: &AppState, keys: &DemoKeys) -> Vec<String> {
    // The secret key is shown to a person at a terminal only; when stdout is captured (CI logs, a service
    // manager's journal) it would land in log storage, so the banner points at the file instead.
    let secret_line = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        format!("  secret key:      {}", keys.secret_key)
    } else {
        "  secret key:      in that file (printed only to a terminal)".to_string()
    };
    vec![
        format!("Demo app (test mode), keys kept in {}:", keys_path(state).display()),
        format!("  publishable key: {}", keys.publishable_key),
        secret_line,
    ]
}

/// Routes of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/demo", get(page))
        .route("/demo/", get(|| async { Redirect::permanent("/demo") }))
        .route("/demo/demo.js", get(script))
        .route("/demo/demo.css", get(stylesheet))
        .route("/demo/hosted", get(hosted_start))
        .route("/demo/callback", get(hosted_callback))
        .route("/demo/api/exchange", post(api_exchange))
        .route("/demo/api/records", get(api_records))
        .route("/demo/api/revoke", post(api_revoke))
        .route("/demo/api/keys", post(api_keys))
}

// ---------------------------------------------------------------------------------------------------------
// The demo's session: an HttpOnly cookie sealed with the server's keyring.

/// One linked plan, as the demo's backend remembers it.
#[derive(Clone, Serialize, Deserialize)]
struct DemoLink {
    /// The demo's own id for this link (what the page sends to revoke).
    id: String,
    access_token: String,
    patient: Option<String>,
    endpoint_name: String,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct DemoSession {
    external_id: String,
    links: Vec<DemoLink>,
    /// Keys of an app the developer brought ("Use your own app"), instead of the local demo app's.
    #[serde(default)]
    own_keys: Option<DemoKeys>,
    /// The `state` sent with the hosted (`redirect_uri`) flow, checked when it comes back (CSRF).
    #[serde(default)]
    hosted_state: Option<String>,
}

/// The keys the demo acts with: the developer's own app when given, else the local demo app.
fn effective_keys(state: &AppState, session: &DemoSession) -> Option<DemoKeys> {
    session.own_keys.clone().or_else(|| read_keys(state))
}

fn read_session(state: &AppState, headers: &HeaderMap) -> Option<DemoSession> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(&format!("{COOKIE}=")).map(str::to_owned))
        .next()?;
    let (sealed, key_id) = raw.split_once('.')?;
    let sealed = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    let plain = state.cipher.open(&sealed, key_id, COOKIE_AAD.as_bytes()).ok()?;
    serde_json::from_slice(&plain).ok()
}

fn session_cookie(state: &AppState, s: &DemoSession) -> HeaderValue {
    let plain = serde_json::to_vec(s).unwrap_or_default();
    let (sealed, key_id) = state.cipher.seal(&plain, COOKIE_AAD.as_bytes());
    let secure = if state.public_url.starts_with("https://") { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={}.{key_id}; Path=/demo; HttpOnly; SameSite=Lax; Max-Age=86400{secure}",
        URL_SAFE_NO_PAD.encode(sealed)
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn new_session() -> DemoSession {
    DemoSession { external_id: format!("demo-user-{}", crypto::random_id(6)), links: Vec::new(), own_keys: None, hosted_state: None }
}

/// Rejects cross-site calls to the demo's state-changing API: a browser sends `Origin` on POST.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(o) => o == &*state.public_url,
        None => true,
    }
}

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

// ---------------------------------------------------------------------------------------------------------
// The page and its static files.

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

#[derive(Deserialize)]
struct PageQuery {
    exit: Option<String>,
}

async fn page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let existing = read_session(&state, &headers);
    let session = existing.clone().unwrap_or_else(new_session);
    let keys = effective_keys(&state, &session);
    let view = page_view(&session, keys.as_ref(), q.exit.as_deref());
    let mut res = Html(render_page(&view, &state.public_url)).into_response();
    if existing.is_none() {
        res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
    }
    res
}

/// What the demo page shows: the visitor, the app the demo acts with, the notice of the last Link exit. Plain
/// text that [`render_page`] escapes, except `app_line`.
struct PageView {
    /// The publishable key the page opens Link with (empty when the demo has no keys).
    pk: String,
    mode_badge: &'static str,
    /// HTML (the app id in it is escaped).
    app_line: String,
    external_id: String,
    notice: String,
    connect_disabled: &'static str,
    reset: &'static str,
    open_own: &'static str,
}

/// The page's content for `session`, acting with `keys`; `exit` is the `onExit` code the page came back with.
fn page_view(session: &DemoSession, keys: Option<&DemoKeys>, exit: Option<&str>) -> PageView {
    let notice = exit
        .filter(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
        .map(|c| format!("Link closed: {c}"))
        .unwrap_or_default();
    let (pk, mode_badge, app_line) = match keys {
        Some(k) => (
            k.publishable_key.clone(),
            if k.publishable_key.starts_with("pk_live_") { "live mode" } else { "test mode" },
            if session.own_keys.is_some() {
                format!("Using your app <code>{}</code>.", esc(&k.app_id))
            } else {
                "Using the local demo app.".to_string()
            },
        ),
        None => (
            String::new(),
            "no app",
            "No demo app here (it exists only in local mode): use your own app's keys below.".to_string(),
        ),
    };
    let connect_disabled = if keys.is_some() { "" } else { " disabled" };
    let reset = if session.own_keys.is_some() {
        r#"<button type="button" id="reset-keys" class="secondary" data-testid="reset-keys">Back to the demo app</button>"#
    } else {
        ""
    };
    PageView {
        pk,
        mode_badge,
        app_line,
        external_id: session.external_id.clone(),
        notice,
        connect_disabled,
        reset,
        open_own: if keys.is_none() || session.own_keys.is_some() { " open" } else { "" },
    }
}

/// The demo page's HTML; `origin` is the server's public URL (named as the origin an own app must allow).
fn render_page(view: &PageView, origin: &str) -> String {
    let PageView { pk, mode_badge, app_line, external_id, notice, connect_disabled, reset, open_own } = view;
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo integrator app · Link SDK</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/demo/demo.css">
<script src="/link.js" defer></script>
<script src="/demo/demo.js" defer></script>
</head>
<body>
<header class="top"><span class="brand">Acme Care <small>demo integrator app</small></span><span class="badge">{mode_badge}</span></header>
<main id="demo" data-publishable-key="{pk}" data-external-id="{uid}">
  <h1>Your health records, in one place</h1>
  <p class="lede">This page plays the part of an integrator's app. It opens Link with its publishable key, sends the
  <code>public_token</code> to its own backend, which exchanges it with the secret key and reads your plan's data
  through the FHIR API.</p>
  <p class="muted">Signed in as <code data-testid="external-id">{uid}</code> (the <code>user.externalId</code> sent to Link). {app_line}</p>
  <fieldset class="usage">
    <legend>How long may we read your data?</legend>
    <label><input type="radio" name="usage" value="ONE_TIME" checked> Once (<code>ONE_TIME</code>)</label>
    <label><input type="radio" name="usage" value="MULTIPLE"> Ongoing (<code>MULTIPLE</code>)</label>
  </fieldset>
  <p><button type="button" id="connect" class="primary" data-testid="connect"{connect_disabled}>Connect your health data</button>
  <a class="hosted" href="/demo/hosted" data-testid="hosted">or use the hosted flow (as a mobile app would)</a></p>
  <p id="demo-status" role="status" aria-live="polite" data-testid="status">{notice}</p>
  <section aria-labelledby="plans-title">
    <h2 id="plans-title">Linked plans</h2>
    <div id="links" data-testid="links"><p class="muted">No plan linked yet.</p></div>
  </section>
  <details class="own-keys"{open_own}>
    <summary>Use your own app</summary>
    <p class="muted">Paste the keys printed by <code>link-sdk apps create</code> (its allowed origins must include
    <code>{origin}</code>). The secret key goes to this demo's backend only, kept in an encrypted HttpOnly cookie.</p>
    <form id="own-keys-form">
      <label>Publishable key <input id="own-pk" name="publishable_key" autocomplete="off" required pattern="pk_(test|live)_.+"></label>
      <label>Secret key <input id="own-sk" name="secret_key" type="password" autocomplete="off" required pattern="sk_(test|live)_.+"></label>
      <button type="submit" class="secondary" data-testid="use-keys">Use these keys</button> {reset}
    </form>
  </details>
</main>
<footer class="muted">Test-mode sandbox members sign in with the password <code>password</code>.</footer>
</body>
</html>
"#,
        pk = esc(pk),
        uid = esc(external_id),
        notice = esc(notice),
        origin = esc(origin),
    )
}

#[derive(Deserialize)]
struct KeysBody {
    publishable_key: Option<String>,
    secret_key: Option<String>,
}

/// Switches the demo to the developer's own app keys (or back to the demo app when both are absent).
/// Links made with the previous keys are forgotten: their tokens belong to the other app.
async fn api_keys(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<KeysBody>) -> Response {
    if !same_origin(&state, &headers) {
        return api_error(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let mut session = read_session(&state, &headers).unwrap_or_else(new_session);
    match (body.publishable_key.map(|s| s.trim().to_string()), body.secret_key.map(|s| s.trim().to_string())) {
        (Some(pk), Some(sk)) => {
            let mode = Mode::of_publishable_key(&pk);
            let Some(mode) = mode else {
                return api_error(StatusCode::BAD_REQUEST, "The publishable key must start with pk_test_ or pk_live_.");
            };
            if !sk.starts_with(&format!("sk_{}_", mode.as_str())) {
                return api_error(StatusCode::BAD_REQUEST, "The secret key must be of the same mode as the publishable key.");
            }
            // The demo does not look the app up (an integrator's app could not): it labels it by its key.
            let label = format!("{}…", pk.chars().take(16).collect::<String>());
            session.own_keys = Some(DemoKeys { app_id: label, publishable_key: pk, secret_key: sk });
        }
        (None, None) => session.own_keys = None,
        _ => return api_error(StatusCode::BAD_REQUEST, "Give both keys, or neither to go back to the demo app."),
    }
    session.links.clear();
    let mut res = Json(json!({ "ok": true })).into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
    res
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        include_str!("demo.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], include_str!("demo.css"))
        .into_response()
}

// ---------------------------------------------------------------------------------------------------------
// The demo's backend: what an integrator's server does with its secret key.

#[derive(Deserialize)]
struct ExchangeBody {
    public_token: String,
}

/// Calls `POST {public_url}/link/exchange` and remembers the access token in the demo session.
async fn exchange(state: &AppState, keys: &DemoKeys, session: &mut DemoSession, public_token: &str) -> Result<Value, Response> {
    let res = state
        .http
        .post(format!("{}/link/exchange", state.public_url))
        .json(&json!({ "public_token": public_token, "secret_key": keys.secret_key }))
        .send()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "demo: calling /link/exchange failed");
            api_error(StatusCode::BAD_GATEWAY, "The Link server could not be reached.")
        })?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = body.get("error").and_then(Value::as_str).unwrap_or("exchange_failed");
        return Err(api_error(StatusCode::BAD_REQUEST, &format!("The public_token was refused ({code}).")));
    }
    let Some(access_token) = body.get("access_token").and_then(Value::as_str) else {
        return Err(api_error(StatusCode::BAD_GATEWAY, "The exchange answered without an access_token."));
    };
    let endpoint_name = body
        .pointer("/endpoint/name")
        .and_then(Value::as_str)
        .unwrap_or("Health plan")
        .to_string();
    let link = DemoLink {
        id: crypto::random_id(6),
        access_token: access_token.to_string(),
        patient: body.get("patient").and_then(Value::as_str).map(str::to_owned),
        endpoint_name: endpoint_name.clone(),
    };
    if session.links.len() >= MAX_LINKS {
        session.links.remove(0);
    }
    let id = link.id.clone();
    session.links.push(link);
    Ok(json!({ "id": id, "endpoint": endpoint_name }))
}

async fn api_exchange(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<ExchangeBody>) -> Response {
    if !same_origin(&state, &headers) {
        return api_error(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let mut session = read_session(&state, &headers).unwrap_or_else(new_session);
    let Some(keys) = effective_keys(&state, &session) else {
        return api_error(StatusCode::NOT_FOUND, "No app keys: the demo app exists only in local mode.");
    };
    match exchange(&state, &keys, &mut session, &body.public_token).await {
        Ok(v) => {
            let mut res = Json(json!({ "ok": true, "link": v })).into_response();
            res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
            res
        }
        Err(res) => res,
    }
}

#[derive(Deserialize)]
struct HostedQuery {
    usage: Option<String>,
}

/// Starts the hosted (`redirect_uri`) flow the way a mobile app or a server-rendered site does: a plain
/// navigation to `/link?…&redirect_uri=…&state=…` (in an app: SFSafariViewController, Custom Tabs, …).
async fn hosted_start(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HostedQuery>) -> Response {
    let mut session = read_session(&state, &headers).unwrap_or_else(new_session);
    let Some(keys) = effective_keys(&state, &session) else {
        return Redirect::to("/demo").into_response();
    };
    let usage = match q.usage.as_deref() {
        Some("MULTIPLE") => "MULTIPLE",
        _ => "ONE_TIME",
    };
    let client_state = crypto::random_id(16);
    session.hosted_state = Some(client_state.clone());
    let mut url = match url::Url::parse(&format!("{}/link", state.public_url)) {
        Ok(u) => u,
        Err(_) => return Redirect::to("/demo").into_response(),
    };
    url.query_pairs_mut()
        .append_pair("publishableKey", &keys.publishable_key)
        .append_pair("externalId", &session.external_id)
        .append_pair("usage", usage)
        .append_pair("redirect_uri", &format!("{}/demo/callback", state.public_url))
        .append_pair("state", &client_state);
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
    res
}

#[derive(Deserialize)]
struct CallbackQuery {
    public_token: Option<String>,
    error: Option<String>,
    state: Option<String>,
}

/// The hosted (`redirect_uri`) flow lands here with `public_token` (or `error`) and `state`.
async fn hosted_callback(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let mut session = read_session(&state, &headers).unwrap_or_else(new_session);
    let Some(keys) = effective_keys(&state, &session) else {
        return Redirect::to("/demo").into_response();
    };
    // The `state` must be the one this browser sent: otherwise someone else's result is being planted.
    let expected = session.hosted_state.take();
    let state_ok = match (expected.as_deref(), q.state.as_deref()) {
        (Some(e), Some(got)) => crypto::ct_eq(e.as_bytes(), got.as_bytes()),
        _ => false,
    };
    if !state_ok {
        return Redirect::to("/demo?exit=INVALID_STATE").into_response();
    }
    if let Some(token) = q.public_token.as_deref() {
        if exchange(&state, &keys, &mut session, token).await.is_ok() {
            let mut res = Redirect::to("/demo").into_response();
            res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
            return res;
        }
    }
    let code = q.error.filter(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')).unwrap_or_else(|| "EXCHANGE_FAILED".into());
    Redirect::to(&format!("/demo?exit={code}")).into_response()
}

/// Outcome of one FHIR search by the demo's backend.
enum Fetch {
    Ok(Value),
    /// 429: the sync is still running; try again after this many seconds.
    Syncing(u64),
    /// A final failure with a message for the page (e.g. 422 sync failed, 401 revoked).
    Failed(String, bool),
}

/// `GET {public_url}/fhir/{path}` with the access token, waiting out `429 Retry-After` for a few seconds.
async fn fhir_get(state: &AppState, token: &str, path: &str) -> Fetch {
    let started = std::time::Instant::now();
    loop {
        let res = state
            .http
            .get(format!("{}/fhir/{path}", state.public_url))
            .bearer_auth(token)
            .header(header::ACCEPT, "application/fhir+json")
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "demo: FHIR request failed");
                return Fetch::Failed("The FHIR API could not be reached.".into(), false);
            }
        };
        match res.status() {
            s if s.is_success() => {
                return match res.json::<Value>().await {
                    Ok(v) => Fetch::Ok(v),
                    Err(_) => Fetch::Failed("The FHIR API answered with something that is not JSON.".into(), false),
                }
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let after = res
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(2)
                    .clamp(1, 60);
                if started.elapsed() + Duration::from_secs(after) > MAX_SERVER_WAIT {
                    return Fetch::Syncing(after);
                }
                tokio::time::sleep(Duration::from_secs(after)).await;
            }
            StatusCode::UNAUTHORIZED => {
                return Fetch::Failed("This link is no longer valid (revoked or expired).".into(), true)
            }
            s => {
                let body: Value = res.json().await.unwrap_or(Value::Null);
                let why = body
                    .pointer("/issue/0/diagnostics")
                    .or_else(|| body.pointer("/issue/0/details/text"))
                    .and_then(Value::as_str)
                    .unwrap_or("no detail")
                    .to_string();
                return Fetch::Failed(format!("The FHIR API answered {}: {why}", s.as_u16()), false);
            }
        }
    }
}

fn text_of_concept(c: Option<&Value>) -> Option<String> {
    let c = c?;
    c.get("text")
        .and_then(Value::as_str)
        .or_else(|| c.pointer("/coding/0/display").and_then(Value::as_str))
        .or_else(|| c.pointer("/coding/0/code").and_then(Value::as_str))
        .map(str::to_owned)
}

fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle.get("entry").and_then(Value::as_array).into_iter().flatten().filter_map(|e| e.get("resource"))
}

/// Whether `resource` is of FHIR type `rtype` (its `resourceType`).
fn is_type(resource: &Value, rtype: &str) -> bool {
    resource.get("resourceType").and_then(Value::as_str) == Some(rtype)
}

/// The resources of a Bundle by `Type/id`: the matches and what `_include` brought along with them.
fn bundle_index(bundle: &Value) -> HashMap<String, &Value> {
    entries(bundle)
        .filter_map(|r| {
            let t = r.get("resourceType").and_then(Value::as_str)?;
            let id = r.get("id").and_then(Value::as_str)?;
            Some((format!("{t}/{id}"), r))
        })
        .collect()
}

/// `Type/id` named by a literal reference (relative, absolute or versioned), as the FHIR API reads one
/// ([`served_target`](crate::server::fhir::reference::served_target)); a trailing `/` is ignored. `None` for
/// contained (`#id`), logical (`urn:…`), conditional (`Type?…`) or malformed references.
fn reference_key(reference: &str) -> Option<String> {
    crate::server::fhir::reference::served_target(reference.trim_end_matches('/')).map(|(t, id)| format!("{t}/{id}"))
}

/// The resource a reference made from `holder` points to: one of `holder.contained` for `#id`, else one of
/// the Bundle's resources. `None` when it is in neither (the API may not have it, or it is on another server).
fn resolve<'a>(holder: &'a Value, index: &HashMap<String, &'a Value>, reference: &str) -> Option<&'a Value> {
    match reference.strip_prefix('#') {
        Some(id) => holder
            .get("contained")
            .and_then(Value::as_array)?
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id)),
        None => index.get(&reference_key(reference)?).copied(),
    }
}

/// A person's name as people write it: "given family" of the `official` HumanName (else the first one),
/// else its `text`. `names` is the resource's `name` array.
fn human_name(names: &[Value]) -> Option<String> {
    let name = names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first())?;
    let parts: Vec<&str> = name
        .get("given")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .chain(name.get("family").and_then(Value::as_str))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        name.get("text").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)
    } else {
        Some(parts.join(" "))
    }
}

/// The name to show for a resource a claim or coverage points to: a Practitioner's (or any person's)
/// HumanName, an Organization's (or Location's) `name`, and for a PractitionerRole the name of its
/// practitioner, else of its organization (looked up with `resolve` from the same holder and Bundle).
fn resource_name(holder: &Value, index: &HashMap<String, &Value>, r: &Value) -> Option<String> {
    if is_type(r, "PractitionerRole") {
        return ["practitioner", "organization"].iter().find_map(|field| {
            let target = r.get(*field)?;
            resolve(holder, index, target.get("reference").and_then(Value::as_str)?)
                .filter(|t| !is_type(t, "PractitionerRole"))
                .and_then(|t| resource_name(holder, index, t))
                .or_else(|| display_of(target))
        });
    }
    match r.get("name")? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Array(names) => human_name(names),
        _ => None,
    }
}

fn display_of(reference: &Value) -> Option<String> {
    reference.get("display").and_then(Value::as_str).map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned)
}

/// The human name behind a Reference element of `holder` (e.g. an EOB's `provider`): the referenced
/// resource's name when the holder's `contained` or the Bundle has it, else the reference's `display`.
/// `None` when neither gives a name: a raw reference (`Practitioner/7`, `#org`) is never shown.
fn reference_name(holder: &Value, index: &HashMap<String, &Value>, reference: Option<&Value>) -> Option<String> {
    let reference = reference?;
    reference
        .get("reference")
        .and_then(Value::as_str)
        .and_then(|r| resolve(holder, index, r))
        .and_then(|r| resource_name(holder, index, r))
        .or_else(|| display_of(reference))
}

/// What the demo shows of a Coverage: payer, plan, type, status and period. The payer is named from the
/// Bundle `index` (see [`reference_name`]).
fn coverage_summary(c: &Value, index: &HashMap<String, &Value>) -> Value {
    let classes: Vec<String> = c
        .get("class")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|k| {
            let kind = text_of_concept(k.get("type")).unwrap_or_default();
            let name = k.get("name").or_else(|| k.get("value")).and_then(Value::as_str).unwrap_or("");
            if kind.is_empty() { name.to_string() } else { format!("{kind}: {name}") }
        })
        .collect();
    json!({
        "id": c.get("id"),
        "status": c.get("status"),
        "type": text_of_concept(c.get("type")),
        "payor": reference_name(c, index, c.pointer("/payor/0")),
        "plan": classes,
        "start": c.pointer("/period/start"),
        "end": c.pointer("/period/end"),
    })
}

/// What the demo shows of a claim (ExplanationOfBenefit): date, type, provider, amount, status. The
/// provider is named from the claim's `contained` resources or the Bundle `index` (see [`reference_name`]).
fn claim_summary(e: &Value, index: &HashMap<String, &Value>) -> Value {
    let amount = e
        .pointer("/payment/amount")
        .or_else(|| e.get("total").and_then(Value::as_array).and_then(|t| t.first()).and_then(|t| t.get("amount")));
    json!({
        "id": e.get("id"),
        "date": e.pointer("/billablePeriod/start").or_else(|| e.get("created")),
        "type": text_of_concept(e.get("type")),
        "provider": reference_name(e, index, e.get("provider")),
        "amount": amount.and_then(|a| a.get("value")),
        "currency": amount.and_then(|a| a.get("currency")),
        "status": e.get("status"),
    })
}

async fn link_records(state: &AppState, link: &DemoLink) -> Value {
    let patient = link.patient.as_deref().and_then(|p| p.strip_prefix("Patient/")).unwrap_or("$PATIENT_ID");
    let mut out = json!({ "id": link.id, "endpoint": link.endpoint_name, "patient": link.patient });
    // `_include` brings the payer and provider resources in the same Bundle, to name them.
    let coverage = fhir_get(state, &link.access_token, &format!("Coverage?patient={patient}&_include=Coverage:payor")).await;
    let coverage = match coverage {
        Fetch::Ok(b) => b,
        Fetch::Syncing(after) => {
            out["status"] = json!("syncing");
            out["retry_after"] = json!(after);
            return out;
        }
        Fetch::Failed(msg, gone) => {
            out["status"] = json!(if gone { "revoked" } else { "error" });
            out["message"] = json!(msg);
            return out;
        }
    };
    let claims_path = format!("ExplanationOfBenefit?patient={patient}&_count=50&_include=ExplanationOfBenefit:provider");
    let claims = match fhir_get(state, &link.access_token, &claims_path).await {
        Fetch::Ok(b) => b,
        Fetch::Syncing(after) => {
            out["status"] = json!("syncing");
            out["retry_after"] = json!(after);
            return out;
        }
        Fetch::Failed(msg, gone) => {
            out["status"] = json!(if gone { "revoked" } else { "error" });
            out["message"] = json!(msg);
            return out;
        }
    };
    let claims_index = bundle_index(&claims);
    let mut claim_list: Vec<Value> =
        entries(&claims).filter(|r| is_type(r, "ExplanationOfBenefit")).map(|e| claim_summary(e, &claims_index)).collect();
    claim_list.sort_by(|a, b| b["date"].as_str().unwrap_or("").cmp(a["date"].as_str().unwrap_or("")));
    let coverage_index = bundle_index(&coverage);
    out["status"] = json!("ready");
    out["coverage"] = Value::Array(
        entries(&coverage).filter(|r| is_type(r, "Coverage")).map(|c| coverage_summary(c, &coverage_index)).collect(),
    );
    out["claims_total"] = claims.get("total").cloned().unwrap_or(json!(claim_list.len()));
    out["claims"] = Value::Array(claim_list);
    out
}

async fn api_records(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = read_session(&state, &headers).unwrap_or_default();
    let mut links = Vec::new();
    for link in &session.links {
        links.push(link_records(&state, link).await);
    }
    Json(json!({ "external_id": session.external_id, "links": links })).into_response()
}

#[derive(Deserialize)]
struct RevokeBody {
    link: String,
}

/// Calls `POST {public_url}/link/revoke` with the access token and the secret key, then forgets the link.
async fn api_revoke(State(state): State<AppState>, headers: HeaderMap, Json(body): Json<RevokeBody>) -> Response {
    if !same_origin(&state, &headers) {
        return api_error(StatusCode::FORBIDDEN, "Cross-site request refused.");
    }
    let Some(mut session) = read_session(&state, &headers) else {
        return api_error(StatusCode::NOT_FOUND, "No such link.");
    };
    let Some(keys) = effective_keys(&state, &session) else {
        return api_error(StatusCode::NOT_FOUND, "No app keys.");
    };
    let Some(pos) = session.links.iter().position(|l| l.id == body.link) else {
        return api_error(StatusCode::NOT_FOUND, "No such link.");
    };
    let link = session.links[pos].clone();
    let res = state
        .http
        .post(format!("{}/link/revoke", state.public_url))
        .bearer_auth(&link.access_token)
        .json(&json!({ "secret_key": keys.secret_key }))
        .send()
        .await;
    let count = match res {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok().and_then(|v| v.get("count").cloned()),
        // Already revoked or expired: nothing left to revoke, forget it all the same.
        Ok(r) if r.status() == StatusCode::UNAUTHORIZED => Some(json!(0)),
        Ok(r) => {
            tracing::warn!(status = r.status().as_u16(), "demo: /link/revoke refused");
            return api_error(StatusCode::BAD_GATEWAY, "The Link server refused to revoke this link.");
        }
        Err(e) => {
            tracing::warn!(error = %e, "demo: calling /link/revoke failed");
            return api_error(StatusCode::BAD_GATEWAY, "The Link server could not be reached.");
        }
    };
    session.links.remove(pos);
    let mut res = Json(json!({ "ok": true, "count": count })).into_response();
    res.headers_mut().insert(header::SET_COOKIE, session_cookie(&state, &session));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(esc(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn summaries_pick_display_fields() {
        let c = json!({"resourceType":"Coverage","id":"c1","status":"active",
            "type":{"coding":[{"code":"PART A"}]},"payor":[{"display":"CMS"}],
            "class":[{"type":{"text":"Plan"},"name":"Medicare Part A"}],"period":{"start":"2020-01-01"}});
        let none = HashMap::new();
        let s = coverage_summary(&c, &none);
        assert_eq!(s["payor"], "CMS");
        assert_eq!(s["type"], "PART A");
        assert_eq!(s["plan"][0], "Plan: Medicare Part A");
        let e = json!({"id":"e1","billablePeriod":{"start":"2021-03-04"},"type":{"text":"Pharmacy"},
            "payment":{"amount":{"value":12.5,"currency":"USD"}},"status":"active"});
        let s = claim_summary(&e, &none);
        assert_eq!(s["date"], "2021-03-04");
        assert_eq!(s["amount"], 12.5);
        assert_eq!(s["provider"], Value::Null);
    }

    #[test]
    fn providers_are_named_from_the_bundle_or_contained_never_by_reference() {
        let bundle = json!({"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e1", "provider": {"reference": "Practitioner/prac-4"}}},
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e2",
                "contained": [{"resourceType": "Organization", "id": "pharmacy", "name": "Lakeside Pharmacy"}],
                "provider": {"reference": "#pharmacy"}}},
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e3", "provider": {"reference": "#gone", "display": "Dr. Who"}}},
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e4", "provider": {"reference": "Organization/org-9"}}},
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e5",
                "provider": {"reference": "https://payer.example/fhir/PractitionerRole/role-1/_history/3"}}},
            {"resource": {"resourceType": "ExplanationOfBenefit", "id": "e6", "provider": {"reference": "Practitioner/prac-5"}}},
            {"resource": {"resourceType": "Practitioner", "id": "prac-4",
                "name": [{"use": "old", "family": "Stone"}, {"use": "official", "family": "Ng", "given": ["Ada", "B."], "prefix": ["Dr."]}]},
             "search": {"mode": "include"}},
            {"resource": {"resourceType": "Practitioner", "id": "prac-5", "name": [{"text": "Sam Okafor, MD"}]}},
            {"resource": {"resourceType": "PractitionerRole", "id": "role-1", "practitioner": {"reference": "Practitioner/prac-4"}}}
        ]});
        let index = bundle_index(&bundle);
        let names: Vec<Value> = entries(&bundle)
            .filter(|r| is_type(r, "ExplanationOfBenefit"))
            .map(|e| claim_summary(e, &index)["provider"].clone())
            .collect();
        assert_eq!(
            names,
            vec![json!("Ada B. Ng"), json!("Lakeside Pharmacy"), json!("Dr. Who"), Value::Null, json!("Ada B. Ng"), json!("Sam Okafor, MD")]
        );
    }

    #[test]
    fn reference_keys() {
        assert_eq!(reference_key("Practitioner/7").as_deref(), Some("Practitioner/7"));
        assert_eq!(reference_key("https://p.example/fhir/Organization/o1").as_deref(), Some("Organization/o1"));
        assert_eq!(reference_key("Organization/o1/_history/2").as_deref(), Some("Organization/o1"));
        for r in ["#pharmacy", "urn:uuid:1", "Practitioner?identifier=x", "prac-4", "", "/"] {
            assert_eq!(reference_key(r), None, "{r}");
        }
    }

    #[test]
    fn demo_keys_debug_redacts_the_secret() {
        let k = DemoKeys { app_id: "a".into(), publishable_key: "pk_test_x".into(), secret_key: "sk_test_y".into() };
        assert!(!format!("{k:?}").contains("sk_test_y"));
    }
}
