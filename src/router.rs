//! Every route in one table, with the layers every request passes through.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::layer::Peer;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::handlers::{activity, deploy, health, lists, objects, openapi, selfservice, users};
use crate::http::body::{IgnoredBody, JsonObject, OptionalJsonObject, PatchBody};
use crate::http::middleware;
use crate::http::observe::ObserveLayer;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::state::AppState;

/// The path of every route (Director routes without the base path). Logs
/// and metrics label requests by these; anything else is `other`.
pub const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/director/activity",
    "/director/config/deploy",
    "/director/config/deployment",
    "/director/config/deployment-status",
    "/director/config/deployments",
    "/director/config/pending",
    "/director/host",
    "/director/host/allowlist",
    "/director/host/api-key",
    "/director/host/ticket",
    "/director/hosts",
    "/director/hosts/templates",
    "/director/script",
    "/director/scripts",
    "/director/scripts/templates",
    "/director/self-service/agent-config",
    "/director/self-service/allowlist",
    "/director/self-service/register-host",
    "/director/self-service/ticket",
    "/director/user",
    "/director/users",
];

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
        )
        .route(
            "/director/user",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| users::get_user(s, c, q))
                .post(
                    |State(s): State<AppState>, c: Caller, q: QueryParams, b: JsonObject| {
                        users::post_user(s, c, q, b)
                    },
                )
                .put(
                    |State(s): State<AppState>, c: Caller, q: QueryParams, b: JsonObject| {
                        users::put_user(s, c, q, b)
                    },
                )
                .delete(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                    users::delete_user(s, c, q)
                }),
        )
        .route(
            "/director/users",
            get(|State(s): State<AppState>, c: Caller| users::list_users(s, c)),
        )
        .route(
            "/director/host/api-key",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                selfservice::show_key(s, c, q)
            })
            .post(
                |State(s): State<AppState>, c: Caller, q: QueryParams, b: OptionalJsonObject| {
                    selfservice::create_key(s, c, q, b)
                },
            )
            .delete(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                selfservice::revoke_key(s, c, q)
            }),
        )
        .route(
            "/director/host/allowlist",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                deploy::preview_allowlist(s, c, q)
            }),
        )
        .route(
            "/director/config/deploy",
            post(
                |State(s): State<AppState>, c: Caller, q: QueryParams, b: IgnoredBody| {
                    deploy::start_deploy(s, c, q, b)
                },
            ),
        )
        .route(
            "/director/config/deployment",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                deploy::show_deployment(s, c, q)
            })
            .delete(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                deploy::cancel_deployment(s, c, q)
            }),
        )
        .route(
            "/director/config/deployment-status",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                deploy::deployment_status(s, c, q)
            }),
        )
        .route(
            "/director/config/deployments",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                deploy::list_deployments(s, c, q)
            }),
        )
        .route(
            "/director/config/pending",
            get(|State(s): State<AppState>, c: Caller| deploy::list_pending(s, c)),
        )
        .route(
            "/director/host/ticket",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                selfservice::host_ticket(s, c, q)
            }),
        )
        .route(
            "/director/self-service/register-host",
            post(
                |State(s): State<AppState>, p: Peer, q: QueryParams, h, b: OptionalJsonObject| {
                    selfservice::register_host(s, p, q, h, b)
                },
            ),
        )
        .route(
            "/director/self-service/agent-config",
            get(|State(s): State<AppState>, p: Peer, q: QueryParams, h| {
                selfservice::agent_config(s, p, q, h)
            }),
        )
        .route(
            "/director/self-service/allowlist",
            get(|State(s): State<AppState>, p: Peer, q: QueryParams, h| {
                selfservice::pull_allowlist(s, p, q, h)
            }),
        )
        .route(
            "/director/self-service/ticket",
            get(|State(s): State<AppState>, p: Peer, q: QueryParams, h| {
                selfservice::self_ticket(s, p, q, h)
            }),
        )
        .route(
            "/director/activity",
            get(|State(s): State<AppState>, c: Caller, q: QueryParams| {
                activity::list_activity(s, c, q)
            }),
        );
    let operations = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::get_openapi));
    let base = state.config.base_path.clone();
    let outer_state = state.clone();
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

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}

fn object_route(kind: Kind) -> MethodRouter<AppState> {
    get(
        move |State(s): State<AppState>, c: Caller, q: QueryParams, h| {
            objects::get_object(s, c, kind, q, h)
        },
    )
    .post(
        move |State(s): State<AppState>, c: Caller, q: QueryParams, h, b: JsonObject| {
            objects::post_object(s, c, kind, q, h, b)
        },
    )
    .put(
        move |State(s): State<AppState>, c: Caller, q: QueryParams, h, b: JsonObject| {
            objects::put_object(s, c, kind, q, h, b)
        },
    )
    .patch(
        move |State(s): State<AppState>, c: Caller, q: QueryParams, h, b: PatchBody| {
            objects::patch_object(s, c, kind, q, h, b)
        },
    )
    .delete(
        move |State(s): State<AppState>, c: Caller, q: QueryParams, h| {
            objects::delete_object(s, c, kind, q, h)
        },
    )
}

fn list_route(kind: Kind, object_type: ObjectType) -> MethodRouter<AppState> {
    get(
        move |State(s): State<AppState>, c: Caller, q: QueryParams| async move {
            let result: Result<Response, ApiError> =
                lists::list_objects(s, c, kind, object_type, q).await;
            result
        },
    )
}
