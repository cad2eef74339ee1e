//! The console's two actions: `POST /console/endpoints/{id}/disable` (patients no longer see or reach the plan)
//! and `POST /console/deliveries/{event_id}/retry` (one more attempt of a dead webhook delivery). Each needs the
//! session's form token, is audited in the same request, and comes back to the console with a notice.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect},
    Form,
};
use serde_json::json;

use crate::server::{
    state::AppState,
    store::{endpoints, webhook_deliveries},
    surfaces::console::{audit, detail, operator_of_form, signed_out, sign_in::CsrfOnly, ConsoleResult},
};

/// `POST /console/endpoints/{id}/disable`.
pub async fn disable_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> ConsoleResult {
    let Some(op) = operator_of_form(&state, &headers, f.csrf()).await? else { return Ok(signed_out()) };
    let known = uuid::Uuid::parse_str(&id).is_ok() && endpoints::get(&state.db, &id).await?.is_some();
    if !known {
        return Ok(Redirect::to("/console?notice=unknown-endpoint#endpoints").into_response());
    }
    let changed = endpoints::set_disabled(&state.db, state.clock.now(), &id, true).await?;
    if changed {
        audit(&state, &headers, "console.endpoint_disabled", None, detail(&op, json!({"endpoint_id": id}))).await?;
    }
    Ok(Redirect::to("/console?notice=endpoint-disabled#endpoints").into_response())
}

/// `POST /console/deliveries/{event_id}/retry`.
pub async fn retry_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> ConsoleResult {
    let Some(op) = operator_of_form(&state, &headers, f.csrf()).await? else { return Ok(signed_out()) };
    let retried = if event_id.starts_with("evt_") && event_id.len() <= 64 {
        webhook_deliveries::retry_dead(&state.db, state.clock.now(), &event_id).await?
    } else {
        None
    };
    match retried {
        Some(app_id) => {
            audit(&state, &headers, "console.delivery_retried", Some(&app_id), detail(&op, json!({"event_id": event_id}))).await?;
            Ok(Redirect::to("/console?notice=delivery-retried#apps").into_response())
        }
        None => Ok(Redirect::to("/console?notice=delivery-not-dead#apps").into_response()),
    }
}
