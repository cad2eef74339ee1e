//! Where a payer's OAuth endpoints are: the endpoint's configured overrides, else
//! `{fhir_base}/.well-known/smart-configuration` (SMART App Launch 2.0 §2.5), else the `oauth-uris` extension of
//! the CapabilityStatement at `{fhir_base}/metadata` (SMART App Launch 1.0). A live-mode endpoint's authorize and
//! token URLs must be `https` (a patient's sign-in and the tokens cross them), whatever their source.

use serde_json::Value;

use crate::{
    domain::{ExitCode, Mode},
    server::store::endpoints::Endpoint,
};

/// The OAuth endpoints of a payer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartConfiguration {
    /// `authorization_endpoint`.
    pub authorize_url: String,
    /// `token_endpoint`.
    pub token_url: String,
    /// `issuer`, when the metadata gives one: the value an RFC 9207 `iss` on the callback must equal.
    pub issuer: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3): a callback without `iss` is refused.
    pub iss_required: bool,
}

fn http_url(s: &str) -> Option<String> {
    let u = url::Url::parse(s).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

enum DiscoveryError {
    Timeout,
    Server,
    Invalid,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, DiscoveryError> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json, application/fhir+json")
        .send()
        .await
        .map_err(|e| if e.is_timeout() { DiscoveryError::Timeout } else { DiscoveryError::Server })?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(DiscoveryError::Server);
    }
    if !status.is_success() {
        return Err(DiscoveryError::Invalid);
    }
    let bytes = resp.bytes().await.map_err(|e| if e.is_timeout() { DiscoveryError::Timeout } else { DiscoveryError::Server })?;
    serde_json::from_slice(&bytes).map_err(|_| DiscoveryError::Invalid)
}

fn from_smart_configuration(v: &Value) -> Option<SmartConfiguration> {
    Some(SmartConfiguration {
        authorize_url: http_url(v.get("authorization_endpoint")?.as_str()?)?,
        token_url: http_url(v.get("token_endpoint")?.as_str()?)?,
        issuer: v.get("issuer").and_then(Value::as_str).filter(|i| !i.is_empty()).map(str::to_string),
        iss_required: v.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool) == Some(true),
    })
}

/// Reads the `http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris` extension of a
/// CapabilityStatement (`rest[].security.extension`).
fn from_capability_statement(v: &Value) -> Option<SmartConfiguration> {
    for rest in v.get("rest")?.as_array()? {
        let Some(exts) = rest.pointer("/security/extension").and_then(Value::as_array) else { continue };
        for ext in exts {
            if !ext.get("url").and_then(Value::as_str).is_some_and(|u| u.ends_with("/oauth-uris")) {
                continue;
            }
            let inner = ext.get("extension").and_then(Value::as_array)?;
            let find = |name: &str| {
                inner
                    .iter()
                    .find(|e| e.get("url").and_then(Value::as_str) == Some(name))
                    .and_then(|e| e.get("valueUri").and_then(Value::as_str))
                    .and_then(http_url)
            };
            if let (Some(a), Some(t)) = (find("authorize"), find("token")) {
                return Some(SmartConfiguration { authorize_url: a, token_url: t, issuer: None, iss_required: false });
            }
        }
    }
    None
}

/// Whether `url` is an `https` URL.
pub fn is_https(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "https")
}

/// Finds the payer's OAuth endpoints: the endpoint's overrides, then `.well-known/smart-configuration`,
/// then `/metadata`. A live-mode endpoint whose authorize or token URL is not `https` is refused.
///
/// # Errors
/// `PAYER_TIMEOUT`, `PAYER_SERVER_ERROR` (5xx or unreachable) or `ENDPOINT_CONFIGURATION_ERROR`.
pub async fn discover(http: &reqwest::Client, endpoint: &Endpoint) -> Result<SmartConfiguration, ExitCode> {
    let found = find(http, endpoint).await?;
    if endpoint.mode == Mode::Live && !(is_https(&found.authorize_url) && is_https(&found.token_url)) {
        tracing::warn!(endpoint = %endpoint.id, "a live endpoint's authorize or token URL is not https");
        return Err(ExitCode::EndpointConfigurationError);
    }
    Ok(found)
}

async fn find(http: &reqwest::Client, endpoint: &Endpoint) -> Result<SmartConfiguration, ExitCode> {
    if let (Some(a), Some(t)) = (&endpoint.authorize_url, &endpoint.token_url) {
        return Ok(SmartConfiguration { authorize_url: a.clone(), token_url: t.clone(), issuer: None, iss_required: false });
    }
    let base = endpoint.fhir_base();
    let found = match get_json(http, &format!("{base}/.well-known/smart-configuration")).await {
        Ok(v) => from_smart_configuration(&v).ok_or(DiscoveryError::Invalid),
        Err(e) => Err(e),
    };
    let found = match found {
        Ok(c) => Ok(c),
        Err(first) => match get_json(http, &format!("{base}/metadata")).await {
            Ok(v) => from_capability_statement(&v).ok_or(first),
            Err(DiscoveryError::Invalid) => Err(first),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(mut c) => {
            if let Some(a) = &endpoint.authorize_url {
                c.authorize_url = a.clone();
            }
            if let Some(t) = &endpoint.token_url {
                c.token_url = t.clone();
            }
            Ok(c)
        }
        Err(e) => {
            tracing::warn!(endpoint = %endpoint.id, "SMART discovery failed");
            Err(match e {
                DiscoveryError::Timeout => ExitCode::PayerTimeout,
                DiscoveryError::Server => ExitCode::PayerServerError,
                DiscoveryError::Invalid => ExitCode::EndpointConfigurationError,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn capability_statement_oauth_uris() {
        let cs = json!({"rest": [{"security": {"extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [{"url": "authorize", "valueUri": "https://p.example/auth"},
                          {"url": "token", "valueUri": "https://p.example/token"}]}]}}]});
        let c = from_capability_statement(&cs).unwrap();
        assert_eq!(c.authorize_url, "https://p.example/auth");
        assert_eq!(c.token_url, "https://p.example/token");
    }
}
