//! Table definitions for sea-orm, one module per table. Kept apart from the
//! query code in the parent module.

pub mod object;
pub mod object_ref;
