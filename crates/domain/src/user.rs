//! API users as the rules see them: name, role, extra permissions, host
//! restrictions, disabled; the password is write-only.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::RuleError;
use super::auth::{Permission, Restrictions, Role};
use super::normalise::parse_bool;

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest user name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The longest password, in bytes: argon2 and the login check need a bound.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A user, without the password.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDraft {
    pub name: String,
    pub role: Role,
    /// Permissions beyond the role's.
    pub permissions: BTreeSet<Permission>,
    pub restrictions: Restrictions,
    pub disabled: bool,
}

/// The result of a write: the user, and a new password when one was given.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    pub draft: UserDraft,
    pub password: Option<String>,
}

impl UserDraft {
    /// Everything the user may do: the role's permissions and the extras.
    pub fn effective_permissions(&self) -> BTreeSet<Permission> {
        let mut all = self.role.permissions();
        all.extend(self.permissions.iter().copied());
        all
    }
}

/// Checks a user name: 1 to 64 letters, digits, `.`, `_`, `@`, `-`.
pub fn check_name(name: &str) -> Result<(), RuleError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(RuleError::invalid(format!(
            "Invalid user name \"{}\": use 1 to 64 letters, digits, '.', '_', '@' and '-'",
            name.escape_debug()
        )))
    }
}

/// Checks a new password.
pub fn check_password(password: &str) -> Result<(), RuleError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(RuleError::invalid(format!(
            "The password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(RuleError::invalid(format!(
            "The password may have at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// Whether login credentials could belong to a user at all: longer names or
/// passwords than any user may have are refused before they cost anything.
pub fn credentials_fit(name: &str, password: &str) -> bool {
    name.len() <= MAX_NAME_LEN && password.len() <= MAX_PASSWORD_LEN
}

/// A new user. The password is required.
pub fn create(url_name: Option<&str>, body: &Map<String, Value>) -> Result<UserWrite, RuleError> {
    let body_name = string(body, "object_name")?;
    let name = match (url_name, body_name) {
        (Some(url), Some(b)) if url != b => {
            return Err(RuleError::invalid(format!(
                "object_name \"{b}\" differs from the name \"{url}\" in the URL"
            )));
        }
        (_, Some(b)) => b,
        (Some(url), None) => url.to_owned(),
        (None, None) => return Err(RuleError::invalid("object_name is required")),
    };
    check_name(&name)?;
    let empty = UserDraft {
        name,
        role: Role::Reader,
        permissions: BTreeSet::new(),
        restrictions: Restrictions::default(),
        disabled: false,
    };
    let write = apply(empty, body)?;
    if write.password.is_none() {
        return Err(RuleError::invalid("password is required"));
    }
    Ok(write)
}

/// POST with a name: only the keys in the body change.
pub fn merge(current: &UserDraft, body: &Map<String, Value>) -> Result<UserWrite, RuleError> {
    apply(current.clone(), body)
}

/// PUT: everything but the name (and the password, which is write-only) is
/// what the body says.
pub fn replace(current: &UserDraft, body: &Map<String, Value>) -> Result<UserWrite, RuleError> {
    let fresh = UserDraft {
        name: current.name.clone(),
        role: Role::Reader,
        permissions: BTreeSet::new(),
        restrictions: Restrictions::default(),
        disabled: false,
    };
    apply(fresh, body)
}

fn string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, RuleError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(RuleError::invalid(format!(
            "Invalid value for \"{key}\": expected a string"
        ))),
    }
}

fn strings(body: &Map<String, Value>, key: &str) -> Result<Vec<String>, RuleError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(RuleError::invalid(format!(
                    "Invalid value for \"{key}\": expected a list of strings"
                ))),
            })
            .collect(),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(_) => Err(RuleError::invalid(format!(
            "Invalid value for \"{key}\": expected a list of strings"
        ))),
    }
}

fn apply(mut draft: UserDraft, body: &Map<String, Value>) -> Result<UserWrite, RuleError> {
    let mut password = None;
    for (key, value) in body {
        match key.as_str() {
            "object_name" => {
                if let Some(name) = string(body, key)? {
                    check_name(&name)?;
                    draft.name = name;
                }
            }
            "role" => {
                draft.role = string(body, key)?
                    .map(|r| Role::parse(&r))
                    .transpose()?
                    .unwrap_or(Role::Reader)
            }
            "permissions" => {
                draft.permissions = strings(body, key)?
                    .iter()
                    .map(|p| Permission::parse(p))
                    .collect::<Result<_, _>>()?;
            }
            "restrictions" => draft.restrictions = Restrictions::parse(strings(body, key)?)?,
            "disabled" => {
                draft.disabled = match value {
                    Value::Null => false,
                    Value::String(s) if s.is_empty() => false,
                    other => parse_bool(other).ok_or_else(|| {
                        RuleError::invalid("Invalid value for \"disabled\": expected a boolean")
                    })?,
                }
            }
            "password" => {
                if let Some(p) = string(body, key)? {
                    check_password(&p)?;
                    password = Some(p);
                }
            }
            _ if value.is_null() => {}
            other => {
                return Err(RuleError::invalid(format!(
                    "Trying to set invalid key \"{}\"",
                    other.escape_debug()
                )));
            }
        }
    }
    Ok(UserWrite { draft, password })
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_longer_than_any_user_may_have_do_not_fit() {
        assert!(super::credentials_fit(&"a".repeat(64), &"p".repeat(1024)));
        assert!(!super::credentials_fit(&"a".repeat(65), "password"));
        assert!(!super::credentials_fit("alice", &"p".repeat(1025)));
        assert!(super::check_password(&"p".repeat(1025)).is_err());
    }

    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_user_needs_a_valid_name_and_a_password() {
        assert!(create(None, &obj(json!({"object_name": "alice"}))).is_err());
        assert!(
            create(
                None,
                &obj(json!({"object_name": "a b", "password": "long enough"}))
            )
            .is_err()
        );
        assert!(
            create(
                None,
                &obj(json!({"object_name": "alice", "password": "short"}))
            )
            .is_err()
        );
        let w = create(
            None,
            &obj(json!({"object_name": "alice", "password": "long enough", "role": "operator"})),
        )
        .expect("valid");
        assert_eq!(w.draft.role, Role::Operator);
        assert_eq!(w.password.as_deref(), Some("long enough"));
    }

    #[test]
    fn permissions_add_to_the_role() {
        let w = create(None, &obj(json!({"object_name": "a", "password": "long enough", "restrictions": ["web-*"], "permissions": ["deploy"]}))).expect("valid");
        assert!(
            w.draft
                .effective_permissions()
                .contains(&Permission::Deploy)
        );
    }

    #[test]
    fn merge_changes_only_given_keys_and_replace_resets_the_rest() {
        let w = create(None, &obj(json!({"object_name": "a", "password": "long enough", "role": "admin", "disabled": "y"}))).expect("valid");
        let merged = merge(&w.draft, &obj(json!({"restrictions": ["x*"]}))).expect("valid");
        assert_eq!(
            (merged.draft.role, merged.draft.disabled),
            (Role::Admin, true)
        );
        assert_eq!(merged.password, None);
        let replaced = replace(&w.draft, &obj(json!({"role": "operator"}))).expect("valid");
        assert_eq!(
            (replaced.draft.role, replaced.draft.disabled),
            (Role::Operator, false)
        );
        assert!(merge(&w.draft, &obj(json!({"role": "root"}))).is_err());
        assert!(merge(&w.draft, &obj(json!({"permissions": ["everything"]}))).is_err());
        assert!(merge(&w.draft, &obj(json!({"hash": "x"}))).is_err());
    }
}
