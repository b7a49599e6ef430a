//! An object as the rules see it: name, type and normalised properties, and
//! the views a client can ask for.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::kind::PropType;
use super::{Kind, ObjectName, ObjectType};

/// Normalised properties (everything but `object_name` and `object_type`):
/// no nulls, no empty lists (but a script's `arguments: []`, "no
/// arguments") or objects, values in one canonical form. Only
/// the write rules in [`super::write`] and the store's loader construct them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props(Map<String, Value>);

impl Props {
    /// Wraps properties read back from the database, where only normalised
    /// properties are written.
    pub fn from_stored(map: Map<String, Value>) -> Self {
        Self(map)
    }

    pub(crate) fn map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// The names in a list property (`imports`, `scripts`, `groups`).
    pub fn names(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// A whole object, as written or as it would be after a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub kind: Kind,
    pub name: ObjectName,
    pub object_type: ObjectType,
    pub props: Props,
}

impl Draft {
    /// The templates this object imports, in order.
    pub fn imports(&self) -> impl Iterator<Item = &str> {
        self.props.names("imports")
    }

    /// Hex SHA-256 of the object's compact JSON: names the stored version.
    pub fn checksum(&self) -> String {
        let mut map = self.props.as_map().clone();
        map.insert("object_name".into(), self.name.as_str().into());
        map.insert("object_type".into(), self.object_type.as_str().into());
        let bytes = serde_json::to_vec(&Value::Object(map)).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}

/// Which view of an object to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewOptions {
    /// Show every known property, unset ones as `null` (name lists as `[]`,
    /// vars as `{}`; `arguments` as `null`, since `[]` is a value there).
    pub with_null: bool,
    /// Only these top-level keys.
    pub properties: Option<Vec<String>>,
}

/// Renders an object's representation. `resolved` views omit `imports`.
pub fn render(
    kind: Kind,
    name: &ObjectName,
    object_type: ObjectType,
    props: &Props,
    options: &ViewOptions,
    resolved: bool,
) -> Value {
    render_owned(kind, name, object_type, props.clone(), options, resolved)
}

/// [`render`], taking the properties (a resolved view is built for one
/// rendering; copying it again would be waste).
pub fn render_owned(
    kind: Kind,
    name: &ObjectName,
    object_type: ObjectType,
    props: Props,
    options: &ViewOptions,
    resolved: bool,
) -> Value {
    let mut map = props.into_map();
    if resolved {
        map.remove("imports");
    }
    map.insert("object_name".into(), name.as_str().into());
    map.insert("object_type".into(), object_type.as_str().into());
    if options.with_null {
        for (key, ty) in kind.properties() {
            if resolved && *key == "imports" {
                continue;
            }
            map.entry(*key).or_insert_with(|| empty_value(*ty));
        }
    }
    if let Some(wanted) = &options.properties {
        map.retain(|key, _| wanted.iter().any(|w| w == key));
    }
    Value::Object(map)
}

/// How `withNull` shows an unset property. Unset `arguments` (any) is
/// `null`: `[]` would read, and re-post, as "no arguments".
fn empty_value(ty: PropType) -> Value {
    match ty {
        PropType::Names => Value::Array(Vec::new()),
        PropType::Vars => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(props: Value) -> Draft {
        let Value::Object(map) = props else {
            panic!("props must be an object")
        };
        Draft {
            kind: Kind::Host,
            name: ObjectName::from_stored("h1".into()),
            object_type: ObjectType::Object,
            props: Props::from_stored(map),
        }
    }

    #[test]
    fn the_default_view_shows_only_what_is_set() {
        let h = host(json!({"address": "127.10.0.1"}));
        let view = render(
            h.kind,
            &h.name,
            h.object_type,
            &h.props,
            &ViewOptions::default(),
            false,
        );
        assert_eq!(
            view,
            json!({"object_name": "h1", "object_type": "object", "address": "127.10.0.1"})
        );
    }

    #[test]
    fn with_null_shows_every_known_property() {
        let h = host(json!({"address": "127.10.0.1"}));
        let options = ViewOptions {
            with_null: true,
            properties: None,
        };
        let view = render(h.kind, &h.name, h.object_type, &h.props, &options, false);
        assert_eq!(view["display_name"], Value::Null);
        assert_eq!(view["vars"], json!({}));
        assert_eq!(view["imports"], json!([]));
        assert_eq!(view["address"], json!("127.10.0.1"));
        assert_eq!(
            view.as_object().map(|m| m.len()),
            Some(Kind::Host.properties().len() + 2)
        );
    }

    #[test]
    fn with_null_shows_unset_arguments_as_null_and_an_empty_list_as_itself() {
        let script = |props: Value| {
            let Value::Object(map) = props else {
                panic!("props must be an object")
            };
            Props::from_stored(map)
        };
        let name = ObjectName::from_stored("s".into());
        let options = ViewOptions {
            with_null: true,
            properties: None,
        };
        let show = |props: &Props, options: &ViewOptions| {
            render(
                Kind::Script,
                &name,
                ObjectType::Object,
                props,
                options,
                false,
            )
        };
        let unset = script(json!({"command": "/bin/true"}));
        assert_eq!(show(&unset, &options)["arguments"], Value::Null);
        assert_eq!(show(&unset, &options)["imports"], json!([]));
        let none = script(json!({"command": "/bin/true", "arguments": []}));
        assert_eq!(show(&none, &options)["arguments"], json!([]));
        assert_eq!(show(&none, &ViewOptions::default())["arguments"], json!([]));
        assert!(
            show(&unset, &ViewOptions::default())
                .get("arguments")
                .is_none()
        );
    }

    #[test]
    fn properties_picks_keys_and_resolved_drops_imports() {
        let h = host(json!({"address": "a", "imports": ["t"], "display_name": "d"}));
        let options = ViewOptions {
            with_null: false,
            properties: Some(vec!["address".into(), "imports".into()]),
        };
        let view = render(h.kind, &h.name, h.object_type, &h.props, &options, true);
        assert_eq!(view, json!({"address": "a"}));
    }

    #[test]
    fn the_checksum_changes_with_the_name_and_the_properties() {
        let a = host(json!({"address": "a"}));
        let mut b = a.clone();
        b.name = ObjectName::from_stored("h2".into());
        let c = host(json!({"address": "b"}));
        assert_ne!(a.checksum(), b.checksum());
        assert_ne!(a.checksum(), c.checksum());
        assert_eq!(a.checksum(), host(json!({"address": "a"})).checksum());
    }
}
