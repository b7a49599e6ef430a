//! JSON responses: pretty-printed, keys sorted, a trailing newline.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

/// Pretty-prints a value with a trailing newline. Keys come out sorted
/// because `serde_json::Map` is a `BTreeMap` (the `preserve_order` feature is
/// not enabled).
pub fn to_pretty(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"null".to_vec());
    out.push(b'\n');
    out
}

/// Pretty-prints a value for embedding `depth` levels deep in a pretty
/// document (no trailing newline): every line but the first is indented.
pub fn to_pretty_nested(value: &Value, depth: usize) -> Vec<u8> {
    let plain = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"null".to_vec());
    let indent = "  ".repeat(depth);
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 8);
    out.extend_from_slice(indent.as_bytes());
    for byte in plain {
        out.push(byte);
        // JSON strings escape their newlines, so every raw newline is between tokens.
        if byte == b'\n' {
            out.extend_from_slice(indent.as_bytes());
        }
    }
    out
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(to_pretty(value)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A typed answer as a JSON response: the same printing (through a
/// `Value`, which sorts the keys) as [`json_response`].
pub fn typed_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => json_response(status, &value),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise an answer");
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_output_matches_pretty_printing_of_the_whole_document() {
        let inner = json!({"b": [1, 2], "a": "x\ny"});
        let whole = json!({"objects": [inner.clone()]});
        let mut built = b"{\n  \"objects\": [\n".to_vec();
        built.extend(to_pretty_nested(&inner, 2));
        built.extend_from_slice(b"\n  ]\n}\n");
        assert_eq!(
            String::from_utf8(built).ok(),
            String::from_utf8(to_pretty(&whole)).ok()
        );
    }

    #[test]
    fn keys_are_sorted() {
        let text = String::from_utf8(to_pretty(&json!({"b": 1, "a": 2}))).unwrap_or_default();
        assert!(text.find("\"a\"") < text.find("\"b\""));
        assert!(text.ends_with("}\n"));
    }
}
