//! Normalising property values, so that equal meanings compare equal: `"y"` is
//! `true`, `"5"` is `5`, `""` and empty lists are unset (but for a script's
//! `arguments`, whose `[]` means "no arguments"), lists drop duplicates.

use serde_json::{Map, Number, Value};

use super::RuleError;
use super::kind::PropType;

/// Normalises one top-level property value. `Ok(None)` means "unset".
pub fn normalise(key: &str, ty: PropType, value: &Value) -> Result<Option<Value>, RuleError> {
    if value.is_null() {
        return Ok(None);
    }
    if value.as_str() == Some("") && !matches!(ty, PropType::Vars) {
        return Ok(None);
    }
    match ty {
        PropType::Text => match value {
            Value::String(s) => Ok(Some(Value::String(s.clone()))),
            _ => Err(wrong_type(key, "a string")),
        },
        PropType::Bool => parse_bool(value)
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| wrong_type(key, "a boolean (true, false, \"y\" or \"n\")")),
        PropType::Disabled => match parse_bool(value) {
            Some(true) => Ok(Some(Value::Bool(true))),
            Some(false) => Ok(None),
            None => Err(wrong_type(key, "a boolean (true, false, \"y\" or \"n\")")),
        },
        PropType::Int { min, max } => {
            let n = parse_int(value).ok_or_else(|| wrong_type(key, "an integer"))?;
            if n < min || n > max {
                return Err(RuleError::invalid(format!(
                    "Invalid value for \"{key}\": {n} is not between {min} and {max}"
                )));
            }
            Ok(Some(Value::from(n)))
        }
        PropType::Interval => {
            let n = parse_int(value)
                .or_else(|| value.as_str().and_then(parse_interval))
                .ok_or_else(|| wrong_type(key, "seconds, or an interval such as \"5m\""))?;
            if n < 0 {
                return Err(RuleError::invalid(format!(
                    "Invalid value for \"{key}\": {n} is negative"
                )));
            }
            Ok(Some(Value::from(n)))
        }
        PropType::Number => parse_number(value)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| wrong_type(key, "a number")),
        PropType::Names => normalise_list(key, value, true),
        PropType::Arguments => normalise_list(key, value, false),
        PropType::Vars => normalise_vars(key, value),
        PropType::Json => Ok(match value {
            Value::Array(items) if items.is_empty() => None,
            Value::Object(map) if map.is_empty() => None,
            other => Some(other.clone()),
        }),
        PropType::Command => match value {
            Value::String(s) => check_command(s).map(|()| Some(Value::String(s.clone()))),
            _ => Err(wrong_type(key, "an absolute path")),
        },
        PropType::Choice(words) => match value.as_str() {
            Some(word) if words.contains(&word) => Ok(Some(Value::String(word.to_owned()))),
            _ => Err(RuleError::invalid(format!(
                "Invalid value for \"{key}\": use one of {}",
                words
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// Checks a script command: an absolute path without whitespace, control
/// characters, Unicode format characters, `#` or `..` segments.
pub fn check_command(command: &str) -> Result<(), RuleError> {
    let fail = |why: &str| {
        Err(RuleError::invalid(format!(
            "Invalid command \"{}\": {why}",
            command.escape_debug()
        )))
    };
    if !command.starts_with('/') {
        return fail("it must be an absolute path");
    }
    if command.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("it must not contain whitespace or control characters");
    }
    // ctrl-exec may read `#` as the start of a comment, and a format
    // character (a zero-width space, a bidirectional override) makes the
    // path display as another one: neither belongs in an allowlisted path.
    if command.contains('#') {
        return fail("it must not contain '#'");
    }
    if command.chars().any(super::text::is_format) {
        return fail("it must not contain invisible format characters (zero-width, bidirectional)");
    }
    if command.split('/').any(|segment| segment == "..") {
        return fail("it must not contain '..' segments");
    }
    if command.ends_with('/') {
        return fail("it must name a file, not a directory");
    }
    Ok(())
}

fn wrong_type(key: &str, expected: &str) -> RuleError {
    RuleError::invalid(format!("Invalid value for \"{key}\": expected {expected}"))
}

/// `true`, `false`, `"y"`, `"n"`.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "y" => Some(true),
        Value::String(s) if s == "n" => Some(false),
        _ => None,
    }
}

fn parse_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => None,
    }
}

fn parse_number(value: &Value) -> Option<Number> {
    let f = match value {
        Value::Number(n) => {
            if n.is_i64() || n.is_u64() {
                return Some(n.clone());
            }
            n.as_f64()?
        }
        Value::String(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Some(Number::from(f as i64));
    }
    Number::from_f64(f)
}

/// Director's interval notation: a number followed by `s`, `m`, `h` or `d`.
/// An interval as Director's `parseInterval` reads it: parts separated by
/// whitespace, each digits with an optional unit `s`, `m`, `h` or `d`,
/// added up: `"1m 30s"` is 90, `"1h 5"` is 3605. A part with a sign, a
/// fraction or another unit (`"1m30s"`, `"-5m"`, `"1.5m"`), and a string of
/// whitespace only, are refused.
fn parse_interval(s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut parts = 0;
    for part in s
        .split([' ', '\t', '\n', '\r', '\x0b', '\x0c'])
        .filter(|p| !p.is_empty())
    {
        let (digits, factor) = match part.as_bytes().last()? {
            b's' => (&part[..part.len() - 1], 1),
            b'm' => (&part[..part.len() - 1], 60),
            b'h' => (&part[..part.len() - 1], 3600),
            b'd' => (&part[..part.len() - 1], 86400),
            _ => (part, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        total = total.checked_add(digits.parse::<i64>().ok()?.checked_mul(factor)?)?;
        parts += 1;
    }
    (parts > 0).then_some(total)
}

/// A list of strings keeps its order and drops duplicates; a single string is
/// a list of one. Name lists also ignore empty strings, and an empty name
/// list is unset. An empty argument list is kept: `arguments: []` allows no
/// arguments at all, where unset allows any, so the two must never merge.
fn normalise_list(key: &str, value: &Value, names: bool) -> Result<Option<Value>, RuleError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::String(_) => vec![value],
        _ => return Err(wrong_type(key, "a list of strings")),
    };
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(wrong_type(key, "a list of strings"));
        };
        if names && s.is_empty() {
            continue;
        }
        if !out.iter().any(|seen| seen.as_str() == Some(s)) {
            out.push(item.clone());
        }
    }
    Ok((!names || !out.is_empty()).then_some(Value::Array(out)))
}

/// Variables are an object; a variable set to `null` is removed. An empty
/// object (or the empty list PHP clients send for one) is unset.
fn normalise_vars(key: &str, value: &Value) -> Result<Option<Value>, RuleError> {
    match value {
        Value::Object(map) => {
            let vars: Map<String, Value> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok((!vars.is_empty()).then_some(Value::Object(vars)))
        }
        Value::Array(items) if items.is_empty() => Ok(None),
        _ => Err(wrong_type(key, "an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn norm(ty: PropType, value: Value) -> Result<Option<Value>, RuleError> {
        normalise("p", ty, &value)
    }

    #[test]
    fn booleans_accept_y_and_n() {
        assert_eq!(norm(PropType::Bool, json!("y")), Ok(Some(json!(true))));
        assert_eq!(norm(PropType::Bool, json!("n")), Ok(Some(json!(false))));
        assert_eq!(norm(PropType::Bool, json!(false)), Ok(Some(json!(false))));
        assert!(norm(PropType::Bool, json!("yes")).is_err());
        assert!(norm(PropType::Bool, json!(1)).is_err());
    }

    #[test]
    fn a_choice_takes_one_of_its_words_exactly() {
        let delivery = PropType::Choice(&["push", "pull"]);
        assert_eq!(norm(delivery, json!("pull")), Ok(Some(json!("pull"))));
        assert_eq!(norm(delivery, json!("")), Ok(None));
        assert_eq!(norm(delivery, json!(null)), Ok(None));
        for wrong in [
            json!("PULL"),
            json!(" pull"),
            json!("poll"),
            json!(true),
            json!(["pull"]),
        ] {
            let error = norm(delivery, wrong.clone()).expect_err("refused");
            assert!(
                error.to_string().contains("\"push\", \"pull\""),
                "{wrong}: {error}"
            );
        }
    }

    #[test]
    fn disabled_false_is_the_same_as_unset() {
        assert_eq!(norm(PropType::Disabled, json!(false)), Ok(None));
        assert_eq!(norm(PropType::Disabled, json!("n")), Ok(None));
        assert_eq!(norm(PropType::Disabled, json!("y")), Ok(Some(json!(true))));
    }

    #[test]
    fn integers_accept_numeric_strings_and_check_bounds() {
        let port = PropType::Int { min: 1, max: 65535 };
        assert_eq!(norm(port, json!("5665")), Ok(Some(json!(5665))));
        assert_eq!(norm(port, json!(5665.0)), Ok(Some(json!(5665))));
        assert!(norm(port, json!(0)).is_err());
        assert!(norm(port, json!(70000)).is_err());
        assert!(norm(port, json!("12a")).is_err());
        assert!(norm(port, json!(1.5)).is_err());
        assert!(norm(port, json!(true)).is_err());
    }

    #[test]
    fn intervals_accept_director_suffixes() {
        assert_eq!(norm(PropType::Interval, json!("5m")), Ok(Some(json!(300))));
        assert_eq!(norm(PropType::Interval, json!("90")), Ok(Some(json!(90))));
        assert_eq!(norm(PropType::Interval, json!("2h")), Ok(Some(json!(7200))));
        assert!(norm(PropType::Interval, json!("5x")).is_err());
        assert!(norm(PropType::Interval, json!(-1)).is_err());
    }

    #[test]
    fn intervals_add_up_their_parts_as_directors_parse_interval_does() {
        for (text, seconds) in [
            ("1m 30s", 90),
            ("1h 5", 3605),
            (" 2d\t1h ", 176_400),
            ("0s", 0),
            ("15", 15),
        ] {
            assert_eq!(
                norm(PropType::Interval, json!(text)),
                Ok(Some(json!(seconds))),
                "{text}"
            );
        }
        for bad in ["1m30s", "-5m", "+5m", "1.5m", "   ", "m", "5 x", "1M"] {
            assert!(norm(PropType::Interval, json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_properties_are_kept_as_sent_and_empty_is_unset() {
        let fields = json!([{"datafield_id": 1, "is_required": "n", "var_filter": null}]);
        assert_eq!(norm(PropType::Json, fields.clone()), Ok(Some(fields)));
        assert_eq!(norm(PropType::Json, json!([])), Ok(None));
        assert_eq!(norm(PropType::Json, json!({})), Ok(None));
    }

    #[test]
    fn numbers_are_kept_in_one_form() {
        assert_eq!(norm(PropType::Number, json!("25")), Ok(Some(json!(25))));
        assert_eq!(norm(PropType::Number, json!(25.0)), Ok(Some(json!(25))));
        assert_eq!(norm(PropType::Number, json!("2.5")), Ok(Some(json!(2.5))));
        assert!(norm(PropType::Number, json!("NaN")).is_err());
    }

    #[test]
    fn empty_strings_and_nulls_unset_scalars() {
        assert_eq!(norm(PropType::Text, json!("")), Ok(None));
        assert_eq!(norm(PropType::Text, json!(null)), Ok(None));
        assert_eq!(norm(PropType::Bool, json!("")), Ok(None));
        assert!(norm(PropType::Text, json!(5)).is_err());
    }

    #[test]
    fn lists_keep_order_drop_duplicates_and_empty_means_unset() {
        assert_eq!(
            norm(PropType::Names, json!(["b", "a", "b", "", "c"])),
            Ok(Some(json!(["b", "a", "c"])))
        );
        assert_eq!(norm(PropType::Names, json!([])), Ok(None));
        assert_eq!(norm(PropType::Names, json!([""])), Ok(None));
        assert_eq!(norm(PropType::Names, json!("t")), Ok(Some(json!(["t"]))));
        assert_eq!(
            norm(PropType::Arguments, json!(["-x", "", "-x"])),
            Ok(Some(json!(["-x", ""])))
        );
        assert_eq!(norm(PropType::Arguments, json!(null)), Ok(None));
        assert_eq!(norm(PropType::Arguments, json!("")), Ok(None));
        assert!(norm(PropType::Names, json!([1])).is_err());
        assert!(norm(PropType::Names, json!({"a": 1})).is_err());
    }

    #[test]
    fn an_empty_argument_list_means_no_arguments_and_is_kept() {
        assert_eq!(norm(PropType::Arguments, json!([])), Ok(Some(json!([]))));
        assert_ne!(
            norm(PropType::Arguments, json!([])),
            norm(PropType::Arguments, json!(null))
        );
        assert_eq!(
            norm(PropType::Arguments, json!("-v")),
            Ok(Some(json!(["-v"])))
        );
    }

    #[test]
    fn vars_keep_values_drop_nulls_and_empty_means_unset() {
        assert_eq!(
            norm(PropType::Vars, json!({"a": "", "b": null, "c": [1]})),
            Ok(Some(json!({"a": "", "c": [1]})))
        );
        assert_eq!(norm(PropType::Vars, json!({})), Ok(None));
        assert_eq!(norm(PropType::Vars, json!([])), Ok(None));
        assert!(norm(PropType::Vars, json!("x")).is_err());
    }

    #[test]
    fn commands_must_be_clean_absolute_paths() {
        assert!(check_command("/usr/lib/nagios/plugins/check_disk").is_ok());
        for bad in [
            "bin/x",
            "/usr/bin/../x",
            "/usr/bin/a b",
            "/usr/bin/a\tb",
            "/usr/bin/a\u{1}",
            "/..",
            "/usr/bin/",
            "/usr/bin/check#x",
            "/usr/bin/\u{202e}hs",
            "/usr/bin/a\u{200b}b",
            "/usr/bin/a\u{2066}b",
            "/usr/bin/\u{feff}a",
            "/usr/bin/a\u{ad}b",
            "/usr/bin/a\u{e0041}",
        ] {
            assert!(check_command(bad).is_err(), "{bad:?}");
        }
        assert!(check_command("/usr/bin/a..b").is_ok());
        // Other non-ASCII letters are not format characters.
        assert!(check_command("/opt/réseau/check").is_ok());
    }
}
