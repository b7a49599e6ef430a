//! Staged deploys: the stages a deployment pushes in (`stages=1,10%,100%`),
//! how many failures it tolerates (`max_failed`), the pause between stages
//! (`stage_wait`), the stable order that spreads the stages over the fleet,
//! and the rule that halts it.

use sha2::{Digest, Sha256};

/// At most this many entries in `stages`.
pub const MAX_STAGES: usize = 20;
/// The longest pause between stages, in seconds.
pub const MAX_STAGE_WAIT: u32 = 3600;
/// The largest host count an entry of `stages` or `max_failed` may name.
pub const MAX_COUNT: u32 = 1_000_000;

/// One entry of `stages` or `max_failed`: a number of hosts, or a
/// percentage of the covered hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    Count(u32),
    Percent(u8),
}

impl Share {
    /// `N` (0 to [`MAX_COUNT`]) or `N%` (0 to 100).
    fn parse(text: &str) -> Option<Share> {
        let text = text.trim();
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(percent) = text.strip_suffix('%') {
            let p: u8 = percent.parse().ok().filter(|_| digits(percent))?;
            return (p <= 100).then_some(Share::Percent(p));
        }
        let n: u32 = text.parse().ok().filter(|_| digits(text))?;
        (n <= MAX_COUNT).then_some(Share::Count(n))
    }

    /// How many of `total` hosts this share names: a count at most
    /// `total`; a percentage rounded `up` (stages: a stage of 1% of 50
    /// hosts has one) or down (`max_failed`: 10% of 5 hosts allows none).
    fn of(self, total: u64, up: bool) -> u64 {
        match self {
            Share::Count(n) => u64::from(n).min(total),
            Share::Percent(p) => {
                let scaled = total * u64::from(p);
                if up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                }
            }
        }
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Share::Count(n) => write!(f, "{n}"),
            Share::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// A staged deploy's plan, as asked for: cumulative stages, the failures
/// tolerated, and the pause between stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub stages: Vec<Share>,
    pub max_failed: Share,
    pub stage_wait: u32,
}

impl Plan {
    /// The plan from a deploy's parameters: `None` without `stages`.
    /// `max_failed` (default 0) and `stage_wait` (default 0) need
    /// `stages`.
    pub fn parse(
        stages: Option<&str>,
        max_failed: Option<&str>,
        stage_wait: Option<&str>,
    ) -> Result<Option<Plan>, String> {
        let Some(stages) = stages else {
            if max_failed.is_some() || stage_wait.is_some() {
                return Err("max_failed and stage_wait need stages".into());
            }
            return Ok(None);
        };
        let stages = parse_stages(stages)?;
        let max_failed = match max_failed {
            None => Share::Count(0),
            Some(text) => Share::parse(text).ok_or_else(|| {
                format!(
                    "max_failed must be a number of hosts (0 to {MAX_COUNT}) or a percentage (0% to 100%)"
                )
            })?,
        };
        let stage_wait = match stage_wait {
            None => 0,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|s| *s <= MAX_STAGE_WAIT)
                .ok_or_else(|| format!("stage_wait must be 0 to {MAX_STAGE_WAIT} seconds"))?,
        };
        Ok(Some(Plan {
            stages,
            max_failed,
            stage_wait,
        }))
    }

    /// The stages as stored and shown: `1,10%,100%`.
    pub fn stages_text(&self) -> String {
        self.stages
            .iter()
            .map(Share::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// How many failed or unreachable hosts of `covered` are tolerated
    /// (a percentage rounds down).
    pub fn allowed_failures(&self, covered: u64) -> u64 {
        self.max_failed.of(covered, false)
    }
}

/// `stages`: comma-separated cumulative entries, each a number of hosts
/// (at least 1) or a percentage of the covered hosts (1% to 100%);
/// numbers strictly increase, and so do percentages; `100%`, when given,
/// is the last; at most [`MAX_STAGES`] entries.
pub fn parse_stages(text: &str) -> Result<Vec<Share>, String> {
    let bad = || {
        format!(
            "stages must be up to {MAX_STAGES} comma-separated, strictly increasing numbers of hosts \
             (1 to {MAX_COUNT}) or percentages (1% to 100%), for example 1,10%,100%"
        )
    };
    let entries: Vec<&str> = text.split(',').collect();
    if entries.len() > MAX_STAGES {
        return Err(bad());
    }
    let mut stages = Vec::with_capacity(entries.len());
    let (mut last_count, mut last_percent) = (0u32, 0u8);
    for entry in entries {
        let share = Share::parse(entry).ok_or_else(bad)?;
        match share {
            Share::Count(n) if n > last_count => last_count = n,
            Share::Percent(p) if p > last_percent && last_percent < 100 => last_percent = p,
            _ => return Err(bad()),
        }
        if stages.last() == Some(&Share::Percent(100)) {
            return Err(bad());
        }
        stages.push(share);
    }
    Ok(stages)
}

/// The cumulative size of each stage over `covered` hosts: entries that
/// add no host are dropped, and a final stage takes the hosts left when
/// the list does not reach them all. Never empty (one stage of nothing
/// when nothing is covered).
pub fn stage_sizes(stages: &[Share], covered: u64) -> Vec<u64> {
    let mut sizes: Vec<u64> = Vec::with_capacity(stages.len() + 1);
    for share in stages {
        let size = share.of(covered, true).max(1).min(covered);
        if sizes.last().is_none_or(|last| size > *last) {
            sizes.push(size);
        }
    }
    if sizes.last() != Some(&covered) {
        sizes.push(covered);
    }
    sizes
}

/// A host's place in the spread order: the first 8 bytes of the SHA-256
/// of its id. Stable across servers and releases, and unrelated to names,
/// so the first stage is not one rack of similar names.
pub fn spread_key(host_id: i64) -> u64 {
    let digest = Sha256::digest(format!("steward-stage:{host_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// `host_ids` in the spread order (by [`spread_key`], then id).
pub fn spread_order(host_ids: &[i64]) -> Vec<i64> {
    let mut ordered: Vec<(u64, i64)> = host_ids.iter().map(|id| (spread_key(*id), *id)).collect();
    ordered.sort_unstable();
    ordered.into_iter().map(|(_, id)| id).collect()
}

/// Each covered host's stage (from 1), in the spread order, for the
/// cumulative `sizes` of [`stage_sizes`].
pub fn assign(host_ids: &[i64], sizes: &[u64]) -> Vec<(i64, u32)> {
    let mut stage = 0usize;
    spread_order(host_ids)
        .into_iter()
        .enumerate()
        .map(|(place, id)| {
            while sizes.get(stage).is_some_and(|size| place as u64 >= *size) {
                stage += 1;
            }
            (id, u32::try_from(stage + 1).unwrap_or(u32::MAX))
        })
        .collect()
}

/// The halt rule, after a stage that is not the last: more hosts failed
/// or unreachable so far (`trouble`) than `allowed`, not counting the
/// `accepted` ones (those an operator resumed past).
pub fn halts(trouble: u64, accepted: u64, allowed: u64) -> bool {
    trouble.saturating_sub(accepted) > allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_counts_and_percentages_and_show_them_normalised() {
        let plan = Plan::parse(Some("1, 10%,100%"), Some("5%"), Some("30"))
            .expect("valid")
            .expect("staged");
        assert_eq!(
            plan.stages,
            [Share::Count(1), Share::Percent(10), Share::Percent(100)]
        );
        assert_eq!(plan.stages_text(), "1,10%,100%");
        assert_eq!(plan.max_failed, Share::Percent(5));
        assert_eq!(plan.stage_wait, 30);
        assert_eq!(Plan::parse(None, None, None), Ok(None));
        let defaults = Plan::parse(Some("2"), None, None)
            .expect("valid")
            .expect("staged");
        assert_eq!(defaults.max_failed, Share::Count(0));
        assert_eq!(defaults.stage_wait, 0);
    }

    #[test]
    fn bad_stages_are_refused() {
        let too_many = (1..=21)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let bad = [
            "",
            ",",
            "0",
            "0%",
            "1,1",
            "2,1",
            "10%,5%",
            "101%",
            "100%,5",
            "50%,100%,100%",
            "1.5",
            "-1",
            "x",
            "1,,2",
            "1%%",
            "+1",
            "99999999",
            "1e3",
            &too_many,
        ];
        for stages in bad {
            assert!(parse_stages(stages).is_err(), "{stages:?}");
        }
        let twenty = (1..=20)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_stages(&twenty).is_ok());
        assert!(parse_stages("5,10%,20,50%").is_ok());
    }

    #[test]
    fn max_failed_and_stage_wait_are_checked_and_need_stages() {
        for (max_failed, stage_wait) in [
            (Some("-1"), None),
            (Some("101%"), None),
            (Some("x"), None),
            (None, Some("3601")),
            (None, Some("-5")),
            (None, Some("1.5")),
        ] {
            assert!(
                Plan::parse(Some("1"), max_failed, stage_wait).is_err(),
                "{max_failed:?} {stage_wait:?}"
            );
        }
        assert!(Plan::parse(None, Some("1"), None).is_err());
        assert!(Plan::parse(None, None, Some("1")).is_err());
        assert!(Plan::parse(Some("1"), Some("0"), Some("3600")).is_ok());
    }

    #[test]
    fn stage_sizes_are_cumulative_and_end_with_every_host() {
        use Share::{Count, Percent};
        assert_eq!(
            stage_sizes(&[Count(1), Percent(10), Percent(100)], 50),
            [1, 5, 50]
        );
        // A list that stops short gets a final stage.
        assert_eq!(stage_sizes(&[Count(1)], 4), [1, 4]);
        // Entries that add nobody are dropped; percentages round up.
        assert_eq!(
            stage_sizes(&[Count(1), Percent(1), Percent(100)], 50),
            [1, 50]
        );
        assert_eq!(stage_sizes(&[Count(10), Count(20)], 3), [3]);
        assert_eq!(stage_sizes(&[Percent(100)], 3), [3]);
        assert_eq!(stage_sizes(&[Count(1)], 0), [0]);
    }

    #[test]
    fn hosts_are_spread_in_a_stable_order_unrelated_to_their_ids() {
        let ids: Vec<i64> = (1..=200).collect();
        let order = spread_order(&ids);
        assert_eq!(order, spread_order(&ids), "stable");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, ids, "a permutation");
        assert_ne!(order, ids, "not the ids' order");
        // The first tenth is not a run of neighbouring ids.
        let first: Vec<i64> = order[..20].to_vec();
        assert!(first.iter().max().unwrap_or(&0) - first.iter().min().unwrap_or(&0) > 20);
        let reversed: Vec<i64> = ids.iter().rev().copied().collect();
        assert_eq!(
            spread_order(&reversed),
            order,
            "the input's order does not matter"
        );
    }

    #[test]
    fn each_host_gets_its_stage_in_the_spread_order() {
        let ids: Vec<i64> = (1..=10).collect();
        let assigned = assign(
            &ids,
            &stage_sizes(&[Share::Count(1), Share::Percent(50)], 10),
        );
        let order = spread_order(&ids);
        let stages: Vec<u32> = assigned.iter().map(|(_, s)| *s).collect();
        assert_eq!(stages, [1, 2, 2, 2, 2, 3, 3, 3, 3, 3]);
        let hosts: Vec<i64> = assigned.iter().map(|(id, _)| *id).collect();
        assert_eq!(hosts, order);
        assert!(assign(&[], &[0]).is_empty());
    }

    #[test]
    fn a_deployment_halts_when_more_hosts_failed_than_allowed() {
        assert!(!halts(0, 0, 0));
        assert!(halts(1, 0, 0));
        assert!(!halts(2, 0, 2));
        assert!(halts(3, 0, 2));
        // Failures an operator resumed past are not counted again.
        assert!(!halts(1, 1, 0));
        assert!(halts(2, 1, 0));
        let plan = Plan::parse(Some("1"), Some("10%"), None)
            .expect("valid")
            .expect("staged");
        assert_eq!(plan.allowed_failures(5), 0);
        assert_eq!(plan.allowed_failures(25), 2);
        let counted = Plan::parse(Some("1"), Some("7"), None)
            .expect("valid")
            .expect("staged");
        assert_eq!(counted.allowed_failures(3), 3);
        assert_eq!(counted.allowed_failures(30), 7);
    }
}
