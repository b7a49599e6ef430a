//! `/director/hosts`, `/director/scripts` and their `/templates`.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::view_from;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::lists::{self as service, ListRequest, MAX_LIMIT, decode_cursor};
use crate::state::AppState;

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
        filter: query.filter(kind)?,
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
        return Ok(json_body(Body::from(body)));
    }
    let resolver = service::prepare(&state.store, &request).await?;
    let stream = service::stream(state.store.clone(), request, resolver);
    Ok(json_body(Body::from_stream(stream)))
}

/// A `200` with a body already printed as JSON.
fn json_body(body: Body) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The handler of one list endpoint, with its OpenAPI operation:
/// `list_objects` serves all four lists, and each gets its handler here.
/// Host lists also filter by `has_agent` (`$extra` parameters).
macro_rules! list_operation {
    ($name:ident, $kind:ident, $object_type:ident, $path:literal, $tag:literal, $list:ident, $what:literal $(, $extra:tt)*) => {
        #[doc = concat!("`GET ", $path, "`.")]
        #[utoipa::path(
            get,
            path = $path,
            tag = $tag,
            operation_id = stringify!($name),
            summary = concat!("List ", $what, " by name"),
            description = "Ordered by name in byte order. Without `limit` the whole list is streamed; with \
                `limit` one page comes back with `next` when more follow. Besides the parameters below, \
                `vars.KEY=VALUE` filters on a resolved variable (several may be given, all must match); \
                unknown parameters are ignored.",
            params(
                ("q" = Option<String>, Query,
                    description = "A case-insensitive substring of the name or the resolved display name"),
                ("disabled" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                    description = "A flag: the object's own `disabled`"),
                ("imports" = Option<String>, Query,
                    description = "A template anywhere in the object's chain"),
                $($extra,)*
                ("resolved" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                    description = "A flag: each element in the inherited view"),
                ("withNull" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                    description = "A flag: each element with every unset known property"),
                ("properties" = Option<String>, Query,
                    description = "Only these top-level keys of each element, comma-separated"),
                ("limit" = Option<u64>, Query, minimum = 1, maximum = 1000,
                    description = "At most this many objects, and `next` when more follow"),
                ("cursor" = Option<String>, Query,
                    description = "The `next` value of the previous page; without `limit`, the rest of the list after it"),
                ("count" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
                    description = "A flag: add `total`, the number of matches"),
            ),
            responses(
                (status = 200, description = "The objects", body = $list),
                (status = 400, description = "A bad flag, `limit` or `cursor`",
                    body = crate::openapi::schemas::ErrorBody),
            ),
        )]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            query: QueryParams,
        ) -> Result<Response, ApiError> {
            super::list_objects(state, caller, Kind::$kind, ObjectType::$object_type, query).await
        }
    };
}

/// The handlers of the four lists.
pub mod operations {
    use axum::extract::State;
    use axum::response::Response;

    use crate::domain::{Kind, ObjectType};
    use crate::error::ApiError;
    use crate::http::query::QueryParams;
    use crate::openapi::schemas::{HostList, ScriptList};
    use crate::service::caller::Caller;
    use crate::state::AppState;

    list_operation!(
        list_hosts,
        Host,
        Object,
        "/director/hosts",
        "hosts",
        HostList,
        "host objects",
        ("has_agent" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "A flag: the resolved `has_agent` (unset counts as false)")
    );
    list_operation!(
        list_host_templates,
        Host,
        Template,
        "/director/hosts/templates",
        "hosts",
        HostList,
        "host templates",
        ("has_agent" = Option<String>, Query, pattern = "^(1|true|y|0|false|n)?$",
            description = "A flag: the resolved `has_agent` (unset counts as false)")
    );
    list_operation!(
        list_scripts,
        Script,
        Object,
        "/director/scripts",
        "scripts",
        ScriptList,
        "script objects"
    );
    list_operation!(
        list_script_templates,
        Script,
        Template,
        "/director/scripts/templates",
        "scripts",
        ScriptList,
        "script templates"
    );
}
