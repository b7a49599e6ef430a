//! The node side of Steward: what the `steward-agent` binary does on a host.
//!
//! `register` enrols the node with the server and keeps what it learns in a
//! state directory ([`state`]); [`client`] speaks HTTP to the server with
//! retries; [`register`] is the flow. [`serve`] receives the signed
//! allowlists the server pushes, [`holding`] decides which to accept and
//! keeps them on disk, and [`check`] answers whether a script may run;
//! [`pull`] fetches the allowlist from the server instead, for nodes the
//! server cannot reach.

pub mod check;
pub mod client;
pub mod error;
pub mod holding;
pub mod pull;
pub mod register;
pub mod serve;
pub mod state;

pub use error::AgentError;

use steward_domain as domain;
