//! `GET /openapi.json`: the OpenAPI 3.1 document of the integrator API (`/link/*`) and the FHIR API
//! (`/fhir/*`), assembled from each surface's own description of its routes (the same constants the routers
//! use, so the two cannot drift apart).

use axum::{
    extract::State,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};

use crate::server::{
    state::AppState,
    surfaces::{fhir_api, integrator_api},
};

/// Path of the document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The route of this part, merged into the server's router.
pub fn router() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(openapi))
}

async fn openapi(State(state): State<AppState>) -> Response {
    let mut resp = Json(document(&state.public_url)).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    resp
}

/// The OpenAPI 3.1 document of the /link and /fhir routes, for a server at `public_url`.
pub fn document(public_url: &str) -> Value {
    let mut paths = integrator_api::openapi::paths();
    paths.extend(fhir_api::openapi_paths());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Link SDK integrator API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Exchange Link public_tokens for access tokens and read the patient's synced FHIR R4 data."},
        "servers": [{"url": public_url}],
        "paths": Value::Object(paths),
        "components": integrator_api::openapi::components(),
    })
}
