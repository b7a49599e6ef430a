//! What the console's fleet and host pages show of agents: for a page of
//! hosts, what each agent last confirmed against the newest allowlist
//! issued to its host, in two queries for the whole page (none per row).

use std::collections::HashMap;

use crate::domain::deployment::{AgentStanding, standing};
use crate::error::ApiError;
use crate::service::lists::{self, ListRequest};
use crate::store::{Store, agents};

/// Hosts a page may ask about at once (a page holds at most 1,000).
pub const MAX_HOSTS: usize = 1000;

/// Where a host's agent stands, for the console: [`AgentStanding`], or
/// never seen (no agent of the host was ever recorded: not pushed to,
/// never fetched, never confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Recorded(AgentStanding),
    NeverSeen,
}

impl Seen {
    /// A word for the page (and its CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Seen::Recorded(s) => s.as_str(),
            Seen::NeverSeen => "never seen",
        }
    }

    /// The standing of a host with `recorded` agent state (its confirmed
    /// checksum), against the newest allowlist `issued` to it.
    pub fn of(recorded: Option<Option<&str>>, issued: Option<&str>) -> Self {
        match recorded {
            None => Seen::NeverSeen,
            Some(confirmed) => Seen::Recorded(standing(confirmed, issued)),
        }
    }
}

/// One host's agent as the console shows it.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub seen: Seen,
    /// When it last confirmed (Unix milliseconds).
    pub confirmed_at: Option<i64>,
    pub agent_version: Option<String>,
}

/// The agents of these hosts (by host id; at most [`MAX_HOSTS`]).
pub async fn agents_of(
    store: &Store,
    host_ids: &[i64],
) -> Result<HashMap<i64, AgentView>, ApiError> {
    if host_ids.len() > MAX_HOSTS {
        return Err(ApiError::BadRequest(format!(
            "At most {MAX_HOSTS} hosts at once"
        )));
    }
    let states = agents::of_hosts(store.db(), host_ids).await?;
    let issued = agents::issued_to(store.db(), host_ids).await?;
    Ok(host_ids
        .iter()
        .map(|id| {
            let state = states.get(id);
            let view = AgentView {
                seen: Seen::of(
                    state.map(|s| s.confirmed_checksum.as_deref()),
                    issued.get(id).map(String::as_str),
                ),
                confirmed_at: state.and_then(|s| s.confirmed_at),
                agent_version: state.and_then(|s| s.agent_version.clone()),
            };
            (*id, view)
        })
        .collect())
}

/// How many hosts a list request matches, by where their agents stand:
/// every matching host read a page of [`MAX_HOSTS`] at a time (its agents
/// in two queries), so memory stays flat whatever the fleet's size. It
/// reads the whole selection, as the list's `count` does.
pub async fn standings(
    store: &Store,
    request: &ListRequest,
) -> Result<(u64, Vec<(Seen, u64)>), ApiError> {
    let mut request = ListRequest {
        count: false,
        after: None,
        ..request.clone()
    };
    let mut total = 0;
    let mut counts: Vec<(Seen, u64)> = Vec::new();
    loop {
        let page = lists::page_objects(store, &request, MAX_HOSTS as u64).await?;
        let ids: Vec<i64> = page.objects.iter().map(|(o, _)| o.id).collect();
        let agents = agents_of(store, &ids).await?;
        for id in &ids {
            let seen = agents.get(id).map_or(Seen::NeverSeen, |a| a.seen);
            match counts.iter_mut().find(|(s, _)| *s == seen) {
                Some((_, n)) => *n += 1,
                None => counts.push((seen, 1)),
            }
            total += 1;
        }
        match page.next {
            Some(cursor) => request.after = Some(lists::decode_cursor(&cursor)?),
            None => return Ok((total, counts)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_never_recorded_is_never_seen_and_otherwise_stands_as_the_metrics_say() {
        assert_eq!(Seen::of(None, Some("a")), Seen::NeverSeen);
        assert_eq!(
            Seen::of(Some(None), Some("a")),
            Seen::Recorded(AgentStanding::Unconfirmed)
        );
        assert_eq!(
            Seen::of(Some(Some("a")), Some("a")),
            Seen::Recorded(AgentStanding::Current)
        );
        assert_eq!(
            Seen::of(Some(Some("a")), Some("b")),
            Seen::Recorded(AgentStanding::Outdated)
        );
        assert_eq!(Seen::NeverSeen.as_str(), "never seen");
        assert_eq!(Seen::Recorded(AgentStanding::Current).as_str(), "current");
    }
}
