//! Use cases: each runs the domain rules against the store inside one
//! transaction. Handlers call these and only translate HTTP in and out.

pub mod activity;
pub mod caller;
pub mod deploy;
pub mod fleet;
pub mod lists;
pub mod objects;
pub mod revert;
pub mod selfservice;
pub mod users;
pub mod waiting;
