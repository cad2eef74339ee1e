//! The FHIR API's per-token rate limit (`--rate-limit-fhir`), as a layer around `fhir_api`'s routes: each Bearer
//! token (keyed by its SHA-256, never the token) gets its own budget; over it, `429` with `Retry-After` and a FHIR
//! `OperationOutcome` (`throttled`), the API's own error form. Requests without a Bearer token pass through (the
//! API answers them 401).

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::server::{
    platform::crypto,
    services::access::bearer_token,
    state::AppState,
    fhir::outcome::operation_outcome,
    surfaces::fhir_api::FHIR_JSON,
};

/// Middleware: counts the request against its token's budget.
pub async fn per_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let key = bearer_token(request.headers()).map(crypto::hash_token);
    if let Err(limited) = state.limits.fhir.check(key) {
        let body = operation_outcome(
            "error",
            "throttled",
            &format!("too many requests with this access token: retry after {} s", limited.retry_after_secs),
        );
        let mut resp = (StatusCode::TOO_MANY_REQUESTS, [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))], body.to_string())
            .into_response();
        limited.apply(&mut resp);
        return resp;
    }
    next.run(request).await
}
