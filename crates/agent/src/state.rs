//! The agent's state file `STATE_DIR/state.json`: what registration learnt,
//! written atomically and readable only by its owner; and `pending.json`,
//! which keeps a new host key until the state is complete.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AgentError;

/// The file name of the state inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// The file that keeps a host key between a registration and the state
/// file being complete, so that a failure in between never loses the key.
pub const PENDING_FILE: &str = "pending.json";

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/steward-agent";

/// What the agent keeps between runs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The server's base URL, without a trailing slash.
    pub server: String,
    /// The host object's name.
    pub host: String,
    /// The host object's stable id.
    pub host_id: i64,
    /// The host's own key (a secret).
    pub host_key: String,
    /// The server's Ed25519 public key, base64 of its 32 bytes.
    pub server_public_key: String,
    /// `sha256:` and the hex SHA-256 of the raw public key.
    pub server_fingerprint: String,
    /// The port the agent listens on.
    pub agent_port: u16,
    /// When the node last registered (RFC 3339, UTC).
    pub registered_at: String,
    /// The key the server announced it will sign with next (a rotation
    /// under way), base64; followed when an allowlist signed by it arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_server_key: Option<String>,
    /// The serial the server had issued to this host when the node last
    /// registered: an allowlist with a smaller serial is refused as stale,
    /// even with nothing held (a reinstalled node, a copied state file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_floor: Option<i64>,
    /// The name the node registers as (`--name`), when the server knows its
    /// host by another one (`host`: renamed since): so the next boot still
    /// recognises its own registration and re-registers with its host key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_as: Option<String>,
}

impl State {
    /// Whether this state is the registration of the node named `name`:
    /// under the host's current name, or under the name the node used
    /// before the server renamed its host.
    pub fn is_for(&self, name: &str) -> bool {
        self.host.eq_ignore_ascii_case(name)
            || self
                .registered_as
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("server", &self.server)
            .field("host", &self.host)
            .field("host_id", &self.host_id)
            .field("host_key", &"<redacted>")
            .field("server_fingerprint", &self.server_fingerprint)
            .field("agent_port", &self.agent_port)
            .field("registered_at", &self.registered_at)
            .field("serial_floor", &self.serial_floor)
            .field("registered_as", &self.registered_as)
            .finish_non_exhaustive()
    }
}

/// A host key the server gave whose state is not complete yet (the agent
/// configuration was not fetched, or the server's key was refused).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The server's base URL, without a trailing slash.
    pub server: String,
    /// The name the host registered as.
    pub host: String,
    /// The host's own key (a secret).
    pub host_key: String,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("server", &self.server)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The path of the state file in `dir`.
pub fn state_path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Reads the state from `dir`: `None` when there is no state file yet. A
/// file that exists but cannot be read or parsed is an error (it may hold
/// the only copy of the host key, so it is never silently replaced).
pub fn load(dir: &Path) -> Result<Option<State>, AgentError> {
    read_json(&state_path(dir))
}

/// Writes the state to `dir` atomically: a temporary file in the same
/// directory (mode 0600), written and fsynced, renamed over `state.json`,
/// then the directory fsynced. The directory is made (mode 0700) if missing.
pub fn save(dir: &Path, state: &State) -> Result<PathBuf, AgentError> {
    write_json(dir, STATE_FILE, state)
}

/// The path of the pending registration in `dir`.
pub fn pending_path(dir: &Path) -> PathBuf {
    dir.join(PENDING_FILE)
}

/// Reads a pending registration from `dir`, if there is one.
pub fn load_pending(dir: &Path) -> Result<Option<Pending>, AgentError> {
    read_json(&pending_path(dir))
}

/// Keeps a host key until the state is complete (written like [`save`]).
pub fn save_pending(dir: &Path, pending: &Pending) -> Result<PathBuf, AgentError> {
    write_json(dir, PENDING_FILE, pending)
}

/// Forgets the pending registration once the state is complete.
pub fn remove_pending(dir: &Path) -> Result<(), AgentError> {
    let path = pending_path(dir);
    match fs::remove_file(&path) {
        Ok(()) => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| AgentError::State(format!("cannot sync {}: {e}", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AgentError::State(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, AgentError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AgentError::State(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        AgentError::State(format!(
            "{} is not a valid state file ({e}); move it away to register anew",
            path.display()
        ))
    })
}

fn write_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<PathBuf, AgentError> {
    let path = dir.join(file);
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| AgentError::State(format!("cannot encode {file}: {e}")))?;
    text.push('\n');
    write_atomically(dir, &path, text.as_bytes(), 0o600)
        .map_err(|e| AgentError::State(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Makes `dir` (and its parents) with mode 0700 when it does not exist.
fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(0o700).create(dir)
        }
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` (a file in `dir`) through a temporary file in
/// `dir` with exactly `mode`: written, fsynced, renamed over `path`, then
/// `dir` fsynced. `dir` is made (mode 0700) if missing; a failed write
/// leaves no temporary file.
pub(crate) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    ensure_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // The umask cannot widen the mode, but a stricter one could narrow
        // it; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn sample() -> State {
        State {
            server: "https://steward.example".into(),
            host: "web-01.example".into(),
            host_id: 17,
            host_key: "secret-host-key".into(),
            server_public_key: "AAAA".into(),
            server_fingerprint: "sha256:00".into(),
            agent_port: 5665,
            registered_at: "2024-01-01T00:00:00Z".into(),
            next_server_key: None,
            serial_floor: None,
            registered_as: None,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn no_state_file_is_no_state() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        assert_eq!(load(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn save_makes_the_directory_0700_and_the_file_0600_and_loads_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let path = save(&dir, &sample()).unwrap();
        assert_eq!(path, dir.join("state.json"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load(&dir).unwrap(), Some(sample()));
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        for field in [
            "server",
            "host",
            "host_id",
            "host_key",
            "server_public_key",
            "server_fingerprint",
            "agent_port",
            "registered_at",
        ] {
            assert!(json.get(field).is_some(), "{field} missing");
        }
    }

    #[test]
    fn save_replaces_the_file_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        // An older file with a loose mode is replaced, not rewritten in place.
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut state = sample();
        state.host_id = 18;
        save(dir.path(), &state).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load(dir.path()).unwrap().unwrap().host_id, 18);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["state.json".to_owned()]);
    }

    #[test]
    fn an_existing_directory_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
        save(dir.path(), &sample()).unwrap();
        assert_eq!(mode(dir.path()), 0o750);
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        // A non-empty directory in the way of the rename makes the write fail.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(state_path(dir.path())).unwrap();
        fs::write(state_path(dir.path()).join("x"), "x").unwrap();
        assert!(save(dir.path(), &sample()).is_err());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary file left behind");
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(state_path(dir.path()), "not json").unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(matches!(err, AgentError::State(_)), "{err:?}");
    }

    #[test]
    fn debug_never_shows_the_host_key() {
        assert!(!format!("{:?}", sample()).contains("secret-host-key"));
        let pending = Pending {
            server: "s".into(),
            host: "h".into(),
            host_key: "secret-host-key".into(),
        };
        assert!(!format!("{pending:?}").contains("secret-host-key"));
    }

    #[test]
    fn a_pending_registration_is_kept_privately_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_pending(dir.path()).unwrap(), None);
        let pending = Pending {
            server: "https://steward.example".into(),
            host: "web-01.example".into(),
            host_key: "k".into(),
        };
        let path = save_pending(dir.path(), &pending).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(load_pending(dir.path()).unwrap(), Some(pending));
        remove_pending(dir.path()).unwrap();
        assert_eq!(load_pending(dir.path()).unwrap(), None);
        remove_pending(dir.path()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, "x").unwrap();
        assert!(save(&file, &sample()).is_err());
    }
}
