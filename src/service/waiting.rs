//! Blocking requests wait here: `wait=` on the activity log, on a
//! deployment and on a deploy, and the pulling agents' long polls
//! ([`super::selfservice::pull`]). A wait sleeps on the store's
//! notifications, never on a timer that reads again: it is woken by a
//! commit (this process's, another process's on SQLite, another replica's
//! on PostgreSQL) or a deployment issuing allowlists, by its deadline, or
//! by the server beginning to stop. Handlers only extract and answer.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::shutdown::Shutdown;
use crate::store::Store;

/// How long a request may still wait: until its deadline, or until the
/// server begins to stop (then every wait answers with what it has).
#[derive(Debug, Clone)]
pub struct Wait {
    deadline: Instant,
    shutdown: Shutdown,
}

impl Wait {
    /// A wait of `seconds` from now (0: none).
    pub fn new(seconds: u64, shutdown: &Shutdown) -> Self {
        Self {
            deadline: Instant::now() + Duration::from_secs(seconds),
            shutdown: shutdown.clone(),
        }
    }

    /// Whether the wait is over: its deadline passed, or the server stops.
    pub fn is_over(&self) -> bool {
        Instant::now() >= self.deadline || self.shutdown.is_stopping()
    }

    /// Sleeps until `woken` ends, the deadline, or the server's stop;
    /// true when `woken` ended it.
    pub async fn sleep_until(&self, woken: impl Future<Output = ()>) -> bool {
        tokio::select! {
            () = woken => true,
            () = tokio::time::sleep_until(self.deadline) => false,
            () = self.shutdown.stopping() => false,
        }
    }

    /// A blocking query: answers `look`'s result as soon as `ready` holds
    /// for it, or, when the wait is over, the last one. Looks again after
    /// each commit (the watch is taken before each look, so that a commit
    /// between the look and the sleep wakes it).
    pub async fn until<T, E, L, F>(
        &self,
        store: &Store,
        mut look: L,
        ready: impl Fn(&T) -> bool,
    ) -> Result<T, E>
    where
        L: FnMut() -> F,
        F: Future<Output = Result<T, E>>,
    {
        loop {
            let mut committed = store.changes().watch_committed();
            let answer = look().await?;
            if ready(&answer) || self.is_over() {
                return Ok(answer);
            }
            self.sleep_until(committed.changed()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let store = Store::open(&url).await.expect("opens");
        (dir, store)
    }

    #[tokio::test]
    async fn a_blocking_query_answers_when_ready_after_a_commit_wakes_it() {
        let (_dir, store) = store().await;
        let shutdown = Shutdown::new();
        let wait = Wait::new(30, &shutdown);
        let looks = std::sync::atomic::AtomicUsize::new(0);
        let changes = store.changes().clone();
        let waker = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            changes.committed();
        });
        let started = std::time::Instant::now();
        let answer: Result<usize, ()> = wait
            .until(
                &store,
                || async { Ok(looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1) },
                |n| *n >= 2,
            )
            .await;
        waker.await.expect("wakes");
        assert_eq!(answer, Ok(2), "one look, then one after the commit");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_wait_ends_at_its_deadline_and_at_the_stop_with_the_last_look() {
        let (_dir, store) = store().await;
        let shutdown = Shutdown::new();
        let over = Wait::new(0, &shutdown);
        assert!(over.is_over());
        let answer: Result<u8, ()> = over.until(&store, || async { Ok(7) }, |_| false).await;
        assert_eq!(answer, Ok(7), "an over wait answers its first look");

        let long = Wait::new(600, &shutdown);
        assert!(!long.is_over());
        let stopper = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                shutdown.trigger();
            })
        };
        let answer: Result<u8, ()> = long.until(&store, || async { Ok(8) }, |_| false).await;
        stopper.await.expect("stops");
        assert_eq!(answer, Ok(8));
        assert!(long.is_over());
        assert!(!long.sleep_until(std::future::pending()).await);
    }
}
