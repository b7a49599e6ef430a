//! Templates and inheritance: linearising ancestors and the resolved view.
//!
//! Ancestors are linearised depth-first: each parent's own ancestors come
//! before the parent, parents in import order, and a template reached twice
//! keeps only its last position. Properties apply in that order, later wins,
//! the object's own values last; `vars` merge per variable, `scripts` is the
//! union along the chain, `imports` and `disabled` are not inherited.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::kind::NOT_INHERITED;
use super::{Draft, Props};

/// Resolves objects against one kind's templates. Every template's
/// linearisation is computed once, so resolving a list costs no lookups per
/// ancestor per object.
#[derive(Debug, Default)]
pub struct Resolver {
    templates: HashMap<String, Draft>,
    linearised: HashMap<String, Vec<String>>,
    /// Each template's version checksum, computed once.
    checksums: HashMap<String, String>,
}

impl Resolver {
    /// Builds a resolver over the given templates (of one kind).
    pub fn new(templates: impl IntoIterator<Item = Draft>) -> Self {
        let templates: HashMap<String, Draft> = templates
            .into_iter()
            .map(|t| (t.name.as_str().to_owned(), t))
            .collect();
        let mut linearised = HashMap::new();
        let names: Vec<String> = templates.keys().cloned().collect();
        for name in names {
            linearise_into(&templates, &name, &mut linearised, &mut Vec::new());
        }
        let checksums = templates
            .iter()
            .map(|(name, t)| (name.clone(), t.checksum()))
            .collect();
        Self {
            templates,
            linearised,
            checksums,
        }
    }

    /// The template of that name, if any.
    pub fn template(&self, name: &str) -> Option<&Draft> {
        self.templates.get(name)
    }

    /// Every template known to this resolver.
    pub fn templates(&self) -> impl Iterator<Item = &Draft> {
        self.templates.values()
    }

    /// The linearised ancestors of an object with these imports.
    pub fn ancestors<'a>(&'a self, imports: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut chain: Vec<&str> = Vec::new();
        for parent in imports {
            if !self.templates.contains_key(parent) {
                continue;
            }
            if let Some(lin) = self.linearised.get(parent) {
                chain.extend(lin.iter().map(String::as_str));
            }
            chain.push(parent);
        }
        keep_last(chain)
    }

    /// The object's resolved properties (without `imports`).
    pub fn resolve(&self, object: &Draft) -> Resolved {
        let ancestors = self.ancestors(object.imports());
        let mut out = Map::new();
        for name in &ancestors {
            if let Some(template) = self.templates.get(*name) {
                apply(&mut out, &template.props, true);
            }
        }
        apply(&mut out, &object.props, false);
        Resolved {
            props: Props::from_stored(out),
            ancestors: ancestors.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The version of a resolved object, covering the object (its version
    /// checksum is `object_checksum`) and every ancestor: it changes when
    /// any of them does.
    pub fn checksum(&self, resolved: &Resolved, object_checksum: &str) -> String {
        let mut hasher = Sha256::new();
        for name in &resolved.ancestors {
            if let Some(checksum) = self.checksums.get(name) {
                hasher.update(checksum.as_bytes());
            }
        }
        hasher.update(object_checksum.as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// Where a resolved value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The object sets it itself.
    Own,
    /// This template sets it (the last one along the chain that does).
    Template(String),
}

/// Where each of an object's resolved values comes from: each property
/// but `vars` and `scripts` by its key, each variable by its name, each
/// script by its name (the first along the chain that lists it: the list
/// is their union). The same order and rules as [`Resolver::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    pub props: BTreeMap<String, Origin>,
    pub vars: BTreeMap<String, Origin>,
    pub scripts: BTreeMap<String, Origin>,
}

impl Resolver {
    /// Where each resolved value of `object` comes from.
    pub fn origins(&self, object: &Draft) -> Origins {
        let mut out = Origins::default();
        let ancestors = self.ancestors(object.imports());
        let sources = ancestors
            .iter()
            .filter_map(|name| {
                self.templates
                    .get(*name)
                    .map(|t| (&t.props, Origin::Template((*name).to_owned()), true))
            })
            .chain(std::iter::once((&object.props, Origin::Own, false)));
        for (props, origin, inherited) in sources {
            for (key, value) in props.iter() {
                if key == "imports" || (inherited && NOT_INHERITED.contains(&key.as_str())) {
                    continue;
                }
                match (key.as_str(), value) {
                    ("vars", Value::Object(vars)) => {
                        for name in vars.keys() {
                            out.vars.insert(name.clone(), origin.clone());
                        }
                    }
                    ("scripts", Value::Array(scripts)) => {
                        for name in scripts.iter().filter_map(Value::as_str) {
                            out.scripts
                                .entry(name.to_owned())
                                .or_insert_with(|| origin.clone());
                        }
                    }
                    _ => {
                        out.props.insert(key.clone(), origin.clone());
                    }
                }
            }
        }
        out
    }
}

/// An object's inherited view.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub props: Props,
    /// The linearised ancestor names, in application order.
    pub ancestors: Vec<String>,
}

fn linearise_into(
    templates: &HashMap<String, Draft>,
    name: &str,
    done: &mut HashMap<String, Vec<String>>,
    visiting: &mut Vec<String>,
) -> Vec<String> {
    if let Some(lin) = done.get(name) {
        return lin.clone();
    }
    // Loops are refused on write; this guard only keeps a damaged database
    // from recursing forever.
    if visiting.iter().any(|v| v == name) {
        return Vec::new();
    }
    visiting.push(name.to_owned());
    let mut chain = Vec::new();
    if let Some(template) = templates.get(name) {
        for parent in template.imports() {
            if !templates.contains_key(parent) || visiting.iter().any(|v| v == parent) {
                continue;
            }
            chain.extend(linearise_into(templates, parent, done, visiting));
            chain.push(parent.to_owned());
        }
    }
    visiting.pop();
    let lin: Vec<String> = keep_last(chain.iter().map(String::as_str).collect())
        .into_iter()
        .map(str::to_owned)
        .collect();
    done.insert(name.to_owned(), lin.clone());
    lin
}

/// Drops every name that appears again later: a template reached twice keeps
/// only its last position.
fn keep_last(chain: Vec<&str>) -> Vec<&str> {
    let mut out = Vec::with_capacity(chain.len());
    for (i, name) in chain.iter().enumerate() {
        if !chain[i + 1..].contains(name) {
            out.push(*name);
        }
    }
    out
}

fn apply(out: &mut Map<String, Value>, props: &Props, inherited: bool) {
    for (key, value) in props.iter() {
        if key == "imports" || (inherited && NOT_INHERITED.contains(&key.as_str())) {
            continue;
        }
        match (key.as_str(), out.get_mut(key), value) {
            ("vars", Some(Value::Object(vars)), Value::Object(more)) => {
                for (k, v) in more {
                    vars.insert(k.clone(), v.clone());
                }
            }
            ("scripts", Some(Value::Array(scripts)), Value::Array(more)) => {
                for script in more {
                    if !scripts.contains(script) {
                        scripts.push(script.clone());
                    }
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, ObjectName, ObjectType};
    use serde_json::json;

    fn draft(name: &str, object_type: ObjectType, props: Value) -> Draft {
        let Value::Object(map) = props else {
            panic!("props must be an object")
        };
        Draft {
            kind: Kind::Host,
            name: ObjectName::from_stored(name.into()),
            object_type,
            props: Props::from_stored(map),
        }
    }

    fn template(name: &str, props: Value) -> Draft {
        draft(name, ObjectType::Template, props)
    }

    #[test]
    fn origins_name_the_template_each_resolved_value_comes_from() {
        let resolver = Resolver::new([
            template(
                "base",
                json!({"vars": {"env": "base", "tier": 1}, "address": "127.0.0.1",
                       "scripts": ["uptime"], "disabled": true}),
            ),
            template(
                "web",
                json!({"imports": ["base"], "vars": {"env": "web"}, "scripts": ["uptime", "df"]}),
            ),
        ]);
        let host = draft(
            "h",
            ObjectType::Object,
            json!({"imports": ["web"], "vars": {"owner": "ops"}, "address": "127.0.0.2"}),
        );
        let origins = resolver.origins(&host);
        let t = |n: &str| Origin::Template(n.to_owned());
        assert_eq!(origins.vars.get("env"), Some(&t("web")));
        assert_eq!(origins.vars.get("tier"), Some(&t("base")));
        assert_eq!(origins.vars.get("owner"), Some(&Origin::Own));
        assert_eq!(origins.props.get("address"), Some(&Origin::Own));
        assert_eq!(origins.scripts.get("uptime"), Some(&t("base")));
        assert_eq!(origins.scripts.get("df"), Some(&t("web")));
        // Not inherited, so from nowhere: the resolved view has no `disabled`.
        assert_eq!(origins.props.get("disabled"), None);
        assert_eq!(origins.props.get("imports"), None);
        // Every resolved value has an origin, and only those.
        let resolved = resolver.resolve(&host);
        let mut keys: Vec<&String> = resolved.props.iter().map(|(k, _)| k).collect();
        keys.retain(|k| *k != "vars" && *k != "scripts");
        assert_eq!(keys, origins.props.keys().collect::<Vec<_>>());
        let vars = resolved
            .props
            .get("vars")
            .and_then(Value::as_object)
            .map(|v| v.len());
        assert_eq!(vars, Some(origins.vars.len()));
    }

    #[test]
    fn a_diamond_linearises_depth_first_and_keeps_the_shared_ancestor_once() {
        // base <- left, base <- right, host imports [left, right]
        let resolver = Resolver::new([
            template("base", json!({"vars": {"v": "base", "b": 1}})),
            template("left", json!({"imports": ["base"], "vars": {"v": "left"}})),
            template(
                "right",
                json!({"imports": ["base"], "vars": {"v": "right"}}),
            ),
        ]);
        let host = draft(
            "h",
            ObjectType::Object,
            json!({"imports": ["left", "right"]}),
        );
        let resolved = resolver.resolve(&host);
        assert_eq!(resolved.ancestors, ["left", "base", "right"]);
        assert_eq!(
            resolved.props.get("vars"),
            Some(&json!({"v": "right", "b": 1}))
        );
    }

    #[test]
    fn a_template_reached_twice_keeps_its_last_position() {
        // a imports c; host imports [c, a]: chain c, c, a -> c, a? c appears
        // first directly and again inside a's chain.
        let resolver = Resolver::new([
            template("a", json!({"imports": ["c"], "display_name": "from a"})),
            template("b", json!({"display_name": "from b"})),
            template("c", json!({"display_name": "from c"})),
        ]);
        let host = draft("h", ObjectType::Object, json!({"imports": ["c", "b", "a"]}));
        let resolved = resolver.resolve(&host);
        assert_eq!(resolved.ancestors, ["b", "c", "a"]);
        assert_eq!(resolved.props.get("display_name"), Some(&json!("from a")));

        let host = draft("h", ObjectType::Object, json!({"imports": ["a", "c"]}));
        assert_eq!(resolver.resolve(&host).ancestors, ["a", "c"]);
        assert_eq!(
            resolver.resolve(&host).props.get("display_name"),
            Some(&json!("from c"))
        );
    }

    #[test]
    fn own_values_win_scripts_unite_and_disabled_and_imports_are_not_inherited() {
        let resolver = Resolver::new([
            template(
                "t1",
                json!({"scripts": ["a", "b"], "disabled": true, "address": "t", "has_agent": true}),
            ),
            template("t2", json!({"imports": ["t1"], "scripts": ["c", "a"]})),
        ]);
        let host = draft(
            "h",
            ObjectType::Object,
            json!({"imports": ["t2"], "scripts": ["d", "b"], "address": "own"}),
        );
        let resolved = resolver.resolve(&host);
        assert_eq!(
            resolved.props.as_map(),
            json!({"scripts": ["a", "b", "c", "d"], "address": "own", "has_agent": true})
                .as_object()
                .expect("object")
        );
    }

    #[test]
    fn an_own_empty_argument_list_overrides_inherited_arguments() {
        let script = |name: &str, object_type, props| Draft {
            kind: Kind::Script,
            ..draft(name, object_type, props)
        };
        let resolver = Resolver::new([script(
            "t",
            ObjectType::Template,
            json!({"command": "/bin/t", "arguments": ["-v"]}),
        )]);
        let none = script(
            "none",
            ObjectType::Object,
            json!({"imports": ["t"], "arguments": []}),
        );
        assert_eq!(
            resolver.resolve(&none).props.get("arguments"),
            Some(&json!([]))
        );
        let inherits = script("inherits", ObjectType::Object, json!({"imports": ["t"]}));
        assert_eq!(
            resolver.resolve(&inherits).props.get("arguments"),
            Some(&json!(["-v"]))
        );
    }

    #[test]
    fn the_resolved_checksum_covers_the_ancestors() {
        let before = Resolver::new([template("t", json!({"address": "a"}))]);
        let after = Resolver::new([template("t", json!({"address": "b"}))]);
        let host = draft("h", ObjectType::Object, json!({"imports": ["t"]}));
        let version = |r: &Resolver, own: &str| r.checksum(&r.resolve(&host), own);
        assert_ne!(version(&before, "x"), version(&after, "x"));
        assert_ne!(version(&before, "x"), version(&before, "y"));
        assert_eq!(version(&before, "x"), version(&before, "x"));
    }

    #[test]
    fn a_loop_in_a_damaged_database_does_not_recurse_forever() {
        let resolver = Resolver::new([
            template("a", json!({"imports": ["b"]})),
            template("b", json!({"imports": ["a"]})),
        ]);
        let host = draft("h", ObjectType::Object, json!({"imports": ["a"]}));
        // Which template the guard cuts depends on the order of computation;
        // what matters is that it ends, with each template at most once.
        let ancestors = resolver.resolve(&host).ancestors;
        assert_eq!(ancestors.last().map(String::as_str), Some("a"));
        assert!(ancestors.len() <= 2);
    }
}
