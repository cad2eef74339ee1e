//! The sandbox's authorization server (SMART App Launch 2.0, RFC 6749, RFC 7636): discovery, the sign-in and
//! consent pages, and the token endpoint.
//!
//! The authorization request travels between the pages as hidden form fields and is validated again at each
//! step; the proof that the member signed in is a short-lived HMAC-signed value bound to the request and to the
//! CSRF token (double-submit cookie `sbx_csrf`). Codes and refresh tokens live in the sandbox's tables
//! ([`super::store`], by hash); access tokens are stateless values signed with the sandbox's key, which is
//! in the database too, so everything issued here survives a restart and works on every instance.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Form, Json,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{
    data::{self, members},
    pages,
    request::{decode_request, AuthorizeParams, ValidRequest},
    store::{self, CodeEntry, Grant, RefreshEntry},
    Faults, PayerConfig, Sandbox, Shared, Signer, CLIENT_ID, PASSWORD, SUPPORTED_RESOURCE_TYPES,
};
use crate::server::platform::crypto;

/// How long a member stays signed in between the sign-in and consent pages.
const LOGIN_TTL_SECS: i64 = 600;

/// Why an authorization request is refused.
pub(crate) enum Rejection {
    /// Shown to the user; never redirected (unknown client or redirect URI, RFC 6749 §4.1.2.1).
    Page(StatusCode, &'static str),
    /// Sent back to the client's `redirect_uri` as `error=…`.
    Redirect { redirect_uri: String, state: Option<String>, error: &'static str, description: &'static str },
}

impl Rejection {
    pub fn into_response(self, sandbox: &Sandbox, payer: Option<&PayerConfig>) -> Response {
        match self {
            Rejection::Page(status, message) => pages::error_page(sandbox, payer, status, message),
            Rejection::Redirect { redirect_uri, state, error, description } => redirect_to_client(
                &redirect_uri,
                &[("error", error), ("error_description", description)],
                state.as_deref(),
            ),
        }
    }
}

/// 303 to the client's `redirect_uri` with `params` and `state` appended to its query.
pub(crate) fn redirect_to_client(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response(),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string()), (header::CACHE_CONTROL, "no-store".to_string())])
        .into_response()
}

/// Validates an authorization request against the payer's registration (RFC 6749 §4.1.1, RFC 7636 §4.3,
/// SMART App Launch 2.0: `aud` must be this payer's FHIR base).
pub(crate) fn validate(sandbox: &Sandbox, payer: &PayerConfig, p: &AuthorizeParams) -> Result<ValidRequest, Rejection> {
    if p.client_id.as_deref() != Some(CLIENT_ID) {
        return Err(Rejection::Page(
            StatusCode::BAD_REQUEST,
            "This application is not registered with the health plan (unknown client_id).",
        ));
    }
    let redirect_uri = match p.redirect_uri.as_deref() {
        Some(r) if sandbox.redirect_uris.iter().any(|u| u == r) => r.to_string(),
        _ => {
            return Err(Rejection::Page(
                StatusCode::BAD_REQUEST,
                "The application's return address (redirect_uri) is not registered with the health plan.",
            ))
        }
    };
    let state = p.state.clone().filter(|s| !s.is_empty());
    let reject = |error, description| Rejection::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        error,
        description,
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(reject("unsupported_response_type", "response_type must be code"));
    }
    let Some(state_value) = state.clone() else {
        return Err(reject("invalid_request", "state is required"));
    };
    let expected_aud = sandbox.fhir_base(payer.slug);
    if p.aud.as_deref().map(|a| a.trim_end_matches('/')) != Some(expected_aud.as_str()) {
        return Err(reject("invalid_request", "aud must be this server's FHIR base URL"));
    }
    if p.code_challenge_method.as_deref() != Some("S256") {
        return Err(reject("invalid_request", "PKCE with code_challenge_method=S256 is required"));
    }
    let challenge = match p.code_challenge.as_deref() {
        Some(c) if c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok() => c.to_string(),
        _ => return Err(reject("invalid_request", "code_challenge must be a base64url SHA-256 digest")),
    };
    let requested = p.scope.clone().unwrap_or_default();
    if grant_scope(payer, &Faults::default(), &requested).is_none() {
        return Err(reject("invalid_scope", "no supported patient/ scope requested"));
    }
    Ok(ValidRequest { redirect_uri, state: state_value, scope: requested, code_challenge: challenge })
}

/// Whether a SMART scope permission (`read`, `*`, or v2 `cruds` letters) allows reading.
fn permits_read(perm: &str) -> bool {
    perm == "read"
        || perm == "*"
        || (!perm.is_empty() && perm.chars().all(|c| "cruds".contains(c)) && (perm.contains('r') || perm.contains('s')))
}

/// The scope granted for `requested` (SMART App Launch 2.0 §Scopes): supported `patient/` resource scopes,
/// `launch/patient`, and `offline_access` only when the payer is refreshable. `None` when no resource scope
/// survives (→ `invalid_scope`). The narrow-scope fault replaces resource scopes with its short list.
pub(crate) fn grant_scope(payer: &PayerConfig, faults: &Faults, requested: &str) -> Option<String> {
    let mut granted: Vec<String> = Vec::new();
    let mut any_resource = false;
    for s in requested.split_whitespace() {
        match s {
            "launch/patient" | "online_access" => granted.push(s.to_string()),
            "offline_access" if payer.refreshable => granted.push(s.to_string()),
            _ => {
                let Some(rest) = s.strip_prefix("patient/") else { continue };
                let Some((rtype, perm)) = rest.split_once('.') else { continue };
                let perm = perm.split('?').next().unwrap_or(perm);
                if (rtype == "*" || SUPPORTED_RESOURCE_TYPES.contains(&rtype)) && permits_read(perm) {
                    any_resource = true;
                    if faults.narrow_scopes.is_none() {
                        granted.push(s.to_string());
                    }
                }
            }
        }
    }
    if !any_resource {
        return None;
    }
    if let Some(narrow) = faults.narrow_scopes {
        granted.extend(narrow.iter().map(|t| format!("patient/{t}.read")));
    }
    Some(granted.join(" "))
}

/// Whether `scope` lets the holder read resources of `rtype`.
pub(crate) fn scope_allows(scope: &str, rtype: &str) -> bool {
    scope.split_whitespace().any(|s| {
        s.strip_prefix("patient/")
            .and_then(|r| r.split_once('.'))
            .is_some_and(|(t, perm)| (t == "*" || t == rtype) && permits_read(perm.split('?').next().unwrap_or(perm)))
    })
}

/// `GET /sandbox/{payer}/authorize`: validates the request, then shows the payer's sign-in page.
pub async fn authorize_page(
    State(sandbox): State<Shared>,
    Path(slug): Path<String>,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let Some(payer) = sandbox.payer(&slug) else {
        return pages::error_page(&sandbox, None, StatusCode::NOT_FOUND, "There is no such health plan.");
    };
    match validate(&sandbox, payer, &params) {
        Ok(req) => {
            let csrf = crypto::random_id(24);
            let mut resp = pages::sign_in_page(&sandbox, payer, &params, &req, &csrf, None, "");
            pages::set_csrf_cookie(&sandbox, &mut resp, &csrf);
            resp
        }
        Err(rejection) => rejection.into_response(&sandbox, Some(payer)),
    }
}

/// Fields of the sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    request: String,
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Fields of the consent form.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    request: String,
    csrf: String,
    login: String,
    decision: String,
}

fn csrf_ok(headers: &HeaderMap, form_value: &str) -> bool {
    pages::csrf_cookie(headers).is_some_and(|c| !c.is_empty() && crypto::ct_eq(c.as_bytes(), form_value.as_bytes()))
}

/// Proof of sign-in: `{member}.{exp}.{mac}` bound to the payer, the encoded request and the CSRF token.
fn login_token(signer: Signer<'_>, slug: &str, request: &str, csrf: &str, member: usize, exp: i64) -> String {
    let mac = signer.mac("login", format!("{slug}\n{request}\n{csrf}\n{member}\n{exp}").as_bytes());
    format!("{member}.{exp}.{}", URL_SAFE_NO_PAD.encode(mac))
}

fn check_login(signer: Signer<'_>, now: i64, slug: &str, request: &str, csrf: &str, token: &str) -> Option<usize> {
    let mut parts = token.splitn(3, '.');
    let member: usize = parts.next()?.parse().ok()?;
    let exp: i64 = parts.next()?.parse().ok()?;
    let mac = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let expected = signer.mac("login", format!("{slug}\n{request}\n{csrf}\n{member}\n{exp}").as_bytes());
    (crypto::ct_eq(&mac, &expected) && exp > now && member < members().len()).then_some(member)
}

/// The page shown when the sandbox's own database fails during a sign-in (the cause is logged, never shown).
fn unavailable_page(sandbox: &Sandbox, payer: &PayerConfig, error: &anyhow::Error) -> Response {
    tracing::error!(payer = payer.slug, error = %error, "sandbox sign-in failed");
    pages::error_page(
        sandbox,
        Some(payer),
        StatusCode::SERVICE_UNAVAILABLE,
        "The health plan cannot sign you in right now. Close this window and try again later.",
    )
}

/// Common checks of both form posts: payer, CSRF, and the request re-validated.
fn form_context<'a>(
    sandbox: &'a Sandbox,
    slug: &str,
    headers: &HeaderMap,
    request: &str,
    csrf: &str,
) -> Result<(&'a PayerConfig, AuthorizeParams, ValidRequest), Response> {
    let Some(payer) = sandbox.payer(slug) else {
        return Err(pages::error_page(sandbox, None, StatusCode::NOT_FOUND, "There is no such health plan."));
    };
    if !csrf_ok(headers, csrf) {
        return Err(pages::error_page(
            sandbox,
            Some(payer),
            StatusCode::FORBIDDEN,
            "Your session has expired. Close this window and start again from the application.",
        ));
    }
    let Some(params) = decode_request(request) else {
        return Err(pages::error_page(
            sandbox,
            Some(payer),
            StatusCode::BAD_REQUEST,
            "The sign-in request is malformed.",
        ));
    };
    match validate(sandbox, payer, &params) {
        Ok(req) => Ok((payer, params, req)),
        Err(rejection) => Err(rejection.into_response(sandbox, Some(payer))),
    }
}

/// `POST /sandbox/{payer}/authorize/sign-in`: checks the member's username and password, then shows the
/// consent page (or, for a member with the deny fault, answers `error=access_denied` at once).
pub async fn sign_in(
    State(sandbox): State<Shared>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let (payer, params, req) = match form_context(&sandbox, &slug, &headers, &form.request, &form.csrf) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let member = data::member_by_username(form.username.trim());
    let password_ok = crypto::ct_eq(form.password.as_bytes(), PASSWORD.as_bytes());
    let Some(member) = member.filter(|_| password_ok) else {
        return pages::sign_in_page(
            &sandbox,
            payer,
            &params,
            &req,
            &form.csrf,
            Some("The username or password is not correct."),
            form.username.trim(),
        );
    };
    let faults = payer.faults.merged(&members()[member].faults);
    if faults.deny_consent {
        return redirect_to_client(
            &req.redirect_uri,
            &[("error", "access_denied"), ("error_description", "The member declined to share their records")],
            Some(&req.state),
        );
    }
    if faults.reject_scope {
        return redirect_to_client(
            &req.redirect_uri,
            &[("error", "invalid_scope"), ("error_description", "The requested scope is not registered for this client")],
            Some(&req.state),
        );
    }
    let granted = grant_scope(payer, &faults, &req.scope).unwrap_or_default();
    let signer = match sandbox.signer().await {
        Ok(s) => s,
        Err(e) => return unavailable_page(&sandbox, payer, &e),
    };
    let login = login_token(signer, &slug, &form.request, &form.csrf, member, sandbox.now() + LOGIN_TTL_SECS);
    pages::consent_page(&sandbox, payer, &req, &form.request, &form.csrf, &login, member, &granted)
}

/// `POST /sandbox/{payer}/authorize/decide`: approve → redirect with a single-use `code`; deny →
/// `error=access_denied`. Callback faults (missing `code`, altered `state`) are applied here.
pub async fn decide(
    State(sandbox): State<Shared>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecideForm>,
) -> Response {
    let (payer, _params, req) = match form_context(&sandbox, &slug, &headers, &form.request, &form.csrf) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let signer = match sandbox.signer().await {
        Ok(s) => s,
        Err(e) => return unavailable_page(&sandbox, payer, &e),
    };
    let Some(member) = check_login(signer, sandbox.now(), &slug, &form.request, &form.csrf, &form.login) else {
        return pages::error_page(
            &sandbox,
            Some(payer),
            StatusCode::FORBIDDEN,
            "Your sign-in has expired. Close this window and start again from the application.",
        );
    };
    if form.decision != "approve" {
        return redirect_to_client(
            &req.redirect_uri,
            &[("error", "access_denied"), ("error_description", "The member declined to share their records")],
            Some(&req.state),
        );
    }
    let faults = payer.faults.merged(&members()[member].faults);
    let Some(scope) = grant_scope(payer, &faults, &req.scope) else {
        return redirect_to_client(&req.redirect_uri, &[("error", "invalid_scope")], Some(&req.state));
    };
    let code = crypto::random_token("sbx_ac_");
    let now = sandbox.now();
    let entry = CodeEntry {
        grant: Grant { payer: slug.clone(), member, scope, client_id: CLIENT_ID.to_string() },
        redirect_uri: req.redirect_uri.clone(),
        code_challenge: req.code_challenge.clone(),
        expires_at: now + payer.code_ttl,
    };
    if let Err(e) = store::insert_code(&sandbox.db, &code, &entry, now).await {
        return unavailable_page(&sandbox, payer, &e);
    }
    if faults.callback_without_code {
        return redirect_to_client(&req.redirect_uri, &[], Some(&req.state));
    }
    let state = if faults.alter_state { format!("{}-altered", req.state) } else { req.state.clone() };
    redirect_to_client(&req.redirect_uri, &[("code", code.as_str())], Some(&state))
}

/// An RFC 6749 §5.2 error response.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"sandbox\""));
    }
    resp
}

/// The client id from HTTP Basic (RFC 6749 §2.3.1) or from the body (public clients).
fn client_id(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
    {
        let raw = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let id = text.split(':').next()?;
        return Some(
            url::form_urlencoded::parse(id.as_bytes()).map(|(k, _)| k.into_owned()).next().unwrap_or_default(),
        );
    }
    form.get("client_id").cloned()
}

/// Claims of a sandbox access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    /// Payer slug.
    pub p: String,
    /// Member number.
    pub m: usize,
    /// Granted scope.
    pub s: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Token id (request counting).
    pub j: String,
}

fn issue_access_token(signer: Signer<'_>, claims: &AccessClaims) -> String {
    let body = serde_json::to_vec(claims).unwrap_or_default();
    let mac = signer.mac("access", &body);
    format!("sbx_at.{}.{}", URL_SAFE_NO_PAD.encode(&body), URL_SAFE_NO_PAD.encode(mac))
}

/// Verifies an access token's signature and expiry at `now`. `Err` carries the RFC 6750 error description.
pub(crate) fn verify_access_token(signer: Signer<'_>, now: i64, token: &str) -> Result<AccessClaims, &'static str> {
    let mut parts = token.split('.');
    let (Some("sbx_at"), Some(body), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("malformed access token");
    };
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| "malformed access token")?;
    let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| "malformed access token")?;
    if !crypto::ct_eq(&mac, &signer.mac("access", &body)) {
        return Err("unknown access token");
    }
    let claims: AccessClaims = serde_json::from_slice(&body).map_err(|_| "malformed access token")?;
    if claims.exp <= now {
        return Err("access token expired");
    }
    Ok(claims)
}

/// Mints the token response (SMART App Launch 2.0 §"Response to access token request") for an access token
/// limited to `access_scope` (the grant's scope, or the narrower one a refresh asked for). A new
/// `refresh_token` is issued (and stored, with the whole grant: RFC 6749 §6 keeps its scope identical) when
/// `new_refresh_token` is set, the payer is refreshable and the grant holds `offline_access`.
///
/// # Errors
/// The refresh token cannot be stored.
async fn token_response(
    sandbox: &Sandbox,
    signer: Signer<'_>,
    payer: &PayerConfig,
    grant: Grant,
    access_scope: String,
    new_refresh_token: bool,
) -> anyhow::Result<Response> {
    let faults = payer.faults.merged(&members()[grant.member].faults);
    let ttl = faults.access_token_ttl.unwrap_or(payer.access_token_ttl);
    let now = sandbox.now();
    let claims = AccessClaims {
        p: grant.payer.clone(),
        m: grant.member,
        s: access_scope.clone(),
        exp: now + ttl,
        j: crypto::random_id(12),
    };
    let access_token = issue_access_token(signer, &claims);
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": access_scope,
        "patient": data::patient_id(sandbox.seed, grant.member),
    });
    if faults.no_patient_context {
        body.as_object_mut().map(|o| o.remove("patient"));
    }
    if new_refresh_token && payer.refreshable && grant.scope.split_whitespace().any(|s| s == "offline_access") {
        let refresh_token = crypto::random_token("sbx_rt_");
        let entry = RefreshEntry { grant, expires_at: now + payer.refresh_token_ttl };
        store::insert_refresh_token(&sandbox.db, &refresh_token, &entry, now).await?;
        body["refresh_token"] = json!(refresh_token);
    }
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")], Json(body)).into_response())
}

/// The token endpoint's answer when the sandbox's own database fails: 500 `server_error` (the cause is logged).
fn token_endpoint_failure(payer: &PayerConfig, error: &anyhow::Error) -> Response {
    tracing::error!(payer = payer.slug, error = %error, "sandbox token endpoint failed");
    oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the health plan could not process the request")
}

/// `POST /sandbox/{payer}/token`: `authorization_code` (with `code_verifier`, RFC 7636 §4.6) and
/// `refresh_token` grants (rotating or not, per [`PayerConfig::rotates_refresh_tokens`]); errors per RFC 6749
/// §5.2.
pub async fn token(
    State(sandbox): State<Shared>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(payer) = sandbox.payer(&slug) else {
        return oauth_error(StatusCode::NOT_FOUND, "invalid_request", "unknown payer");
    };
    let client = match client_id(&headers, &form) {
        Some(id) if id == CLIENT_ID => id,
        Some(_) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client"),
        None => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication is required"),
    };
    let now = sandbox.now();
    let signer = match sandbox.signer().await {
        Ok(s) => s,
        Err(e) => return token_endpoint_failure(payer, &e),
    };
    let request = TokenRequest { sandbox: &sandbox, payer, slug: &slug, client: &client, form: &form, now };
    let granted = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code_grant(&request).await,
        Some("refresh_token") => refresh_token_grant(&request).await,
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            )
        }
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    };
    let (grant, access_scope, new_refresh_token) = match granted {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    token_response(&sandbox, signer, payer, grant, access_scope, new_refresh_token)
        .await
        .unwrap_or_else(|e| token_endpoint_failure(payer, &e))
}

/// A token request from the registered client to one payer, as the grant steps see it.
struct TokenRequest<'a> {
    sandbox: &'a Sandbox,
    payer: &'a PayerConfig,
    slug: &'a str,
    client: &'a str,
    form: &'a HashMap<String, String>,
    now: i64,
}

impl TokenRequest<'_> {
    /// Whether `grant` was issued by this payer to this client.
    fn issued_here(&self, grant: &Grant) -> bool {
        grant.payer == self.slug && grant.client_id == self.client
    }
}

/// What a valid grant lets the token endpoint issue: the grant, the access token's scope, and whether a new
/// `refresh_token` goes with it. `Err` is the endpoint's answer (RFC 6749 §5.2, or 500 when the database fails).
type Granted = Result<(Grant, String, bool), Response>;

/// The `authorization_code` grant (RFC 6749 §4.1.3, RFC 7636 §4.6): the code is taken (single use), then its
/// client, `redirect_uri` and `code_verifier` are checked; the member's token faults apply last.
async fn authorization_code_grant(req: &TokenRequest<'_>) -> Granted {
    let (sandbox, payer, form) = (req.sandbox, req.payer, req.form);
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (form.get("code"), form.get("redirect_uri"), form.get("code_verifier"))
    else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        ));
    };
    // Removed before any check: a code is single use even when the exchange fails.
    let entry = match store::take_code(&sandbox.db, code, req.now).await {
        Ok(e) => e,
        Err(e) => return Err(token_endpoint_failure(payer, &e)),
    };
    let Some(entry) = entry.filter(|e| req.issued_here(&e.grant)) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the authorization code is invalid, expired or already used",
        ));
    };
    if entry.redirect_uri != *redirect_uri {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match the authorization request",
        ));
    }
    if !verifier_matches(verifier, &entry.code_challenge) {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "code_verifier does not match the code_challenge",
        ));
    }
    let faults = payer.faults.merged(&members()[entry.grant.member].faults);
    if faults.slow_token {
        tokio::time::sleep(sandbox.slow_token_delay).await;
    }
    if let Some(error) = faults.token_error {
        return Err(oauth_error(StatusCode::BAD_REQUEST, error, "the health plan could not issue a token"));
    }
    let scope = entry.grant.scope.clone();
    Ok((entry.grant, scope, true))
}

/// Whether `verifier` is a well-formed `code_verifier` (RFC 7636 §4.1) whose S256 transform is `challenge`
/// (compared in constant time).
fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    valid_verifier && crypto::ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// The `refresh_token` grant (RFC 6749 §6): the token is taken when the payer rotates refresh tokens, else
/// only looked up; a `scope` may narrow the access token's scope, never widen it.
async fn refresh_token_grant(req: &TokenRequest<'_>) -> Granted {
    let (sandbox, payer, form) = (req.sandbox, req.payer, req.form);
    let Some(refresh_token) = form.get("refresh_token") else {
        return Err(oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required"));
    };
    let entry = if payer.rotates_refresh_tokens {
        store::take_refresh_token(&sandbox.db, refresh_token, req.now).await
    } else {
        store::find_refresh_token(&sandbox.db, refresh_token, req.now).await
    };
    let entry = match entry {
        Ok(e) => e,
        Err(e) => return Err(token_endpoint_failure(payer, &e)),
    };
    let Some(entry) = entry.filter(|e| req.issued_here(&e.grant)) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the refresh token is invalid, expired or already used",
        ));
    };
    let grant = entry.grant;
    if payer.faults.merged(&members()[grant.member].faults).refresh_refused {
        return Err(oauth_error(StatusCode::FORBIDDEN, "invalid_grant", "the health plan ended long-term access"));
    }
    let mut scope = grant.scope.clone();
    if let Some(requested) = form.get("scope") {
        let held: Vec<&str> = grant.scope.split_whitespace().collect();
        if !requested.split_whitespace().all(|s| held.contains(&s)) {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "the requested scope exceeds the original grant",
            ));
        }
        scope = requested.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    Ok((grant, scope, payer.rotates_refresh_tokens))
}

/// `GET {fhir_base}/.well-known/smart-configuration` (SMART App Launch 2.0 §"Conformance").
pub async fn smart_configuration(State(sandbox): State<Shared>, Path(slug): Path<String>) -> Response {
    let Some(payer) = sandbox.payer(&slug) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "unknown payer"}))).into_response();
    };
    let base = format!("{}/sandbox/{}", sandbox.base_url, payer.slug);
    let mut scopes = vec!["launch/patient".to_string(), "patient/*.read".to_string(), "patient/*.rs".to_string()];
    scopes.extend(SUPPORTED_RESOURCE_TYPES.iter().map(|t| format!("patient/{t}.read")));
    scopes.extend(SUPPORTED_RESOURCE_TYPES.iter().map(|t| format!("patient/{t}.rs")));
    let mut capabilities = vec![
        "launch-standalone",
        "client-public",
        "context-standalone-patient",
        "permission-patient",
        "permission-v1",
        "permission-v2",
    ];
    let mut grants = vec!["authorization_code"];
    if payer.refreshable {
        scopes.push("offline_access".into());
        capabilities.push("permission-offline");
        grants.push("refresh_token");
    }
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic"],
        "grant_types_supported": grants,
        "response_types_supported": ["code"],
        "scopes_supported": scopes,
        "code_challenge_methods_supported": ["S256"],
        "capabilities": capabilities,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_granted_per_payer_and_fault() {
        let payers = super::super::default_payers();
        let (health, basic) = (&payers[0], &payers[1]);
        let req = "launch/patient openid fhirUser offline_access patient/*.read user/*.read";
        assert_eq!(
            grant_scope(health, &Faults::default(), req).unwrap(),
            "launch/patient offline_access patient/*.read"
        );
        assert_eq!(grant_scope(basic, &Faults::default(), req).unwrap(), "launch/patient patient/*.read");
        assert!(grant_scope(health, &Faults::default(), "openid offline_access").is_none());
        let narrow = Faults { narrow_scopes: Some(&["Patient", "Coverage"]), ..Faults::default() };
        let g = grant_scope(health, &narrow, "patient/*.rs offline_access").unwrap();
        assert_eq!(g, "offline_access patient/Patient.read patient/Coverage.read");
        assert!(scope_allows(&g, "Coverage") && !scope_allows(&g, "Condition"));
        assert!(scope_allows("patient/*.rs", "Observation"));
        assert!(!scope_allows("patient/*.c", "Observation"));
    }
}
