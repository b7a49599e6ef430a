//! One log line and one metrics sample per request: method, route (the
//! route's path, never the query string, which may carry keys), status,
//! duration to the response head, request id.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::http::{HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;

use crate::router::route_paths;
use crate::state::AppState;

/// The label of a request's route: one of [`route_paths`] (under the base path
/// for Director routes), or `other` for anything else, so that a scan of
/// random paths cannot grow the metrics without bound.
pub fn route_label(path: &str, base: &str) -> &'static str {
    let under_base = |p: &str| p.starts_with("/director") || crate::console::is_console_path(p, "");
    let director = path.strip_prefix(base).filter(|rest| under_base(rest));
    let route = match director {
        Some(rest) => rest,
        // A Director or console path outside the base path.
        None if under_base(path) => return "other",
        None => path,
    };
    route_paths()
        .iter()
        .find(|known| *known == route)
        .map_or("other", String::as_str)
}

/// Logs and counts every request (the outermost layer but the request id).
///
/// A layer of its own rather than a `from_fn` middleware: its state rides
/// inline in the request's future, with no allocation of its own, which
/// ten thousand waiting long polls would each pay.
#[derive(Clone)]
pub struct ObserveLayer(pub AppState);

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.0.clone(),
        }
    }
}

/// See [`ObserveLayer`].
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Observe<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        Observed {
            started: Instant::now(),
            method: req.method().clone(),
            route: route_label(req.uri().path(), &self.state.config.base_path),
            request_id: req.headers().get("x-request-id").cloned(),
            state: self.state.clone(),
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// A request being answered, observed once its answer's head is ready.
    pub struct Observed<F> {
        #[pin]
        inner: F,
        started: Instant,
        method: Method,
        route: &'static str,
        request_id: Option<HeaderValue>,
        state: AppState,
    }
}

impl<F, ResBody, E> Future for Observed<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = ready!(this.inner.poll(cx));
        if let Ok(response) = &answered {
            let elapsed = this.started.elapsed();
            let status = response.status().as_u16();
            this.state
                .metrics
                .request(this.method.as_str(), this.route, status, elapsed);
            let request_id = this
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info!(
                target: "steward::request",
                method = %this.method,
                route = %this.route,
                status,
                duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                request_id = %request_id,
                "request"
            );
        }
        Poll::Ready(answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_labelled_by_their_path_and_anything_else_as_other() {
        assert_eq!(route_label("/director/host", ""), "/director/host");
        assert_eq!(route_label("/health", ""), "/health");
        assert_eq!(route_label("/director/nope", ""), "other");
        assert_eq!(route_label("/wp-login.php", ""), "other");
        assert_eq!(
            route_label("/icingaweb2/director/hosts", "/icingaweb2"),
            "/director/hosts"
        );
        assert_eq!(route_label("/metrics", "/icingaweb2"), "/metrics");
        assert_eq!(route_label("/director/hosts", "/icingaweb2"), "other");
    }

    #[test]
    fn console_pages_are_labelled_by_their_path_and_unknown_ones_as_other() {
        assert_eq!(route_label("/ui/", ""), "/ui/");
        assert_eq!(route_label("/ui/host", ""), "/ui/host");
        assert_eq!(
            route_label("/icingaweb2/ui/deployment/progress", "/icingaweb2"),
            "/ui/deployment/progress"
        );
        assert_eq!(route_label("/ui/nope", ""), "other");
        assert_eq!(route_label("/ui/host", "/icingaweb2"), "other");
    }
}
