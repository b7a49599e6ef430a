//! The `steward` binary as a user runs it: defaults, options, migrate, SIGTERM.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use support::{STEWARD, Server, ServerOptions, basic, free_port};

/// A plain HTTP/1.0 GET; answers the status line and the body.
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    http_get_as(port, path, None)
}

/// A GET with Basic credentials `user:password`.
fn http_get_as(port: u16, path: &str, credentials: Option<&str>) -> Option<(String, String)> {
    use base64::Engine;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = credentials
        .map(|c| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        })
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n"
    )
    .ok()?;
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
    let port = free_port("127.0.0.1");
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

    let port = free_port("127.0.0.1");
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

/// The permission bits of each of `paths` that exists.
fn modes(paths: &[std::path::PathBuf]) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    paths
        .iter()
        .filter_map(|p| {
            let mode = std::fs::metadata(p).ok()?.permissions().mode() & 0o7777;
            Some((p.file_name()?.to_string_lossy().into_owned(), mode))
        })
        .collect()
}

#[test]
fn the_data_directory_and_database_files_are_the_owners_alone_even_if_they_were_not() {
    use std::os::unix::fs::PermissionsExt;
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("steward-data");
    let files: Vec<_> = ["steward.sqlite", "steward.sqlite-wal", "steward.sqlite-shm"]
        .iter()
        .map(|f| data.join(f))
        .collect();
    let serve = || {
        let port = free_port("127.0.0.1");
        let mut child = Command::new(STEWARD)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(cwd.path())
            .env_remove("STEWARD_DATABASE_URL")
            .env_remove("STEWARD_DATA_DIR")
            .env_remove("STEWARD_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start steward");
        wait_ready(&mut child, port);
        let held = (modes(std::slice::from_ref(&data)), modes(&files));
        assert!(terminate(&mut child).success());
        held
    };
    let (dir, db) = serve();
    assert_eq!(dir, [("steward-data".to_owned(), 0o700)]);
    assert!(db.len() >= 2, "the database and its WAL files: {db:?}");
    assert!(db.iter().all(|(_, mode)| *mode == 0o600), "{db:?}");

    // An older server left them open to others.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in files.iter().filter(|f| f.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (dir, db) = serve();
    assert_eq!(dir, [("steward-data".to_owned(), 0o700)]);
    assert!(db.iter().all(|(_, mode)| *mode == 0o600), "{db:?}");
}

/// A server whose `admin` has `password` (or, without one, a random
/// password in `admin.cred`), logging at `debug`.
fn serve(password: Option<&str>) -> Server {
    Server::with(ServerOptions {
        admin_password: password.map(str::to_owned),
        ..ServerOptions::default().env("STEWARD_LOG", "debug")
    })
}

/// The status of `GET path` with Basic `user:password`.
fn status_as(server: &Server, path: &str, credentials: &str) -> u16 {
    let (user, password) = credentials.split_once(':').expect("user:password");
    server
        .request("GET", path, Some(&basic(user, password)), "")
        .0
}

#[test]
fn without_a_configured_password_admin_gets_a_random_one_in_a_private_file() {
    let server = serve(None);
    let path = server.data.join("admin.cred");
    let text = std::fs::read_to_string(&path).expect("admin.cred written");
    let cred: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cred["username"], "admin");
    let password = cred["password"].as_str().unwrap();
    assert!(password.len() >= 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(status_as(&server, "/director/hosts", &format!("admin:{password}")) == 200);
}

#[test]
fn pythons_urllib_gets_the_challenge_and_retries_with_credentials() {
    let server = serve(Some("urllib-password"));
    // urllib's HTTPBasicAuthHandler sends the first request without
    // credentials and only retries after a 401 naming a realm.
    let script = format!(
        r#"
import json, urllib.request
url = "http://127.0.0.1:{port}/director/host"
mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
mgr.add_password(None, "http://127.0.0.1:{port}/", "admin", "urllib-password")
opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(mgr))
req = urllib.request.Request(url, data=json.dumps({{"object_name": "from-urllib"}}).encode(), method="POST",
                             headers={{"Accept": "application/json"}})
with opener.open(req) as r:
    assert r.status == 201, r.status
    body = json.load(r)
    assert body["object_name"] == "from-urllib", body
with opener.open(urllib.request.Request(url + "?name=from-urllib", headers={{"Accept": "application/json"}})) as r:
    assert r.status == 200
print("ok")
"#,
        port = server.port
    );
    let output = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

#[test]
fn cli_user_changes_take_effect_on_the_running_server_at_once() {
    let server = serve(Some("first-password"));
    assert!(status_as(&server, "/director/hosts", "admin:first-password") == 200);

    let out = server.cli(
        &[
            "user",
            "add",
            "ops",
            "--role",
            "operator",
            "--restrict",
            "web-*",
        ],
        "ops-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(status_as(&server, "/director/hosts", "ops:ops-password") == 200);
    assert!(status_as(&server, "/director/users", "ops:ops-password") == 403);

    let out = server.cli(&["user", "passwd", "admin"], "second-password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status_as(&server, "/director/hosts", "admin:first-password") == 401,
        "the old password stops at once"
    );
    assert!(status_as(&server, "/director/hosts", "admin:second-password") == 200);

    let out = server.cli(&["user", "disable", "ops"], "");
    assert!(out.status.success());
    assert!(status_as(&server, "/director/hosts", "ops:ops-password") == 401);
    let out = server.cli(&["user", "enable", "ops"], "");
    assert!(out.status.success());
    assert!(status_as(&server, "/director/hosts", "ops:ops-password") == 200);

    let list = server.cli(&["user", "list"], "");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("ops") && text.contains("web-*") && !text.contains("password"),
        "{text}"
    );

    let out = server.cli(&["user", "remove", "ops"], "");
    assert!(out.status.success());
    assert!(status_as(&server, "/director/hosts", "ops:ops-password") == 401);
    let out = server.cli(&["user", "remove", "nobody"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such user"));
    let out = server.cli(&["user", "add", "x", "--role", "root"], "long-enough\n");
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn activity_verify_names_the_first_altered_entry() {
    let server = serve(Some("verify-password"));
    for name in ["a", "b", "c"] {
        let out = server.cli(
            &["user", "add", name, "--role", "reader"],
            "reader-password\n",
        );
        assert!(out.status.success());
    }
    let ok = server.cli(&["activity", "verify"], "");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("4 entries"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let url = format!("sqlite://{}", server.data.join("steward.sqlite").display());
    let db = Database::connect(&url).await.unwrap();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE activity SET author = 'mallory' WHERE id = 3",
    ))
    .await
    .unwrap();
    db.close().await.ok();
    let broken = server.cli(&["activity", "verify"], "");
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("activity entry 3 is broken"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}

/// `icinga2 pki ticket` computes the same tickets, where Icinga 2 is installed
/// (CI installs Debian's icinga2-bin and sets STEWARD_EXPECT_ICINGA2=1).
#[test]
fn tickets_match_icinga2_pki_ticket() {
    let found = Command::new("icinga2")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("STEWARD_EXPECT_ICINGA2").is_err(),
            "icinga2 was expected but is not installed"
        );
        eprintln!("icinga2 is not installed: comparison skipped");
        return;
    }
    for (cn, salt) in [
        ("web-01.example.com", "some-salt"),
        ("node_1", "s3cr3t salt with spaces"),
        ("a", "x"),
    ] {
        let out = Command::new("icinga2")
            .args(["pki", "ticket", "--cn", cn, "--salt", salt])
            .output()
            .expect("icinga2");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let icinga = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(
            steward::domain::ticket::ticket(cn, salt),
            icinga,
            "{cn} / {salt}"
        );
    }
}

#[test]
fn keys_and_passwords_never_reach_the_log_even_at_debug_level() {
    use base64::Engine;
    // JSON lines, so that every request's line can be read field by field.
    let server = Server::with(
        ServerOptions::admin("log-password-123")
            .env("STEWARD_LOG", "debug")
            .env("STEWARD_LOG_JSON", "true"),
    );
    let admin = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:log-password-123")
    );
    let (status, _) = server.request(
        "POST",
        "/director/host",
        Some(&admin),
        r#"{"object_name":"agents","object_type":"template","has_agent":true}"#,
    );
    assert_eq!(status, 201);
    let (status, body) = server.request(
        "POST",
        "/director/host/api-key?name=agents",
        Some(&admin),
        "{}",
    );
    assert_eq!(status, 200);
    let key: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key = key["api_key"].as_str().unwrap().to_owned();
    // A key in the URL, as Director's clients send it, and in a header.
    let (status, host_key) = server.request(
        "POST",
        &format!("/director/self-service/register-host?name=n1&key={key}"),
        None,
        "{}",
    );
    assert_eq!(status, 200);
    let host_key: String = serde_json::from_str(&host_key).unwrap();
    server.request(
        "GET",
        "/director/self-service/agent-config",
        Some(&format!("Bearer {host_key}")),
        "",
    );
    server.request(
        "GET",
        &format!("/director/self-service/ticket?key={host_key}"),
        None,
        "",
    );
    server.request(
        "GET",
        "/director/hosts",
        Some(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:wrong-password-456")
        )),
        "",
    );
    let out = server.cli(
        &["user", "add", "u1", "--role", "reader"],
        "user-password-789\n",
    );
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(server.data.join("server.log")).unwrap();
    assert!(
        log.contains("register-host"),
        "the log has the requests: {log}"
    );
    for secret in [
        key.as_str(),
        host_key.as_str(),
        "log-password-123",
        "wrong-password-456",
        "user-password-789",
    ] {
        assert!(!log.contains(secret), "the log shows a secret");
    }
    assert!(
        !log.to_lowercase().contains("authorization: "),
        "no Authorization header is logged"
    );
    // One line per request: method, route (never the query), status,
    // duration and request id.
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    let requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "steward::request")
        .map(|l| &l["fields"])
        .collect();
    assert!(requests.len() >= 7, "{requests:?}");
    let register = requests
        .iter()
        .find(|r| r["route"] == "/director/self-service/register-host")
        .expect("the registration's line");
    assert_eq!(register["method"], "POST");
    assert_eq!(register["status"], 200);
    assert!(register["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    assert_eq!(register["request_id"].as_str().map(str::len), Some(36));
    let refused = requests
        .iter()
        .find(|r| r["route"] == "/director/hosts")
        .expect("the refused request's line");
    assert_eq!(refused["status"], 401);
}

#[test]
fn a_short_admin_password_stops_serve_before_migrating_and_names_the_variable() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");

    // Act
    let output = Command::new(STEWARD)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_CONFIG")
        .env("STEWARD_ADMIN_PASSWORD", "short")
        .output()
        .expect("run");

    // Assert
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("STEWARD_ADMIN_PASSWORD") && stderr.contains("at least 8 characters"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("steward.sqlite").exists(),
        "nothing was migrated"
    );
}
