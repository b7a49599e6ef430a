//! Tells the tests whether PostgreSQL is configured: with
//! `STEWARD_TEST_DATABASE_URL` set at build time, the `steward_postgres_tests`
//! cfg is on and the PostgreSQL variants of the tests run; without it they
//! are built as ignored, so a test run reports them as skipped, never as
//! passed. The same for the console's browser test
//! (`tests/console_browser.rs`): `steward_chromium_tests` is on when
//! `chromium` (or `STEWARD_CHROMIUM`) is found at build time.

use std::path::PathBuf;

/// Chromium's path: `STEWARD_CHROMIUM` when set (a path that is no file
/// means none: the browser test is then built as ignored), or `chromium`
/// on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(given) = std::env::var_os("STEWARD_CHROMIUM").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(given)).filter(|path| path.is_file());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(steward_postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(steward_chromium_tests)");
    println!("cargo::rerun-if-env-changed=STEWARD_CHROMIUM");
    match chromium() {
        Some(found) => {
            // Removing it builds the test as ignored again.
            println!("cargo::rerun-if-changed={}", found.display());
            println!("cargo::rustc-cfg=steward_chromium_tests");
        }
        // Installing it later (Debian's package puts it in /usr/bin) is
        // seen through the directory; elsewhere set STEWARD_CHROMIUM.
        None if std::path::Path::new("/usr/bin").is_dir() => {
            println!("cargo::rerun-if-changed=/usr/bin");
        }
        None => {}
    }
    println!("cargo::rerun-if-env-changed=STEWARD_TEST_DATABASE_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("STEWARD_TEST_DATABASE_URL").is_ok_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=steward_postgres_tests");
    }
}
