//! Request bodies: read within the size limit, parsed as strict JSON (no
//! duplicate keys) whatever the `Content-Type` says, errors in the envelope.

use std::fmt;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::ApiError;
use crate::state::AppState;

/// Parses JSON, refusing duplicate keys (serde_json would keep the last).
/// Nesting is bounded by serde_json's recursion limit (128). A number the
/// parsed value cannot hold exactly is refused with `422`
/// ([`super::numbers`]): it would otherwise be stored as another value.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            "Invalid JSON: the body is empty".into(),
        ));
    }
    let value = serde_json::from_slice::<Strict>(bytes)
        .map(|s| s.0)
        .map_err(|e| ApiError::BadRequest(format!("Invalid JSON: {e}")))?;
    if let Some(number) = super::numbers::first_inexact(bytes) {
        let shown: String = number.chars().take(48).collect();
        let more = if shown.len() < number.len() {
            "…"
        } else {
            ""
        };
        return Err(ApiError::Unprocessable(format!(
            "The number {shown}{more} cannot be kept exactly: integers must fit in 64 bits and \
             decimals in a double (about 15 significant digits); send it as a string"
        )));
    }
    Ok(value)
}

/// Reads a whole body, answering 413 past `limit` bytes and 408 when it
/// has not all arrived within `timeout` (a client sending it a byte at a
/// time would otherwise hold its connection and its memory for as long as
/// it likes).
pub async fn read_limited(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "The body did not arrive within {} s",
                timeout.as_secs()
            ))
        })?;
    read.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::PayloadTooLarge(format!("The body is larger than {limit} bytes"))
        } else {
            ApiError::BadRequest(format!("Could not read the body: {e}"))
        }
    })
}

fn too_large_by_header(req: &Request, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(ApiError::PayloadTooLarge(format!(
            "The body is larger than {limit} bytes"
        ))),
        _ => Ok(()),
    }
}

/// A request body that is read (bounded like any other) and ignored: a
/// Director client sends `[]` with a deploy. Left unread, it would make the
/// server close the connection with unread bytes, which resets it, and the
/// client could lose the answer.
#[derive(Debug)]
pub struct IgnoredBody;

impl FromRequest<AppState> for IgnoredBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit;
        too_large_by_header(&req, limit)?;
        read_limited(req.into_body(), limit, state.config.body_timeout).await?;
        Ok(IgnoredBody)
    }
}

/// A request body that is a JSON object.
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit;
        too_large_by_header(&req, limit)?;
        let bytes = read_limited(req.into_body(), limit, state.config.body_timeout).await?;
        match parse_strict(&bytes)? {
            Value::Object(map) => Ok(JsonObject(map)),
            _ => Err(ApiError::BadRequest(
                "Invalid JSON: the body must be a JSON object".into(),
            )),
        }
    }
}

/// A request body that is a JSON object, or empty (read as `{}`).
#[derive(Debug)]
pub struct OptionalJsonObject(pub Map<String, Value>);

impl FromRequest<AppState> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit;
        too_large_by_header(&req, limit)?;
        let bytes = read_limited(req.into_body(), limit, state.config.body_timeout).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonObject(Map::new()));
        }
        match parse_strict(&bytes)? {
            Value::Object(map) => Ok(OptionalJsonObject(map)),
            _ => Err(ApiError::BadRequest(
                "Invalid JSON: the body must be a JSON object".into(),
            )),
        }
    }
}

/// A PATCH body, dispatched on its content type.
#[derive(Debug)]
pub enum PatchBody {
    /// RFC 7396 `application/merge-patch+json`.
    Merge(Value),
    /// RFC 6902 `application/json-patch+json`.
    Json(json_patch::Patch),
}

impl FromRequest<AppState> for PatchBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let merge = match content_type.as_str() {
            "application/merge-patch+json" => true,
            "application/json-patch+json" => false,
            other => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "Unsupported PATCH content type \"{}\": use application/merge-patch+json or application/json-patch+json",
                    other.escape_debug()
                )));
            }
        };
        let limit = state.config.body_limit;
        too_large_by_header(&req, limit)?;
        let bytes = read_limited(req.into_body(), limit, state.config.body_timeout).await?;
        let value = parse_strict(&bytes)?;
        if merge {
            return Ok(PatchBody::Merge(value));
        }
        serde_json::from_value(value)
            .map(PatchBody::Json)
            .map_err(|e| ApiError::Unprocessable(format!("Invalid JSON Patch: {e}")))
    }
}

/// A JSON value built while refusing duplicate object keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key \"{}\"",
                    key.escape_debug()
                )));
            }
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strict_parsing_refuses_duplicate_keys_at_any_depth() {
        assert!(parse_strict(br#"{"a": 1, "a": 2}"#).is_err());
        assert!(parse_strict(br#"{"x": {"a": 1, "a": 2}}"#).is_err());
        assert_eq!(
            parse_strict(br#"{"a": [1, {"b": null}]}"#).ok(),
            Some(json!({"a": [1, {"b": null}]}))
        );
    }

    #[test]
    fn strict_parsing_refuses_garbage_deep_nesting_and_bad_utf8() {
        assert!(parse_strict(b"").is_err());
        assert!(parse_strict(b"{\"a\": ").is_err());
        assert!(parse_strict(b"{} x").is_err());
        assert!(parse_strict(&b"[".repeat(5000)).is_err());
        assert!(parse_strict(b"{\"a\": \"\xff\"}").is_err());
    }
}
