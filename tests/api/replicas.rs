//! Replicas on one database: a read on one sees every write another
//! answered before the read was sent (read-your-writes behind a load
//! balancer), while both answer reads from memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::TestApp;

/// Follows other processes' commits for `app`, as `serve` does, until the
/// handle is aborted.
fn follow(app: &TestApp) -> tokio::task::JoinHandle<()> {
    tokio::spawn(app.store.clone().follow_changes(Duration::from_secs(3600)))
}

/// `vars.n` of host `web` on `app`, resolved (`t` comes from its template).
async fn read(app: &TestApp) -> (i64, i64) {
    let response = app.get("/director/host?name=web&resolved").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.text);
    let vars: Value = response.json()["vars"].clone();
    let number = |key: &str| {
        vars[key]
            .as_i64()
            .unwrap_or_else(|| panic!("vars.{key} in {vars}"))
    };
    (number("n"), number("t"))
}

/// Creates template `base` (`vars.t` 0) and host `web` importing it
/// (`vars.n` 0).
async fn create_web(app: &TestApp) {
    app.create(
        "host",
        json!({"object_name": "base", "object_type": "template", "vars": {"t": 0}}),
    )
    .await;
    app.create(
        "host",
        json!({"object_name": "web", "imports": ["base"], "vars": {"n": 0}}),
    )
    .await;
}

/// Waits until `app` answers a read of `web` from memory (its listener is
/// connected and the object kept).
async fn until_kept(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = app.store.reads_from_memory();
    while app.store.reads_from_memory() == before {
        read(app).await;
        assert!(
            Instant::now() < deadline,
            "no read was answered from memory in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

db_test!(
    a_read_on_one_replica_never_sees_less_than_the_other_answered,
    async |app: &TestApp| {
        let other = Arc::new(app.replica().await);
        let followers = [follow(app), follow(&other)];
        create_web(app).await;
        until_kept(&other).await;

        // Readers on the other replica keep `web` in memory meanwhile; what
        // each sees never goes back.
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (other, stop) = (Arc::clone(&other), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut seen = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        let now = read(&other).await;
                        assert!(now.0 >= seen.0 && now.1 >= seen.1, "{now:?} after {seen:?}");
                        seen = now;
                    }
                })
            })
            .collect();

        // The client: write on one replica, read on the other at once.
        let from_memory = other.store.reads_from_memory();
        for n in 1..=300 {
            let response = app
                .post("/director/host?name=web", &json!({ "vars.n": n }))
                .await;
            assert_eq!(response.status, StatusCode::OK, "{}", response.text);
            let t = if n % 10 == 0 {
                let t = n / 10;
                let response = app
                    .post("/director/host?name=base", &json!({ "vars.t": t }))
                    .await;
                assert_eq!(response.status, StatusCode::OK, "{}", response.text);
                t
            } else {
                n / 10
            };
            assert_eq!(
                read(&other).await,
                (n, t),
                "write {n} was answered before this read"
            );
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("a reader");
        }
        assert!(
            other.store.reads_from_memory() > from_memory,
            "the other replica answered from memory meanwhile"
        );

        // A deletion and a rename on one are seen at once by the other.
        assert_eq!(
            app.delete("/director/host?name=web").await.status,
            StatusCode::OK
        );
        assert_eq!(
            other.get("/director/host?name=web").await.status,
            StatusCode::NOT_FOUND
        );
        app.create(
            "host",
            json!({"object_name": "web", "imports": ["base"], "vars": {"n": 1}}),
        )
        .await;
        until_kept(&other).await;
        let response = app
            .post("/director/host?name=web", &json!({ "object_name": "www" }))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(
            other.get("/director/host?name=web").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            other.get("/director/host?name=www").await.status,
            StatusCode::OK
        );
        for follower in followers {
            follower.abort();
        }
    }
);

/// The freshness checks' connections to the database (see
/// `steward::store::fresh`).
async fn check_connections(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.db();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            [steward::store::fresh::CHECKS_APPLICATION_NAME.into()],
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(steward_postgres_tests),
    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn a_lost_check_connection_is_replaced_and_reads_stay_exact() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Postgres, |_| {}).await;
    let follower = follow(&app);
    create_web(&app).await;
    until_kept(&app).await;
    assert_eq!(check_connections(&app).await, 1, "one connection checks");

    // The database ends the checks' connection (a restart, a proxy).
    let db = app.store.db();
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        [steward::store::fresh::CHECKS_APPLICATION_NAME.into()],
    ))
    .await
    .expect("terminate");
    let deadline = Instant::now() + Duration::from_secs(10);
    while check_connections(&app).await != 0 {
        assert!(Instant::now() < deadline, "the connection was not ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Reads stay exact (the failed check sends them to the database), and
    // are answered from memory again through a new connection.
    for n in 1..=3 {
        let response = app
            .post("/director/host?name=web", &json!({ "vars.n": n }))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.text);
        assert_eq!(read(&app).await, (n, 0));
    }
    until_kept(&app).await;
    assert_eq!(check_connections(&app).await, 1, "a new connection checks");
    follower.abort();
    app.cleanup().await;
}
