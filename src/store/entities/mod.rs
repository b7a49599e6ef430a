//! Table definitions for sea-orm, one module per table. Kept apart from the
//! query code in the parent module.

pub mod activity;
pub mod agent_state;
pub mod api_key;
pub mod deployment;
pub mod deployment_host;
pub mod object;
pub mod object_ref;
pub mod retired_key;
pub mod setting;
pub mod template_revision;
pub mod user;
