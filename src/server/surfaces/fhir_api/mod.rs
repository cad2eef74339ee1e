//! The FHIR R4 API under /fhir over the synced data: `metadata`, read, search (with `_include` and paging)
//! and `Patient/{id}/$everything`. Read-only; every query goes through `store::resources`.
//!
//! - Authentication: a patient access token (`at_…`) sees only its own authorization's rows (the
//!   `resources` table is keyed by authorization, so two users never share rows, even for identical payer
//!   records); an application token (`app_…`) sees every live authorization of its app in its mode.
//! - Resources are returned exactly as stored (the payer's JSON bytes, never re-serialized): Bundles are
//!   assembled around the stored text.
//! - `$PATIENT_ID` in the path or query is the token's patient.
//! - Errors are [`FhirError`]s, answered as `OperationOutcome` (FHIR R4 §3.1.0.4): 400 bad parameter, 401
//!   (with `WWW-Authenticate`, RFC 6750), 403 another patient, 404, 405, 422 after a failed sync, 429 with
//!   `Retry-After` while it runs, 500 (cause logged, never sent).

mod bundle;
mod caller;
mod error;
mod everything;
mod metadata;
mod read;
mod search;

use axum::{
    response::Response,
    routing::{any, get},
    Router,
};

pub use error::FhirError;
pub use metadata::{capability_statement, openapi_paths};

use crate::server::state::AppState;

/// `Content-Type` of every FHIR response.
pub const FHIR_JSON: &str = "application/fhir+json";
/// Default page size of a search.
pub const DEFAULT_COUNT: usize = 100;
/// Default page size of `$everything`.
pub const DEFAULT_EVERYTHING_COUNT: usize = 1000;
/// Largest accepted `_count` of a search.
pub const MAX_COUNT: usize = 1000;
/// Largest accepted `_count` of `$everything` (a large member's whole record in one response).
pub const MAX_EVERYTHING_COUNT: usize = 5000;
/// Largest accepted `_offset` of a search or `$everything` (10^8 matches skipped). Paging deeper than this is
/// not a way to read data (narrow the search with `patient`, `_lastUpdated` or a date instead); the bound keeps
/// `_offset + _count` and the SQL `OFFSET` (a signed 64-bit integer in SQLite and PostgreSQL) far from overflow.
pub const MAX_OFFSET: usize = 100_000_000;
/// Most values one `_id` or `_type` parameter may list (each is a bound SQL parameter; SQLite allows 32,766 in a
/// statement, PostgreSQL 65,535).
pub const MAX_LIST_VALUES: usize = 1000;
/// `Retry-After` (seconds) while the patient's sync runs.
pub const RETRY_AFTER_SECS: u64 = 5;

type FhirResult = Result<Response, FhirError>;

/// A path under /fhir that names no interaction, whatever the method: 404 `not-found` (the API's error form,
/// never the site's HTML page).
async fn unknown_path() -> FhirError {
    FhirError::not_found("no FHIR interaction is served at this path")
}

/// Routes of this part (all under /fhir), merged into the server's router.
pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/metadata", get(metadata::metadata))
        .route("/{rtype}", get(search::search_type))
        .route("/{rtype}/{id}", get(read::read))
        .route("/Patient/{id}/{operation}", get(everything::everything))
        // This API is read-only: any other method is an OperationOutcome (`not-supported`), with `Allow`.
        .method_not_allowed_fallback(|| async { FhirError::read_only() })
        .fallback(unknown_path);
    // `/fhir` and `/fhir/{*rest}` reach the nested fallback; `/fhir/` (an empty tail) needs its own route.
    Router::new().nest("/fhir", api).route("/fhir/", any(unknown_path))
}
