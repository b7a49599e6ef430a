//! Text that came from elsewhere (an agent's reply), made safe to store and
//! show: no control or invisible formatting characters, and a bounded length.

/// Whether `c` is one of Unicode's invisible formatting characters (general
/// category Cf: zero-width spaces and joiners, bidirectional marks,
/// embeddings, overrides and isolates, the byte order mark, soft hyphen,
/// tags), which make a text display as something else.
pub fn is_format(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
}

/// `text` with every control and formatting character replaced by a space
/// (runs of them by one), trimmed, and cut to at most `max` characters (an
/// ellipsis marks a cut).
pub fn sanitise(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut gap = false;
    for c in text.chars() {
        if c.is_control() || is_format(c) || c.is_whitespace() {
            gap = !out.is_empty();
            continue;
        }
        if count + usize::from(gap) >= max {
            out.push('…');
            return out;
        }
        if gap {
            out.push(' ');
            count += 1;
            gap = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_kept_as_it_is() {
        assert_eq!(
            sanitise("serial 7 is older than 9", 200),
            "serial 7 is older than 9"
        );
    }

    #[test]
    fn control_and_formatting_characters_become_one_space() {
        assert_eq!(sanitise("a\u{1b}[31mb\r\n\tc", 200), "a [31mb c");
        assert_eq!(sanitise("/usr/bin/\u{202E}hs", 200), "/usr/bin/ hs");
        assert_eq!(sanitise("zero\u{200B}\u{200B}width", 200), "zero width");
        assert_eq!(sanitise("\u{0}\u{7f} edges \u{FEFF}", 200), "edges");
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        let long = "x".repeat(10_000);
        let cut = sanitise(&long, 200);
        assert_eq!(cut.chars().count(), 201);
        assert!(cut.ends_with('…'));
        assert_eq!(sanitise("abc", 3), "abc");
        assert_eq!(sanitise("abcd", 3), "abc…");
    }

    #[test]
    fn formatting_characters_are_recognised_and_others_are_not() {
        for c in [
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{E0041}',
        ] {
            assert!(is_format(c), "{c:?}");
        }
        for c in ['a', 'é', '漢', ' ', '/', '-'] {
            assert!(!is_format(c), "{c:?}");
        }
    }
}
