//! Activity entries and the checksum that chains each to the one before.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The parent checksum of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One change, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Unix milliseconds.
    pub at: i64,
    /// A user name, `cli`, or `self-service (ADDRESS)`.
    pub author: String,
    /// `create`, `modify`, `rename`, `delete`, ...
    pub action: String,
    /// `host`, `script`, `user`, ...
    pub object_type: String,
    pub object_name: String,
    /// The object before the change (no secrets), if it existed.
    pub before: Option<Value>,
    /// The object after the change (no secrets), if it still exists.
    pub after: Option<Value>,
    pub request_id: Option<String>,
    /// The changed object's stable id, on object changes (absent on entries
    /// written before it was kept, and on entries about other things).
    pub object_id: Option<i64>,
    /// On a `revert` entry: the id of the entry it undid.
    pub reverts: Option<i64>,
}

impl Entry {
    /// An entry about deployment `id` (`deploy-start`, `deploy-halt`,
    /// `deploy-resume`, `deploy-end`): what it came to in `after`.
    pub fn deployment(
        at: i64,
        author: &str,
        action: &str,
        id: i64,
        after: Value,
        request_id: Option<String>,
    ) -> Self {
        Entry {
            at,
            author: author.to_owned(),
            action: action.to_owned(),
            object_type: "deployment".into(),
            object_name: id.to_string(),
            before: None,
            after: Some(after),
            request_id,
            object_id: None,
            reverts: None,
        }
    }

    /// Hex SHA-256 over the entry's canonical JSON and its parent's checksum:
    /// altering any stored entry breaks its checksum or the next one's link.
    pub fn checksum(&self, parent: &str) -> String {
        let mut canonical = json!({
            "action": self.action,
            "after": self.after,
            "at": self.at,
            "author": self.author,
            "before": self.before,
            "object_name": self.object_name,
            "object_type": self.object_type,
            "parent_checksum": parent,
            "request_id": self.request_id,
        });
        // Covered only when set: entries from before these fields existed
        // keep the checksums they were written with.
        for (key, value) in [("object_id", self.object_id), ("reverts", self.reverts)] {
            if let Some(value) = value {
                canonical[key] = json!(value);
            }
        }
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The stored checksum does not match the entry's content.
    Checksum { id: i64 },
    /// The entry does not point at the previous entry's checksum.
    Link { id: i64 },
}

/// Checks a chain given in id order as `(id, entry, parent, checksum)`.
pub fn verify<'a>(
    entries: impl IntoIterator<Item = (i64, &'a Entry, &'a str, &'a str)>,
    mut previous: String,
) -> Result<String, Break> {
    for (id, entry, parent, checksum) in entries {
        if parent != previous {
            return Err(Break::Link { id });
        }
        if entry.checksum(parent) != checksum {
            return Err(Break::Checksum { id });
        }
        previous = checksum.to_owned();
    }
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            at: 1,
            author: "alice".into(),
            action: "create".into(),
            object_type: "host".into(),
            object_name: name.into(),
            before: None,
            after: Some(json!({"object_name": name})),
            request_id: Some("r1".into()),
            object_id: None,
            reverts: None,
        }
    }

    #[test]
    fn a_chain_verifies_and_any_alteration_is_found() {
        let (a, b) = (entry("a"), entry("b"));
        let ca = a.checksum(GENESIS);
        let cb = b.checksum(&ca);
        let chain = [
            (1, &a, GENESIS, ca.as_str()),
            (2, &b, ca.as_str(), cb.as_str()),
        ];
        assert_eq!(verify(chain, GENESIS.into()), Ok(cb.clone()));

        let mut altered = b.clone();
        altered.author = "mallory".into();
        let chain = [
            (1, &a, GENESIS, ca.as_str()),
            (2, &altered, ca.as_str(), cb.as_str()),
        ];
        assert_eq!(
            verify(chain, GENESIS.into()),
            Err(Break::Checksum { id: 2 })
        );

        let chain = [(2, &b, ca.as_str(), cb.as_str())];
        assert_eq!(verify(chain, GENESIS.into()), Err(Break::Link { id: 2 }));
    }

    #[test]
    fn the_checksum_covers_every_field() {
        let base = entry("a");
        let mut changed = base.clone();
        changed.request_id = None;
        assert_ne!(base.checksum(GENESIS), changed.checksum(GENESIS));
        assert_ne!(base.checksum(GENESIS), base.checksum("x"));
        let mut with_id = base.clone();
        with_id.object_id = Some(7);
        assert_ne!(base.checksum(GENESIS), with_id.checksum(GENESIS));
        let mut reverting = base.clone();
        reverting.reverts = Some(3);
        assert_ne!(base.checksum(GENESIS), reverting.checksum(GENESIS));
        assert_ne!(with_id.checksum(GENESIS), reverting.checksum(GENESIS));
    }

    #[test]
    fn an_entry_without_object_id_or_reverts_keeps_the_checksum_it_had() {
        // The checksum of this entry as written before those fields existed.
        let canonical = json!({
            "action": "create", "after": {"object_name": "a"}, "at": 1,
            "author": "alice", "before": null, "object_name": "a",
            "object_type": "host", "parent_checksum": GENESIS, "request_id": "r1",
        });
        let old = hex::encode(Sha256::digest(canonical.to_string().as_bytes()));
        assert_eq!(entry("a").checksum(GENESIS), old);
    }
}
