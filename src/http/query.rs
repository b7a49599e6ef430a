//! Director's query conventions: flags, names, unknown parameters ignored.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::domain::Kind;
use crate::domain::filter::Filter;
use crate::error::ApiError;

/// The decoded query parameters of a request, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryParams(
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl QueryParams {
    /// The last value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A flag: absent is `None`; empty, `1`, `true`, `y` are true; `0`,
    /// `false`, `n` are false; anything else is a 400.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name).map(|v| parse_flag(name, v)).transpose()
    }

    /// A flag that defaults to false.
    pub fn is_set(&self, name: &str) -> Result<bool, ApiError> {
        Ok(self.flag(name)?.unwrap_or(false))
    }

    /// Checks every flag the API knows, whatever the endpoint uses: a bad
    /// value is a 400 everywhere.
    pub fn check_flags(&self) -> Result<(), ApiError> {
        for flag in KNOWN_FLAGS {
            self.flag(flag)?;
        }
        Ok(())
    }

    /// `limit` (1 to `max`) and `cursor`. A cursor alone is fine: clients
    /// follow `next` without repeating `limit`, and each list then answers
    /// what it answers without `limit` (the rest of it, or its default
    /// page size), starting after the cursor.
    pub fn paging(&self, max: u64) -> Result<(Option<u64>, Option<&str>), ApiError> {
        let limit = self
            .get("limit")
            .map(|v| match v.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "Invalid limit \"{}\": use a number from 1 to {max}",
                    v.escape_debug()
                ))),
            })
            .transpose()?;
        Ok((limit, self.get("cursor")))
    }

    /// Seconds to wait (`wait`, `0` to `max`; `0` when absent or empty, as
    /// the schema says).
    pub fn wait(&self, max: u64) -> Result<u64, ApiError> {
        match self.get("wait") {
            None | Some("") => Ok(0),
            Some(v) => v.parse::<u64>().ok().filter(|w| *w <= max).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Invalid wait \"{}\": use 0 to {max} seconds",
                    v.escape_debug()
                ))
            }),
        }
    }

    /// An integer parameter: `None` when absent, a 400 naming `hint` when
    /// present but not an integer (an empty value included).
    pub fn integer(&self, name: &str, hint: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::BadRequest(format!("Invalid {name} \"{}\": {hint}", v.escape_debug()))
                })
            })
            .transpose()
    }

    /// `?name=`, or 400 when it is missing or empty.
    pub fn required_name(&self) -> Result<&str, ApiError> {
        self.name()
            .ok_or_else(|| ApiError::BadRequest("The parameter name is required".into()))
    }

    /// `?name=`, required: an empty value counts as missing.
    pub fn name(&self) -> Option<&str> {
        self.get("name").filter(|n| !n.is_empty())
    }

    /// The list filters of `kind`: `q`, `disabled`, `imports`, `vars.KEY`,
    /// and for hosts `has_agent`.
    pub fn filter(&self, kind: Kind) -> Result<Filter, ApiError> {
        let mut filter = Filter {
            q: self
                .get("q")
                .filter(|q| !q.is_empty())
                .map(str::to_lowercase),
            disabled: self.flag("disabled")?,
            imports: self
                .get("imports")
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            vars: self
                .with_prefix("vars.")
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ..Filter::default()
        };
        if kind == Kind::Host {
            filter.has_agent = self.flag("has_agent")?;
        }
        Ok(filter)
    }

    /// Refuses a parameter meant as a `vars.KEY` filter that is not one
    /// (`var.env`, `Vars.env`, `vars.` without a key): where an ignored
    /// filter would widen what an action touches. Any other unknown
    /// parameter stays ignored, as everywhere (Director clients send
    /// `showStacktrace` and `withServices`).
    pub fn check_vars_filters(&self) -> Result<(), ApiError> {
        let mistyped = self.0.iter().find(|(k, _)| {
            k.to_ascii_lowercase().starts_with("var")
                && k.strip_prefix("vars.").is_none_or(str::is_empty)
        });
        match mistyped {
            Some((name, _)) => Err(ApiError::BadRequest(format!(
                "\"{}\" is not a host filter: a variable is filtered as vars.KEY=VALUE",
                name.escape_debug()
            ))),
            None => Ok(()),
        }
    }

    /// Parameters whose names start with `prefix`, with the prefix removed.
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .iter()
            .filter_map(move |(k, v)| k.strip_prefix(prefix).map(|rest| (rest, v.as_str())))
    }
}

/// The query flags of the API.
const KNOWN_FLAGS: [&str; 8] = [
    "resume",
    "resolved",
    "withNull",
    "count",
    "force",
    "has_agent",
    "disabled",
    "dry_run",
];

/// Parses a flag value.
pub fn parse_flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "" | "1" | "true" | "y" => Ok(true),
        "0" | "false" | "n" => Ok(false),
        other => Err(ApiError::BadRequest(format!(
            "Invalid value \"{}\" for {name}: use 1, true, y, 0, false or n",
            other.escape_debug()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_director_spellings() {
        let q = QueryParams(vec![
            ("a".into(), "".into()),
            ("b".into(), "n".into()),
            ("c".into(), "yes".into()),
        ]);
        assert_eq!(q.flag("a").ok(), Some(Some(true)));
        assert_eq!(q.flag("b").ok(), Some(Some(false)));
        assert!(q.flag("c").is_err());
        assert_eq!(q.flag("missing").ok(), Some(None));
    }

    #[test]
    fn integers_and_waits_refuse_empty_and_non_numbers() {
        let q = QueryParams(vec![
            ("after".into(), "".into()),
            ("id".into(), "12".into()),
            ("n".into(), "x".into()),
        ]);
        assert!(q.integer("after", "an id").is_err());
        assert!(q.integer("n", "an id").is_err());
        assert_eq!(q.integer("id", "an id").ok(), Some(Some(12)));
        assert_eq!(q.integer("missing", "an id").ok(), Some(None));

        assert_eq!(QueryParams::default().wait(300).ok(), Some(0));
        let wait = |v: &str| QueryParams(vec![("wait".into(), v.into())]).wait(300).ok();
        assert_eq!(wait("300"), Some(300));
        assert_eq!(wait("301"), None);
        assert_eq!(wait(""), Some(0));
        assert_eq!(wait("-1"), None);
    }
}
