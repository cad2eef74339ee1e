//! The authorization request as it travels between the sandbox's sign-in and consent pages: the query of
//! `GET /authorize`, its validated form, and the encoding of the hidden `request` form field.
//!
//! Plain data shared by the handlers ([`super::auth`]) and the page renderer ([`super::pages`]); it imports
//! neither, so they never import each other both ways. The encoded value is not a secret and is re-validated
//! at every step.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};

/// Query of `GET /authorize` (SMART App Launch 2.0 §"Obtain authorization code"). Every field is optional here
/// so that a missing one produces the right error instead of an extractor rejection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeParams {
    #[serde(default)]
    pub response_type: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    #[serde(default)]
    pub code_challenge_method: Option<String>,
}

/// A request that passed validation.
pub(crate) struct ValidRequest {
    pub redirect_uri: String,
    pub state: String,
    pub scope: String,
    pub code_challenge: String,
}

/// Encodes the authorization request for a hidden field (base64url of its JSON).
pub(crate) fn encode_request(p: &AuthorizeParams) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(p).unwrap_or_default())
}

/// Decodes a hidden `request` field; `None` when it is not what [`encode_request`] produces.
pub(crate) fn decode_request(s: &str) -> Option<AuthorizeParams> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}
