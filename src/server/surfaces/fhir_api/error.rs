//! The FHIR API's one error type. Every failure is answered as an `OperationOutcome` (FHIR R4 §3.1.0.4) with
//! `Content-Type: application/fhir+json` and `Cache-Control: no-store`; a 401 carries the RFC 6750 §3
//! `WWW-Authenticate` challenge and a 429 a `Retry-After`. The cause of a 500 is logged, never sent: the log
//! line is written inside the request's span, which carries its `request_id` (see `platform::telemetry`).

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::FHIR_JSON;
use crate::server::{fhir::outcome::operation_outcome, services::access::AccessError};

/// An error answered as a FHIR `OperationOutcome` with one issue of severity `error`.
#[derive(Debug)]
pub struct FhirError {
    status: StatusCode,
    /// The R4 IssueType code.
    code: &'static str,
    diagnostics: String,
    challenge: Option<String>,
    retry_after: Option<u64>,
    /// What went wrong inside (500 only): logged when the answer is written.
    cause: Option<anyhow::Error>,
}

impl FhirError {
    /// An error with this status, IssueType `code` and `diagnostics` text (shown to the client).
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        FhirError { status, code, diagnostics: diagnostics.into(), challenge: None, retry_after: None, cause: None }
    }
    /// 400 `invalid`: a bad parameter.
    pub fn bad_param(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", d)
    }
    /// 403 `forbidden`: another patient's data.
    pub fn forbidden(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", d)
    }
    /// 404 `not-found`.
    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", d)
    }
    /// 404 `not-supported`: a resource type this API does not serve.
    pub fn unsupported_type(rtype: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-supported", format!("resource type {rtype} is not supported"))
    }
    /// 405 `not-supported`: this API is read-only.
    pub fn read_only() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "not-supported", "this FHIR API is read-only: use GET")
    }
    /// 429 `throttled` with `Retry-After: retry_after` (seconds): the patient's sync is running.
    pub fn sync_running(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "the patient's data is still being retrieved from the health plan; retry later",
        );
        e.retry_after = Some(retry_after);
        e
    }
    /// 422 `processing`: the patient's latest sync failed with this exit code.
    pub fn sync_failed(exit_code: &str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            format!("retrieving the patient's data from the health plan failed ({exit_code})"),
        )
    }
    /// 500 `exception`: the cause is logged with the request id when the answer is written, never sent.
    pub fn internal(cause: anyhow::Error) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", "internal error");
        e.cause = Some(cause);
        e
    }
}

impl From<anyhow::Error> for FhirError {
    fn from(e: anyhow::Error) -> Self {
        FhirError::internal(e)
    }
}

impl From<sqlx::Error> for FhirError {
    fn from(e: sqlx::Error) -> Self {
        FhirError::internal(e.into())
    }
}

impl From<AccessError> for FhirError {
    fn from(e: AccessError) -> Self {
        let challenge = e.challenge();
        let mut f = match e {
            AccessError::Internal(cause) => return FhirError::internal(cause),
            AccessError::Missing => FhirError::new(StatusCode::UNAUTHORIZED, "login", AccessError::Missing.to_string()),
            AccessError::Invalid(d) => FhirError::new(StatusCode::UNAUTHORIZED, "login", d),
        };
        f.challenge = Some(challenge);
        f
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %format!("{cause:#}"), status = self.status.as_u16(), "internal error in the FHIR API");
        }
        let body = operation_outcome("error", self.code, &self.diagnostics).to_string();
        let mut resp = fhir_response(self.status, body);
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

/// A FHIR JSON answer: `Content-Type: application/fhir+json`, `Cache-Control: no-store`.
pub(super) fn fhir_response(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut resp = (status, body.into()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log lines written into a buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn internal_errors_log_their_cause_in_the_request_span_and_send_none_of_it() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let resp = tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "rid-123");
            let _entered = span.enter();
            FhirError::internal(anyhow::anyhow!("db is gone").context("reading Patient/1")).into_response()
        });
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("request_id=\"rid-123\"") || log.contains("request_id=rid-123"), "{log}");
        assert!(log.contains("reading Patient/1: db is gone"), "{log}");
    }

    #[test]
    fn client_errors_log_nothing() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).finish();
        tracing::subscriber::with_default(subscriber, || FhirError::bad_param("x").into_response());
        assert!(captured.0.lock().unwrap().is_empty());
    }
}
