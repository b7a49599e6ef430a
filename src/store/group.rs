//! The bookkeeping of group commit, shared by the SQLite writer
//! ([`super::writer`]) and the PostgreSQL one ([`super::pg_writer`]).
//!
//! Each object write runs in a savepoint of a transaction that may be
//! shared. When it ends and other object writes are queued for the store's
//! write lock, it leaves its change in the still open transaction (it
//! *joins* the group), hands the lock on and waits for the commit; the last
//! of the group (or the [`MAX_GROUP`]th) commits for all. Nobody is
//! answered before the commit that holds their change, so the guarantee is
//! that of one commit per write, and a group pays for one. A write that
//! fails rolls back its savepoint only.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// At most this many object writes share one commit. (On PostgreSQL each
/// is a subtransaction; 64 is where they stop fitting in its cache.)
pub const MAX_GROUP: u32 = 32;

/// How long a write that waits for its group's commit waits before it
/// looks whether it must commit the group itself (when the write that was
/// to do it went away).
const GROUP_WAIT: Duration = Duration::from_millis(20);

/// Outcomes of recent group commits kept for the writes that wait on them.
const OUTCOMES_KEPT: usize = 64;

/// The shared transaction.
#[derive(Debug, Default)]
pub struct Group {
    /// A transaction is open.
    pub open: bool,
    /// Writes that joined it, waiting for its commit.
    pub members: u32,
    /// The number of the open (or the next) group.
    pub generation: u64,
    /// `(generation, outcome)` of the latest commits.
    outcomes: VecDeque<(u64, Result<(), String>)>,
}

impl Group {
    /// The open transaction ended (committed or rolled back): records how.
    pub fn end(&mut self, outcome: Result<(), String>) {
        if self.outcomes.len() == OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((self.generation, outcome));
        self.open = false;
        self.members = 0;
        self.generation += 1;
    }

    /// Joins the write that just ended to the group, when `others` are
    /// queued to carry it on and it is not full: the generation to wait
    /// for. `None`: the write commits the group.
    pub fn join(&mut self, others: bool) -> Option<u64> {
        (others && self.members + 1 < MAX_GROUP).then(|| {
            self.members += 1;
            self.generation
        })
    }

    /// How group `generation` ended, once it did.
    fn outcome(&self, generation: u64) -> Option<Result<(), String>> {
        if self.generation <= generation {
            return None;
        }
        let outcome = self
            .outcomes
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, outcome)| outcome.clone())
            // Older than the outcomes kept: cannot happen while a member
            // waits, since a group commits only after its members joined.
            .unwrap_or_else(|| Err("the outcome of the commit was lost".to_owned()));
        Some(outcome)
    }
}

/// A group and the writes around it.
#[derive(Debug, Default)]
pub struct Groups {
    group: Mutex<Group>,
    /// Object writes waiting for the store's write lock.
    queued: AtomicUsize,
    ended: Notify,
}

impl Groups {
    pub fn group(&self) -> MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an object write as queued for the write lock until the
    /// returned guard is dropped.
    pub fn queue(&self) -> Queued<'_> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        Queued(self)
    }

    /// Whether object writes are queued for the write lock.
    pub fn others_queued(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Wakes the members waiting for a group that ended.
    pub fn ended(&self) {
        self.ended.notify_waiters();
    }

    /// How group `generation` ended, waiting for it up to [`GROUP_WAIT`]:
    /// `None` when it did not end meanwhile (the caller then looks whether
    /// it must commit the group itself).
    pub async fn outcome(&self, generation: u64) -> Option<Result<(), String>> {
        let notified = self.ended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(outcome) = self.group().outcome(generation) {
            return Some(outcome);
        }
        let _ = tokio::time::timeout(GROUP_WAIT, notified).await;
        self.group().outcome(generation)
    }

    /// Whether group `generation` is still open (its commit has not come).
    pub fn pending(&self, generation: u64) -> bool {
        let group = self.group();
        group.open && group.generation == generation
    }
}

/// An object write queued for the write lock (see [`Groups::queue`]).
#[derive(Debug)]
pub struct Queued<'a>(&'a Groups);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_joins_only_when_others_carry_the_group_on_and_it_is_not_full() {
        let mut group = Group {
            open: true,
            ..Group::default()
        };
        assert_eq!(group.join(false), None, "nobody queued: it commits");
        for joined in 1..MAX_GROUP {
            assert_eq!(group.join(true), Some(0));
            assert_eq!(group.members, joined);
        }
        assert_eq!(group.join(true), None, "the {MAX_GROUP}th commits");
    }

    #[test]
    fn members_learn_how_their_group_ended_and_no_other() {
        let mut group = Group {
            open: true,
            ..Group::default()
        };
        assert_eq!(group.outcome(0), None, "still open");
        group.end(Err("rolled back".into()));
        group.open = true;
        group.end(Ok(()));
        assert_eq!(group.outcome(0), Some(Err("rolled back".into())));
        assert_eq!(group.outcome(1), Some(Ok(())));
        assert_eq!(group.outcome(2), None);
        for _ in 0..OUTCOMES_KEPT {
            group.end(Ok(()));
        }
        assert!(
            matches!(group.outcome(0), Some(Err(_))),
            "forgotten: not taken for a success"
        );
    }
}

/// Group commit through the store, on SQLite and on PostgreSQL.
#[cfg(test)]
pub(crate) mod store_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sea_orm::{ConnectionTrait, Database, DbErr, Statement};
    use serde_json::{Map, json};

    use crate::domain::activity::Entry;
    use crate::domain::{Draft, Kind, write};
    use crate::store::{Store, sqlite_url};

    /// Runs `$body` (an async closure taking `Arc<Store>`) on a fresh SQLite
    /// file and on a fresh PostgreSQL database.
    macro_rules! on_both {
        ($name:ident, $body:expr) => {
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = Store::open(&sqlite_url(dir.path())).await.expect("store");
                    ($body)(Arc::new(store)).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(steward_postgres_tests),
                    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
                )]
                async fn postgres() {
                    let (admin, name, url) = fresh_postgres().await;
                    let store = Arc::new(Store::open(&url).await.expect("store"));
                    ($body)(Arc::clone(&store)).await;
                    drop(store);
                    let admin = Database::connect(&admin).await.expect("connect");
                    let drop_it = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = admin
                        .execute_raw(Statement::from_string(
                            admin.get_database_backend(),
                            drop_it,
                        ))
                        .await;
                }
            }
        };
    }

    /// A fresh database on the test server: its admin URL, name and URL.
    async fn fresh_postgres() -> (String, String, String) {
        let admin = std::env::var("STEWARD_TEST_DATABASE_URL")
            .expect("STEWARD_TEST_DATABASE_URL is not set: a PostgreSQL test cannot run");
        let name = format!("steward_u_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(&admin)
            .await
            .expect("connect to PostgreSQL");
        conn.execute_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("CREATE DATABASE {name}"),
        ))
        .await
        .expect("create a test database");
        let (root, query) = match admin.split_once('?') {
            Some((root, query)) => (root, Some(query)),
            None => (admin.as_str(), None),
        };
        let root = &root[..root.rfind('/').expect("a database URL has a path")];
        let url = match query {
            Some(query) => format!("{root}/{name}?{query}"),
            None => format!("{root}/{name}"),
        };
        (admin, name, url)
    }

    fn host(name: &str) -> Draft {
        write::create(Kind::Host, Some(name), &Map::new()).expect("a valid host")
    }

    /// An activity entry of a new host, for the store's tests.
    pub(crate) fn entry(name: &str) -> Entry {
        Entry {
            at: 1,
            author: "test".into(),
            action: "create".into(),
            object_type: "host".into(),
            object_name: name.into(),
            before: None,
            after: Some(json!({ "object_name": name })),
            request_id: None,
            object_id: None,
            reverts: None,
        }
    }

    async fn exists(store: &Store, name: &str) -> bool {
        store
            .find_object(Kind::Host, name)
            .await
            .expect("read")
            .is_some()
    }

    /// An object write of a new host in a task of its own, which joins the
    /// open group when another write is queued.
    fn spawn_member(
        store: &Arc<Store>,
        name: &'static str,
    ) -> tokio::task::JoinHandle<Result<(), DbErr>> {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            let tx = store.begin_object_write().await?;
            tx.insert(&host(name)).await?;
            tx.append_activity(&entry(name)).await?;
            tx.commit().await
        })
    }

    /// Waits (a bounded time) until `done` holds.
    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..5000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("the condition never held");
    }

    on_both!(
        a_group_is_answered_only_once_committed_and_a_failed_write_leaves_it_whole,
        async |store: Arc<Store>| {
            let groups = store.groups();
            // Another write is queued, so the first one joins a group and waits.
            let queued = groups.queue();
            let first = spawn_member(&store, "first");
            until(|| groups.group().members == 1).await;
            assert!(!first.is_finished(), "answered before its commit");
            assert!(
                !exists(&store, "first").await,
                "committed before the group ended"
            );

            // The queued write joins the group and fails: its savepoint is
            // rolled back and, nobody else being queued, the group is committed.
            drop(queued);
            let tx = store.begin_object_write().await.expect("begin");
            tx.insert(&host("failed")).await.expect("insert");
            tx.append_activity(&entry("failed")).await.expect("log");
            let refused = tx.insert(&host("failed")).await;
            assert!(refused.is_err(), "a second host of the same name");
            drop(tx);

            first
                .await
                .expect("task")
                .expect("the first write is committed");
            assert!(exists(&store, "first").await);
            assert!(!exists(&store, "failed").await);
            // The failed write's entry went with it: the next one chains to the
            // first write's, and the whole log verifies.
            spawn_member(&store, "next")
                .await
                .expect("task")
                .expect("commit");
            let chain = crate::service::activity::verify(&store)
                .await
                .expect("read the log");
            assert_eq!(chain, Ok(2));
        }
    );

    on_both!(
        a_group_left_by_the_write_that_was_to_commit_it_is_committed_by_its_members,
        async |store: Arc<Store>| {
            let groups = store.groups();
            // A write counted as queued that never comes (its request went away).
            let _gone = groups.queue();
            let tx = store.begin_object_write().await.expect("begin");
            tx.insert(&host("alone")).await.expect("insert");
            tx.commit().await.expect("committed after the wait");
            assert!(exists(&store, "alone").await);
            assert!(!groups.group().open);
        }
    );

    on_both!(
        another_write_transaction_commits_the_open_group_first,
        async |store: Arc<Store>| {
            let groups = store.groups();
            let queued = groups.queue();
            let first = spawn_member(&store, "grouped");
            until(|| groups.group().members == 1).await;
            // A pool transaction (users, deploys, ...) needs the write lock
            // the group holds (SQLite's, or PostgreSQL's advisory lock).
            let other = store.begin_write().await.expect("begin a pool transaction");
            assert!(!groups.group().open);
            other.commit().await.expect("commit");
            drop(queued);
            first
                .await
                .expect("task")
                .expect("the grouped write is committed");
            assert!(exists(&store, "grouped").await);
        }
    );

    on_both!(
        a_group_whose_every_member_went_away_is_committed_by_the_sweep,
        async |store: Arc<Store>| {
            let groups = store.groups();
            let queued = groups.queue();
            let member = spawn_member(&store, "abandoned");
            until(|| groups.group().members == 1).await;
            // Its request is cancelled while it waits, and so is the queued one.
            member.abort();
            let _ = member.await;
            drop(queued);
            assert!(groups.group().open, "the group still holds the write lock");

            store.commit_open_group().await.expect("sweep");
            assert!(!groups.group().open);
            assert!(
                exists(&store, "abandoned").await,
                "its change was answered by nobody but is kept"
            );
        }
    );

    on_both!(
        a_write_dropped_unfinished_in_a_group_is_rolled_back_alone,
        async |store: Arc<Store>| {
            let groups = store.groups();
            let queued = groups.queue();
            let first = spawn_member(&store, "kept");
            until(|| groups.group().members == 1).await;
            // The next write's request goes away halfway (no error: it is
            // dropped), while a third is queued behind it.
            let third = groups.queue();
            drop(queued);
            let tx = store.begin_object_write().await.expect("begin");
            tx.insert(&host("dropped")).await.expect("insert");
            drop(tx);
            drop(third);
            spawn_member(&store, "third")
                .await
                .expect("task")
                .expect("commit");
            first
                .await
                .expect("task")
                .expect("the first write is committed");
            assert!(exists(&store, "kept").await);
            assert!(exists(&store, "third").await);
            assert!(!exists(&store, "dropped").await);
            let chain = crate::service::activity::verify(&store)
                .await
                .expect("read the log");
            assert_eq!(chain, Ok(2));
        }
    );

    /// Overwrites host `name` with `body` merged in, in `tx`.
    async fn merge_host(
        tx: &crate::store::ObjectTx<'_>,
        name: &str,
        body: serde_json::Value,
    ) -> Result<(), DbErr> {
        let current = tx.find(Kind::Host, name).await?.expect("the host exists");
        let body = body.as_object().expect("an object").clone();
        let next = write::merge(&current.draft, &body).expect("a valid change");
        tx.update(&current, &next).await.map(|_| ())
    }

    on_both!(
        an_update_is_seen_by_its_own_write_and_kept_without_an_entry,
        async |store: Arc<Store>| {
            spawn_member(&store, "web")
                .await
                .expect("task")
                .expect("commit");
            let tx = store.begin_object_write().await.expect("begin");
            merge_host(&tx, "web", json!({ "vars": { "role": "db" } }))
                .await
                .expect("update");
            // The write's next statement goes after its update (which on
            // PostgreSQL waits to travel with an activity entry).
            let seen = tx
                .find(Kind::Host, "web")
                .await
                .expect("read")
                .expect("found");
            assert_eq!(seen.draft.props.get("vars"), Some(&json!({ "role": "db" })));
            merge_host(&tx, "web", json!({ "vars": { "role": "mail" } }))
                .await
                .expect("update again");
            tx.commit().await.expect("commit");
            let (kept, _) = store
                .find_object(Kind::Host, "web")
                .await
                .expect("read")
                .expect("found");
            assert_eq!(
                kept.draft.props.get("vars"),
                Some(&json!({ "role": "mail" }))
            );
        }
    );

    on_both!(
        an_update_that_fails_with_its_entry_fails_alone_in_its_group,
        async |store: Arc<Store>| {
            for name in ["a", "b"] {
                spawn_member(&store, name)
                    .await
                    .expect("task")
                    .expect("commit");
            }
            let groups = store.groups();
            let queued = groups.queue();
            let first = {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let tx = store.begin_object_write().await?;
                    merge_host(&tx, "a", json!({ "vars": { "kept": "yes" } })).await?;
                    tx.append_activity(&entry("a")).await?;
                    tx.commit().await
                })
            };
            until(|| groups.group().members == 1).await;
            drop(queued);
            // Renaming b to a breaks the unique name: on SQLite the update
            // fails, on PostgreSQL the statement that carries it with its
            // entry does. Either way the write fails and rolls back alone.
            let tx = store.begin_object_write().await.expect("begin");
            let failed = match merge_host(&tx, "b", json!({ "object_name": "a" })).await {
                Err(_) => true,
                Ok(()) => tx.append_activity(&entry("a")).await.is_err(),
            };
            assert!(failed, "two hosts named a");
            drop(tx);
            first
                .await
                .expect("task")
                .expect("the group's other write is committed");
            let (a, _) = store
                .find_object(Kind::Host, "a")
                .await
                .expect("read")
                .expect("a");
            assert_eq!(a.draft.props.get("vars"), Some(&json!({ "kept": "yes" })));
            assert!(exists(&store, "b").await, "b was not renamed");
            let chain = crate::service::activity::verify(&store)
                .await
                .expect("read the log");
            assert_eq!(chain, Ok(3));
        }
    );
}
