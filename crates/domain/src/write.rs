//! How a write turns the stored object and a request body into the new
//! object: create, merge (POST), replace (PUT) and the two PATCH forms.

use serde_json::{Map, Value};

use super::normalise::normalise;
use super::object::{ViewOptions, render};
use super::{Draft, Kind, ObjectName, ObjectType, Props, RuleError};

const VARS_PREFIX: &str = "vars.";

/// A new object from a create request (POST or PUT without an existing object).
/// `url_name` is the `?name=` of a PUT, which must agree with the body.
pub fn create(
    kind: Kind,
    url_name: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Draft, RuleError> {
    let body_name = body_name(kind, body)?;
    let name = match (url_name, body_name) {
        (Some(url), Some(body)) if url != body.as_str() => {
            return Err(RuleError::invalid(format!(
                "object_name \"{body}\" differs from the name \"{url}\" in the URL"
            )));
        }
        (_, Some(body)) => body,
        (Some(url), None) => ObjectName::parse(kind, url)?,
        (None, None) => return Err(RuleError::invalid("object_name is required")),
    };
    let object_type = body_type(body)?.unwrap_or(ObjectType::Object);
    let props = apply(kind, Props::default(), body)?;
    Ok(Draft {
        kind,
        name,
        object_type,
        props,
    })
}

/// The name a create body asks for, if any (used to find an existing object).
pub fn body_name(kind: Kind, body: &Map<String, Value>) -> Result<Option<ObjectName>, RuleError> {
    match body.get("object_name") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => ObjectName::parse(kind, s).map(Some),
        Some(_) => Err(RuleError::invalid(
            "Invalid value for \"object_name\": expected a string",
        )),
    }
}

fn body_type(body: &Map<String, Value>) -> Result<Option<ObjectType>, RuleError> {
    match body.get("object_type") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => ObjectType::parse(s).map(Some).ok_or_else(|| {
            RuleError::invalid(format!(
                "Invalid object_type \"{}\": use \"object\" or \"template\"",
                s.escape_debug()
            ))
        }),
        Some(_) => Err(RuleError::invalid(
            "Invalid value for \"object_type\": expected a string",
        )),
    }
}

/// Name and type after a write to `current`: a different `object_name`
/// renames; `object_type` can never change.
fn identity(
    current: &Draft,
    body: &Map<String, Value>,
) -> Result<(ObjectName, ObjectType), RuleError> {
    if let Some(requested) = body_type(body)?
        && requested != current.object_type
    {
        return Err(RuleError::invalid(format!(
            "object_type cannot be changed (\"{}\" is {})",
            current.name,
            match current.object_type {
                ObjectType::Object => "an object",
                ObjectType::Template => "a template",
            }
        )));
    }
    let name = body_name(current.kind, body)?.unwrap_or_else(|| current.name.clone());
    Ok((name, current.object_type))
}

/// POST with `?name=`: every top-level key replaces that property whole;
/// `vars.NAME` sets or (with `null`) removes one variable.
pub fn merge(current: &Draft, body: &Map<String, Value>) -> Result<Draft, RuleError> {
    let (name, object_type) = identity(current, body)?;
    let props = apply(current.kind, current.props.clone(), body)?;
    Ok(Draft {
        kind: current.kind,
        name,
        object_type,
        props,
    })
}

/// PUT: only name and type survive; everything else is what the body says.
pub fn replace(current: &Draft, body: &Map<String, Value>) -> Result<Draft, RuleError> {
    let (name, object_type) = identity(current, body)?;
    let props = apply(current.kind, Props::default(), body)?;
    Ok(Draft {
        kind: current.kind,
        name,
        object_type,
        props,
    })
}

/// PATCH with `application/merge-patch+json` (RFC 7396), applied to the
/// stored object as `withNull` shows it.
pub fn merge_patch(current: &Draft, patch: &Value) -> Result<Draft, RuleError> {
    let mut document = patch_document(current);
    json_patch::merge(&mut document, patch);
    from_document(current, document)
}

/// PATCH with `application/json-patch+json` (RFC 6902). A failed `test`
/// operation is a conflict; any other failure makes the patch invalid.
pub fn json_patch(current: &Draft, patch: &json_patch::Patch) -> Result<Draft, RuleError> {
    let mut document = patch_document(current);
    json_patch::patch(&mut document, patch).map_err(|e| match e.kind {
        json_patch::PatchErrorKind::TestFailed => RuleError::Conflict(format!(
            "Patch test failed at operation {}: {}",
            e.operation, e.path
        )),
        _ => RuleError::invalid(format!("Invalid patch at operation {}: {}", e.operation, e)),
    })?;
    from_document(current, document)
}

fn patch_document(current: &Draft) -> Value {
    let options = ViewOptions {
        with_null: true,
        properties: None,
    };
    render(
        current.kind,
        &current.name,
        current.object_type,
        &current.props,
        &options,
        false,
    )
}

fn from_document(current: &Draft, document: Value) -> Result<Draft, RuleError> {
    match document {
        Value::Object(body) => replace(current, &body),
        _ => Err(RuleError::invalid(
            "The patched object is not a JSON object",
        )),
    }
}

/// Applies a body's properties onto `props`: `vars` first, then the other
/// properties, then the dotted `vars.NAME` keys.
fn apply(kind: Kind, mut props: Props, body: &Map<String, Value>) -> Result<Props, RuleError> {
    if let Some(vars) = body.get("vars") {
        set(kind, &mut props, "vars", vars)?;
    }
    for (key, value) in body {
        if matches!(key.as_str(), "object_name" | "object_type" | "vars")
            || key.starts_with(VARS_PREFIX)
        {
            continue;
        }
        set(kind, &mut props, key, value)?;
    }
    for (key, value) in body {
        if let Some(var) = key.strip_prefix(VARS_PREFIX) {
            set_var(&mut props, var, value)?;
        }
    }
    Ok(props)
}

fn set(kind: Kind, props: &mut Props, key: &str, value: &Value) -> Result<(), RuleError> {
    let Some(ty) = kind.property(key) else {
        if value.is_null() {
            return Ok(()); // clients such as the Ansible modules send every option
        }
        if kind == Kind::Host && key == "api_key" {
            // Director shows a host's key as a property; here a key is a
            // secret with its own endpoint, never set or shown with the object.
            return Err(RuleError::invalid(
                "Trying to set invalid key \"api_key\": a self-service key is made with \
                 POST /director/host/api-key?name=NAME, never set through the object",
            ));
        }
        return Err(RuleError::invalid(format!(
            "Trying to set invalid key \"{}\"",
            key.escape_debug()
        )));
    };
    match normalise(key, ty, value)? {
        Some(v) => props.map_mut().insert(key.to_owned(), v),
        None => props.map_mut().remove(key),
    };
    Ok(())
}

fn set_var(props: &mut Props, var: &str, value: &Value) -> Result<(), RuleError> {
    if var.is_empty() {
        return Err(RuleError::invalid(
            "Trying to set invalid key \"vars.\": the variable needs a name",
        ));
    }
    let map = props.map_mut();
    let mut vars = match map.remove("vars") {
        Some(Value::Object(vars)) => vars,
        _ => Map::new(),
    };
    if value.is_null() {
        vars.remove(var);
    } else {
        vars.insert(var.to_owned(), value.clone());
    }
    if !vars.is_empty() {
        map.insert("vars".into(), Value::Object(vars));
    }
    Ok(())
}

/// `dependant` after the object `old` of kind `renamed_kind` was renamed to
/// `new`: its imports (same kind) or its scripts (a host listing a script)
/// follow the new name.
pub fn rename_reference(
    dependant: &Draft,
    renamed_kind: Kind,
    old: &ObjectName,
    new: &ObjectName,
) -> Draft {
    let key = if renamed_kind == dependant.kind {
        "imports"
    } else {
        "scripts"
    };
    let mut next = dependant.clone();
    if let Some(Value::Array(names)) = next.props.map_mut().get_mut(key) {
        for name in names.iter_mut() {
            if name.as_str() == Some(old.as_str()) {
                *name = Value::String(new.as_str().to_owned());
            }
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn view(draft: &Draft) -> Value {
        render(
            draft.kind,
            &draft.name,
            draft.object_type,
            &draft.props,
            &ViewOptions::default(),
            false,
        )
    }

    fn apitest() -> Draft {
        create(
            Kind::Host,
            None,
            &obj(json!({"object_name": "apitest", "object_type": "object", "address": "127.0.0.1", "vars": {"location": "Berlin"}})),
        )
        .expect("valid host")
    }

    #[test]
    fn create_takes_the_name_from_the_body_and_defaults_to_object() {
        let draft = create(Kind::Host, None, &obj(json!({"object_name": "h"}))).expect("valid");
        assert_eq!(draft.object_type, ObjectType::Object);
        assert_eq!(
            view(&draft),
            json!({"object_name": "h", "object_type": "object"})
        );
    }

    #[test]
    fn create_needs_a_name_that_agrees_with_the_url() {
        assert!(create(Kind::Host, None, &obj(json!({"address": "a"}))).is_err());
        assert!(create(Kind::Host, Some("a"), &obj(json!({"object_name": "b"}))).is_err());
        let draft = create(Kind::Host, Some("a"), &obj(json!({}))).expect("valid");
        assert_eq!(draft.name.as_str(), "a");
    }

    #[test]
    fn merge_with_dotted_vars_sets_one_variable_and_keeps_the_others() {
        let merged = merge(
            &apitest(),
            &obj(json!({"address": "127.0.0.2", "vars.event": "Icinga CAMP"})),
        )
        .expect("valid");
        assert_eq!(
            merged.props.get("vars"),
            Some(&json!({"location": "Berlin", "event": "Icinga CAMP"}))
        );
        assert_eq!(merged.props.get("address"), Some(&json!("127.0.0.2")));
    }

    #[test]
    fn merge_with_whole_vars_replaces_all_variables() {
        let merged = merge(
            &apitest(),
            &obj(json!({"vars": {"event": ["Icinga", "Camp"]}})),
        )
        .expect("valid");
        assert_eq!(
            merged.props.get("vars"),
            Some(&json!({"event": ["Icinga", "Camp"]}))
        );
    }

    #[test]
    fn merge_applies_whole_vars_before_dotted_vars_and_null_removes_a_variable() {
        let merged = merge(
            &apitest(),
            &obj(json!({"vars.b": 2, "vars": {"a": 1, "c": 3}, "vars.c": null})),
        )
        .expect("valid");
        assert_eq!(merged.props.get("vars"), Some(&json!({"a": 1, "b": 2})));
        let emptied = merge(&apitest(), &obj(json!({"vars.location": null}))).expect("valid");
        assert_eq!(emptied.props.get("vars"), None);
    }

    #[test]
    fn a_variable_name_keeps_everything_after_the_first_dot() {
        let merged = merge(&apitest(), &obj(json!({"vars.a.b": 1}))).expect("valid");
        assert_eq!(
            merged.props.get("vars").and_then(|v| v.get("a.b")),
            Some(&json!(1))
        );
    }

    #[test]
    fn resending_what_was_stored_in_another_spelling_changes_nothing() {
        let current = merge(
            &apitest(),
            &obj(json!({"has_agent": true, "agent_port": 5665})),
        )
        .expect("valid");
        let again = merge(
            &current,
            &obj(json!({"has_agent": "y", "agent_port": "5665", "display_name": "", "notes": null, "groups": [], "disabled": false})),
        )
        .expect("valid");
        assert_eq!(again, current);
    }

    #[test]
    fn replace_keeps_only_name_and_type() {
        let replaced = replace(&apitest(), &obj(json!({}))).expect("valid");
        assert_eq!(
            view(&replaced),
            json!({"object_name": "apitest", "object_type": "object"})
        );
    }

    #[test]
    fn object_type_cannot_change_and_a_different_name_renames() {
        assert!(merge(&apitest(), &obj(json!({"object_type": "template"}))).is_err());
        assert!(merge(&apitest(), &obj(json!({"object_type": "object"}))).is_ok());
        let renamed = replace(&apitest(), &obj(json!({"object_name": "other"}))).expect("valid");
        assert_eq!(renamed.name.as_str(), "other");
    }

    #[test]
    fn a_rename_rewrites_imports_of_the_same_kind_and_scripts_of_hosts() {
        let host = create(
            Kind::Host,
            None,
            &obj(json!({"object_name": "h", "imports": ["a", "b"], "scripts": ["a"]})),
        )
        .expect("valid");
        let (old, new) = (
            ObjectName::from_stored("a".into()),
            ObjectName::from_stored("z".into()),
        );
        let after_template = rename_reference(&host, Kind::Host, &old, &new);
        assert_eq!(
            after_template.props.get("imports"),
            Some(&json!(["z", "b"]))
        );
        assert_eq!(after_template.props.get("scripts"), Some(&json!(["a"])));
        let after_script = rename_reference(&host, Kind::Script, &old, &new);
        assert_eq!(after_script.props.get("scripts"), Some(&json!(["z"])));
        assert_eq!(after_script.props.get("imports"), Some(&json!(["a", "b"])));
    }

    #[test]
    fn unknown_keys_are_refused_unless_null() {
        assert_eq!(
            merge(&apitest(), &obj(json!({"foo": 1}))),
            Err(RuleError::invalid("Trying to set invalid key \"foo\""))
        );
        assert_eq!(merge(&apitest(), &obj(json!({"foo": null}))), Ok(apitest()));
    }

    #[test]
    fn a_hosts_api_key_is_refused_pointing_to_its_endpoint_without_the_value() {
        let Err(RuleError::Invalid(message)) =
            merge(&apitest(), &obj(json!({"api_key": "s3cret-key"})))
        else {
            panic!("api_key must be refused");
        };
        assert!(message.contains("/director/host/api-key"), "{message}");
        assert!(!message.contains("s3cret-key"), "{message}");
        assert_eq!(
            merge(&apitest(), &obj(json!({"api_key": null}))),
            Ok(apitest())
        );
    }

    #[test]
    fn merge_patch_applies_to_the_with_null_view() {
        let patched = merge_patch(
            &apitest(),
            &json!({"vars": {"location": null, "x": 1}, "address": null}),
        )
        .expect("valid");
        assert_eq!(
            view(&patched),
            json!({"object_name": "apitest", "object_type": "object", "vars": {"x": 1}})
        );
        assert!(merge_patch(&apitest(), &json!({"object_type": "template"})).is_err());
    }

    #[test]
    fn json_patch_adds_to_empty_containers_and_a_failed_test_is_a_conflict() {
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "add", "path": "/groups/-", "value": "linux"},
            {"op": "replace", "path": "/vars/location", "value": "Paris"}
        ]))
        .expect("patch");
        let patched = json_patch(&apitest(), &patch).expect("valid");
        assert_eq!(patched.props.get("groups"), Some(&json!(["linux"])));
        assert_eq!(
            patched.props.get("vars"),
            Some(&json!({"location": "Paris"}))
        );

        let failing: json_patch::Patch =
            serde_json::from_value(json!([{"op": "test", "path": "/address", "value": "x"}]))
                .expect("patch");
        assert!(matches!(
            json_patch(&apitest(), &failing),
            Err(RuleError::Conflict(_))
        ));
        let bad_path: json_patch::Patch =
            serde_json::from_value(json!([{"op": "remove", "path": "/nope/x"}])).expect("patch");
        assert!(matches!(
            json_patch(&apitest(), &bad_path),
            Err(RuleError::Invalid(_))
        ));
    }
}
