//! Steward's rules, free of HTTP and of the database: what an object is, how a
//! write changes it (merge, replace, patch), how templates resolve, and how
//! lists are filtered. Every function here is plain and unit-tested.

pub mod activity;
pub mod allowlist;
pub mod apikey;
pub mod auth;
pub mod canonical;
pub mod deployment;
pub mod filter;
pub mod integrity;
pub mod kind;
pub mod name;
pub mod network;
pub mod normalise;
pub mod object;
pub mod resolve;
pub mod revert;
pub mod staging;
#[cfg(feature = "sea-orm")]
mod stored;
pub mod text;
pub mod ticket;
pub mod user;
pub mod words;
pub mod write;

pub use kind::{Kind, ObjectType};
pub use name::ObjectName;
pub use object::{Draft, Props};

/// Why a rule refused a write. Each variant maps to one HTTP status class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The request is well-formed but means something invalid (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{0}")]
    Conflict(String),
}

impl RuleError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}
