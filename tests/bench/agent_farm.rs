//! An agent farm for benchmarks: one process that registers many nodes with
//! a Steward server (self-service, as `steward-agent register` does) and
//! serves an agent endpoint for each on its own loopback port, checking
//! every pushed allowlist as `steward-agent serve` does (signature by the
//! pinned key, host id, serial, names and commands) but keeping it in
//! memory instead of on disk.
//!
//! ```text
//! cargo run --release --example agent_farm -- \
//!     --server http://127.0.0.1:7440 --key TEMPLATE_KEY --count 10000 \
//!     --first-port 20000 --control 127.0.0.1:19999
//! ```
//!
//! Prints `ready N` once every node is registered and listening.
//! `GET /stats` on the control address answers the pushes received,
//! accepted (new allowlists), unchanged and refused.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, put};
use futures::StreamExt;
use serde_json::{Value, json};
use steward_agent::holding::{self, Held, Pinned, Verdict};
use tokio::sync::Mutex;

#[derive(Default)]
struct Stats {
    pushes: AtomicU64,
    accepted: AtomicU64,
    unchanged: AtomicU64,
    refused: AtomicU64,
}

struct Node {
    pinned: Pinned,
    held: Mutex<Option<Held>>,
    stats: Arc<Stats>,
}

struct Args {
    server: String,
    key: String,
    count: usize,
    first_port: u16,
    control: SocketAddr,
    prefix: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        server: String::new(),
        key: String::new(),
        count: 100,
        first_port: 20000,
        control: SocketAddr::from(([127, 0, 0, 1], 19999)),
        prefix: "farm".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => a.server = value.trim_end_matches('/').to_owned(),
            "--key" => a.key = value,
            "--count" => a.count = value.parse().map_err(|e| format!("--count: {e}"))?,
            "--first-port" => {
                a.first_port = value.parse().map_err(|e| format!("--first-port: {e}"))?
            }
            "--control" => a.control = value.parse().map_err(|e| format!("--control: {e}"))?,
            "--prefix" => a.prefix = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.server.is_empty() || a.key.is_empty() {
        return Err("--server and --key are required".into());
    }
    Ok(a)
}

/// Registers node `i`: its host id and the server's public key.
async fn register(
    http: &reqwest::Client,
    a: &Args,
    i: usize,
) -> Result<(String, u16, i64, String), String> {
    let name = format!("{}-{i:05}.example", a.prefix);
    let port = a.first_port + u16::try_from(i).map_err(|e| e.to_string())?;
    let response = http
        .post(format!("{}/director/self-service/register-host", a.server))
        .query(&[("name", &name)])
        .bearer_auth(&a.key)
        .json(&json!({"address": "127.0.0.1", "agent_port": port}))
        .send()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "{name}: register-host answered {}",
            response.status()
        ));
    }
    let host_key: String = response.json().await.map_err(|e| format!("{name}: {e}"))?;
    let config: Value = http
        .get(format!("{}/director/self-service/agent-config", a.server))
        .bearer_auth(&host_key)
        .send()
        .await
        .map_err(|e| format!("{name}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let host_id = config["host_id"]
        .as_i64()
        .ok_or(format!("{name}: no host_id"))?;
    let public_key = config["signing_key"]["public_key"]
        .as_str()
        .ok_or(format!("{name}: no signing key"))?
        .to_owned();
    Ok((name, port, host_id, public_key))
}

async fn push(State(node): State<Arc<Node>>, body: axum::body::Bytes) -> Response {
    node.stats.pushes.fetch_add(1, Ordering::Relaxed);
    let Ok(document) = serde_json::from_slice::<Value>(&body) else {
        node.stats.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "not JSON"}))).into_response();
    };
    let mut held = node.held.lock().await;
    match holding::assess(&document, &node.pinned, held.as_ref(), &[]) {
        Err(refusal) => {
            node.stats.refused.fetch_add(1, Ordering::Relaxed);
            let status = steward_agent::serve::refusal_status(refusal.kind);
            (status, Json(json!({"error": refusal.message}))).into_response()
        }
        Ok(Verdict::Unchanged) => {
            node.stats.unchanged.fetch_add(1, Ordering::Relaxed);
            let h = held.as_ref();
            Json(json!({"checksum": h.map(|h| &h.checksum), "serial": h.map(|h| h.serial), "unchanged": true}))
                .into_response()
        }
        Ok(Verdict::Accept(new)) => {
            node.stats.accepted.fetch_add(1, Ordering::Relaxed);
            let body = json!({"checksum": new.checksum, "serial": new.serial});
            *held = Some(*new);
            Json(body).into_response()
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = args()?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let registered: Vec<Result<_, String>> = futures::stream::iter(0..a.count)
        .map(|i| register(&http, &a, i))
        .buffer_unordered(32)
        .collect()
        .await;
    let stats = Arc::new(Stats::default());
    let mut nodes = 0usize;
    for r in registered {
        let (name, port, host_id, public_key) = r?;
        let state = steward_agent::state::State {
            server: a.server.clone(),
            host: name,
            host_id,
            host_key: String::new(),
            server_public_key: public_key,
            server_fingerprint: String::new(),
            agent_port: port,
            registered_at: String::new(),
            next_server_key: None,
            serial_floor: None,
            registered_as: None,
        };
        let node = Arc::new(Node {
            pinned: Pinned::from_state(&state)?,
            held: Mutex::new(None),
            stats: stats.clone(),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("port {port}: {e}"))?;
        let app = Router::new()
            .route("/v1/allowlist", put(push))
            .with_state(node);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        nodes += 1;
    }
    let control = tokio::net::TcpListener::bind(a.control)
        .await
        .map_err(|e| format!("{}: {e}", a.control))?;
    let app = Router::new()
        .route(
            "/stats",
            get(|State(s): State<Arc<Stats>>| async move {
                Json(json!({
                    "pushes": s.pushes.load(Ordering::Relaxed),
                    "accepted": s.accepted.load(Ordering::Relaxed),
                    "unchanged": s.unchanged.load(Ordering::Relaxed),
                    "refused": s.refused.load(Ordering::Relaxed),
                }))
            }),
        )
        .with_state(stats);
    println!("ready {nodes}");
    axum::serve(control, app).await.map_err(|e| e.to_string())
}
