//! Tells the tests whether PostgreSQL is configured: with
//! `STEWARD_TEST_DATABASE_URL` set at build time, the `steward_postgres_tests`
//! cfg is on and the PostgreSQL variants of the tests run; without it they
//! are built as ignored, so a test run reports them as skipped, never as
//! passed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(steward_postgres_tests)");
    println!("cargo::rerun-if-env-changed=STEWARD_TEST_DATABASE_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("STEWARD_TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=steward_postgres_tests");
    }
}
