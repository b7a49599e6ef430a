//! Enums whose values are words (in the API, the database and metrics):
//! [`words!`] writes each word once and derives `as_str`, `ALL`, `Display`
//! and `FromStr` from that one table.

/// A word that names no value of the enum (read from the database or a
/// reply).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct Unknown {
    what: &'static str,
    value: String,
}

impl Unknown {
    /// `value` names no `what` (for example "host result").
    pub fn new(what: &'static str, value: &str) -> Self {
        Self {
            what,
            value: value.into(),
        }
    }
}

/// Implements `as_str`, `ALL`, `Display` and `FromStr` from one table of
/// variants and their words.
macro_rules! words {
    ($type:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, in the order they are shown.
            pub const ALL: &[$type] = &[$($type::$variant),+];

            /// Every value's word, in the same order.
            pub const WORDS: &[&str] = &[$($word),+];

            /// The word used in the API, the database and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$variant => $word),+
                }
            }
        }

        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $type {
            type Err = $crate::words::Unknown;

            fn from_str(value: &str) -> Result<Self, $crate::words::Unknown> {
                match value {
                    $($word => Ok($type::$variant),)+
                    _ => Err($crate::words::Unknown::new($what, value)),
                }
            }
        }
    };
}

pub(crate) use words;
