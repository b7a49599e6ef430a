//! The node side of Steward: what the `steward-agent` binary does on a host.
//!
//! `register` enrols the node with the server and keeps what it learns in a
//! state directory ([`state`]); [`client`] speaks HTTP to the server with
//! retries; [`register`] is the flow. Later commands (`serve`, `pull`,
//! `check`) build on the same state.

pub mod client;
pub mod error;
pub mod register;
pub mod state;

pub use error::AgentError;
