//! Commands of the `steward` binary that are clients of a running server:
//! they speak its HTTP API and touch neither the database nor the data
//! directory.

pub mod deploy;
pub mod revert;
