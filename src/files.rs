//! Files and folders that hold secrets (the data directory, the SQLite
//! database with its password and key hashes, keys): readable by the owner
//! only, and written atomically.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Takes group and other access away from `path`: whether it had any.
fn narrow(path: &Path) -> io::Result<bool> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, Permissions::from_mode(mode & 0o7700))?;
    Ok(true)
}

/// Creates `dir` and its missing parents with mode 0700, or takes group
/// and other access away from an existing one: answers whether it did.
pub fn private_dir(dir: &Path) -> Result<bool, String> {
    let failed = |e: io::Error| format!("cannot make {} private: {e}", dir.display());
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => narrow(dir).map_err(failed),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map(|()| false)
            .map_err(failed),
        Err(e) => Err(failed(e)),
    }
}

/// Creates the SQLite database file `db` with mode 0600 when it is missing
/// (SQLite gives its `-wal` and `-shm` files the database's mode), and
/// takes group and other access away from the database, `-wal` and `-shm`
/// files that have it: answers the files it narrowed.
pub fn private_sqlite(db: &Path) -> Result<Vec<PathBuf>, String> {
    let failed = |path: &Path, e: io::Error| format!("cannot make {} private: {e}", path.display());
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(db)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed(db, e)),
    }
    let mut narrowed = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match narrow(&path) {
            Ok(true) => narrowed.push(path),
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(&path, e)),
        }
    }
    Ok(narrowed)
}

/// Writes `text` to `path` with mode 0600: a temporary file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    private_dir(dir)?;
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
    }

    #[test]
    fn a_new_data_directory_and_database_are_the_owners_alone() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/steward-data");
        assert_eq!(private_dir(&dir), Ok(false));
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("steward.sqlite");
        assert_eq!(private_sqlite(&db), Ok(vec![]));
        assert_eq!(mode(&db), 0o600);
        fs::write(&db, b"kept").expect("write");
        assert_eq!(private_sqlite(&db), Ok(vec![]), "an existing file is kept");
        assert_eq!(fs::read(&db).ok(), Some(b"kept".to_vec()));
    }

    #[test]
    fn an_open_data_directory_and_database_are_narrowed() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path();
        fs::set_permissions(dir, Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(private_dir(dir), Ok(true));
        assert_eq!(mode(dir), 0o700);
        let db = dir.join("steward.sqlite");
        let wal = dir.join("steward.sqlite-wal");
        for path in [&db, &wal] {
            fs::write(path, b"").expect("write");
            fs::set_permissions(path, Permissions::from_mode(0o644)).expect("chmod");
        }
        assert_eq!(private_sqlite(&db), Ok(vec![db.clone(), wal.clone()]));
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
        assert_eq!(private_dir(dir), Ok(false), "nothing left to narrow");
    }
}
