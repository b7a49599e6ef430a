//! Object names, valid by construction.

use std::fmt;

use super::{Kind, RuleError};

/// A host or script name that passed its kind's rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName(String);

impl ObjectName {
    /// Host names: 1 to 255 letters, digits, `.`, `-`, `_`.
    /// Script names: 1 to 64 letters, digits, `-`, `_`.
    pub fn parse(kind: Kind, value: &str) -> Result<Self, RuleError> {
        let (max, dot_allowed) = match kind {
            Kind::Host => (255, true),
            Kind::Script => (64, false),
        };
        let valid_char = |c: char| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_' || (dot_allowed && c == '.')
        };
        if value.is_empty() || value.len() > max || !value.chars().all(valid_char) {
            let allowed = if dot_allowed {
                "letters, digits, '.', '-' and '_'"
            } else {
                "letters, digits, '-' and '_'"
            };
            return Err(RuleError::invalid(format!(
                "Invalid {kind} name \"{}\": use 1 to {max} {allowed}",
                value.escape_debug()
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// Wraps a name read back from the database, where only valid names are written.
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_accept_dots_and_reject_spaces_slashes_and_control_characters() {
        assert!(ObjectName::parse(Kind::Host, "web-01.example.com").is_ok());
        assert!(ObjectName::parse(Kind::Host, "a_b").is_ok());
        for bad in ["", "a b", "a/b", "a\u{7}b", "ä", "a\nb"] {
            assert!(ObjectName::parse(Kind::Host, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_names_stop_at_255_characters() {
        assert!(ObjectName::parse(Kind::Host, &"a".repeat(255)).is_ok());
        assert!(ObjectName::parse(Kind::Host, &"a".repeat(256)).is_err());
    }

    #[test]
    fn script_names_follow_the_allowlist_pattern() {
        assert!(ObjectName::parse(Kind::Script, "check_disk-2").is_ok());
        assert!(ObjectName::parse(Kind::Script, "a.b").is_err());
        assert!(ObjectName::parse(Kind::Script, &"a".repeat(64)).is_ok());
        assert!(ObjectName::parse(Kind::Script, &"a".repeat(65)).is_err());
    }
}
