//! Self-service (keys instead of users): registration at boot, the agent's
//! configuration, tickets; and the key management routes for users.

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
use crate::http::json::json_response;
use crate::http::query::QueryParams;
use crate::service::caller::Caller;
use crate::service::selfservice::{self as service, KeyError};
use crate::state::AppState;
use crate::store::deployments::DeploymentHost;

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
    state: AppState,
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
    let caller = Caller {
        request_id: crate::http::request_id(&headers),
        ..Caller::system(&format!("self-service ({address})"))
    };
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
        (status = 200, description = "The agent's configuration", body = crate::openapi::schemas::AgentConfig),
        (status = 400, description = "No key", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "Not a host's own key", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn agent_config(
    state: AppState,
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
        Ok(config) => json_response(StatusCode::OK, &config),
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
    state: AppState,
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
    state: AppState,
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
    state: AppState,
    caller: Caller,
    query: QueryParams,
    body: OptionalJsonObject,
) -> Result<Response, ApiError> {
    let shown = service::create_key(&state.store, &caller, query.required_name()?, &body.0).await?;
    Ok(json_response(StatusCode::OK, &shown))
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
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let shown = service::show_key(&state.store, &caller, query.required_name()?).await?;
    Ok(json_response(StatusCode::OK, &shown))
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
    state: AppState,
    caller: Caller,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let shown = service::revoke_key(&state.store, &caller, query.required_name()?).await?;
    Ok(json_response(StatusCode::OK, &shown))
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
        (status = 200, description = "The signed allowlist", body = crate::openapi::schemas::SignedAllowlist,
            headers(("ETag" = String, description = "`\"CHECKSUM-SERIAL\"`"))),
        (status = 304, description = "The agent holds the newest: no body", headers(("ETag" = String))),
        (status = 400, description = "No key, or a bad `wait`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "Not a host's own key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "No allowlist was deployed to this host yet", body = crate::openapi::schemas::ErrorBody),
    ),
)]
pub async fn pull_allowlist(
    state: AppState,
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
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    // Taken before the first look: a deployment published after it wakes it.
    let mut issued = state.store.changes().watch_issued();
    let mut admitted = false;
    // The host and the ETag of what was issued to it, at the last look.
    let mut looked: Option<(i64, Option<String>)> = None;
    // Whether the last sleep ended because something was issued to the host.
    let mut woken = false;
    loop {
        // Woken by a deployment this server made: answered from memory.
        if let Some(issued) = looked
            .as_ref()
            .and_then(|(host, _)| state.store.changes().issued_document(*host))
        {
            let etag = service::allowlist_etag(&issued.checksum, issued.serial);
            if !known.as_ref().is_some_and(|k| k.matches(&etag)) {
                let fetched = Some(service::fetch_of(&issued));
                return Box::pin(fetched_answer(&state, &issued, fetched, etag)).await;
            }
        }
        // At the deadline (or when the server stops) with nothing issued to
        // the host since the last look: answered from that look, without
        // reading again.
        if let Some((_, etag)) = &looked
            && !woken
            && (tokio::time::Instant::now() >= deadline || state.shutdown.is_stopping())
        {
            return unchanged(etag.as_deref());
        }
        // A look remembered since nothing changed needs no database and no
        // place in the line: a renewal while all is quiet. Otherwise new
        // requests wait in a bounded room (or get 503 with Retry-After),
        // and a woken one waits its turn.
        let mut permit = None;
        let remembered = service::remembered_look(&state.store, key.as_deref());
        state.metrics.pull_look(remembered.is_some());
        let look = match remembered {
            Some(look) => look,
            None => {
                permit = match admit(&state, &mut admitted).await {
                    Ok(permit) => Some(permit),
                    Err(busy) => return *busy,
                };
                // Boxed, here and below: a waiting poll's future stays
                // small (it would otherwise be as large as the largest
                // query's).
                match Box::pin(service::pull_look(&state.store, key.as_deref())).await {
                    Ok(look) => look,
                    Err(e) => return refuse(&state, address, e, false),
                }
            }
        };
        let (host_id, version) = (look.host_id, look.version);
        let etag = version
            .as_ref()
            .map(|v| service::allowlist_etag(&v.checksum, v.serial));
        if etag
            .as_ref()
            .is_some_and(|etag| !known.as_ref().is_some_and(|k| k.matches(etag)))
        {
            // The agent lacks it: the document is read now.
            let permit = match permit {
                Some(permit) => permit,
                None => match admit(&state, &mut admitted).await {
                    Ok(permit) => permit,
                    Err(busy) => return *busy,
                },
            };
            let answer = Box::pin(newest_to_hand_out(&state, host_id)).await;
            drop(permit);
            return match answer {
                Ok((issued, fetched)) => {
                    let etag = service::allowlist_etag(&issued.checksum, issued.serial);
                    Box::pin(fetched_answer(&state, &issued, fetched, etag)).await
                }
                Err(e) => e.into_response(),
            };
        }
        drop(permit);
        if tokio::time::Instant::now() >= deadline || state.shutdown.is_stopping() {
            return unchanged(etag.as_deref());
        }
        looked = Some((host_id, etag));
        // Sleeps until a deployment issues this host an allowlist: no reads
        // meanwhile.
        woken = tokio::select! {
            () = issued.issued(host_id) => true,
            () = tokio::time::sleep_until(deadline) => false,
            () = state.shutdown.stopping() => false,
        };
    }
}

/// A place among the pulls doing database work: the first time in the
/// bounded room (or 503 with Retry-After), after a wake a turn.
async fn admit<'a>(
    state: &'a AppState,
    admitted: &mut bool,
) -> Result<tokio::sync::SemaphorePermit<'a>, Box<Response>> {
    let permit = if *admitted {
        state.pulls.turn().await
    } else {
        state.pulls.enter().await
    };
    match permit {
        Ok(permit) => {
            *admitted = true;
            Ok(permit)
        }
        Err(e) => {
            state.metrics.pull_busy();
            Err(Box::new(e.into_response()))
        }
    }
}

/// A pull's answer when the agent holds the newest: 304, or 404 before the
/// host's first allowlist.
fn unchanged(etag: Option<&str>) -> Response {
    match etag {
        Some(etag) => crate::handlers::not_modified(etag),
        None => not_deployed().into_response(),
    }
}

fn not_deployed() -> ApiError {
    ApiError::NotFound("No allowlist was deployed to this host yet".into())
}

/// The newest allowlist issued to a host, and what fetching it records.
async fn newest_to_hand_out(
    state: &AppState,
    host_id: i64,
) -> Result<(DeploymentHost, Option<service::Fetched>), ApiError> {
    // None: gone since the look (the host's history was removed).
    let issued = service::issued_allowlist(&state.store, host_id)
        .await?
        .ok_or_else(not_deployed)?;
    let fetched = service::fetch_to_record(&state.store, &issued).await?;
    Ok((issued, fetched))
}

/// The answer to a fetch of `issued`: recorded first (when `fetched` says
/// what to record), then the signed allowlist as stored, with its ETag.
async fn fetched_answer(
    state: &AppState,
    issued: &DeploymentHost,
    fetched: Option<service::Fetched>,
    etag: String,
) -> Response {
    if let Some(fetched) = fetched
        && let Err(e) = state.fetches.record(fetched).await
    {
        return e.into_response();
    }
    let mut response = Response::new(Body::from(issued.allowlist.clone()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    response
}
