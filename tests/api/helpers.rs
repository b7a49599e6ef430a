//! `spawn_app()`: the real router over a fresh database (a SQLite file, or a
//! new PostgreSQL database when `STEWARD_TEST_DATABASE_URL` is set), driven
//! without a socket through `tower::ServiceExt::oneshot`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::Value;
use steward::config::Config;
use steward::store::Store;
use steward::{AppState, app};
use tower::ServiceExt;

/// The password of the `admin` user every test app starts with.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A Basic `Authorization` value.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running application and what it needs to be cleaned up.
pub struct TestApp {
    pub router: Router,
    pub store: Arc<Store>,
    pub auth: Arc<steward::auth::Authenticator>,
    ticket_salt: String,
    url: String,
    pg_database: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// One header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` message of an error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or("<no error field>")
            .to_owned()
    }
}

/// The PostgreSQL URL to test against, if any. Under CI it must be set, so
/// that the PostgreSQL half of the suite can never be skipped silently.
/// Without it the PostgreSQL tests are built as ignored (see `build.rs`):
/// a run reports them as skipped, never as passed.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("STEWARD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but STEWARD_TEST_DATABASE_URL is not set: PostgreSQL tests would be skipped"
        );
    }
    url
}

/// Replaces the database name (the path) of a PostgreSQL URL.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let root = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |p| p + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{root}/{database}?{q}"),
        None => format!("{root}/{database}"),
    }
}

/// Starts the application on a fresh database of the given backend.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the application with a configuration adjusted by `adjust`.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    // Server-side errors (logged, never sent) show in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pg_database) = match backend {
        Backend::Sqlite => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("steward.sqlite").display()
            ),
            None,
        ),
        Backend::Postgres => {
            let admin = postgres_url()
                .expect("STEWARD_TEST_DATABASE_URL is not set: a PostgreSQL test cannot run");
            let name = format!("steward_t_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            conn.execute_raw(Statement::from_string(
                conn.get_database_backend(),
                format!("CREATE DATABASE {name}"),
            ))
            .await
            .expect("create test database");
            conn.close().await.ok();
            (with_database(&admin, &name), Some((admin, name)))
        }
    };
    let store = Arc::new(Store::open(&url).await.expect("open store"));
    let mut config = Config::for_database(&url, dir.path());
    adjust(&mut config);
    let config = Arc::new(config);
    steward::service::users::bootstrap_admin(&store, Some(ADMIN_PASSWORD.into()), dir.path())
        .await
        .expect("create admin");
    let state = AppState::new(store.clone(), config).await.expect("state");
    let auth = state.auth.clone();
    let ticket_salt = state.ticket_salt.to_string();
    let router = app(state);
    TestApp {
        router,
        store,
        auth,
        ticket_salt,
        url,
        pg_database,
        _dir: dir,
    }
}

impl TestApp {
    /// A second application over the same database, as another server
    /// process or replica would be (its own store, caches and users).
    pub async fn replica(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&self.url).await.expect("open store"));
        let config = Arc::new(Config::for_database(&self.url, dir.path()));
        let state = AppState::new(store.clone(), config).await.expect("state");
        TestApp {
            auth: state.auth.clone(),
            ticket_salt: state.ticket_salt.to_string(),
            router: app(state),
            store,
            url: self.url.clone(),
            pg_database: None,
            _dir: dir,
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
        {
            builder = builder.header("accept", "application/json");
        }
        // Requests run as admin unless they carry their own Authorization
        // (an empty one means none at all).
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            builder = builder.header("authorization", basic("admin", ADMIN_PASSWORD));
        }
        for (name, value) in headers {
            if !value.is_empty() {
                builder = builder.header(*name, *value);
            }
        }
        let request = builder
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        TestResponse {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.request("GET", uri, &[], None).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> TestResponse {
        self.request("POST", uri, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn put(&self, uri: &str, body: &Value) -> TestResponse {
        self.request("PUT", uri, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn patch(&self, uri: &str, content_type: &str, body: &Value) -> TestResponse {
        self.request(
            "PATCH",
            uri,
            &[("content-type", content_type)],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    pub async fn delete(&self, uri: &str) -> TestResponse {
        self.request("DELETE", uri, &[], None).await
    }

    /// Creates an object and checks it was created.
    pub async fn create(&self, kind: &str, body: Value) -> Value {
        let response = self.post(&format!("/director/{kind}"), &body).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "creating {body}: {}",
            response.text
        );
        response.json()
    }

    /// Creates a user through the API and answers its Authorization value.
    pub async fn user(&self, name: &str, role: &str, extra: Value) -> String {
        let password = format!("{name}-password");
        let mut body = serde_json::json!({"object_name": name, "password": password, "role": role});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let r = self.post("/director/user", &body).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "creating user {name}: {}",
            r.text
        );
        basic(name, &password)
    }

    /// A new self-service key of the host template `template` (replacing
    /// any it had).
    pub async fn template_key(&self, template: &str) -> String {
        let r = self
            .post(
                &format!("/director/host/api-key?name={template}"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "a key for {template}: {}", r.text);
        r.json()["api_key"]
            .as_str()
            .expect("the new key is in the answer")
            .to_owned()
    }

    /// A request as the user with this Authorization value.
    pub async fn as_user(
        &self,
        auth: &str,
        method: &str,
        uri: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let body = body.map(|b| b.to_string().into_bytes());
        self.request(method, uri, &[("authorization", auth)], body)
            .await
    }

    /// The PostgreSQL database name, when the test runs there.
    pub fn pg_database(&self) -> Option<&str> {
        self.pg_database.as_ref().map(|(_, name)| name.as_str())
    }

    /// Every byte of the SQLite database, its WAL included.
    pub fn database_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for file in ["steward.sqlite", "steward.sqlite-wal"] {
            bytes.extend(std::fs::read(self._dir.path().join(file)).unwrap_or_default());
        }
        bytes
    }

    /// The ticket salt the app uses.
    pub fn ticket_salt(&self) -> String {
        self.ticket_salt.clone()
    }

    /// The rows `sql` selects, each as its columns' values in text, on
    /// either database (a row's own `Debug` shows none of its values).
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        let db = self.store.db();
        let found = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        found
            .iter()
            .map(|row| {
                let values: Vec<String> = (0..row.column_names().len())
                    .map(|i| {
                        if let Ok(v) = row.try_get_by_index::<Option<String>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<i64>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<i32>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<bool>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<f64>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<Value>>(i) {
                            format!("{v:?}")
                        } else if let Ok(v) = row.try_get_by_index::<Option<Vec<u8>>>(i) {
                            format!("{v:?}")
                        } else {
                            panic!("{sql}: column {i} has a type the snapshot cannot read")
                        }
                    })
                    .collect();
                values.join(" | ")
            })
            .collect()
    }

    /// Every stored row and reference, to prove that a refused request changed nothing.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut rows = self
            .rows("SELECT id, kind, object_name, object_type, properties, checksum, updated_at FROM objects ORDER BY id")
            .await;
        rows.extend(
            self.rows("SELECT from_id, relation, to_id FROM object_refs ORDER BY from_id, relation, to_id")
                .await,
        );
        assert!(
            rows.iter().all(|r| !r.contains("cannot be inspected")),
            "the snapshot shows values"
        );
        rows
    }

    /// Drops the PostgreSQL test database.
    pub async fn cleanup(self) {
        let TestApp {
            store,
            router,
            pg_database,
            _dir,
            ..
        } = self;
        drop(router);
        if let Ok(store) = Arc::try_unwrap(store) {
            drop(store);
        }
        if let Some((admin, name)) = pg_database
            && let Ok(conn) = Database::connect(&admin).await
        {
            let _ = conn
                .execute_raw(Statement::from_string(
                    conn.get_database_backend(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
                .await;
        }
    }
}

/// Declares a test that runs on SQLite and, when configured, on PostgreSQL:
/// `db_test!(name, |app| async move { ... });`. Without
/// `STEWARD_TEST_DATABASE_URL` when the tests were built, the `postgres`
/// variant is ignored (reported as skipped); run anyway (`--run-ignored`)
/// without a URL, it fails instead of passing.
#[macro_export]
macro_rules! db_test {
    ($name:ident, $body:expr) => {
        $crate::db_test!($name, |_| {}, $body);
    };
    // With the configuration adjusted by `$adjust` (a closure on `&mut Config`).
    ($name:ident, $adjust:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app =
                    $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, $adjust)
                        .await;
                let run = $body;
                run(&app).await;
                app.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(steward_postgres_tests),
                ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
            )]
            async fn postgres() {
                let app =
                    $crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, $adjust)
                        .await;
                let run = $body;
                run(&app).await;
                app.cleanup().await;
            }
        }
    };
}

/// Under CI the PostgreSQL tests must have been built to run: skipped
/// there, half of the suite would go unchecked.
#[test]
fn under_ci_the_postgresql_tests_are_built_to_run() {
    let under_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !under_ci || cfg!(steward_postgres_tests),
        "CI=true but the tests were built without STEWARD_TEST_DATABASE_URL: the PostgreSQL tests are skipped"
    );
}
