//! Self-service (keys instead of users): registration at boot, the agent's
//! configuration, tickets; and the key management routes for users.

use axum::extract::State;
use std::net::IpAddr;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::layer::{Peer, client_address};
use crate::domain::apikey::Registration;
use crate::error::ApiError;
use crate::http::body::OptionalJsonObject;
use crate::http::json::{json_response, typed_response};
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::selfservice::{self as service, KeyError};
use crate::service::waiting::Wait;
use crate::state::AppState;

/// The header of a registration's answer that names the host as the server
/// knows it now.
const HOST_HEADER: &str = "x-steward-host";

/// The key a node presents: `?key=`, `Authorization: Bearer KEY`, or the body's `key`.
fn presented_key<'a>(
    query: &'a QueryParams,
    headers: &'a HeaderMap,
    body: Option<&'a serde_json::Map<String, Value>>,
) -> Option<String> {
    if let Some(key) = query.get("key").filter(|k| !k.is_empty()) {
        return Some(key.to_owned());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim().to_owned());
    bearer.or_else(|| {
        body.and_then(|b| b.get("key"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

fn wants_text(headers: &HeaderMap) -> bool {
    headers
        .get("x-director-accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/plain"))
}

fn text(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Renders a self-service error, counting bad keys for throttling. A bad
/// key from an address with too many of them gets `429` instead of `403`.
/// Only refusals are throttled: a valid key always passes (one stale node
/// behind a NAT must not hold up the boot of every other node behind it),
/// and guessing a 256-bit key gains nothing from that.
fn refuse(state: &AppState, address: IpAddr, error: KeyError, as_text: bool) -> Response {
    let error = match error {
        KeyError::BadKey(message) => {
            let now = Instant::now();
            let throttled = state.key_throttle.check(address, "", now);
            state.key_throttle.failed(address, "", now);
            tracing::info!(client = %address, "refused self-service key");
            match throttled {
                Ok(()) => ApiError::Forbidden(message),
                Err(wait) => {
                    let seconds = wait.as_secs().max(1);
                    // In JSON whatever the client asked for: `Retry-After` goes with it.
                    return ApiError::TooManyRequests {
                        message: format!("Too many invalid keys: retry in {seconds} seconds"),
                        retry_after: seconds,
                    }
                    .into_response();
                }
            }
        }
        KeyError::Api(e) => e,
    };
    if as_text && !matches!(error, ApiError::Internal(_)) {
        return text(error.status(), format!("ERROR: {error}\n"));
    }
    error.into_response()
}

/// The client's address, the one bad keys are counted for.
fn client(state: &AppState, headers: &HeaderMap, peer: Peer) -> IpAddr {
    client_address(headers, peer.0, &state.config.trusted_proxies)
}

/// `POST /director/self-service/register-host?name=FQDN&key=KEY`.
#[utoipa::path(
    post,
    path = "/director/self-service/register-host",
    tag = "self-service",
    summary = "A node registers itself with a host template's key (or re-registers with its own)",
    description = "Answers the host's own key. With `X-Director-Accept: text/plain` the key comes as bare \
        text, and errors of the registration as `ERROR: message`. A host's own key re-registers it under \
        its current name or a former one (a name no object holds now).",
    security(("key" = []), ("bearer" = [])),
    params(
        ("name" = Option<String>, Query, description = "The node's host name (or `name` in the body)"),
        ("X-Director-Accept" = Option<String>, Header, nullable = false, description = "`text/plain`: answer bare text"),
    ),
    request_body(content = Option<crate::openapi::schemas::RegisterBody>, content_type = "application/json",
        description = "Optional: `display_name`, `address`, `address6`, `agent_port`, `delivery`"),
    responses(
        (status = 200, description = "The host key", content(
            (String = "application/json"),
            (String = "text/plain"),
        ), headers(("X-Steward-Host" = String,
            description = "The host's name as the server knows it now (renamed since the node registered)"))),
        (status = 400, description = "No name or no key, or invalid JSON", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 403, description = "The key is unknown, expired, used up, revoked, or not for agents", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 409, description = "The host exists and has a key, or does not import the template", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 413, description = "The body is too large", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "The name is invalid or a template's, or a property is invalid", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
    ),
)]
pub async fn register_host(
    State(state): State<AppState>,
    peer: Peer,
    query: QueryParams,
    headers: HeaderMap,
    body: OptionalJsonObject,
) -> Response {
    let as_text = wants_text(&headers);
    let address = client(&state, &headers, peer);
    let body = body.0;
    let name = query
        .get("name")
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            body.get("name")
                .or_else(|| body.get("object_name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let key = presented_key(&query, &headers, Some(&body));
    let caller = Caller::self_service(address, crate::http::request_id(&headers));
    match service::register(
        &state.store,
        &caller,
        name.as_deref(),
        key.as_deref(),
        &body,
    )
    .await
    {
        Ok(registered) => {
            state.metrics.registration(Registration::Registered);
            let mut response = if as_text {
                text(StatusCode::OK, registered.key)
            } else {
                json_response(StatusCode::OK, &Value::String(registered.key))
            };
            // The host's current name: a node whose host was renamed learns it.
            if let Ok(host) = HeaderValue::from_str(&registered.host) {
                response.headers_mut().insert(HOST_HEADER, host);
            }
            response
        }
        Err(e) => {
            state.metrics.registration(Registration::Refused);
            refuse(&state, address, e, as_text)
        }
    }
}

/// `GET /director/self-service/agent-config?key=HOST_KEY`.
#[utoipa::path(
    get,
    path = "/director/self-service/agent-config",
    tag = "self-service",
    summary = "What an agent needs: its host, its id, the server's public key",
    security(("key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The agent's configuration", body = crate::api::AgentConfig),
        (status = 400, description = "No key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "Not a host's own key", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn agent_config(
    State(state): State<AppState>,
    peer: Peer,
    query: QueryParams,
    headers: HeaderMap,
) -> Response {
    let address = client(&state, &headers, peer);
    let key = presented_key(&query, &headers, None);
    let server_key = match state.signing_key() {
        Ok(server_key) => server_key,
        Err(e) => return e.into_response(),
    };
    match service::agent_config(&state.store, key.as_deref(), &server_key).await {
        Ok(config) => typed_response(StatusCode::OK, &config),
        Err(e) => refuse(&state, address, e, false),
    }
}

/// `GET /director/self-service/ticket?key=HOST_KEY`.
#[utoipa::path(
    get,
    path = "/director/self-service/ticket",
    tag = "self-service",
    summary = "The host's Icinga PKI ticket",
    security(("key" = []), ("bearer" = [])),
    params(("X-Director-Accept" = Option<String>, Header, nullable = false, description = "`text/plain`: answer bare text")),
    responses(
        (status = 200, description = "The ticket (40 hex digits)", content(
            (String = "application/json"),
            (String = "text/plain"),
        )),
        (status = 400, description = "No key", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 403, description = "Not a host's own key", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
        (status = 404, description = "The host is not an agent", content(
            (crate::openapi::schemas::ErrorBody = "application/json"),
            (String = "text/plain"),
        )),
    ),
)]
pub async fn self_ticket(
    State(state): State<AppState>,
    peer: Peer,
    query: QueryParams,
    headers: HeaderMap,
) -> Response {
    let as_text = wants_text(&headers);
    let address = client(&state, &headers, peer);
    let key = presented_key(&query, &headers, None);
    match service::self_ticket(&state.store, key.as_deref(), &state.ticket_salt).await {
        Ok(ticket) if as_text => text(StatusCode::OK, ticket),
        Ok(ticket) => json_response(StatusCode::OK, &Value::String(ticket)),
        Err(e) => refuse(&state, address, e, as_text),
    }
}

/// `GET /director/host/ticket?name=N` (permission `keys`).
#[utoipa::path(
    get,
    path = "/director/host/ticket",
    tag = "keys",
    summary = "A host's Icinga PKI ticket",
    params(("name" = String, Query, min_length = 1, description = "The host object's name")),
    responses(
        (status = 200, description = "The ticket (40 hex digits)", body = String),
        (status = 400, description = "No `name`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such host, or not an agent", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn host_ticket(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let ticket = service::host_ticket(
        &state.store,
        &caller,
        query.required_name()?,
        &state.ticket_salt,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &Value::String(ticket)))
}

/// `POST /director/host/api-key?name=N`: the new key, shown once.
#[utoipa::path(
    post,
    path = "/director/host/api-key",
    tag = "keys",
    summary = "Create or replace the self-service key of a host or host template",
    params(("name" = String, Query, min_length = 1, description = "The host or host template")),
    request_body(content = Option<crate::openapi::schemas::ApiKeyBody>, content_type = "application/json",
        description = "Optional; template keys only: `expires_in` (seconds) and `max_uses`"),
    responses(
        (status = 200, description = "The key (shown this once) and its metadata", body = crate::openapi::schemas::ApiKey),
        (status = 400, description = "No `name`, or invalid JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such host or host template", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "The body is too large", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "Invalid limits, or limits on a host key", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
    body: OptionalJsonObject,
) -> Result<Response, ApiError> {
    let shown = service::create_key(&state.store, &caller, query.required_name()?, &body.0).await?;
    Ok(typed_response(StatusCode::OK, &shown))
}

/// `GET /director/host/api-key?name=N`: the key's metadata.
#[utoipa::path(
    get,
    path = "/director/host/api-key",
    tag = "keys",
    summary = "A self-service key's metadata (never the key)",
    params(("name" = String, Query, min_length = 1, description = "The host or host template")),
    responses(
        (status = 200, description = "The metadata", body = crate::openapi::schemas::ApiKey),
        (status = 400, description = "No `name`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such object, or it has no key", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn show_key(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let shown = service::show_key(&state.store, &caller, query.required_name()?).await?;
    Ok(typed_response(StatusCode::OK, &shown))
}

/// `DELETE /director/host/api-key?name=N`: revokes the key.
#[utoipa::path(
    delete,
    path = "/director/host/api-key",
    tag = "keys",
    summary = "Revoke a self-service key",
    params(("name" = String, Query, min_length = 1, description = "The host or host template")),
    responses(
        (status = 200, description = "The revoked key's metadata", body = crate::openapi::schemas::ApiKey),
        (status = 400, description = "No `name`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No such object, or it has no key", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let shown = service::revoke_key(&state.store, &caller, query.required_name()?).await?;
    Ok(typed_response(StatusCode::OK, &shown))
}

/// `GET /director/self-service/allowlist?key=HOST_KEY[&wait=SECONDS]`: the
/// host's newest signed allowlist with its ETag; `If-None-Match` gets 304;
/// `wait` (at most 300) holds the request until it changes.
#[utoipa::path(
    get,
    path = "/director/self-service/allowlist",
    tag = "self-service",
    summary = "A pulling agent fetches its newest signed allowlist",
    security(("key" = []), ("bearer" = [])),
    params(
        ("wait" = Option<crate::openapi::schemas::PullWait>, Query,
            description = "Hold the request up to this many seconds until a newer allowlist is issued"),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = "The ETag the agent holds: `304` when current"),
    ),
    responses(
        (status = 200, description = "The signed allowlist", body = crate::api::SignedAllowlist,
            headers(("ETag" = String, description = "`\"CHECKSUM-SERIAL\"`"))),
        (status = 304, description = "The agent holds the newest: no body", headers(("ETag" = String))),
        (status = 400, description = "No key, or a bad `wait`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "Not a host's own key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No allowlist was deployed to this host yet", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn pull_allowlist(
    State(state): State<AppState>,
    peer: Peer,
    query: QueryParams,
    headers: HeaderMap,
) -> Response {
    let address = client(&state, &headers, peer);
    let wait = match query.wait(300) {
        Ok(wait) => wait,
        Err(error) => return error.into_response(),
    };
    let key = presented_key(&query, &headers, None);
    let known = crate::http::conditions::Conditions::from_headers(&headers).if_none_match;
    // The request's headers share hyper's read buffer: kept through a long
    // wait, they would make the connection hold two (8 KB more per
    // waiting agent). What is needed of them was copied above.
    drop((headers, query));
    let wait = Wait::new(wait, &state.shutdown);
    let pulling = service::Pulling {
        store: &state.store,
        room: &state.pulls,
        fetches: &state.fetches,
        metrics: &state.metrics,
    };
    let holds = |etag: &str| known.as_ref().is_some_and(|k| k.matches(etag));
    match service::pull(pulling, key.as_deref(), holds, &wait).await {
        Ok(service::Pulled::Allowlist { document, etag }) => allowlist(document, &etag),
        Ok(service::Pulled::Unchanged(etag)) => crate::handlers::not_modified(&etag),
        Err(e) => refuse(&state, address, e, false),
    }
}

/// A signed allowlist as stored, with its ETag.
fn allowlist(document: String, etag: &str) -> Response {
    let mut response = Response::new(Body::from(document));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    response
}
