//! `steward-agent serve`: the node's HTTP endpoint the server pushes signed
//! allowlists to.
//!
//! - `PUT /v1/allowlist`: checked by [`holding::assess`] (signature 403,
//!   host id 403, serial 409, content 422; nothing written on a refusal),
//!   then written atomically (`scripts.conf` first when configured, then the
//!   allowlist JSON), then the reload command is run; answers
//!   `{"checksum", "serial"}`, with `"reload"` when a reload command is set.
//! - `GET /v1/allowlist`: what the node holds, or 404.
//! - `GET /health`: `{"status": "ok"}`.
//!
//! Pushes are handled one at a time, each to its end even when the server
//! hangs up, so the files, the allowlist held in memory and the reload never
//! disagree.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};

use super::AgentError;
use super::holding::{self, Held, Pinned, RefusalKind, Verdict};
use super::state;
use crate::domain::kind::DEFAULT_AGENT_PORT;

/// The largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How long the reload command may run before it is killed.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this much of a failed reload command's stderr is reported.
const RELOAD_STDERR_KEPT: usize = 4096;

/// What `serve` was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen [default: `0.0.0.0` and the state's agent port].
    pub listen: Option<SocketAddr>,
    /// The state directory (pinned server key, host id).
    pub state_dir: PathBuf,
    /// The allowlist file [default: `STATE_DIR/allowlist.json`].
    pub allowlist: Option<PathBuf>,
    /// Where to write ctrl-exec's `scripts.conf`, if anywhere.
    pub scripts_conf: Option<PathBuf>,
    /// The directories every command must lie in (none: anywhere).
    pub allowed_dirs: Vec<PathBuf>,
    /// A shell command run after each new allowlist is written.
    pub reload_command: Option<String>,
}

/// The running agent: its configuration and the allowlist it holds.
#[derive(Debug)]
pub struct Agent {
    /// The server keys trusted (they change during a key rotation).
    pinned: RwLock<Pinned>,
    state_dir: PathBuf,
    listen: SocketAddr,
    allowlist_path: PathBuf,
    scripts_conf: Option<PathBuf>,
    allowed_dirs: Vec<PathBuf>,
    reload_command: Option<String>,
    reload_timeout: Duration,
    held: RwLock<Option<Arc<Held>>>,
    /// Held by the push being handled, so pushes run one at a time.
    writing: Mutex<()>,
}

impl Agent {
    /// Reads the state (exit 2 without one), checks the options and loads
    /// the allowlist held on disk. A held file that fails its checks (a
    /// tampered file, another host's) is ignored with a warning: the agent
    /// then holds nothing.
    pub fn new(options: ServeOptions) -> Result<Self, AgentError> {
        let dir = &options.state_dir;
        let state = state::load(dir)?.ok_or_else(|| {
            AgentError::Usage(format!(
                "no state in {}: register this node first (steward-agent register), serve needs the pinned server key and host id",
                dir.display()
            ))
        })?;
        let pinned = Pinned::from_state(&state)
            .map_err(|e| AgentError::State(format!("{}: {e}", state::state_path(dir).display())))?;
        for allowed in &options.allowed_dirs {
            holding::check_allowed_dir(allowed).map_err(AgentError::Usage)?;
        }
        if options
            .reload_command
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(AgentError::Usage("--reload-command is empty".into()));
        }
        let port = match state.agent_port {
            0 => u16::try_from(DEFAULT_AGENT_PORT).unwrap_or(7446),
            port => port,
        };
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
        let allowlist_path = options
            .allowlist
            .unwrap_or_else(|| holding::default_path(dir));
        let held = match holding::load(&allowlist_path, &pinned, &options.allowed_dirs) {
            Ok(Some(held)) => {
                tracing::info!(
                    serial = held.serial,
                    checksum = %held.checksum,
                    scripts = held.allowlist.scripts.len(),
                    "holding the allowlist in {}",
                    allowlist_path.display()
                );
                Some(Arc::new(held))
            }
            Ok(None) => {
                tracing::info!("no allowlist held yet ({})", allowlist_path.display());
                None
            }
            Err(reason) => {
                tracing::warn!("ignoring the allowlist file, holding nothing: {reason}");
                None
            }
        };
        Ok(Self {
            pinned: RwLock::new(pinned),
            state_dir: dir.clone(),
            listen,
            allowlist_path,
            scripts_conf: options.scripts_conf,
            allowed_dirs: options.allowed_dirs,
            reload_command: options.reload_command,
            reload_timeout: RELOAD_TIMEOUT,
            held: RwLock::new(held),
            writing: Mutex::new(()),
        })
    }

    /// The address the agent listens on.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The agent's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/allowlist", get(get_allowlist).put(put_allowlist))
            .route("/health", get(health))
            .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
            .method_not_allowed_fallback(|| async {
                error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            })
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self)
    }

    /// The allowlist held, if any.
    pub async fn held(&self) -> Option<Arc<Held>> {
        self.held.read().await.clone()
    }

    /// Checks a document the server sent and, if it passes, writes it,
    /// holds it and runs the reload command. One at a time.
    pub async fn receive(&self, document: Value) -> Received {
        let _writing = self.writing.lock().await;
        tracing::info!(
            serial = %document.get("serial").unwrap_or(&serde_json::Value::Null),
            "allowlist push received"
        );
        let held = self.held.read().await.clone();
        let pinned = self.pinned.read().await.clone();
        let received =
            match holding::assess(&document, &pinned, held.as_deref(), &self.allowed_dirs) {
                Err(refusal) => {
                    tracing::warn!("refused an allowlist: {}", refusal.message);
                    return Received::Refused(refusal);
                }
                Ok(Verdict::Unchanged) => Received::Unchanged(held),
                Ok(Verdict::Accept(new)) => self.write(Arc::new(*new)).await,
            };
        if !matches!(received, Received::NotKept(_))
            && let Some(keys) = holding::key_change(&document, &pinned)
        {
            self.follow_rotation(keys).await;
        }
        received
    }

    /// Trusts the keys of a rotation from now on, and keeps them in the
    /// state file.
    async fn follow_rotation(&self, keys: Pinned) {
        let promoted = keys.key != self.pinned.read().await.key;
        let dir = self.state_dir.clone();
        let to_save = keys.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let mut state = state::load(&dir)?
                .ok_or_else(|| AgentError::State("the state file is gone".into()))?;
            to_save.to_state(&mut state);
            state::save(&dir, &state)
        })
        .await
        .unwrap_or_else(|e| Err(AgentError::State(e.to_string())));
        match saved {
            Ok(_) if promoted => tracing::info!(
                fingerprint = %crate::domain::allowlist::fingerprint(&keys.key.to_bytes()),
                "the server's key rotated: trusting the new key only"
            ),
            Ok(_) => tracing::info!("the server announced its next key: trusting it too"),
            Err(e) => tracing::error!("cannot keep the server's new key: {e}"),
        }
        *self.pinned.write().await = keys;
    }

    /// Checks and, if it passes, writes a pushed document; the answer.
    async fn accept(self: Arc<Self>, document: Value) -> Response {
        match self.receive(document).await {
            Received::Refused(refusal) => error(refusal_status(refusal.kind), refusal.message),
            Received::Unchanged(held) => {
                let body = held
                    .map(|h| json!({"checksum": h.checksum, "serial": h.serial, "unchanged": true}))
                    .unwrap_or_else(|| json!({"unchanged": true}));
                (StatusCode::OK, Json(body)).into_response()
            }
            Received::NotKept(reason) => error(StatusCode::INTERNAL_SERVER_ERROR, reason),
            Received::Written { held, reload } => {
                let mut body = json!({"checksum": held.checksum, "serial": held.serial});
                if let Some(outcome) = reload {
                    body["reload"] = match outcome {
                        Ok(()) => json!("ok"),
                        Err(reason) => json!(format!("failed: {reason}")),
                    };
                }
                (StatusCode::OK, Json(body)).into_response()
            }
        }
    }

    /// Writes an accepted allowlist, holds it and runs the reload command.
    async fn write(&self, new: Arc<Held>) -> Received {
        let (to_store, path, conf) = (
            Arc::clone(&new),
            self.allowlist_path.clone(),
            self.scripts_conf.clone(),
        );
        let stored =
            tokio::task::spawn_blocking(move || holding::store(&to_store, &path, conf.as_deref()))
                .await
                .unwrap_or_else(|e| Err(format!("the write was interrupted: {e}")));
        if let Err(reason) = stored {
            tracing::error!("cannot keep the allowlist: {reason}");
            return Received::NotKept(reason);
        }
        *self.held.write().await = Some(Arc::clone(&new));
        tracing::info!(
            serial = new.serial,
            checksum = %new.checksum,
            scripts = new.allowlist.scripts.len(),
            "holding a new allowlist"
        );
        let mut reload = None;
        if let Some(command) = self.reload_command.clone() {
            let timeout = self.reload_timeout;
            let outcome = tokio::task::spawn_blocking(move || run_reload(&command, timeout))
                .await
                .unwrap_or_else(|e| Err(format!("interrupted: {e}")));
            if let Err(reason) = &outcome {
                tracing::warn!("the reload command failed: {reason}");
            }
            reload = Some(outcome);
        }
        Received::Written { held: new, reload }
    }
}

/// What became of a document the server sent.
#[derive(Debug)]
pub enum Received {
    /// It failed a check: nothing was written.
    Refused(holding::Refusal),
    /// It is the allowlist held already (same serial and checksum).
    Unchanged(Option<Arc<Held>>),
    /// It passed but could not be written.
    NotKept(String),
    /// It is held now; the reload command's outcome when one is set.
    Written {
        held: Arc<Held>,
        reload: Option<Result<(), String>>,
    },
}

/// Runs the agent until SIGTERM or SIGINT, then finishes the requests under
/// way and returns.
pub async fn serve(options: ServeOptions) -> Result<(), AgentError> {
    let agent = Arc::new(Agent::new(options)?);
    let listen = agent.listen();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| AgentError::Failed(format!("cannot listen on {listen}: {e}")))?;
    tracing::info!("listening on {listen}");
    axum::serve(listener, agent.router())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| AgentError::Failed(format!("the server stopped: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves at SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot wait for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot wait for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

async fn health() -> Response {
    (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
}

async fn get_allowlist(State(agent): State<Arc<Agent>>) -> Response {
    match agent.held.read().await.as_deref() {
        Some(held) => (StatusCode::OK, Json(held.summary())).into_response(),
        None => error(StatusCode::NOT_FOUND, "no allowlist"),
    }
}

async fn put_allowlist(
    State(agent): State<Arc<Agent>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    let document: Value = match serde_json::from_slice(&bytes) {
        Ok(document) => document,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            );
        }
    };
    // A task of its own: a server that hangs up does not cut a write or a
    // reload short.
    match tokio::spawn(agent.accept(document)).await {
        Ok(response) => response,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the push was interrupted: {e}"),
        ),
    }
}

/// The HTTP status of a refusal.
pub fn refusal_status(kind: RefusalKind) -> StatusCode {
    match kind {
        RefusalKind::Forbidden => StatusCode::FORBIDDEN,
        RefusalKind::Stale | RefusalKind::Conflict => StatusCode::CONFLICT,
        RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// Runs `command` with `sh -c` in a process group of its own, its stdin and
/// stdout null; kills the group after `timeout`. A failure is described
/// with the exit status and the end of its stderr. Blocking.
pub fn run_reload(command: &str, timeout: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let (sender, receiver) = std::sync::mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buffer[..n]);
                if kept.len() > RELOAD_STDERR_KEPT {
                    kept.drain(..kept.len() - RELOAD_STDERR_KEPT);
                }
            }
            let _ = sender.send(kept);
        });
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                // The whole group: `sh` and whatever it started.
                let _ = Command::new("sh")
                    .arg("-c")
                    .arg(format!("kill -KILL -- -{}", child.id()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs_f32()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    // A background process still holding stderr must not hold us up.
    let stderr = receiver
        .recv_timeout(Duration::from_millis(500))
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        Err(status.to_string())
    } else {
        Err(format!("{status}: {stderr}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_reload_that_succeeds_is_ok() {
        assert_eq!(run_reload("true", Duration::from_secs(5)), Ok(()));
    }

    #[test]
    fn a_failed_reload_reports_its_status_and_stderr() {
        let err = run_reload("echo boom >&2; exit 3", Duration::from_secs(5)).unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("boom"), "{err}");
    }

    #[test]
    fn a_reload_that_hangs_is_killed_with_its_children() {
        let started = Instant::now();
        let err = run_reload("sleep 30 & sleep 30", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn refusals_map_to_the_contracts_statuses() {
        assert_eq!(
            refusal_status(RefusalKind::Forbidden),
            StatusCode::FORBIDDEN
        );
        assert_eq!(refusal_status(RefusalKind::Stale), StatusCode::CONFLICT);
        assert_eq!(refusal_status(RefusalKind::Conflict), StatusCode::CONFLICT);
        assert_eq!(
            refusal_status(RefusalKind::Invalid),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
