//! A pull farm for benchmarks: one process that registers many nodes with a
//! Steward server (self-service, as `steward-agent register --pull` does)
//! and keeps one long poll open for each, as `steward-agent pull` does:
//! `If-None-Match` with the ETag held, every new allowlist checked like the
//! agent checks it (signature by the pinned key, host id, serial, names and
//! commands) and kept in memory; after an error or a busy answer it backs
//! off with jitter and honours `Retry-After`.
//!
//! ```text
//! cargo run --release --example pull_farm -- \
//!     --server http://127.0.0.1:7440 --key TEMPLATE_KEY --count 10000 \
//!     --control 127.0.0.1:19998 [--wait 60] [--delivery pull]
//! ```
//!
//! Prints `ready N` once every node is registered and its first poll was
//! answered. `GET /stats?since=UNIX_MS` on the control address answers the
//! counts, what the nodes hold (serial: nodes), and how many nodes were
//! answered and accepted an allowlist at or after `since`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Json;
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use steward_agent::client::pull_delay;
use steward_agent::holding::{self, Held, Pinned, Verdict};
use tokio::sync::Mutex;

struct Args {
    server: String,
    key: String,
    count: usize,
    control: SocketAddr,
    prefix: String,
    wait: u64,
    delivery: String,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        server: String::new(),
        key: String::new(),
        count: 100,
        control: SocketAddr::from(([127, 0, 0, 1], 19998)),
        prefix: "puller".into(),
        wait: 60,
        delivery: "pull".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => a.server = value.trim_end_matches('/').to_owned(),
            "--key" => a.key = value,
            "--count" => a.count = value.parse().map_err(|e| format!("--count: {e}"))?,
            "--control" => a.control = value.parse().map_err(|e| format!("--control: {e}"))?,
            "--prefix" => a.prefix = value,
            "--wait" => a.wait = value.parse().map_err(|e| format!("--wait: {e}"))?,
            "--delivery" => a.delivery = value,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.server.is_empty() || a.key.is_empty() {
        return Err("--server and --key are required".into());
    }
    Ok(a)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What the farm counts over all nodes.
#[derive(Default)]
struct Stats {
    polls: AtomicU64,
    accepted: AtomicU64,
    not_modified: AtomicU64,
    none_yet: AtomicU64,
    refused: AtomicU64,
    connection_errors: AtomicU64,
    busy_with_retry_after: AtomicU64,
    status_5xx_other: AtomicU64,
    status_other: AtomicU64,
}

/// One node: what it holds, and when it was last answered and last accepted.
struct Node {
    host_key: String,
    pinned: Pinned,
    held: Mutex<(Option<Held>, Option<String>)>,
    serial: AtomicI64,
    answered_at: AtomicU64,
    accepted_at: AtomicU64,
}

/// Sends one request, retrying busy answers (429/503, honouring
/// `Retry-After`) and connection errors a while.
async fn send_retrying(
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let mut failures = 0u32;
    loop {
        let retry_after = match build().send().await {
            Ok(r) if r.status() == 429 || r.status() == 503 => r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs),
            Ok(r) => return Ok(r),
            Err(e) if failures > 20 => return Err(e.to_string()),
            Err(_) => None,
        };
        tokio::time::sleep(pull_delay(retry_after, failures.min(3), rand::random())).await;
        failures += 1;
    }
}

/// Registers node `i`: its key and pinned server key.
async fn register(http: &reqwest::Client, a: &Args, i: usize) -> Result<Node, String> {
    let name = format!("{}-{i:05}.example", a.prefix);
    let mut body = json!({"address": "127.0.0.1"});
    if !a.delivery.is_empty() {
        body["delivery"] = json!(a.delivery);
    }
    let url = format!("{}/director/self-service/register-host", a.server);
    let response = send_retrying(|| {
        http.post(&url)
            .query(&[("name", &name)])
            .bearer_auth(&a.key)
            .json(&body)
    })
    .await?;
    if !response.status().is_success() {
        return Err(format!(
            "{name}: register-host answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        ));
    }
    let host_key: String = response.json().await.map_err(|e| format!("{name}: {e}"))?;
    let url = format!("{}/director/self-service/agent-config", a.server);
    let config: Value = send_retrying(|| http.get(&url).bearer_auth(&host_key))
        .await?
        .json()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let state = steward_agent::state::State {
        server: a.server.clone(),
        host: name.clone(),
        host_id: config["host_id"]
            .as_i64()
            .ok_or(format!("{name}: no host_id"))?,
        host_key: String::new(),
        server_public_key: config["signing_key"]["public_key"]
            .as_str()
            .ok_or(format!("{name}: no signing key"))?
            .to_owned(),
        server_fingerprint: String::new(),
        agent_port: 9,
        registered_at: String::new(),
        next_server_key: None,
        serial_floor: None,
        registered_as: None,
    };
    Ok(Node {
        host_key,
        pinned: Pinned::from_state(&state)?,
        held: Mutex::new((None, None)),
        serial: AtomicI64::new(0),
        answered_at: AtomicU64::new(0),
        accepted_at: AtomicU64::new(0),
    })
}

/// One long poll of up to `wait` seconds; after an error or a busy answer,
/// the backoff (or the server's `Retry-After`) before the next.
async fn poll(
    http: &reqwest::Client,
    a: &Args,
    node: &Node,
    stats: &Stats,
    failures: &mut u32,
    wait: u64,
) {
    let etag = node.held.lock().await.1.clone();
    let mut request = http
        .get(format!("{}/director/self-service/allowlist", a.server))
        .query(&[("wait", wait)])
        .timeout(Duration::from_secs(wait + 30))
        .bearer_auth(&node.host_key)
        .header("accept", "application/json");
    if let Some(etag) = &etag {
        request = request.header("if-none-match", etag);
    }
    let delay = match request.send().await {
        Err(_) => {
            stats.connection_errors.fetch_add(1, Ordering::Relaxed);
            Some(pull_delay(None, *failures, rand::random()))
        }
        Ok(response) => {
            stats.polls.fetch_add(1, Ordering::Relaxed);
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs);
            let new_etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response.bytes().await.unwrap_or_default();
            match status {
                200 => {
                    node.answered_at.store(now_ms(), Ordering::Relaxed);
                    let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let mut held = node.held.lock().await;
                    match holding::assess(&document, &node.pinned, held.0.as_ref(), &[]) {
                        Ok(Verdict::Accept(new)) => {
                            stats.accepted.fetch_add(1, Ordering::Relaxed);
                            node.serial.store(new.serial, Ordering::Relaxed);
                            node.accepted_at.store(now_ms(), Ordering::Relaxed);
                            held.0 = Some(*new);
                        }
                        Ok(Verdict::Unchanged) => {
                            stats.not_modified.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            stats.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    held.1 = new_etag;
                    None
                }
                304 => {
                    node.answered_at.store(now_ms(), Ordering::Relaxed);
                    stats.not_modified.fetch_add(1, Ordering::Relaxed);
                    None
                }
                404 => {
                    node.answered_at.store(now_ms(), Ordering::Relaxed);
                    stats.none_yet.fetch_add(1, Ordering::Relaxed);
                    (wait == 0 && a.wait == 0).then(|| Duration::from_secs(1))
                }
                503 if retry_after.is_some() => {
                    stats.busy_with_retry_after.fetch_add(1, Ordering::Relaxed);
                    Some(pull_delay(retry_after, *failures, rand::random()))
                }
                429 => {
                    stats.busy_with_retry_after.fetch_add(1, Ordering::Relaxed);
                    Some(pull_delay(retry_after, *failures, rand::random()))
                }
                s if s >= 500 => {
                    stats.status_5xx_other.fetch_add(1, Ordering::Relaxed);
                    Some(pull_delay(None, *failures, rand::random()))
                }
                _ => {
                    stats.status_other.fetch_add(1, Ordering::Relaxed);
                    Some(pull_delay(None, *failures, rand::random()))
                }
            }
        }
    };
    match delay {
        Some(delay) => {
            *failures = failures.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
        None => *failures = 0,
    }
}

fn stats_json(stats: &Stats, nodes: &[Arc<Node>], since: Option<u64>) -> Value {
    let mut holding: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut answered, mut accepted, mut last_accept, mut last_accept_since) = (0, 0, 0, 0);
    let mut first_accept_since = u64::MAX;
    for node in nodes {
        *holding
            .entry(node.serial.load(Ordering::Relaxed))
            .or_default() += 1;
        let at = node.accepted_at.load(Ordering::Relaxed);
        last_accept = last_accept.max(at);
        if let Some(since) = since {
            if node.answered_at.load(Ordering::Relaxed) >= since {
                answered += 1;
            }
            if at >= since {
                accepted += 1;
                last_accept_since = last_accept_since.max(at);
                first_accept_since = first_accept_since.min(at);
            }
        }
    }
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    json!({
        "nodes": nodes.len(),
        "polls": n(&stats.polls),
        "accepted": n(&stats.accepted),
        "not_modified": n(&stats.not_modified),
        "none_yet": n(&stats.none_yet),
        "refused": n(&stats.refused),
        "errors": {
            "connection": n(&stats.connection_errors),
            "503_retry_after": n(&stats.busy_with_retry_after),
            "5xx_without_retry_after": n(&stats.status_5xx_other),
            "other_status": n(&stats.status_other),
        },
        "holding": holding.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "last_accept_unix_ms": last_accept,
        "answered_since": answered,
        "accepted_since": accepted,
        "last_accept_since_unix_ms": last_accept_since,
        "first_accept_since_unix_ms": (accepted > 0).then_some(first_accept_since),
    })
}

/// What the control endpoint reads.
type Shared = (Arc<Stats>, Arc<Vec<Arc<Node>>>);

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = Arc::new(args()?);
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let registered: Vec<Result<Node, String>> = futures::stream::iter(0..a.count)
        .map(|i| register(&http, &a, i))
        .buffer_unordered(64)
        .collect()
        .await;
    let nodes: Vec<Arc<Node>> = registered
        .into_iter()
        .map(|r| r.map(Arc::new))
        .collect::<Result<_, _>>()?;
    eprintln!(
        "{} nodes registered in {:.1} s",
        nodes.len(),
        started.elapsed().as_secs_f64()
    );
    let stats = Arc::new(Stats::default());
    let (first, mut answered) = tokio::sync::mpsc::channel::<()>(nodes.len().max(1));
    for node in &nodes {
        let (http, a, node, stats, first) = (
            http.clone(),
            a.clone(),
            node.clone(),
            stats.clone(),
            first.clone(),
        );
        tokio::spawn(async move {
            let mut failures = 0;
            let mut first = Some(first);
            loop {
                // The first poll asks without waiting: `ready` means every
                // node got an answer.
                let wait = if first.is_some() { 0 } else { a.wait };
                poll(&http, &a, &node, &stats, &mut failures, wait).await;
                if node.answered_at.load(Ordering::Relaxed) > 0
                    && let Some(first) = first.take()
                {
                    let _ = first.send(()).await;
                }
            }
        });
    }
    drop(first);
    for _ in 0..nodes.len() {
        answered.recv().await;
    }
    let control = tokio::net::TcpListener::bind(a.control)
        .await
        .map_err(|e| format!("{}: {e}", a.control))?;
    let shared: Shared = (stats, Arc::new(nodes));
    let app = Router::new()
        .route(
            "/stats",
            get(
                |State((stats, nodes)): State<Shared>,
                 Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    let since = q.get("since").and_then(|s| s.parse().ok());
                    Json(stats_json(&stats, &nodes, since))
                },
            ),
        )
        .with_state(shared.clone());
    println!("ready {}", shared.1.len());
    axum::serve(control, app).await.map_err(|e| e.to_string())
}
