//! Every route, registered once with its handler and its OpenAPI
//! operations, and the layers every request passes through.

use std::sync::OnceLock;

use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::handlers::{activity, deploy, health, lists, objects, openapi, selfservice, users};
use crate::http::middleware;
use crate::http::observe::ObserveLayer;
use crate::state::AppState;

/// Every route, each registered once with its handler and, through the
/// handler's `#[utoipa::path]`, its OpenAPI operations: the Director API
/// (served under the base path) and the operational routes (always at
/// the root). The router and the document are both built from these.
pub fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let director = OpenApiRouter::default()
        .routes(routes!(
            objects::host::get,
            objects::host::post,
            objects::host::put,
            objects::host::patch,
            objects::host::delete
        ))
        .routes(routes!(
            objects::script::get,
            objects::script::post,
            objects::script::put,
            objects::script::patch,
            objects::script::delete
        ))
        .routes(routes!(lists::operations::list_hosts))
        .routes(routes!(lists::operations::list_host_templates))
        .routes(routes!(lists::operations::list_scripts))
        .routes(routes!(lists::operations::list_script_templates))
        .routes(routes!(
            users::get_user,
            users::post_user,
            users::put_user,
            users::delete_user
        ))
        .routes(routes!(users::list_users))
        .routes(routes!(activity::list_activity))
        .routes(routes!(activity::revert_activity))
        .routes(routes!(
            selfservice::show_key,
            selfservice::create_key,
            selfservice::revoke_key
        ))
        .routes(routes!(selfservice::host_ticket))
        .routes(routes!(selfservice::register_host))
        .routes(routes!(selfservice::agent_config))
        .routes(routes!(selfservice::pull_allowlist))
        .routes(routes!(selfservice::self_ticket))
        .routes(routes!(deploy::preview_allowlist))
        .routes(routes!(deploy::list_pending))
        .routes(routes!(deploy::start_deploy))
        .routes(routes!(
            deploy::show_deployment,
            deploy::cancel_deployment,
            deploy::resume_deployment
        ))
        .routes(routes!(deploy::list_deployments))
        .routes(routes!(deploy::deployment_status));
    let operations = OpenApiRouter::default()
        .routes(routes!(health::health))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::get_openapi));
    (director, operations)
}

/// The path of every route (Director and console routes without the base
/// path), from [`routes`] and [`crate::console::PATHS`]. Logs and metrics
/// label requests by these; anything else is `other`.
pub fn route_paths() -> &'static [String] {
    static PATHS: OnceLock<Vec<String>> = OnceLock::new();
    PATHS.get_or_init(|| {
        let (director, operations) = routes();
        let mut paths: Vec<String> = [director, operations]
            .into_iter()
            .flat_map(|routes| routes.into_openapi().paths.paths.into_keys())
            .chain(crate::console::PATHS.iter().map(|p| (*p).to_owned()))
            .collect();
        paths.sort();
        paths
    })
}

/// The whole application: operational routes at the root, Director routes
/// under the configured base path.
pub fn app(state: AppState) -> Router {
    let (director, operations) = routes();
    let (director, _) = director.split_for_parts();
    let (operations, _) = operations.split_for_parts();
    let base = state.config.base_path.clone();
    let outer_state = state.clone();
    // The console is no part of the OpenAPI document: a plain router
    // beside the Director routes, under the same base path.
    let director = director.merge(crate::console::routes());
    let routes = if base.is_empty() {
        operations.merge(director)
    } else {
        operations.nest(&base, director)
    };
    let routes = routes.fallback(not_found).with_state(state);

    // Method rules must run before routing, so they wrap the routed app.
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new().fallback_service(routes).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(ObserveLayer(outer_state.clone()))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The path only: query strings may carry keys.
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            // Method rules must run before routing, authentication before
            // every other check: one layer (see `middleware::checks`).
            .layer(middleware::ChecksLayer(outer_state)),
    )
}

async fn not_found(
    axum::extract::State(state): axum::extract::State<AppState>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::console::is_console_path(uri.path(), &state.config.base_path) {
        return crate::console::not_found();
    }
    ApiError::NotFound("Not found".into()).into_response()
}
