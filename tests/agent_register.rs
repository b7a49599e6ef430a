//! `steward-agent register` as a node runs it: against a scripted fake server
//! (every answer the contract names, retries, key pinning) and against the
//! real `steward` server (first registration, re-registration, refusals).

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Server, agent_binary, free_port};

const ADMIN_PASSWORD: &str = "admin-password-x";

fn fingerprint(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read_state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
}

/// What one agent run did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Neither output shows any of `secrets`.
    fn assert_silent_about(&self, secrets: &[&str]) -> &Self {
        for secret in secrets {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "a key was printed\nstdout: {}\nstderr: {}",
                self.stdout,
                self.stderr
            );
        }
        self
    }
}

/// Runs `steward-agent ARGS` with none of its environment variables set.
fn agent(args: &[&str]) -> Run {
    let started = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(agent_binary())
        .args(args)
        .env_remove("STEWARD_SERVER")
        .env_remove("STEWARD_KEY")
        .env_remove("STEWARD_AGENT_STATE_DIR")
        .stdin(Stdio::null())
        .output()
        .expect("run steward-agent");
    Run {
        code: status.code().expect("an exit code"),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: started.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// A scripted fake server.

/// A request as the fake server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

/// An answer of the fake server.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

type Script = Box<dyn FnMut(&Seen) -> Reply + Send>;

/// A fake Steward on 127.0.0.1 that answers with `script` and records requests.
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start(script: impl FnMut(&Seen) -> Reply + Send + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut script: Script = Box::new(script);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                record.lock().unwrap().push(request.clone());
                let answer = script(&request);
                let mut head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                    answer.status,
                    answer.body.len()
                );
                for (name, value) in &answer.headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(answer.body.as_bytes());
            }
        });
        Fake { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = data[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

const TEMPLATE_KEY: &str = "template-key-0123456789abcdef0123456789abcdef";
const HOST_KEY: &str = "host-key-fedcba9876543210fedcba9876543210fedcba";

/// The agent-config answer for a server whose raw public key is `raw`.
fn agent_config(raw: &[u8; 32]) -> Value {
    json!({
        "host": "node1.example",
        "host_id": 17,
        "agent_port": 5666,
        "signing_key": {
            "algorithm": "ed25519",
            "public_key": STANDARD.encode(raw),
            "fingerprint": fingerprint(raw),
        },
    })
}

/// A well-behaved server: any known key registers `node1.example` and gets
/// `HOST_KEY`; its signing key is whatever `raw` holds at the time.
fn good_server(raw: Arc<Mutex<[u8; 32]>>) -> impl FnMut(&Seen) -> Reply + Send + 'static {
    move |request| match (request.method.as_str(), request.path(), request.bearer()) {
        ("POST", "/director/self-service/register-host", Some(TEMPLATE_KEY | HOST_KEY)) => {
            reply(200, json!(HOST_KEY))
        }
        ("GET", "/director/self-service/agent-config", Some(HOST_KEY)) => {
            reply(200, agent_config(&raw.lock().unwrap()))
        }
        _ => reply(403, json!({"error": "Invalid key"})),
    }
}

#[test]
fn first_registration_sends_what_the_contract_says_and_writes_a_private_state() {
    let raw = Arc::new(Mutex::new([7u8; 32]));
    let fake = Fake::start(good_server(raw));
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("state");
    let dir_arg = dir.to_str().unwrap();
    let run = agent(&[
        "register",
        "--server",
        &format!("{}/", fake.url),
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--address",
        "127.0.0.5",
        "--agent-port",
        "5666",
        "--state-dir",
        dir_arg,
    ]);
    run.assert_code(0)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert_eq!(
        run.stdout.trim(),
        format!(
            "registered node1.example (host id 17) with {}; state in {}/state.json",
            fake.url, dir_arg
        )
    );
    assert!(
        run.stderr.contains("not verified"),
        "TOFU warning over plain http: {}",
        run.stderr
    );

    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].target,
        "/director/self-service/register-host?name=node1.example"
    );
    assert_eq!(seen[0].bearer(), Some(TEMPLATE_KEY));
    assert_eq!(seen[0].header("accept"), Some("application/json"));
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body, json!({"address": "127.0.0.5", "agent_port": 5666}));
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].path(), "/director/self-service/agent-config");
    assert_eq!(seen[1].bearer(), Some(HOST_KEY));

    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("state.json")), 0o600);
    let state = read_state(&dir);
    assert_eq!(state["server"], json!(fake.url));
    assert_eq!(state["host"], "node1.example");
    assert_eq!(state["host_id"], 17);
    assert_eq!(state["host_key"], HOST_KEY);
    assert_eq!(state["server_public_key"], STANDARD.encode([7u8; 32]));
    assert_eq!(state["server_fingerprint"], json!(fingerprint(&[7u8; 32])));
    assert_eq!(state["agent_port"], 5666);
    assert!(
        state["registered_at"]
            .as_str()
            .is_some_and(|s| s.len() >= 20)
    );
}

#[test]
fn a_rerun_uses_the_host_key_and_refuses_a_changed_server_key_unless_named() {
    let raw = Arc::new(Mutex::new([7u8; 32]));
    let fake = Fake::start(good_server(raw.clone()));
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let run_with = |extra: &[&str]| {
        let mut args = vec![
            "register",
            "--server",
            &fake.url,
            "--key",
            TEMPLATE_KEY,
            "--name",
            "node1.example",
            "--state-dir",
            dir_arg,
        ];
        args.extend_from_slice(extra);
        agent(&args)
    };
    run_with(&[]).assert_code(0);
    let first = read_state(dir.path());

    // Again: the host key, not the template key; no TOFU warning any more.
    let run = run_with(&[]);
    run.assert_code(0)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert!(!run.stderr.contains("not verified"), "{}", run.stderr);
    let seen = fake.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].bearer(), Some(HOST_KEY));
    assert_eq!(read_state(dir.path())["host_key"], HOST_KEY);

    // The server's key changes: refused, and the state keeps the old pin.
    *raw.lock().unwrap() = [9u8; 32];
    let new = fingerprint(&[9u8; 32]);
    let run = run_with(&[]);
    run.assert_code(3)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert!(run.stderr.contains(&new), "{}", run.stderr);
    assert_eq!(
        read_state(dir.path())["server_fingerprint"],
        first["server_fingerprint"]
    );

    // Naming the new key accepts the rotation.
    run_with(&["--server-key", &new]).assert_code(0);
    assert_eq!(read_state(dir.path())["server_fingerprint"], json!(new));
    run_with(&[]).assert_code(0);
}

#[test]
fn server_key_refuses_another_fingerprint_and_keeps_only_the_pending_host_key() {
    let fake = Fake::start(good_server(Arc::new(Mutex::new([7u8; 32]))));
    let dir = tempfile::tempdir().unwrap();
    let wrong = fingerprint(&[1u8; 32]);
    let run = agent(&[
        "register",
        "--server",
        &fake.url,
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--server-key",
        &wrong,
    ]);
    run.assert_code(3)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert!(!dir.path().join("state.json").exists());
    assert_eq!(mode(&dir.path().join("pending.json")), 0o600);

    // The right one passes, without the TOFU warning, re-registering with
    // the host key the refused run was given.
    let right = fingerprint(&[7u8; 32])
        .to_uppercase()
        .replace("SHA256:", "");
    let run = agent(&[
        "register",
        "--server",
        &fake.url,
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--server-key",
        &right,
    ]);
    run.assert_code(0);
    assert!(!run.stderr.contains("not verified"), "{}", run.stderr);
    let seen = fake.seen();
    assert_eq!(seen[2].bearer(), Some(HOST_KEY), "{seen:?}");
    assert_eq!(read_state(dir.path())["host_key"], HOST_KEY);
    assert!(!dir.path().join("pending.json").exists());
}

#[test]
fn a_failure_after_the_key_was_given_is_repaired_by_the_next_run() {
    let broken = Arc::new(Mutex::new(true));
    let mut good = good_server(Arc::new(Mutex::new([7u8; 32])));
    let fake = Fake::start({
        let broken = broken.clone();
        move |request: &Seen| {
            if *broken.lock().unwrap() && request.path().ends_with("/agent-config") {
                reply(503, json!({"error": "Service unavailable"}))
            } else {
                good(request)
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let register = || {
        agent(&[
            "register",
            "--server",
            &fake.url,
            "--key",
            TEMPLATE_KEY,
            "--name",
            "node1.example",
            "--state-dir",
            dir.path().to_str().unwrap(),
            "--retry-for",
            "1",
        ])
    };
    register()
        .assert_code(6)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert!(!dir.path().join("state.json").exists());
    assert_eq!(mode(&dir.path().join("pending.json")), 0o600);

    *broken.lock().unwrap() = false;
    let before = fake.seen().len();
    register()
        .assert_code(0)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    let seen = fake.seen();
    assert_eq!(seen[before].bearer(), Some(HOST_KEY), "{seen:?}");
    assert_eq!(read_state(dir.path())["host_key"], HOST_KEY);
    assert!(!dir.path().join("pending.json").exists());
}

#[test]
fn a_fingerprint_that_does_not_match_the_public_key_is_refused() {
    let fake = Fake::start(|request: &Seen| match request.path() {
        "/director/self-service/register-host" => reply(200, json!(HOST_KEY)),
        _ => {
            let mut config = agent_config(&[7u8; 32]);
            config["signing_key"]["fingerprint"] = json!(fingerprint(&[8u8; 32]));
            reply(200, config)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    agent(&[
        "register",
        "--server",
        &fake.url,
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
    ])
    .assert_code(3)
    .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn refusals_map_to_their_exit_codes_and_show_the_servers_message() {
    for (status, code) in [(400, 5), (401, 3), (403, 3), (409, 4), (422, 5)] {
        let fake = Fake::start(move |_: &Seen| {
            reply(status, json!({"error": format!("message for {status}")}))
        });
        let dir = tempfile::tempdir().unwrap();
        let run = agent(&[
            "register",
            "--server",
            &fake.url,
            "--key",
            TEMPLATE_KEY,
            "--name",
            "node1.example",
            "--state-dir",
            dir.path().to_str().unwrap(),
        ]);
        run.assert_code(code).assert_silent_about(&[TEMPLATE_KEY]);
        assert!(
            run.stderr.contains(&format!("message for {status}")),
            "{status}: {}",
            run.stderr
        );
        assert_eq!(fake.seen().len(), 1, "{status} is not retried");
        assert!(!dir.path().join("state.json").exists());
    }
}

#[test]
fn too_many_requests_waits_for_retry_after_and_server_errors_back_off() {
    let raw = Arc::new(Mutex::new([7u8; 32]));
    let mut good = good_server(raw);
    let mut count = 0;
    let fake = Fake::start(move |request: &Seen| {
        count += 1;
        match count {
            1 => Reply {
                status: 429,
                headers: vec![("Retry-After", "2".to_owned())],
                body: json!({"error": "slow down"}).to_string(),
            },
            2 => reply(503, json!({"error": "starting"})),
            _ => good(request),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = agent(&[
        "register",
        "--server",
        &fake.url,
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--retry-for",
        "20",
    ]);
    run.assert_code(0)
        .assert_silent_about(&[TEMPLATE_KEY, HOST_KEY]);
    let seen = fake.seen();
    assert_eq!(seen.len(), 4, "{seen:?}");
    // 2 s of Retry-After, then 1 s ± 20 % of backoff.
    assert!(run.took >= Duration::from_millis(2700), "{:?}", run.took);
    assert!(run.took < Duration::from_secs(10), "{:?}", run.took);
}

#[test]
fn a_server_that_keeps_failing_is_given_up_after_the_retry_budget() {
    let fake = Fake::start(|_: &Seen| reply(500, json!({"error": "Internal error"})));
    let dir = tempfile::tempdir().unwrap();
    let run = agent(&[
        "register",
        "--server",
        &fake.url,
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--retry-for",
        "2",
    ]);
    run.assert_code(6).assert_silent_about(&[TEMPLATE_KEY]);
    assert!(run.stderr.contains("not reachable"), "{}", run.stderr);
    assert!(fake.seen().len() >= 2, "retried");
    assert!(run.took < Duration::from_secs(6), "{:?}", run.took);
}

#[test]
fn an_unused_port_is_not_reachable_within_the_budget() {
    let port = free_port("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let run = agent(&[
        "register",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--key",
        TEMPLATE_KEY,
        "--name",
        "node1.example",
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--retry-for",
        "2",
    ]);
    run.assert_code(6).assert_silent_about(&[TEMPLATE_KEY]);
    assert!(run.stderr.contains("not reachable"), "{}", run.stderr);
    assert!(run.took >= Duration::from_millis(1500), "{:?}", run.took);
    assert!(run.took < Duration::from_secs(6), "{:?}", run.took);
    assert!(!dir.path().join("state.json").exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    // No key and nothing to re-register with.
    let run = agent(&[
        "register",
        "--server",
        "http://127.0.0.1:9",
        "--name",
        "n.example",
        "--state-dir",
        state,
    ]);
    run.assert_code(2);
    assert!(run.stderr.contains("--key"), "{}", run.stderr);
    for args in [
        &["register", "--key", "k", "--state-dir", state][..],
        &[
            "register",
            "--server",
            "ftp://x",
            "--key",
            "k",
            "--name",
            "n",
            "--state-dir",
            state,
        ],
        &[
            "register",
            "--server",
            "http://127.0.0.1:9",
            "--key",
            "k",
            "--server-key",
            "sha256:1234",
        ],
        &[
            "register",
            "--server",
            "http://127.0.0.1:9",
            "--key",
            "k",
            "--agent-port",
            "0",
        ],
        &["frobnicate"],
    ] {
        agent(args).assert_code(2);
    }
}

#[test]
fn the_environment_supplies_server_key_and_state_dir_and_help_hides_the_key() {
    let fake = Fake::start(good_server(Arc::new(Mutex::new([7u8; 32]))));
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(agent_binary())
        .args(["register", "--name", "node1.example"])
        .env("STEWARD_SERVER", &fake.url)
        .env("STEWARD_KEY", TEMPLATE_KEY)
        .env("STEWARD_AGENT_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(read_state(dir.path())["host_key"], HOST_KEY);

    let help = Command::new(agent_binary())
        .args(["register", "--help"])
        .env("STEWARD_KEY", TEMPLATE_KEY)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("STEWARD_KEY"), "{help}");
    assert!(!help.contains(TEMPLATE_KEY), "{help}");
}

// ---------------------------------------------------------------------------
// The real server.

/// A running `steward serve` whose admin has [`ADMIN_PASSWORD`].
fn start_server() -> Server {
    Server::start(ADMIN_PASSWORD)
}

/// A request as the admin; the status and the body as JSON.
fn admin(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, text) = server.request(method, path, Some(&server.admin()), &body);
    assert_ne!(status, 0, "steward answers");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Makes the `agents` template (has_agent) and answers its new key.
fn agents_template_key(server: &Server) -> String {
    let (status, body) = admin(
        server,
        "POST",
        "/director/host",
        Some(json!({"object_name": "agents", "object_type": "template", "has_agent": true})),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, body) = admin(
        server,
        "POST",
        "/director/host/api-key?name=agents",
        Some(json!({})),
    );
    assert_eq!(status, 200, "{body}");
    body["api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no api_key in {body}"))
        .to_owned()
}

#[test]
fn registers_with_the_real_server_again_and_again_and_is_refused_when_it_should_be() {
    let server = start_server();
    let key = agents_template_key(&server);
    let state1 = tempfile::tempdir().unwrap();
    let register = |key: &str, state: &Path, extra: &[&str]| {
        let url = server.url();
        let mut args = vec![
            "register",
            "--server",
            &url,
            "--key",
            key,
            "--name",
            "node1.example",
            "--state-dir",
            state.to_str().unwrap(),
            "--address",
            "127.0.0.5",
        ];
        args.extend_from_slice(extra);
        agent(&args)
    };

    // First registration.
    let run = register(&key, state1.path(), &[]);
    run.assert_code(0).assert_silent_about(&[&key]);
    assert!(
        run.stdout.starts_with("registered node1.example (host id "),
        "{}",
        run.stdout
    );
    assert_eq!(mode(&state1.path().join("state.json")), 0o600);
    let state = read_state(state1.path());
    let host_key = state["host_key"].as_str().expect("a host key").to_owned();
    assert!(!host_key.is_empty() && host_key != key);
    run.assert_silent_about(&[&host_key]);
    assert_eq!(state["host"], "node1.example");
    assert!(state["host_id"].is_i64(), "{state}");
    assert!(
        state["server_fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("sha256:") && f.len() == 71),
        "{state}"
    );

    let (status, host) = admin(&server, "GET", "/director/host?name=node1.example", None);
    assert_eq!(status, 200, "{host}");
    assert_eq!(host["imports"], json!(["agents"]), "{host}");
    assert_eq!(host["address"], "127.0.0.5", "{host}");

    // At the next boot: the same host key.
    register(&key, state1.path(), &[])
        .assert_code(0)
        .assert_silent_about(&[&key, &host_key]);
    assert_eq!(read_state(state1.path())["host_key"], json!(host_key));

    // --server-key: the pinned fingerprint passes, another is refused.
    let pinned = state["server_fingerprint"].as_str().unwrap().to_owned();
    register(&key, state1.path(), &["--server-key", &pinned]).assert_code(0);
    let other = fingerprint(b"another key");
    register(&key, state1.path(), &["--server-key", &other])
        .assert_code(3)
        .assert_silent_about(&[&key, &host_key]);
    assert_eq!(read_state(state1.path())["host_key"], json!(host_key));

    // Another node claiming the same name: taken.
    let state2 = tempfile::tempdir().unwrap();
    let run = register(&key, state2.path(), &[]);
    run.assert_code(4).assert_silent_about(&[&key, &host_key]);
    assert!(!state2.path().join("state.json").exists());

    // A wrong key (last: failed key checks are throttled).
    let state3 = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(64);
    let url = server.url();
    agent(&[
        "register",
        "--server",
        &url,
        "--key",
        &wrong,
        "--name",
        "node2.example",
        "--state-dir",
        state3.path().to_str().unwrap(),
        "--retry-for",
        "3",
    ])
    .assert_code(3)
    .assert_silent_about(&[&key, &host_key, &wrong]);
    assert!(!state3.path().join("state.json").exists());
}

#[test]
fn a_node_whose_host_was_renamed_re_registers_and_learns_the_new_name() {
    // Arrange: node1.example registered, then renamed on the server.
    let server = start_server();
    let key = agents_template_key(&server);
    let state = tempfile::tempdir().unwrap();
    let url = server.url();
    let register = || {
        agent(&[
            "register",
            "--server",
            &url,
            "--key",
            &key,
            "--name",
            "node1.example",
            "--state-dir",
            state.path().to_str().unwrap(),
        ])
    };
    register().assert_code(0);
    let host_key = read_state(state.path())["host_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = admin(
        &server,
        "POST",
        "/director/host?name=node1.example",
        Some(json!({"object_name": "renamed.example"})),
    );
    assert_eq!(status, 200, "{body}");

    // Act and assert: the next boots (the machine keeps its name) re-register
    // with the host key, and the state follows the rename.
    for boot in 0..2 {
        let run = register();
        run.assert_code(0).assert_silent_about(&[&key, &host_key]);
        assert!(
            run.stdout
                .starts_with("registered renamed.example (host id "),
            "boot {boot}: {}",
            run.stdout
        );
        let now = read_state(state.path());
        assert_eq!(now["host"], "renamed.example", "boot {boot}: {now}");
        assert_eq!(now["host_key"], json!(host_key), "boot {boot}");
    }
    let (status, _) = admin(&server, "GET", "/director/host?name=node1.example", None);
    assert_eq!(status, 404, "no duplicate host under the old name");
}
