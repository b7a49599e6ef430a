//! `GET /director/activity`: the activity log, newest first.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::api::ActivityList;
use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::openapi::schemas::ErrorBody;
use crate::service::activity::{self as service, ActivityRequest, decode_cursor, parse_since};
use crate::service::caller::Caller;
use crate::service::lists::MAX_LIMIT;
use crate::service::waiting::Wait;
use crate::state::AppState;
use crate::store::activity::Query;

fn text(query: &QueryParams, name: &str) -> Option<String> {
    query.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// `GET /director/activity?object_type=&name=&author=&action=&since=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/director/activity",
    tag = "activity",
    summary = "The activity log, newest first",
    description = "Filters match exactly. Without `limit` the whole selection is streamed.",
    params(
        ("object_type" = Option<String>, Query, description = "`host`, `script`, `user`, `deployment`"),
        ("name" = Option<String>, Query, description = "The object's name"),
        ("author" = Option<String>, Query, description = "A user name, `cli`, `self-service (ADDRESS)`"),
        ("action" = Option<String>, Query, description = "`create`, `modify`, `rename`, `delete`, ..."),
        ("since" = Option<String>, Query,
            description = "Entries at or after this time: RFC 3339 or Unix seconds"),
        ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
            description = "At most this many entries, and `next` when more follow"),
        ("cursor" = Option<String>, Query,
            description = "The `next` value of the previous page; without `limit`, every older entry"),
        ("after" = Option<i64>, Query,
            description = "Only entries newer than this `id` (at most `limit`, 1,000 by default, the newest)"),
        ("wait" = Option<crate::openapi::schemas::BlockingWait>, Query,
            description = "With `after`: hold the request up to this many seconds until such an entry exists \
                (an empty list at the end)"),
    ),
    responses(
        (status = 200, description = "The entries", body = ActivityList),
        (status = 400, description = "A bad `since`, `limit`, `cursor`, `after` or `wait`", body = ErrorBody),
    ),
)]
pub async fn list_activity(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let (limit, cursor) = query.paging(MAX_LIMIT)?;
    let before_id = cursor.map(decode_cursor).transpose()?;
    let after_id = query.integer("after", "use an entry's id")?;
    let wait = query.wait(300)?;
    if wait > 0 && after_id.is_none() {
        return Err(ApiError::BadRequest(
            "wait needs after: the id of the newest entry seen".into(),
        ));
    }
    let request = ActivityRequest {
        query: Query {
            object_type: text(&query, "object_type"),
            name: text(&query, "name"),
            author: text(&query, "author"),
            action: text(&query, "action"),
            since: query
                .get("since")
                .filter(|v| !v.is_empty())
                .map(parse_since)
                .transpose()?,
            before_id,
            after_id,
        },
        limit,
        caller,
    };
    if after_id.is_some() {
        let limit = limit.unwrap_or(MAX_LIMIT);
        let wait = Wait::new(wait, &state.shutdown);
        let page = service::page_after(&state.store, &request, limit, &wait).await?;
        return Ok(json_response(StatusCode::OK, &page));
    }
    if let Some(limit) = limit {
        return Ok(json_response(
            StatusCode::OK,
            &service::page(&state.store, &request, limit).await?,
        ));
    }
    let stream = service::stream(state.store.clone(), request)?;
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
