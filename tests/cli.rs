//! The `steward` binary as a user runs it: defaults, options, migrate, SIGTERM.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain HTTP/1.0 GET; answers the status line and the body.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_owned(), body.to_owned()))
}

fn wait_ready(child: &mut Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((status, _)) = http_get(port, "/ready")
            && status.contains(" 200 ")
        {
            return;
        }
        if let Ok(Some(exit)) = child.try_wait() {
            panic!("steward exited early: {exit}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("steward did not become ready");
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        assert!(Instant::now() < deadline, "steward did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_without_configuration_keeps_sqlite_in_steward_data_and_stops_cleanly_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(STEWARD)
        .arg("serve")
        .current_dir(cwd.path())
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_DATA_DIR")
        .env_remove("STEWARD_CONFIG")
        .env("STEWARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start steward");
    wait_ready(&mut child, port);
    let (status, body) = http_get(port, "/health").expect("health answers");
    assert!(status.contains(" 200 "), "{status}");
    assert!(body.contains("\"ok\""), "{body}");
    assert!(cwd.path().join("steward-data/steward.sqlite").is_file());
    assert!(terminate(&mut child).success(), "exit 0 on SIGTERM");
}

#[test]
fn the_default_port_is_7440_on_loopback() {
    let output = Command::new(STEWARD)
        .args(["serve", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("127.0.0.1:7440"), "{help}");
    assert!(
        help.contains("STEWARD_DATABASE_URL") && help.contains("STEWARD_DATA_DIR"),
        "{help}"
    );
}

#[tokio::test]
async fn migrate_creates_a_durable_wal_database_and_serve_reads_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = Command::new(STEWARD)
        .args(["migrate", "--data-dir"])
        .arg(&data)
        .env_remove("STEWARD_DATABASE_URL")
        .stderr(Stdio::null())
        .status()
        .expect("migrate");
    assert!(status.success());
    let url = format!("sqlite://{}", data.join("steward.sqlite").display());
    let db = Database::connect(&url).await.expect("open the file");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .expect("pragma")
        .expect("a row");
    assert_eq!(row.try_get_by_index::<String>(0).expect("text"), "wal");
    let tables = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE name = 'objects'",
        ))
        .await
        .expect("tables");
    assert_eq!(tables.len(), 1);
    db.close().await.ok();

    let port = free_port();
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(STEWARD)
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_LISTEN")
        .env_remove("STEWARD_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start steward");
    wait_ready(&mut child, port);
    assert!(terminate(&mut child).success());
}

#[tokio::test]
async fn every_pooled_sqlite_connection_uses_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("s.sqlite").display()
    );
    let store = steward::store::Store::open(&url).await.expect("open");
    for _ in 0..3 {
        let row = store
            .db()
            .query_one_raw(Statement::from_string(
                store.db().get_database_backend(),
                "PRAGMA synchronous",
            ))
            .await
            .expect("pragma")
            .expect("row");
        assert_eq!(row.try_get_by_index::<i32>(0).expect("int"), 2, "2 is FULL");
    }
}

#[test]
fn a_bad_configuration_exits_2_with_a_message() {
    let output = Command::new(STEWARD)
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid listen address"));
}
