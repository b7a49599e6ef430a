//! Throttling of wrong credentials per client address and per (address,
//! user) pair. Keyed by address, so an attacker elsewhere hammering a user
//! name never locks that user out of their own address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures of one pair before it is throttled.
pub const PAIR_FREE_FAILURES: u32 = 5;
/// Failures of one address (all user names) before it is throttled.
pub const ADDRESS_FREE_FAILURES: u32 = 30;
/// The longest wait imposed.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// A key's failures are forgotten after this long without a new one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys kept at most; past this, forgotten keys are dropped, then the oldest.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    /// The user name only as its SHA-256: a key's size never depends on it.
    Pair(IpAddr, [u8; 32]),
}

fn pair(address: IpAddr, user: &str) -> Key {
    use sha2::{Digest, Sha256};
    Key::Pair(address, Sha256::digest(user.as_bytes()).into())
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// When this key may try again: free failures first, then a wait that
    /// doubles with every further failure.
    fn blocked_until(&self, free: u32) -> Option<Instant> {
        if self.count < free {
            return None;
        }
        let exponent = (self.count - free).min(20);
        let wait = Duration::from_secs(1u64 << exponent).min(MAX_WAIT);
        Some(self.last + wait)
    }
}

/// Failed self-service key checks from one address before it is throttled.
pub const KEY_ADDRESS_FREE_FAILURES: u32 = 10;

/// Wrong-credential counters.
#[derive(Debug)]
pub struct Throttle {
    keys: Mutex<HashMap<Key, Failures>>,
    pair_free: u32,
    address_free: u32,
}

impl Default for Throttle {
    /// The limits for passwords: per (address, user) and per address.
    fn default() -> Self {
        Self::new(PAIR_FREE_FAILURES, ADDRESS_FREE_FAILURES)
    }
}

impl Throttle {
    /// Counters with these free failures per (address, user) and per address.
    pub fn new(pair_free: u32, address_free: u32) -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
            pair_free,
            address_free,
        }
    }

    /// The limits for self-service keys: per address only (a key has no user).
    pub fn for_keys() -> Self {
        Self::new(u32::MAX, KEY_ADDRESS_FREE_FAILURES)
    }

    /// `Err(wait)` while the address, or the address with this user, is throttled.
    pub fn check(&self, address: IpAddr, user: &str, now: Instant) -> Result<(), Duration> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        self.wait(&keys, address, user, now)
    }

    fn wait(
        &self,
        keys: &HashMap<Key, Failures>,
        address: IpAddr,
        user: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        if keys.is_empty() {
            return Ok(());
        }
        let checks = [
            (Key::Address(address), self.address_free),
            (pair(address, user), self.pair_free),
        ];
        let mut wait = Duration::ZERO;
        for (key, free) in checks {
            if let Some(f) = keys.get(&key)
                && now.duration_since(f.last) < FORGET_AFTER
                && let Some(until) = f.blocked_until(free)
                && until > now
            {
                wait = wait.max(until - now);
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a wrong credential.
    pub fn failed(&self, address: IpAddr, user: &str, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        count(&mut keys, address, user, now);
    }

    /// Checks and counts one attempt in one step, before its hash: `n`
    /// concurrent guesses from a key with `free` failures left get at most
    /// `free` hashes, the rest `Err(wait)`. An attempt that proves right is
    /// given back with [`Throttle::refund`]; one that proves wrong, or that
    /// could not be hashed (the server was busy), stays counted. Answers
    /// the address's failures before this attempt: the hashing line serves
    /// cleaner addresses first.
    pub fn reserve(&self, address: IpAddr, user: &str, now: Instant) -> Result<u32, Duration> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        self.wait(&keys, address, user, now)?;
        let before = keys
            .get(&Key::Address(address))
            .filter(|f| now.duration_since(f.last) < FORGET_AFTER)
            .map_or(0, |f| f.count);
        count(&mut keys, address, user, now);
        Ok(before)
    }

    /// A reserved attempt whose credential was right: its pair is cleared
    /// (as [`Throttle::succeeded`]) and the address's count given back.
    pub fn refund(&self, address: IpAddr, user: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&pair(address, user));
        let key = Key::Address(address);
        if let Some(f) = keys.get_mut(&key) {
            f.count = f.count.saturating_sub(1);
            if f.count == 0 {
                keys.remove(&key);
            }
        }
    }

    /// A right credential clears its pair (not the address: one good login
    /// must not reset a flood of guesses at other names).
    pub fn succeeded(&self, address: IpAddr, user: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.is_empty() {
            keys.remove(&pair(address, user));
        }
    }
}

/// Counts one failure of the address and of the pair.
fn count(keys: &mut HashMap<Key, Failures>, address: IpAddr, user: &str, now: Instant) {
    if keys.len() >= MAX_KEYS {
        keys.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        if keys.len() >= MAX_KEYS {
            keys.retain(|k, _| matches!(k, Key::Address(_)));
        }
    }
    for key in [Key::Address(address), pair(address, user)] {
        let entry = keys.entry(key).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_pair_is_throttled_after_its_free_failures_with_a_doubling_wait() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..PAIR_FREE_FAILURES {
            assert!(t.check(ip(1), "alice", now).is_ok());
            t.failed(ip(1), "alice", now);
        }
        assert_eq!(t.check(ip(1), "alice", now), Err(Duration::from_secs(1)));
        t.failed(ip(1), "alice", now);
        assert_eq!(t.check(ip(1), "alice", now), Err(Duration::from_secs(2)));
        assert!(
            t.check(ip(1), "alice", now + Duration::from_secs(3))
                .is_ok()
        );
    }

    #[test]
    fn an_attacker_elsewhere_does_not_lock_the_user_out_of_their_address() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..100 {
            t.failed(ip(66), "alice", now);
        }
        assert!(t.check(ip(66), "alice", now).is_err());
        assert!(
            t.check(ip(66), "bob", now).is_err(),
            "the attacking address is throttled for all names"
        );
        assert!(
            t.check(ip(1), "alice", now).is_ok(),
            "alice's own address is not"
        );
    }

    #[test]
    fn a_reservation_answers_the_failures_of_its_address_before_it() {
        let t = Throttle::default();
        let now = Instant::now();
        assert_eq!(t.reserve(ip(3), "alice", now), Ok(0));
        assert_eq!(t.reserve(ip(3), "bob", now), Ok(1));
        assert_eq!(t.reserve(ip(4), "alice", now), Ok(0), "per address");
        assert_eq!(
            t.reserve(ip(3), "carol", now + FORGET_AFTER),
            Ok(0),
            "forgotten failures do not count"
        );
    }

    #[test]
    fn success_clears_the_pair_and_old_failures_are_forgotten() {
        let t = Throttle::default();
        let now = Instant::now();
        for _ in 0..PAIR_FREE_FAILURES {
            t.failed(ip(1), "alice", now);
        }
        t.succeeded(ip(1), "alice");
        assert!(t.check(ip(1), "alice", now).is_ok());
        for _ in 0..PAIR_FREE_FAILURES + 3 {
            t.failed(ip(2), "bob", now);
        }
        assert!(t.check(ip(2), "bob", now + FORGET_AFTER).is_ok());
    }
}
