//! The authentication layer: every Director route except self-service, and
//! every console page, needs a user with `api`. It runs before anything else that can answer 4xx, so
//! `401` comes first.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::authenticator::AuthError;
use crate::domain::auth::Permission;
use crate::error::ApiError;
use crate::service::caller::Caller;
use crate::state::AppState;

/// The challenge Python's urllib (and so Ansible) waits for before it sends credentials.
pub const CHALLENGE: &str = "Basic realm=\"steward\"";

/// Whether a request to `path` must carry a user: the Director routes
/// (under `base`) but self-service, and `/metrics` unless it is public.
fn needs_user(path: &str, base: &str, metrics_public: bool) -> bool {
    if path == "/metrics" {
        return !metrics_public;
    }
    if crate::console::is_console_path(path, base) {
        return true;
    }
    let Some(rest) = path.strip_prefix(base) else {
        return false;
    };
    (rest == "/director" || rest.starts_with("/director/"))
        && !rest.starts_with("/director/self-service/")
}

/// `user:password` from a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not a trusted proxy.
pub fn client_address(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::Unauthorized(message.to_owned()).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    response
}

/// `429` with `Retry-After` for a throttled login.
fn throttled(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    ApiError::TooManyRequests {
        message: format!("Too many failed logins: retry in {seconds} seconds"),
        retry_after: seconds,
    }
    .into_response()
}

/// Whether `req` must carry a user (see [`authenticate`]).
pub fn wants_user(state: &AppState, req: &Request) -> bool {
    let config = &state.config;
    needs_user(req.uri().path(), &config.base_path, config.metrics_public)
}

/// Authenticates a request to the Director routes and adds the
/// [`Caller`]; the answer to give instead when it cannot go on. A console
/// page's `401` is a page too (what a browser shows when its user cancels
/// the sign-in), with the same challenge.
pub async fn authenticate(state: &AppState, req: Request) -> Result<Request, Response> {
    let console = crate::console::is_console_path(req.uri().path(), &state.config.base_path);
    match authenticate_api(state, req).await {
        Err(refused) if console && refused.status() == axum::http::StatusCode::UNAUTHORIZED => {
            let mut page = crate::console::PageError(ApiError::Unauthorized(
                "Sign in with your Steward user name and password".into(),
            ))
            .into_response();
            page.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
            Err(page)
        }
        other => other,
    }
}

async fn authenticate_api(state: &AppState, mut req: Request) -> Result<Request, Response> {
    let Some((name, password)) = basic_credentials(req.headers()) else {
        // Never counted as a failure: urllib sends every first request without credentials.
        return Err(unauthorized("Authentication required"));
    };
    if !crate::domain::user::credentials_fit(&name, &password) {
        // Before the throttle and the log: an over-long name costs no memory there.
        return Err(unauthorized("Invalid credentials"));
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address = client_address(req.headers(), peer, &state.config.trusted_proxies);
    let now = Instant::now();
    if let Err(wait) = state.throttle.check(address, &name, now) {
        return Err(throttled(wait));
    }
    let mut reserved = false;
    let checked = state
        .auth
        .authenticate_guarded(&name, &password, || {
            // Counted before the hash, so concurrent guesses cannot all
            // pass the check above before any of them is counted.
            let failures = state
                .throttle
                .reserve(address, &name, now)
                .map_err(AuthError::Throttled)?;
            reserved = true;
            Ok(failures)
        })
        .await;
    let user = match checked {
        Ok(user) => user,
        Err(AuthError::Invalid) => {
            tracing::info!(user = %name.escape_debug(), client = %address, "wrong credentials");
            return Err(unauthorized("Invalid credentials"));
        }
        Err(AuthError::Throttled(wait)) => {
            return Err(throttled(wait));
        }
        Err(AuthError::Busy) => {
            // The reserved attempt stays counted: a flood from many
            // addresses that keeps the hashing slots full is charged for
            // every request it makes, not only those that were hashed.
            let mut response =
                ApiError::Unavailable("Too many logins at once, retry shortly".into())
                    .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(response);
        }
        Err(AuthError::Db(e)) => return Err(ApiError::from(e).into_response()),
    };
    if reserved {
        state.throttle.refund(address, &name);
    } else {
        state.throttle.succeeded(address, &name);
    }
    let caller = Caller::user(&user.draft, crate::http::request_id(req.headers()));
    if let Err(e) = caller.require(Permission::Api) {
        return Err(e.into_response());
    }
    if crate::console::is_console_path(req.uri().path(), &state.config.base_path) {
        // The console's form token, bound to these credentials.
        let session = crate::console::csrf::Session::new(&state.console_secret, &name, &password);
        req.extensions_mut().insert(session);
    }
    req.extensions_mut().insert(caller);
    Ok(req)
}

/// The connecting peer's address, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("Authentication required".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn director_routes_need_a_user_but_self_service_and_operations_do_not() {
        assert!(needs_user("/director/host", "", false));
        assert!(needs_user("/director", "", false));
        assert!(!needs_user(
            "/director/self-service/register-host",
            "",
            false
        ));
        assert!(!needs_user("/health", "", false));
        assert!(!needs_user("/directorx", "", false));
        assert!(needs_user(
            "/icingaweb2/director/hosts",
            "/icingaweb2",
            false
        ));
        assert!(!needs_user("/director/hosts", "/icingaweb2", false));
        assert!(needs_user("/metrics", "", false));
        assert!(needs_user("/metrics", "/icingaweb2", false));
        assert!(!needs_user("/metrics", "", true));
        assert!(needs_user("/ui/", "", false));
        assert!(needs_user("/ui/static/console.css", "", false));
        assert!(needs_user("/icingaweb2/ui/host", "/icingaweb2", false));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6czNjcjN0OmV4dHJh"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".into(), "s3cr3t:extra".into()))
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(basic_credentials(&h), None);
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "127.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("127.0.0.99, 127.0.0.50, 127.0.0.2"),
        );
        assert_eq!(
            client_address(&h, Some(proxy), &[proxy]),
            IpAddr::from([127, 0, 0, 50])
        );
        let other: IpAddr = IpAddr::from([127, 0, 0, 7]);
        assert_eq!(
            client_address(&h, Some(other), &[proxy]),
            other,
            "an untrusted peer cannot claim an address"
        );
    }
}
