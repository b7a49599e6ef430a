//! Exact reads from memory on PostgreSQL, across replicas.
//!
//! A read must see every write answered before it arrived, on any replica.
//! Three parts make a kept object safe to answer with:
//!
//! - **The object revision.** Every row written to `objects` moves the one
//!   number of `object_changes` on, in the writing transaction, and
//!   notifies the channel `steward_objects` with the new number, the
//!   object's kind, type and name (migration `object_changes`). The row
//!   lock orders the moves as the commits are ordered, and PostgreSQL
//!   delivers notifications in commit order, so a replica that has
//!   *applied* the notifications up to number `A` has heard of every
//!   object change up to `A`, and of none after.
//! - **Keeping.** A read from the database fetches the object revision in
//!   the same statement (`r`, the snapshot it read). The object is kept only
//!   if `A <= r` at that moment: every change after `r` is then yet to be
//!   applied, and applying it forgets the object. An object kept is
//!   therefore always as the database has it at `A`.
//! - **The freshness check.** A read that finds its object kept asks the
//!   database for the object revision `C`, by a query *sent after the read
//!   arrived* ([`Checks`]): every write answered before then has committed,
//!   so `C` covers it. It then waits until `A >= C` (the notifications are
//!   usually there already) and answers from memory if the object is still
//!   kept. Many concurrent reads share one check, as many writes share one
//!   commit, so under load a read costs a fraction of a round trip. One
//!   check is under way at a time, on a connection of the checks' own: a
//!   read waits for the one in flight to return and for the next.
//!
//! While nothing listens (before the listener is connected, after it lost
//! its connection) nothing is kept and every read goes to the database: a
//! lost notification would otherwise leave a stale object. On reconnecting,
//! the listener forgets everything and starts again from the revision it
//! reads after it listens ([`Fresh::listening_from`]).
//!
//! A template change forgets every object of its kind: what the memory keeps
//! carries the kind's template revision, which the template cache compares.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::{self, Connection, PgConnection};
use tokio::sync::watch;

use super::objects;
use super::reads::{Found, Kept};
use crate::domain::{Kind, ObjectType};

/// How long a read waits for a freshness check, or for the notifications
/// it needs, before it reads the database instead.
const WAIT: Duration = Duration::from_secs(1);

/// Objects read by name on PostgreSQL, and what keeps them exact.
#[derive(Debug)]
pub struct Fresh {
    db: DatabaseConnection,
    checks: Arc<Checks>,
    known: Mutex<Known>,
    /// The object revision applied (`None` while nothing listens).
    applied: watch::Sender<Option<i64>>,
}

#[derive(Debug, Default)]
struct Known {
    /// The object revision applied, while a listener is connected.
    applied: Option<i64>,
    kept: Kept,
}

impl Fresh {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            checks: Arc::new(Checks::default()),
            known: Mutex::new(Known::default()),
            applied: watch::Sender::new(None),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The object kept for `kind` and `name`, if it is current for a read
    /// that arrived now (see the module's documentation). `None` sends the
    /// read to the database.
    pub async fn current(&self, kind: Kind, name: &str) -> Option<Found> {
        {
            let known = self.known();
            if known.applied.is_none() || !known.kept.contains(kind, name) {
                return None;
            }
        }
        let revision = self.checks.revision_after_now(&self.db).await?;
        let caught_up = |applied: &Option<i64>| applied.is_some_and(|a| a >= revision);
        // Usually the notifications are there already.
        if !caught_up(&self.applied.borrow()) {
            let mut applied = self.applied.subscribe();
            let waited = tokio::time::timeout(WAIT, applied.wait_for(caught_up)).await;
            if !matches!(waited, Ok(Ok(_))) {
                return None;
            }
        }
        let known = self.known();
        known
            .applied
            .is_some_and(|applied| applied >= revision)
            .then(|| known.kept.get(kind, name))
            .flatten()
    }

    /// Keeps `found` (`size` bytes of stored text), read from the database
    /// at object revision `read_at`, unless a change after `read_at` may
    /// already have been applied.
    pub fn remember(&self, read_at: i64, kind: Kind, name: &str, found: &Found, size: usize) {
        let mut known = self.known();
        if known.applied.is_some_and(|applied| applied <= read_at) {
            known.kept.keep(kind, name, found, size);
        }
    }

    /// The listener lost its connection: nothing is kept until it listens
    /// again.
    pub fn stopped_listening(&self) {
        let mut known = self.known();
        *known = Known::default();
        self.applied.send_replace(None);
    }

    /// The listener listens again and read the object revision `revision`
    /// after it began to: notifications were lost meanwhile, so everything
    /// kept is forgotten, and applied is that revision.
    pub fn listening_from(&self, revision: i64) {
        let mut known = self.known();
        *known = Known {
            applied: Some(revision),
            kept: Kept::default(),
        };
        self.applied.send_replace(Some(revision));
    }

    /// Applies the notifications of `steward_objects` received together,
    /// in the order received.
    pub fn changed<'a>(&self, payloads: impl IntoIterator<Item = &'a str>) {
        let mut known = self.known();
        if known.applied.is_none() {
            return;
        }
        for payload in payloads {
            let Some(change) = Change::parse(payload) else {
                tracing::warn!(
                    payload,
                    "an object notification that cannot be read: forgetting every object kept"
                );
                known.kept = Kept::default();
                continue;
            };
            match change.object {
                Some((kind, ObjectType::Template, _)) => known.kept.forget_kind(kind),
                Some((kind, _, name)) => known.kept.forget(kind, name),
                None => known.kept = Kept::default(),
            }
            known.applied = known.applied.max(Some(change.revision));
        }
        let applied = known.applied;
        drop(known);
        self.applied.send_if_modified(|now| {
            let moved = *now != applied;
            *now = applied;
            moved
        });
    }

    /// How many objects are kept (the tests look).
    pub fn kept(&self) -> usize {
        self.known().kept.len()
    }
}

/// One notification of `steward_objects`: `REVISION KIND TYPE NAME`, or
/// `REVISION *` for "any object".
#[derive(Debug, PartialEq, Eq)]
struct Change<'a> {
    revision: i64,
    object: Option<(Kind, ObjectType, &'a str)>,
}

impl<'a> Change<'a> {
    fn parse(payload: &'a str) -> Option<Self> {
        let (revision, rest) = payload.split_once(' ')?;
        let revision = revision.parse().ok()?;
        if rest == "*" {
            return Some(Self {
                revision,
                object: None,
            });
        }
        let (kind, rest) = rest.split_once(' ')?;
        let (object_type, name) = rest.split_once(' ')?;
        Some(Self {
            revision,
            object: Some((Kind::parse(kind)?, ObjectType::parse(object_type)?, name)),
        })
    }
}

/// The shared freshness checks. A read needs a check sent after it
/// arrived; when fewer than [`IN_FLIGHT`] are under way one is sent at
/// once, otherwise the read waits for the next one, sent as soon as one
/// ends. Checks are numbered in the order they are sent, and a read may
/// take the answer of any check numbered after its arrival. Each check runs
/// on a task of its own, so a read that goes away does not leave the
/// others waiting.
#[derive(Debug)]
struct Checks {
    state: Mutex<CheckState>,
    /// The number of the latest check answered, and what it read (`None`
    /// when it failed). It only moves forward.
    done: watch::Sender<(u64, Option<i64>)>,
    /// Connections of the checks' own, idle ([`IN_FLIGHT`] at most).
    connections: Mutex<Vec<PgConnection>>,
}

/// The checks' connections as `pg_stat_activity` names them.
pub const CHECKS_APPLICATION_NAME: &str = "steward freshness checks";

/// Freshness checks under way at most. With one, a read arriving while a
/// check is under way waits for it to return and for the next, but each
/// check serves about twice the reads: on a machine the reads keep busy,
/// the check's CPU on both sides of the socket is what limits them
/// (docs/PERFORMANCE.md, "Where a PostgreSQL read goes").
const IN_FLIGHT: usize = 1;

impl Default for Checks {
    fn default() -> Self {
        Self {
            state: Mutex::new(CheckState::default()),
            done: watch::Sender::new((0, None)),
            connections: Mutex::new(Vec::new()),
        }
    }
}

#[derive(Debug, Default)]
struct CheckState {
    /// Checks sent so far (the number of the latest).
    sent: u64,
    in_flight: usize,
    /// The highest check number a waiting read needs.
    wanted: u64,
}

impl Checks {
    /// The object revision read by a query sent after this call began
    /// (`None` when it failed or took longer than [`WAIT`]).
    async fn revision_after_now(self: &Arc<Self>, db: &DatabaseConnection) -> Option<i64> {
        let need = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let need = state.sent + 1;
            if state.in_flight < IN_FLIGHT {
                state.in_flight += 1;
                state.sent = need;
                tokio::spawn(Arc::clone(self).run(db.clone(), need));
            } else {
                state.wanted = state.wanted.max(need);
            }
            need
        };
        let mut done = self.done.subscribe();
        let answered = done.wait_for(|(number, _)| *number >= need);
        match tokio::time::timeout(WAIT, answered).await {
            Ok(Ok(answer)) => answer.1,
            _ => None,
        }
    }

    /// Sends check `number`, and the next ones as long as reads wait for them.
    async fn run(self: Arc<Self>, db: DatabaseConnection, mut number: u64) {
        let mut connection = self.connections().pop();
        loop {
            let revision = self.check(&db, &mut connection).await;
            if let Err(e) = &revision {
                tracing::warn!(error = %e, "cannot read the object revision");
            }
            let revision = revision.ok();
            self.done.send_if_modified(|done| {
                let newer = number > done.0;
                if newer {
                    *done = (number, revision);
                }
                newer
            });
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.wanted > state.sent {
                number = state.sent + 1;
                state.sent = number;
            } else {
                state.in_flight -= 1;
                drop(state);
                self.connections().extend(connection);
                return;
            }
        }
    }

    /// Reads the object revision on a connection of the checks' own
    /// (connected when missing, dropped when it fails or takes longer than
    /// [`WAIT`]): a check skips the pool, whose bookkeeping costs about as
    /// much as the check itself.
    async fn check(
        &self,
        db: &DatabaseConnection,
        connection: &mut Option<PgConnection>,
    ) -> Result<i64, sqlx::Error> {
        let checked = tokio::time::timeout(WAIT, async {
            let mut open = match connection.take() {
                Some(open) => open,
                None => {
                    let options = db
                        .get_postgres_connection_pool()
                        .connect_options()
                        .as_ref()
                        .clone()
                        .application_name(CHECKS_APPLICATION_NAME);
                    PgConnection::connect_with(&options).await?
                }
            };
            let revision = sqlx::query_scalar::<_, i64>(objects::OBJECT_REVISION)
                .fetch_one(&mut open)
                .await?;
            *connection = Some(open);
            Ok(revision)
        })
        .await;
        checked.unwrap_or_else(|_| {
            Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the freshness check took longer than a second",
            )))
        })
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Vec<PgConnection>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_its_revision_and_object() {
        assert_eq!(
            Change::parse("42 host object web 1"),
            Some(Change {
                revision: 42,
                object: Some((Kind::Host, ObjectType::Object, "web 1")),
            })
        );
        assert_eq!(
            Change::parse("7 script template base"),
            Some(Change {
                revision: 7,
                object: Some((Kind::Script, ObjectType::Template, "base")),
            })
        );
        assert_eq!(
            Change::parse("8 *"),
            Some(Change {
                revision: 8,
                object: None
            })
        );
        for bad in [
            "",
            "x host object a",
            "9",
            "9 host",
            "9 user object a",
            "9 host thing a",
        ] {
            assert_eq!(Change::parse(bad), None, "{bad:?}");
        }
    }
}
