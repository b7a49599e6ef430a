//! The stop signal shared by everything that waits: long polls, deploy
//! requests with `wait`, and the deployment runner all end at once when
//! the server is asked to stop (SIGTERM, SIGINT).

use std::sync::Arc;

use tokio::sync::watch;

/// Set once, when the server begins to stop; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// Not stopping yet.
    pub fn new() -> Self {
        Self {
            sender: Arc::new(watch::channel(false).0),
        }
    }

    /// Begins the stop: every [`Shutdown::stopping`] resolves.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether the stop has begun.
    pub fn is_stopping(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves when the stop begins (at once if it has).
    pub async fn stopping(&self) {
        let mut receiver = self.sender.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` holds it.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_at_the_trigger_and_later_ones_at_once() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.is_stopping());
        let waiter = tokio::spawn({
            let s = shutdown.clone();
            async move { s.stopping().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.stopping())
            .await
            .expect("at once");
        assert!(shutdown.is_stopping());
    }
}
