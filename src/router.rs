//! Every route in one table, with the layers every request passes through.

use axum::Router;
use axum::extract::State;
use axum::middleware::from_fn;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::handlers::{health, lists, objects};
use crate::http::body::{JsonObject, PatchBody};
use crate::http::middleware;
use crate::http::query::QueryParams;
use crate::state::AppState;

/// The whole application: operational routes at the root, Director routes
/// under the configured base path.
pub fn app(state: AppState) -> Router {
    let director = Router::new()
        .route("/director/host", object_route(Kind::Host))
        .route("/director/script", object_route(Kind::Script))
        .route(
            "/director/hosts",
            list_route(Kind::Host, ObjectType::Object),
        )
        .route(
            "/director/hosts/templates",
            list_route(Kind::Host, ObjectType::Template),
        )
        .route(
            "/director/scripts",
            list_route(Kind::Script, ObjectType::Object),
        )
        .route(
            "/director/scripts/templates",
            list_route(Kind::Script, ObjectType::Template),
        );
    let operations = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready));
    let base = state.config.base_path.clone();
    let routes = if base.is_empty() {
        operations.merge(director)
    } else {
        operations.nest(&base, director)
    };
    let routes = routes
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(from_fn(middleware::json_errors))
                .layer(from_fn(middleware::same_site))
                .layer(from_fn(middleware::accept_json)),
        )
        .with_state(state);

    // Method rules must run before routing, so they wrap the routed app.
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new().fallback_service(routes).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The path only: query strings may carry keys.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            .layer(from_fn(middleware::methods)),
    )
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}

fn object_route(kind: Kind) -> MethodRouter<AppState> {
    get(move |State(s): State<AppState>, q: QueryParams, h| objects::get_object(s, kind, q, h))
        .post(
            move |State(s): State<AppState>, q: QueryParams, h, b: JsonObject| {
                objects::post_object(s, kind, q, h, b)
            },
        )
        .put(
            move |State(s): State<AppState>, q: QueryParams, h, b: JsonObject| {
                objects::put_object(s, kind, q, h, b)
            },
        )
        .patch(
            move |State(s): State<AppState>, q: QueryParams, h, b: PatchBody| {
                objects::patch_object(s, kind, q, h, b)
            },
        )
        .delete(move |State(s): State<AppState>, q: QueryParams, h| {
            objects::delete_object(s, kind, q, h)
        })
}

fn list_route(kind: Kind, object_type: ObjectType) -> MethodRouter<AppState> {
    get(
        move |State(s): State<AppState>, q: QueryParams| async move {
            let result: Result<Response, ApiError> =
                lists::list_objects(s, kind, object_type, q).await;
            result
        },
    )
}
