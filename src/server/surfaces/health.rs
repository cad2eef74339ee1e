//! `/healthz` (the process is up) and `/readyz` (the database answers), for load balancers and orchestrators.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde_json::json;

use crate::server::state::AppState;

/// `GET /healthz` → 200 `{"status": "ok"}`; `GET /readyz` → 200 `{"status": "ready"}`, or 503
/// `{"status": "database unreachable"}` when the database does not answer a ping.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.db.ping().await {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "database unreachable"}))).into_response()
    }
}
