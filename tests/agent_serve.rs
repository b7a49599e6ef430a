//! `steward-agent serve` and `steward-agent check` as a node runs them: real
//! agent processes on loopback addresses, fed allowlists signed with a test
//! key pinned in their state, and the files they write checked byte for byte.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use steward::domain::allowlist::{ScriptSource, render};
use steward::domain::canonical::canonical;
use steward_agent::state::{self, State};
use support::{agent_binary, free_port};

const HOST_ID: i64 = 41;
const GENERATED_AT: &str = "2024-05-01T12:00:00.000Z";

/// The server key the tests sign with, pinned in every state they write.
fn server_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A state directory as `register` leaves it, pinning [`server_key`].
fn write_state(dir: &Path) {
    let public = server_key().verifying_key().to_bytes();
    state::save(
        dir,
        &State {
            server: "https://steward.example".into(),
            host: "web-01.example".into(),
            host_id: HOST_ID,
            host_key: "host-key-secret".into(),
            server_public_key: STANDARD.encode(public),
            server_fingerprint: String::new(),
            agent_port: 7446,
            registered_at: "2024-01-01T00:00:00Z".into(),
            next_server_key: None,
            serial_floor: None,
            registered_as: None,
        },
    )
    .unwrap();
}

/// One script: name, command, and `None` (any arguments) or a list.
type Script<'a> = (&'a str, &'a str, Option<&'a [&'a str]>);

/// An allowlist for `host_id` signed with [`server_key`].
fn signed(host_id: i64, serial: i64, scripts: &[Script]) -> Value {
    let names: Vec<String> = scripts.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    let sources: HashMap<String, ScriptSource> = scripts
        .iter()
        .map(|(name, command, arguments)| {
            let source = ScriptSource {
                command: Some((*command).to_owned()),
                arguments: arguments.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
                timeout: Some(30),
                disabled: false,
            };
            ((*name).to_owned(), source)
        })
        .collect();
    render(host_id, "web-01.example", &names, &sources).sign(
        serial,
        GENERATED_AT,
        &server_key(),
        None,
    )
}

/// The usual good allowlist.
fn good(serial: i64) -> Value {
    signed(
        HOST_ID,
        serial,
        &[
            ("uptime", "/usr/bin/uptime", None),
            (
                "check_disk",
                "/usr/lib/nagios/plugins/check_disk",
                Some(&["-w", "10%", "-c", "5%"]),
            ),
        ],
    )
}

/// Signs `doc` again after a change, as the server would have.
fn resign(mut doc: Value) -> Value {
    let map = doc.as_object_mut().unwrap();
    map.remove("signature");
    let signature = server_key().sign(canonical(&Value::Object(map.clone())).as_bytes());
    map.insert(
        "signature".into(),
        STANDARD.encode(signature.to_bytes()).into(),
    );
    doc
}

/// What the agent writes for a document: pretty JSON and a newline.
fn pretty(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap();
    text.push('\n');
    text
}

/// The bytes and modification time of each file (`None` when missing).
fn snapshot(paths: &[&Path]) -> Vec<Option<(Vec<u8>, SystemTime)>> {
    paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).ok()?;
            let mtime = std::fs::metadata(p).and_then(|m| m.modified()).ok()?;
            Some((bytes, mtime))
        })
        .collect()
}

fn wait_for_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `steward-agent serve`, killed when dropped.
struct Serving {
    child: Child,
    base: String,
    stderr: PathBuf,
}

impl Serving {
    /// Starts `serve --listen IP:PORT --state-dir DIR ARGS` and waits until
    /// it answers `/health`.
    async fn start(ip: &str, dir: &Path, args: &[&str]) -> Self {
        let port = free_port(ip);
        let listen = SocketAddr::new(ip.parse().unwrap(), port).to_string();
        let stderr = dir.join(format!("serve-{port}.log"));
        let mut child = Command::new(agent_binary())
            .args(["serve", "--listen", &listen, "--state-dir"])
            .arg(dir)
            .args(args)
            .env_remove("STEWARD_AGENT_STATE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let base = format!("http://{listen}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "serve exited with {status}: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            if let Ok(answer) = client.get(format!("{base}/health")).send().await {
                assert_eq!(answer.status(), 200);
                assert_eq!(
                    answer.json::<Value>().await.unwrap(),
                    json!({"status": "ok"})
                );
                break;
            }
            assert!(Instant::now() < deadline, "serve did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            base,
            stderr,
        }
    }

    async fn put(&self, body: &Value) -> (u16, Value) {
        self.put_raw(serde_json::to_vec(body).unwrap()).await
    }

    async fn put_raw(&self, body: Vec<u8>) -> (u16, Value) {
        let answer = reqwest::Client::new()
            .put(format!("{}/v1/allowlist", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap())
    }

    async fn get(&self) -> (u16, Value) {
        let answer = reqwest::get(format!("{}/v1/allowlist", self.base))
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM and answers how it exited.
    fn terminate(mut self) -> ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        wait_for_exit(&mut self.child, Duration::from_secs(10)).expect("serve did not stop")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn pushes_are_checked_in_order_written_atomically_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_state(d);
    let allowlist = d.join("allowlist.json");
    let conf = d.join("scripts.conf");
    let reloaded = d.join("reloaded");
    let reload = format!("touch {}", reloaded.display());
    let agent = Serving::start(
        "127.0.0.21",
        d,
        &[
            "--scripts-conf",
            conf.to_str().unwrap(),
            "--allowed-dir",
            "/usr",
            "--reload-command",
            &reload,
        ],
    )
    .await;

    assert_eq!(agent.get().await, (404, json!({"error": "no allowlist"})));

    // A good allowlist: written, converted, reloaded, reported.
    let first = good(1_000);
    let (status, body) = agent.put(&first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"checksum": first["checksum"], "serial": 1_000, "reload": "ok"})
    );
    assert_eq!(std::fs::read_to_string(&allowlist).unwrap(), pretty(&first));
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    let lines: Vec<&str> = conf_text.lines().collect();
    assert!(lines[0].starts_with("# "), "{conf_text}");
    assert_eq!(
        lines[1..],
        [
            "# check_disk takes only its listed arguments (steward-agent check)",
            "check_disk = /usr/lib/nagios/plugins/check_disk",
            "uptime = /usr/bin/uptime",
        ]
    );
    assert!(reloaded.exists(), "the reload command did not run");
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let (status, held) = agent.get().await;
    assert_eq!(status, 200);
    assert_eq!(
        held,
        json!({
            "checksum": first["checksum"],
            "serial": 1_000,
            "host_id": HOST_ID,
            "host": "web-01.example",
            "scripts": first["scripts"],
            "generated_at": GENERATED_AT,
        })
    );

    // The same again: a no-op, no write and no reload.
    std::fs::remove_file(&reloaded).unwrap();
    let files = [allowlist.as_path(), conf.as_path()];
    let before = snapshot(&files);
    let (status, body) = agent.put(&first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checksum"], first["checksum"]);
    assert_eq!(body["serial"], 1_000);
    assert!(!reloaded.exists(), "a no-op ran the reload command");
    assert_eq!(snapshot(&files), before);

    // Every refusal, with its status; nothing written, nothing reloaded.
    let mut tampered = good(1_001);
    tampered["scripts"][0]["command"] = json!("/usr/bin/sh");
    let mut other_key = good(1_001);
    other_key["signature"] = {
        let mut unsigned = other_key.as_object().unwrap().clone();
        unsigned.remove("signature");
        let signature =
            SigningKey::from_bytes(&[9; 32]).sign(canonical(&Value::Object(unsigned)).as_bytes());
        json!(STANDARD.encode(signature.to_bytes()))
    };
    let one = |name: &str, command: &str| signed(HOST_ID, 1_001, &[(name, command, None)]);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("tampered signature", tampered, 403, "signature"),
        ("another key", other_key, 403, "signature"),
        (
            "another host",
            signed(HOST_ID + 1, 1_001, &[("uptime", "/usr/bin/uptime", None)]),
            403,
            "host id",
        ),
        ("older serial", good(999), 409, "stale"),
        (
            "same serial, other content",
            signed(HOST_ID, 1_000, &[("uptime", "/usr/bin/uptime", None)]),
            409,
            "serial 1000",
        ),
        (
            "relative command",
            one("rel", "usr/bin/true"),
            422,
            "absolute",
        ),
        (
            "outside /usr",
            one("opt", "/opt/tool/run"),
            422,
            "allowed directories",
        ),
        ("bad name", one("a b", "/usr/bin/true"), 422, "name"),
        ("dot-dot", one("up", "/usr/../etc/passwd"), 422, ".."),
        ("whitespace", one("ws", "/usr/bin/a b"), 422, "whitespace"),
        ("a '#'", one("hash", "/usr/bin/check#x"), 422, "'#'"),
        (
            "a bidirectional override",
            one("rtl", "/usr/bin/\u{202e}hs"),
            422,
            "format characters",
        ),
        (
            "a zero-width space",
            one("zw", "/usr/bin/up\u{200b}time"),
            422,
            "format characters",
        ),
        (
            "wrong checksum",
            resign({
                let mut doc = good(1_001);
                doc["checksum"] = json!("0".repeat(64));
                doc
            }),
            422,
            "checksum",
        ),
        (
            "unknown format",
            resign({
                let mut doc = good(1_001);
                doc["format"] = json!(2);
                doc
            }),
            422,
            "format",
        ),
    ];
    for (what, doc, expected, reason) in cases {
        let (status, body) = agent.put(&doc).await;
        assert_eq!(status, expected, "{what}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{what}: {body}");
        assert_eq!(snapshot(&files), before, "{what} changed the files");
        assert!(!reloaded.exists(), "{what} ran the reload command");
    }

    // Not JSON, and too large.
    let (status, body) = agent.put_raw(b"{not json".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string());
    let (status, body) = agent.put_raw(vec![b' '; 4 * 1024 * 1024 + 1]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].is_string());
    assert_eq!(snapshot(&files), before);
    assert_eq!(agent.get().await.1["serial"], 1_000);

    // A newer allowlist replaces it.
    let second = signed(HOST_ID, 2_000, &[("df", "/usr/bin/df", None)]);
    let (status, body) = agent.put(&second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["serial"], 2_000);
    assert_eq!(
        std::fs::read_to_string(&allowlist).unwrap(),
        pretty(&second)
    );
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(
        conf_text.lines().skip(1).collect::<Vec<_>>(),
        ["df = /usr/bin/df"]
    );
    assert!(reloaded.exists());
    assert_eq!(agent.get().await.1["checksum"], second["checksum"]);

    // An empty allowlist (the host left the deploy set) is kept as such.
    let empty = signed(HOST_ID, 3_000, &[]);
    assert_eq!(agent.put(&empty).await.0, 200);
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(conf_text.lines().count(), 1, "{conf_text}");
    assert_eq!(agent.get().await.1["scripts"], json!([]));

    let log = agent.log();
    assert!(log.contains("refused"), "{log}");
    assert!(!log.contains("host-key-secret"), "{log}");
    let status = agent.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
}

#[tokio::test]
async fn a_failed_reload_is_reported_but_the_allowlist_stays_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_state(d);
    let agent = Serving::start(
        "127.0.0.22",
        d,
        &["--reload-command", "echo cannot reload >&2; exit 3"],
    )
    .await;
    let doc = good(5);
    let (status, body) = agent.put(&doc).await;
    assert_eq!(status, 200, "{body}");
    let reload = body["reload"].as_str().unwrap();
    assert!(reload.starts_with("failed: "), "{body}");
    assert!(reload.contains("cannot reload"), "{body}");
    assert_eq!(
        std::fs::read_to_string(d.join("allowlist.json")).unwrap(),
        pretty(&doc)
    );
    assert_eq!(agent.get().await.1["serial"], 5);
    assert!(
        agent.log().contains("reload command failed"),
        "{}",
        agent.log()
    );
}

#[tokio::test]
async fn the_held_allowlist_is_reloaded_at_start_and_a_tampered_one_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_state(d);
    let custom = d.join("lists/held.json");
    let custom_arg = custom.to_str().unwrap().to_owned();
    let args = ["--allowlist", custom_arg.as_str()];

    let agent = Serving::start("127.0.0.23", d, &args).await;
    let doc = good(7);
    assert_eq!(agent.put(&doc).await.0, 200);
    assert_eq!(std::fs::read_to_string(&custom).unwrap(), pretty(&doc));
    assert!(!d.join("allowlist.json").exists());
    assert!(agent.terminate().success());

    // Restarted: it holds what it wrote, so the same serial is a no-op and
    // an older one is stale.
    let agent = Serving::start("127.0.0.23", d, &args).await;
    assert_eq!(agent.get().await.1["serial"], 7);
    assert_eq!(agent.put(&doc).await.0, 200);
    assert_eq!(agent.put(&good(6)).await.0, 409);
    assert!(agent.terminate().success());

    // Tampered on disk: ignored with a warning, nothing held.
    let text = std::fs::read_to_string(&custom).unwrap();
    std::fs::write(&custom, text.replace("/usr/bin/uptime", "/usr/bin/bash")).unwrap();
    let agent = Serving::start("127.0.0.23", d, &args).await;
    assert_eq!(agent.get().await, (404, json!({"error": "no allowlist"})));
    let log = agent.log();
    assert!(log.contains("ignoring the allowlist file"), "{log}");
    // A valid push replaces it.
    assert_eq!(agent.put(&good(8)).await.0, 200);
    assert_eq!(agent.get().await.1["serial"], 8);
}

#[test]
fn serve_without_state_exits_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(agent_binary())
        .args(["serve", "--listen", "127.0.0.24:1", "--state-dir"])
        .arg(dir.path())
        .env_remove("STEWARD_AGENT_STATE_DIR")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no state in"), "{stderr}");
    assert!(stderr.contains("register"), "{stderr}");

    // A relative --allowed-dir is a usage error too.
    write_state(dir.path());
    let output = Command::new(agent_binary())
        .args(["serve", "--listen", "127.0.0.24:1", "--allowed-dir", "usr"])
        .arg("--state-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

/// `steward-agent check --state-dir DIR ARGS`: exit code and stdout.
fn check(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(agent_binary())
        .arg("check")
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .env_remove("STEWARD_AGENT_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_allows_listed_scripts_with_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_state(d);
    std::fs::write(d.join("allowlist.json"), pretty(&good(3))).unwrap();

    let (code, stdout, stderr) = check(d, &["uptime"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "/usr/bin/uptime\n"),
        "{stderr}"
    );
    // No restriction: any arguments, even ones that look like options.
    let (code, stdout, _) = check(d, &["uptime", "-p", "--since"]);
    assert_eq!((code, stdout.as_str()), (0, "/usr/bin/uptime -p --since\n"));
    // Restricted: every argument must be listed.
    let (code, stdout, _) = check(d, &["check_disk", "-w", "10%", "-c", "5%"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "/usr/lib/nagios/plugins/check_disk -w 10% -c 5%\n")
    );
    let (code, stdout, _) = check(d, &["check_disk"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "/usr/lib/nagios/plugins/check_disk\n")
    );
    let (code, stdout, stderr) = check(d, &["check_disk", "-w", "50%"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("not allowed"), "{stderr}");
    // Everything after NAME is an argument, never an option: a caller's
    // arguments cannot choose another state or allowlist.
    let (code, _, _) = check(d, &["check_disk", "--state-dir", "/tmp"]);
    assert_eq!(code, 1, "options after NAME are arguments");
    let (code, stdout, _) = check(d, &["uptime", "--allowlist", "/tmp/x.json"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "/usr/bin/uptime --allowlist /tmp/x.json\n")
    );
    // Not listed.
    let (code, stdout, stderr) = check(d, &["rm"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("not in the allowlist"), "{stderr}");

    // Another file named with --allowlist.
    let other = d.join("other.json");
    let list = signed(HOST_ID, 4, &[("df", "/usr/bin/df", None)]);
    std::fs::write(&other, pretty(&list)).unwrap();
    let (code, stdout, _) = check(d, &["--allowlist", other.to_str().unwrap(), "df"]);
    assert_eq!((code, stdout.as_str()), (0, "/usr/bin/df\n"));
    let (code, _, _) = check(d, &["--allowlist", other.to_str().unwrap(), "uptime"]);
    assert_eq!(code, 1);

    // An empty list: the script runs without arguments, and with none else.
    let bare = d.join("bare.json");
    let list = signed(HOST_ID, 5, &[("uptime", "/usr/bin/uptime", Some(&[]))]);
    assert_eq!(list["scripts"][0]["arguments"], json!([]));
    std::fs::write(&bare, pretty(&list)).unwrap();
    let bare = bare.to_str().unwrap();
    let (code, stdout, _) = check(d, &["--allowlist", bare, "uptime"]);
    assert_eq!((code, stdout.as_str()), (0, "/usr/bin/uptime\n"));
    let (code, stdout, stderr) = check(d, &["--allowlist", bare, "uptime", "-p"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.contains("takes no arguments"), "{stderr}");
    let (code, _, _) = check(d, &["--allowlist", bare, "uptime", ""]);
    assert_eq!(code, 1, "not even an empty argument");
}

#[test]
fn check_exits_2_without_a_valid_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // No state.
    let (code, stdout, stderr) = check(d, &["uptime"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(stderr.contains("no state"), "{stderr}");

    // State, no allowlist.
    write_state(d);
    let (code, _, stderr) = check(d, &["uptime"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no allowlist"), "{stderr}");

    // Tampered after signing.
    let path = d.join("allowlist.json");
    let text = pretty(&good(3)).replace("/usr/bin/uptime", "/usr/bin/bash");
    std::fs::write(&path, text).unwrap();
    let (code, stdout, stderr) = check(d, &["uptime"]);
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert!(stderr.contains("signature"), "{stderr}");

    // Another host's, or signed by another key, or not JSON.
    std::fs::write(
        &path,
        pretty(&signed(
            HOST_ID + 1,
            3,
            &[("uptime", "/usr/bin/uptime", None)],
        )),
    )
    .unwrap();
    assert_eq!(check(d, &["uptime"]).0, 2);
    let mut foreign = good(3);
    let mut unsigned = foreign.as_object().unwrap().clone();
    unsigned.remove("signature");
    let signature =
        SigningKey::from_bytes(&[9; 32]).sign(canonical(&Value::Object(unsigned)).as_bytes());
    foreign["signature"] = json!(STANDARD.encode(signature.to_bytes()));
    std::fs::write(&path, pretty(&foreign)).unwrap();
    assert_eq!(check(d, &["uptime"]).0, 2);
    std::fs::write(&path, "{").unwrap();
    assert_eq!(check(d, &["uptime"]).0, 2);

    // Valid again: allowed.
    std::fs::write(&path, pretty(&good(3))).unwrap();
    assert_eq!(check(d, &["uptime"]).0, 0);
}
