//! The HTTP edge: extractors, the Director query conventions, response
//! rendering and the middleware every request passes through.

pub mod body;
pub mod conditions;
pub mod json;
pub mod middleware;
pub mod numbers;
pub mod observe;
pub mod query;

/// The request's id (`X-Request-Id`: the client's, or the one the router
/// gave it), as the activity log records it.
pub fn request_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
