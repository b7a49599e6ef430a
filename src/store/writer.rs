//! Object writes on SQLite, run inline on one dedicated connection.
//!
//! The pool's driver (sqlx) runs every SQLite statement on a worker thread
//! of its own and hands the result back through a channel. A merge runs six
//! statements one after the other while it holds the write lock (BEGIN, the
//! object, the update, the activity log's last entry, the new entry,
//! COMMIT), and on two cores those thread switches, not the statements nor
//! the `fsync`, were what limited durable writes (docs/PERFORMANCE.md).
//!
//! So on a SQLite file, the object writes ([`super::ObjectTx`]: creating,
//! changing and deleting hosts, scripts and templates, with their
//! references and activity entries, and registrations) run on one rusqlite
//! connection kept for writing, called on the request's own thread, as the
//! reads in [`super::reads`] are. The queries are the same functions
//! ([`super::objects`], [`super::activity`], [`super::keys`]) that run on
//! the pool: [`LiteTx::inline`] is a sea-orm connection ([`super::exec`]).
//! `tests/api` runs every object write on both.
//!
//! Only one write transaction runs at a time (the store's write lock), so
//! the connection's mutex is never contended; it is there because the
//! connection is not `Sync`. `BEGIN IMMEDIATE` does not wait inside SQLite
//! when another process (the CLI) holds the write lock: it is retried after
//! an asynchronous sleep, so a busy database never blocks a runtime thread.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sea_orm::DbErr;
use tokio::sync::Notify;

use super::exec::{Inline, STATEMENT_CACHE};

/// How long a statement inside a transaction may wait for a lock (only a
/// checkpoint or WAL recovery by another process takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many object writes share one commit.
const MAX_GROUP: u32 = 32;

/// How long a write that waits for its group's commit waits before it
/// commits the group itself (when the write that was to do it went away).
const GROUP_WAIT: Duration = Duration::from_millis(20);

/// Outcomes of recent group commits kept for the writes that wait on them.
const OUTCOMES_KEPT: usize = 64;

/// The write connection of one SQLite file, and its group commit.
///
/// **Group commit.** Each object write runs in a savepoint of a transaction
/// that may be shared. When it ends and other object writes are queued for
/// the write lock, it releases its savepoint and hands the still open
/// transaction to the next one, then waits for the commit; the last of the
/// group (or the [`MAX_GROUP`]th) commits for all. Nobody is answered before
/// the commit that holds their change is on disk, so the guarantee is that
/// of one commit per write, and a group pays one `fsync`. A write that fails
/// rolls back its savepoint only. Every other write transaction commits the
/// open group first ([`SqliteWriter::flush`]).
#[derive(Debug)]
pub struct SqliteWriter {
    conn: Mutex<Connection>,
    group: Mutex<Group>,
    /// Object writes waiting for the store's write lock.
    queued: AtomicUsize,
    committed: Notify,
}

/// The shared transaction.
#[derive(Debug, Default)]
struct Group {
    /// A transaction is open on the connection.
    open: bool,
    /// Writes whose savepoint was released into it, waiting for its commit.
    members: u32,
    /// The number of the open (or the next) group.
    generation: u64,
    /// `(generation, outcome)` of the latest commits.
    outcomes: VecDeque<(u64, Result<(), String>)>,
}

impl Group {
    /// The open transaction ended (committed or rolled back): records how.
    fn end(&mut self, outcome: Result<(), String>) {
        if self.outcomes.len() == OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((self.generation, outcome));
        self.open = false;
        self.members = 0;
        self.generation += 1;
    }
}

impl SqliteWriter {
    /// Opens the file for writing with the settings the pool's connections
    /// have: WAL, `synchronous=FULL` (a commit is on disk when answered),
    /// foreign keys.
    pub fn open(path: &Path) -> Result<Self, DbErr> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(sqlite_error)?;
        Ok(Self {
            conn: Mutex::new(conn),
            group: Mutex::new(Group::default()),
            queued: AtomicUsize::new(0),
            committed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn group(&self) -> MutexGuard<'_, Group> {
        self.group.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a transaction is open (a group waits for its commit).
    pub fn is_open(&self) -> bool {
        self.group().open
    }

    /// Counts an object write as queued for the write lock until the
    /// returned guard is dropped.
    pub fn queue(&self) -> Queued<'_> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        Queued(self)
    }

    /// Begins an object write, with the store's write lock held: joins the
    /// open transaction, or begins one (`BEGIN IMMEDIATE`: it holds SQLite's
    /// write lock from the start), waiting up to `timeout` for another
    /// process to release that lock.
    pub async fn begin(&self, timeout: Duration) -> Result<LiteTx<'_>, DbErr> {
        if !self.group().open {
            self.begin_transaction(timeout).await?;
            self.group().open = true;
        }
        self.with(|conn| conn.execute_batch("SAVEPOINT object_write"))?;
        Ok(LiteTx {
            writer: self,
            open: true,
        })
    }

    async fn begin_transaction(&self, timeout: Duration) -> Result<(), DbErr> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let begun = {
                let conn = self.lock();
                let begun = conn
                    .busy_timeout(Duration::ZERO)
                    .and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"));
                let _ = conn.busy_timeout(BUSY_TIMEOUT);
                begun
            };
            match begun {
                Ok(()) => return Ok(()),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(sqlite_error(e)),
            }
        }
    }

    fn with<T>(&self, run: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, DbErr> {
        run(&self.lock()).map_err(sqlite_error)
    }

    /// Commits the open transaction, if any, for every write in it (with
    /// the store's write lock held).
    pub fn flush(&self) -> Result<(), DbErr> {
        let mut group = self.group();
        if !group.open {
            return Ok(());
        }
        let outcome = {
            let conn = self.lock();
            if conn.is_autocommit() {
                // An error made SQLite roll the whole transaction back.
                Err("the transaction was rolled back".to_owned())
            } else {
                let committed = conn.execute_batch("COMMIT");
                if committed.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                committed.map_err(|e| e.to_string())
            }
        };
        group.end(outcome.clone());
        drop(group);
        self.committed.notify_waiters();
        outcome.map_err(|e| DbErr::Custom(format!("SQLite write: {e}")))
    }

    /// Waits until the group `generation` is committed and answers how. If
    /// the commit does not come (the write that was to make it went away),
    /// takes the write `lock` and commits the group itself.
    async fn committed(&self, generation: u64, lock: &tokio::sync::Mutex<()>) -> Result<(), DbErr> {
        loop {
            let notified = self.committed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.outcome(generation) {
                return outcome;
            }
            if tokio::time::timeout(GROUP_WAIT, notified).await.is_err() {
                let _guard = lock.lock().await;
                let pending = {
                    let group = self.group();
                    group.open && group.generation == generation
                };
                if pending {
                    self.flush()?;
                }
            }
        }
    }

    fn outcome(&self, generation: u64) -> Option<Result<(), DbErr>> {
        let group = self.group();
        if group.generation <= generation {
            return None;
        }
        let outcome = group
            .outcomes
            .iter()
            .find(|(g, _)| *g == generation)
            .map(|(_, outcome)| outcome.clone())
            // Older than the outcomes kept: cannot happen while the write
            // waits, since a group commits only after its members joined.
            .unwrap_or_else(|| Err("the outcome of the commit was lost".to_owned()));
        Some(outcome.map_err(|e| DbErr::Custom(format!("SQLite write: {e}"))))
    }
}

/// An object write queued for the write lock (see [`SqliteWriter::queue`]).
#[derive(Debug)]
pub struct Queued<'a>(&'a SqliteWriter);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A transaction on the [`SqliteWriter`]; dropping it rolls back.
#[derive(Debug)]
pub struct LiteTx<'a> {
    writer: &'a SqliteWriter,
    open: bool,
}

impl LiteTx<'_> {
    fn with<T>(&self, run: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, DbErr> {
        self.writer.with(run)
    }

    /// The write connection, for the store's queries (see [`super::exec`]).
    pub fn inline(&self) -> Inline<'_> {
        Inline::new(&self.writer.conn, "SQLite write")
    }

    /// Commits this write, with the store's write `guard` held: alone, or,
    /// when other object writes are queued, as part of a group (see
    /// [`SqliteWriter`]). Answers once the commit holding it is on disk.
    /// COMMIT waits for the disk on this thread: handing it to a blocking
    /// thread measured slower (docs/PERFORMANCE.md, "One inline write
    /// connection").
    pub async fn commit(mut self, guard: tokio::sync::MutexGuard<'_, ()>) -> Result<(), DbErr> {
        let lock = tokio::sync::MutexGuard::mutex(&guard);
        let writer = self.writer;
        self.open = false;
        if let Err(e) = self.with(|conn| conn.execute_batch("RELEASE object_write")) {
            rollback(writer);
            return Err(e);
        }
        let generation = {
            let mut group = writer.group();
            let others = writer.queued.load(Ordering::SeqCst) > 0;
            if others && group.members + 1 < MAX_GROUP {
                group.members += 1;
                Some(group.generation)
            } else {
                None
            }
        };
        match generation {
            Some(generation) => {
                drop(guard);
                writer.committed(generation, lock).await
            }
            None => {
                let committed = writer.flush();
                drop(guard);
                committed
            }
        }
    }
}

/// Rolls back the current write's savepoint. When no earlier write of the
/// group is in the transaction, or the savepoint cannot be rolled back, the
/// whole transaction is, and the group's writes learn it failed.
fn rollback(writer: &SqliteWriter) {
    let mut group = writer.group();
    let conn = writer.lock();
    let kept = !conn.is_autocommit()
        && group.members > 0
        && conn
            .execute_batch("ROLLBACK TO object_write; RELEASE object_write")
            .is_ok();
    if kept {
        // The group's earlier writes wait for a commit: when no other write
        // is queued to carry the group on, it is now.
        drop(conn);
        drop(group);
        if writer.queued.load(Ordering::SeqCst) == 0 {
            let _ = writer.flush();
        }
        return;
    }
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    drop(conn);
    group.end(Err("the transaction was rolled back".to_owned()));
    drop(group);
    writer.committed.notify_waiters();
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            rollback(self.writer);
        }
    }
}

fn sqlite_error(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite write: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::domain::activity::{Entry, GENESIS};
    use crate::domain::write;
    use crate::domain::{Draft, Kind};
    use crate::store::{Store, objects, sqlite_url};

    fn host(name: &str, vars: serde_json::Value) -> Draft {
        let mut body = Map::new();
        body.insert("vars".into(), vars);
        write::create(Kind::Host, Some(name), &body).expect("a valid host")
    }

    fn entry(name: &str) -> Entry {
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

    #[tokio::test]
    async fn only_a_committed_object_write_is_seen_and_the_pool_sees_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&sqlite_url(dir.path())).await.expect("store");

        let tx = store.begin_object_write().await.expect("begin");
        assert!(tx.is_inline());
        tx.insert(&host("dropped", json!({})))
            .await
            .expect("insert");
        tx.append_activity(&entry("dropped")).await.expect("log");
        drop(tx);
        assert!(
            store
                .find_object(Kind::Host, "dropped")
                .await
                .expect("read")
                .is_none()
        );
        assert_eq!(
            crate::store::activity::latest_checksum(store.db())
                .await
                .expect("log"),
            None
        );

        let tx = store.begin_object_write().await.expect("begin");
        let stored = tx
            .insert(&host("kept", json!({ "n": 1 })))
            .await
            .expect("insert");
        let changed = tx
            .update(&stored, &host("kept", json!({ "n": 2 })))
            .await
            .expect("update");
        tx.append_activity(&entry("kept")).await.expect("log");
        tx.commit().await.expect("commit");

        let through_pool = objects::find(store.db(), Kind::Host, "kept")
            .await
            .expect("pool read")
            .expect("the committed host");
        assert_eq!(through_pool, changed);
        let logged = crate::store::activity::latest_checksum(store.db())
            .await
            .expect("log");
        assert_eq!(logged, Some(entry("kept").checksum(GENESIS)));
    }

    #[tokio::test]
    async fn begin_waits_for_another_process_that_holds_the_write_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("locked.sqlite");
        let other = Connection::open(&path).expect("open");
        other
            .execute_batch("PRAGMA journal_mode = WAL; BEGIN IMMEDIATE; CREATE TABLE t (x);")
            .expect("lock");
        let writer = SqliteWriter::open(&path).expect("writer");
        let lock = tokio::sync::Mutex::new(());

        let refused = writer.begin(Duration::from_millis(50)).await;
        assert!(refused.is_err(), "the lock was held past the timeout");

        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            other.execute_batch("COMMIT").expect("release");
        });
        let tx = writer.begin(Duration::from_secs(10)).await.expect("begin");
        // It began after the other transaction committed: it sees the table.
        let rows: i64 = tx
            .with(|conn| conn.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
            .expect("the other process's table");
        assert_eq!(rows, 0);
        tx.commit(lock.lock().await).await.expect("commit");
        release.join().expect("thread");
    }

    async fn sqlite_store() -> (tempfile::TempDir, std::sync::Arc<Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&sqlite_url(dir.path())).await.expect("store");
        (dir, std::sync::Arc::new(store))
    }

    /// An object write of a new host in a task of its own, which joins the
    /// open group when another write is queued.
    fn spawn_member(
        store: &std::sync::Arc<Store>,
        name: &'static str,
    ) -> tokio::task::JoinHandle<Result<(), DbErr>> {
        let store = std::sync::Arc::clone(store);
        tokio::spawn(async move {
            let tx = store.begin_object_write().await?;
            tx.insert(&host(name, json!({}))).await?;
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

    #[tokio::test]
    async fn a_group_is_answered_only_once_committed_and_a_failed_write_leaves_it_whole() {
        let (_dir, store) = sqlite_store().await;
        let writer = store.writer.as_ref().expect("a SQLite file has a writer");

        // Another write is queued, so the first one joins a group and waits.
        let queued = writer.queue();
        let first = spawn_member(&store, "first");
        until(|| writer.group().members == 1).await;
        assert!(!first.is_finished(), "answered before its commit");
        let seen = store.find_object(Kind::Host, "first").await.expect("read");
        assert!(seen.is_none(), "committed before the group ended");

        // The queued write joins the group and fails: its savepoint is rolled
        // back and, nobody else being queued, the group is committed.
        drop(queued);
        let tx = store.begin_object_write().await.expect("begin");
        tx.insert(&host("failed", json!({}))).await.expect("insert");
        tx.append_activity(&entry("failed")).await.expect("log");
        drop(tx);

        first
            .await
            .expect("task")
            .expect("the first write is committed");
        let first = store.find_object(Kind::Host, "first").await.expect("read");
        assert!(first.is_some());
        let failed = store.find_object(Kind::Host, "failed").await.expect("read");
        assert!(failed.is_none());
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

    #[tokio::test]
    async fn a_group_left_by_the_write_that_was_to_commit_it_is_committed_by_its_members() {
        let (_dir, store) = sqlite_store().await;
        let writer = store.writer.as_ref().expect("a SQLite file has a writer");

        // A write counted as queued that never comes (its request went away).
        let _gone = writer.queue();
        let tx = store.begin_object_write().await.expect("begin");
        tx.insert(&host("alone", json!({}))).await.expect("insert");
        tx.commit().await.expect("committed after the wait");
        let alone = store.find_object(Kind::Host, "alone").await.expect("read");
        assert!(alone.is_some());
        assert!(!writer.group().open);
    }

    #[tokio::test]
    async fn another_write_transaction_commits_the_open_group_first() {
        let (_dir, store) = sqlite_store().await;
        let writer = store.writer.as_ref().expect("a SQLite file has a writer");

        let queued = writer.queue();
        let first = spawn_member(&store, "grouped");
        until(|| writer.group().members == 1).await;
        // A pool transaction (users, deploys, ...) needs SQLite's write lock.
        let other = store.begin_write().await.expect("begin a pool transaction");
        assert!(!writer.group().open);
        other.commit().await.expect("commit");
        drop(queued);
        first
            .await
            .expect("task")
            .expect("the grouped write is committed");
        let grouped = store
            .find_object(Kind::Host, "grouped")
            .await
            .expect("read");
        assert!(grouped.is_some());
    }

    #[tokio::test]
    async fn a_group_whose_every_member_went_away_is_committed_by_the_sweep() {
        let (_dir, store) = sqlite_store().await;
        let writer = store.writer.as_ref().expect("a SQLite file has a writer");

        let queued = writer.queue();
        let member = spawn_member(&store, "abandoned");
        until(|| writer.group().members == 1).await;
        // Its request is cancelled while it waits, and so is the queued one.
        member.abort();
        let _ = member.await;
        drop(queued);
        assert!(writer.is_open(), "the group still holds the write lock");

        store.commit_open_group().await.expect("sweep");
        assert!(!writer.is_open());
        let abandoned = store
            .find_object(Kind::Host, "abandoned")
            .await
            .expect("read");
        assert!(
            abandoned.is_some(),
            "its change was answered by nobody but is kept"
        );
    }
}
