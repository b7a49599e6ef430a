//! The deployment runner: pushes each host's signed allowlist to its agent,
//! many at once, with timeouts and retries, recording every result in
//! batches. Each deployment is run by the one server holding its lease in
//! the database; a deployment whose server stopped or died is taken over
//! when the lease runs out (by a replica, or by the server starting again).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod fetches;
pub use fetches::Fetches;

use crate::domain::activity::Entry;
use crate::domain::deployment::{Counts, DeploymentStatus, HostResult, final_status};
use crate::domain::kind::Delivery;
use crate::domain::network::{Network, push_allowed};
use crate::domain::staging::halts;
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
    pub result: HostResult,
    pub error: Option<String>,
    pub attempts: i32,
}

/// The HTTP client for pushes: no proxies, no redirects, short timeouts,
/// and no idle connections kept: each agent is pushed to once per
/// deployment, and ten thousand idle connections would only hold ten
/// thousand file descriptors on both ends.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
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

/// At most this much of an agent's reply is read: a confirmation is well
/// under 200 bytes, and the agent on the other end is not trusted (any node
/// holding a template key can register its own address).
pub const REPLY_LIMIT: usize = 4096;
/// At most this many characters of an agent's reason are stored.
pub const REASON_LIMIT: usize = 200;

/// The agent's reply as JSON, from at most [`REPLY_LIMIT`] bytes of it
/// (`null` when those are not a JSON document). The client's timeout bounds
/// the whole exchange, so a reply that trickles ends there too.
async fn reply(mut response: reqwest::Response) -> Value {
    let mut body = Vec::new();
    while body.len() < REPLY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = REPLY_LIMIT - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    serde_json::from_slice(&body).unwrap_or(Value::Null)
}

/// A host's error as stored and shown: short, without control characters.
fn reason(text: &str) -> String {
    crate::domain::text::sanitise(text, REASON_LIMIT)
}

/// Pushes one host's allowlist: `deployed` when the agent confirms the
/// checksum, `failed` with the agent's reason when it refuses (4xx),
/// `unreachable` when every attempt failed to connect or got a 5xx, or
/// without an attempt when the host has no address or one outside
/// `networks` (when there are any).
pub async fn push(
    client: &reqwest::Client,
    host: &DeploymentHost,
    networks: &[Network],
) -> Outcome {
    let Some(address) = host.address.as_deref().filter(|a| !a.is_empty()) else {
        return Outcome {
            result: HostResult::Unreachable,
            error: Some("the host has no address".into()),
            attempts: 0,
        };
    };
    if let Err(refused) = push_allowed(networks, address) {
        return Outcome {
            result: HostResult::Unreachable,
            error: Some(reason(&refused)),
            attempts: 0,
        };
    }
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
                let body = reply(response).await;
                return if body["checksum"].as_str() == Some(host.checksum.as_str()) {
                    Outcome {
                        result: HostResult::Deployed,
                        error: None,
                        attempts: attempt,
                    }
                } else {
                    let confirmed = match &body["checksum"] {
                        Value::String(s) => s.clone(),
                        Value::Null => "none".into(),
                        other => other.to_string(),
                    };
                    Outcome {
                        result: HostResult::Failed,
                        error: Some(reason(&format!(
                            "the agent confirmed another checksum: {confirmed}"
                        ))),
                        attempts: attempt,
                    }
                };
            }
            Ok(response) if response.status().is_client_error() => {
                let status = response.status().as_u16();
                let body = reply(response).await;
                let given = body["error"].as_str().unwrap_or("no reason given");
                return Outcome {
                    result: HostResult::Failed,
                    error: Some(reason(&format!("{status}: {given}"))),
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
        result: HostResult::Unreachable,
        error: Some(last_error),
        attempts: ATTEMPTS,
    }
}

/// How long a lease lasts unrenewed: a deployment whose server died is
/// taken over (by a replica, or by the server when it starts again) at most
/// this long after the last renewal.
pub const LEASE: Duration = Duration::from_secs(6);
/// How often the holder renews its lease (and notices a cancellation).
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How often a server looks for deployments no live server holds.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// At most this many results are written in one transaction.
const BATCH: usize = 1000;

/// The end of a lease taken at `now` (milliseconds).
pub fn lease_until(now: i64) -> i64 {
    now + i64::try_from(LEASE.as_millis()).unwrap_or(6_000)
}

/// Runs deployments: at most once per deployment in this process, and,
/// through a lease in the database, by exactly one of several replicas.
#[derive(Debug, Clone)]
pub struct Deployer {
    store: Arc<Store>,
    /// This server's name in leases (random, new at every start).
    owner: Arc<str>,
    /// How many deployments keep their per-host details.
    keep: u64,
    /// Deployments this process is running.
    running: Arc<Mutex<HashSet<i64>>>,
    /// Running deployments asked to run again when their run ends (taken
    /// with `running` locked).
    again: Arc<Mutex<HashSet<i64>>>,
    /// Told when a run ends.
    ended: Arc<tokio::sync::Notify>,
    client: reqwest::Client,
    /// The networks pushed to (none: anywhere).
    push_networks: Arc<[Network]>,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: crate::shutdown::Shutdown,
}

impl Deployer {
    /// A deployer over `store` keeping the details of `keep` deployments,
    /// pushing only inside `push_networks` when there are any.
    pub fn new(
        store: Arc<Store>,
        keep: u64,
        push_networks: &[Network],
        metrics: Arc<crate::metrics::Metrics>,
        shutdown: crate::shutdown::Shutdown,
    ) -> Self {
        let owner = format!(
            "{}-{}",
            std::process::id(),
            crate::auth::password::random_secret(9)
        );
        Self {
            store,
            owner: owner.into(),
            keep: keep.max(1),
            running: Arc::default(),
            again: Arc::default(),
            ended: Arc::default(),
            client: client(),
            push_networks: push_networks.into(),
            metrics,
            shutdown,
        }
    }

    /// This server's name in leases.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs deployment `id` in the background, unless another server
    /// holds its lease. When this server runs it already, it is run again
    /// once that run ends: a deployment resumed while its halted run was
    /// still ending is not left to the lease's expiry.
    pub fn spawn(&self, id: i64) {
        {
            let mut running = self.running();
            if !running.insert(id) {
                self.again().insert(id);
                return;
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.run(id).await {
                    tracing::error!(deployment = id, error = %e, "deployment runner failed");
                }
                let mut running = this.running();
                if !this.again().remove(&id) {
                    running.remove(&id);
                    break;
                }
            }
            this.ended.notify_waiters();
        });
    }

    fn again(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.again.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over, now and every few seconds, every running deployment no
    /// live server holds: one a stop or crash interrupted, or one whose
    /// server died. Runs until the process ends.
    pub async fn watch(self) {
        loop {
            match deployments::unleased(self.store.db(), now_millis()).await {
                Ok(found) => {
                    for d in found {
                        if !self.running().contains(&d.id) {
                            tracing::info!(
                                deployment = d.id,
                                "taking over an interrupted deployment"
                            );
                        }
                        self.spawn(d.id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look for interrupted deployments"),
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    }

    /// At a graceful stop (after [`crate::shutdown::Shutdown::trigger`]):
    /// waits (at most 15 s) for the pushes in flight to end and their
    /// results to be written, then gives up the leases, so that whoever
    /// starts next takes the deployments over at once, pushing only the
    /// hosts still pending.
    pub async fn checkpoint(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before the look: a run ending after it wakes it.
            ended.as_mut().enable();
            if self.running().is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                () = ended => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        self.release().await;
    }

    /// Gives up the leases of the deployments this server runs.
    pub async fn release(&self) {
        match deployments::release(self.store.db(), &self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deployments = n, "left running deployments to be taken over"),
            Err(e) => tracing::warn!(error = %e, "cannot give up the deployment leases"),
        }
    }

    /// Runs (or resumes) deployment `id` while holding its lease: stage by
    /// stage (one stage when it is not staged), every host still pending
    /// is pushed or skipped, the results are written in batches, then the
    /// deployment goes on to its next stage, halts, or gets its final
    /// status.
    async fn run(&self, id: i64) -> Result<(), sea_orm::DbErr> {
        let store = &self.store;
        {
            let tx = store.begin_write().await?;
            let now = now_millis();
            let held = deployments::claim(&tx.tx, id, &self.owner, now, lease_until(now)).await?;
            tx.commit_keys_unchanged().await?;
            if !held {
                return Ok(());
            }
        }
        let Some(mut deployment) = deployments::get(store.db(), id).await? else {
            return Ok(());
        };
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_lease(
            store.clone(),
            id,
            self.owner.clone(),
            stop.clone(),
        ));
        // A stop of the server: no new pushes; those in flight end.
        let stopper = tokio::spawn({
            let (shutdown, stop) = (self.shutdown.clone(), stop.clone());
            async move {
                shutdown.stopping().await;
                stop.store(true, Ordering::Relaxed);
            }
        });
        let ran = self.stages(&mut deployment, &stop).await;
        keeper.abort();
        stopper.abort();
        ran
    }

    /// The stages of a deployment, from where it stands: a pause before
    /// the next stage when one is due, then the stage's pushes and
    /// fetches, then the halt rule (before every stage but the last).
    async fn stages(
        &self,
        deployment: &mut deployments::Deployment,
        stop: &AtomicBool,
    ) -> Result<(), sea_orm::DbErr> {
        let id = deployment.id;
        loop {
            if let Some(at) = deployment.next_stage_at {
                self.pause_until(at, stop).await;
                if stop.load(Ordering::Relaxed) || self.shutdown.is_stopping() {
                    return self.stopped(id).await;
                }
                let next = deployment.stage + 1;
                if !self.begin_stage(id, next).await? {
                    return Ok(());
                }
                deployment.stage = next;
                deployment.stage_started_at = Some(now_millis());
                deployment.next_stage_at = None;
            }
            self.push_stage(deployment, stop).await?;
            self.await_fetches(deployment, stop).await?;
            if stop.load(Ordering::Relaxed) || self.shutdown.is_stopping() {
                return self.stopped(id).await;
            }
            if deployment.stage >= deployment.stage_count {
                return self.finish(id).await;
            }
            match self.after_stage(deployment).await? {
                Some(at) => deployment.next_stage_at = Some(at),
                None => return Ok(()),
            }
        }
    }

    /// After a stop: at a server's stop, nothing (the results so far are
    /// written; the next holder of the lease goes on from there);
    /// otherwise (cancelled, or the lease lost) the end, if still ours.
    async fn stopped(&self, id: i64) -> Result<(), sea_orm::DbErr> {
        if self.shutdown.is_stopping() {
            return Ok(());
        }
        self.finish(id).await
    }

    /// Pushes the pending hosts of the stages begun (pull hosts wait for
    /// their agents), and writes the results in batches.
    async fn push_stage(
        &self,
        deployment: &deployments::Deployment,
        stop: &AtomicBool,
    ) -> Result<(), sea_orm::DbErr> {
        let store = &self.store;
        let states = agents::all(store.db()).await?;
        let pending =
            deployments::pending_hosts(store.db(), deployment.id, deployment.stage).await?;
        let (results, received) = mpsc::channel(BATCH);
        let writer = tokio::spawn(write_results(
            store.clone(),
            deployment.id,
            received,
            self.metrics.clone(),
        ));
        futures::stream::iter(pending)
            .for_each_concurrent(CONCURRENCY, |host| {
                let (client, states, results) = (&self.client, &states, &results);
                let networks = &*self.push_networks;
                async move {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let state = states.get(&host.host_id);
                    let confirmed = state.and_then(|s| s.confirmed_checksum.as_deref());
                    let outcome = if !deployment.force && confirmed == Some(host.checksum.as_str())
                    {
                        Outcome {
                            result: HostResult::Skipped,
                            error: None,
                            attempts: 0,
                        }
                    } else if host.delivery == Delivery::Pull {
                        // Never pushed to: pending until its agent fetches.
                        return;
                    } else {
                        let pushed = push(client, &host, networks).await;
                        let pulls = state.is_some_and(|s| s.pulled_at.is_some());
                        if pushed.result == HostResult::Unreachable
                            && pulls
                            && can_fetch(store, &host).await
                        {
                            // An agent that pulled before may still fetch it.
                            return;
                        }
                        pushed
                    };
                    let _ = results.send((host, outcome)).await;
                }
            })
            .await;
        drop(results);
        match writer.await {
            Ok(written) => written,
            Err(e) => Err(sea_orm::DbErr::Custom(format!(
                "the results' writer failed: {e}"
            ))),
        }
    }

    /// Sleeps until `at` (milliseconds), a stop, or the lease lost: the
    /// pause between stages. Woken by commits (a cancellation) and every
    /// [`RENEW_EVERY`].
    async fn pause_until(&self, at: i64, stop: &AtomicBool) {
        loop {
            let mut committed = self.store.changes().watch_committed();
            let left = u64::try_from(at - now_millis()).unwrap_or(0);
            if left == 0 || stop.load(Ordering::Relaxed) || self.shutdown.is_stopping() {
                return;
            }
            tokio::select! {
                () = committed.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(left).min(RENEW_EVERY)) => {}
                () = self.shutdown.stopping() => {}
            }
        }
    }

    /// Begins stage `stage`: publishes its hosts' allowlists (agents may
    /// fetch them from now on, and this server's waiting agents are
    /// answered from memory). False when the deployment is no longer this
    /// server's to run.
    async fn begin_stage(&self, id: i64, stage: i32) -> Result<bool, sea_orm::DbErr> {
        let tx = self.store.begin_write().await?;
        let ours = deployments::get(&tx.tx, id).await?.is_some_and(|d| {
            d.status == DeploymentStatus::Running && d.lease_owner.as_deref() == Some(&*self.owner)
        });
        if !ours {
            return Ok(false);
        }
        let published = deployments::begin_stage(&tx.tx, id, stage, now_millis()).await?;
        let publishing = self.store.changes().publishing();
        tx.commit_keys_unchanged().await?;
        let stage = u32::try_from(stage).unwrap_or(u32::MAX);
        self.store
            .changes()
            .issued_stage_documents(id, stage, published);
        drop(publishing);
        tracing::info!(deployment = id, stage, "stage begun");
        Ok(true)
    }

    /// After a stage that is not the last: the halt rule. Halted, the
    /// deployment records why, its counts and a `deploy-halt` entry, and
    /// gives its lease up; otherwise the time the next stage may begin
    /// (after `stage_wait`) is recorded and returned. `None` also when the
    /// deployment is no longer this server's.
    async fn after_stage(
        &self,
        deployment: &deployments::Deployment,
    ) -> Result<Option<i64>, sea_orm::DbErr> {
        let id = deployment.id;
        let tx = self.store.begin_write().await?;
        let Some(current) = deployments::get(&tx.tx, id).await? else {
            return Ok(None);
        };
        if current.lease_owner.as_deref() != Some(&*self.owner)
            || current.status != DeploymentStatus::Running
        {
            return Ok(None);
        }
        let trouble = deployments::trouble_count(&tx.tx, id, current.stage).await?;
        let accepted = u64::try_from(current.accepted_failures).unwrap_or(0);
        let allowed = current
            .max_failed
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(u64::MAX);
        if !halts(trouble, accepted, allowed) {
            let wait = i64::from(current.stage_wait.max(0)) * 1000;
            let at = now_millis() + wait;
            deployments::next_stage_at(&tx.tx, id, at).await?;
            tx.commit_keys_unchanged().await?;
            return Ok(Some(at));
        }
        let reason = format!(
            "{} hosts failed or were unreachable after stage {} of {} ({} allowed)",
            trouble.saturating_sub(accepted),
            current.stage,
            current.stage_count,
            allowed
        );
        let hosts = deployments::hosts(&tx.tx, id).await?;
        let counts = Counts::of(&hosts.iter().map(|h| h.result).collect::<Vec<_>>());
        deployments::halt(&tx.tx, id, &reason, &counts).await?;
        let mut after = json!({
            "checksum": current.checksum,
            "status": DeploymentStatus::Halted,
            "stage": current.stage,
            "reason": reason,
        });
        for result in HostResult::SETTLED {
            after[result.as_str()] = counts.get(*result).into();
        }
        activity::append(
            &tx.tx,
            &Entry::deployment(
                now_millis(),
                &current.author,
                "deploy-halt",
                id,
                after,
                current.request_id.clone(),
            ),
        )
        .await?;
        tx.commit_keys_unchanged().await?;
        tracing::warn!(deployment = id, stage = current.stage, %reason, "deployment halted");
        Ok(None)
    }

    /// Waits until no host of the deployment is pending (its pulling
    /// agents fetched: their results are written as the fetches are
    /// recorded), the pull grace ended (the hosts still pending become
    /// `unreachable`), or the run stops. Woken by commits, not by polling;
    /// a look every [`RENEW_EVERY`] notices a lost lease.
    async fn await_fetches(
        &self,
        deployment: &deployments::Deployment,
        stop: &AtomicBool,
    ) -> Result<(), sea_orm::DbErr> {
        let grace = i64::try_from(PULL_GRACE.as_millis()).unwrap_or(i64::MAX);
        let began = deployment.stage_started_at.unwrap_or(deployment.started_at);
        let ends = began.saturating_add(grace);
        loop {
            let mut committed = self.store.changes().watch_committed();
            if deployments::pending_count(self.store.db(), deployment.id, deployment.stage).await?
                == 0
                || stop.load(Ordering::Relaxed)
                || self.shutdown.is_stopping()
            {
                return Ok(());
            }
            let left = u64::try_from(ends - now_millis()).unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::select! {
                () = committed.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(left).min(RENEW_EVERY)) => {}
                () = self.shutdown.stopping() => {}
            }
        }
        let tx = self.store.begin_write().await?;
        let settled = deployments::settle_pending(
            &tx.tx,
            deployment.id,
            deployment.stage,
            HostResult::Unreachable,
            &format!(
                "the agent did not fetch its allowlist within {} s",
                PULL_GRACE.as_secs()
            ),
        )
        .await?;
        tx.commit_keys_unchanged().await?;
        self.metrics.host_result(HostResult::Unreachable, settled);
        Ok(())
    }

    /// Gives a deployment its final status, counts and `deploy-end` entry,
    /// and prunes old details; only while this server still holds it.
    async fn finish(&self, id: i64) -> Result<(), sea_orm::DbErr> {
        let tx = self.store.begin_write().await?;
        let Some(current) = deployments::get(&tx.tx, id).await? else {
            return Ok(());
        };
        if current.lease_owner.as_deref() != Some(&*self.owner)
            || !matches!(
                current.status,
                DeploymentStatus::Running | DeploymentStatus::Cancelled
            )
        {
            // Another server took it over, or it is finished already.
            return Ok(());
        }
        let hosts = deployments::hosts(&tx.tx, id).await?;
        let results: Vec<HostResult> = hosts.iter().map(|h| h.result).collect();
        let status = if current.status == DeploymentStatus::Cancelled {
            DeploymentStatus::Cancelled
        } else {
            final_status(&results)
        };
        let counts = Counts::of(&results);
        deployments::finish(&tx.tx, id, status, &counts).await?;
        activity::append(&tx.tx, &end_entry(&current, status, &counts)).await?;
        let pruned = deployments::prune(&tx.tx, self.keep).await?;
        tx.commit_keys_unchanged().await?;
        if pruned > 0 {
            tracing::info!(
                rows = pruned,
                keep = self.keep,
                "pruned old deployment details"
            );
        }
        Ok(())
    }
}

/// The `deploy-end` activity entry of a deployment ending with `status`.
pub fn end_entry(
    deployment: &deployments::Deployment,
    status: DeploymentStatus,
    counts: &Counts,
) -> Entry {
    let mut after = json!({"checksum": deployment.checksum, "status": status});
    for result in HostResult::SETTLED {
        after[result.as_str()] = counts.get(*result).into();
    }
    Entry::deployment(
        now_millis(),
        &deployment.author,
        "deploy-end",
        deployment.id,
        after,
        deployment.request_id.clone(),
    )
}

/// How long a deployment waits for its pulling agents (pull hosts, and
/// push hosts the server could not reach whose agent pulled before) to
/// fetch their new allowlists, from the start of their stage.
pub const PULL_GRACE: Duration = Duration::from_secs(90);

/// Whether the host's agent can fetch its allowlist: a host whose key was
/// revoked cannot; a deleted one's agent still can, for the empty
/// allowlist (`keys::retire`).
async fn can_fetch(store: &Store, host: &DeploymentHost) -> bool {
    matches!(
        crate::store::keys::can_fetch(store.db(), host.host_id).await,
        Ok(true)
    )
}

/// Renews the lease every [`RENEW_EVERY`]; sets `stop` when the deployment
/// was cancelled or taken over, or when the lease could not be renewed
/// before it ran out.
async fn keep_lease(store: Arc<Store>, id: i64, owner: Arc<str>, stop: Arc<AtomicBool>) {
    let mut renewed = now_millis();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let attempt = async {
            let tx = store.begin_write().await?;
            let held = deployments::renew(&tx.tx, id, &owner, lease_until(now_millis())).await?;
            tx.commit_keys_unchanged().await?;
            Ok::<bool, sea_orm::DbErr>(held)
        };
        match attempt.await {
            Ok(true) => renewed = now_millis(),
            Ok(false) => {
                tracing::info!(
                    deployment = id,
                    "the deployment was cancelled or taken over: stopping"
                );
                stop.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "cannot renew the deployment's lease");
                if now_millis() > lease_until(renewed) {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// Writes the results as they come, as many as have arrived (at most
/// [`BATCH`]) in one transaction.
async fn write_results(
    store: Arc<Store>,
    id: i64,
    mut received: mpsc::Receiver<(DeploymentHost, Outcome)>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<(), sea_orm::DbErr> {
    let mut batch = Vec::with_capacity(BATCH);
    while received.recv_many(&mut batch, BATCH).await > 0 {
        let tx = store.begin_write().await?;
        for (host, outcome) in &batch {
            deployments::set_result(
                &tx.tx,
                id,
                host.host_id,
                outcome.result,
                outcome.error.clone(),
                outcome.attempts,
            )
            .await?;
            if outcome.result == HostResult::Deployed {
                deployments::confirm_issued(&tx.tx, host).await?;
            }
        }
        tx.commit_keys_unchanged().await?;
        for (_, outcome) in &batch {
            metrics.host_result(outcome.result, 1);
        }
        batch.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lying agent on loopback: answers every connection with `status`
    /// and a JSON body whose `field` is `filler` repeated `repeat` times,
    /// written in chunks; reports how many bytes it managed to write.
    async fn lying_agent(
        status: u16,
        field: &'static str,
        filler: &'static str,
        repeat: usize,
    ) -> (u16, tokio::task::JoinHandle<usize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("address").port();
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accepts");
            let mut request = vec![0u8; 64 * 1024];
            let _ = socket.read(&mut request).await;
            let length = field.len() + 8 + filler.len() * repeat;
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{\"{field}\": \""
            );
            let mut written = 0;
            if socket.write_all(head.as_bytes()).await.is_err() {
                return written;
            }
            let chunk = filler.repeat(64 * 1024 / filler.len().max(1));
            let mut left = repeat * filler.len();
            while left > 0 {
                let part = &chunk.as_bytes()[..chunk.len().min(left)];
                if socket.write_all(part).await.is_err() {
                    return written;
                }
                written += part.len();
                left -= part.len();
            }
            let _ = socket.write_all(b"\"}").await;
            written
        });
        (port, served)
    }

    fn host_at(port: u16) -> DeploymentHost {
        DeploymentHost {
            deployment_id: 1,
            host_id: 1,
            host_name: "liar".into(),
            address: Some("127.0.0.1".into()),
            agent_port: i32::from(port),
            checksum: "c0ffee".into(),
            serial: 1,
            allowlist: "{}".into(),
            result: HostResult::Pending,
            error: None,
            attempts: 0,
            updated_at: 0,
            delivery: Delivery::Push,
            stage: 1,
            staged_allowlist: String::new(),
        }
    }

    #[tokio::test]
    async fn a_huge_confirmation_is_read_only_within_the_bound_and_stored_short() {
        // 256 MiB of checksum: the whole of it must never be read.
        let (port, served) = lying_agent(200, "checksum", "abcdefgh", 32 * 1024 * 1024).await;
        let outcome = push(&client(), &host_at(port), &[]).await;
        assert_eq!(outcome.result, HostResult::Failed);
        let error = outcome.error.expect("a reason");
        assert!(
            error.chars().count() <= REASON_LIMIT + 1,
            "{} chars",
            error.len()
        );
        assert!(
            error.starts_with("the agent confirmed another checksum"),
            "{error}"
        );
        let written = served.await.expect("the agent ends");
        assert!(
            written < 64 * 1024 * 1024,
            "the agent got {written} bytes out: the reply was read on"
        );
    }

    #[tokio::test]
    async fn an_agents_refusal_is_stored_short_and_without_control_characters() {
        let (port, served) = lying_agent(422, "error", "\\u001b[2J\\r\\nbad\\u202e", 100_000).await;
        let outcome = push(&client(), &host_at(port), &[]).await;
        assert_eq!(outcome.result, HostResult::Failed);
        let error = outcome.error.expect("a reason");
        assert!(error.starts_with("422"), "{error}");
        assert!(
            error.chars().count() <= REASON_LIMIT + 1,
            "{} chars",
            error.len()
        );
        assert!(
            !error
                .chars()
                .any(|c| c.is_control() || crate::domain::text::is_format(c)),
            "{error:?}"
        );
        served.abort();
    }

    #[tokio::test]
    async fn a_short_refusal_keeps_its_reason() {
        let (port, _served) = lying_agent(409, "error", "stale", 1).await;
        let outcome = push(&client(), &host_at(port), &[]).await;
        assert_eq!(outcome.error.as_deref(), Some("409: stale"));
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
