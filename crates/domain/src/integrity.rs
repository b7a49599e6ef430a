//! Integrity rules that look beyond one object: imports name templates of
//! the same kind without loops, and a host's scripts name script objects.

use std::collections::HashSet;

use super::resolve::Resolver;
use super::{Draft, ObjectName, RuleError};

/// Checks `draft`'s imports against the templates of its kind. `old_name` is
/// the name before a rename (other templates may still import it).
pub fn check_imports(
    draft: &Draft,
    old_name: Option<&ObjectName>,
    templates: &Resolver,
) -> Result<(), RuleError> {
    let is_self = |name: &str| {
        name == draft.name.as_str() || old_name.is_some_and(|old| old.as_str() == name)
    };
    for import in draft.imports() {
        if is_self(import) {
            return Err(RuleError::invalid(format!(
                "You can not import the same object into itself: \"{import}\""
            )));
        }
        if templates.template(import).is_none() {
            return Err(RuleError::invalid(format!(
                "Unknown {} template \"{}\" in imports",
                draft.kind,
                import.escape_debug()
            )));
        }
    }
    // Only a path back to this object can make a loop: the stored templates
    // have none. Walk the graph from each import, with this object's new
    // imports standing in for its stored ones.
    for import in draft.imports() {
        let mut path = vec![draft.name.as_str().to_owned(), import.to_owned()];
        if let Some(found) =
            find_path_back(import, templates, &is_self, &mut path, &mut HashSet::new())
        {
            return Err(RuleError::invalid(format!(
                "Import loop detected: {}",
                found.join(" -> ")
            )));
        }
    }
    Ok(())
}

fn find_path_back(
    from: &str,
    templates: &Resolver,
    is_self: &dyn Fn(&str) -> bool,
    path: &mut Vec<String>,
    seen: &mut HashSet<String>,
) -> Option<Vec<String>> {
    if !seen.insert(from.to_owned()) {
        return None;
    }
    let template = templates.template(from)?;
    for parent in template.imports() {
        path.push(parent.to_owned());
        if is_self(parent) {
            return Some(path.clone());
        }
        if let Some(found) = find_path_back(parent, templates, is_self, path, seen) {
            return Some(found);
        }
        path.pop();
    }
    None
}

/// Checks that every name in a host's `scripts` is an existing script object.
pub fn check_scripts(draft: &Draft, existing: &HashSet<String>) -> Result<(), RuleError> {
    match draft
        .props
        .names("scripts")
        .find(|name| !existing.contains(*name))
    {
        Some(missing) => Err(RuleError::invalid(format!(
            "Unknown script \"{}\" in scripts",
            missing.escape_debug()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, ObjectType, Props};
    use serde_json::{Value, json};

    fn template(name: &str, props: Value) -> Draft {
        let Value::Object(map) = props else {
            panic!("props must be an object")
        };
        Draft {
            kind: Kind::Host,
            name: ObjectName::from_stored(name.into()),
            object_type: ObjectType::Template,
            props: Props::from_stored(map),
        }
    }

    #[test]
    fn imports_must_name_existing_templates() {
        let templates = Resolver::new([template("a", json!({}))]);
        assert!(check_imports(&template("x", json!({"imports": ["a"]})), None, &templates).is_ok());
        assert!(
            check_imports(
                &template("x", json!({"imports": ["nope"]})),
                None,
                &templates
            )
            .is_err()
        );
    }

    #[test]
    fn self_imports_and_loops_are_refused() {
        let templates = Resolver::new([
            template("a", json!({"imports": ["b"]})),
            template("b", json!({"imports": ["c"]})),
            template("c", json!({})),
        ]);
        assert!(
            check_imports(&template("c", json!({"imports": ["c"]})), None, &templates).is_err()
        );
        let looped = check_imports(&template("c", json!({"imports": ["a"]})), None, &templates);
        assert_eq!(
            looped,
            Err(RuleError::invalid("Import loop detected: c -> a -> b -> c"))
        );
        // Renamed from c to d while importing a: a still reaches "c", the old name.
        let renamed = template("d", json!({"imports": ["a"]}));
        assert!(
            check_imports(
                &renamed,
                Some(&ObjectName::from_stored("c".into())),
                &templates
            )
            .is_err()
        );
    }

    #[test]
    fn scripts_must_exist() {
        let host = template("h", json!({"scripts": ["a", "b"]}));
        let existing: HashSet<String> = ["a".to_owned()].into();
        assert_eq!(
            check_scripts(&host, &existing),
            Err(RuleError::invalid("Unknown script \"b\" in scripts"))
        );
    }
}
