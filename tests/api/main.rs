//! API tests through the real router, on SQLite and (when
//! `STEWARD_TEST_DATABASE_URL` is set) on PostgreSQL.

// Tests may panic on what must not fail: that is how they report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod helpers;

mod activity;
mod auth;
mod bad_input;
mod concurrency;
mod console;
mod deploy;
mod lists;
mod metrics;
mod objects;
mod replicas;
mod revert;
mod scenario;
mod selfservice;
mod staged;
mod templates;
mod transport;
mod users;
