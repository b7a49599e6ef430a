//! Deploying to real agent processes on loopback addresses: every agent
//! gets its own address (127.0.0.x) and verifies what it receives.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");
const AGENT: &str = env!("CARGO_BIN_EXE_steward-agent");
const PASSWORD: &str = "deploy-admin-password";

fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.0 request: status and JSON body.
fn http(addr: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn wait_for(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http(addr, "GET", path, None, "").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr}{path} did not answer");
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Agent {
    ip: String,
    port: u16,
    state: PathBuf,
    process: Option<Killed>,
}

impl Agent {
    fn start(&mut self) {
        let child = Command::new(AGENT)
            .args([
                "serve",
                "--listen",
                &format!("{}:{}", self.ip, self.port),
                "--state-dir",
            ])
            .arg(&self.state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agent");
        self.process = Some(Killed(child));
        wait_for(&format!("{}:{}", self.ip, self.port), "/health");
    }

    fn held(&self) -> Value {
        http(
            &format!("{}:{}", self.ip, self.port),
            "GET",
            "/v1/allowlist",
            None,
            "",
        )
        .1
    }
}

struct World {
    server: String,
    admin: String,
    _steward: Killed,
    _dir: tempfile::TempDir,
    agents: Vec<Agent>,
}

impl World {
    fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        http(
            &self.server,
            method,
            path,
            Some(&self.admin),
            &body.to_string(),
        )
    }
}

fn world(agents: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    let server = format!("127.0.0.1:{port}");
    let steward = Command::new(STEWARD)
        .args(["serve", "--listen", &server, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STEWARD_ADMIN_PASSWORD", PASSWORD)
        .env_remove("STEWARD_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("steward");
    let steward = Killed(steward);
    wait_for(&server, "/ready");
    let admin = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"))
    );
    let mut w = World {
        server,
        admin,
        _steward: steward,
        _dir: dir,
        agents: Vec::new(),
    };
    assert_eq!(
        w.call(
            "POST",
            "/director/script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"})
        )
        .0,
        201
    );
    assert_eq!(
        w.call(
            "POST",
            "/director/script",
            json!({"object_name": "df", "command": "/usr/bin/df", "arguments": ["-h"]})
        )
        .0,
        201
    );
    let tpl = json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]});
    assert_eq!(w.call("POST", "/director/host", tpl).0, 201);
    let (_, key) = w.call("POST", "/director/host/api-key?name=agents", json!({}));
    let key = key["api_key"].as_str().unwrap().to_owned();
    for i in 0..agents {
        let ip = format!("127.0.0.{}", 30 + i);
        let port = free_port(&ip);
        let state = w._dir.path().join(format!("agent-{i}"));
        let out = Command::new(AGENT)
            .args([
                "register",
                "--server",
                &format!("http://{}", w.server),
                "--key",
                &key,
            ])
            .args([
                "--name",
                &format!("node-{i}.example"),
                "--address",
                &ip,
                "--agent-port",
                &port.to_string(),
            ])
            .arg("--state-dir")
            .arg(&state)
            .output()
            .expect("register");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut agent = Agent {
            ip,
            port,
            state,
            process: None,
        };
        agent.start();
        w.agents.push(agent);
    }
    w
}

fn checksum_of(w: &World, host: &str) -> Value {
    w.call(
        "GET",
        &format!("/director/host/allowlist?name={host}"),
        json!({}),
    )
    .1["checksum"]
        .clone()
}

#[test]
fn a_deploy_reaches_every_agent_and_only_the_changed_or_missed_ones_again() {
    let mut w = world(5);

    let (status, result) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], json!("succeeded"), "{result}");
    assert_eq!(result["counts"]["deployed"], json!(5));
    for (i, agent) in w.agents.iter().enumerate() {
        let held = agent.held();
        assert_eq!(
            held["checksum"],
            checksum_of(&w, &format!("node-{i}.example"))
        );
        assert_eq!(held["scripts"][0]["name"], json!("uptime"));
    }

    let (status, again) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(
        (status, again["status"].clone()),
        (200, json!("unchanged")),
        "{again}"
    );
    assert_eq!(again["checksum"], result["checksum"]);

    // One agent down while the template changes: it is unreachable.
    w.agents[2].process = None;
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    let (_, partial) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(partial["status"], json!("partial"), "{partial}");
    assert_eq!(
        (
            partial["counts"]["deployed"].clone(),
            partial["counts"]["unreachable"].clone()
        ),
        (json!(4), json!(1))
    );
    let down = partial["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == json!("node-2.example"))
        .unwrap()
        .clone();
    assert_eq!(down["result"], json!("unreachable"));
    assert_eq!(down["attempts"], json!(3));
    let pending = w.call("GET", "/director/config/pending", json!({})).1;
    assert_eq!(pending["hosts"].as_array().unwrap().len(), 1);

    // Back up: the next deploy pushes to it alone.
    w.agents[2].start();
    let (_, healed) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(healed["status"], json!("succeeded"), "{healed}");
    assert_eq!(
        (
            healed["counts"]["deployed"].clone(),
            healed["counts"]["skipped"].clone()
        ),
        (json!(1), json!(4))
    );
    assert_eq!(w.agents[2].held()["scripts"].as_array().unwrap().len(), 2);

    // A host that leaves the deploy set is sent an empty allowlist.
    w.call(
        "POST",
        "/director/host?name=node-4.example",
        json!({"disabled": true}),
    );
    let (_, revoked) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(revoked["status"], json!("succeeded"), "{revoked}");
    assert_eq!(w.agents[4].held()["scripts"], json!([]));
    let (_, settled) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(settled["status"], json!("unchanged"), "{settled}");

    // Serials only grow; every deployment is listed, newest first.
    let list = w.call("GET", "/director/config/deployments", json!({})).1;
    let ids: Vec<i64> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3, 2, 1]);
    let log = w
        .call(
            "GET",
            "/director/activity?object_type=deployment",
            json!({}),
        )
        .1;
    assert_eq!(
        log["objects"].as_array().unwrap().len(),
        8,
        "a start and an end entry per deployment"
    );
}

#[test]
fn a_deploy_without_wait_answers_202_with_the_status_location() {
    let w = world(1);
    let (status, started) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], json!("running"));
    let id = started["deployment_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, d) = w.call(
            "GET",
            &format!("/director/config/deployment?id={id}"),
            json!({}),
        );
        if d["status"] != json!("running") {
            assert_eq!(d["status"], json!("succeeded"), "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "the deployment did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        w.call("GET", "/director/config/deployment?id=999", json!({}))
            .0,
        404
    );
    assert_eq!(
        w.call("POST", "/director/config/deploy?wait=601", json!([]))
            .0,
        400
    );
}
