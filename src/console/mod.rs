//! The web console: server-rendered pages under `/ui/` (behind the base
//! path) for the fleet, a host, a template, deployments, the activity log
//! and what a deploy would change. A client of the same service layer as
//! the API: every page calls the use cases the API's handlers call, with
//! the same caller, so permissions and host restrictions are the API's.
//!
//! Pages are askama templates compiled into the binary
//! (`src/console/templates`); the stylesheet and the one script are
//! served from the binary too. Every answer carries a Content-Security-
//! Policy that allows only those; every action is a POST carrying the CSRF
//! token of [`csrf`]. Routes are not part of the OpenAPI document: the API
//! stays the contract.

pub mod csrf;
mod pages;
pub mod view;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// Where the console lives, under the base path.
pub const PREFIX: &str = "/ui";

/// The console's routes (under the base path), for the metrics' and the
/// log's route labels.
pub const PATHS: &[&str] = &[
    "/ui",
    "/ui/",
    "/ui/activity",
    "/ui/deploy",
    "/ui/deployment",
    "/ui/deployment/progress",
    "/ui/deployments",
    "/ui/host",
    "/ui/pending",
    "/ui/static/console.css",
    "/ui/static/console.js",
    "/ui/template",
];

/// Only the console's own scripts, styles and requests; no frames, no
/// plugins, forms posting only to the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` is a console path under `base`.
pub fn is_console_path(path: &str, base: &str) -> bool {
    path.strip_prefix(base)
        .is_some_and(|rest| rest == PREFIX || rest.starts_with("/ui/"))
}

/// The console's routes, to be nested under the base path.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::to_fleet))
        .route("/ui/", get(pages::fleet))
        .route("/ui/host", get(pages::host))
        .route("/ui/template", get(pages::template))
        .route("/ui/deployments", get(pages::deployments))
        .route("/ui/deployment", get(pages::deployment))
        .route("/ui/deployment/progress", get(pages::progress))
        .route("/ui/activity", get(pages::activity))
        .route("/ui/pending", get(pages::pending))
        .route("/ui/deploy", post(pages::deploy))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/static/console.js", get(script))
}

/// The headers every console answer carries.
pub fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// An HTML page with `status`.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(response)
}

/// A failure, as a plain HTML page with the error's status.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<sea_orm::DbErr> for PageError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self(ApiError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        // An internal error's details go to the log, never to the page.
        let message = match &self.0 {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "console request failed");
                "The server failed to answer; its log has the details.".to_owned()
            }
            other => other.to_string(),
        };
        html(status, view::error_page(status, &message))
    }
}

/// The console's 404 page.
pub fn not_found() -> Response {
    PageError(ApiError::NotFound("No such page".into())).into_response()
}

const STYLESHEET: &str = include_str!("static/console.css");
const SCRIPT: &str = include_str!("static/console.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    secure(response)
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths_are_those_under_the_base_path() {
        assert!(is_console_path("/ui", ""));
        assert!(is_console_path("/ui/", ""));
        assert!(is_console_path("/ui/host", ""));
        assert!(!is_console_path("/uix", ""));
        assert!(!is_console_path("/director/ui/", ""));
        assert!(is_console_path("/icingaweb2/ui/host", "/icingaweb2"));
        assert!(!is_console_path("/ui/host", "/icingaweb2"));
    }

    #[test]
    fn the_policy_allows_nothing_but_the_console_itself() {
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
