//! The checks every request passes before it is routed: authentication,
//! method rules, the cross-site guard, content negotiation; and JSON
//! bodies for the router's own 404 and 405.
//!
//! They are one layer, [`ChecksLayer`], not one each: every `from_fn`
//! layer costs each request in progress two allocations, and a
//! long-polling fleet keeps ten thousand requests in progress.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;

use crate::auth::layer::{authenticate, wants_user};
use crate::error::ApiError;
use crate::state::AppState;

const OVERRIDE: &str = "x-http-method-override";

/// The one route whose answer is not JSON but Prometheus' text format.
const METRICS: &str = "/metrics";

/// Methods HTTP defines (RFC 9110, PATCH in RFC 5789, QUERY in RFC
/// 10008). Anything else gets Director's
/// `400 {"error": "Unsupported method KILL"}`; these get `405` where a
/// route does not take them.
fn is_http_method(method: &str) -> bool {
    matches!(
        method,
        "GET"
            | "HEAD"
            | "POST"
            | "PUT"
            | "PATCH"
            | "DELETE"
            | "OPTIONS"
            | "TRACE"
            | "CONNECT"
            | "QUERY"
    )
}

/// The layer that runs the checks in their order, then the router, then
/// gives the router's own 404 and 405 a JSON body. Authentication comes
/// before every other check that can answer 4xx, so a request without
/// credentials always gets 401.
///
/// Hand-written rather than `from_fn`: a request that needs no user (a
/// waiting long poll) carries only the router's future and its method,
/// with no allocation of the layer's own; authentication, which can wait
/// for a password hash, is boxed on the requests that need it.
#[derive(Clone)]
pub struct ChecksLayer(pub AppState);

impl<S> tower::Layer<S> for ChecksLayer {
    type Service = Checks<S>;

    fn layer(&self, inner: S) -> Checks<S> {
        Checks {
            inner,
            state: self.0.clone(),
        }
    }
}

/// See [`ChecksLayer`].
#[derive(Clone)]
pub struct Checks<S> {
    inner: S,
    state: AppState,
}

type Authenticating = Pin<Box<dyn Future<Output = Result<Request, Response>> + Send>>;

impl<S> tower::Service<Request> for Checks<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Checked<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Checked<S> {
        // The service made ready is the one called; a clone waits for the
        // next request (tower's rule for services called later).
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        if wants_user(&self.state, &req) {
            let state = self.state.clone();
            return Checked::Authenticating {
                auth: Box::pin(async move { authenticate(&state, req).await }),
                inner: Some(inner),
            };
        }
        Checked::route(inner, req)
    }
}

pin_project! {
    /// A request going through [`Checks`].
    #[project = CheckedProj]
    pub enum Checked<S: tower::Service<Request>> {
        Authenticating { auth: Authenticating, inner: Option<S> },
        Routed { #[pin] future: S::Future, method: Method },
        Answered { response: Option<Response> },
    }
}

impl<S: tower::Service<Request, Response = Response>> Checked<S> {
    /// The checks after authentication; the router when they pass.
    fn route(mut inner: S, mut req: Request) -> Self {
        match checks_before_routing(&mut req) {
            Ok(()) => Checked::Routed {
                method: req.method().clone(),
                future: inner.call(req),
            },
            Err(refused) => Checked::Answered {
                response: Some(refused.into_response()),
            },
        }
    }
}

impl<S> Future for Checked<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                CheckedProj::Authenticating { auth, inner } => match ready!(auth.as_mut().poll(cx))
                {
                    Ok(req) => {
                        let Some(inner) = inner.take() else {
                            panic!("`Checked` polled after it called the router");
                        };
                        Checked::route(inner, req)
                    }
                    Err(refused) => Checked::Answered {
                        response: Some(refused),
                    },
                },
                CheckedProj::Routed { future, method } => {
                    let Ok(response) = ready!(future.poll(cx));
                    return Poll::Ready(Ok(with_json_error(method, response)));
                }
                CheckedProj::Answered { response } => {
                    let Some(response) = response.take() else {
                        panic!("`Checked` polled after it answered");
                    };
                    return Poll::Ready(Ok(response));
                }
            };
            self.set(next);
        }
    }
}

/// The checks between authentication and routing: method rules, the
/// cross-site guard, content negotiation.
fn checks_before_routing(req: &mut Request) -> Result<(), ApiError> {
    method_rules(req)?;
    if let Some(reason) = cross_site(req.headers()) {
        return Err(ApiError::Forbidden(reason.into()));
    }
    // The console (whose requests authentication gave a console session)
    // answers HTML, and its script's JSON, whatever the Accept.
    let console = req
        .extensions()
        .get::<crate::console::csrf::Session>()
        .is_some();
    if !console && !accepts_json(req.uri().path(), req.headers()) {
        return Err(ApiError::NotAcceptable(
            "Only application/json is available".into(),
        ));
    }
    Ok(())
}

/// Refuses unknown methods and applies `X-HTTP-Method-Override`, honoured
/// when it names the request's own method or the request is a POST.
fn method_rules(req: &mut Request) -> Result<(), ApiError> {
    if !is_http_method(req.method().as_str()) {
        return Err(unsupported(req.method().as_str()));
    }
    if let Some(value) = req.headers().get(OVERRIDE) {
        let Ok(wanted) = value.to_str().map(|v| v.trim().to_ascii_uppercase()) else {
            return Err(ApiError::BadRequest(
                "Invalid X-HTTP-Method-Override header".into(),
            ));
        };
        if wanted != req.method().as_str() {
            if req.method() != Method::POST {
                return Err(ApiError::BadRequest(format!(
                    "X-HTTP-Method-Override is only honoured on POST, not on {}",
                    req.method()
                )));
            }
            if !is_http_method(&wanted) {
                return Err(unsupported(&wanted));
            }
            match Method::from_bytes(wanted.as_bytes()) {
                Ok(method) => *req.method_mut() = method,
                Err(_) => return Err(unsupported(&wanted)),
            }
        }
    }
    Ok(())
}

fn unsupported(method: &str) -> ApiError {
    let shown: String = method.chars().take(32).collect();
    ApiError::BadRequest(format!("Unsupported method {shown}"))
}

/// Whether the answer at `path` suits the request's `Accept`: JSON always
/// does; at `/metrics` (served at the root whatever the base path), so does
/// Prometheus' text format, which scrapers ask for as `text/plain` or
/// OpenMetrics, often without a wildcard.
fn accepts_json(path: &str, headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    // Parameters, `q` values included, are ignored: Director clients send
    // `application/json` with whatever parameters their library adds, and
    // expect JSON whatever they are (Director itself matched only the bare
    // string, and sent anything else to its login page).
    values.iter().flat_map(|v| v.split(',')).any(|item| {
        let media = item.split(';').next().unwrap_or("").trim();
        let acceptable = |types: &[&str]| types.iter().any(|t| media.eq_ignore_ascii_case(t));
        acceptable(&["", "*/*", "application/*", "application/json"])
            || (path == METRICS
                && acceptable(&["text/plain", "text/*", "application/openmetrics-text"]))
    })
}

/// Why a request is one a browser makes from another site, which would
/// carry cached Basic credentials (`403`).
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return Some("Cross-site requests are refused");
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    (!origin_host.eq_ignore_ascii_case(host)).then_some("Requests from another origin are refused")
}

/// Gives the router's own empty 404 and 405 answers a JSON error body.
fn with_json_error(method: &Method, response: Response) -> Response {
    let status = response.status();
    // JSON already, or a console page.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if is_json || !(status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let message = if status == StatusCode::NOT_FOUND {
        "Not found".to_owned()
    } else {
        format!("Method {method} is not allowed here")
    };
    let fresh = ApiError::NotFound(message).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        fresh_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(header::HeaderValue::from_static("application/json")),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: header::HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn accept_lists_containing_json_are_served() {
        assert!(accepts_json("/director/hosts", &HeaderMap::new()));
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "*/*",
            "text/html, application/*;q=0.1",
        ] {
            assert!(
                accepts_json("/director/hosts", &with(header::ACCEPT, ok)),
                "{ok}"
            );
        }
        assert!(!accepts_json(
            "/director/hosts",
            &with(header::ACCEPT, "text/html, text/plain")
        ));
    }

    #[test]
    fn metrics_also_accept_the_text_formats_scrapers_ask_for() {
        for ok in [
            "text/plain",
            "text/plain;version=0.0.4;q=0.3",
            "application/openmetrics-text; version=1.0.0",
            "application/vnd.google.protobuf;q=0.7,text/plain;version=0.0.4;q=0.3",
        ] {
            assert!(accepts_json("/metrics", &with(header::ACCEPT, ok)), "{ok}");
            assert!(!accepts_json("/health", &with(header::ACCEPT, ok)), "{ok}");
        }
        assert!(!accepts_json(
            "/metrics",
            &with(header::ACCEPT, "text/html")
        ));
    }

    #[test]
    fn parameters_and_q_values_never_refuse_json() {
        for ok in [
            "application/json;q=0",
            "application/json; q=0.0",
            "application/json;q=0.5",
            "application/json; charset=utf-8; q=0",
            "text/html, */*;q=0",
        ] {
            assert!(
                accepts_json("/director/hosts", &with(header::ACCEPT, ok)),
                "{ok}"
            );
        }
    }

    #[test]
    fn a_foreign_origin_is_cross_site() {
        let mut h = with(header::ORIGIN, "https://evil.example");
        h.insert(header::HOST, HeaderValue::from_static("steward:7440"));
        assert!(cross_site(&h).is_some());
        let mut same = with(header::ORIGIN, "http://steward:7440");
        same.insert(header::HOST, HeaderValue::from_static("steward:7440"));
        assert!(cross_site(&same).is_none());
        assert!(
            cross_site(&with(
                HeaderName::from_static("sec-fetch-site"),
                "cross-site"
            ))
            .is_some()
        );
        assert!(
            cross_site(&with(
                HeaderName::from_static("sec-fetch-site"),
                "same-origin"
            ))
            .is_none()
        );
    }

    use axum::http::HeaderName;
}
