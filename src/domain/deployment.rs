//! A deployment's lifecycle: the status of the whole, the result of each
//! host, and the rules that derive one from the other. Each word is written
//! once, here; the database stores the same words.

use serde::{Deserialize, Serialize};

use super::words::words;

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// Pushes or fetches are still outstanding.
    Running,
    /// Every host holds its allowlist (deployed or skipped).
    Succeeded,
    /// Some hosts hold it, others failed or were unreachable.
    Partial,
    /// No host got it.
    Failed,
    /// An operator stopped it; the pushes made stay made.
    Cancelled,
}

words!(DeploymentStatus, "deployment status", {
    Running => "running",
    Succeeded => "succeeded",
    Partial => "partial",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl DeploymentStatus {
    /// Whether the deployment ended (anything but `running`).
    pub fn is_final(self) -> bool {
        self != DeploymentStatus::Running
    }

    /// Whether at least one host got the configuration: Director's view
    /// calls such a configuration deployed.
    pub fn reached_hosts(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Succeeded | DeploymentStatus::Partial
        )
    }
}

/// What one host of a deployment came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostResult {
    /// Not pushed yet, or waiting for its pulling agent to fetch.
    Pending,
    /// Its agent confirmed the new allowlist.
    Deployed,
    /// Its agent held the allowlist already; nothing was sent.
    Skipped,
    /// Its agent refused the allowlist or confirmed another one.
    Failed,
    /// Its agent could not be reached (or did not fetch in time).
    Unreachable,
}

words!(HostResult, "host result", {
    Pending => "pending",
    Deployed => "deployed",
    Skipped => "skipped",
    Failed => "failed",
    Unreachable => "unreachable",
});

impl HostResult {
    /// Every result a host can end with (all but `pending`).
    pub const SETTLED: &[HostResult] = &[
        HostResult::Deployed,
        HostResult::Skipped,
        HostResult::Failed,
        HostResult::Unreachable,
    ];

    /// Whether the host holds the deployment's allowlist.
    pub fn holds_it(self) -> bool {
        matches!(self, HostResult::Deployed | HostResult::Skipped)
    }

    /// Whether the host needs an operator's look (failed or unreachable).
    pub fn is_trouble(self) -> bool {
        matches!(self, HostResult::Failed | HostResult::Unreachable)
    }
}

/// The final status from the per-host results: `succeeded` when every
/// host holds the allowlist (also when there are none), `failed` when none
/// does, `partial` between.
pub fn final_status(results: &[HostResult]) -> DeploymentStatus {
    let good = results.iter().filter(|r| r.holds_it()).count();
    if good == results.len() {
        DeploymentStatus::Succeeded
    } else if good == 0 {
        DeploymentStatus::Failed
    } else {
        DeploymentStatus::Partial
    }
}

/// Hosts per result, as a deployment shows and stores them. A stored
/// document that lacks a result reads it as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub pending: u64,
    pub deployed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub unreachable: u64,
}

impl Counts {
    /// Counts the results.
    pub fn of(results: &[HostResult]) -> Self {
        let mut counts = Counts::default();
        for result in results {
            *counts.get_mut(*result) += 1;
        }
        counts
    }

    /// Every host counted.
    pub fn total(&self) -> u64 {
        self.pending + self.deployed + self.skipped + self.failed + self.unreachable
    }

    /// The number of hosts with `result`.
    pub fn get(&self, result: HostResult) -> u64 {
        match result {
            HostResult::Pending => self.pending,
            HostResult::Deployed => self.deployed,
            HostResult::Skipped => self.skipped,
            HostResult::Failed => self.failed,
            HostResult::Unreachable => self.unreachable,
        }
    }

    fn get_mut(&mut self, result: HostResult) -> &mut u64 {
        match result {
            HostResult::Pending => &mut self.pending,
            HostResult::Deployed => &mut self.deployed,
            HostResult::Skipped => &mut self.skipped,
            HostResult::Failed => &mut self.failed,
            HostResult::Unreachable => &mut self.unreachable,
        }
    }
}

/// The version of a deployment's results (its status and counts) that a
/// blocking query names in `since`: it changes whenever they move.
pub fn results_version(status: DeploymentStatus, counts: &Counts) -> String {
    use sha2::{Digest, Sha256};
    let counts = serde_json::to_string(counts).unwrap_or_default();
    let digest = Sha256::digest(format!("{status}\n{counts}").as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_value_and_nothing_else_does() {
        for status in DeploymentStatus::ALL {
            assert_eq!(status.as_str().parse::<DeploymentStatus>(), Ok(*status));
            assert_eq!(
                serde_json::to_value(status).expect("serialises"),
                status.as_str()
            );
        }
        for result in HostResult::ALL {
            assert_eq!(result.as_str().parse::<HostResult>(), Ok(*result));
            assert_eq!(
                serde_json::to_value(result).expect("serialises"),
                result.as_str()
            );
        }
        for word in ["", "Running", "deployed ", "halted"] {
            assert!(word.parse::<DeploymentStatus>().is_err(), "{word:?}");
        }
        assert!("running".parse::<HostResult>().is_err());
        assert_eq!(
            "bogus"
                .parse::<HostResult>()
                .expect_err("unknown")
                .to_string(),
            "unknown host result \"bogus\""
        );
    }

    #[test]
    fn the_final_status_follows_the_results() {
        use HostResult::*;
        assert_eq!(
            final_status(&[Deployed, Skipped]),
            DeploymentStatus::Succeeded
        );
        assert_eq!(final_status(&[]), DeploymentStatus::Succeeded);
        assert_eq!(
            final_status(&[Unreachable, Failed]),
            DeploymentStatus::Failed
        );
        assert_eq!(
            final_status(&[Deployed, Unreachable]),
            DeploymentStatus::Partial
        );
        assert_eq!(final_status(&[Pending]), DeploymentStatus::Failed);
    }

    #[test]
    fn counts_count_each_result_and_read_missing_ones_as_zero() {
        use HostResult::*;
        let counts = Counts::of(&[Deployed, Deployed, Failed, Pending]);
        assert_eq!(counts.get(Deployed), 2);
        assert_eq!(counts.get(Failed), 1);
        assert_eq!(counts.get(Pending), 1);
        assert_eq!(counts.get(Skipped) + counts.get(Unreachable), 0);
        assert_eq!(counts.total(), 4);
        let stored: Counts = serde_json::from_str(r#"{"deployed": 3}"#).expect("parses");
        assert_eq!(
            stored,
            Counts {
                deployed: 3,
                ..Counts::default()
            }
        );
        let shown = serde_json::to_value(counts).expect("serialises");
        assert_eq!(
            shown,
            serde_json::json!({"pending": 1, "deployed": 2, "skipped": 0, "failed": 1, "unreachable": 0})
        );
    }

    #[test]
    fn the_results_version_moves_with_the_status_and_the_counts() {
        use DeploymentStatus::{Running, Succeeded};
        use HostResult::{Deployed, Pending};
        let running = Counts::of(&[Pending, Deployed]);
        let moved = Counts::of(&[Deployed, Deployed]);
        let version = results_version(Running, &running);
        assert_eq!(version, results_version(Running, &running));
        assert_eq!(version.len(), 16);
        assert_ne!(version, results_version(Running, &moved));
        assert_ne!(
            results_version(Running, &moved),
            results_version(Succeeded, &moved)
        );
    }

    #[test]
    fn the_predicates_split_the_results() {
        let holding: Vec<_> = HostResult::ALL.iter().filter(|r| r.holds_it()).collect();
        assert_eq!(holding, [&HostResult::Deployed, &HostResult::Skipped]);
        let trouble: Vec<_> = HostResult::ALL.iter().filter(|r| r.is_trouble()).collect();
        assert_eq!(trouble, [&HostResult::Failed, &HostResult::Unreachable]);
        assert!(!HostResult::SETTLED.contains(&HostResult::Pending));
        assert!(!DeploymentStatus::Running.is_final());
        assert!(DeploymentStatus::Cancelled.is_final());
        assert!(DeploymentStatus::Partial.reached_hosts());
        assert!(!DeploymentStatus::Failed.reached_hosts());
    }
}
