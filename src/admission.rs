//! Bounded admission of work: at most so many at once, at most so many
//! waiting for their turn; whoever comes when the waiting room is full is
//! turned away at once (and answered `503` with `Retry-After`), instead of
//! queueing without limit. After a restart, ten thousand pulling agents
//! reconnect within a second: they wait their turn in a room sized for a
//! fleet, a few dozen doing database work at once; whoever comes beyond
//! the room comes back later, spread by a random `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// Work admitted at once, and the waiting room.
#[derive(Debug)]
pub struct Admission {
    permits: Semaphore,
    waiting: AtomicUsize,
    room: usize,
    /// `Retry-After` is drawn from this many seconds (1 to `spread`).
    spread: u64,
}

/// One waiting place, given back however the wait ends (a request can be
/// dropped while it waits).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `at_once` admitted together, `room` waiting at most, `Retry-After`
    /// drawn from 1 to `spread` seconds.
    pub fn new(at_once: usize, room: usize, spread: u64) -> Self {
        Self {
            permits: Semaphore::new(at_once.max(1)),
            waiting: AtomicUsize::new(0),
            room,
            spread: spread.max(1),
        }
    }

    /// Admits new work: at once, after waiting its turn, or, when the
    /// waiting room is full, not at all.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.room {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Busy {
                message: "The server is busy: retry later".into(),
                retry_after: rand::thread_rng().gen_range(1..=self.spread),
            });
        }
        let _place = Place(&self.waiting);
        self.turn().await
    }

    /// Admits work already admitted once (a long poll woken to look
    /// again): it waits its turn however many wait, as they are bounded by
    /// the requests held already.
    pub async fn turn(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("The server is stopping".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_waiting_room_turns_newcomers_away_with_a_retry_after() {
        let admission = std::sync::Arc::new(Admission::new(1, 2, 5));
        let held = admission.enter().await.expect("admitted at once");
        let mut waiting = Vec::new();
        for _ in 0..2 {
            let admission = admission.clone();
            waiting.push(tokio::spawn(async move {
                admission.enter().await.map(|_| ()).is_ok()
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        match admission.enter().await {
            Err(ApiError::Busy { retry_after, .. }) => assert!((1..=5).contains(&retry_after)),
            other => panic!("expected Busy, got {:?}", other.map(|_| ())),
        }
        // Those already admitted once still wait their turn.
        let again = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.turn().await.map(|_| ()).is_ok() })
        };
        drop(held);
        for waiter in waiting {
            assert!(waiter.await.expect("joins"));
        }
        assert!(again.await.expect("joins"));
        // The room is free again.
        assert!(admission.enter().await.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_waiter_gives_its_place_back() {
        let admission = Admission::new(1, 1, 1);
        let held = admission.enter().await.expect("admitted");
        let wait = tokio::time::timeout(std::time::Duration::from_millis(10), admission.enter());
        assert!(wait.await.is_err(), "it waited");
        // The place of the dropped wait is free: this one waits, not refused.
        let wait = tokio::time::timeout(std::time::Duration::from_millis(10), admission.enter());
        assert!(wait.await.is_err(), "it waited instead of being refused");
        drop(held);
    }
}
