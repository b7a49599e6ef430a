//! Conditional request headers: `If-Match` and `If-None-Match`, and ETags.

use axum::http::HeaderMap;
use axum::http::header::{IF_MATCH, IF_NONE_MATCH};

/// The ETag of a stored version: a quoted prefix of its checksum.
pub fn etag(checksum: &str) -> String {
    format!("\"{}\"", &checksum[..checksum.len().min(32)])
}

/// A parsed `If-Match` or `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    Any,
    Tags(Vec<String>),
}

impl TagList {
    fn parse(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<Self> {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            return None;
        }
        let mut tags = Vec::new();
        for part in values.iter().flat_map(|v| v.split(',')) {
            let part = part.trim();
            if part == "*" {
                return Some(TagList::Any);
            }
            // Weak comparison: W/"x" matches "x" (our tags are strong anyway).
            let part = part.strip_prefix("W/").unwrap_or(part);
            if !part.is_empty() {
                tags.push(part.to_owned());
            }
        }
        Some(TagList::Tags(tags))
    }

    /// Whether an existing object with this ETag matches.
    pub fn matches(&self, etag: &str) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| t == etag),
        }
    }
}

/// The preconditions a request carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<TagList>,
    pub if_none_match: Option<TagList>,
}

impl Conditions {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self {
            if_match: TagList::parse(headers, IF_MATCH),
            if_none_match: TagList::parse(headers, IF_NONE_MATCH),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tag_lists_parse_stars_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        let c = Conditions::from_headers(&headers);
        let if_match = c.if_match.unwrap_or(TagList::Tags(vec![]));
        assert!(
            if_match.matches("\"a\"") && if_match.matches("\"b\"") && !if_match.matches("\"c\"")
        );
        assert_eq!(c.if_none_match, Some(TagList::Any));
    }
}
