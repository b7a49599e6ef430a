//! Self-service API keys: 256-bit random secrets, kept only as SHA-256
//! hashes, with optional expiry and use limits for template keys.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::RuleError;

/// A new key: the secret (shown once) and the hash that is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub secret: String,
    pub hash: String,
}

/// Makes a key: 32 random bytes from the operating system, as 64 hex digits.
pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let hash = hash(&secret);
    NewKey { secret, hash }
}

/// The stored form of a key: hex SHA-256 of its text.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// Whether a host's own key re-registers the host when the node names it
/// `asked`. The key belongs to the host's stable id, not to its name: a
/// node whose host was renamed since it registered still boots with the
/// old name, and must neither be refused nor make a second host. Only a
/// name another object holds now is refused (that is another host's key).
pub fn own_key_registers(current: &str, asked: &str, asked_is_taken: bool) -> bool {
    asked == current || !asked_is_taken
}

/// What a template key may do: how long and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Unix milliseconds after which the key is refused.
    pub expires_at: Option<i64>,
    /// Registrations the key allows in all.
    pub max_uses: Option<i64>,
}

/// Reads `expires_in` (seconds, at least 1) and `max_uses` (at least 1)
/// from a key request body. Host keys take neither.
pub fn limits(
    body: &serde_json::Map<String, serde_json::Value>,
    now_ms: i64,
    template: bool,
) -> Result<Limits, RuleError> {
    let mut limits = Limits::default();
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        let field = match key.as_str() {
            "expires_in" | "max_uses" => key.as_str(),
            other => {
                return Err(RuleError::invalid(format!(
                    "Trying to set invalid key \"{}\"",
                    other.escape_debug()
                )));
            }
        };
        if !template {
            return Err(RuleError::invalid(format!(
                "{field} applies to template keys only"
            )));
        }
        let n = value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                RuleError::invalid(format!(
                    "Invalid value for \"{field}\": expected a positive integer"
                ))
            })?;
        if field == "expires_in" {
            limits.expires_at = Some(now_ms.saturating_add(n.saturating_mul(1000)));
        } else {
            limits.max_uses = Some(n);
        }
    }
    Ok(limits)
}

/// Why a template key cannot register a host now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Expired,
    UsedUp,
}

/// Whether a template key with these limits and uses may register one more host.
pub fn usable(limits: Limits, uses: i64, now_ms: i64) -> Result<(), Unusable> {
    if limits.expires_at.is_some_and(|at| now_ms >= at) {
        return Err(Unusable::Expired);
    }
    if limits.max_uses.is_some_and(|max| uses >= max) {
        return Err(Unusable::UsedUp);
    }
    Ok(())
}

/// How one self-service registration ended, as `/metrics` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A host key was handed out.
    Registered,
    /// The request was refused (bad key, name, body, or throttled).
    Refused,
}

super::words::words!(Registration, "registration outcome", {
    Registered => "registered",
    Refused => "refused",
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_hosts_own_key_registers_under_its_name_or_a_free_former_one() {
        assert!(own_key_registers("ag1r", "ag1r", true));
        assert!(own_key_registers("ag1r", "ag1", false), "renamed since");
        assert!(
            !own_key_registers("ag1r", "other", true),
            "another host's name"
        );
    }

    #[test]
    fn keys_are_256_bit_random_and_stored_as_their_hash() {
        let a = generate();
        let b = generate();
        assert_eq!(a.secret.len(), 64);
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.hash, hash(&a.secret));
        assert_ne!(a.hash, a.secret);
        // Independently known: SHA-256("abc").
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn limits_apply_to_template_keys_only_and_must_be_positive() {
        let body = json!({"expires_in": 60, "max_uses": "3"});
        let l = limits(body.as_object().unwrap_or(&Default::default()), 1000, true);
        assert_eq!(
            l,
            Ok(Limits {
                expires_at: Some(61_000),
                max_uses: Some(3)
            })
        );
        assert!(limits(body.as_object().unwrap_or(&Default::default()), 0, false).is_err());
        for bad in [
            json!({"max_uses": 0}),
            json!({"expires_in": -5}),
            json!({"expires_in": "soon"}),
            json!({"other": 1}),
        ] {
            assert!(
                limits(bad.as_object().unwrap_or(&Default::default()), 0, true).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_key_is_usable_until_it_expires_or_is_used_up() {
        let l = Limits {
            expires_at: Some(100),
            max_uses: Some(2),
        };
        assert_eq!(usable(l, 1, 99), Ok(()));
        assert_eq!(usable(l, 2, 99), Err(Unusable::UsedUp));
        assert_eq!(usable(l, 0, 100), Err(Unusable::Expired));
        assert_eq!(usable(Limits::default(), 1_000_000, i64::MAX), Ok(()));
    }
}
