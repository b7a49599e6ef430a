//! `/director/user?name=` and `/director/users`: API users.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::not_modified;
use crate::error::ApiError;
use crate::http::body::JsonObject;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::users::{self as service, UserWritten};
use crate::state::AppState;

fn answer(state: &AppState, written: UserWritten) -> Response {
    match written {
        UserWritten::Created(body) => {
            let mut response = json_response(StatusCode::CREATED, &body);
            let name = body["object_name"].as_str().unwrap_or_default();
            let location = format!("{}/director/user?name={name}", state.config.base_path);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        UserWritten::Changed(body) => json_response(StatusCode::OK, &body),
        UserWritten::Unchanged => not_modified(""),
    }
}

/// `GET ?name=`.
pub async fn get_user(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::show(&state.store, &caller, query.required_name()?).await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `POST`: creates without `?name=`, merges with it.
pub async fn post_user(
    state: AppState,
    caller: Caller,
    query: QueryParams,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let auth = Some(state.auth.as_ref());
    let written = match query.name() {
        Some(name) => service::merge(&state.store, auth, &caller, name, &body.0).await?,
        None => service::create(&state.store, auth, &caller, None, &body.0).await?,
    };
    Ok(answer(&state, written))
}

/// `PUT`: replaces, or creates.
pub async fn put_user(
    state: AppState,
    caller: Caller,
    query: QueryParams,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let auth = Some(state.auth.as_ref());
    let written = match query.name() {
        Some(name) => service::replace(&state.store, auth, &caller, name, &body.0).await?,
        None => service::create(&state.store, auth, &caller, None, &body.0).await?,
    };
    Ok(answer(&state, written))
}

/// `DELETE ?name=`: answers the deleted user.
pub async fn delete_user(
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::delete(
        &state.store,
        Some(state.auth.as_ref()),
        &caller,
        query.required_name()?,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /director/users`.
pub async fn list_users(state: AppState, caller: Caller) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &service::list(&state.store, &caller).await?,
    ))
}
