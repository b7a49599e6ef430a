//! RFC 8785 canonical JSON (JCS): the exact bytes that checksums and
//! signatures cover, so an agent in any language can recompute them.

use serde_json::Value;

/// The canonical form of `value`: object members sorted by their names'
/// UTF-16 code units, no insignificant whitespace, strings escaped as
/// ECMAScript's `JSON.stringify` does. Integers print in decimal; the
/// documents Steward signs hold no other numbers (a non-integer prints in
/// its shortest round-trip form, which matches ECMAScript's between 1e-6
/// and 1e21).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{09}' => out.push_str("\\t"),
            '\u{0a}' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0d}' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_sorted_and_whitespace_removed() {
        let v = json!({"b": [1, {"z": null, "a": true}], "a": "x", "": 0});
        assert_eq!(
            canonical(&v),
            r#"{"":0,"a":"x","b":[1,{"a":true,"z":null}]}"#
        );
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        let v = json!("a\"b\\c\u{1}\n\u{1f}é€😀/");
        assert_eq!(canonical(&v), "\"a\\\"b\\\\c\\u0001\\n\\u001fé€😀/\"");
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+FB01 sorts after U+1F600's high surrogate (0xD83D) in UTF-16,
        // though its UTF-8 bytes sort before the emoji's.
        let v = json!({"\u{fb01}": 1, "😀": 2});
        assert_eq!(canonical(&v), "{\"😀\":2,\"\u{fb01}\":1}");
    }
}
