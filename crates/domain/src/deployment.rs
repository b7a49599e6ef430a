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
    /// A staged deployment stopped after a stage with more failures than
    /// allowed: later stages got nothing; it may be resumed.
    Halted,
}

words!(DeploymentStatus, "deployment status", {
    Running => "running",
    Succeeded => "succeeded",
    Partial => "partial",
    Failed => "failed",
    Cancelled => "cancelled",
    Halted => "halted",
});

impl DeploymentStatus {
    /// Whether the deployment ended (anything but `running`; a halted
    /// one may be resumed).
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

/// What a deploy would do to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Send the host a new allowlist with scripts.
    Update,
    /// Send the host an empty allowlist: it may run nothing.
    Revoke,
    /// Send nothing: its agent holds the allowlist already.
    Skip,
}

words!(Action, "deploy action", {
    Update => "update",
    Revoke => "revoke",
    Skip => "skip",
});

/// What a deploy does to a host whose agent `holds_it` (has confirmed the
/// very allowlist, with a serial on record) or not: without `force` such
/// a host is skipped; any other gets its allowlist, a revocation when that
/// lists no script.
pub fn action(holds_it: bool, has_scripts: bool, force: bool) -> Action {
    if holds_it && !force {
        Action::Skip
    } else if has_scripts {
        Action::Update
    } else {
        Action::Revoke
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

/// A configuration's or activity entry's state in Director's
/// `deployment-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectorState {
    /// What the active deployment deployed.
    Active,
    /// Deployed before (to at least one host), not active now.
    Deployed,
    /// Only ever deployed to no host.
    Failed,
    /// Not deployed yet (the configuration a deploy would render now, or
    /// an activity entry newer than the active deployment).
    Undeployed,
    /// Not known here.
    Unknown,
}

words!(DirectorState, "Director state", {
    Active => "active",
    Deployed => "deployed",
    Failed => "failed",
    Undeployed => "undeployed",
    Unknown => "unknown",
});

/// A config checksum's state: `active` when the active deployment has it,
/// else from its deployments' `statuses`; one never deployed is
/// `undeployed` when it is what a deploy would render now.
pub fn config_state(
    active: bool,
    statuses: &[DeploymentStatus],
    rendered_now: bool,
) -> DirectorState {
    if active {
        DirectorState::Active
    } else if statuses.iter().any(|s| s.reached_hosts()) {
        DirectorState::Deployed
    } else if !statuses.is_empty() {
        DirectorState::Failed
    } else if rendered_now {
        DirectorState::Undeployed
    } else {
        DirectorState::Unknown
    }
}

/// An activity entry's state, from its id and the active deployment's
/// (`None` for either: not known): the entry the deployment started at is
/// `active`, older ones `deployed`, newer ones `undeployed`.
pub fn activity_state(
    entry: Option<i64>,
    active: Option<i64>,
    is_active_entry: bool,
    any_active: bool,
) -> DirectorState {
    match (any_active, entry) {
        (true, Some(_)) if is_active_entry => DirectorState::Active,
        (true, Some(id)) if active.is_some_and(|active| id > active) => DirectorState::Undeployed,
        (true, Some(_)) => DirectorState::Deployed,
        _ => DirectorState::Unknown,
    }
}

/// What an agent holds, against the newest allowlist issued to its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStanding {
    /// It confirmed the newest allowlist issued to it.
    Current,
    /// It confirmed another one (an older one, or one of a pruned history).
    Outdated,
    /// It never confirmed any.
    Unconfirmed,
}

words!(AgentStanding, "agent standing", {
    Current => "current",
    Outdated => "outdated",
    Unconfirmed => "unconfirmed",
});

/// An agent's standing from the checksum it `confirmed` and the checksum
/// of the newest allowlist `issued` to its host.
pub fn standing(confirmed: Option<&str>, issued: Option<&str>) -> AgentStanding {
    match (confirmed, issued) {
        (None, _) => AgentStanding::Unconfirmed,
        (Some(c), Some(i)) if c == i => AgentStanding::Current,
        _ => AgentStanding::Outdated,
    }
}

/// The version of a deployment's results (its status, counts, and the
/// stage it is at: its number and whether it waits for the next) that a
/// blocking query names in `since`: it changes whenever they move.
pub fn results_version(
    status: DeploymentStatus,
    counts: &Counts,
    stage: u32,
    waiting: bool,
) -> String {
    use sha2::{Digest, Sha256};
    let counts = serde_json::to_string(counts).unwrap_or_default();
    let digest = Sha256::digest(format!("{status}\n{counts}\n{stage}\n{waiting}").as_bytes());
    hex::encode(&digest[..8])
}

/// Where a stage of a staged deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    /// Not begun: its hosts got nothing yet.
    Waiting,
    /// Begun: some of its hosts have no result yet.
    Running,
    /// Every host of it has a result.
    Done,
}

words!(StageState, "stage state", {
    Waiting => "waiting",
    Running => "running",
    Done => "done",
});

/// A stage's state from the deployment's current stage and the stage's
/// hosts still pending.
pub fn stage_state(stage: u32, current: u32, pending: u64) -> StageState {
    if stage > current {
        StageState::Waiting
    } else if pending > 0 {
        StageState::Running
    } else {
        StageState::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_holding_its_allowlist_is_skipped_unless_forced() {
        assert_eq!(action(true, true, false), Action::Skip);
        assert_eq!(action(true, false, false), Action::Skip);
        assert_eq!(action(true, true, true), Action::Update);
        assert_eq!(action(false, true, false), Action::Update);
        assert_eq!(action(false, false, false), Action::Revoke);
        assert_eq!(action(true, false, true), Action::Revoke);
    }

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
        for word in ["", "Running", "deployed ", "paused"] {
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
        let version = results_version(Running, &running, 1, false);
        assert_eq!(version, results_version(Running, &running, 1, false));
        assert_eq!(version.len(), 16);
        assert_ne!(version, results_version(Running, &moved, 1, false));
        assert_ne!(
            results_version(Running, &moved, 1, false),
            results_version(Succeeded, &moved, 1, false)
        );
        // A stage begun, or the wait for the next, moves it too.
        assert_ne!(version, results_version(Running, &running, 2, false));
        assert_ne!(version, results_version(Running, &running, 1, true));
    }

    #[test]
    fn director_states_follow_the_deployments() {
        use DeploymentStatus::*;
        assert_eq!(config_state(true, &[Failed], false), DirectorState::Active);
        assert_eq!(
            config_state(false, &[Failed, Partial], false),
            DirectorState::Deployed
        );
        assert_eq!(
            config_state(false, &[Failed, Cancelled], true),
            DirectorState::Failed
        );
        assert_eq!(config_state(false, &[], true), DirectorState::Undeployed);
        assert_eq!(config_state(false, &[], false), DirectorState::Unknown);
        assert_eq!(
            activity_state(Some(5), Some(5), true, true),
            DirectorState::Active
        );
        assert_eq!(
            activity_state(Some(6), Some(5), false, true),
            DirectorState::Undeployed
        );
        assert_eq!(
            activity_state(Some(4), Some(5), false, true),
            DirectorState::Deployed
        );
        assert_eq!(
            activity_state(Some(4), None, false, true),
            DirectorState::Deployed
        );
        assert_eq!(
            activity_state(Some(4), Some(5), false, false),
            DirectorState::Unknown
        );
        assert_eq!(
            activity_state(None, Some(5), false, true),
            DirectorState::Unknown
        );
    }

    #[test]
    fn an_agents_standing_compares_what_it_confirmed_with_what_was_issued() {
        assert_eq!(standing(None, Some("a")), AgentStanding::Unconfirmed);
        assert_eq!(standing(None, None), AgentStanding::Unconfirmed);
        assert_eq!(standing(Some("a"), Some("a")), AgentStanding::Current);
        assert_eq!(standing(Some("a"), Some("b")), AgentStanding::Outdated);
        assert_eq!(standing(Some("a"), None), AgentStanding::Outdated);
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
        assert!(DeploymentStatus::Halted.is_final());
        assert!(!DeploymentStatus::Halted.reached_hosts());
    }

    #[test]
    fn a_stage_waits_runs_then_is_done() {
        assert_eq!(stage_state(3, 2, 0), StageState::Waiting);
        assert_eq!(stage_state(2, 2, 4), StageState::Running);
        assert_eq!(stage_state(2, 2, 0), StageState::Done);
        assert_eq!(stage_state(1, 2, 0), StageState::Done);
        for state in StageState::ALL {
            assert_eq!(state.as_str().parse::<StageState>(), Ok(*state));
        }
    }
}
