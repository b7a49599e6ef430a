//! Steward: an Icinga Director-style REST object configuration service.
//! Routes are defined in `router.rs` and implemented in `handlers/`, which
//! call the use cases in `service/`; the rules live in the `steward-domain`
//! crate (`crates/domain`, re-exported as `domain`) and every query in
//! `store/`.

pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod deploy;
/// The rules, in a crate of their own (`crates/domain`) that the agent
/// shares.
pub use steward_domain as domain;

/// The API's answers as types, in a crate of their own (`crates/api`)
/// shared by the server, its document and `steward deploy`.
pub use steward_api as api;
pub mod error;
pub mod files;
pub mod handlers;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod router;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod signing;
pub mod state;
pub mod store;

pub use router::app;
pub use state::AppState;
