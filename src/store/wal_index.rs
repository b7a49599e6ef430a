//! Whether anything was committed to a SQLite file, told by one `pread`.
//!
//! In WAL mode every commit, by any process, rewrites the WAL-index header
//! at the start of the `-shm` file (SQLite's file format, "The WAL-Index
//! Format": two copies of a 48-byte header whose change counter, frame
//! count, salts and checksums change with each commit; a writer writes the
//! second copy, then the first). A transaction becomes visible to readers
//! only when that header is written. So two reads of the header that agree
//! mean nothing was committed in between, and a value read from the
//! database after the first of them is still current at the second.
//!
//! The header is read with one `pread` of 96 bytes: no lock, no
//! transaction. When the two copies differ (a writer is at work), or there
//! is no `-shm` file, or the read fails, there is no header, and callers
//! fall back to asking the database.
//!
//! [`WalIndex`] keeps a connection of its own open: SQLite removes or
//! reinitialises the `-shm` file only when no connection to the database is
//! left, so the file it reads stays the one every writer updates.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// One copy of the WAL-index header, in bytes; the file starts with two.
const WAL_INDEX_HEADER: usize = 48;

/// The WAL-index header: equal values mean no commit in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark([u8; WAL_INDEX_HEADER]);

/// The `-shm` file of one SQLite database, and the connection that keeps it.
#[derive(Debug)]
pub struct WalIndex {
    /// Kept open for as long as the index lives (in a mutex only because a
    /// connection is not `Sync`).
    anchor: Mutex<Option<rusqlite::Connection>>,
    /// The `-shm` file, when it could be opened.
    shm: Option<File>,
}

impl WalIndex {
    /// The index of the database at `path`. It gives no marks when the file
    /// cannot be opened or is not in WAL mode.
    pub fn open(path: &Path) -> Self {
        // The anchor reads once, which maps the `-shm` file and takes the
        // shared lock a WAL connection keeps for as long as it is open. A
        // database not in WAL mode gets no anchor and so no marks: a `-shm`
        // file left from an earlier WAL would never change. While the anchor
        // is open nobody can leave WAL mode (that needs the only connection).
        let anchor = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()
        .filter(|conn| {
            conn.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0))
                .is_ok_and(|mode| mode.eq_ignore_ascii_case("wal"))
        });
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        Self {
            shm: anchor.as_ref().and_then(|_| File::open(shm).ok()),
            anchor: Mutex::new(anchor),
        }
    }

    /// The current mark when the header's two copies agree; `None` otherwise.
    pub fn mark(&self) -> Option<Mark> {
        let mut both = [0u8; 2 * WAL_INDEX_HEADER];
        self.shm.as_ref()?.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(WAL_INDEX_HEADER);
        (first == second)
            .then(|| first.try_into().ok().map(Mark))
            .flatten()
    }

    /// Whether the anchor connection is open (marks are possible).
    pub fn is_anchored(&self) -> bool {
        self.anchor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_moves_with_every_commit_and_only_then() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("marked.sqlite");
        let writer = rusqlite::Connection::open(&path).expect("open");
        writer
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER);")
            .expect("schema");
        let index = WalIndex::open(&path);
        assert!(index.is_anchored());

        let mut last = index.mark().expect("a mark");
        for v in 0..20 {
            assert_eq!(index.mark(), Some(last), "no commit, no move");
            writer
                .execute("INSERT INTO t (v) VALUES (?1)", [v])
                .expect("insert");
            let now = index.mark().expect("a mark");
            assert_ne!(now, last, "commit {v} moves the mark");
            last = now;
        }
        // A rolled-back transaction commits nothing.
        writer
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES (99); ROLLBACK;")
            .expect("rollback");
        assert_eq!(index.mark(), Some(last));
        // After a checkpoint that restarts the WAL, a commit still moves it.
        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        writer
            .execute("INSERT INTO t (v) VALUES (1)", [])
            .expect("insert");
        assert_ne!(index.mark(), Some(last));
    }

    #[test]
    fn a_database_not_in_wal_mode_gives_no_mark() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("journal.sqlite");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER);")
            .expect("schema");
        // A `-shm` file left behind must not be taken for a live one.
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        std::fs::write(&shm, [7u8; 96]).expect("a stale -shm");
        let index = WalIndex::open(&path);
        assert!(!index.is_anchored());
        assert_eq!(index.mark(), None);
    }

    #[test]
    fn no_file_no_mark() {
        let dir = tempfile::tempdir().expect("temp dir");
        let index = WalIndex::open(&dir.path().join("missing").join("db.sqlite"));
        assert!(!index.is_anchored());
        assert_eq!(index.mark(), None);
    }
}
