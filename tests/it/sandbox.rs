//! The built-in sandbox payer, driven as a remote SMART on FHIR server over real HTTP: the standalone sandbox
//! on a random port with the `oauth2` crate's client, plus the copy mounted in the main server.

use std::{collections::HashSet, sync::Arc, time::Duration};

use link_sdk::server::{
    platform::{clock::ManualClock, db::Db},
    store::endpoints,
    surfaces::sandbox::{self, SandboxConfig},
};
use oauth2::{
    basic::{BasicClient, BasicErrorResponseType},
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, TokenResponse as _, TokenUrl,
};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/link/callback";
const SCOPES: &str = "launch/patient openid fhirUser offline_access patient/*.read";

struct Sbx {
    base: String,
    clock: ManualClock,
    http: reqwest::Client,
    _handle: tokio::task::JoinHandle<()>,
    /// Holds the sandbox's SQLite file (when not on `TEST_DATABASE_URL`'s PostgreSQL).
    _dir: tempfile::TempDir,
}

impl Drop for Sbx {
    fn drop(&mut self) {
        self._handle.abort();
    }
}

async fn spawn_with(slow: Duration) -> Sbx {
    let clock = ManualClock::new();
    let cfg = SandboxConfig {
        redirect_uris: vec![REDIRECT.to_string()],
        seed: 7,
        clock: Arc::new(clock.clone()),
        slow_token_delay: slow,
        ..SandboxConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&crate::common::fresh_database_url(&dir).await, 4).await.expect("sandbox database");
    let (base, handle) = sandbox::spawn_standalone(cfg, db).await.expect("spawn sandbox");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sbx { base, clock, http, _handle: handle, _dir: dir }
}

async fn spawn() -> Sbx {
    spawn_with(Duration::from_secs(3)).await
}

type Client = oauth2::Client<
    oauth2::StandardErrorResponse<BasicErrorResponseType>,
    oauth2::StandardTokenResponse<oauth2::EmptyExtraTokenFields, oauth2::basic::BasicTokenType>,
    oauth2::StandardTokenIntrospectionResponse<oauth2::EmptyExtraTokenFields, oauth2::basic::BasicTokenType>,
    oauth2::StandardRevocableToken,
    oauth2::StandardErrorResponse<oauth2::RevocationErrorResponseType>,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn client(s: &Sbx, payer: &str, redirect: &str) -> Client {
    BasicClient::new(ClientId::new(sandbox::CLIENT_ID.into()))
        .set_auth_uri(AuthUrl::new(format!("{}/sandbox/{payer}/authorize", s.base)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/sandbox/{payer}/token", s.base)).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.into()).unwrap())
}

struct Authorized {
    location: url::Url,
    verifier: PkceCodeVerifier,
    state: String,
}

impl Authorized {
    fn param(&self, name: &str) -> Option<String> {
        self.location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }
    fn code(&self) -> String {
        self.param("code").unwrap_or_else(|| panic!("no code in {}", self.location))
    }
}

/// Runs the authorize step (sign-in + consent) and returns where the sandbox redirected.
async fn authorize(s: &Sbx, payer: &str, username: &str, scopes: &str, approve: bool) -> Authorized {
    let c = client(s, payer, REDIRECT);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = c
        .authorize_url(CsrfToken::new_random)
        .add_extra_param("aud", sandbox::fhir_base(&s.base, payer))
        .set_pkce_challenge(challenge);
    for sc in scopes.split_whitespace() {
        req = req.add_scope(Scope::new(sc.into()));
    }
    let (url, state) = req.url();
    let location = sandbox::drive_consent(&s.http, url.as_str(), username, approve).await.expect("drive consent");
    Authorized { location: url::Url::parse(&location).unwrap(), verifier, state: state.secret().clone() }
}

/// Signs in and exchanges the code; returns the raw token response JSON.
async fn tokens(s: &Sbx, payer: &str, username: &str) -> Value {
    let a = authorize(s, payer, username, SCOPES, true).await;
    let resp = s
        .http
        .post(format!("{}/sandbox/{payer}/token", s.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &a.code()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", a.verifier.secret()),
            ("client_id", sandbox::CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

async fn fhir(s: &Sbx, url: &str, token: &str) -> reqwest::Response {
    s.http.get(url).bearer_auth(token).send().await.unwrap()
}

fn token_error(
    e: RequestTokenError<
        oauth2::HttpClientError<reqwest::Error>,
        oauth2::StandardErrorResponse<BasicErrorResponseType>,
    >,
) -> BasicErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an OAuth error response, got {other:?}"),
    }
}

#[tokio::test]
async fn pkce_is_verified_and_codes_are_single_use() {
    let s = spawn().await;
    let c = client(&s, "sandbox-health", REDIRECT);

    // Wrong verifier: rejected, and the code is spent.
    let a = authorize(&s, "sandbox-health", sandbox::MEMBER_TYPICAL, SCOPES, true).await;
    assert_eq!(a.param("state").as_deref(), Some(a.state.as_str()), "state echoed");
    let wrong = PkceCodeVerifier::new("x".repeat(64));
    let err = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(wrong)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant);
    let err = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant, "a code works once, even after a failure");

    // Right verifier: tokens, with offline_access granted on the refreshable payer.
    let a = authorize(&s, "sandbox-health", sandbox::MEMBER_TYPICAL, SCOPES, true).await;
    let code = a.code();
    let t = c
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap();
    assert!(t.refresh_token().is_some());
    let scopes: Vec<String> = t.scopes().unwrap().iter().map(|s| s.to_string()).collect();
    assert!(scopes.contains(&"offline_access".to_string()) && scopes.contains(&"patient/*.read".to_string()));
    assert!(!scopes.contains(&"openid".to_string()), "unsupported scopes are not granted");
    let again = PkceCodeVerifier::new("y".repeat(43));
    let err = c
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(again)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant, "replayed code");

    // Expired code (60 s).
    let a = authorize(&s, "sandbox-health", sandbox::MEMBER_TYPICAL, SCOPES, true).await;
    s.clock.advance(61);
    let err = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant);

    // No PKCE at all: the authorize step refuses with invalid_request.
    let (url, _) = c
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("patient/*.read".into()))
        .add_extra_param("aud", sandbox::fhir_base(&s.base, "sandbox-health"))
        .url();
    let loc = sandbox::drive_consent(&s.http, url.as_str(), sandbox::MEMBER_TYPICAL, true).await.unwrap();
    assert!(loc.starts_with(REDIRECT) && loc.contains("error=invalid_request"), "{loc}");
}

#[tokio::test]
async fn wrong_redirect_uri_and_aud_are_rejected() {
    let s = spawn().await;
    // Unregistered redirect_uri: an error page, never a redirect (RFC 6749 §4.1.2.1).
    let c = client(&s, "sandbox-health", "http://127.0.0.1:9/link/callback/");
    let (challenge, _v) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = c
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("patient/*.read".into()))
        .add_extra_param("aud", sandbox::fhir_base(&s.base, "sandbox-health"))
        .set_pkce_challenge(challenge)
        .url();
    let resp = s.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());

    // redirect_uri at the token endpoint must match the one of the authorization request.
    let a = authorize(&s, "sandbox-health", sandbox::MEMBER_TYPICAL, SCOPES, true).await;
    let other = client(&s, "sandbox-health", "http://127.0.0.1:9/elsewhere");
    let err = other
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant);

    // aud must be this payer's FHIR base.
    let c = client(&s, "sandbox-health", REDIRECT);
    let (challenge, _v) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = c
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("patient/*.read".into()))
        .add_extra_param("aud", sandbox::fhir_base(&s.base, "sandbox-basic"))
        .set_pkce_challenge(challenge)
        .url();
    let resp = s.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(resp.headers()["location"].to_str().unwrap().contains("error=invalid_request"));

    // Unknown client.
    let resp = s
        .http
        .get(format!("{}/sandbox/sandbox-health/authorize?client_id=other&redirect_uri={REDIRECT}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn refresh_rotates_and_only_refreshable_payers_issue_refresh_tokens() {
    let s = spawn().await;
    let c = client(&s, "sandbox-health", REDIRECT);
    let a = authorize(&s, "sandbox-health", sandbox::MEMBER_TYPICAL, SCOPES, true).await;
    let t = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap();
    let rt1 = t.refresh_token().unwrap().clone();
    let t2 = c.exchange_refresh_token(&rt1).request_async(&s.http).await.unwrap();
    let rt2 = t2.refresh_token().expect("rotated refresh token").clone();
    assert_ne!(rt1.secret(), rt2.secret());
    assert_ne!(t.access_token().secret(), t2.access_token().secret());
    let err = c.exchange_refresh_token(&rt1).request_async(&s.http).await.unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant, "the old refresh token is spent");
    let err =
        c.exchange_refresh_token(&RefreshToken::new("sbx_rt_nope".into())).request_async(&s.http).await.unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant);
    // A refresh may narrow the access token's scope; the rotated refresh token keeps the whole grant (RFC 6749 §6).
    let narrow = c
        .exchange_refresh_token(&rt2)
        .add_scope(Scope::new("patient/*.read".into()))
        .request_async(&s.http)
        .await
        .unwrap();
    let scopes = |t: &oauth2::basic::BasicTokenResponse| t.scopes().unwrap().iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(scopes(&narrow), ["patient/*.read"]);
    let t2 = c.exchange_refresh_token(narrow.refresh_token().unwrap()).request_async(&s.http).await.unwrap();
    assert!(scopes(&t2).contains(&"offline_access".to_string()) && scopes(&t2).contains(&"launch/patient".to_string()), "{:?}", scopes(&t2));
    // The new access token works on the FHIR server.
    let resp =
        fhir(&s, &format!("{}/Patient", sandbox::fhir_base(&s.base, "sandbox-health")), t2.access_token().secret())
            .await;
    assert_eq!(resp.status(), 200);

    // Token response carries `patient`; the non-refreshable payer never issues a refresh_token.
    let raw = tokens(&s, "sandbox-basic", sandbox::MEMBER_TYPICAL).await;
    assert!(raw["patient"].as_str().is_some_and(|p| !p.is_empty()));
    assert_eq!(raw["token_type"], "Bearer");
    assert!(raw.get("refresh_token").is_none());
    assert!(!raw["scope"].as_str().unwrap().contains("offline_access"));
    let raw = tokens(&s, "sandbox-health", sandbox::MEMBER_TYPICAL).await;
    assert!(raw["refresh_token"].as_str().is_some());

    // Unsupported grant type, unknown client: RFC 6749 §5.2 errors.
    let resp = s
        .http
        .post(format!("{}/sandbox/sandbox-health/token", s.base))
        .form(&[("grant_type", "password"), ("client_id", "link-sdk")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    let resp = s
        .http
        .post(format!("{}/sandbox/sandbox-health/token", s.base))
        .form(&[("grant_type", "refresh_token"), ("client_id", "someone"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
}

/// Follows `next` links from `first`, returning every resource id seen (in order).
async fn collect(s: &Sbx, first: &str, token: &str) -> (Vec<String>, i64, Vec<String>) {
    let mut ids = Vec::new();
    let mut next_links = Vec::new();
    let mut url = first.to_string();
    let mut total;
    loop {
        let resp = fhir(s, &url, token).await;
        assert_eq!(resp.status(), 200, "{url}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
        let b: Value = resp.json().await.unwrap();
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "searchset");
        total = b["total"].as_i64().unwrap();
        for e in b["entry"].as_array().unwrap() {
            ids.push(e["resource"]["id"].as_str().unwrap().to_string());
        }
        match b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(l) => {
                let next = l["url"].as_str().unwrap().to_string();
                next_links.push(next.clone());
                url = url::Url::parse(&url).unwrap().join(&next).unwrap().to_string();
            }
            None => break,
        }
    }
    (ids, total, next_links)
}

#[tokio::test]
async fn paging_returns_every_resource_exactly_once_and_the_large_member_has_2000_eobs() {
    let s = spawn().await;
    let base = sandbox::fhir_base(&s.base, "sandbox-health");
    let raw = tokens(&s, "sandbox-health", sandbox::MEMBER_TYPICAL).await;
    let (at, patient) = (raw["access_token"].as_str().unwrap(), raw["patient"].as_str().unwrap());
    for rtype in ["ExplanationOfBenefit", "Coverage", "Observation", "Condition", "Encounter", "Patient"] {
        let (ids, total, _) = collect(&s, &format!("{base}/{rtype}?patient={patient}&_count=5"), at).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{rtype}: duplicates");
        assert_eq!(ids.len() as i64, total, "{rtype}: all pages");
        assert!(total > 0, "{rtype}");
    }
    // EOBs of each CARIN type, with contained resources and references.
    let (ids, _, _) = collect(&s, &format!("{base}/ExplanationOfBenefit?patient={patient}&_count=50"), at).await;
    for kind in ["inpatient", "outpatient", "carrier", "pde"] {
        assert!(ids.iter().any(|i| i.starts_with(kind)), "{kind}");
    }
    let eob: Value = fhir(&s, &format!("{base}/ExplanationOfBenefit/{}", ids[0]), at).await.json().await.unwrap();
    assert!(!eob["contained"].as_array().unwrap().is_empty());
    assert!(eob["insurance"][0]["coverage"]["reference"].as_str().unwrap().starts_with("Coverage/"));
    assert_eq!(eob["insurer"]["reference"], "Organization/org-payer");
    let prac = eob["careTeam"][0]["provider"]["reference"].as_str().unwrap();
    assert_eq!(fhir(&s, &format!("{base}/{prac}"), at).await.status(), 200, "{prac} readable");
    assert_eq!(fhir(&s, &format!("{base}/Organization/org-payer"), at).await.status(), 200);
    // Member with no claims.
    let raw = tokens(&s, "sandbox-health", sandbox::MEMBER_NO_CLAIMS).await;
    let (ids, total, _) =
        collect(&s, &format!("{base}/ExplanationOfBenefit"), raw["access_token"].as_str().unwrap()).await;
    assert!(ids.is_empty() && total == 0);

    // The large member, page by page.
    let raw = tokens(&s, "sandbox-health", sandbox::MEMBER_LARGE).await;
    // (How fast is examples/sync_bench's business, not a test's: a loaded CI machine is no measure.)
    let (ids, total, _) =
        collect(&s, &format!("{base}/ExplanationOfBenefit?_count=250"), raw["access_token"].as_str().unwrap()).await;
    assert!(total >= 2000, "{total}");
    assert_eq!(ids.len() as i64, total);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
}

#[tokio::test]
async fn bearer_token_expiry_and_patient_compartment_are_enforced() {
    let s = spawn().await;
    let base = sandbox::fhir_base(&s.base, "sandbox-health");
    let resp = s.http.get(format!("{base}/Patient")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    let resp = fhir(&s, &format!("{base}/Patient"), "sbx_at.bogus.token").await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    let alex = tokens(&s, "sandbox-health", sandbox::MEMBER_SUBSCRIBER).await;
    let sam = tokens(&s, "sandbox-health", sandbox::MEMBER_DEPENDENT).await;
    let (alex_id, sam_at) = (alex["patient"].as_str().unwrap(), sam["access_token"].as_str().unwrap());
    // Family: Sam's Coverage names Alex as subscriber, with the same subscriberId.
    let sam_cov: Value = fhir(&s, &format!("{base}/Coverage"), sam_at).await.json().await.unwrap();
    let alex_cov: Value =
        fhir(&s, &format!("{base}/Coverage"), alex["access_token"].as_str().unwrap()).await.json().await.unwrap();
    let (sc, ac) = (&sam_cov["entry"][0]["resource"], &alex_cov["entry"][0]["resource"]);
    assert_eq!(sc["subscriber"]["reference"], format!("Patient/{alex_id}"));
    assert_eq!(sc["subscriberId"], ac["subscriberId"]);
    assert_ne!(sc["beneficiary"], ac["beneficiary"]);
    // Sam cannot read Alex's data.
    let resp = fhir(&s, &format!("{base}/Patient/{alex_id}"), sam_at).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");
    assert_eq!(fhir(&s, &format!("{base}/ExplanationOfBenefit?patient={alex_id}"), sam_at).await.status(), 403);
    let alex_eob = format!("{base}/ExplanationOfBenefit/carrier-3-0");
    assert_eq!(fhir(&s, &alex_eob, alex["access_token"].as_str().unwrap()).await.status(), 200);
    assert_eq!(fhir(&s, &alex_eob, sam_at).await.status(), 403);
    // A token of one payer is not accepted by another.
    let other = fhir(&s, &format!("{}/Patient", sandbox::fhir_base(&s.base, "sandbox-basic")), sam_at).await;
    assert_eq!(other.status(), 401);
    // Expiry.
    s.clock.advance(3601);
    let resp = fhir(&s, &format!("{base}/Patient"), sam_at).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

#[tokio::test]
async fn authorization_faults_behave_as_named() {
    let s = spawn_with(Duration::from_secs(2)).await;
    let c = client(&s, "sandbox-health", REDIRECT);

    // The member denies consent (the deny.consent member, or anyone pressing Deny).
    for (user, approve) in [("deny.consent", true), (sandbox::MEMBER_TYPICAL, false)] {
        let a = authorize(&s, "sandbox-health", user, SCOPES, approve).await;
        assert_eq!(a.param("error").as_deref(), Some("access_denied"), "{user}");
        assert_eq!(a.param("state").as_deref(), Some(a.state.as_str()));
        assert!(a.param("code").is_none());
    }
    // The scope is refused right after sign-in.
    let a = authorize(&s, "sandbox-health", "scope.rejected", SCOPES, true).await;
    assert_eq!(a.param("error").as_deref(), Some("invalid_scope"));
    assert_eq!(a.param("state").as_deref(), Some(a.state.as_str()));
    assert!(a.param("code").is_none());
    // Callback without code.
    let a = authorize(&s, "sandbox-health", "no.code", SCOPES, true).await;
    assert!(a.param("code").is_none() && a.param("error").is_none());
    assert_eq!(a.param("state").as_deref(), Some(a.state.as_str()));
    // Altered state.
    let a = authorize(&s, "sandbox-health", "bad.state", SCOPES, true).await;
    assert!(a.param("code").is_some());
    assert_ne!(a.param("state").as_deref(), Some(a.state.as_str()));
    // Token endpoint error.
    let a = authorize(&s, "sandbox-health", "token.error", SCOPES, true).await;
    let err = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&s.http)
        .await
        .unwrap_err();
    assert_eq!(token_error(err), BasicErrorResponseType::InvalidGrant);
    // Slow token endpoint: past a 500 ms client timeout.
    let a = authorize(&s, "sandbox-health", "token.slow", SCOPES, true).await;
    let impatient = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let err = c
        .exchange_code(AuthorizationCode::new(a.code()))
        .set_pkce_verifier(a.verifier)
        .request_async(&impatient)
        .await
        .unwrap_err();
    // A request error (the client's timeout), not the answer the sandbox sends 3 s later.
    assert!(matches!(err, RequestTokenError::Request(_)), "{err:?}");
    // Narrower scopes than requested, enforced by the FHIR server.
    let raw = tokens(&s, "sandbox-health", "narrow.scope").await;
    let scope = raw["scope"].as_str().unwrap();
    assert!(!scope.contains("patient/*.read") && scope.contains("patient/ExplanationOfBenefit.read"), "{scope}");
    let base = sandbox::fhir_base(&s.base, "sandbox-health");
    let at = raw["access_token"].as_str().unwrap();
    assert_eq!(fhir(&s, &format!("{base}/ExplanationOfBenefit"), at).await.status(), 200);
    assert_eq!(fhir(&s, &format!("{base}/Condition"), at).await.status(), 403);
}

#[tokio::test]
async fn fhir_faults_behave_as_named() {
    let s = spawn().await;
    let base = sandbox::fhir_base(&s.base, "sandbox-health");

    // 500s on claims only.
    let at = tokens(&s, "sandbox-health", "server.error").await["access_token"].as_str().unwrap().to_string();
    assert_eq!(fhir(&s, &format!("{base}/Patient"), &at).await.status(), 200);
    let resp = fhir(&s, &format!("{base}/ExplanationOfBenefit"), &at).await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.json::<Value>().await.unwrap()["resourceType"], "OperationOutcome");

    // 429 with Retry-After on every third request; the retry succeeds.
    let at = tokens(&s, "sandbox-health", "rate.limited").await["access_token"].as_str().unwrap().to_string();
    let url = format!("{base}/ExplanationOfBenefit?_count=10");
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = fhir(&s, &url, &at).await;
            if r.status() == 429 {
                assert_eq!(r.headers()["retry-after"], "1");
            }
            v.push(r.status().as_u16());
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429, 200]);

    // Short-lived access tokens: 60 s, and unusable after 4 requests; refresh gives a fresh one.
    let raw = tokens(&s, "sandbox-health", "short.token").await;
    assert_eq!(raw["expires_in"], 60);
    let at = raw["access_token"].as_str().unwrap();
    for _ in 0..4 {
        assert_eq!(fhir(&s, &format!("{base}/Patient"), at).await.status(), 200);
    }
    let resp = fhir(&s, &format!("{base}/Patient"), at).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let c = client(&s, "sandbox-health", REDIRECT);
    let t = c
        .exchange_refresh_token(&RefreshToken::new(raw["refresh_token"].as_str().unwrap().into()))
        .request_async(&s.http)
        .await
        .unwrap();
    assert_eq!(fhir(&s, &format!("{base}/Patient"), t.access_token().secret()).await.status(), 200);
    let raw = tokens(&s, "sandbox-health", "short.token").await;
    s.clock.advance(61);
    assert_eq!(fhir(&s, &format!("{base}/Patient"), raw["access_token"].as_str().unwrap()).await.status(), 401);

    // Relative next links still page through everything once.
    let at = tokens(&s, "sandbox-health", "relative.next").await["access_token"].as_str().unwrap().to_string();
    let (ids, total, nexts) = collect(&s, &format!("{base}/ExplanationOfBenefit?_count=7"), &at).await;
    assert!(!nexts.is_empty() && nexts.iter().all(|n| n.starts_with("/sandbox/sandbox-health/fhir/")), "{nexts:?}");
    assert_eq!(ids.len() as i64, total);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    // Ordinary members get absolute next links.
    let at = tokens(&s, "sandbox-health", sandbox::MEMBER_TYPICAL).await["access_token"].as_str().unwrap().to_string();
    let (_, _, nexts) = collect(&s, &format!("{base}/ExplanationOfBenefit?_count=7"), &at).await;
    assert!(nexts.iter().all(|n| n.starts_with(&base)));

    // Plan not reachable: every FHIR request is 403.
    let at = tokens(&s, "sandbox-health", "plan.unreachable").await["access_token"].as_str().unwrap().to_string();
    for path in ["Patient", "Coverage", "ExplanationOfBenefit"] {
        let resp = fhir(&s, &format!("{base}/{path}"), &at).await;
        assert_eq!(resp.status(), 403, "{path}");
        assert_eq!(resp.json::<Value>().await.unwrap()["issue"][0]["code"], "forbidden");
    }
}

#[tokio::test]
async fn the_faulty_payer_applies_its_faults_to_every_member() {
    let s = spawn().await;
    let base = sandbox::fhir_base(&s.base, "sandbox-faulty");
    let raw = tokens(&s, "sandbox-faulty", sandbox::MEMBER_TYPICAL).await;
    assert_eq!(raw["expires_in"], 60);
    assert!(raw["refresh_token"].as_str().is_some());
    let at = raw["access_token"].as_str().unwrap();
    let mut statuses = Vec::new();
    let mut next = None;
    for _ in 0..4 {
        let r = fhir(&s, &format!("{base}/ExplanationOfBenefit?_count=5"), at).await;
        statuses.push(r.status().as_u16());
        if r.status() == 200 {
            let b: Value = r.json().await.unwrap();
            next = b["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").map(|l| l["url"].clone());
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert!(next.unwrap().as_str().unwrap().starts_with("/sandbox/sandbox-faulty/fhir/ExplanationOfBenefit?"));

    // Its refresh tokens are not rotated: a refresh answers no refresh_token, and the same one keeps working.
    let refresh_token = raw["refresh_token"].as_str().unwrap();
    for _ in 0..2 {
        let resp = s
            .http
            .post(format!("{}/sandbox/sandbox-faulty/token", s.base))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", sandbox::CLIENT_ID)])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let t: Value = resp.json().await.unwrap();
        assert!(t["access_token"].as_str().is_some() && t.get("refresh_token").is_none(), "{t}");
    }
}

#[tokio::test]
async fn discovery_and_capability_statement() {
    let s = spawn().await;
    let base = sandbox::fhir_base(&s.base, "sandbox-basic");
    let conf: Value =
        s.http.get(format!("{base}/.well-known/smart-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(conf["authorization_endpoint"], format!("{}/sandbox/sandbox-basic/authorize", s.base));
    assert_eq!(conf["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert!(!conf["capabilities"].as_array().unwrap().iter().any(|c| c == "permission-offline"));
    let resp = s.http.get(format!("{base}/metadata")).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
    let cap: Value = resp.json().await.unwrap();
    assert_eq!(cap["resourceType"], "CapabilityStatement");
    let types: Vec<&str> =
        cap["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    for t in ["Patient", "Coverage", "ExplanationOfBenefit", "DocumentReference", "Organization", "Medication"] {
        assert!(types.contains(&t), "{t}");
    }
    // The sign-in page: branded, lists members, CSRF cookie, its own CSP allowing the form's redirect.
    let c = client(&s, "sandbox-basic", REDIRECT);
    let (challenge, _v) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = c
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("patient/*.read".into()))
        .add_extra_param("aud", &base)
        .set_pkce_challenge(challenge)
        .url();
    let resp = s.http.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:9") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("HttpOnly"));
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Sandbox Basic Care") && page.contains("big.claims") && page.contains("<code>password</code>")
    );
    assert!(!page.contains("style="), "inline styles are blocked by the CSP");
    // A sign-in post without the CSRF cookie is refused.
    let resp = s
        .http
        .post(format!("{}/sandbox/sandbox-basic/authorize/sign-in", s.base))
        .form(&[("request", "e30"), ("csrf", "x"), ("username", "jane.doe"), ("password", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let css = s.http.get(format!("{}/sandbox/sandbox.css", s.base)).send().await.unwrap();
    assert_eq!(css.status(), 200);
}

#[tokio::test]
async fn mounted_in_the_main_server_and_registered_in_the_directory() {
    let app = crate::common::spawn_app().await;
    let base = format!("{}/sandbox/sandbox-health/fhir", app.base_url);
    let resp = app.get("/sandbox/sandbox-health/fhir/.well-known/smart-configuration").await;
    assert_eq!(resp.status(), 200);
    let conf: Value = resp.json().await.unwrap();
    assert_eq!(conf["token_endpoint"], format!("{}/sandbox/sandbox-health/token", app.base_url));
    let resp = app.get("/sandbox/sandbox-health/fhir/metadata").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["resourceType"], "CapabilityStatement");
    let e = endpoints::get(&app.state.db, sandbox::REFRESHABLE_ENDPOINT_ID).await.unwrap().expect("registered");
    assert_eq!(e.fhir_base_url, base);
    assert!(e.refreshable);
    let e = endpoints::get(&app.state.db, sandbox::NON_REFRESHABLE_ENDPOINT_ID).await.unwrap().expect("registered");
    assert!(!e.refreshable);
    assert!(endpoints::get(&app.state.db, sandbox::FAULTY_ENDPOINT_ID).await.unwrap().is_some());

    // The embedded sandbox accepts exactly {public_url}/link/callback and reads the server's clock.
    let redirect = format!("{}/link/callback", app.base_url);
    let c = BasicClient::new(ClientId::new(sandbox::CLIENT_ID.into()))
        .set_auth_uri(AuthUrl::new(e.authorize_url.clone().unwrap()).unwrap().clone())
        .set_token_uri(TokenUrl::new(format!("{}/sandbox/sandbox-health/token", app.base_url)).unwrap())
        .set_redirect_uri(RedirectUrl::new(redirect.clone()).unwrap());
    let c = c.set_auth_uri(AuthUrl::new(format!("{}/sandbox/sandbox-health/authorize", app.base_url)).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = c
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("patient/*.read".into()))
        .add_scope(Scope::new("offline_access".into()))
        .add_extra_param("aud", &base)
        .set_pkce_challenge(challenge)
        .url();
    let loc = sandbox::drive_consent(&app.client, url.as_str(), sandbox::MEMBER_TYPICAL, true).await.unwrap();
    assert!(loc.starts_with(&redirect), "{loc}");
    let code = url::Url::parse(&loc).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let t = c
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&app.client)
        .await
        .unwrap();
    let resp = app.client.get(format!("{base}/Patient")).bearer_auth(t.access_token().secret()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.clock.advance(3601);
    let resp = app.client.get(format!("{base}/Patient")).bearer_auth(t.access_token().secret()).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}
