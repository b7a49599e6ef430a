//! Prometheus metrics: what the process counts as it goes (requests,
//! latencies, per-host deploy results, registrations) and what `/metrics`
//! asks the database for at each scrape (deployments by status, agents by
//! what they last confirmed).

use std::collections::HashMap;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};
use sea_orm::{ConnectionTrait, DbErr};

use crate::domain::apikey::Registration;
use crate::domain::deployment::{AgentStanding, DeploymentStatus, HostResult, standing};

/// Latency buckets in seconds, from half a millisecond to ten seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric the process keeps, in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    host_results: IntCounterVec,
    registrations: IntCounterVec,
    deployments: IntGaugeVec,
    agents: IntGaugeVec,
    pulls: IntCounterVec,
    pull_waiting: prometheus::IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    ///
    /// # Panics
    /// Never: the names and labels are constants that are valid and
    /// registered once.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "steward_http_requests_total",
                "HTTP requests by method, route and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "steward_http_request_duration_seconds",
                "Time to the response head, by method and route.",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        let host_results = IntCounterVec::new(
            Opts::new(
                "steward_deploy_host_results_total",
                "Per-host results of the deployments this process ran.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let registrations = IntCounterVec::new(
            Opts::new(
                "steward_registrations_total",
                "Self-service registrations by outcome (registered or refused).",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let deployments = IntGaugeVec::new(
            Opts::new(
                "steward_deployments",
                "Deployments in the database by status.",
            ),
            &["status"],
        )
        .expect("valid metric");
        let agents = IntGaugeVec::new(
            Opts::new(
                "steward_agents",
                "Agents by what they last confirmed: current (the newest allowlist issued to them), outdated, or unconfirmed.",
            ),
            &["state"],
        )
        .expect("valid metric");
        let pulls = IntCounterVec::new(
            Opts::new(
                "steward_pulls_total",
                "Pulling agents' requests: recorded (fetches written), record_transactions (the transactions they were written in), busy (answered 503 with Retry-After), looks_remembered and looks_read (what a key's host and newest allowlist were found from: memory, or the database).",
            ),
            &["what"],
        )
        .expect("valid metric");
        let pull_waiting = prometheus::IntGauge::new(
            "steward_pull_waiting",
            "Long polls of pulling agents waiting now.",
        )
        .expect("valid metric");
        for metric in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(host_results.clone()),
            Box::new(registrations.clone()),
            Box::new(deployments.clone()),
            Box::new(agents.clone()),
            Box::new(pulls.clone()),
            Box::new(pull_waiting.clone()),
        ] {
            registry.register(metric).expect("registered once");
        }
        for result in HostResult::SETTLED {
            host_results.with_label_values(&[result.as_str()]);
        }
        for outcome in Registration::ALL {
            registrations.with_label_values(&[outcome.as_str()]);
        }
        for what in [
            "recorded",
            "record_transactions",
            "busy",
            "looks_remembered",
            "looks_read",
        ] {
            pulls.with_label_values(&[what]);
        }
        Self {
            registry,
            requests,
            latency,
            host_results,
            registrations,
            deployments,
            agents,
            pulls,
            pull_waiting,
        }
    }

    /// Counts `n` fetches recorded in one transaction.
    pub fn fetches_recorded(&self, n: u64) {
        self.pulls.with_label_values(&["recorded"]).inc_by(n);
        self.pulls.with_label_values(&["record_transactions"]).inc();
    }

    /// Counts one request of a pulling agent answered 503 (too busy).
    pub fn pull_busy(&self) {
        self.pulls.with_label_values(&["busy"]).inc();
    }

    /// Counts one look of a pulling agent: answered from memory
    /// (`remembered`), or read from the database.
    pub fn pull_look(&self, remembered: bool) {
        let what = if remembered {
            "looks_remembered"
        } else {
            "looks_read"
        };
        self.pulls.with_label_values(&[what]).inc();
    }

    /// Sets how many pulling agents' long polls wait now.
    pub fn set_pull_waiting(&self, n: usize) {
        self.pull_waiting.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[method, route, status.to_string().as_str()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts `n` hosts' deploy result.
    pub fn host_result(&self, result: HostResult, n: u64) {
        self.host_results
            .with_label_values(&[result.as_str()])
            .inc_by(n);
    }

    /// Counts one registration.
    pub fn registration(&self, outcome: Registration) {
        self.registrations
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Reads the database's figures and renders everything in Prometheus'
    /// text format (version 0.0.4).
    pub async fn render(&self, db: &impl ConnectionTrait) -> Result<String, DbErr> {
        self.deployments.reset();
        for status in DeploymentStatus::ALL {
            self.deployments
                .with_label_values(&[status.as_str()])
                .set(0);
        }
        for (status, n) in crate::store::deployments::count_by_status(db).await? {
            self.deployments
                .with_label_values(&[status.as_str()])
                .set(n);
        }
        let mut agents: HashMap<AgentStanding, i64> = HashMap::new();
        for (confirmed, issued) in crate::store::agents::confirmed_and_issued(db).await? {
            *agents
                .entry(standing(confirmed.as_deref(), issued.as_deref()))
                .or_default() += 1;
        }
        for state in AgentStanding::ALL {
            self.agents
                .with_label_values(&[state.as_str()])
                .set(agents.get(state).copied().unwrap_or(0));
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| DbErr::Custom(format!("cannot encode the metrics: {e}")))?;
        String::from_utf8(out).map_err(|e| DbErr::Custom(e.to_string()))
    }
}
