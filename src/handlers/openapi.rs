//! `GET /openapi.json`: the OpenAPI 3.1 document of this server.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::http::json::json_response;
use crate::state::AppState;

/// `GET /openapi.json`: no credentials needed, like `/health`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This document: OpenAPI 3.1, generated from the code",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
pub async fn get_openapi(State(state): State<AppState>) -> Response {
    let document = crate::openapi::document(&state.config.base_path, state.config.metrics_public);
    match serde_json::to_value(&document) {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(e) => {
            ApiError::Internal(format!("cannot render the OpenAPI document: {e}")).into_response()
        }
    }
}
