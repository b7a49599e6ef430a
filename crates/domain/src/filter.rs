//! List filters: `q`, `has_agent`, `disabled`, `imports` and `vars.KEY`.

use serde_json::Value;

use super::Draft;
use super::normalise::parse_bool;
use super::resolve::Resolved;

/// What a list request filters on. `has_agent` and `vars.KEY` match resolved
/// values, `imports` matches anywhere in the chain, `disabled` the object's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Lowercased substring of the name or the (resolved) display name.
    pub q: Option<String>,
    pub has_agent: Option<bool>,
    pub disabled: Option<bool>,
    pub imports: Option<String>,
    pub vars: Vec<(String, String)>,
}

impl Filter {
    /// Whether matching needs the resolved view.
    pub fn needs_resolution(&self) -> bool {
        self.q.is_some()
            || self.has_agent.is_some()
            || self.imports.is_some()
            || !self.vars.is_empty()
    }

    /// Whether there is any filter at all.
    pub fn is_empty(&self) -> bool {
        !self.needs_resolution() && self.disabled.is_none()
    }

    /// Whether the object matches; `resolved` must be given when
    /// [`Self::needs_resolution`] is true.
    pub fn matches(&self, object: &Draft, resolved: Option<&Resolved>) -> bool {
        if let Some(disabled) = self.disabled {
            let own = object
                .props
                .get("disabled")
                .and_then(parse_bool)
                .unwrap_or(false);
            if own != disabled {
                return false;
            }
        }
        if !self.needs_resolution() {
            return true;
        }
        let Some(resolved) = resolved else {
            return false;
        };
        if let Some(q) = &self.q {
            let display = resolved
                .props
                .get("display_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !object.name.as_str().to_lowercase().contains(q)
                && !display.to_lowercase().contains(q)
            {
                return false;
            }
        }
        if let Some(has_agent) = self.has_agent {
            let value = resolved
                .props
                .get("has_agent")
                .and_then(parse_bool)
                .unwrap_or(false);
            if value != has_agent {
                return false;
            }
        }
        if let Some(template) = &self.imports
            && !resolved.ancestors.iter().any(|a| a == template)
        {
            return false;
        }
        let vars = resolved.props.get("vars");
        self.vars.iter().all(|(key, wanted)| {
            vars.and_then(|v| v.get(key))
                .is_some_and(|value| var_matches(value, wanted))
        })
    }
}

impl Filter {
    /// Whether a host that no longer exists, known by its last name only,
    /// matches: only a filter on nothing but `q` can say.
    pub fn matches_name(&self, name: &str) -> bool {
        let only_q = self.has_agent.is_none()
            && self.disabled.is_none()
            && self.imports.is_none()
            && self.vars.is_empty();
        only_q
            && self
                .q
                .as_ref()
                .is_none_or(|q| name.to_lowercase().contains(q))
    }

    /// The filter as query parameters, in a fixed order: how a deployment
    /// records the hosts it covered.
    pub fn describe(&self) -> String {
        let flag = |b: bool| if b { "1" } else { "0" };
        let mut parts: Vec<(String, String)> = Vec::new();
        if let Some(q) = &self.q {
            parts.push(("q".into(), q.clone()));
        }
        if let Some(b) = self.has_agent {
            parts.push(("has_agent".into(), flag(b).into()));
        }
        if let Some(b) = self.disabled {
            parts.push(("disabled".into(), flag(b).into()));
        }
        if let Some(t) = &self.imports {
            parts.push(("imports".into(), t.clone()));
        }
        for (k, v) in &self.vars {
            parts.push((format!("vars.{k}"), v.clone()));
        }
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(parts)
            .finish()
    }
}

/// A variable matches a query value when it is that string, a number or
/// boolean written that way, or a list containing such an element.
fn var_matches(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Bool(b) => b.to_string() == wanted,
        Value::Array(items) => items
            .iter()
            .any(|item| !item.is_array() && var_matches(item, wanted)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::Resolver;
    use crate::{Kind, ObjectName, ObjectType, Props};
    use serde_json::json;

    #[test]
    fn a_gone_host_matches_only_a_filter_on_its_name() {
        assert!(Filter::default().matches_name("web1"));
        let q = Filter {
            q: Some("web".into()),
            ..Filter::default()
        };
        assert!(q.matches_name("Web1"));
        assert!(!q.matches_name("db1"));
        let vars = Filter {
            q: Some("web".into()),
            vars: vec![("env".into(), "prod".into())],
            ..Filter::default()
        };
        assert!(!vars.matches_name("web1"), "its vars are gone with it");
    }

    #[test]
    fn a_filter_describes_itself_as_query_parameters() {
        let filter = Filter {
            q: Some("web 1".into()),
            has_agent: Some(true),
            disabled: Some(false),
            imports: Some("linux&co".into()),
            vars: vec![("env".into(), "prod".into()), ("rack".into(), "a=b".into())],
        };
        assert_eq!(
            filter.describe(),
            "q=web+1&has_agent=1&disabled=0&imports=linux%26co&vars.env=prod&vars.rack=a%3Db"
        );
        assert_eq!(Filter::default().describe(), "");
    }

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

    fn check(filter: &Filter, host: &Draft) -> bool {
        let resolver = Resolver::new([draft(
            "linux",
            ObjectType::Template,
            json!({"has_agent": true, "vars": {"os": "Linux", "tags": ["a", "b"], "n": 3}, "display_name": "Penguin"}),
        )]);
        filter.matches(host, Some(&resolver.resolve(host)))
    }

    #[test]
    fn filters_match_resolved_values() {
        let host = draft("web-1", ObjectType::Object, json!({"imports": ["linux"]}));
        let plain = draft("db-1", ObjectType::Object, json!({"disabled": true}));
        let f = |filter: Filter| (check(&filter, &host), check(&filter, &plain));

        assert_eq!(
            f(Filter {
                has_agent: Some(true),
                ..Filter::default()
            }),
            (true, false)
        );
        assert_eq!(
            f(Filter {
                has_agent: Some(false),
                ..Filter::default()
            }),
            (false, true)
        );
        assert_eq!(
            f(Filter {
                imports: Some("linux".into()),
                ..Filter::default()
            }),
            (true, false)
        );
        assert_eq!(
            f(Filter {
                disabled: Some(true),
                ..Filter::default()
            }),
            (false, true)
        );
        assert_eq!(
            f(Filter {
                q: Some("peng".into()),
                ..Filter::default()
            }),
            (true, false)
        );
        assert_eq!(
            f(Filter {
                q: Some("db".into()),
                ..Filter::default()
            }),
            (false, true)
        );
        let vars = |k: &str, v: &str| Filter {
            vars: vec![(k.into(), v.into())],
            ..Filter::default()
        };
        assert_eq!(f(vars("os", "Linux")), (true, false));
        assert_eq!(f(vars("os", "linux")), (false, false));
        assert_eq!(f(vars("tags", "b")), (true, false));
        assert_eq!(f(vars("n", "3")), (true, false));
    }
}
