//! `/director/hosts`, `/director/scripts` and their `/templates`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::view_from;
use crate::domain::filter::Filter;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::lists::{self as service, ListRequest, MAX_LIMIT, decode_cursor};
use crate::state::AppState;

fn filter_from(kind: Kind, query: &QueryParams) -> Result<Filter, ApiError> {
    let mut filter = Filter {
        q: query
            .get("q")
            .filter(|q| !q.is_empty())
            .map(str::to_lowercase),
        disabled: query.flag("disabled")?,
        imports: query
            .get("imports")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        vars: query
            .with_prefix("vars.")
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..Filter::default()
    };
    if kind == Kind::Host {
        filter.has_agent = query.flag("has_agent")?;
    }
    Ok(filter)
}

fn request_from(
    caller: Caller,
    kind: Kind,
    object_type: ObjectType,
    query: &QueryParams,
) -> Result<ListRequest, ApiError> {
    query.check_flags()?;
    let (limit, cursor) = query.paging(MAX_LIMIT)?;
    let after = cursor.map(decode_cursor).transpose()?;
    Ok(ListRequest {
        kind,
        object_type,
        filter: filter_from(kind, query)?,
        view: view_from(query)?,
        limit,
        after,
        count: query.is_set("count")?,
        caller,
    })
}

/// `GET` a list: one page with `limit`, otherwise the whole list streamed.
pub async fn list_objects(
    state: AppState,
    caller: Caller,
    kind: Kind,
    object_type: ObjectType,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let request = request_from(caller, kind, object_type, &query)?;
    if let Some(limit) = request.limit {
        let body = service::page(&state.store, &request, limit).await?;
        return Ok(json_response(StatusCode::OK, &body));
    }
    let resolver = service::prepare(&state.store, &request).await?;
    let stream = service::stream(state.store.clone(), request, resolver);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
