//! HTTP to one payer's FHIR server for one authorization: bearer token (refreshed before expiry and once
//! on a 401), retries, `Retry-After` (delay-seconds or an HTTP-date) and `x-ms-retry-after-ms`, content
//! types, and clean errors for non-JSON bodies. Retries and rate-limit waits are counted ([`FetchCounters`])
//! so the sync status shows a slow payer.
//!
//! The payer's token is only ever sent to the origin of the authorization's FHIR base: every URL is checked
//! before the request is built.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use bytes::Bytes;
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::{domain::SyncStats, server::{
    services::payer::refresh::{self, RefreshError},
    state::AppState,
    store::authorizations,
}};

/// Longest `Retry-After` honoured (longer ones are capped), in seconds.
pub const RETRY_AFTER_CAP_SECS: i64 = 3_600;
/// Waits up to this long are slept in place; longer ones reschedule the job as `delayed` (`run_after`), in
/// milliseconds.
pub const INLINE_WAIT_MAX_MS: i64 = 2_000;
/// The header Azure API for FHIR (and other Azure-fronted payers) sends with a 429: the wait in milliseconds.
pub const MS_RETRY_AFTER_HEADER: &str = "x-ms-retry-after-ms";
/// Retries of a 5xx (jittered exponential backoff) or a short 429/503 before giving up.
pub const MAX_RETRIES: u32 = 3;
/// Base of the exponential backoff, in milliseconds.
const BACKOFF_BASE_MS: u64 = 200;
/// Refresh the access token when it expires within this many seconds.
const REFRESH_MARGIN_SECS: i64 = 30;

/// Why a request to the payer failed.
#[derive(Debug, Clone)]
pub enum FetchError {
    /// A 4xx other than 401/429 (the type is skipped by the caller).
    Status { status: u16, content_type: String },
    /// 401 that survived a refresh, or no refresh token to try.
    Unauthorized,
    /// The payer refused our refresh token: the patient must link again.
    NeedsReauth,
    /// 5xx that survived retries, or the payer unreachable.
    ServerError { status: u16 },
    /// The request timed out.
    Timeout,
    /// 429/503 asking for a wait longer than [`INLINE_WAIT_MAX_MS`]: retry at `at` (Unix s).
    RetryLater { at: i64 },
    /// A 2xx whose body is not FHIR JSON (HTML, XML, garbage).
    BadBody { status: u16, content_type: String },
    /// A URL outside the payer's origin (never requested).
    ForeignOrigin,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Status { status, content_type } => write!(f, "payer answered HTTP {status} ({content_type})"),
            FetchError::Unauthorized => write!(f, "payer answered HTTP 401 and the token could not be refreshed"),
            FetchError::NeedsReauth => write!(f, "payer refused the refresh token"),
            FetchError::ServerError { status: 0 } => write!(f, "payer unreachable"),
            FetchError::ServerError { status } => write!(f, "payer answered HTTP {status} after retries"),
            FetchError::Timeout => write!(f, "payer did not answer in time"),
            FetchError::RetryLater { at } => write!(f, "payer asked to retry at {at}"),
            FetchError::BadBody { status, content_type } => {
                write!(f, "payer answered HTTP {status} with a body that is not FHIR JSON ({content_type})")
            }
            FetchError::ForeignOrigin => write!(f, "link leaves the payer's origin"),
        }
    }
}

struct Token {
    value: SecretString,
    expires_at: Option<i64>,
    /// Bumped by every refresh.
    generation: u64,
}

/// Refreshes one request may cause (a token that worked and then expired, several times over).
const MAX_REFRESHES_PER_REQUEST: u32 = 4;

/// A FHIR client for one authorization.
pub struct Payer {
    state: AppState,
    authorization_id: String,
    base: Url,
    token: RwLock<Token>,
    refresh_gate: Mutex<()>,
    has_refresh_token: bool,
    /// Successful requests per token generation: a 401 on a token that never worked, right after a
    /// refresh, is the "401 that survives a refresh" that ends the sync; a token that worked and then died
    /// (expired mid-sync, or used up by concurrent reads) is simply refreshed again.
    successes: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
    /// Retries and rate-limit waits, shared with the job that reads them.
    counters: Arc<FetchCounters>,
}

/// Retries and rate-limit waits of a [`Payer`], counted as they happen (by every concurrent request).
#[derive(Debug, Default)]
pub struct FetchCounters {
    retries: AtomicU64,
    rate_limit_waits: AtomicU64,
    rate_limit_wait_secs: AtomicU64,
}

impl FetchCounters {
    /// The counts since the last call, as [`SyncStats`] (the counters start again at zero).
    pub fn take(&self) -> SyncStats {
        SyncStats {
            retries: self.retries.swap(0, Ordering::Relaxed),
            page_size_reductions: 0,
            rate_limit_waits: self.rate_limit_waits.swap(0, Ordering::Relaxed),
            rate_limit_wait_secs: self.rate_limit_wait_secs.swap(0, Ordering::Relaxed),
        }
    }
}

/// Whether a `Content-Type` is one of the JSON types FHIR servers use (parameters ignored).
pub fn is_fhir_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(essence.as_str(), "application/fhir+json" | "application/json" | "application/json+fhir")
}

/// Milliseconds to wait from an `x-ms-retry-after-ms` value (a whole or decimal number of milliseconds).
pub fn parse_retry_after_ms(value: &str) -> Option<i64> {
    let ms = value.trim().parse::<f64>().ok().filter(|v| v.is_finite())?;
    Some(ms.clamp(0.0, (RETRY_AFTER_CAP_SECS * 1_000) as f64).ceil() as i64)
}

/// Milliseconds to wait as a response asks: `x-ms-retry-after-ms` when present and readable (the more precise),
/// else `Retry-After` ([`parse_retry_after`]); `None` when neither says.
pub fn requested_wait_ms(headers: &reqwest::header::HeaderMap, now: i64) -> Option<i64> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    text(MS_RETRY_AFTER_HEADER)
        .and_then(parse_retry_after_ms)
        .or_else(|| text(reqwest::header::RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now)).map(|s| s.saturating_mul(1_000)))
}

/// Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: i64) -> Option<i64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return Some(secs.max(0));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some((at - now).max(0))
}

impl Payer {
    /// A client for `authorization_id`, with the payer tokens opened.
    ///
    /// # Errors
    /// Missing authorization or tokens, a FHIR base that is not a URL.
    pub async fn new(state: &AppState, authorization_id: &str, fhir_base: &str) -> anyhow::Result<Self> {
        let creds = authorizations::payer_credentials(&state.db, &state.cipher, authorization_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("authorization not found"))?;
        let access = creds.access_token.ok_or_else(|| anyhow::anyhow!("payer tokens were destroyed"))?;
        let base = creds.fhir_base.unwrap_or_else(|| fhir_base.to_string());
        let base = Url::parse(&format!("{}/", base.trim_end_matches('/')))?;
        Ok(Payer {
            state: state.clone(),
            authorization_id: authorization_id.to_string(),
            base,
            token: RwLock::new(Token { value: access, expires_at: creds.expires_at, generation: 0 }),
            refresh_gate: Mutex::new(()),
            has_refresh_token: creds.refresh_token.is_some(),
            successes: std::sync::Mutex::new(std::collections::HashMap::new()),
            counters: Arc::default(),
        })
    }

    /// This client's retry and rate-limit counters (the job drains them into its [`SyncStats`]).
    pub fn counters(&self) -> Arc<FetchCounters> {
        self.counters.clone()
    }

    /// The FHIR base (with a trailing slash).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Whether `url` is on the payer's own origin (scheme, host, port).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// `{base}{path}` (path relative to the FHIR base, e.g. `Coverage?patient=1`).
    ///
    /// # Errors
    /// A path that does not form a URL.
    pub fn url(&self, path: &str) -> anyhow::Result<Url> {
        Ok(self.base.join(path)?)
    }

    async fn current_token(&self) -> Result<(SecretString, u64), FetchError> {
        let now = self.state.clock.now();
        let (stale, generation) = {
            let t = self.token.read().await;
            (t.expires_at.is_some_and(|e| e <= now + REFRESH_MARGIN_SECS), t.generation)
        };
        if stale && self.has_refresh_token {
            self.refresh(generation).await?;
        }
        let t = self.token.read().await;
        Ok((t.value.clone(), t.generation))
    }

    fn successes(&self, generation: u64) -> u64 {
        self.successes.lock().map(|m| m.get(&generation).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Refreshes unless another task already did since `seen_generation`.
    async fn refresh(&self, seen_generation: u64) -> Result<(), FetchError> {
        let _gate = self.refresh_gate.lock().await;
        let held = {
            let t = self.token.read().await;
            if t.generation != seen_generation {
                return Ok(());
            }
            t.value.clone()
        };
        match refresh::refresh(&self.state, &self.authorization_id, &held).await {
            Ok(new) => {
                let mut t = self.token.write().await;
                t.value = new.access_token;
                t.expires_at = new.expires_at;
                t.generation += 1;
                Ok(())
            }
            Err(RefreshError::InvalidGrant) => Err(FetchError::NeedsReauth),
            Err(RefreshError::NoRefreshToken | RefreshError::NotUsable) => Err(FetchError::Unauthorized),
            Err(RefreshError::Failed(code, e)) => {
                tracing::warn!(authorization = %self.authorization_id, ?code, error = %e, "payer refresh failed");
                Err(FetchError::Unauthorized)
            }
            Err(RefreshError::Internal(e)) => {
                tracing::error!(authorization = %self.authorization_id, error = %format!("{e:#}"), "payer refresh failed internally");
                Err(FetchError::Unauthorized)
            }
        }
    }

    /// `GET url` with the bearer token; returns the final URL and the JSON body.
    ///
    /// Refreshes the token before it expires and once on a 401; 429/503 honour `Retry-After` (short waits in
    /// place, long ones as [`FetchError::RetryLater`]); other 5xx and transport errors back off with jitter.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get(&self, url: &Url) -> Result<Bytes, FetchError> {
        if !self.same_origin(url) {
            return Err(FetchError::ForeignOrigin);
        }
        let mut attempts = Attempts::default();
        loop {
            let (token, generation) = self.current_token().await?;
            let sent = self
                .state
                .http
                .get(url.clone())
                .header(reqwest::header::ACCEPT, "application/fhir+json, application/json;q=0.9")
                .bearer_auth(token.expose_secret())
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) if e.is_timeout() => return Err(FetchError::Timeout),
                Err(_) => {
                    self.back_off(&mut attempts, 0).await?;
                    continue;
                }
            };
            let status = resp.status().as_u16();
            if status != 401 {
                if let Ok(mut m) = self.successes.lock() {
                    *m.entry(generation).or_default() += 1;
                }
            }
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match status {
                200..=299 => {
                    match read_fhir_json(resp, status, &content_type).await? {
                        Some(body) => return Ok(body),
                        None => self.back_off(&mut attempts, status).await?,
                    }
                }
                401 => self.refresh_after_401(generation, &mut attempts).await?,
                429 | 503 => self.wait_as_asked(&resp, status, &mut attempts).await?,
                500..=599 => self.back_off(&mut attempts, status).await?,
                _ => return Err(FetchError::Status { status, content_type: short(&content_type) }),
            }
        }
    }

    /// A 401: refreshes the token (then the request is sent again), unless there is no refresh token, the
    /// request has used up its refreshes, or the token was fresh from a refresh and never worked (the 401
    /// survives the refresh: [`FetchError::Unauthorized`]).
    async fn refresh_after_401(&self, generation: u64, attempts: &mut Attempts) -> Result<(), FetchError> {
        if !self.has_refresh_token || attempts.refreshes >= MAX_REFRESHES_PER_REQUEST {
            return Err(FetchError::Unauthorized);
        }
        if generation > 0 && self.successes(generation) == 0 {
            // Concurrent reads may not have recorded their success yet: look again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.successes(generation) == 0 && self.token.read().await.generation == generation {
                return Err(FetchError::Unauthorized);
            }
        }
        attempts.refreshes += 1;
        self.refresh(generation).await
    }

    /// A 429 or 503: waits as `x-ms-retry-after-ms` or `Retry-After` asks ([`requested_wait_ms`], capped at
    /// [`RETRY_AFTER_CAP_SECS`]; a 429 without either waits 1 s, a 503 without either backs off like a 5xx),
    /// in place up to [`INLINE_WAIT_MAX_MS`], else [`FetchError::RetryLater`] (the job is rescheduled as
    /// `delayed` and no worker waits). Then the request is sent again. Every wait is counted.
    async fn wait_as_asked(
        &self,
        resp: &reqwest::Response,
        status: u16,
        attempts: &mut Attempts,
    ) -> Result<(), FetchError> {
        let now = self.state.clock.now();
        let wait_ms = match requested_wait_ms(resp.headers(), now) {
            Some(w) => w.min(RETRY_AFTER_CAP_SECS * 1_000),
            None if status == 429 => 1_000,
            None => return self.back_off(attempts, status).await,
        };
        self.counters.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
        self.counters.rate_limit_wait_secs.fetch_add((wait_ms as u64).div_ceil(1_000), Ordering::Relaxed);
        if wait_ms > INLINE_WAIT_MAX_MS || attempts.retries >= MAX_RETRIES {
            return Err(FetchError::RetryLater { at: now + (wait_ms + 999) / 1_000 });
        }
        attempts.retries += 1;
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
        Ok(())
    }

    /// [`Attempts::back_off`], counting the retry it allows.
    async fn back_off(&self, attempts: &mut Attempts, status: u16) -> Result<(), FetchError> {
        attempts.back_off(status).await?;
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// What one [`Payer::get`] has spent of its refreshes and retries.
#[derive(Default)]
struct Attempts {
    refreshes: u32,
    retries: u32,
}

impl Attempts {
    /// Backs off before the next try (see [`backoff`]), or gives up with [`FetchError::ServerError`] carrying
    /// `status` (0: the payer was not reached) when [`MAX_RETRIES`] are spent.
    async fn back_off(&mut self, status: u16) -> Result<(), FetchError> {
        if self.retries >= MAX_RETRIES {
            return Err(FetchError::ServerError { status });
        }
        self.retries += 1;
        backoff(self.retries).await;
        Ok(())
    }
}

/// The body of a 2xx, which must be FHIR JSON ([`FetchError::BadBody`] otherwise). `Ok(None)` when reading it
/// failed short of a timeout: the caller backs off and sends the request again.
async fn read_fhir_json(resp: reqwest::Response, status: u16, content_type: &str) -> Result<Option<Bytes>, FetchError> {
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => return Err(FetchError::Timeout),
        Err(_) => return Ok(None),
    };
    let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !(is_fhir_json(content_type) || content_type.is_empty()) || !looks_json {
        return Err(FetchError::BadBody { status, content_type: short(content_type) });
    }
    Ok(Some(body))
}

fn short(content_type: &str) -> String {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if ct.is_empty() {
        "no content type".into()
    } else {
        ct.chars().take(60).collect()
    }
}

/// Sleeps `base · 2^(attempt-1)` with full jitter (between half and the whole of it).
async fn backoff(attempt: u32) {
    let max = BACKOFF_BASE_MS << (attempt.saturating_sub(1)).min(6);
    let ms = rand::thread_rng().gen_range(max / 2..=max);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_fhir_json("application/fhir+json; charset=utf-8"));
        assert!(is_fhir_json("Application/JSON"));
        assert!(is_fhir_json("application/json+fhir;fhirVersion=4.0"));
        assert!(!is_fhir_json("text/html"));
        assert!(!is_fhir_json("application/fhir+xml"));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(120));
        let now = 1_700_000_000;
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs((now + 30) as u64));
        assert_eq!(parse_retry_after(&date, now), Some(30));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn ms_retry_after_wins_and_is_capped() {
        assert_eq!(parse_retry_after_ms("1500"), Some(1_500));
        assert_eq!(parse_retry_after_ms(" 12.2 "), Some(13));
        assert_eq!(parse_retry_after_ms("-5"), Some(0));
        assert_eq!(parse_retry_after_ms("NaN"), None);
        assert_eq!(parse_retry_after_ms("1e12"), Some(RETRY_AFTER_CAP_SECS * 1_000));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(requested_wait_ms(&h, 0), Some(7_000));
        h.insert(MS_RETRY_AFTER_HEADER, "250".parse().unwrap());
        assert_eq!(requested_wait_ms(&h, 0), Some(250));
        h.insert(MS_RETRY_AFTER_HEADER, "soon".parse().unwrap());
        assert_eq!(requested_wait_ms(&h, 0), Some(7_000));
    }
}
