//! The deployment runner: pushes each host's signed allowlist to its agent,
//! many at once, with timeouts and retries, recording every result. A
//! running deployment is resumed when the server starts again.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};

use crate::domain::activity::Entry;
use crate::store::deployments::{self, DeploymentHost};
use crate::store::{Store, activity, agents, now_millis};

/// Pushes in flight at once.
pub const CONCURRENCY: usize = 64;
/// Attempts per host before it counts as unreachable.
pub const ATTEMPTS: i32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one push came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: &'static str,
    pub error: Option<String>,
    pub attempts: i32,
}

/// The HTTP client for pushes: no proxies, no redirects, short timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap_or_default()
}

fn agent_url(address: &str, port: i32) -> String {
    if address.contains(':') {
        format!("http://[{address}]:{port}/v1/allowlist")
    } else {
        format!("http://{address}:{port}/v1/allowlist")
    }
}

/// Pushes one host's allowlist: `deployed` when the agent confirms the
/// checksum, `failed` with the agent's reason when it refuses (4xx),
/// `unreachable` when every attempt failed to connect or got a 5xx.
pub async fn push(client: &reqwest::Client, host: &DeploymentHost) -> Outcome {
    let Some(address) = host.address.as_deref().filter(|a| !a.is_empty()) else {
        return Outcome {
            result: "unreachable",
            error: Some("the host has no address".into()),
            attempts: 0,
        };
    };
    let url = agent_url(address, host.agent_port);
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .put(&url)
            .header("content-type", "application/json")
            .body(host.allowlist.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                return if body["checksum"].as_str() == Some(host.checksum.as_str()) {
                    Outcome {
                        result: "deployed",
                        error: None,
                        attempts: attempt,
                    }
                } else {
                    Outcome {
                        result: "failed",
                        error: Some(format!(
                            "the agent confirmed another checksum: {}",
                            body["checksum"]
                        )),
                        attempts: attempt,
                    }
                };
            }
            Ok(response) if response.status().is_client_error() => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let reason = body["error"].as_str().unwrap_or("no reason given");
                return Outcome {
                    result: "failed",
                    error: Some(format!("{status}: {reason}")),
                    attempts: attempt,
                };
            }
            Ok(response) => {
                last_error = format!("the agent answered {}", response.status().as_u16())
            }
            Err(e) => {
                last_error = if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                }
            }
        }
        if attempt < ATTEMPTS {
            let base = 200u64 << (attempt - 1);
            let jitter = rand::thread_rng().gen_range(0..=base / 2);
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
    }
    Outcome {
        result: "unreachable",
        error: Some(last_error),
        attempts: ATTEMPTS,
    }
}

/// The final status from the per-host results.
pub fn final_status(results: &[&str]) -> &'static str {
    let good = results
        .iter()
        .filter(|r| matches!(**r, "deployed" | "skipped"))
        .count();
    if good == results.len() {
        "succeeded"
    } else if good == 0 {
        "failed"
    } else {
        "partial"
    }
}

async fn cancelled(store: &Store, id: i64) -> bool {
    matches!(deployments::get(store.db(), id).await, Ok(Some(d)) if d.status == "cancelled")
}

/// Runs (or resumes) deployment `id`: every host still pending is pushed or
/// skipped; then the deployment gets its final status.
pub async fn run(store: Arc<Store>, id: i64) {
    if let Err(e) = run_inner(&store, id).await {
        tracing::error!(deployment = id, error = %e, "deployment runner failed");
    }
}

async fn run_inner(store: &Arc<Store>, id: i64) -> Result<(), sea_orm::DbErr> {
    let Some(deployment) = deployments::get(store.db(), id).await? else {
        return Ok(());
    };
    if deployment.status != "running" {
        return Ok(());
    }
    let states = agents::all(store.db()).await?;
    let pending: Vec<DeploymentHost> = deployments::hosts(store.db(), id)
        .await?
        .into_iter()
        .filter(|h| h.result == "pending")
        .collect();
    let client = client();
    futures::stream::iter(pending)
        .for_each_concurrent(CONCURRENCY, |host| {
            let (client, store, states) = (&client, store.clone(), &states);
            async move {
                if cancelled(&store, id).await {
                    return;
                }
                let confirmed = states.get(&host.host_id).and_then(|s| s.confirmed_checksum.as_deref());
                let outcome = if !deployment.force && confirmed == Some(host.checksum.as_str()) {
                    Outcome { result: "skipped", error: None, attempts: 0 }
                } else {
                    push(client, &host).await
                };
                if let Err(e) = record(&store, id, &host, &outcome).await {
                    tracing::error!(deployment = id, host = %host.host_name, error = %e, "cannot record a push");
                }
            }
        })
        .await;
    let tx = store.begin_write().await?;
    let Some(current) = deployments::get(&tx.tx, id).await? else {
        return Ok(());
    };
    let hosts = deployments::hosts(&tx.tx, id).await?;
    let status = if current.status == "cancelled" {
        "cancelled"
    } else {
        final_status(&hosts.iter().map(|h| h.result.as_str()).collect::<Vec<_>>())
    };
    deployments::set_status(&tx.tx, id, status).await?;
    let count = |r: &str| hosts.iter().filter(|h| h.result == r).count();
    let entry = Entry {
        at: now_millis(),
        author: current.author.clone(),
        action: "deploy-end".into(),
        object_type: "deployment".into(),
        object_name: id.to_string(),
        before: None,
        after: Some(json!({
            "checksum": current.checksum,
            "status": status,
            "deployed": count("deployed"),
            "skipped": count("skipped"),
            "failed": count("failed"),
            "unreachable": count("unreachable"),
        })),
        request_id: current.request_id.clone(),
    };
    activity::append(&tx.tx, &entry).await?;
    tx.commit().await
}

async fn record(
    store: &Store,
    id: i64,
    host: &DeploymentHost,
    outcome: &Outcome,
) -> Result<(), sea_orm::DbErr> {
    let tx = store.begin_write().await?;
    deployments::set_result(
        &tx.tx,
        id,
        host.host_id,
        outcome.result,
        outcome.error.clone(),
        outcome.attempts,
    )
    .await?;
    if outcome.result == "deployed" {
        deployments::confirm_issued(&tx.tx, host).await?;
    }
    tx.commit().await
}

/// Resumes every deployment a stop or crash left running.
pub async fn resume(store: Arc<Store>) {
    match deployments::running(store.db()).await {
        Ok(Some(d)) => {
            tracing::info!(deployment = d.id, "resuming an interrupted deployment");
            tokio::spawn(run(store, d.id));
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot look for interrupted deployments"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_status_follows_the_results() {
        assert_eq!(final_status(&["deployed", "skipped"]), "succeeded");
        assert_eq!(final_status(&[]), "succeeded");
        assert_eq!(final_status(&["unreachable", "failed"]), "failed");
        assert_eq!(final_status(&["deployed", "unreachable"]), "partial");
    }

    #[test]
    fn ipv6_agents_get_brackets() {
        assert_eq!(agent_url("::1", 7446), "http://[::1]:7446/v1/allowlist");
        assert_eq!(
            agent_url("127.0.0.2", 7446),
            "http://127.0.0.2:7446/v1/allowlist"
        );
    }
}
