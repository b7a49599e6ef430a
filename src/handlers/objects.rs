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

/// The handlers of one object endpoint, with their OpenAPI operations:
/// the functions above serve `/director/host` and `/director/script`
/// alike, and each endpoint's handlers are generated here for its kind.
macro_rules! object_operations {
    ($kind:ident, $variant:ident, $path:literal, $tag:literal, $body:ident, $object:ident) => {
        #[doc = concat!("The handlers of `", $path, "`.")]
        pub mod $kind {
            use axum::extract::State;
            use axum::http::HeaderMap;
            use axum::response::Response;

            use crate::domain::Kind;
            use crate::error::ApiError;
            use crate::http::body::{JsonObject, PatchBody};
            use crate::http::query::QueryParams;
            use crate::openapi::schemas::{$body, $object, ErrorBody, JsonPatch};
            use crate::service::caller::Caller;
            use crate::state::AppState;

            /// `GET ?name=`.
            #[utoipa::path(
                get,
                path = $path,
                tag = $tag,
                operation_id = concat!("get_", stringify!($kind)),
                summary = concat!("Read one ", stringify!($kind), " or template"),
                params(
                    ("name" = String, Query, min_length = 1, description = "The object's name"),
                    ("resolved" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                        description = "A flag: the inherited view (no `imports`)"),
                    ("withNull" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                        description = "A flag: also every unset known property, as `null`, `[]` or `{}`"),
                    ("properties" = Option<String>, Query,
                        description = "Only these top-level keys, comma-separated"),
                    ("If-None-Match" = Option<String>, Header, nullable = false,
                        description = "`304` when it lists the view's ETag or `*`"),
                ),
                responses(
                    (status = 200, description = "The object", body = $object,
                        headers(("ETag" = String, description = "The version of this view"))),
                    (status = 304, description = "`If-None-Match` matched: no body",
                        headers(("ETag" = String))),
                    (status = 400, description = "No `name`, or a bad flag value", body = ErrorBody),
                    (status = 404, description = "No such object (or not visible to the caller)",
                        body = ErrorBody),
                ),
            )]
            pub async fn get(
                State(state): State<AppState>,
                caller: Caller,
                query: QueryParams,
                headers: HeaderMap,
            ) -> Result<Response, ApiError> {
                super::get_object(state, caller, Kind::$variant, query, headers).await
            }

            /// `POST`: create without `name`, merge with it.
            #[utoipa::path(
                post,
                path = $path,
                tag = $tag,
                operation_id = concat!("post_", stringify!($kind)),
                summary = concat!("Create a ", stringify!($kind), " (no `name`) or merge into one (`name`)"),
                description = "Without `name`: creates the object the body names (`422` when the name is \
                    taken). With `name`: every top-level key replaces that property; `\"vars.NAME\"` sets one \
                    variable; an `object_name` that differs renames. The body is read as JSON whatever the \
                    `Content-Type`.",
                params(
                    ("name" = Option<String>, Query, description = "The object to merge into"),
                    ("If-Match" = Option<String>, Header, nullable = false, description = "`412` unless it names the stored ETag"),
                ),
                request_body(content = $body, content_type = "application/json"),
                responses(
                    (status = 200, description = "Merged: the whole object", body = $object,
                        headers(("ETag" = String))),
                    (status = 201, description = "Created", body = $object,
                        headers(("ETag" = String), ("Location" = String))),
                    (status = 304, description = "Nothing changed: no body", headers(("ETag" = String))),
                    (status = 400, description = "Invalid JSON, or a body that is not an object", body = ErrorBody),
                    (status = 404, description = "`name` given, no such object", body = ErrorBody),
                    (status = 412, description = "`If-Match` does not match", body = ErrorBody),
                    (status = 422, description = "Invalid: types, ranges, names, unknown keys, references, \
                        loops, a taken name", body = ErrorBody),
                ),
            )]
            pub async fn post(
                State(state): State<AppState>,
                caller: Caller,
                query: QueryParams,
                headers: HeaderMap,
                body: JsonObject,
            ) -> Result<Response, ApiError> {
                super::post_object(state, caller, Kind::$variant, query, headers, body).await
            }

            /// `PUT`: replace, or create.
            #[utoipa::path(
                put,
                path = $path,
                tag = $tag,
                operation_id = concat!("put_", stringify!($kind)),
                summary = concat!("Replace a ", stringify!($kind), ", or create it"),
                description = "With `name`: replaces every property but `object_name` and `object_type`, or \
                    creates the object when it does not exist. Without `name`: creates, like POST.",
                params(
                    ("name" = Option<String>, Query, description = "The object to replace or create"),
                    ("If-Match" = Option<String>, Header, nullable = false, description = "`412` unless it names the stored ETag"),
                    ("If-None-Match" = Option<String>, Header, nullable = false,
                        description = "`*`: only create (`412` when the object exists)"),
                ),
                request_body(content = $body, content_type = "application/json"),
                responses(
                    (status = 200, description = "Replaced", body = $object, headers(("ETag" = String))),
                    (status = 201, description = "Created", body = $object,
                        headers(("ETag" = String), ("Location" = String))),
                    (status = 304, description = "Nothing changed: no body", headers(("ETag" = String))),
                    (status = 400, description = "Invalid JSON, or a body that is not an object", body = ErrorBody),
                    (status = 412, description = "A precondition failed", body = ErrorBody),
                    (status = 422, description = "Invalid: types, ranges, names, unknown keys, references, \
                        loops, a taken name", body = ErrorBody),
                ),
            )]
            pub async fn put(
                State(state): State<AppState>,
                caller: Caller,
                query: QueryParams,
                headers: HeaderMap,
                body: JsonObject,
            ) -> Result<Response, ApiError> {
                super::put_object(state, caller, Kind::$variant, query, headers, body).await
            }

            /// `PATCH ?name=`.
            #[utoipa::path(
                patch,
                path = $path,
                tag = $tag,
                operation_id = concat!("patch_", stringify!($kind)),
                summary = concat!("Patch a ", stringify!($kind), " (RFC 7396 or RFC 6902)"),
                description = "The patch applies to the stored object as `withNull` shows it; the result is \
                    then checked like a PUT body. Other content types get `415`.",
                params(
                    ("name" = String, Query, min_length = 1, description = "The object's name"),
                    ("If-Match" = Option<String>, Header, nullable = false, description = "`412` unless it names the stored ETag"),
                ),
                request_body(content(
                    ($body = "application/merge-patch+json"),
                    (JsonPatch = "application/json-patch+json"),
                )),
                responses(
                    (status = 200, description = "Patched", body = $object, headers(("ETag" = String))),
                    (status = 304, description = "Nothing changed: no body", headers(("ETag" = String))),
                    (status = 400, description = "No `name`, or invalid JSON", body = ErrorBody),
                    (status = 404, description = "No such object", body = ErrorBody),
                    (status = 409, description = "A JSON Patch `test` operation failed", body = ErrorBody),
                    (status = 412, description = "`If-Match` does not match", body = ErrorBody),
                    (status = 415, description = "Not a merge patch or JSON Patch content type", body = ErrorBody),
                    (status = 422, description = "An invalid patch, or an invalid result", body = ErrorBody),
                ),
            )]
            pub async fn patch(
                State(state): State<AppState>,
                caller: Caller,
                query: QueryParams,
                headers: HeaderMap,
                body: PatchBody,
            ) -> Result<Response, ApiError> {
                super::patch_object(state, caller, Kind::$variant, query, headers, body).await
            }

            /// `DELETE ?name=`.
            #[utoipa::path(
                delete,
                path = $path,
                tag = $tag,
                operation_id = concat!("delete_", stringify!($kind)),
                summary = concat!("Delete a ", stringify!($kind)),
                params(
                    ("name" = String, Query, min_length = 1, description = "The object's name"),
                    ("If-Match" = Option<String>, Header, nullable = false, description = "`412` unless it names the stored ETag"),
                ),
                responses(
                    (status = 200, description = "Deleted: the object as it was", body = $object,
                        headers(("ETag" = String))),
                    (status = 400, description = "No `name`", body = ErrorBody),
                    (status = 404, description = "No such object", body = ErrorBody),
                    (status = 409, description = "Still imported or listed by others, named in the message",
                        body = ErrorBody),
                    (status = 412, description = "`If-Match` does not match", body = ErrorBody),
                ),
            )]
            pub async fn delete(
                State(state): State<AppState>,
                caller: Caller,
                query: QueryParams,
                headers: HeaderMap,
            ) -> Result<Response, ApiError> {
                super::delete_object(state, caller, Kind::$variant, query, headers).await
            }
        }
    };
}

object_operations!(host, Host, "/director/host", "hosts", HostBody, Host);
object_operations!(
    script,
    Script,
    "/director/script",
    "scripts",
    ScriptBody,
    Script
);
