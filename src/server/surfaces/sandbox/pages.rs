//! Server-rendered HTML of the sandbox's sign-in and consent pages, their stylesheets, and a test helper that
//! drives those pages over HTTP like a browser.
//!
//! The pages are top-level documents (opened in a popup), so they forbid framing. They carry their own
//! Content-Security-Policy: no scripts at all, styles only from the linked stylesheets, and `form-action`
//! allowing this origin plus the origin of the validated `redirect_uri` (the consent form's answer is a 303 to
//! it, and browsers apply `form-action` to redirects after a form submission).

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    data::members,
    request::{encode_request, AuthorizeParams, ValidRequest},
    Faults, PayerConfig, Sandbox, Shared,
};

const CSRF_COOKIE: &str = "sbx_csrf";

/// Minimal HTML escaping for text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The path part of the sandbox's base URL (usually empty), so links work behind a path prefix.
fn base_path(sandbox: &Sandbox) -> String {
    url::Url::parse(&sandbox.base_url).map(|u| u.path().trim_end_matches('/').to_string()).unwrap_or_default()
}

fn origin_of(uri: &str) -> Option<String> {
    let u = url::Url::parse(uri).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

fn html(status: StatusCode, body: String, form_origin: Option<&str>) -> Response {
    let form_action = match form_origin {
        Some(o) => format!("'self' {o}"),
        None => "'self'".to_string(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut resp = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).filter(|c| c.is_uppercase()).take(2).collect()
}

fn layout(sandbox: &Sandbox, payer: Option<&PayerConfig>, title: &str, main: &str) -> String {
    let bp = base_path(sandbox);
    let (brand_css, brand) = match payer {
        Some(p) => (
            format!(r#"<link rel="stylesheet" href="{bp}/sandbox/{}/brand.css">"#, esc(p.slug)),
            format!(
                r#"<span class="logo" aria-hidden="true">{}</span><span class="brand-name">{}</span>"#,
                esc(&initials(p.name)),
                esc(p.name)
            ),
        ),
        None => (String::new(), r#"<span class="brand-name">Sandbox health plans</span>"#.to_string()),
    };
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="{bp}/sandbox/sandbox.css">
{brand_css}
</head>
<body>
<header class="brand-bar"><div class="brand">{brand}</div><span class="badge">Sandbox</span></header>
<main class="card">
{main}
</main>
<footer class="foot">Test health plan with synthetic data. Do not enter real credentials.</footer>
</body>
</html>
"#,
        title = esc(title),
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(r#"<input type="hidden" name="{}" value="{}">"#, esc(name), esc(value))
}

/// A plain error page (no redirect to the client).
pub(crate) fn error_page(
    sandbox: &Sandbox,
    payer: Option<&PayerConfig>,
    status: StatusCode,
    message: &str,
) -> Response {
    let main = format!(
        r#"<h1>Something went wrong</h1>
<p class="error" role="alert">{}</p>
<p>You can close this window and try again from the application.</p>"#,
        esc(message)
    );
    html(status, layout(sandbox, payer, "Error", &main), None)
}

/// The sign-in page: username and password, plus the table of test members.
pub(crate) fn sign_in_page(
    sandbox: &Sandbox,
    payer: &PayerConfig,
    params: &AuthorizeParams,
    req: &ValidRequest,
    csrf: &str,
    error: Option<&str>,
    username: &str,
) -> Response {
    let bp = base_path(sandbox);
    let error_html =
        error.map(|e| format!(r#"<p class="error" role="alert" id="signin-error">{}</p>"#, esc(e))).unwrap_or_default();
    let described = if error.is_some() { r#" aria-describedby="signin-error""# } else { "" };
    let table = |title_id: &str, title: &str, scenarios: bool| {
        let rows: String = members()
            .iter()
            .filter(|m| (m.faults != Faults::default()) == scenarios)
            .map(|m| {
                format!(
                    "<tr><td><code>{}</code></td><td class=\"col-name\">{} {}</td><td>{}</td></tr>\n",
                    esc(m.username),
                    esc(m.given),
                    esc(m.family),
                    esc(m.scenario)
                )
            })
            .collect();
        format!(
            r#"<h3 id="{title_id}">{title}</h3>
<div class="table-wrap" tabindex="0" role="region" aria-labelledby="{title_id}">
<table>
<thead><tr><th scope="col">Username</th><th scope="col" class="col-name">Name</th><th scope="col">What happens</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</div>"#
        )
    };
    let tables =
        format!("{}\n{}", table("members-plain", "Members", false), table("members-faults", "Failure scenarios", true));
    let main = format!(
        r#"<h1>Sign in</h1>
<p class="lead">An application is asking to connect to your {name} account. Sign in to continue.</p>
{error_html}
<form method="post" action="{bp}/sandbox/{slug}/authorize/sign-in" class="stack">
{request}{csrf}
<label for="username">Username</label>
<input id="username" name="username" type="text" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus{described}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{described}>
<button type="submit" class="primary">Sign in</button>
</form>
<section class="members" aria-labelledby="members-title">
<h2 id="members-title">Test members</h2>
<p>Every test member's password is <code>password</code>.</p>
{tables}
</section>"#,
        name = esc(payer.name),
        slug = esc(payer.slug),
        request = hidden("request", &encode_request(params)),
        csrf = hidden("csrf", csrf),
        username = esc(username),
    );
    let origin = origin_of(&req.redirect_uri);
    html(StatusCode::OK, layout(sandbox, Some(payer), &format!("Sign in — {}", payer.name), &main), origin.as_deref())
}

/// Human wording of a granted scope.
fn describe_scope(scope: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in scope.split_whitespace() {
        let text = match s {
            "launch/patient" => "Know which member you are".to_string(),
            "offline_access" => "Keep access until you revoke it (refresh)".to_string(),
            "online_access" => "Keep access while you are using the application".to_string(),
            _ => match s.strip_prefix("patient/").and_then(|r| r.split_once('.')) {
                Some(("*", _)) => "Read all of your health records: claims, coverage and clinical data".to_string(),
                Some((t, _)) => format!("Read your {t} records"),
                None => continue,
            },
        };
        out.push(text);
    }
    out
}

/// The consent page: what the application will be able to read, with Allow and Deny.
#[allow(clippy::too_many_arguments)]
pub(crate) fn consent_page(
    sandbox: &Sandbox,
    payer: &PayerConfig,
    req: &ValidRequest,
    request: &str,
    csrf: &str,
    login: &str,
    member: usize,
    granted: &str,
) -> Response {
    let bp = base_path(sandbox);
    let m = &members()[member];
    let items: String = describe_scope(granted).iter().map(|t| format!("<li>{}</li>\n", esc(t))).collect();
    let main = format!(
        r#"<h1>Share your health records?</h1>
<p class="lead">Signed in as <strong>{given} {family}</strong> (<code>{username}</code>).</p>
<p>The application <strong>Link SDK</strong> is asking to:</p>
<ul class="scopes">
{items}</ul>
<p class="fine">You can withdraw this permission at any time. Your plan will send the application your records as they are today and, if you allow ongoing access, as they change.</p>
<form method="post" action="{bp}/sandbox/{slug}/authorize/decide" class="actions">
{request}{csrf}{login}
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
<button type="submit" name="decision" value="approve" class="primary">Allow</button>
</form>"#,
        given = esc(m.given),
        family = esc(m.family),
        username = esc(m.username),
        slug = esc(payer.slug),
        request = hidden("request", request),
        csrf = hidden("csrf", csrf),
        login = hidden("login", login),
    );
    let origin = origin_of(&req.redirect_uri);
    html(
        StatusCode::OK,
        layout(sandbox, Some(payer), &format!("Allow access — {}", payer.name), &main),
        origin.as_deref(),
    )
}

/// Sets the double-submit CSRF cookie (HttpOnly, SameSite=Lax, scoped to `/sandbox/`).
pub(crate) fn set_csrf_cookie(sandbox: &Sandbox, resp: &mut Response, value: &str) {
    let secure = if sandbox.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{CSRF_COOKIE}={value}; Path={}/sandbox/; HttpOnly; SameSite=Lax{secure}", base_path(sandbox));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The CSRF cookie's value, if the request carries one.
pub(crate) fn csrf_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == CSRF_COOKIE).then(|| v.to_string())
    })
}

/// `GET /sandbox/sandbox.css`.
pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], SANDBOX_CSS)
        .into_response()
}

/// `GET /sandbox/{payer}/brand.css`: the payer's colour, from its configuration.
pub async fn brand_stylesheet(State(sandbox): State<Shared>, Path(slug): Path<String>) -> Response {
    let Some(payer) = sandbox.payer(&slug) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let css = format!(":root {{ --brand: {}; }}\n", payer.brand_color);
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=300")], css)
        .into_response()
}

const SANDBOX_CSS: &str = r#":root { --brand: #0b5cad; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #f4f6f8; --error: #b42318; }
* { box-sizing: border-box; }
html { font-size: 100%; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); line-height: 1.5; }
.brand-bar { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: 0.75rem 1rem; background: var(--brand); color: #fff; }
.brand { display: flex; align-items: center; gap: 0.6rem; font-weight: 700; font-size: 1.1rem; }
.logo { display: inline-flex; align-items: center; justify-content: center; width: 2.25rem; height: 2.25rem; border-radius: 50%; background: #fff; color: var(--brand); font-weight: 800; letter-spacing: 0.02em; }
.badge { font-size: 0.75rem; text-transform: uppercase; letter-spacing: 0.08em; border: 1px solid rgba(255,255,255,0.7); border-radius: 999px; padding: 0.1rem 0.6rem; }
.card { max-width: 34rem; margin: 1.5rem auto; background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 1.5rem; }
h1 { font-size: 1.5rem; margin: 0 0 0.5rem; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 0.25rem; }
.lead { color: var(--muted); margin-top: 0; }
.stack { display: flex; flex-direction: column; gap: 0.35rem; }
label { font-weight: 600; margin-top: 0.5rem; }
input[type=text], input[type=password] { font: inherit; padding: 0.65rem 0.75rem; border: 1px solid #8c959f; border-radius: 8px; width: 100%; }
input:focus-visible, button:focus-visible, .table-wrap:focus-visible { outline: 3px solid var(--brand); outline-offset: 2px; }
button { font: inherit; font-weight: 600; border-radius: 8px; padding: 0.7rem 1.2rem; cursor: pointer; min-height: 44px; }
.primary { background: var(--brand); color: #fff; border: 1px solid var(--brand); }
.secondary { background: #fff; color: var(--ink); border: 1px solid #8c959f; }
.stack .primary { margin-top: 1rem; }
.actions { display: flex; gap: 0.75rem; justify-content: flex-end; flex-wrap: wrap; margin-top: 1.25rem; }
.error { color: var(--error); background: #fef3f2; border: 1px solid #fecdca; border-radius: 8px; padding: 0.6rem 0.75rem; }
.scopes { padding-left: 1.25rem; }
.scopes li { margin: 0.3rem 0; }
.fine { color: var(--muted); font-size: 0.9rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.45rem 0.5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
h3 { font-size: 0.95rem; margin: 1.25rem 0 0.25rem; }
.foot { text-align: center; color: var(--muted); font-size: 0.8rem; padding: 0 1rem 2rem; }
@media (max-width: 480px) {
  .card { margin: 0; border-radius: 0; border-left: 0; border-right: 0; padding: 1.25rem 1rem; }
  .actions button { flex: 1 1 100%; }
  .brand-name { font-size: 1rem; }
  .col-name { display: none; }
}
"#;

/// Reads `<input type="hidden" name="{name}" value="…">` from a page rendered by this module.
fn hidden_value(page: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page.find(&marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(
        page[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">"),
    )
}

fn form_action(page: &str, marker: &str) -> Option<String> {
    let i = page.find(marker)?;
    let start = page[..i].rfind(r#"action=""#)? + r#"action=""#.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_string())
}

fn location(resp: &reqwest::Response) -> Option<String> {
    resp.status()
        .is_redirection()
        .then(|| resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .flatten()
}

/// See [`super::drive_consent`].
pub(crate) async fn drive_consent(
    client: &reqwest::Client,
    authorize_url: &str,
    username: &str,
    approve: bool,
) -> anyhow::Result<String> {
    let start = url::Url::parse(authorize_url)?;
    let resp = client.get(start.clone()).send().await?;
    if let Some(loc) = location(&resp) {
        return Ok(loc);
    }
    let status = resp.status();
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.starts_with(CSRF_COOKIE)).map(str::to_owned));
    let page = resp.text().await?;
    let (Some(cookie), Some(request), Some(csrf), Some(action)) =
        (cookie, hidden_value(&page, "request"), hidden_value(&page, "csrf"), form_action(&page, r#"name="request""#))
    else {
        anyhow::bail!("authorize answered {status}: {page}");
    };
    let resp = client
        .post(start.join(&action)?)
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[
            ("request", request.as_str()),
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", super::PASSWORD),
        ])
        .send()
        .await?;
    if let Some(loc) = location(&resp) {
        return Ok(loc);
    }
    let status = resp.status();
    let page = resp.text().await?;
    let (Some(login), Some(action)) = (hidden_value(&page, "login"), form_action(&page, r#"name="request""#)) else {
        anyhow::bail!("sign-in answered {status}: {page}");
    };
    let decision = if approve { "approve" } else { "deny" };
    let resp = client
        .post(start.join(&action)?)
        .header(reqwest::header::COOKIE, &cookie)
        .form(&[
            ("request", request.as_str()),
            ("csrf", csrf.as_str()),
            ("login", login.as_str()),
            ("decision", decision),
        ])
        .send()
        .await?;
    if let Some(loc) = location(&resp) {
        return Ok(loc);
    }
    let status = resp.status();
    anyhow::bail!("consent answered {status}: {}", resp.text().await.unwrap_or_default())
}
