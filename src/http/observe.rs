//! One log line and one metrics sample per request: method, route (the
//! route's path, never the query string, which may carry keys), status,
//! duration to the response head, request id.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::router::ROUTES;
use crate::state::AppState;

/// The label of a request's route: one of [`ROUTES`] (under the base path
/// for Director routes), or `other` for anything else, so that a scan of
/// random paths cannot grow the metrics without bound.
pub fn route_label<'a>(path: &'a str, base: &str) -> &'a str {
    let director = path
        .strip_prefix(base)
        .filter(|rest| rest.starts_with("/director"));
    let route = match director {
        Some(rest) => rest,
        // A Director path outside the base path.
        None if path.starts_with("/director") => return "other",
        None => path,
    };
    if ROUTES.contains(&route) {
        route
    } else {
        "other"
    }
}

/// Logs and counts every request (the outermost layer but the request id).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = route_label(req.uri().path(), &state.config.base_path).to_owned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .request(method.as_str(), &route, status, elapsed);
    tracing::info!(
        target: "steward::request",
        method = %method,
        route = %route,
        status,
        duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        request_id = %request_id,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_their_path_and_anything_else_as_other() {
        assert_eq!(route_label("/director/host", ""), "/director/host");
        assert_eq!(route_label("/health", ""), "/health");
        assert_eq!(route_label("/director/nope", ""), "other");
        assert_eq!(route_label("/wp-login.php", ""), "other");
        assert_eq!(
            route_label("/icingaweb2/director/hosts", "/icingaweb2"),
            "/director/hosts"
        );
        assert_eq!(route_label("/metrics", "/icingaweb2"), "/metrics");
        assert_eq!(route_label("/director/hosts", "/icingaweb2"), "other");
    }
}
