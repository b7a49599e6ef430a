//! `steward-agent register`: enrol the node with a template key the first
//! time, re-register with its own host key at every later boot, learn and pin
//! the server's signing key, and keep it all in the state file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::AgentError;
use super::client::{AgentConfig, Client, Registration, normalize_server};
use super::state::{self, State};

/// The agent port stored when neither the server nor the command line names
/// one: the server's default (CONTRACT section 3).
pub const DEFAULT_AGENT_PORT: u16 = 7446;

/// What `register` was asked to do.
#[derive(Clone)]
pub struct Options {
    /// The server's base URL.
    pub server: String,
    /// The template key; needed only when there is no host key to reuse.
    pub key: Option<String>,
    /// The host name to register as.
    pub name: String,
    /// The properties sent along.
    pub registration: Registration,
    /// Where the state file lives.
    pub state_dir: PathBuf,
    /// The fingerprint the server's signing key must have (`sha256:HEX`).
    pub server_key: Option<String>,
    /// How long transient failures are retried.
    pub retry_for: Duration,
    /// A PEM file of certificates to trust for https besides the built-in
    /// roots (a private CA, or the server's self-signed certificate).
    pub ca: Option<PathBuf>,
}

/// What a successful registration left behind.
#[derive(Debug)]
pub struct Registered {
    /// The state as written.
    pub state: State,
    /// Where it was written.
    pub path: PathBuf,
    /// Whether the node re-registered with a host key it already had.
    pub renewed: bool,
}

impl Registered {
    /// The one line a successful run prints (never a key).
    pub fn summary(&self) -> String {
        format!(
            "registered {} (host id {}) with {}; state in {}",
            self.state.host,
            self.state.host_id,
            self.state.server,
            self.path.display()
        )
    }
}

/// The machine's fully qualified name: `hostname --fqdn` when that works and
/// gives a dotted name, otherwise the system's host name.
pub fn default_name() -> Result<String, AgentError> {
    if let Ok(output) = Command::new("hostname")
        .arg("--fqdn")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        && output.status.success()
    {
        let name = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if name.contains('.') && !name.contains(char::is_whitespace) {
            return Ok(name);
        }
    }
    hostname::get()
        .ok()
        .and_then(|n| n.into_string().ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| AgentError::Usage("cannot tell this machine's name; give --name".to_owned()))
}

/// Parses a fingerprint as given on the command line: `sha256:HEX` or bare
/// hex, any case, optionally with `:` between bytes; `sha256:` and 64
/// lowercase hex digits.
pub fn parse_fingerprint(text: &str) -> Result<String, String> {
    let text = text.trim();
    let hex_part = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
        _ => text,
    };
    let hex_part: String = hex_part
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("sha256:{hex_part}"))
    } else {
        Err("expected sha256: and the 64 hex digits of the key's SHA-256".to_owned())
    }
}

/// The fingerprint of a raw public key: `sha256:` and its hex SHA-256.
pub fn fingerprint(public_key: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(public_key)))
}

/// Checks the signing key `agent-config` presented: an Ed25519 key of 32
/// bytes whose fingerprint is the one the server gave. Answers the fingerprint.
pub fn verify_signing_key(config: &AgentConfig) -> Result<String, AgentError> {
    let key = &config.signing_key;
    if !key.algorithm.eq_ignore_ascii_case("ed25519") {
        return Err(AgentError::Protocol(format!(
            "the server's signing key is {:?}, not ed25519",
            key.algorithm
        )));
    }
    let raw = STANDARD
        .decode(key.public_key.trim())
        .map_err(|e| AgentError::Protocol(format!("the server's public key is not base64: {e}")))?;
    if raw.len() != 32 {
        return Err(AgentError::Protocol(format!(
            "the server's public key has {} bytes, not 32",
            raw.len()
        )));
    }
    let computed = fingerprint(&raw);
    let claimed = parse_fingerprint(&key.fingerprint).ok();
    if claimed.as_deref() != Some(computed.as_str()) {
        return Err(AgentError::Refused(format!(
            "the server's key fingerprint {:?} does not match its public key ({computed})",
            key.fingerprint
        )));
    }
    Ok(computed)
}

/// Registers (or re-registers) the node and writes the state.
///
/// A host key the server hands out is kept in `pending.json` at once, so
/// that a failure before the state is complete (the server gone, its key
/// refused) is repaired by the next run with that host key instead of
/// ending in "name taken".
pub async fn register(options: &Options) -> Result<Registered, AgentError> {
    let server = normalize_server(&options.server)?;
    let dir = options.state_dir.as_path();
    let same_host = |host: &str| host.eq_ignore_ascii_case(&options.name);
    let previous = state::load(dir)?.filter(|s| s.server == server);
    let previous_floor = previous.as_ref().map(|s| (s.host_id, s.serial_floor));
    let pinned = previous.as_ref().map(|s| s.server_fingerprint.clone());
    // The key a rotation announced is as good as the pinned one.
    let announced = previous
        .as_ref()
        .and_then(|s| s.next_server_key.as_deref())
        .and_then(|k| {
            base64::engine::general_purpose::STANDARD
                .decode(k.trim())
                .ok()
        })
        .map(|raw| fingerprint(&raw));
    // A host key of this node's: registered under the host's name as the
    // server last told it (the server also takes a name the host had
    // before a rename, and answers its own key either way).
    let reusable = match previous.as_ref().filter(|s| s.is_for(&options.name)) {
        Some(state) => Some((
            state.host_key.clone(),
            state.host.clone(),
            state::state_path(dir),
        )),
        None => state::load_pending(dir)?
            .filter(|p| p.server == server && same_host(&p.host))
            .map(|p| (p.host_key, p.host, state::pending_path(dir))),
    };
    let renewed = reusable.is_some();
    let (key, name, key_file) = match reusable {
        Some((host_key, host, file)) => (host_key, host, Some(file)),
        None => {
            let key = options
                .key
                .clone()
                .filter(|k| !k.trim().is_empty())
                .ok_or_else(|| {
                    AgentError::Usage(format!(
                        "--key (or STEWARD_KEY) is needed: {} holds no registration of {} with {server}",
                        state::state_path(dir).display(),
                        options.name
                    ))
                })?;
            (key, options.name.clone(), None)
        }
    };

    let client = Client::with_ca(&server, options.retry_for, options.ca.as_deref())?;
    let host_key = client
        .register_host(&name, &key, &options.registration)
        .await
        .map_err(|e| match (e, &key_file) {
            (AgentError::Refused(message), Some(file)) => AgentError::Refused(format!(
                "{message}; the host key in {} is not accepted (remove that file to register anew with a template key)",
                file.display()
            )),
            (other, _) => other,
        })?;
    if !renewed || host_key != key {
        state::save_pending(
            dir,
            &state::Pending {
                server: server.clone(),
                host: options.name.clone(),
                host_key: host_key.clone(),
            },
        )?;
    }
    let config = client.agent_config(&host_key).await?;
    let presented = verify_signing_key(&config)?;
    if announced.as_deref() != Some(presented.as_str()) {
        check_pin(
            &presented,
            options.server_key.as_deref(),
            pinned.as_deref(),
            dir,
        )?;
    }
    if options.server_key.is_none() && pinned.is_none() && client.is_plain_http() {
        eprintln!(
            "steward-agent: warning: the server's key {presented} was not verified (trust on first use over plain http); pass --server-key to check it, or use an https server (with --ca FILE for a private CA)"
        );
    }

    if !config.host.eq_ignore_ascii_case(&name) {
        eprintln!(
            "steward-agent: the server knows this host as {} now (it was {name})",
            config.host
        );
    }
    let registered_as =
        (!config.host.eq_ignore_ascii_case(&options.name)).then(|| options.name.clone());
    let state = State {
        server,
        registered_as,
        host: config.host,
        host_id: config.host_id,
        host_key,
        server_public_key: config.signing_key.public_key.trim().to_owned(),
        server_fingerprint: presented,
        agent_port: config
            .agent_port
            .or(options.registration.agent_port)
            .unwrap_or(DEFAULT_AGENT_PORT),
        registered_at: now_rfc3339(),
        next_server_key: config
            .signing_key
            .next
            .map(|n| n.public_key.trim().to_owned()),
        // The floor never goes down for the same host: a server restored
        // from an older backup cannot lower it.
        serial_floor: match previous_floor {
            Some((id, floor)) if id == config.host_id => floor.max(config.serial_floor),
            _ => config.serial_floor,
        },
    };
    let path = state::save(dir, &state)?;
    state::remove_pending(dir)?;
    Ok(Registered {
        state,
        path,
        renewed,
    })
}

/// Refuses a server key other than the one asked for with `--server-key`,
/// or, without it, other than the one pinned at an earlier registration.
fn check_pin(
    presented: &str,
    expected: Option<&str>,
    pinned: Option<&str>,
    state_dir: &Path,
) -> Result<(), AgentError> {
    match (expected, pinned) {
        (Some(expected), _) if expected != presented => Err(AgentError::Refused(format!(
            "the server's key is {presented}, not {expected} as --server-key says"
        ))),
        (None, Some(pinned)) if pinned != presented => Err(AgentError::Refused(format!(
            "the server's key changed from {pinned} (pinned in {}) to {presented}; if that change is expected, run again with --server-key {presented}",
            state::state_path(state_dir).display()
        ))),
        _ => Ok(()),
    }
}

/// The current time in RFC 3339, UTC, to the second.
fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::client::SigningKeyInfo;

    const RAW: [u8; 32] = [7; 32];

    fn config(public_key: String, fingerprint: String) -> AgentConfig {
        AgentConfig {
            host: "node1.example".into(),
            host_id: 1,
            agent_port: None,
            delivery: None,
            serial_floor: None,
            signing_key: SigningKeyInfo {
                algorithm: "ed25519".into(),
                public_key,
                fingerprint,
                next: None,
            },
        }
    }

    #[test]
    fn fingerprints_are_parsed_in_any_reasonable_spelling() {
        let hex = "ab".repeat(32);
        let want = format!("sha256:{hex}");
        assert_eq!(parse_fingerprint(&want).unwrap(), want);
        assert_eq!(parse_fingerprint(&hex.to_uppercase()).unwrap(), want);
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", vec!["AB"; 32].join(":"))).unwrap(),
            want
        );
        for bad in [
            "",
            "sha256:",
            "sha256:abcd",
            &format!("sha1:{hex}"),
            &"zz".repeat(32),
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_signing_key_must_match_its_fingerprint() {
        let public = STANDARD.encode(RAW);
        let good = fingerprint(&RAW);
        assert_eq!(good.len(), 71);
        assert_eq!(
            verify_signing_key(&config(public.clone(), good.clone())).unwrap(),
            good
        );
        let other = fingerprint(&[8; 32]);
        assert!(matches!(
            verify_signing_key(&config(public.clone(), other)),
            Err(AgentError::Refused(_))
        ));
        assert!(matches!(
            verify_signing_key(&config(STANDARD.encode([7; 31]), good.clone())),
            Err(AgentError::Protocol(_))
        ));
        assert!(matches!(
            verify_signing_key(&config("%%%".into(), good.clone())),
            Err(AgentError::Protocol(_))
        ));
        let mut rsa = config(public, good);
        rsa.signing_key.algorithm = "rsa".into();
        assert!(matches!(
            verify_signing_key(&rsa),
            Err(AgentError::Protocol(_))
        ));
    }

    #[test]
    fn the_pin_and_server_key_decide_which_keys_are_accepted() {
        let dir = Path::new("/state");
        let a = fingerprint(&[1; 32]);
        let b = fingerprint(&[2; 32]);
        // First use, nothing expected.
        assert!(check_pin(&a, None, None, dir).is_ok());
        // --server-key must match.
        assert!(check_pin(&a, Some(&a), None, dir).is_ok());
        assert!(matches!(
            check_pin(&a, Some(&b), None, dir),
            Err(AgentError::Refused(_))
        ));
        // The pinned key must not change...
        assert!(check_pin(&a, None, Some(&a), dir).is_ok());
        assert!(matches!(
            check_pin(&b, None, Some(&a), dir),
            Err(AgentError::Refused(_))
        ));
        // ...unless --server-key names the new one.
        assert!(check_pin(&b, Some(&b), Some(&a), dir).is_ok());
        assert!(matches!(
            check_pin(&b, Some(&a), Some(&a), dir),
            Err(AgentError::Refused(_))
        ));
    }

    #[test]
    fn the_default_name_is_not_empty() {
        assert!(!default_name().unwrap().is_empty());
    }

    #[test]
    fn the_summary_names_host_id_server_and_state_but_no_key() {
        let registered = Registered {
            state: State {
                server: "https://steward.example".into(),
                host: "web-01".into(),
                host_id: 17,
                host_key: "secret".into(),
                server_public_key: String::new(),
                server_fingerprint: String::new(),
                agent_port: 5665,
                registered_at: String::new(),
                next_server_key: None,
                serial_floor: None,
                registered_as: None,
            },
            path: PathBuf::from("/var/lib/steward-agent/state.json"),
            renewed: false,
        };
        assert_eq!(
            registered.summary(),
            "registered web-01 (host id 17) with https://steward.example; state in /var/lib/steward-agent/state.json"
        );
    }
}
