//! Numbers in request bodies are kept exactly or refused: a JSON number is
//! held as a 64-bit integer or a double, so one that neither can hold
//! exactly (`123456789012345678901234567890`, `1.00000000000000000001`,
//! `1e-400`) would otherwise come back as another value, silently.

/// The first number in the JSON text `json` that its parsed value would
/// not show again as the same number, if any. `json` must be valid JSON
/// (it is scanned, not parsed: strings are skipped, escapes included).
pub fn first_inexact(json: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = std::str::from_utf8(&json[start..i]).unwrap_or_default();
                if !is_exact(literal) {
                    return Some(literal);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Whether the number `literal` survives as serde_json holds it: an integer
/// within `i64` or `u64`, or a double whose shortest form is the same
/// decimal number (`0.1`, `2.50`, `1e2`; not `1e-400`, which becomes 0).
fn is_exact(literal: &str) -> bool {
    let integral = !literal.contains(['.', 'e', 'E']);
    if integral {
        return literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok();
    }
    match literal.parse::<f64>() {
        Ok(v) if v.is_finite() => decimal(literal) == decimal(&format!("{v:e}")),
        _ => false,
    }
}

/// A decimal number as (negative, significant digits, exponent of the last
/// digit): `-12.50e1` is `(true, "125", 0)`. Zero is `(false, "", 0)`.
fn decimal(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let mut exponent = exponent - fraction.len() as i64;
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    exponent += (trimmed.len() - significant.len()) as i64;
    if significant.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, significant.to_owned(), exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_double_or_a_64_bit_integer_holds_pass() {
        for ok in [
            "0",
            "-0",
            "12",
            "-9223372036854775808",
            "18446744073709551615",
            "0.1",
            "2.50",
            "1e2",
            "1.5e300",
            "-0.0",
            "5e-324",
            "25.0",
            "1E+3",
            "0.30000000000000004",
        ] {
            assert!(is_exact(ok), "{ok}");
        }
    }

    #[test]
    fn numbers_that_would_change_are_found() {
        for bad in [
            "18446744073709551616",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1.00000000000000000001",
            "1e-400",
            "0.1000000000000000000000001",
        ] {
            assert!(!is_exact(bad), "{bad}");
        }
    }

    #[test]
    fn strings_are_skipped_and_the_first_inexact_number_is_named() {
        let text = br#"{"a": "123456789012345678901234567890 \" 1e-400", "b": [1, 2.5, 1e-400, 99999999999999999999]}"#;
        assert_eq!(first_inexact(text), Some("1e-400"));
        assert_eq!(first_inexact(br#"{"a": 1, "b": "9e999"}"#), None);
    }
}
