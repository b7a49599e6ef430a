//! `/health` (the process answers) and `/ready` (the database answers).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::json::typed_response;
use crate::openapi::schemas::{ErrorBody, Status};
use crate::state::AppState;

/// `GET /health`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "The process answers",
    responses((status = 200, description = "Alive", body = Status)),
)]
pub async fn health() -> Response {
    typed_response(
        StatusCode::OK,
        &Status {
            status: "ok".into(),
        },
    )
}

/// `GET /metrics`: Prometheus' text format; a user with `api` unless
/// `metrics_public` is set.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics: requests by route and status, deployments, registrations",
    responses(
        (status = 200, description = "Prometheus' text format 0.0.4", body = String,
            content_type = "text/plain"),
        (status = 503, description = "The database is not reachable", body = ErrorBody),
    ),
)]
pub async fn metrics(State(state): State<AppState>, parts: axum::http::request::Parts) -> Response {
    let caller = parts.extensions.get::<crate::service::caller::Caller>();
    // A user with `api` (the authentication layer answered 401 already
    // without one), unless `metrics_public`.
    if !state.config.metrics_public
        && let Err(e) = caller.map_or(
            Err(crate::error::ApiError::Unauthorized(
                "Authentication required".into(),
            )),
            |c| c.require(crate::domain::auth::Permission::Api),
        )
    {
        return axum::response::IntoResponse::into_response(e);
    }
    state
        .metrics
        .set_pull_waiting(state.store.changes().pull_waiters());
    match state.metrics.render(state.store.db()).await {
        Ok(text) => Response::builder()
            .status(StatusCode::OK)
            .header(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(axum::body::Body::from(text))
            .unwrap_or_else(|_| Response::new(axum::body::Body::empty())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the metrics");
            unreachable_database()
        }
    }
}

/// `GET /ready`: 503 while the database does not answer.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    summary = "The database answers",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is not reachable", body = ErrorBody),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => typed_response(
            StatusCode::OK,
            &Status {
                status: "ready".into(),
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "database not ready");
            unreachable_database()
        }
    }
}

/// The `503` of `/metrics` and `/ready` while the database does not answer.
fn unreachable_database() -> Response {
    typed_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &ErrorBody {
            error: "The database is not reachable".into(),
        },
    )
}
