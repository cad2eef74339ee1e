//! `link-sdk endpoints check`: a setup assistant that probes an endpoint the way a link would, and says what
//! would go wrong with the fix, one [`Problem`] each.
//!
//! What it looks at, in order: the entry itself (a client id, the secret variable set in this environment,
//! `https` for a live endpoint); `{fhir_base}/.well-known/smart-configuration` (SMART App Launch 2.0 §2.5: the
//! authorize and token endpoints, PKCE `S256` in `code_challenge_methods_supported`, SMART v1 or v2 scopes —
//! Link asks for v1 `patient/{type}.read` — and `offline_access` when the entry says the payer can refresh);
//! then `{fhir_base}/metadata` (a FHIR R4 CapabilityStatement, its `oauth-uris` when there is no SMART
//! configuration, `_lastUpdated` search and the `$everything` operation). Requests use the server's payer HTTP
//! client (no redirects followed, the payer timeout). Nothing is sent to the token endpoint: no secret leaves.

use serde::Serialize;
use serde_json::Value;

use crate::{
    domain::Mode,
    server::{fhir, services::payer::discovery, store::endpoints::Endpoint},
};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Links to this endpoint fail until it is fixed.
    Error,
    /// Links work, with less (no refresh, slower or fuller re-syncs) or with a risk worth a look.
    Warning,
}

/// One problem, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// A stable short code (e.g. `pkce_s256`), for scripts.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    fn new(severity: Severity, code: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Problem { severity, code, message: message.into(), fix: fix.into() }
    }

    /// The operator's line: `error [code] message — fix: …`.
    pub fn line(&self) -> String {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        format!("{s} [{}] {} — fix: {}", self.code, self.message, self.fix)
    }
}

/// What a fetch gave: the JSON, or why not.
enum Fetched {
    Json(Value),
    Status(u16),
    NotJson,
    Unreachable(String),
}

async fn fetch(http: &reqwest::Client, url: &str) -> Fetched {
    let resp = match http.get(url).header(reqwest::header::ACCEPT, "application/json, application/fhir+json").send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Fetched::Unreachable("no answer in time".into()),
        Err(e) if e.is_connect() => return Fetched::Unreachable("connection refused or host not found".into()),
        Err(_) => return Fetched::Unreachable("the request failed".into()),
    };
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Fetched::Status(status);
    }
    match resp.bytes().await.ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
        Some(v) => Fetched::Json(v),
        None => Fetched::NotJson,
    }
}

fn describe(f: &Fetched) -> String {
    match f {
        Fetched::Json(_) => "a JSON answer of the wrong shape".into(),
        Fetched::Status(s) => format!("HTTP {s}"),
        Fetched::NotJson => "an answer that is not JSON".into(),
        Fetched::Unreachable(why) => why.clone(),
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// What the directory knows is wrong with endpoint `e` for an operator's list: the checks on the entry alone
/// ([`check_entry`], always current) and the probe problems the last `endpoints check` stored (`stored`, the
/// JSON array it recorded), without repeating a code; each as `message — fix: …`.
pub fn known_problems(e: &Endpoint, stored: Option<&Value>) -> Vec<String> {
    let mut out: Vec<(String, String)> = check_entry(e).into_iter().map(|p| (p.code.to_string(), format!("{} — fix: {}", p.message, p.fix))).collect();
    for p in stored.and_then(Value::as_array).into_iter().flatten() {
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let code = text("code");
        if !out.iter().any(|(c, _)| *c == code) {
            out.push((code, format!("{} — fix: {}", text("message"), text("fix"))));
        }
    }
    out.into_iter().map(|(_, line)| line).collect()
}

/// The checks on the entry alone (no network).
pub fn check_entry(e: &Endpoint) -> Vec<Problem> {
    let mut out = Vec::new();
    let set = format!("link-sdk endpoints set {}", e.id);
    if e.client_id.trim().is_empty() {
        out.push(Problem::new(
            Severity::Error,
            "client_id",
            "no client id: the endpoint is offered to no patient",
            format!("register Link at the payer (redirect_uri = {{public URL}}/link/callback), then {set} --client-id <the id it gave>"),
        ));
    } else if let Err(why) = e.validate() {
        out.push(Problem::new(Severity::Error, "entry", format!("{why:#}"), format!("correct the entry with {set} or a new import")));
    }
    if let Some(r) = e.client_secret_ref.as_deref() {
        if e.client_secret().is_none() {
            out.push(Problem::new(
                Severity::Error,
                "client_secret",
                format!("the secret variable {r} is not set in this environment: the token exchange will be refused"),
                format!("set {r} to the client secret in the server's environment (or {set} --client-secret-ref \"\" for a public client)"),
            ));
        }
    }
    for (what, u) in [("fhir_base_url", Some(&e.fhir_base_url)), ("authorize_url", e.authorize_url.as_ref()), ("token_url", e.token_url.as_ref())] {
        let Some(Ok(parsed)) = u.map(|u| url::Url::parse(u)) else { continue };
        if parsed.scheme() == "https" {
            continue;
        }
        match e.mode {
            Mode::Live => out.push(Problem::new(
                Severity::Error,
                "https",
                format!("{what} is not https: tokens and health data would cross the network in the clear"),
                format!("use the payer's https URL ({set} or a new import)"),
            )),
            Mode::Test if !is_loopback(&parsed) => out.push(Problem::new(
                Severity::Warning,
                "https",
                format!("{what} is not https (test mode allows it)"),
                "use https unless this is a local test payer".to_string(),
            )),
            Mode::Test => {}
        }
    }
    out
}

/// Probes `e` as a link would (see the module docs) and returns every problem found (empty: ready).
pub async fn check(http: &reqwest::Client, e: &Endpoint) -> Vec<Problem> {
    let mut out = check_entry(e);
    let base = e.fhir_base();
    let set = format!("link-sdk endpoints set {}", e.id);
    let smart = fetch(http, &format!("{base}/.well-known/smart-configuration")).await;
    let smart_json = match &smart {
        Fetched::Json(v) if v.get("authorization_endpoint").is_some() || v.get("token_endpoint").is_some() => Some(v),
        _ => None,
    };
    let metadata = fetch(http, &format!("{base}/metadata")).await;
    let overridden = e.authorize_url.is_some() && e.token_url.is_some();
    match smart_json {
        Some(v) => check_smart_configuration(e, v, &set, &mut out),
        None => {
            let fallback = matches!(&metadata, Fetched::Json(_)) && discovery::discover(http, e).await.is_ok();
            let (severity, fix) = if fallback || overridden {
                (Severity::Warning, "ask the payer to publish it (SMART App Launch 2.0); Link uses the metadata's oauth-uris or the entry's URLs meanwhile".to_string())
            } else {
                (Severity::Error, format!("check the FHIR base URL, or give the OAuth URLs: {set} --authorize-url … --token-url …"))
            };
            out.push(Problem::new(
                severity,
                "smart_configuration",
                format!("no SMART configuration at {base}/.well-known/smart-configuration ({})", describe(&smart)),
                fix,
            ));
        }
    }
    match &metadata {
        Fetched::Json(cs) if cs.get("resourceType").and_then(Value::as_str) == Some("CapabilityStatement") => {
            check_capability_statement(cs, &mut out)
        }
        other => out.push(Problem::new(
            Severity::Error,
            "metadata",
            format!("no FHIR CapabilityStatement at {base}/metadata ({})", describe(other)),
            "check that the FHIR base URL is the payer's FHIR R4 base (it ends before /Patient)".to_string(),
        )),
    }
    out
}

fn check_smart_configuration(e: &Endpoint, v: &Value, set: &str, out: &mut Vec<Problem>) {
    for field in ["authorization_endpoint", "token_endpoint"] {
        let ok = v.get(field).and_then(Value::as_str).and_then(|u| url::Url::parse(u).ok()).is_some_and(|u| {
            u.scheme() == "https" || (e.mode == Mode::Test && u.scheme() == "http")
        });
        if !ok {
            out.push(Problem::new(
                Severity::Error,
                "smart_configuration",
                format!("the SMART configuration's {field} is missing or not an https URL"),
                format!("ask the payer to correct it, or give it: {set} --{} <url>", if field == "token_endpoint" { "token-url" } else { "authorize-url" }),
            ));
        }
    }
    let methods = strings(v, "code_challenge_methods_supported");
    if methods.is_empty() {
        out.push(Problem::new(
            Severity::Warning,
            "pkce_s256",
            "the payer does not list code_challenge_methods_supported: Link always sends PKCE S256 and cannot tell whether it is checked",
            "confirm with the payer that PKCE S256 is supported (SMART App Launch 2.0 requires it)",
        ));
    } else if !methods.iter().any(|m| m == "S256") {
        out.push(Problem::new(
            Severity::Error,
            "pkce_s256",
            format!("the payer supports PKCE {} but not S256, which Link always uses", methods.join(", ")),
            "ask the payer to enable PKCE S256 (SMART App Launch 2.0 requires it); Link never sends plain",
        ));
    }
    let scopes = strings(v, "scopes_supported");
    let capabilities = strings(v, "capabilities");
    let v1 = capabilities.iter().any(|c| c == "permission-v1") || scopes.iter().any(|s| s.ends_with(".read") || s.ends_with(".*"));
    let v2 = capabilities.iter().any(|c| c == "permission-v2") || scopes.iter().any(|s| s.ends_with(".rs") || s.ends_with(".r"));
    if v2 && !v1 {
        out.push(Problem::new(
            Severity::Error,
            "scope_style",
            "the payer lists only SMART v2 scopes (patient/*.rs); Link asks for SMART v1 scopes (patient/*.read)",
            format!("ask the payer whether it accepts v1 scopes; if not, add the v2 ones: {set} --scopes \"patient/*.rs\""),
        ));
    }
    let offline = scopes.iter().any(|s| s == "offline_access") || capabilities.iter().any(|c| c == "permission-offline");
    let grants = strings(v, "grant_types_supported");
    if e.refreshable && !offline && !scopes.is_empty() {
        out.push(Problem::new(
            Severity::Warning,
            "offline_access",
            "the entry says the payer issues refresh tokens, but its SMART configuration offers no offline_access: MULTIPLE links will be downgraded to ONE_TIME",
            format!("confirm with the payer; if it cannot refresh, {set} --refreshable false"),
        ));
    } else if !e.refreshable && offline && (grants.is_empty() || grants.iter().any(|g| g == "refresh_token")) {
        out.push(Problem::new(
            Severity::Warning,
            "offline_access",
            "the payer offers offline_access, but the entry says it is not refreshable: every MULTIPLE link is downgraded to ONE_TIME",
            format!("{set} --refreshable true"),
        ));
    }
    let methods = strings(v, "token_endpoint_auth_methods_supported");
    if e.client_secret_ref.is_none() && !methods.is_empty() && !methods.iter().any(|m| m == "none") && !capabilities.iter().any(|c| c == "client-public") {
        out.push(Problem::new(
            Severity::Warning,
            "client_auth",
            format!("the payer lists no public-client authentication ({}), and the entry has no secret variable", methods.join(", ")),
            format!("if the payer registered Link as a confidential client, {set} --client-secret-ref LINK_PAYER_SECRET_…"),
        ));
    }
}

fn check_capability_statement(cs: &Value, out: &mut Vec<Problem>) {
    let version = cs.get("fhirVersion").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("4.0") {
        out.push(Problem::new(
            Severity::Error,
            "fhir_version",
            format!("the server says FHIR version {:?}; Link reads FHIR R4 (4.0.x)", version),
            "use the payer's FHIR R4 base URL",
        ));
    }
    let rests: Vec<&Value> = cs.get("rest").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let resources: Vec<&Value> =
        rests.iter().flat_map(|r| r.get("resource").and_then(Value::as_array).into_iter().flatten()).collect();
    if !fhir::capability::searches_any(cs, "_lastUpdated") {
        out.push(Problem::new(
            Severity::Warning,
            "last_updated",
            "the CapabilityStatement lists no _lastUpdated search: a re-sync cannot ask for changes only",
            "nothing to fix on Link's side; re-syncs of MULTIPLE links read everything again (ask the payer for _lastUpdated)",
        ));
    }
    let everything = rests.iter().any(|r| strings_of_objects(r, "operation", "name").iter().any(|n| n == "everything"))
        || resources.iter().filter(|r| r.get("type").and_then(Value::as_str) == Some("Patient")).any(|r| {
            strings_of_objects(r, "operation", "name").iter().any(|n| n == "everything")
        });
    if !everything {
        out.push(Problem::new(
            Severity::Warning,
            "everything",
            "the CapabilityStatement lists no Patient $everything operation",
            "nothing to fix on Link's side: it reads type by type (more requests); ask the payer if it offers $everything",
        ));
    }
}

fn strings_of_objects(v: &Value, key: &str, field: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|o| o.get(field).and_then(Value::as_str)).map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_statement_features() {
        let mut out = Vec::new();
        check_capability_statement(
            &json!({"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [{"mode": "server",
                "resource": [{"type": "Patient", "operation": [{"name": "everything", "definition": "x"}],
                              "searchParam": [{"name": "_lastUpdated", "type": "date"}]}]}]}),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        check_capability_statement(&json!({"resourceType": "CapabilityStatement", "fhirVersion": "3.0.2", "rest": []}), &mut out);
        let codes: Vec<&str> = out.iter().map(|p| p.code).collect();
        assert_eq!(codes, ["fhir_version", "last_updated", "everything"]);
    }
}
