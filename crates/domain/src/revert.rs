//! Undoing logged object changes: what undoes an activity entry, whether
//! it may be undone now, and the order in which a span of entries is
//! undone.
//!
//! An entry's undo finds its object by the name the entry left it with and
//! puts back the entry's `before`. A span of entries is undone newest first,
//! one entry at a time, so every object passes back through the states it
//! had, each of which was valid when it was written. That also tracks an
//! object through renames (an older entry names the object as it was then,
//! which is its name again once the newer renames are undone) and composes
//! with the `modify` entries a rename writes for its dependants before its
//! own `rename` entry: undoing the rename renames the references back, so
//! those dependants are already as their entries' `before` and are left
//! alone ([`Decision::AlreadyUndone`]).

use serde_json::Value;

use crate::activity::Entry;
use crate::kind::Kind;

/// The actions that change an object, and so can be undone.
pub const OBJECT_CHANGES: [&str; 6] =
    ["create", "modify", "rename", "delete", "register", "revert"];

/// What undoes one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    /// The entry created the object: delete it (it is `expect`).
    Delete { expect: Value },
    /// The entry deleted the object: create it again as it was, with its
    /// stable id when the entry kept it.
    Recreate {
        object: Value,
        object_id: Option<i64>,
    },
    /// The entry changed (or renamed) the object from `target` to `expect`:
    /// put `target` back.
    Restore { expect: Value, target: Value },
}

/// One entry's undo.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The id of the entry undone.
    pub entry: i64,
    pub kind: Kind,
    pub undo: Undo,
}

impl Step {
    /// The name the object has when the undo finds it: the name the entry
    /// left it with (for a recreation, the name it must find free).
    pub fn name(&self) -> &str {
        let object = match &self.undo {
            Undo::Delete { expect } | Undo::Restore { expect, .. } => expect,
            Undo::Recreate { object, .. } => object,
        };
        name_of(object)
    }

    /// The object as the undo leaves it (`None`: deleted).
    pub fn target(&self) -> Option<&Value> {
        match &self.undo {
            Undo::Delete { .. } => None,
            Undo::Recreate { object, .. } => Some(object),
            Undo::Restore { target, .. } => Some(target),
        }
    }

    /// What the undo does, in the words of the object API: `delete`,
    /// `create`, `rename` or `modify`.
    pub fn action(&self) -> &'static str {
        match &self.undo {
            Undo::Delete { .. } => "delete",
            Undo::Recreate { .. } => "create",
            Undo::Restore { expect, target } if name_of(expect) != name_of(target) => "rename",
            Undo::Restore { .. } => "modify",
        }
    }
}

/// An object's name in its representation.
pub fn name_of(object: &Value) -> &str {
    object["object_name"].as_str().unwrap_or_default()
}

/// Why an entry cannot be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAnObjectChange(pub String);

/// The undo of entry `id`, or why it has none (an entry about a user, a
/// deployment, a key: not an object change).
pub fn undo_of(id: i64, entry: &Entry) -> Result<Step, NotAnObjectChange> {
    let not = || {
        NotAnObjectChange(format!(
            "Activity entry {id} ({} of {} \"{}\") is not a change of a host or script",
            entry.action, entry.object_type, entry.object_name
        ))
    };
    let kind = Kind::parse(&entry.object_type).ok_or_else(not)?;
    if !OBJECT_CHANGES.contains(&entry.action.as_str()) {
        return Err(not());
    }
    let undo = match (&entry.before, &entry.after) {
        (None, Some(after)) => Undo::Delete {
            expect: after.clone(),
        },
        (Some(before), None) => Undo::Recreate {
            object: before.clone(),
            object_id: entry.object_id,
        },
        (Some(before), Some(after)) => Undo::Restore {
            expect: after.clone(),
            target: before.clone(),
        },
        (None, None) => return Err(not()),
    };
    Ok(Step {
        entry: id,
        kind,
        undo,
    })
}

/// Undoing every object change of a span of entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The undos, newest entry first: the order they run in.
    pub steps: Vec<Step>,
    /// The entries left alone: not object changes (users, deployments, keys).
    pub skipped: Vec<i64>,
}

/// The plan that undoes `entries`, given newest first.
pub fn plan<'a>(entries: impl IntoIterator<Item = (i64, &'a Entry)>) -> Plan {
    let mut plan = Plan::default();
    for (id, entry) in entries {
        match undo_of(id, entry) {
            Ok(step) => plan.steps.push(step),
            Err(_) => plan.skipped.push(id),
        }
    }
    plan
}

/// Whether a step may run, given the object that now has its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The object is as the entry left it (for a recreation: the name is
    /// free): undo it.
    Apply,
    /// The object is already as the undo would leave it (a dependant whose
    /// reference a rename back restored): nothing to do.
    AlreadyUndone,
    /// The object changed since: what changed.
    Conflict(String),
}

/// Decides `step` against `current`, the representation of the object that
/// now has [`Step::name`] (`None`: no object has it).
pub fn decide(step: &Step, current: Option<&Value>) -> Decision {
    let kind = step.kind;
    let name = step.name();
    match (&step.undo, current) {
        (Undo::Delete { expect }, Some(c)) | (Undo::Restore { expect, .. }, Some(c))
            if c == expect =>
        {
            Decision::Apply
        }
        (Undo::Delete { .. }, None) => Decision::AlreadyUndone,
        (Undo::Restore { target, .. }, Some(c)) if c == target => Decision::AlreadyUndone,
        (Undo::Delete { expect }, Some(c)) | (Undo::Restore { expect, .. }, Some(c)) => {
            Decision::Conflict(format!(
                "{kind} \"{name}\" changed since: {}",
                changed_keys(expect, c).join(", ")
            ))
        }
        (Undo::Restore { .. }, None) => Decision::Conflict(format!(
            "{kind} \"{name}\" no longer exists (renamed or deleted since)"
        )),
        (Undo::Recreate { .. }, None) => Decision::Apply,
        (Undo::Recreate { object, .. }, Some(c)) if c == object => Decision::AlreadyUndone,
        (Undo::Recreate { .. }, Some(_)) => Decision::Conflict(format!(
            "the name of {kind} \"{name}\" is taken by another {kind}"
        )),
    }
}

/// The top-level keys whose values differ between two representations.
pub fn changed_keys(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn entry(kind: &str, action: &str, before: Option<Value>, after: Option<Value>) -> Entry {
        let name = after.as_ref().or(before.as_ref()).map_or("", name_of);
        Entry {
            at: 1,
            author: "alice".into(),
            action: action.into(),
            object_type: kind.into(),
            object_name: name.into(),
            before,
            after,
            request_id: None,
            object_id: None,
            reverts: None,
        }
    }

    fn host(name: &str, scripts: &[&str]) -> Value {
        let mut h = json!({"object_name": name, "object_type": "object"});
        if !scripts.is_empty() {
            h["scripts"] = json!(scripts);
        }
        h
    }

    fn script(name: &str, command: &str) -> Value {
        json!({"object_name": name, "object_type": "object", "command": command})
    }

    type Objects = BTreeMap<(&'static str, String), Value>;

    /// Runs a plan on objects in memory as the object write path does: a
    /// rename rewrites the references of the objects that hold them.
    fn run(plan: &Plan, objects: &mut Objects) -> Result<Vec<i64>, String> {
        let mut applied = Vec::new();
        for step in &plan.steps {
            let key = (step.kind.as_str(), step.name().to_owned());
            match decide(step, objects.get(&key)) {
                Decision::AlreadyUndone => continue,
                Decision::Conflict(why) => return Err(why),
                Decision::Apply => applied.push(step.entry),
            }
            objects.remove(&key);
            if let Some(target) = step.target() {
                let new = name_of(target).to_owned();
                if step.action() == "rename" {
                    let field = if step.kind == Kind::Script {
                        "scripts"
                    } else {
                        "imports"
                    };
                    for o in objects.values_mut() {
                        if let Some(list) = o.get_mut(field).and_then(Value::as_array_mut) {
                            for n in list.iter_mut().filter(|n| **n == json!(key.1)) {
                                *n = json!(new);
                            }
                        }
                    }
                }
                objects.insert((step.kind.as_str(), new), target.clone());
            }
        }
        Ok(applied)
    }

    fn objects(list: &[(Kind, Value)]) -> Objects {
        list.iter()
            .map(|(k, v)| ((k.as_str(), name_of(v).to_owned()), v.clone()))
            .collect()
    }

    #[test]
    fn each_action_has_its_undo() {
        let create = entry("host", "create", None, Some(host("a", &[])));
        assert_eq!(undo_of(1, &create).map(|s| s.action()), Ok("delete"));
        let mut delete = entry("script", "delete", Some(script("s", "/bin/s")), None);
        delete.object_id = Some(9);
        let step = undo_of(2, &delete).expect("undo");
        assert_eq!(step.action(), "create");
        assert_eq!(
            step.undo,
            Undo::Recreate {
                object: script("s", "/bin/s"),
                object_id: Some(9)
            }
        );
        let rename = entry("host", "rename", Some(host("a", &[])), Some(host("b", &[])));
        let step = undo_of(3, &rename).expect("undo");
        assert_eq!((step.action(), step.name()), ("rename", "b"));
        let modify = entry(
            "host",
            "modify",
            Some(host("a", &[])),
            Some(host("a", &["s"])),
        );
        assert_eq!(undo_of(4, &modify).map(|s| s.action()), Ok("modify"));
    }

    #[test]
    fn entries_that_are_not_object_changes_have_no_undo() {
        for e in [
            entry("user", "create", None, Some(json!({"name": "bob"}))),
            entry("deployment", "deploy-start", None, Some(json!({}))),
            entry(
                "host",
                "create-key",
                None,
                Some(json!({"object_name": "a"})),
            ),
            entry(
                "host",
                "revoke-key",
                Some(json!({"object_name": "a"})),
                None,
            ),
        ] {
            assert!(undo_of(1, &e).is_err(), "{e:?}");
        }
    }

    #[test]
    fn a_step_applies_only_to_the_object_as_its_entry_left_it() {
        let modify = entry(
            "host",
            "modify",
            Some(host("a", &[])),
            Some(host("a", &["s"])),
        );
        let step = undo_of(5, &modify).expect("undo");
        assert_eq!(decide(&step, Some(&host("a", &["s"]))), Decision::Apply);
        assert_eq!(
            decide(&step, Some(&host("a", &[]))),
            Decision::AlreadyUndone
        );
        let mut changed = host("a", &["s"]);
        changed["address"] = json!("127.0.0.1");
        assert_eq!(
            decide(&step, Some(&changed)),
            Decision::Conflict("host \"a\" changed since: address".into())
        );
        assert!(matches!(decide(&step, None), Decision::Conflict(_)));

        let delete = entry("host", "delete", Some(host("a", &[])), None);
        let step = undo_of(6, &delete).expect("undo");
        assert_eq!(decide(&step, None), Decision::Apply);
        assert!(matches!(
            decide(&step, Some(&host("a", &["s"]))),
            Decision::Conflict(m) if m.contains("taken")
        ));

        let create = entry("host", "create", None, Some(host("a", &[])));
        let step = undo_of(7, &create).expect("undo");
        assert_eq!(decide(&step, Some(&host("a", &[]))), Decision::Apply);
        assert_eq!(decide(&step, None), Decision::AlreadyUndone);
    }

    #[test]
    fn a_rename_back_composes_with_the_entries_of_its_dependants() {
        // At N: script s, host h listing it. Then s is renamed to t (the
        // rename logs h's rewrite first), then t's command changes.
        let at_n = objects(&[
            (Kind::Script, script("s", "/bin/s")),
            (Kind::Host, host("h", &["s"])),
        ]);
        let log = [
            entry(
                "host",
                "modify",
                Some(host("h", &["s"])),
                Some(host("h", &["t"])),
            ),
            entry(
                "script",
                "rename",
                Some(script("s", "/bin/s")),
                Some(script("t", "/bin/s")),
            ),
            entry(
                "script",
                "modify",
                Some(script("t", "/bin/s")),
                Some(script("t", "/bin/t")),
            ),
        ];
        let mut now = objects(&[
            (Kind::Script, script("t", "/bin/t")),
            (Kind::Host, host("h", &["t"])),
        ]);
        let newest_first: Vec<(i64, &Entry)> = (11..).zip(log.iter()).collect::<Vec<_>>();
        let plan = plan(newest_first.into_iter().rev());
        assert_eq!(run(&plan, &mut now), Ok(vec![13, 12]));
        assert_eq!(now, at_n);
    }

    #[test]
    fn a_span_across_creates_renames_deletes_and_templates_comes_back_exactly() {
        let tpl = |name: &str, port: i64| json!({"object_name": name, "object_type": "template", "agent_port": port});
        let with_import = |name: &str, t: &str| json!({"object_name": name, "object_type": "object", "imports": [t]});
        let at_n = objects(&[
            (Kind::Host, tpl("base", 7446)),
            (Kind::Host, with_import("a", "base")),
            (Kind::Host, host("gone", &[])),
        ]);
        let log = [
            entry(
                "host",
                "modify",
                Some(tpl("base", 7446)),
                Some(tpl("base", 9000)),
            ),
            entry("user", "create", None, Some(json!({"name": "bob"}))),
            entry(
                "host",
                "modify",
                Some(with_import("a", "base")),
                Some(with_import("a", "core")),
            ),
            entry(
                "host",
                "rename",
                Some(tpl("base", 9000)),
                Some(tpl("core", 9000)),
            ),
            entry("host", "delete", Some(host("gone", &[])), None),
            entry("host", "create", None, Some(host("new", &[]))),
            entry(
                "host",
                "rename",
                Some(host("new", &[])),
                Some(host("gone", &[])),
            ),
        ];
        let mut now = objects(&[
            (Kind::Host, tpl("core", 9000)),
            (Kind::Host, with_import("a", "core")),
            (Kind::Host, host("gone", &[])),
        ]);
        let newest_first: Vec<(i64, &Entry)> = (1..).zip(log.iter()).collect::<Vec<_>>();
        let plan = plan(newest_first.into_iter().rev());
        assert_eq!(plan.skipped, vec![2]);
        assert_eq!(run(&plan, &mut now), Ok(vec![7, 6, 5, 4, 1]));
        assert_eq!(now, at_n);
    }

    #[test]
    fn changed_keys_name_each_difference_once() {
        assert_eq!(
            changed_keys(&json!({"a": 1, "b": 2}), &json!({"a": 1, "b": 3, "c": 4})),
            vec!["b".to_owned(), "c".to_owned()]
        );
    }
}
