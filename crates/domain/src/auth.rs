//! Who may do what: permissions, the preset roles, and host restrictions.

use std::collections::BTreeSet;
use std::fmt;

use super::RuleError;

/// One thing a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    Api,
    HostsRead,
    HostsWrite,
    ScriptsRead,
    ScriptsWrite,
    Deploy,
    Keys,
    ActivityRead,
    Users,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 9] = [
        Permission::Api,
        Permission::HostsRead,
        Permission::HostsWrite,
        Permission::ScriptsRead,
        Permission::ScriptsWrite,
        Permission::Deploy,
        Permission::Keys,
        Permission::ActivityRead,
        Permission::Users,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Api => "api",
            Permission::HostsRead => "hosts.read",
            Permission::HostsWrite => "hosts.write",
            Permission::ScriptsRead => "scripts.read",
            Permission::ScriptsWrite => "scripts.write",
            Permission::Deploy => "deploy",
            Permission::Keys => "keys",
            Permission::ActivityRead => "activity.read",
            Permission::Users => "users",
        }
    }

    pub fn parse(value: &str) -> Result<Self, RuleError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == value)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                RuleError::invalid(format!(
                    "Unknown permission \"{}\": use one of {}",
                    value.escape_debug(),
                    known.join(", ")
                ))
            })
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A preset set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything.
    Admin,
    /// Everything but managing users.
    Operator,
    /// `api` and every `*.read`.
    Reader,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Reader => "reader",
        }
    }

    pub fn parse(value: &str) -> Result<Self, RuleError> {
        match value {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "reader" => Ok(Role::Reader),
            other => Err(RuleError::invalid(format!(
                "Unknown role \"{}\": use admin, operator or reader",
                other.escape_debug()
            ))),
        }
    }

    /// The permissions this role grants.
    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        match self {
            Role::Admin => Permission::ALL.into_iter().collect(),
            Role::Operator => Permission::ALL
                .into_iter()
                .filter(|p| *p != Users)
                .collect(),
            Role::Reader => [Api, HostsRead, ScriptsRead, ActivityRead]
                .into_iter()
                .collect(),
        }
    }
}

/// Host name globs (`*` any run of characters, `?` one character). Empty
/// means unrestricted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restrictions(Vec<String>);

impl Restrictions {
    /// Checks each glob: host-name characters plus `*` and `?`.
    pub fn parse(globs: impl IntoIterator<Item = String>) -> Result<Self, RuleError> {
        let mut out: Vec<String> = Vec::new();
        for glob in globs {
            let valid = !glob.is_empty()
                && glob.len() <= 255
                && glob
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-*?".contains(c));
            if !valid {
                return Err(RuleError::invalid(format!(
                    "Invalid host restriction \"{}\": use host name characters with * and ?",
                    glob.escape_debug()
                )));
            }
            if !out.contains(&glob) {
                out.push(glob);
            }
        }
        Ok(Self(out))
    }

    /// No restriction at all.
    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a host of this name is within the restrictions.
    pub fn allows(&self, host: &str) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|glob| glob_matches(glob.as_bytes(), host.as_bytes()))
    }

    pub fn globs(&self) -> &[String] {
        &self.0
    }
}

/// Iterative glob matching with backtracking over the last `*`: linear in
/// practice, never exponential.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_their_presets() {
        assert!(Role::Admin.permissions().contains(&Permission::Users));
        assert!(!Role::Operator.permissions().contains(&Permission::Users));
        assert!(Role::Operator.permissions().contains(&Permission::Deploy));
        let reader = Role::Reader.permissions();
        assert!(
            reader.contains(&Permission::HostsRead) && !reader.contains(&Permission::HostsWrite)
        );
        assert!(reader.contains(&Permission::Api));
    }

    #[test]
    fn permissions_and_roles_parse_their_names_only() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Ok(p));
        }
        assert!(Permission::parse("hosts").is_err());
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn globs_match_stars_and_question_marks() {
        let r = Restrictions::parse(["web-*".to_owned(), "db-0?".to_owned()]).expect("valid");
        assert!(r.allows("web-01") && r.allows("web-") && r.allows("db-01"));
        assert!(!r.allows("db-011") && !r.allows("xweb-01") && !r.allows("mail"));
        assert!(Restrictions::default().allows("anything"));
        assert!(glob_matches(b"*a*b*c", b"xxaxxbxxc"));
        assert!(!glob_matches(b"*a*b*c", b"xxaxxbxx"));
        assert!(glob_matches(b"***", b""));
    }

    #[test]
    fn globs_are_checked() {
        assert!(Restrictions::parse(["web/*".to_owned()]).is_err());
        assert!(Restrictions::parse([String::new()]).is_err());
    }
}
