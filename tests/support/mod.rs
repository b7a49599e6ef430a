//! What the process-level tests share: loopback ports, a bare HTTP/1.0
//! client, processes killed on drop, and real `steward-agent` processes.
//! Each test binary uses part of it.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The agent binary.
pub const AGENT: &str = env!("CARGO_BIN_EXE_steward-agent");

pub fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP/1.0 request: status and JSON body (status 0 when nothing answers).
pub fn http(addr: &str, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let (status, body) = http_text(addr, method, path, auth, body);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// One HTTP/1.0 request: status and body text (status 0 when nothing answers).
pub fn http_text(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return (0, String::new());
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
    (status, body.to_owned())
}

/// Waits up to 30 s for `GET path` to answer 200.
pub fn wait_for(addr: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http(addr, "GET", path, None, "").0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr}{path} did not answer");
}

/// A child process, killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `steward-agent serve` on its own address, logging to `agent.log`
/// in its state directory.
pub struct Agent {
    pub ip: String,
    pub port: u16,
    pub state: PathBuf,
    /// Run after each new allowlist: a slow one (`sleep`) makes a slow agent.
    pub reload: Option<String>,
    pub process: Option<Killed>,
}

impl Agent {
    pub fn log(&self) -> PathBuf {
        self.state.join("agent.log")
    }

    /// Starts the agent and waits for its `/health`.
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("agent log");
        let mut command = Command::new(AGENT);
        command
            .args([
                "serve",
                "--listen",
                &format!("{}:{}", self.ip, self.port),
                "--state-dir",
            ])
            .arg(&self.state);
        if let Some(reload) = &self.reload {
            command.args(["--reload-command", reload]);
        }
        let child = command
            .env("STEWARD_AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent");
        self.process = Some(Killed(child));
        wait_for(&format!("{}:{}", self.ip, self.port), "/health");
    }

    /// The allowlist the agent holds.
    pub fn held(&self) -> Value {
        http(
            &format!("{}:{}", self.ip, self.port),
            "GET",
            "/v1/allowlist",
            None,
            "",
        )
        .1
    }

    /// How many pushes this agent has received, over all its runs.
    pub fn pushes(&self) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .matches("allowlist push received")
            .count()
    }

    /// Kills the agent.
    pub fn stop(&mut self) {
        self.process = None;
    }
}
