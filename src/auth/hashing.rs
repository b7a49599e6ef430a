//! The password hashing slots: at most [`SLOTS`] argon2 computations at
//! once, a bounded line of waiters served user by user in turn, and the
//! hashing memory handed from one computation to the next.
//!
//! Fairness: a flood of guesses at one user name fills only that user's
//! place in the line; every other user's first login waits for at most one
//! hash per user ahead of it. Within one user, the address with the fewest
//! failures goes first. Memory: an argon2id hash needs 19 MiB. Allocated
//! anew on each of the blocking pool's threads, glibc kept that memory in
//! per-thread arenas, and a flood grew the server by hundreds of MB. Here a
//! slot's memory passes straight to the next waiter and is released when
//! nobody waits; see [`Memory`] for why the release returns it to the system.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use argon2::Block;
use tokio::sync::oneshot;

/// Password hashes computed at once (each argon2id takes about 19 MiB).
pub const SLOTS: usize = 2;
/// Requests allowed to wait for a hash; past this, the newest waiter of the
/// user with the most waiting is refused (`503`).
pub const MAX_WAITING: usize = 64;

/// The memory of one argon2 computation.
///
/// Its capacity is above 32 MiB, glibc's largest dynamic mmap threshold, so
/// that the allocation is always a mapping of its own that a release
/// returns to the system; only the blocks a hash uses are ever touched.
#[derive(Debug)]
pub struct Memory(Vec<Block>);

/// Blocks (1 KiB each) reserved per slot: just over 32 MiB, see [`Memory`].
const RESERVED_BLOCKS: usize = 33 * 1024;

impl Default for Memory {
    /// Reserved, not yet touched.
    fn default() -> Self {
        Self(Vec::with_capacity(RESERVED_BLOCKS))
    }
}

impl Memory {
    /// At least `blocks` blocks, or `None` past the reserved capacity.
    pub fn blocks(&mut self, blocks: usize) -> Option<&mut [Block]> {
        if blocks > self.0.capacity() {
            return None;
        }
        if self.0.len() < blocks {
            self.0.resize(blocks, Block::default());
        }
        Some(&mut self.0[..blocks])
    }
}

/// Why no slot was given.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

/// The line of waiters: served user by user in turn; within one user, by
/// fewest failures of the address, then by arrival.
#[derive(Debug)]
pub struct Line<T> {
    capacity: usize,
    users: HashMap<i64, BTreeMap<(u32, u64), T>>,
    turn: VecDeque<i64>,
    len: usize,
    arrivals: u64,
}

/// What [`Line::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed<T> {
    Queued,
    /// Queued, and this other waiter was dropped to make room.
    Evicted(T),
    /// Not queued: the line is full of waiters with a better claim.
    Refused(T),
}

impl<T> Line<T> {
    /// An empty line holding at most `capacity` waiters.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            users: HashMap::new(),
            turn: VecDeque::new(),
            len: 0,
            arrivals: 0,
        }
    }

    /// Waiters in the line.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a waiter for `user` whose address has `failures`. When the line
    /// is full, the worst waiter (most failures, then newest) of the user
    /// with the most waiters leaves it: the newcomer itself, if that is it.
    pub fn push(&mut self, user: i64, failures: u32, item: T) -> Pushed<T> {
        let arrival = self.arrivals;
        self.arrivals += 1;
        let waiting = self.users.entry(user).or_default();
        if waiting.is_empty() {
            self.turn.push_back(user);
        }
        waiting.insert((failures, arrival), item);
        self.len += 1;
        if self.len <= self.capacity {
            return Pushed::Queued;
        }
        let longest = self
            .users
            .iter()
            .filter_map(|(u, w)| w.last_key_value().map(|(k, _)| ((w.len(), *k), *u)))
            .max()
            .map(|(_, u)| u)
            .unwrap_or(user);
        match self.remove_worst(longest) {
            Some(((_, dropped), item)) if dropped == arrival => Pushed::Refused(item),
            Some((_, item)) => Pushed::Evicted(item),
            None => Pushed::Queued,
        }
    }

    fn remove_worst(&mut self, user: i64) -> Option<((u32, u64), T)> {
        let waiting = self.users.get_mut(&user)?;
        let worst = waiting.pop_last()?;
        self.len -= 1;
        if waiting.is_empty() {
            self.users.remove(&user);
            self.turn.retain(|u| *u != user);
        }
        Some(worst)
    }

    /// The next waiter: the best of the user whose turn it is.
    pub fn pop(&mut self) -> Option<T> {
        let user = self.turn.pop_front()?;
        let waiting = self.users.get_mut(&user)?;
        let (_, item) = waiting.pop_first()?;
        self.len -= 1;
        if waiting.is_empty() {
            self.users.remove(&user);
        } else {
            self.turn.push_back(user);
        }
        Some(item)
    }
}

#[derive(Debug)]
struct State {
    /// Slots nobody holds.
    free: usize,
    line: Line<oneshot::Sender<Slot>>,
}

/// The hashing slots, shared by every login.
#[derive(Debug, Clone)]
pub struct Hashing {
    state: Arc<Mutex<State>>,
}

impl Default for Hashing {
    fn default() -> Self {
        Self::new(SLOTS, MAX_WAITING)
    }
}

impl Hashing {
    /// `slots` concurrent hashes, at most `waiting` waiters.
    pub fn new(slots: usize, waiting: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: slots,
                line: Line::new(waiting),
            })),
        }
    }

    /// A slot for a hash of `user`'s password from an address with
    /// `failures`: at once when one is free, else when it is this waiter's
    /// turn; [`Busy`] when the line has no room for it (or it was pushed
    /// out by a waiter with a better claim).
    pub async fn acquire(&self, user: i64, failures: u32) -> Result<Slot, Busy> {
        let turn = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.free > 0 {
                state.free -= 1;
                return Ok(Slot {
                    hashing: self.clone(),
                    memory: Some(Memory::default()),
                });
            }
            let (tx, rx) = oneshot::channel();
            match state.line.push(user, failures, tx) {
                Pushed::Queued => {}
                // Dropping its sender tells the evicted waiter it is busy.
                Pushed::Evicted(other) => drop(other),
                Pushed::Refused(_) => return Err(Busy),
            }
            rx
        };
        turn.await.map_err(|_| Busy)
    }

    /// Waiters in the line.
    pub fn waiting(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .line
            .len()
    }

    /// Hands a released slot's memory to the next waiter, or frees the slot
    /// (and the memory with it) when nobody waits.
    fn release(&self, mut memory: Memory) {
        loop {
            let next = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                match state.line.pop() {
                    Some(next) => next,
                    None => {
                        state.free += 1;
                        return;
                    }
                }
            };
            let slot = Slot {
                hashing: self.clone(),
                memory: Some(memory),
            };
            // A waiter that went away (its client disconnected) hands the
            // slot back; the next one gets it.
            match next.send(slot) {
                Ok(()) => return,
                Err(mut back) => match back.memory.take() {
                    Some(m) => memory = m,
                    None => return,
                },
            }
        }
    }
}

/// The right to run one hash, with its memory; passed on when dropped.
#[derive(Debug)]
pub struct Slot {
    hashing: Hashing,
    memory: Option<Memory>,
}

impl Slot {
    /// The slot's memory.
    pub fn memory(&mut self) -> &mut Memory {
        self.memory.get_or_insert_with(Memory::default)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(memory) = self.memory.take() {
            self.hashing.release(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_served_in_turn_whatever_one_of_them_floods() {
        let mut line = Line::new(100);
        for i in 0..50 {
            assert_eq!(line.push(1, 0, format!("flood{i}")), Pushed::Queued);
        }
        assert_eq!(line.push(2, 0, "alice".to_owned()), Pushed::Queued);
        assert_eq!(line.push(3, 0, "bob".to_owned()), Pushed::Queued);
        assert_eq!(line.pop().as_deref(), Some("flood0"));
        assert_eq!(line.pop().as_deref(), Some("alice"));
        assert_eq!(line.pop().as_deref(), Some("bob"));
        assert_eq!(line.pop().as_deref(), Some("flood1"));
        assert_eq!(line.len(), 48);
    }

    #[test]
    fn within_one_user_the_address_with_fewest_failures_goes_first() {
        let mut line = Line::new(10);
        line.push(1, 7, "guesser");
        line.push(1, 3, "second");
        line.push(1, 0, "clean");
        line.push(1, 3, "third");
        let order: Vec<_> = std::iter::from_fn(|| line.pop()).collect();
        assert_eq!(order, ["clean", "second", "third", "guesser"]);
        assert!(line.is_empty());
    }

    #[test]
    fn a_full_line_drops_the_worst_waiter_of_the_user_with_most_waiting() {
        let mut line = Line::new(4);
        for i in 0..4 {
            assert_eq!(line.push(1, 5, i), Pushed::Queued);
        }
        // Another user gets in: the flooding user's newest waiter leaves.
        assert_eq!(line.push(2, 0, 100), Pushed::Evicted(3));
        // The flooding user's next guess has the worst claim itself.
        assert_eq!(line.push(1, 5, 4), Pushed::Refused(4));
        // A guess from a cleaner address displaces a worse one.
        assert_eq!(line.push(1, 0, 5), Pushed::Evicted(2));
        assert_eq!(line.len(), 4);
        let order: Vec<_> = std::iter::from_fn(|| line.pop()).collect();
        assert_eq!(order, [5, 100, 0, 1]);
    }

    #[tokio::test]
    async fn slots_are_bounded_and_passed_to_waiters_with_their_memory() {
        let hashing = Hashing::new(2, 1);
        let mut first = hashing.acquire(1, 0).await.unwrap();
        let second = hashing.acquire(2, 0).await.unwrap();
        first.memory().blocks(8).unwrap()[0].as_mut()[0] = 42;
        let address = first.memory().0.as_ptr();

        let waiter = tokio::spawn({
            let hashing = hashing.clone();
            async move { hashing.acquire(3, 0).await }
        });
        while hashing.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            hashing.acquire(4, 0).await.err(),
            Some(Busy),
            "a full line refuses a waiter with no better claim"
        );
        drop(first);
        let mut third = waiter.await.unwrap().unwrap();
        assert_eq!(
            third.memory().0.as_ptr(),
            address,
            "the memory was handed on, not allocated again"
        );
        assert_eq!(third.memory().blocks(8).unwrap()[0].as_ref()[0], 42);
        drop((second, third));
        assert_eq!(hashing.state.lock().unwrap().free, 2);
    }

    #[tokio::test]
    async fn a_waiter_that_went_away_passes_its_turn_on() {
        let hashing = Hashing::new(1, 4);
        let held = hashing.acquire(1, 0).await.unwrap();
        let gone = tokio::spawn({
            let hashing = hashing.clone();
            async move { hashing.acquire(2, 0).await }
        });
        while hashing.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        let next = tokio::spawn({
            let hashing = hashing.clone();
            async move { hashing.acquire(3, 0).await }
        });
        while hashing.waiting() < 2 {
            tokio::task::yield_now().await;
        }
        drop(held);
        assert!(next.await.unwrap().is_ok());
    }

    #[test]
    fn memory_beyond_the_reserve_is_not_given() {
        let mut memory = Memory::default();
        assert!(memory.blocks(RESERVED_BLOCKS + 1).is_none());
        assert_eq!(memory.blocks(19 * 1024).map(|b| b.len()), Some(19 * 1024));
    }
}
