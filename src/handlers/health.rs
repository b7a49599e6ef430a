//! `/health` (the process answers) and `/ready` (the database answers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::http::json::json_response;
use crate::state::AppState;

/// `GET /health`.
pub async fn health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /ready`: 503 while the database does not answer.
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => json_response(StatusCode::OK, &json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "The database is not reachable"}),
            )
        }
    }
}
