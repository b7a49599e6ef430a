//! `GET /director/activity`: the activity log, newest first; and
//! `POST /director/activity/revert`: undoing what it records.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::api::ActivityList;
use crate::error::ApiError;
use crate::http::json::json_response;
use crate::http::json::typed_response;
use crate::http::query::QueryParams;
use crate::openapi::schemas::ErrorBody;
use crate::service::activity::{self as service, ActivityRequest, decode_cursor, parse_since};
use crate::service::caller::Caller;
use crate::service::lists::MAX_LIMIT;
use crate::service::revert::{self, Target};
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

/// The target of a revert: exactly one of `id` and `to`, an entry id.
fn revert_target(query: &QueryParams) -> Result<Target, ApiError> {
    let hint = "use an activity entry's id";
    let id = query.integer("id", hint)?;
    let to = query.integer("to", hint)?;
    let target = match (id, to) {
        (Some(id), None) => Target::Entry(id),
        (None, Some(to)) => Target::To(to),
        _ => {
            return Err(ApiError::BadRequest(
                "Give exactly one of id (undo that entry) and to (undo every entry after it)"
                    .into(),
            ));
        }
    };
    match target {
        Target::Entry(n) | Target::To(n) if n < 1 => Err(ApiError::BadRequest(format!(
            "Invalid entry id {n}: {hint}"
        ))),
        _ => Ok(target),
    }
}

/// `POST /director/activity/revert?id=N|to=N&dry_run=1`: any body is ignored.
#[utoipa::path(
    post,
    path = "/director/activity/revert",
    tag = "activity",
    summary = "Undo one logged object change, or every one after an entry",
    description = "`id=N` undoes entry N while its object is still as N left it (409 otherwise). \
        `to=N` undoes every host and script change after entry N, newest first, in one \
        transaction (all or nothing; at most 1,000 entries), and needs `deploy` too. \
        Each change is logged as a `revert` entry naming the entry it undid. Any body is ignored.",
    params(
        ("id" = Option<i64>, Query, minimum = 1, description = "Undo this entry alone"),
        ("to" = Option<i64>, Query, minimum = 1,
            description = "Undo every entry after this one (a deployment's `activity_id`)"),
        ("dry_run" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "A flag: answer the changes it would make, and make none"),
    ),
    responses(
        (status = 200, description = "The changes made (or, on a dry run, that it would make)", body = crate::api::Revert),
        (status = 400, description = "Neither or both of `id` and `to`, or a value that is not an entry id", body = ErrorBody),
        (status = 403, description = "A permission is missing, or a host is outside your restrictions", body = ErrorBody),
        (status = 404, description = "No such entry (or one about a host outside your restrictions)", body = ErrorBody),
        (status = 409, description = "An object changed since the entry (what changed is named), \
            or a template or script is still referenced", body = ErrorBody),
        (status = 422, description = "Not a change of a host or script, more than 1,000 entries to undo, \
            or the undo would break a reference", body = ErrorBody),
    ),
)]
pub async fn revert_activity(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let target = revert_target(&query)?;
    let dry_run = query.flag("dry_run")?.unwrap_or(false);
    let answer = revert::revert(&state.store, &caller, target, dry_run).await?;
    Ok(typed_response(StatusCode::OK, &answer))
}
