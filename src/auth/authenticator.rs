//! Checks credentials without hashing a password per request: the users
//! live in memory, refreshed whenever the database says they changed, and a
//! verified credential is remembered for a while under a keyed hash.
//!
//! Freshness: on SQLite, `PRAGMA data_version` ([`DataWatch`]) tells, at
//! every check, whether another connection (this server's pool or the
//! `steward user` CLI) committed; only then is the users epoch read. On
//! PostgreSQL, another replica's change is seen within [`PG_POLL`]. This
//! process's own changes call [`Authenticator::reload`] at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbBackend, DbErr};
use sha2::Sha256;

use super::hashing::Hashing;
use super::password;
use crate::store::users::{self, StoredUser};
use crate::store::watch::DataWatch;

/// How long a verified credential is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(120);
/// How often, at most, PostgreSQL replicas re-read the users epoch.
pub const PG_POLL: Duration = Duration::from_secs(2);
/// Remembered credentials kept at most.
const MAX_REMEMBERED: usize = 10_000;

/// Why a credential was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    #[error("too many password checks are waiting")]
    Busy,
    /// Refused by the guard before a hash (see [`Authenticator::authenticate_guarded`]).
    #[error("throttled")]
    Throttled(std::time::Duration),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

#[derive(Debug, Clone, Copy)]
struct Remembered {
    user_id: i64,
    revision: i64,
    until: Instant,
}

#[derive(Debug, Default)]
struct Users {
    by_name: HashMap<String, Arc<StoredUser>>,
    epoch: i64,
}

enum Watcher {
    Sqlite(DataWatch),
    Postgres { checked: Mutex<Instant> },
}

/// The credential checker shared by every request.
pub struct Authenticator {
    db: DatabaseConnection,
    watcher: Watcher,
    users: RwLock<Users>,
    remembered: Mutex<HashMap<[u8; 32], Remembered>>,
    key: [u8; 64],
    hashing: Hashing,
    /// About how long a hash takes, in microseconds: an unknown user's
    /// answer waits as long, so that timing does not tell names apart.
    typical_hash_micros: AtomicU64,
    /// Password hashes computed so far (for tests and benchmarks).
    hashes_computed: AtomicUsize,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the users. `watch` watches the same SQLite database (ignored
    /// on PostgreSQL).
    pub async fn new(db: DatabaseConnection, watch: Option<DataWatch>) -> Result<Self, DbErr> {
        let watcher = match (db.get_database_backend(), watch) {
            (DbBackend::Sqlite, Some(watch)) => Watcher::Sqlite(watch),
            _ => Watcher::Postgres {
                checked: Mutex::new(Instant::now()),
            },
        };
        let mut key = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let started = Instant::now();
        password::hash(&password::random_secret(16)).map_err(DbErr::Custom)?;
        let typical_hash_micros = AtomicU64::new(micros(started.elapsed()));
        let auth = Self {
            db,
            watcher,
            users: RwLock::new(Users::default()),
            remembered: Mutex::new(HashMap::new()),
            key,
            hashing: Hashing::default(),
            typical_hash_micros,
            hashes_computed: AtomicUsize::new(0),
        };
        auth.refresh().await?;
        auth.reload().await?;
        Ok(auth)
    }

    /// Re-reads every user (after a change).
    pub async fn reload(&self) -> Result<(), DbErr> {
        let epoch = users::epoch(&self.db).await?;
        let all = users::all(&self.db).await?;
        let by_name = all
            .into_iter()
            .map(|u| (u.draft.name.clone(), Arc::new(u)))
            .collect();
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Users { by_name, epoch };
        Ok(())
    }

    /// Reloads the users when the database says they may have changed.
    pub async fn refresh(&self) -> Result<(), DbErr> {
        let epoch = match &self.watcher {
            Watcher::Sqlite(watch) => watch.users_epoch_if_changed().await?,
            Watcher::Postgres { checked } => {
                let due = {
                    let mut checked = checked.lock().unwrap_or_else(|e| e.into_inner());
                    let due = checked.elapsed() >= PG_POLL;
                    if due {
                        *checked = Instant::now();
                    }
                    due
                };
                if due {
                    Some(users::epoch(&self.db).await?)
                } else {
                    None
                }
            }
        };
        if let Some(epoch) = epoch {
            let known = self.users.read().unwrap_or_else(|e| e.into_inner()).epoch;
            if epoch != known {
                self.reload().await?;
            }
        }
        Ok(())
    }

    /// The keyed hash a verified credential is remembered under: without
    /// the per-process key, an entry reveals nothing about the password.
    fn remember_key(&self, name: &str, password: &str) -> Option<[u8; 32]> {
        // HMAC takes keys of any length; should building it ever fail, the
        // credential is simply not remembered.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).ok()?;
        mac.update(name.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// The user these credentials belong to. A remembered credential costs
    /// a keyed hash and a map lookup; a new one runs argon2 once, in one of
    /// the hashing slots ([`super::hashing`]).
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Arc<StoredUser>, AuthError> {
        self.authenticate_guarded(name, password, || Ok(0)).await
    }

    /// As [`Self::authenticate`], calling `before_hash` when (and only
    /// when) the credential is not remembered and must be checked: its
    /// error ends the check there, and its answer is the client address's
    /// failures so far (fewer go first in the hashing line). The login
    /// throttle reserves an attempt in it, so that concurrent wrong guesses
    /// cannot all pass its check before any of them is counted, while
    /// remembered credentials never touch it.
    pub async fn authenticate_guarded(
        &self,
        name: &str,
        password: &str,
        before_hash: impl FnOnce() -> Result<u32, AuthError>,
    ) -> Result<Arc<StoredUser>, AuthError> {
        self.refresh().await?;
        let user = self
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .get(name)
            .cloned();
        let key = self.remember_key(name, password);
        if let Some(user) = &user
            && !user.draft.disabled
            && let Some(key) = &key
        {
            let now = Instant::now();
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = remembered.get_mut(key)
                && r.user_id == user.id
                && r.revision == user.revision
                && r.until > now
            {
                // Renewed while in use: a flood that keeps new logins
                // waiting never logs out those already in. A change to the
                // user (its revision) still ends it at once.
                r.until = now + REMEMBER_FOR;
                return Ok(user.clone());
            }
        }
        let failures = before_hash()?;
        let Some(user) = user else {
            // Nothing to hash, so nothing to wait for behind the checks that
            // must be hashed; answered after about as long as a hash takes,
            // so that timing does not tell which names exist.
            let typical = self.typical_hash_micros.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(typical)).await;
            return Err(AuthError::Invalid);
        };
        let mut slot = self
            .hashing
            .acquire(user.id, failures)
            .await
            .map_err(|_| AuthError::Busy)?;
        let (candidate, phc) = (password.to_owned(), user.password_hash.clone());
        self.hashes_computed.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        // The slot moves into the computation: it is passed on when the hash
        // ends, even if this request went away meanwhile.
        let ok = tokio::task::spawn_blocking(move || {
            let ok = password::verify_in(&candidate, &phc, slot.memory());
            drop(slot);
            ok
        })
        .await
        .unwrap_or(false);
        let took = micros(started.elapsed());
        let _ = self
            .typical_hash_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some((t.saturating_mul(7).saturating_add(took)) / 8)
            });
        if ok && !user.draft.disabled {
            if let Some(key) = key {
                self.remember(key, &user);
            }
            Ok(user)
        } else {
            Err(AuthError::Invalid)
        }
    }

    fn remember(&self, key: [u8; 32], user: &StoredUser) {
        let now = Instant::now();
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= MAX_REMEMBERED {
            remembered.retain(|_, r| r.until > now);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
        }
        remembered.insert(
            key,
            Remembered {
                user_id: user.id,
                revision: user.revision,
                until: now + REMEMBER_FOR,
            },
        );
    }

    /// How many password hashes were computed since start.
    pub fn hashes_computed(&self) -> usize {
        self.hashes_computed.load(Ordering::Relaxed)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
