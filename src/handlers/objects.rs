//! `/director/host` and `/director/script`: one object by `?name=`.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{not_modified, view_from, with_etag};
use crate::domain::Kind;
use crate::error::ApiError;
use crate::http::body::{JsonObject, PatchBody};
use crate::http::conditions::Conditions;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::objects::{self as service, Patch, Written};
use crate::state::AppState;

/// Everything but RFC 3986's unreserved characters is encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn required_name(query: &QueryParams) -> Result<&str, ApiError> {
    query.check_flags()?;
    query.required_name()
}

fn answer(state: &AppState, kind: Kind, written: Written) -> Response {
    match written {
        Written::Created(shown) => {
            let mut response = with_etag(StatusCode::CREATED, &shown.body, &shown.etag);
            let name = shown
                .body
                .get("object_name")
                .and_then(|n| n.as_str())
                .unwrap_or_default();
            let location = format!(
                "{}/director/{kind}?name={}",
                state.config.base_path,
                utf8_percent_encode(name, QUERY_VALUE)
            );
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Written::Changed(shown) => with_etag(StatusCode::OK, &shown.body, &shown.etag),
        Written::Unchanged(etag) => not_modified(&etag),
    }
}

/// `GET ?name=` (and `HEAD`).
pub async fn get_object(
    state: AppState,
    caller: Caller,
    kind: Kind,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = required_name(&query)?;
    let view = view_from(&query)?;
    let shown = service::show(&state.store, &caller, kind, name, &view).await?;
    let conditions = Conditions::from_headers(&headers);
    if conditions
        .if_none_match
        .is_some_and(|c| c.matches(&shown.etag))
    {
        return Ok(not_modified(&shown.etag));
    }
    Ok(with_etag(StatusCode::OK, &shown.body, &shown.etag))
}

/// `POST`: creates without `?name=`, merges with it.
pub async fn post_object(
    state: AppState,
    caller: Caller,
    kind: Kind,
    query: QueryParams,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    query.check_flags()?;
    let conditions = Conditions::from_headers(&headers);
    let written = match query.name() {
        Some(name) => {
            service::merge(&state.store, &caller, kind, name, &body.0, &conditions).await?
        }
        None => service::create(&state.store, &caller, kind, &body.0, &conditions).await?,
    };
    Ok(answer(&state, kind, written))
}

/// `PUT`: replaces, or creates when the object is absent.
pub async fn put_object(
    state: AppState,
    caller: Caller,
    kind: Kind,
    query: QueryParams,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    query.check_flags()?;
    let conditions = Conditions::from_headers(&headers);
    let written = match query.name() {
        Some(name) => {
            service::replace(&state.store, &caller, kind, name, &body.0, &conditions).await?
        }
        None => service::create(&state.store, &caller, kind, &body.0, &conditions).await?,
    };
    Ok(answer(&state, kind, written))
}

/// `PATCH ?name=` with a merge patch or a JSON patch.
pub async fn patch_object(
    state: AppState,
    caller: Caller,
    kind: Kind,
    query: QueryParams,
    headers: HeaderMap,
    body: PatchBody,
) -> Result<Response, ApiError> {
    let name = required_name(&query)?;
    let patch = match body {
        PatchBody::Merge(doc) => Patch::Merge(doc),
        PatchBody::Json(ops) => Patch::Json(ops),
    };
    let conditions = Conditions::from_headers(&headers);
    let written = service::patch(&state.store, &caller, kind, name, &patch, &conditions).await?;
    Ok(answer(&state, kind, written))
}

/// `DELETE ?name=`: answers the deleted object.
pub async fn delete_object(
    state: AppState,
    caller: Caller,
    kind: Kind,
    query: QueryParams,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let name = required_name(&query)?;
    let conditions = Conditions::from_headers(&headers);
    let shown = service::delete(&state.store, &caller, kind, name, &conditions).await?;
    Ok(with_etag(StatusCode::OK, &shown.body, &shown.etag))
}
