//! `steward-agent pull`: for nodes the server cannot reach. The agent
//! long-polls `/director/self-service/allowlist` with its host key and the
//! ETag of what it holds, checks each new allowlist exactly as `serve`
//! checks a push ([`Agent::receive`]), and backs off with jitter when the
//! server is unreachable or refuses. The server counts what a pulling agent
//! fetched as confirmed.

use std::path::PathBuf;
use std::time::Duration;

use super::AgentError;
use super::client::{Client, Pulled, pull_delay};
use super::serve::{Agent, Received, ServeOptions};
use super::state;
use crate::domain::kind::Delivery;

/// The longest long poll the server accepts.
pub const MAX_WAIT: u64 = 300;

/// What `pull` was asked to do.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Where the allowlist is kept and what it must satisfy (`listen` unused).
    pub hold: ServeOptions,
    /// Seconds each long poll may wait for a change.
    pub wait: u64,
    /// Poll once and exit: 0 when the newest allowlist is held.
    pub once: bool,
    /// A PEM file of certificates to trust for https besides the built-in
    /// roots (a private CA, or the server's self-signed certificate).
    pub ca: Option<PathBuf>,
}

/// The ETag the server gives the allowlist with this checksum and serial.
pub fn etag_of(checksum: &str, serial: i64) -> String {
    format!("\"{checksum}-{serial}\"")
}

/// Pulls until SIGTERM or SIGINT (or once, with `--once`).
pub async fn pull(options: PullOptions) -> Result<(), AgentError> {
    let dir = options.hold.state_dir.clone();
    let state = state::load(&dir)?.ok_or_else(|| {
        AgentError::Usage(format!(
            "no state in {}: register this node first (steward-agent register)",
            dir.display()
        ))
    })?;
    let agent = Agent::new(options.hold)?;
    let client = Client::with_ca(&state.server, Duration::ZERO, options.ca.as_deref())?;
    let wait = options.wait.min(MAX_WAIT);
    let mut etag = agent
        .held()
        .await
        .map(|held| etag_of(&held.checksum, held.serial));
    let mut failures = 0u32;
    let shutdown = super::serve::shutdown_signal();
    tokio::pin!(shutdown);
    tracing::info!(server = %client.base(), wait, "pulling the allowlist");
    // The server pushes to a host registered for push (and waits for each
    // push to time out before it counts the fetch): say how to switch.
    if let Ok(config) = client.agent_config(&state.host_key).await
        && config.delivery.as_deref() == Some(Delivery::Push.as_str())
    {
        tracing::warn!(
            host = %config.host,
            "this host is registered for push delivery: the server tries to push to it before it counts a fetch; \
             register again with `steward-agent register --pull`, or set the host's delivery to pull"
        );
    }
    loop {
        let polled = tokio::select! {
            polled = client.pull_allowlist(&state.host_key, etag.as_deref(), wait) => polled,
            () = &mut shutdown => return Ok(()),
        };
        let delay = match polled {
            Ok(Pulled::New {
                etag: new,
                document,
            }) => {
                failures = 0;
                // Not asked again whatever the outcome: a refused one
                // stays refused until the server has a newer one.
                etag = new;
                match agent.receive(document).await {
                    Received::Written { .. } | Received::Unchanged(_) => {}
                    Received::Refused(refusal) if options.once => {
                        return Err(AgentError::Failed(format!(
                            "refused the allowlist: {}",
                            refusal.message
                        )));
                    }
                    Received::NotKept(reason) if options.once => {
                        return Err(AgentError::Failed(reason));
                    }
                    Received::Refused(_) => {}
                    Received::NotKept(_) => etag = None,
                }
                None
            }
            Ok(Pulled::NotModified) => {
                failures = 0;
                None
            }
            Ok(Pulled::NoneYet) => {
                failures = 0;
                tracing::info!("nothing was deployed to this host yet");
                // The server waited already; without a wait, do not spin.
                (wait == 0).then(|| Duration::from_secs(5))
            }
            Ok(Pulled::Later { reason, .. }) if options.once => {
                return Err(AgentError::Unreachable(reason));
            }
            Ok(Pulled::Later {
                retry_after,
                reason,
            }) => {
                let delay = pull_delay(retry_after, failures, rand::random::<f64>());
                failures = failures.saturating_add(1);
                tracing::warn!("{reason}; asking again in {:.1} s", delay.as_secs_f64());
                Some(delay)
            }
            Err(e) if options.once => return Err(e),
            Err(e) => {
                let delay = pull_delay(None, failures, rand::random::<f64>());
                failures = failures.saturating_add(1);
                tracing::warn!("{e}; asking again in {:.1} s", delay.as_secs_f64());
                Some(delay)
            }
        };
        if options.once {
            return Ok(());
        }
        if let Some(delay) = delay.or_else(|| (wait == 0).then(|| Duration::from_secs(5))) {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_is_the_servers() {
        assert_eq!(etag_of("abc", 7), "\"abc-7\"");
    }
}
