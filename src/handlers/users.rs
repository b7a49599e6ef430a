//! `/director/user?name=` and `/director/users`: API users.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::not_modified;
use crate::api::{User, UserList};
use crate::error::ApiError;
use crate::http::body::JsonObject;
use crate::http::json::typed_response;
use crate::http::query::QueryParams;
use crate::openapi::schemas::{ErrorBody, UserBody};
use crate::service::caller::Caller;
use crate::service::users::{self as service, UserWritten};
use crate::state::AppState;

fn answer(state: &AppState, written: UserWritten) -> Response {
    match written {
        UserWritten::Created(body) => {
            let mut response = typed_response(StatusCode::CREATED, &body);
            let location = format!(
                "{}/director/user?name={}",
                state.config.base_path, body.object_name
            );
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        UserWritten::Changed(body) => typed_response(StatusCode::OK, &body),
        UserWritten::Unchanged => not_modified(""),
    }
}

/// `GET ?name=`.
#[utoipa::path(
    get,
    path = "/director/user",
    tag = "users",
    summary = "Read one user",
    params(("name" = String, Query, min_length = 1, description = "The user's name")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "No `name`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
)]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let body = service::show(&state.store, &caller, query.required_name()?).await?;
    Ok(typed_response(StatusCode::OK, &body))
}

/// `POST`: creates without `?name=`, merges with it.
#[utoipa::path(
    post,
    path = "/director/user",
    tag = "users",
    summary = "Create a user (no `name`) or merge into one (`name`)",
    params(("name" = Option<String>, Query, description = "The user to merge into")),
    request_body(content = UserBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Merged", body = User),
        (status = 201, description = "Created", body = User, headers(("Location" = String))),
        (status = 304, description = "Nothing changed: no body"),
        (status = 400, description = "Invalid JSON, or a body that is not an object", body = ErrorBody),
        (status = 404, description = "`name` given, no such user", body = ErrorBody),
        (status = 409, description = "No enabled user would hold `users` any more", body = ErrorBody),
        (status = 422, description = "Invalid: name, role, permission, restriction, password, unknown key, \
            a taken name", body = ErrorBody),
    ),
)]
pub async fn post_user(
    State(state): State<AppState>,
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
#[utoipa::path(
    put,
    path = "/director/user",
    tag = "users",
    summary = "Replace a user (not its password unless given), or create it",
    params(("name" = Option<String>, Query, description = "The user to replace or create")),
    request_body(content = UserBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced", body = User),
        (status = 201, description = "Created", body = User, headers(("Location" = String))),
        (status = 304, description = "Nothing changed: no body"),
        (status = 400, description = "Invalid JSON, or a body that is not an object", body = ErrorBody),
        (status = 409, description = "No enabled user would hold `users` any more", body = ErrorBody),
        (status = 422, description = "Invalid: name, role, permission, restriction, password, unknown key, \
            a taken name", body = ErrorBody),
    ),
)]
pub async fn put_user(
    State(state): State<AppState>,
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
#[utoipa::path(
    delete,
    path = "/director/user",
    tag = "users",
    summary = "Delete a user",
    params(("name" = String, Query, min_length = 1, description = "The user's name")),
    responses(
        (status = 200, description = "Deleted: the user as it was", body = User),
        (status = 400, description = "No `name`", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "No enabled user would hold `users` any more", body = ErrorBody),
    ),
)]
pub async fn delete_user(
    State(state): State<AppState>,
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
    Ok(typed_response(StatusCode::OK, &body))
}

/// `GET /director/users`.
#[utoipa::path(
    get,
    path = "/director/users",
    tag = "users",
    summary = "List every user by name",
    responses((status = 200, description = "The users", body = UserList)),
)]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    Ok(typed_response(
        StatusCode::OK,
        &service::list(&state.store, &caller).await?,
    ))
}
