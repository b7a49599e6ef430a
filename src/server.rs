//! The HTTP server under the router: accepts connections (plain or TLS)
//! within a cap, and closes those that do nothing: headers that do not
//! arrive, keep-alive connections left idle, clients that stop reading.
//! A request in progress (a long poll, a deploy with `wait`) is never cut
//! by these timers; its own `wait` bounds it, and slow bodies are bounded
//! where they are read (`http::body`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The limits every connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time for a request's headers to arrive, counted from when the
    /// connection is ready for them: after it opens, and after each answer
    /// on a kept-alive connection (HTTP/1).
    pub header_timeout: Duration,
    /// A connection with no request in progress and no bytes moving for
    /// this long is closed (also a client that stopped reading an answer).
    pub idle_timeout: Duration,
    /// Connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `stop`
/// resolves; then accepts nothing more, lets the requests under way finish
/// and closes idle connections at once.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let (stopping_tx, stopping) = watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stopping_tx.send(true);
    });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut refused_warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = wait_for_stop(stopping.clone()) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (or another passing error): the
                // waiting connection stays in the backlog; try again soon
                // instead of spinning or stopping.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if refused_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "too many open connections: refusing new ones"
                );
                refused_warned = Some(Instant::now());
            }
            tokio::spawn(refuse(stream, acceptor.is_some()));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, stopping) = (app.clone(), stopping.clone());
        // Two kinds of task, so that a plain connection's task is not sized
        // for a TLS handshake and TLS stream it never holds (a long-polling
        // fleet keeps ten thousand of them).
        match acceptor.clone() {
            None => tokio::spawn(async move {
                let _permit = permit;
                connection(stream, Protocol::Http1, peer, app, limits, stopping).await;
            }),
            Some(acceptor) => tokio::spawn(async move {
                let _permit = permit;
                let handshake = acceptor.accept(stream);
                match tokio::time::timeout(limits.header_timeout, handshake).await {
                    Ok(Ok(stream)) => {
                        let protocol = match stream.get_ref().1.alpn_protocol() {
                            Some(b"h2") => Protocol::Http2,
                            _ => Protocol::Http1,
                        };
                        connection(stream, protocol, peer, app, limits, stopping).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }),
        };
    }
    // Stopped accepting: wait for the connections still open to finish
    // (each closes once idle, since it saw `stopping`).
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

async fn wait_for_stop(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// One connection beyond the cap: a short `503` on plain HTTP (a TLS
/// client gets the connection closed), without reading anything.
async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let body = "{\n  \"error\": \"Too many open connections: try again later\"\n}\n";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
        let _ = stream.shutdown().await;
    }
}

/// The HTTP version a connection speaks, chosen before hyper reads from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// Negotiated by ALPN on a TLS connection.
    Http2,
}

/// Serves one connection until the client closes it, a timer closes it,
/// or the server stops and it has nothing in progress.
///
/// The version is known before the first byte is read (plain connections
/// speak HTTP/1.1, TLS ones what ALPN chose), so hyper reads straight into
/// its own buffer. Sniffing the version from the first bytes instead
/// (hyper-util's `auto`) hands hyper those bytes first and makes its read
/// buffer grow to 16 KiB on every connection, which ten thousand waiting
/// agents pay for.
async fn connection<S>(
    stream: S,
    protocol: Protocol,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = detach_head(request);
            request.extensions_mut().insert(ConnectInfo(peer));
            let busy = Busy::enter(&activity);
            let answer = app.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = answer.await;
                drop(busy);
                response
            }
        }
    });
    match protocol {
        Protocol::Http1 => {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(io, service);
            drive(
                served,
                |c| c.graceful_shutdown(),
                &activity,
                limits,
                stopping,
            )
            .await;
        }
        Protocol::Http2 => {
            // Boxed, so that a plain connection's task is not sized for
            // HTTP/2's state.
            Box::pin(async move {
                let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(64)
                    .serve_connection(io, service);
                drive(
                    served,
                    |c| c.graceful_shutdown(),
                    &activity,
                    limits,
                    stopping,
                )
                .await;
            })
            .await;
        }
    }
}

/// Runs a connection's `served` future under the connection timers, and
/// shuts it down gracefully (through `graceful`) once the server stops.
async fn drive<F>(
    served: F,
    mut graceful: impl FnMut(Pin<&mut F>),
    activity: &Activity,
    limits: Limits,
    mut stopping: watch::Receiver<bool>,
) where
    F: Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(served);
    let mut closing = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(next_check(
                activity.idle_for(),
                (activity.requests() == 0).then(|| activity.age()),
                &limits,
            )) => {
                if activity.idle_for() >= limits.idle_timeout {
                    // Nothing in progress, nothing moving: an idle keep-alive
                    // connection, or a client that stopped reading.
                    return;
                }
                if activity.requests() == 0 && activity.age() >= limits.header_timeout {
                    // No first request within the header timeout of the
                    // connection opening: hyper's own header timer starts
                    // only once it has read the first bytes.
                    return;
                }
            }
            _ = stopping.changed(), if !closing => {
                closing = true;
                graceful(served.as_mut());
            }
        }
    }
}

/// The request with its target and header values copied out of hyper's
/// read buffer into one small allocation of their own.
///
/// hyper hands them out as slices of the connection's read buffer, and
/// while any of them lives the buffer cannot be reused: hyper allocates
/// another (8 KiB) for its next read. A long poll holds its request for
/// up to a minute, so ten thousand waiting agents would hold twenty
/// thousand buffers. Copied here, before hyper reads again, the buffer is
/// free at once. A part that cannot be copied (it always can) stays as it
/// was.
fn detach_head<B>(request: hyper::Request<B>) -> hyper::Request<B> {
    use std::fmt::Write as _;
    let (mut parts, body) = request.into_parts();
    let values: usize = parts.headers.values().map(|v| v.len()).sum();
    let mut copy = bytes::BytesMut::with_capacity(values + parts.uri.path().len() + 64);
    let _ = write!(copy, "{}", parts.uri);
    let target_len = copy.len();
    for value in parts.headers.values() {
        copy.extend_from_slice(value.as_bytes());
    }
    let copy = copy.freeze();
    if let Ok(uri) = axum::http::Uri::from_maybe_shared(copy.slice(..target_len)) {
        parts.uri = uri;
    }
    let mut at = target_len;
    for value in parts.headers.values_mut() {
        let end = at + value.len();
        if let Ok(mut fresh) = axum::http::HeaderValue::from_maybe_shared(copy.slice(at..end)) {
            fresh.set_sensitive(value.is_sensitive());
            *value = fresh;
        }
        at = end;
    }
    hyper::Request::from_parts(parts, body)
}

/// How long until a connection's timers are looked at again: when it
/// would have been idle for the idle timeout, or (`unasked_for`: open this
/// long without a request) reach the header timeout. Not periodic: ten
/// thousand waiting long polls cost a wake each per idle timeout, not
/// several a second.
fn next_check(idle_for: Duration, unasked_for: Option<Duration>, limits: &Limits) -> Duration {
    let idle = limits.idle_timeout.saturating_sub(idle_for);
    let header = unasked_for.map_or(Duration::MAX, |age| {
        limits.header_timeout.saturating_sub(age)
    });
    idle.min(header).max(Duration::from_millis(50))
}

/// When a connection last moved bytes, and how many of its requests are
/// being answered.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last read or write.
    last: AtomicU64,
    in_progress: AtomicUsize,
    /// Requests begun on this connection.
    requests: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_progress: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// How long the connection has been open.
    fn age(&self) -> Duration {
        self.start.elapsed()
    }

    fn in_progress(&self) -> usize {
        self.in_progress.load(Ordering::Relaxed)
    }

    /// How long nothing happened: zero while a request is being answered.
    fn idle_for(&self) -> Duration {
        if self.in_progress() > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A request being answered, for as long as its handler runs.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.in_progress.fetch_add(1, Ordering::Relaxed);
        activity.requests.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes in its [`Activity`] every read or write that moved
/// bytes.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's soft limit of open files to its hard limit, and
/// answers the limit now in force (`None` where it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// File descriptors kept for everything but client connections: the
/// database pool, the WAL files, pushes to agents, logs.
pub const RESERVED_FILES: u64 = 256;

/// The connection cap a server with `open_files` descriptors can hold:
/// `configured` when set, otherwise what the limit leaves after
/// [`RESERVED_FILES`] (at least 64).
pub fn connection_cap(configured: Option<usize>, open_files: Option<u64>) -> usize {
    if let Some(n) = configured {
        return n.max(1);
    }
    let files = open_files.unwrap_or(1024);
    usize::try_from(files.saturating_sub(RESERVED_FILES).max(64)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_head_keeps_the_request_as_it_was() {
        let request = hyper::Request::builder()
            .method("POST")
            .uri("/director/host?name=a%20b&x=1")
            .header("authorization", "Basic YWRtaW46cHc=")
            .header("accept", "application/json")
            .header("accept", "text/plain")
            .header("x-custom", "")
            .body(())
            .unwrap();
        let mut original = request.headers().clone();
        original
            .get_mut("authorization")
            .unwrap()
            .set_sensitive(true);
        let (mut parts, body) = request.into_parts();
        parts.headers = original.clone();
        let detached = detach_head(hyper::Request::from_parts(parts, body));
        assert_eq!(detached.method(), "POST");
        assert_eq!(detached.uri(), "/director/host?name=a%20b&x=1");
        assert_eq!(detached.headers(), &original);
        assert!(detached.headers()["authorization"].is_sensitive());
        let accepts: Vec<_> = detached.headers().get_all("accept").iter().collect();
        assert_eq!(accepts, ["application/json", "text/plain"]);

        // Built as hyper builds it: slices of one read buffer, which is
        // free again (only this test's handle left) once the head is
        // detached.
        let buffer =
            bytes::Bytes::from(b"/director/self-service/allowlist?wait=60 keyvalue".to_vec());
        let mut request =
            hyper::Request::get(axum::http::Uri::from_maybe_shared(buffer.slice(..40)).unwrap())
                .body(())
                .unwrap();
        request.headers_mut().insert(
            "x-key",
            axum::http::HeaderValue::from_maybe_shared(buffer.slice(41..)).unwrap(),
        );
        assert!(!buffer.is_unique());
        let detached = detach_head(request);
        assert!(buffer.is_unique(), "the read buffer is still borrowed");
        assert_eq!(detached.uri(), "/director/self-service/allowlist?wait=60");
        assert_eq!(detached.headers()["x-key"], "keyvalue");

        let absolute = hyper::Request::get("http://127.0.0.1:8080/health?x")
            .body(())
            .unwrap();
        assert_eq!(
            detach_head(absolute).uri(),
            "http://127.0.0.1:8080/health?x"
        );
    }

    #[test]
    fn the_cap_leaves_room_for_the_servers_own_files() {
        assert_eq!(connection_cap(None, Some(1024)), 768);
        assert_eq!(connection_cap(None, Some(65_536)), 65_280);
        assert_eq!(connection_cap(None, Some(100)), 64);
        assert_eq!(connection_cap(None, None), 768);
        assert_eq!(connection_cap(Some(5), Some(65_536)), 5);
        assert_eq!(connection_cap(Some(0), None), 1);
    }

    #[test]
    fn a_connection_is_looked_at_when_a_timer_would_end_not_periodically() {
        let limits = Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1,
        };
        let secs = Duration::from_secs;
        // A long poll in progress (idle for zero): once per idle timeout.
        assert_eq!(next_check(Duration::ZERO, None, &limits), secs(60));
        assert_eq!(next_check(secs(45), None, &limits), secs(15));
        // No request yet: the header timeout comes first.
        assert_eq!(next_check(secs(3), Some(secs(3)), &limits), secs(7));
        // Past a timer: soon, never in a spin.
        assert_eq!(
            next_check(secs(61), None, &limits),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn a_connection_is_idle_only_while_nothing_is_in_progress() {
        let activity = Arc::new(Activity::new());
        std::thread::sleep(Duration::from_millis(30));
        assert!(activity.idle_for() >= Duration::from_millis(30));
        let busy = Busy::enter(&activity);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(activity.idle_for(), Duration::ZERO);
        drop(busy);
        assert!(activity.idle_for() < Duration::from_millis(30));
    }
}
