//! Handlers: thin. Each extracts, calls a use case in `service`, answers.

pub mod activity;
pub mod deploy;
pub mod health;
pub mod lists;
pub mod objects;
pub mod openapi;
pub mod selfservice;
pub mod users;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::domain::object::ViewOptions;
use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::objects::View;

/// `resolved`, `withNull` and `properties=a,b,c` from the query.
pub fn view_from(query: &QueryParams) -> Result<View, ApiError> {
    let properties = query.get("properties").map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    });
    Ok(View {
        resolved: query.is_set("resolved")?,
        options: ViewOptions {
            with_null: query.is_set("withNull")?,
            properties,
        },
    })
}

/// A JSON answer with an ETag.
pub fn with_etag(status: StatusCode, body: &serde_json::Value, etag: &str) -> Response {
    let mut response = json_response(status, body);
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `304 Not Modified`, no body, with the current ETag.
pub fn not_modified(etag: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
