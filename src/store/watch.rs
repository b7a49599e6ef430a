//! Whether anyone committed to the SQLite file, asked on every
//! authenticated request (the users may have been changed by the
//! `steward user` CLI, another process), and then the users epoch.
//!
//! `PRAGMA data_version` answers, per connection, whether another
//! connection committed since that connection last asked. One connection
//! behind a lock made concurrent requests wait for each other, so the watch
//! keeps several, each with the value it last saw, taken and given back like
//! a pool. A commit is then reported by the first look at each connection
//! after it; the first of those reports comes after the commit, which is
//! all a reload needs.
//!
//! **The fast path.** Asking `data_version` is a read transaction: it takes
//! and releases SQLite's POSIX locks, several system calls per request. So
//! the watch first reads the WAL-index mark ([`super::wal_index`], one
//! `pread`): when it equals the mark seen before the last full check,
//! nothing was committed since, and the answer is "unchanged" without a
//! transaction. No mark (a writer at work, no `-shm` file, a read error)
//! takes the full check. The mark is taken before the full check, so a
//! commit that lands during the check moves it again and is caught by the
//! next request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::DbErr;

use super::exec::Inline;
use super::wal_index::{Mark, WalIndex};

/// Connections kept at most (as many are used as requests check at once).
const MAX_IDLE: usize = 16;

/// The commit watch over one SQLite file.
#[derive(Debug)]
pub struct DataWatch {
    path: PathBuf,
    /// Idle connections with the `data_version` each saw last.
    idle: Mutex<Vec<(Mutex<rusqlite::Connection>, i64)>>,
    /// The WAL-index of the file.
    index: Arc<WalIndex>,
    /// The mark read before the last full check.
    checked: Mutex<Option<Mark>>,
    /// Full checks made (the fast path's tests count them).
    full_checks: AtomicU64,
}

impl DataWatch {
    pub fn new(path: &Path, index: Arc<WalIndex>) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            index,
            checked: Mutex::new(None),
            full_checks: AtomicU64::new(0),
        }
    }

    /// The users epoch when a commit may have happened since the connection
    /// at hand last looked (always on a new connection), read on that
    /// connection; `None` when nothing was committed.
    pub async fn users_epoch_if_changed(&self) -> Result<Option<i64>, DbErr> {
        let mark = self.index.mark();
        {
            let checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
            if mark.is_some() && mark == *checked {
                return Ok(None);
            }
        }
        let epoch = self.full_check().await?;
        *self.checked.lock().unwrap_or_else(PoisonError::into_inner) = mark;
        Ok(epoch)
    }

    /// `data_version` on a connection of the set, and the users epoch when
    /// it moved.
    async fn full_check(&self) -> Result<Option<i64>, DbErr> {
        self.full_checks.fetch_add(1, Ordering::Relaxed);
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, seen) = match idle {
            Some(idle) => idle,
            None => (Mutex::new(open(&self.path).map_err(error)?), -1),
        };
        let now = conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
            .map_err(error)?;
        let epoch = if now == seen {
            None
        } else {
            Some(super::users::epoch(&Inline::new(&conn, "SQLite read")).await?)
        };
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((conn, now));
        }
        Ok(epoch)
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

fn error(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("PRAGMA data_version: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::users::USERS_EPOCH;
    use super::*;

    fn set_epoch(conn: &rusqlite::Connection, epoch: i64) {
        conn.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
            (USERS_EPOCH, epoch.to_string()),
        )
        .expect("write the epoch");
    }

    #[tokio::test]
    async fn every_commit_by_another_connection_is_seen_and_nothing_else_costs_a_check() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("watched.sqlite");
        // Another process's connection, kept open as the server keeps its own.
        let other = rusqlite::Connection::open(&path).expect("open");
        other
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            )
            .expect("schema");
        set_epoch(&other, 1);
        let watch = DataWatch::new(&path, Arc::new(WalIndex::open(&path)));

        assert_eq!(
            watch.users_epoch_if_changed().await.expect("check"),
            Some(1)
        );
        let checks = watch.full_checks.load(Ordering::Relaxed);
        for _ in 0..10 {
            assert_eq!(watch.users_epoch_if_changed().await.expect("check"), None);
        }
        assert_eq!(
            watch.full_checks.load(Ordering::Relaxed),
            checks,
            "nothing was committed: the mark alone answers"
        );

        for epoch in 2..20 {
            set_epoch(&other, epoch);
            assert_eq!(
                watch.users_epoch_if_changed().await.expect("check"),
                Some(epoch),
                "a commit is seen by the next check"
            );
            assert_eq!(watch.users_epoch_if_changed().await.expect("check"), None);
        }

        // A checkpoint that restarts the WAL moves the mark too.
        other
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        set_epoch(&other, 42);
        assert_eq!(
            watch.users_epoch_if_changed().await.expect("check"),
            Some(42)
        );
    }
}
