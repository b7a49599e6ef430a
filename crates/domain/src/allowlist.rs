//! Allowlists: what each host's agent may run, rendered from the host's
//! resolved scripts, checksummed over canonical JSON and signed with the
//! server's Ed25519 key.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::canonical::canonical;

/// The format of signed allowlists this code writes and reads.
pub const FORMAT: i64 = 1;

/// One script a host may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedScript {
    pub name: String,
    /// Absolute path of the executable.
    pub command: String,
    /// `None`: any arguments; a list: only those argument strings.
    pub arguments: Option<Vec<String>>,
    /// Seconds.
    pub timeout: Option<i64>,
}

/// A host's allowlist, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    pub host_id: i64,
    pub host: String,
    /// Sorted by name.
    pub scripts: Vec<AllowedScript>,
}

/// A script object's resolved properties, as rendering needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    pub command: Option<String>,
    pub arguments: Option<Vec<String>>,
    pub timeout: Option<i64>,
    pub disabled: bool,
}

impl ScriptSource {
    /// Reads the resolved properties of a script object.
    pub fn from_props(props: &Map<String, Value>) -> Self {
        let strings = |v: &Value| {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
        };
        Self {
            command: props
                .get("command")
                .and_then(Value::as_str)
                .map(str::to_owned),
            arguments: props.get("arguments").and_then(strings),
            timeout: props.get("timeout").and_then(Value::as_i64),
            disabled: props
                .get("disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// Renders a host's allowlist: each of its resolved `scripts` that names an
/// enabled script with a command, sorted by name. A host that leaves the
/// deploy set renders with no scripts at all (`scripts` empty).
pub fn render(
    host_id: i64,
    host: &str,
    script_names: &[String],
    scripts: &HashMap<String, ScriptSource>,
) -> Allowlist {
    let mut allowed: Vec<AllowedScript> = script_names
        .iter()
        .filter_map(|name| {
            let source = scripts.get(name)?;
            if source.disabled {
                return None;
            }
            Some(AllowedScript {
                name: name.clone(),
                command: source.command.clone()?,
                arguments: source.arguments.clone(),
                timeout: source.timeout,
            })
        })
        .collect();
    allowed.sort_by(|a, b| a.name.cmp(&b.name));
    allowed.dedup_by(|a, b| a.name == b.name);
    Allowlist {
        host_id,
        host: host.to_owned(),
        scripts: allowed,
    }
}

impl Allowlist {
    fn scripts_value(&self) -> Value {
        Value::Array(
            self.scripts
                .iter()
                .map(|s| json!({"name": s.name, "command": s.command, "arguments": s.arguments, "timeout": s.timeout}))
                .collect(),
        )
    }

    /// The unsigned document: `{"host_id", "host", "scripts"}`, what the
    /// checksum covers and what a preview shows.
    pub fn document(&self) -> Value {
        json!({"host_id": self.host_id, "host": self.host, "scripts": self.scripts_value()})
    }

    /// Hex SHA-256 of the canonical [`Allowlist::document`].
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(canonical(&self.document()).as_bytes()))
    }

    /// The signed document an agent receives: every field but `signature`
    /// is covered by the base64 Ed25519 signature over its canonical JSON.
    /// During a key rotation `next_key` (base64 of the new public key) is
    /// announced in it, so that agents follow the rotation.
    pub fn sign(
        &self,
        serial: i64,
        generated_at: &str,
        key: &SigningKey,
        next_key: Option<&str>,
    ) -> Value {
        let mut doc = json!({
            "format": FORMAT,
            "host_id": self.host_id,
            "host": self.host,
            "serial": serial,
            "checksum": self.checksum(),
            "generated_at": generated_at,
            "scripts": self.scripts_value(),
        });
        if let (Some(next), Some(map)) = (next_key, doc.as_object_mut()) {
            map.insert("next_key".into(), next.into());
        }
        let signature = key.sign(canonical(&doc).as_bytes());
        if let Some(map) = doc.as_object_mut() {
            map.insert(
                "signature".into(),
                STANDARD.encode(signature.to_bytes()).into(),
            );
        }
        doc
    }
}

/// The config checksum: hex SHA-256 of the canonical map of host name to
/// host checksum.
pub fn config_checksum(hosts: &BTreeMap<String, String>) -> String {
    let map: Map<String, Value> = hosts
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    hex::encode(Sha256::digest(canonical(&Value::Object(map)).as_bytes()))
}

/// The script names of a signed allowlist document (empty when it has none).
pub fn script_names(doc: &Value) -> Vec<String> {
    doc["scripts"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|x| x["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The scripts of an allowlist document, signed or not; `None` when it
/// is not one (a stored document is read back, not trusted blindly).
pub fn scripts_of(doc: &Value) -> Option<Vec<AllowedScript>> {
    doc["scripts"]
        .as_array()?
        .iter()
        .map(|s| {
            let arguments = match &s["arguments"] {
                Value::Null => None,
                Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|a| a.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()?,
                ),
                _ => return None,
            };
            Some(AllowedScript {
                name: s["name"].as_str()?.to_owned(),
                command: s["command"].as_str()?.to_owned(),
                arguments,
                timeout: s["timeout"].as_i64(),
            })
        })
        .collect()
}

/// How a host's scripts would change from what its agent holds to what it
/// would get: scripts added, removed, and changed (same name, another
/// command, arguments or timeout), each sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptChanges {
    pub added: Vec<AllowedScript>,
    pub removed: Vec<AllowedScript>,
    /// The held definition and the new one.
    pub changed: Vec<(AllowedScript, AllowedScript)>,
}

/// Compares the scripts an agent holds with those it would get.
pub fn compare(held: &[AllowedScript], wanted: &[AllowedScript]) -> ScriptChanges {
    let held_by_name: BTreeMap<&str, &AllowedScript> =
        held.iter().map(|s| (s.name.as_str(), s)).collect();
    let wanted_by_name: BTreeMap<&str, &AllowedScript> =
        wanted.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut changes = ScriptChanges::default();
    for (name, new) in &wanted_by_name {
        match held_by_name.get(name) {
            None => changes.added.push((*new).clone()),
            Some(old) if old != new => changes.changed.push(((*old).clone(), (*new).clone())),
            Some(_) => {}
        }
    }
    changes.removed = held_by_name
        .iter()
        .filter(|(name, _)| !wanted_by_name.contains_key(*name))
        .map(|(_, old)| (*old).clone())
        .collect();
    changes
}

/// What an agent holds, as far as its recorded state goes: the checksum
/// and serial of an allowlist, and whether it lists any script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding<'a> {
    pub checksum: &'a str,
    pub serial: i64,
    pub has_scripts: bool,
}

/// Whether a pulling agent's fetch of `issued` can go unrecorded: the
/// agent's recorded state already holds exactly it, its pulling was
/// recorded before, and its deployment already counts it as deployed.
/// Recording such a fetch would change nothing but timestamps, and an agent
/// fetching without `If-None-Match` would cost a write transaction each time.
pub fn fetch_changes_nothing(
    recorded: Option<Holding<'_>>,
    pulled_before: bool,
    issued: Holding<'_>,
    issued_deployed: bool,
) -> bool {
    pulled_before && issued_deployed && recorded == Some(issued)
}

/// Whether a deploy without `force` has nothing to do: every agent holds
/// its rendered allowlist already, and a deployment of this very config
/// checksum is on record as the active one. The first deploy of a config,
/// an empty one included, is always recorded (Director records every
/// deployment): clients such as Ansible's `icinga_deploy` compare the
/// active checksum before and after, and would call a deploy that records
/// nothing a failure.
pub fn nothing_to_deploy(
    agents_hold_it: bool,
    active_checksum: Option<&str>,
    rendered_checksum: &str,
) -> bool {
    agents_hold_it && active_checksum == Some(rendered_checksum)
}

/// Checks a signed allowlist's signature with `public_key`.
pub fn verify_signature(doc: &Value, public_key: &VerifyingKey) -> Result<(), String> {
    let mut unsigned = doc
        .as_object()
        .cloned()
        .ok_or("the allowlist is not a JSON object")?;
    let signature = unsigned
        .remove("signature")
        .and_then(|s| s.as_str().map(str::to_owned))
        .ok_or("the allowlist has no signature")?;
    let bytes = STANDARD
        .decode(signature)
        .map_err(|_| "the signature is not base64")?;
    let signature =
        Signature::from_slice(&bytes).map_err(|_| "the signature has the wrong length")?;
    public_key
        .verify(canonical(&Value::Object(unsigned)).as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with the server's key".to_owned())
}

/// The fingerprint of a raw Ed25519 public key: `sha256:` and the hex
/// SHA-256 of the key, as agents pin the server's key.
pub fn fingerprint(public_key: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(public_key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(
        name: &str,
        command: &str,
        arguments: Option<&[&str]>,
        timeout: Option<i64>,
    ) -> AllowedScript {
        AllowedScript {
            name: name.into(),
            command: command.into(),
            arguments: arguments.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
            timeout,
        }
    }

    #[test]
    fn a_comparison_names_what_is_added_removed_and_changed() {
        let held = [
            script("backup", "/usr/bin/backup", None, Some(60)),
            script(
                "restart",
                "/bin/systemctl",
                Some(&["restart", "nginx"]),
                None,
            ),
            script("uptime", "/usr/bin/uptime", None, None),
        ];
        let wanted = [
            script("backup", "/usr/bin/backup", None, Some(120)),
            script("disk", "/bin/df", Some(&["-h"]), None),
            script("uptime", "/usr/bin/uptime", None, None),
        ];
        let changes = compare(&held, &wanted);
        assert_eq!(changes.added, vec![wanted[1].clone()]);
        assert_eq!(changes.removed, vec![held[1].clone()]);
        assert_eq!(changes.changed, vec![(held[0].clone(), wanted[0].clone())]);
        assert_eq!(compare(&wanted, &wanted), ScriptChanges::default());
        let arguments_only = [script("disk", "/bin/df", None, None)];
        assert_eq!(
            compare(&arguments_only, &wanted[1..2]).changed.len(),
            1,
            "any arguments and a fixed list differ"
        );
    }

    #[test]
    fn a_documents_scripts_read_back_as_rendered() {
        let list = Allowlist {
            host_id: 7,
            host: "web1".into(),
            scripts: vec![
                script("a", "/bin/a", Some(&["x", "y"]), Some(5)),
                script("b", "/bin/b", None, None),
            ],
        };
        let key = SigningKey::from_bytes(&[7; 32]);
        assert_eq!(
            scripts_of(&list.sign(3, "2026-12-04T00:00:00Z", &key, None)),
            Some(list.scripts.clone())
        );
        assert_eq!(scripts_of(&list.document()), Some(list.scripts));
        assert_eq!(scripts_of(&json!({"scripts": [{"name": "a"}]})), None);
        assert_eq!(
            scripts_of(&json!({"scripts": [{"name": "a", "command": "/a", "arguments": [1]}]})),
            None
        );
        assert_eq!(scripts_of(&json!({})), None);
    }

    #[test]
    fn only_a_config_on_record_that_every_agent_holds_is_nothing_to_deploy() {
        assert!(nothing_to_deploy(true, Some("abc"), "abc"));
        assert!(
            !nothing_to_deploy(true, None, "abc"),
            "the first deploy, even with no agent, is recorded"
        );
        assert!(
            !nothing_to_deploy(true, Some("abd"), "abc"),
            "another config is on record"
        );
        assert!(!nothing_to_deploy(false, Some("abc"), "abc"));
    }

    #[test]
    fn a_fetch_changes_nothing_only_when_all_of_it_is_recorded_already() {
        let issued = Holding {
            checksum: "abc",
            serial: 7,
            has_scripts: true,
        };
        assert!(fetch_changes_nothing(Some(issued), true, issued, true));
        let older = Holding {
            serial: 6,
            ..issued
        };
        let other = Holding {
            checksum: "abd",
            ..issued
        };
        let left_the_set = Holding {
            has_scripts: false,
            ..issued
        };
        for recorded in [None, Some(older), Some(other), Some(left_the_set)] {
            assert!(!fetch_changes_nothing(recorded, true, issued, true));
        }
        assert!(
            !fetch_changes_nothing(Some(issued), false, issued, true),
            "first pull"
        );
        assert!(
            !fetch_changes_nothing(Some(issued), true, issued, false),
            "not counted"
        );
    }

    fn rfc8032_key() -> SigningKey {
        // RFC 8032, section 7.1, test 1.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap_or_default();
        SigningKey::from_bytes(&seed.try_into().unwrap_or([0; 32]))
    }

    fn sources() -> HashMap<String, ScriptSource> {
        let script = |command: &str,
                      arguments: Option<Vec<&str>>,
                      timeout: Option<i64>,
                      disabled: bool| ScriptSource {
            command: Some(command.to_owned()),
            arguments: arguments.map(|a| a.into_iter().map(str::to_owned).collect()),
            timeout,
            disabled,
        };
        HashMap::from([
            (
                "uptime".to_owned(),
                script("/usr/bin/uptime", None, Some(10), false),
            ),
            (
                "check_disk".to_owned(),
                script(
                    "/usr/lib/nagios/plugins/check_disk",
                    Some(vec!["-w", "10%"]),
                    None,
                    false,
                ),
            ),
            ("old".to_owned(), script("/usr/bin/old", None, None, true)),
            (
                "no-command".to_owned(),
                ScriptSource {
                    command: None,
                    arguments: None,
                    timeout: None,
                    disabled: false,
                },
            ),
        ])
    }

    #[test]
    fn rendering_keeps_enabled_scripts_with_a_command_sorted_by_name() {
        let names: Vec<String> = [
            "uptime",
            "old",
            "check_disk",
            "missing",
            "no-command",
            "uptime",
        ]
        .map(String::from)
        .to_vec();
        let list = render(7, "web-01", &names, &sources());
        let rendered: Vec<&str> = list.scripts.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(rendered, ["check_disk", "uptime"]);
        assert!(render(7, "web-01", &[], &sources()).scripts.is_empty());
    }

    #[test]
    fn an_empty_argument_list_renders_as_no_arguments_and_unset_as_null() {
        let props = |v: Value| v.as_object().cloned().unwrap_or_default();
        let none = ScriptSource::from_props(&props(json!({"command": "/bin/a", "arguments": []})));
        let any = ScriptSource::from_props(&props(json!({"command": "/bin/a"})));
        assert_eq!(none.arguments, Some(Vec::new()));
        assert_eq!(any.arguments, None);
        let names = vec!["s".to_owned()];
        let rendered = |source: ScriptSource| {
            let list = render(1, "h", &names, &HashMap::from([("s".to_owned(), source)]));
            (
                list.scripts_value()[0]["arguments"].clone(),
                list.checksum(),
            )
        };
        let (none_args, none_sum) = rendered(none);
        let (any_args, any_sum) = rendered(any);
        assert_eq!(none_args, json!([]));
        assert_eq!(any_args, Value::Null);
        assert_ne!(none_sum, any_sum);
    }

    /// A test vector an agent in another language can check: the canonical
    /// JSON, its SHA-256 and the Ed25519 signature with RFC 8032's test key
    /// 1 (seed 9d61b19d…, public key d75a9801…). The expected values were
    /// computed independently, with Python's hashlib and OpenSSL.
    #[test]
    fn the_canonical_form_checksum_and_signature_match_the_published_vector() {
        let names: Vec<String> = ["uptime", "check_disk"].map(String::from).to_vec();
        let list = render(7, "web-01", &names, &sources());
        let canonical_doc = canonical(
            &json!({"host_id": list.host_id, "host": list.host, "scripts": list.scripts_value()}),
        );
        assert_eq!(
            canonical_doc,
            r#"{"host":"web-01","host_id":7,"scripts":[{"arguments":["-w","10%"],"command":"/usr/lib/nagios/plugins/check_disk","name":"check_disk","timeout":null},{"arguments":null,"command":"/usr/bin/uptime","name":"uptime","timeout":10}]}"#
        );
        assert_eq!(list.checksum(), VECTOR_CHECKSUM);
        let signed = list.sign(
            1_700_000_000_000,
            "2023-11-14T22:13:20.000Z",
            &rfc8032_key(),
            None,
        );
        assert_eq!(signed["signature"], json!(VECTOR_SIGNATURE));
        assert_eq!(
            verify_signature(&signed, &rfc8032_key().verifying_key()),
            Ok(())
        );
    }

    /// Computed with Python's hashlib over the canonical string above.
    const VECTOR_CHECKSUM: &str =
        "162b1c5e6c3c745125ed0dd42db940f2fb70c6b7783fcf2a6e3e90c5019094f8";
    /// Computed with `openssl pkeyutl -sign -rawin` over the canonical signed document.
    const VECTOR_SIGNATURE: &str =
        "6AdUxMTWlRuG5EP/6NIKrYdcXMvN4bvR4ae8Mc3KzjYnZQ4fNQzD861SLsyzcu5pv/t26XG3jkpRYdaM1JNuBw==";

    #[test]
    fn any_change_to_a_signed_field_breaks_the_signature() {
        let names: Vec<String> = ["uptime"].map(String::from).to_vec();
        let signed = render(7, "web-01", &names, &sources()).sign(5, "t", &rfc8032_key(), None);
        let public = rfc8032_key().verifying_key();
        for (field, value) in [
            ("serial", json!(6)),
            ("host_id", json!(8)),
            ("host", json!("x")),
            ("scripts", json!([])),
        ] {
            let mut tampered = signed.clone();
            tampered[field] = value;
            assert!(verify_signature(&tampered, &public).is_err(), "{field}");
        }
        let other = SigningKey::from_bytes(&[1; 32]).verifying_key();
        assert!(verify_signature(&signed, &other).is_err());
    }

    #[test]
    fn the_config_checksum_covers_every_host() {
        let a = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let mut b = a.clone();
        b.insert("b".into(), "3".into());
        assert_ne!(config_checksum(&a), config_checksum(&b));
        // SHA-256 of {"a":"1","b":"2"}.
        assert_eq!(
            config_checksum(&a),
            hex::encode(Sha256::digest(br#"{"a":"1","b":"2"}"#))
        );
    }
}
