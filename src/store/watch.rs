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

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sea_orm::DbErr;

use super::users::USERS_EPOCH;

/// Connections kept at most (as many are used as requests check at once).
const MAX_IDLE: usize = 16;

/// The commit watch over one SQLite file.
#[derive(Debug)]
pub struct DataWatch {
    path: PathBuf,
    /// Idle connections with the `data_version` each saw last.
    idle: Mutex<Vec<(rusqlite::Connection, i64)>>,
}

impl DataWatch {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The users epoch when a commit may have happened since the connection
    /// at hand last looked (always on a new connection), read on that
    /// connection; `None` when nothing was committed.
    pub fn users_epoch_if_changed(&self) -> Result<Option<i64>, DbErr> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, seen) = match idle {
            Some(idle) => idle,
            None => (open(&self.path).map_err(error)?, -1),
        };
        let now = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get::<_, i64>(0)))
            .map_err(error)?;
        let epoch = if now == seen {
            None
        } else {
            Some(users_epoch(&conn).map_err(error)?)
        };
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push((conn, now));
        }
        Ok(epoch)
    }
}

/// As [`super::users::epoch`] reads it.
fn users_epoch(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    let mut statement = conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?;
    let mut rows = statement.query([USERS_EPOCH])?;
    Ok(match rows.next()? {
        Some(row) => row.get::<_, String>(0)?.parse().unwrap_or(0),
        None => 0,
    })
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
