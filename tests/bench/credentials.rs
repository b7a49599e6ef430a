//! How much checking a credential costs: the first check of a password runs
//! argon2id once; a remembered one must cost well under 10 µs.
//!
//! Run: `cargo bench --bench credentials` (release build). Prints the median
//! of several batches, on SQLite (and on PostgreSQL when
//! `STEWARD_TEST_DATABASE_URL` is set).

// A benchmark stops on what must not fail.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use steward::auth::Authenticator;
use steward::service::users::bootstrap_admin;
use steward::store::Store;

const PASSWORD: &str = "benchmark-password";
const BATCHES: usize = 7;
const PER_BATCH: u32 = 20_000;

async fn measure(label: &str, url: &str, dir: &std::path::Path) {
    let store = Arc::new(Store::open(url).await.expect("open store"));
    bootstrap_admin(&store, Some(PASSWORD.into()), dir)
        .await
        .expect("admin");
    let watch = store.data_watch();
    let auth = Authenticator::new(store.db().clone(), watch)
        .await
        .expect("authenticator");

    let start = Instant::now();
    auth.authenticate("admin", PASSWORD)
        .await
        .expect("first check");
    let first = start.elapsed();
    let hashes_after_first = auth.hashes_computed();

    let mut per_check = Vec::with_capacity(BATCHES);
    for _ in 0..BATCHES {
        let start = Instant::now();
        for _ in 0..PER_BATCH {
            auth.authenticate("admin", PASSWORD)
                .await
                .expect("remembered check");
        }
        per_check.push(start.elapsed() / PER_BATCH);
    }
    per_check.sort();
    let median = per_check[BATCHES / 2];
    let hashes = auth.hashes_computed();
    println!(
        "{label:<10} first check {:>8.2} ms ({hashes_after_first} hash) | remembered check median {:>6.2} µs (min {:.2}, max {:.2}) over {} checks | hashes in total: {hashes}",
        ms(first),
        us(median),
        us(per_check[0]),
        us(per_check[BATCHES - 1]),
        BATCHES as u32 * PER_BATCH,
    );
    assert_eq!(hashes, 1, "remembered checks must not hash");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.sqlite").display()
    );
    measure("sqlite", &url, dir.path()).await;
    if let Ok(url) = std::env::var("STEWARD_TEST_DATABASE_URL") {
        // Uses the given database as it is: run it on an empty one.
        measure("postgres", &url, dir.path()).await;
    }
}
