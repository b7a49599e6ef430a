//! `steward-agent check NAME [ARGS...]`: whether the allowlist this node
//! holds lets it run NAME with those arguments. Exit 0 and the command on
//! stdout when it does, 1 when it does not, 2 when the node holds no valid
//! allowlist (no state, no file, a signature that does not verify with the
//! pinned key, another host's list, invalid content).

use std::path::Path;

use super::holding::{self, Pinned};
use super::state;

/// What `check` decided, and what it prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed: the command line to print (the command, then the arguments,
    /// space-separated). Exit 0.
    Allowed(String),
    /// Not allowed, and why. Exit 1.
    Denied(String),
    /// No valid allowlist, and why. Exit 2.
    NoAllowlist(String),
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Allowed(_) => 0,
            Outcome::Denied(_) => 1,
            Outcome::NoAllowlist(_) => 2,
        }
    }
}

/// Checks NAME and ARGS against the allowlist at `allowlist` (default
/// `STATE_DIR/allowlist.json`), verified with the key pinned in `state_dir`.
pub fn check(state_dir: &Path, allowlist: Option<&Path>, name: &str, args: &[String]) -> Outcome {
    let state = match state::load(state_dir) {
        Ok(Some(state)) => state,
        Ok(None) => {
            return Outcome::NoAllowlist(format!(
                "no state in {}: the node is not registered, so no allowlist can be verified",
                state_dir.display()
            ));
        }
        Err(e) => return Outcome::NoAllowlist(e.to_string()),
    };
    let pinned = match Pinned::from_state(&state) {
        Ok(pinned) => pinned,
        Err(e) => return Outcome::NoAllowlist(e),
    };
    let path = allowlist
        .map(Path::to_path_buf)
        .unwrap_or_else(|| holding::default_path(state_dir));
    let held = match holding::load(&path, &pinned, &[]) {
        Ok(Some(held)) => held,
        Ok(None) => {
            return Outcome::NoAllowlist(format!("no allowlist at {}", path.display()));
        }
        Err(reason) => return Outcome::NoAllowlist(format!("no valid allowlist: {reason}")),
    };
    let Some(script) = held.script(name) else {
        return Outcome::Denied(format!(
            "{name:?} is not in the allowlist (serial {})",
            held.serial
        ));
    };
    if !holding::arguments_allowed(script, args) {
        return Outcome::Denied(match script.arguments.as_deref().unwrap_or_default() {
            [] => format!("{name:?} takes no arguments, not {args:?}"),
            listed => format!("{name:?} only allows the arguments {listed:?}, not {args:?}"),
        });
    }
    let mut line = script.command.clone();
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    Outcome::Allowed(line)
}
