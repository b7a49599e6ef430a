//! The signed allowlist an agent holds: deciding whether a document the
//! server sent may replace it (signature, host, serial, then content), and
//! keeping it on disk as JSON and in ctrl-exec's `scripts.conf` form.
//!
//! The signature, checksum and name rules are the server's own
//! ([`crate::domain::allowlist`], [`crate::domain::name`],
//! [`crate::domain::normalise::check_command`]); this module only applies
//! them on the node and adds what is the node's business: the pinned key,
//! its own host id, the serial it holds and its allowed directories.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use super::state::{self, State};
use crate::domain::allowlist::{AllowedScript, Allowlist, FORMAT, verify_signature};
use crate::domain::normalise;
use crate::domain::{Kind, ObjectName};

/// The file name of the held allowlist inside the state directory.
pub const ALLOWLIST_FILE: &str = "allowlist.json";

/// The default allowlist path: `STATE_DIR/allowlist.json`.
pub fn default_path(state_dir: &Path) -> PathBuf {
    state_dir.join(ALLOWLIST_FILE)
}

/// The mode of the files the agent writes for others to read
/// (`allowlist.json`, `scripts.conf`): neither holds a secret.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// What a held allowlist is checked against: the server key pinned at
/// registration and the node's own host id.
#[derive(Debug, Clone)]
pub struct Pinned {
    /// The server's Ed25519 public key.
    pub key: VerifyingKey,
    /// The key the server announced for its next rotation, if any.
    pub next: Option<VerifyingKey>,
    /// The host id the server gave this node.
    pub host_id: i64,
    /// The serial the server had issued when the node registered: anything
    /// older is stale, whatever is held.
    pub serial_floor: Option<i64>,
}

impl Pinned {
    /// Reads the pinned key and host id from the agent's state.
    pub fn from_state(state: &State) -> Result<Self, String> {
        let key = public_key(&state.server_public_key)
            .map_err(|e| format!("the pinned server key {e}"))?;
        let next = match state.next_server_key.as_deref() {
            Some(next) => {
                Some(public_key(next).map_err(|e| format!("the announced server key {e}"))?)
            }
            None => None,
        };
        Ok(Self {
            key,
            next,
            host_id: state.host_id,
            serial_floor: state.serial_floor,
        })
    }

    /// Writes the keys into `state` (to be saved).
    pub fn to_state(&self, state: &mut State) {
        let raw = self.key.to_bytes();
        state.server_public_key = STANDARD.encode(raw);
        state.server_fingerprint = crate::domain::allowlist::fingerprint(&raw);
        state.next_server_key = self.next.map(|k| STANDARD.encode(k.to_bytes()));
    }
}

/// An Ed25519 public key from base64 of its 32 bytes.
pub fn public_key(text: &str) -> Result<VerifyingKey, String> {
    let raw = STANDARD
        .decode(text.trim())
        .map_err(|e| format!("is not base64: {e}"))?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| format!("has {} bytes, not 32", raw.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("is not an Ed25519 key: {e}"))
}

/// How an accepted document changes the keys the agent trusts, if it does:
/// signed by the announced key, that key becomes the pinned one (the
/// rotation is done, the old key is no longer trusted); signed by the
/// pinned key and announcing a new `next_key`, that key is remembered.
pub fn key_change(document: &Value, pinned: &Pinned) -> Option<Pinned> {
    if verify_signature(document, &pinned.key).is_err() {
        let next = pinned.next?;
        verify_signature(document, &next).ok()?;
        return Some(Pinned {
            key: next,
            next: None,
            ..pinned.clone()
        });
    }
    let announced = public_key(document.get("next_key")?.as_str()?).ok()?;
    if announced == pinned.key || Some(announced) == pinned.next {
        return None;
    }
    Some(Pinned {
        next: Some(announced),
        ..pinned.clone()
    })
}

/// A signed allowlist that passed every check: the document as received
/// and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The whole signed document, signature included.
    pub document: Value,
    /// Its host and scripts (in the document's order).
    pub allowlist: Allowlist,
    /// Its serial.
    pub serial: i64,
    /// Its checksum (equal to `allowlist.checksum()`).
    pub checksum: String,
    /// When the server generated it (never compared with the local clock).
    pub generated_at: String,
}

impl Held {
    /// What `GET /v1/allowlist` reports.
    pub fn summary(&self) -> Value {
        json!({
            "checksum": self.checksum,
            "serial": self.serial,
            "host_id": self.allowlist.host_id,
            "host": self.allowlist.host,
            "scripts": self.document.get("scripts").cloned().unwrap_or(Value::Array(Vec::new())),
            "generated_at": self.generated_at,
        })
    }

    /// The allowed script called `name`, if any.
    pub fn script(&self, name: &str) -> Option<&AllowedScript> {
        self.allowlist.scripts.iter().find(|s| s.name == name)
    }
}

/// Why a document was refused, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Not signed by the pinned key, or meant for another host (403).
    Forbidden,
    /// Older than the allowlist held (409).
    Stale,
    /// The serial held, but other content (409).
    Conflict,
    /// Signed and for this host, but its content breaks a rule (422).
    Invalid,
}

/// A refused document: the kind of refusal and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which check refused it.
    pub kind: RefusalKind,
    /// Why, for the error body and the log.
    pub message: String,
}

impl Refusal {
    fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// What to do with a document that was not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The allowlist held already (same serial and checksum): nothing to do.
    Unchanged,
    /// A newer allowlist to write.
    Accept(Box<Held>),
}

/// Checks a document the server sent against the pinned key, the node's
/// host id and the allowlist `held`, in the contract's order: the signature
/// (403), the host id (403), the serial (409 when older than the floor
/// learnt at registration or than the one held, or when equal to the held
/// one with another checksum; equal with the same checksum is
/// [`Verdict::Unchanged`]), then the content (422, see [`validate`]).
pub fn assess(
    document: &Value,
    pinned: &Pinned,
    held: Option<&Held>,
    allowed_dirs: &[PathBuf],
) -> Result<Verdict, Refusal> {
    verify_signature(document, &pinned.key)
        .or_else(|reason| match &pinned.next {
            Some(next) => verify_signature(document, next).map_err(|_| reason),
            None => Err(reason),
        })
        .map_err(|reason| Refusal::new(RefusalKind::Forbidden, reason))?;
    match document.get("host_id").and_then(Value::as_i64) {
        Some(id) if id == pinned.host_id => {}
        Some(id) => {
            return Err(Refusal::new(
                RefusalKind::Forbidden,
                format!(
                    "the allowlist is for host id {id}, this node is host id {}",
                    pinned.host_id
                ),
            ));
        }
        None => {
            return Err(Refusal::new(
                RefusalKind::Forbidden,
                "the allowlist names no host id",
            ));
        }
    }
    let serial = document
        .get("serial")
        .and_then(Value::as_i64)
        .ok_or_else(|| Refusal::new(RefusalKind::Invalid, "\"serial\" must be an integer"))?;
    if let Some(floor) = pinned.serial_floor
        && serial < floor
    {
        return Err(Refusal::new(
            RefusalKind::Stale,
            format!(
                "stale: serial {serial} is older than serial {floor}, which the server had issued when this node registered"
            ),
        ));
    }
    if let Some(held) = held {
        if serial < held.serial {
            return Err(Refusal::new(
                RefusalKind::Stale,
                format!(
                    "stale: serial {serial} is older than the serial held, {}",
                    held.serial
                ),
            ));
        }
        if serial == held.serial {
            let checksum = document.get("checksum").and_then(Value::as_str);
            return if checksum == Some(held.checksum.as_str()) {
                Ok(Verdict::Unchanged)
            } else {
                Err(Refusal::new(
                    RefusalKind::Conflict,
                    format!(
                        "serial {serial} is held already with checksum {}, not {}",
                        held.checksum,
                        checksum.unwrap_or("(none)")
                    ),
                ))
            };
        }
    }
    validate(document, allowed_dirs)
        .map(|held| Verdict::Accept(Box::new(held)))
        .map_err(|reason| Refusal::new(RefusalKind::Invalid, reason))
}

/// Checks a signed document's content (not its signature): `format` is
/// [`FORMAT`], every field has its type, every script name and command is
/// valid ([`check_name`], [`check_command`]), no name repeats, and the
/// `checksum` is the one recomputed over `{host_id, host, scripts}`.
pub fn validate(document: &Value, allowed_dirs: &[PathBuf]) -> Result<Held, String> {
    let doc = document
        .as_object()
        .ok_or("the allowlist is not a JSON object")?;
    if doc.get("format").and_then(Value::as_i64) != Some(FORMAT) {
        return Err(format!(
            "unknown format {}; this agent reads format {FORMAT}",
            doc.get("format").unwrap_or(&Value::Null)
        ));
    }
    let int = |key: &str| {
        doc.get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("\"{key}\" must be an integer"))
    };
    let string = |key: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("\"{key}\" must be a string"))
    };
    let host_id = int("host_id")?;
    let serial = int("serial")?;
    let host = string("host")?;
    let checksum = string("checksum")?;
    let generated_at = string("generated_at")?;
    let scripts = doc
        .get("scripts")
        .and_then(Value::as_array)
        .ok_or("\"scripts\" must be a list")?
        .iter()
        .map(parse_script)
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = BTreeSet::new();
    for script in &scripts {
        check_name(&script.name)?;
        if !names.insert(script.name.as_str()) {
            return Err(format!("script \"{}\" is listed twice", script.name));
        }
        check_command(&script.command, allowed_dirs)
            .map_err(|reason| format!("script \"{}\": {reason}", script.name))?;
    }
    let allowlist = Allowlist {
        host_id,
        host,
        scripts,
    };
    let computed = allowlist.checksum();
    if computed != checksum {
        return Err(format!(
            "the checksum {checksum} is not the checksum of the content, {computed}"
        ));
    }
    Ok(Held {
        document: document.clone(),
        allowlist,
        serial,
        checksum,
        generated_at,
    })
}

/// Reads one script entry: `name` and `command` strings, `arguments` null
/// (any) or a list of strings, `timeout` null or an integer.
pub fn parse_script(entry: &Value) -> Result<AllowedScript, String> {
    let entry = entry.as_object().ok_or("every script must be an object")?;
    let name = entry
        .get("name")
        .and_then(Value::as_str)
        .ok_or("every script needs a \"name\" string")?
        .to_owned();
    let command = entry
        .get("command")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("script \"{name}\" needs a \"command\" string"))?
        .to_owned();
    let arguments = match entry.get("arguments") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("script \"{name}\": \"arguments\" must be strings"))?,
        ),
        Some(_) => {
            return Err(format!(
                "script \"{name}\": \"arguments\" must be null or a list"
            ));
        }
    };
    let timeout =
        match entry.get("timeout") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_i64().ok_or_else(|| {
                format!("script \"{name}\": \"timeout\" must be null or an integer")
            })?),
        };
    Ok(AllowedScript {
        name,
        command,
        arguments,
        timeout,
    })
}

/// A script name matches `^[A-Za-z0-9_-]{1,64}$` (the server's rule).
pub fn check_name(name: &str) -> Result<(), String> {
    ObjectName::parse(Kind::Script, name)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A command is an absolute path without whitespace, control characters or
/// `..` segments (the server's rule) and, when `allowed_dirs` is not empty,
/// inside one of them.
pub fn check_command(command: &str, allowed_dirs: &[PathBuf]) -> Result<(), String> {
    normalise::check_command(command).map_err(|e| e.to_string())?;
    if allowed_dirs.is_empty() || allowed_dirs.iter().any(|dir| is_inside(command, dir)) {
        Ok(())
    } else {
        let dirs: Vec<String> = allowed_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(format!(
            "Invalid command \"{}\": it is not inside the allowed directories ({})",
            command.escape_debug(),
            dirs.join(", ")
        ))
    }
}

/// Whether `command` lies strictly below `dir`, compared path component by
/// path component (so `/usrx/a` is not inside `/usr`).
pub fn is_inside(command: &str, dir: &Path) -> bool {
    let command = Path::new(command);
    command != dir && command.starts_with(dir)
}

/// An allowed directory given on the command line is absolute and has no
/// `..` segment (which [`is_inside`] could not see through).
pub fn check_allowed_dir(dir: &Path) -> Result<(), String> {
    if !dir.is_absolute() {
        return Err(format!(
            "--allowed-dir {} must be an absolute path",
            dir.display()
        ));
    }
    if dir.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "--allowed-dir {} must not contain '..'",
            dir.display()
        ));
    }
    Ok(())
}

/// Whether `args` may be passed to `script`: any arguments when it does not
/// restrict them (`null`), otherwise every one must be among its listed
/// strings, so an empty list (`[]`) allows none at all.
pub fn arguments_allowed(script: &AllowedScript, args: &[String]) -> bool {
    match &script.arguments {
        None => true,
        Some(allowed) => args.iter().all(|arg| allowed.contains(arg)),
    }
}

/// ctrl-exec's `scripts.conf` for `held`: a header comment line, then one
/// `name = /absolute/path` line per script, sorted by name. ctrl-exec cannot
/// restrict arguments, so a script that does is preceded by a comment line
/// saying so (`takes no arguments` for `[]`, `takes only its listed
/// arguments` for a list), for whoever reads the file: the argument strings
/// themselves are never written, so nothing in them can shape a line.
pub fn scripts_conf(held: &Held) -> String {
    let mut scripts: Vec<&AllowedScript> = held.allowlist.scripts.iter().collect();
    scripts.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!(
        "# Written by steward-agent from allowlist serial {} (checksum {}); do not edit.\n",
        held.serial, held.checksum
    );
    for script in scripts {
        match script.arguments.as_deref() {
            None => {}
            Some([]) => out.push_str(&format!(
                "# {} takes no arguments (steward-agent check refuses any)\n",
                script.name
            )),
            Some(_) => out.push_str(&format!(
                "# {} takes only its listed arguments (steward-agent check)\n",
                script.name
            )),
        }
        out.push_str(&format!("{} = {}\n", script.name, script.command));
    }
    out
}

/// The held document as written to disk: pretty JSON and a newline.
pub fn document_text(held: &Held) -> Result<String, String> {
    let mut text = serde_json::to_string_pretty(&held.document)
        .map_err(|e| format!("cannot encode the allowlist: {e}"))?;
    text.push('\n');
    Ok(text)
}

/// Reads and checks the allowlist kept at `path` as [`assess`] would with
/// nothing held: `Ok(None)` when there is no file, an error when it cannot
/// be read or fails a check (a tampered file, another host's, a command
/// outside the allowed directories).
pub fn load(
    path: &Path,
    pinned: &Pinned,
    allowed_dirs: &[PathBuf],
) -> Result<Option<Held>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let document: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    match assess(&document, pinned, None, allowed_dirs) {
        Ok(Verdict::Accept(held)) => Ok(Some(*held)),
        // Nothing is held, so nothing can be unchanged.
        Ok(Verdict::Unchanged) => Ok(None),
        Err(refusal) => Err(format!("{}: {}", path.display(), refusal.message)),
    }
}

/// Writes `held` atomically: first `scripts.conf` (when given), then the
/// allowlist JSON at `allowlist_path`, so that the allowlist file, which
/// decides what a repeated push is compared with, never runs ahead of
/// `scripts.conf`. Blocking.
pub fn store(
    held: &Held,
    allowlist_path: &Path,
    scripts_conf_path: Option<&Path>,
) -> Result<(), String> {
    let write = |path: &Path, text: &str| {
        let dir = parent_dir(path);
        state::write_atomically(&dir, path, text.as_bytes(), PUBLIC_FILE_MODE)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = scripts_conf_path {
        write(path, &scripts_conf(held))?;
    }
    write(allowlist_path, &document_text(held)?)
}

/// The directory a file lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::collections::HashMap;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::domain::allowlist::{ScriptSource, render};
    use crate::domain::canonical::canonical;
    use ed25519_dalek::Signer;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn pinned() -> Pinned {
        Pinned {
            key: key().verifying_key(),
            next: None,
            host_id: 7,
            serial_floor: None,
        }
    }

    fn script(command: &str, arguments: Option<&[&str]>) -> ScriptSource {
        ScriptSource {
            command: Some(command.to_owned()),
            arguments: arguments.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            timeout: Some(10),
            disabled: false,
        }
    }

    fn signed_with(host_id: i64, serial: i64, scripts: &[(&str, &str)]) -> Value {
        let names: Vec<String> = scripts.iter().map(|(n, _)| (*n).to_owned()).collect();
        let sources: HashMap<String, ScriptSource> = scripts
            .iter()
            .map(|(n, c)| ((*n).to_owned(), script(c, None)))
            .collect();
        render(host_id, "web-01", &names, &sources).sign(
            serial,
            "2024-01-01T00:00:00Z",
            &key(),
            None,
        )
    }

    fn signed(serial: i64) -> Value {
        signed_with(
            7,
            serial,
            &[("uptime", "/usr/bin/uptime"), ("df", "/usr/bin/df")],
        )
    }

    /// Signs `doc` again after a change, as a server with the key would.
    fn resign(mut doc: Value) -> Value {
        let map = doc.as_object_mut().unwrap();
        map.remove("signature");
        let signature = key().sign(canonical(&Value::Object(map.clone())).as_bytes());
        map.insert(
            "signature".into(),
            STANDARD.encode(signature.to_bytes()).into(),
        );
        doc
    }

    fn accepted(doc: &Value) -> Held {
        match assess(doc, &pinned(), None, &[]) {
            Ok(Verdict::Accept(held)) => *held,
            other => panic!("not accepted: {other:?}"),
        }
    }

    fn refused(doc: &Value, held: Option<&Held>, dirs: &[PathBuf]) -> RefusalKind {
        match assess(doc, &pinned(), held, dirs) {
            Err(refusal) => refusal.kind,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn script_names_follow_the_pattern() {
        for good in ["a", "check_disk", "A-9_z", &"x".repeat(64)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a.b", "a/b", "é", "a\nb", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn commands_are_clean_absolute_paths() {
        assert_eq!(check_command("/usr/bin/uptime", &[]), Ok(()));
        for bad in [
            "bin/true",
            "",
            "/usr/bin/a b",
            "/usr/bin/a\tb",
            "/usr/bin/\u{7}",
            "/usr/../etc/passwd",
            "/usr/bin/..",
            "/usr/bin/",
            "/usr/bin/check#x",
            "/usr/bin/\u{202e}hs",
            "/usr/bin/up\u{200b}time",
        ] {
            assert!(check_command(bad, &[]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_received_command_with_a_hash_or_a_format_character_is_invalid() {
        // What `serve` answers 422 to and `pull` refuses: both go through
        // `assess`.
        for command in [
            "/usr/bin/check#x",
            "/usr/bin/\u{202e}hs",
            "/usr/bin/\u{2060}a",
        ] {
            let doc = signed_with(7, 5, &[("s", command)]);
            assert_eq!(
                refused(&doc, None, &[]),
                RefusalKind::Invalid,
                "{command:?}"
            );
        }
    }

    #[test]
    fn allowed_directories_are_compared_by_component() {
        let dirs = [PathBuf::from("/usr/lib/nagios"), PathBuf::from("/opt/x/")];
        assert_eq!(
            check_command("/usr/lib/nagios/plugins/check_disk", &dirs),
            Ok(())
        );
        assert_eq!(check_command("/opt/x/y", &dirs), Ok(()));
        for bad in [
            "/usr/lib/nagiosx/check",
            "/usr/lib/nagios",
            "/usr/bin/uptime",
            "/opt/xy",
            "/usr/lib/nagios/../../../bin/sh",
        ] {
            assert!(check_command(bad, &dirs).is_err(), "{bad:?}");
        }
        assert!(check_allowed_dir(Path::new("/usr")).is_ok());
        assert!(check_allowed_dir(Path::new("usr")).is_err());
        assert!(check_allowed_dir(Path::new("/usr/../etc")).is_err());
    }

    #[test]
    fn listed_arguments_restrict_every_argument() {
        let restricted = AllowedScript {
            name: "check_disk".into(),
            command: "/usr/bin/check_disk".into(),
            arguments: Some(vec!["-w".into(), "10%".into()]),
            timeout: None,
        };
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(arguments_allowed(&restricted, &args(&[])));
        assert!(arguments_allowed(&restricted, &args(&["-w", "10%"])));
        assert!(arguments_allowed(&restricted, &args(&["10%"])));
        assert!(!arguments_allowed(&restricted, &args(&["-w", "20%"])));
        assert!(!arguments_allowed(&restricted, &args(&["-w 10%"])));
        let none = AllowedScript {
            arguments: Some(Vec::new()),
            ..restricted.clone()
        };
        assert!(arguments_allowed(&none, &args(&[])));
        assert!(!arguments_allowed(&none, &args(&["-w"])));
        let any = AllowedScript {
            arguments: None,
            ..restricted
        };
        assert!(arguments_allowed(&any, &args(&["anything", "at all"])));
    }

    #[test]
    fn a_good_document_is_accepted_with_its_content() {
        let held = accepted(&signed(5));
        assert_eq!(held.serial, 5);
        assert_eq!(held.checksum, held.allowlist.checksum());
        assert_eq!(held.allowlist.host_id, 7);
        assert_eq!(held.generated_at, "2024-01-01T00:00:00Z");
        assert_eq!(held.script("uptime").unwrap().command, "/usr/bin/uptime");
        assert!(held.script("missing").is_none());
        assert_eq!(held.summary()["scripts"], signed(5)["scripts"]);
        assert!(held.summary().get("signature").is_none());
    }

    #[test]
    fn the_checks_run_in_the_contracts_order() {
        let held = accepted(&signed(5));
        // A bad signature is 403 even when the serial is stale and the
        // content invalid.
        let mut tampered = signed_with(7, 1, &[("a b", "bin/x")]);
        tampered["host"] = json!("other");
        assert_eq!(refused(&tampered, Some(&held), &[]), RefusalKind::Forbidden);
        // Another host's list is 403 even when stale.
        assert_eq!(
            refused(&signed_with(8, 1, &[]), Some(&held), &[]),
            RefusalKind::Forbidden
        );
        // A stale serial is 409 even when the content is invalid.
        assert_eq!(
            refused(&signed_with(7, 4, &[("a b", "x")]), Some(&held), &[]),
            RefusalKind::Stale
        );
        // Same serial: unchanged with the same checksum, 409 with another.
        assert_eq!(
            assess(&signed(5), &pinned(), Some(&held), &[]),
            Ok(Verdict::Unchanged)
        );
        assert_eq!(
            refused(&signed_with(7, 5, &[]), Some(&held), &[]),
            RefusalKind::Conflict
        );
        // A newer serial is checked for content.
        assert_eq!(
            refused(
                &signed_with(7, 6, &[("a b", "/usr/bin/x")]),
                Some(&held),
                &[]
            ),
            RefusalKind::Invalid
        );
        assert!(matches!(
            assess(&signed(6), &pinned(), Some(&held), &[]),
            Ok(Verdict::Accept(_))
        ));
    }

    #[test]
    fn a_rotation_is_followed_only_through_an_announcement_signed_by_the_pinned_key() {
        let new = SigningKey::from_bytes(&[9; 32]);
        let new_b64 = STANDARD.encode(new.verifying_key().to_bytes());
        let sign_with = |key: &SigningKey, serial: i64, next: Option<&str>| {
            render(7, "web-01", &[], &HashMap::new()).sign(serial, "t", key, next)
        };
        // Signed by the new key before any announcement: refused.
        assert_eq!(
            assess(&sign_with(&new, 5, None), &pinned(), None, &[]).map_err(|r| r.kind),
            Err(RefusalKind::Forbidden)
        );
        // Announced by the pinned key: remembered.
        let announcing = sign_with(&key(), 5, Some(&new_b64));
        assert!(assess(&announcing, &pinned(), None, &[]).is_ok());
        let heard = key_change(&announcing, &pinned()).expect("the next key is remembered");
        assert_eq!(heard.key, key().verifying_key());
        assert_eq!(heard.next, Some(new.verifying_key()));
        assert!(key_change(&announcing, &heard).is_none(), "heard already");
        // Signed by the announced key: accepted, and the only key from now on.
        let rotated = sign_with(&new, 6, None);
        assert!(assess(&rotated, &heard, None, &[]).is_ok());
        let after = key_change(&rotated, &heard).expect("the rotation is followed");
        assert_eq!((after.key, after.next), (new.verifying_key(), None));
        assert_eq!(
            assess(&sign_with(&key(), 7, None), &after, None, &[]).map_err(|r| r.kind),
            Err(RefusalKind::Forbidden),
            "the old key is no longer trusted"
        );
        // An announcement inside a document with a forged signature changes nothing.
        let mut forged = announcing.clone();
        forged["serial"] = json!(99);
        assert!(assess(&forged, &pinned(), None, &[]).is_err());
    }

    #[test]
    fn nothing_older_than_the_registration_floor_is_accepted_even_with_nothing_held() {
        let floored = Pinned {
            serial_floor: Some(5),
            ..pinned()
        };
        let refusal = assess(&signed(4), &floored, None, &[]).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::Stale);
        assert!(
            refusal.message.contains("registered"),
            "{}",
            refusal.message
        );
        // The floor itself (the newest issued) and anything newer are fine.
        for serial in [5, 6] {
            assert!(matches!(
                assess(&signed(serial), &floored, None, &[]),
                Ok(Verdict::Accept(_))
            ));
        }
        // A key rotation keeps the floor.
        let next = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let announcing = Pinned {
            next: Some(next),
            ..floored.clone()
        };
        let mut doc = signed(6);
        doc["next_key"] = json!(STANDARD.encode(next.to_bytes()));
        let doc = resign(doc);
        assert_eq!(
            key_change(&doc, &floored).map(|p| p.serial_floor),
            Some(Some(5))
        );
        assert_eq!(announcing.serial_floor, Some(5));
    }

    #[test]
    fn another_key_or_no_signature_is_forbidden() {
        let other = Pinned {
            key: SigningKey::from_bytes(&[8; 32]).verifying_key(),
            next: None,
            host_id: 7,
            serial_floor: None,
        };
        assert_eq!(
            assess(&signed(5), &other, None, &[]).map_err(|r| r.kind),
            Err(RefusalKind::Forbidden)
        );
        let mut unsigned = signed(5);
        unsigned.as_object_mut().unwrap().remove("signature");
        assert_eq!(refused(&unsigned, None, &[]), RefusalKind::Forbidden);
        assert_eq!(refused(&json!([1]), None, &[]), RefusalKind::Forbidden);
    }

    #[test]
    fn content_rules_are_422() {
        let base = signed(5);
        let change = |f: &dyn Fn(&mut Value)| {
            let mut doc = base.clone();
            f(&mut doc);
            resign(doc)
        };
        let cases: Vec<(&str, Value)> = vec![
            ("format", change(&|d| d["format"] = json!(2))),
            ("checksum", change(&|d| d["checksum"] = json!("00"))),
            ("serial type", change(&|d| d["serial"] = json!("5"))),
            ("generated_at", change(&|d| d["generated_at"] = json!(1))),
            ("scripts", change(&|d| d["scripts"] = json!({}))),
            (
                "duplicate",
                change(&|d| {
                    let first = d["scripts"][0].clone();
                    d["scripts"].as_array_mut().unwrap().push(first);
                }),
            ),
            (
                "arguments",
                change(&|d| d["scripts"][0]["arguments"] = json!([1])),
            ),
            (
                "timeout",
                change(&|d| d["scripts"][0]["timeout"] = json!("x")),
            ),
            ("relative", signed_with(7, 5, &[("a", "usr/bin/a")])),
            ("dotdot", signed_with(7, 5, &[("a", "/usr/../bin/a")])),
            ("space", signed_with(7, 5, &[("a", "/usr/bin/a b")])),
            ("name", signed_with(7, 5, &[("a b", "/usr/bin/a")])),
        ];
        for (what, doc) in cases {
            assert_eq!(refused(&doc, None, &[]), RefusalKind::Invalid, "{what}");
        }
        let dirs = [PathBuf::from("/opt")];
        assert_eq!(refused(&signed(5), None, &dirs), RefusalKind::Invalid);
        assert!(matches!(
            assess(&signed(5), &pinned(), None, &[PathBuf::from("/usr/bin")]),
            Ok(Verdict::Accept(_))
        ));
    }

    #[test]
    fn scripts_conf_lists_scripts_sorted_after_a_header() {
        let held = accepted(&signed(5));
        let conf = scripts_conf(&held);
        let lines: Vec<&str> = conf.lines().collect();
        assert!(lines[0].starts_with("# "), "{conf}");
        assert!(lines[0].contains("serial 5"), "{conf}");
        assert_eq!(lines[1..], ["df = /usr/bin/df", "uptime = /usr/bin/uptime"]);
        assert!(conf.ends_with('\n'));
    }

    #[test]
    fn scripts_conf_says_which_scripts_restrict_their_arguments() {
        let names: Vec<String> = ["any", "none", "some"].map(String::from).to_vec();
        let sources: HashMap<String, ScriptSource> = HashMap::from([
            ("any".to_owned(), script("/usr/bin/any", None)),
            ("none".to_owned(), script("/usr/bin/none", Some(&[]))),
            ("some".to_owned(), script("/usr/bin/some", Some(&["-v"]))),
        ]);
        let doc =
            render(7, "web-01", &names, &sources).sign(5, "2024-01-01T00:00:00Z", &key(), None);
        assert_eq!(doc["scripts"][1]["arguments"], json!([]));
        assert_eq!(doc["scripts"][0]["arguments"], Value::Null);
        let conf = scripts_conf(&accepted(&doc));
        let lines: Vec<&str> = conf.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "any = /usr/bin/any",
                "# none takes no arguments (steward-agent check refuses any)",
                "none = /usr/bin/none",
                "# some takes only its listed arguments (steward-agent check)",
                "some = /usr/bin/some",
            ]
        );
    }

    #[test]
    fn store_then_load_gives_back_what_was_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ALLOWLIST_FILE);
        let conf = dir.path().join("sub/scripts.conf");
        assert_eq!(load(&path, &pinned(), &[]), Ok(None));
        let held = accepted(&signed(5));
        store(&held, &path, Some(&conf)).unwrap();
        assert_eq!(load(&path, &pinned(), &[]), Ok(Some(held.clone())));
        assert_eq!(fs::read_to_string(&conf).unwrap(), scripts_conf(&held));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, document_text(&held).unwrap());
        // Tampered on disk: refused with the reason.
        fs::write(&path, text.replace("/usr/bin/df", "/usr/bin/sh")).unwrap();
        assert!(load(&path, &pinned(), &[]).is_err());
        fs::write(&path, "{").unwrap();
        assert!(load(&path, &pinned(), &[]).is_err());
    }

    #[test]
    fn the_pinned_key_is_read_from_the_state() {
        let state = State {
            server: "https://s".into(),
            host: "web-01".into(),
            host_id: 7,
            host_key: "k".into(),
            server_public_key: STANDARD.encode(key().verifying_key().to_bytes()),
            server_fingerprint: String::new(),
            agent_port: 7446,
            registered_at: String::new(),
            next_server_key: None,
            serial_floor: Some(12),
            registered_as: None,
        };
        let pinned = Pinned::from_state(&state).unwrap();
        assert_eq!(pinned.key, key().verifying_key());
        assert_eq!(pinned.host_id, 7);
        assert_eq!(pinned.serial_floor, Some(12));
        for bad in ["not base64!", "AAAA"] {
            let state = State {
                server_public_key: bad.into(),
                ..state.clone()
            };
            assert!(Pinned::from_state(&state).is_err(), "{bad}");
        }
    }
}
