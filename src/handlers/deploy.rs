//! Deploy previews: one host's allowlist, and what is pending.

use axum::http::StatusCode;
use axum::response::Response;

use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::deploy as service;
use crate::state::AppState;

/// `GET /director/host/allowlist?name=N`.
pub async fn preview_allowlist(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::preview(&state.store, &caller, query.required_name()?).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /director/config/pending`.
pub async fn list_pending(state: AppState, caller: Caller) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &service::pending(&state.store, &caller).await?,
    ))
}
