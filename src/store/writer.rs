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

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sea_orm::DbErr;

use super::exec::{Inline, STATEMENT_CACHE};
use super::group::{Group, Groups, Queued};

/// How long a statement inside a transaction may wait for a lock (only a
/// checkpoint or WAL recovery by another process takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The write connection of one SQLite file, and its group commit (see
/// [`super::group`]): object writes share a transaction, each in a
/// savepoint, and a group pays one `fsync`. Every other write transaction
/// commits the open group first ([`SqliteWriter::flush`]).
#[derive(Debug)]
pub struct SqliteWriter {
    conn: Mutex<Connection>,
    groups: Groups,
}

impl SqliteWriter {
    /// Its group commit (the tests look into it).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

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
            groups: Groups::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn group(&self) -> MutexGuard<'_, Group> {
        self.groups.group()
    }

    /// Whether a transaction is open (a group waits for its commit).
    pub fn is_open(&self) -> bool {
        self.group().open
    }

    /// Counts an object write as queued for the write lock until the
    /// returned guard is dropped.
    pub fn queue(&self) -> Queued<'_> {
        self.groups.queue()
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
        self.groups.ended();
        outcome.map_err(|e| DbErr::Custom(format!("SQLite write: {e}")))
    }

    /// Waits until the group `generation` is committed and answers how. If
    /// the commit does not come (the write that was to make it went away),
    /// takes the write `lock` and commits the group itself.
    async fn committed(&self, generation: u64, lock: &tokio::sync::Mutex<()>) -> Result<(), DbErr> {
        loop {
            if let Some(outcome) = self.groups.outcome(generation).await {
                return outcome.map_err(|e| DbErr::Custom(format!("SQLite write: {e}")));
            }
            let _guard = lock.lock().await;
            if self.groups.pending(generation) {
                self.flush()?;
            }
        }
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
        let generation = writer.group().join(writer.groups.others_queued());
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
        if !writer.groups.others_queued() {
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
    writer.groups.ended();
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
    use crate::domain::activity::GENESIS;
    use crate::domain::write;
    use crate::domain::{Draft, Kind};
    use crate::store::group::store_tests::entry;
    use crate::store::{Store, objects, sqlite_url};

    fn host(name: &str, vars: serde_json::Value) -> Draft {
        let mut body = Map::new();
        body.insert("vars".into(), vars);
        write::create(Kind::Host, Some(name), &body).expect("a valid host")
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
}
