//! What the process-level tests share: loopback ports, a bare HTTP/1.0
//! client, processes killed on drop, real `steward serve` processes
//! ([`Server`]) and real `steward-agent` processes ([`Agent`]). Each test
//! binary uses part of it; none defines its own server.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The agent binary: `steward-agent`, of the workspace's agent crate, is
/// built into the directory above the test binaries' `deps/` (as
/// `cargo nextest run --workspace` and `cargo test --workspace` build it).
pub fn agent_binary() -> &'static std::path::Path {
    static AGENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let test = std::env::current_exe().expect("the test binary's path");
        let dir = test
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the target directory");
        let agent = dir.join(format!("steward-agent{}", std::env::consts::EXE_SUFFIX));
        assert!(
            agent.is_file(),
            "{} is missing: build it with `cargo build -p steward-agent` \
             (or run the tests with --workspace)",
            agent.display()
        );
        agent
    })
}
/// The server binary.
pub const STEWARD: &str = env!("CARGO_BIN_EXE_steward");

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
    /// Registers node `name` at `ip` with the template key `key` on the
    /// server at `server` (its URL), its state in `state` and its port a
    /// free one of `ip`: the agent, not started yet.
    pub fn register(
        server: &str,
        key: &str,
        name: &str,
        ip: &str,
        state: PathBuf,
        reload: Option<String>,
    ) -> Agent {
        let port = free_port(ip);
        let out = Command::new(agent_binary())
            .args(["register", "--server", server, "--key", key])
            .args(["--name", name, "--address", ip])
            .args(["--agent-port", &port.to_string(), "--state-dir"])
            .arg(&state)
            .output()
            .expect("register");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Agent {
            ip: ip.to_owned(),
            port,
            state,
            reload,
            process: None,
        }
    }

    pub fn log(&self) -> PathBuf {
        self.state.join("agent.log")
    }

    /// Starts the agent and waits for its `/health`.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts the agent with more `serve` arguments (`--allowed-dir DIR`)
    /// and waits for its `/health`.
    pub fn start_with(&mut self, args: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("agent log");
        let mut command = Command::new(agent_binary());
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
        command.args(args);
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

/// `Authorization` for Basic credentials `user:password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// How a [`Server`] is started. The defaults: `127.0.0.1`, a fresh
/// temporary data directory with SQLite in it, no admin password (the
/// server writes a random one to `admin.cred`), the log at `info` in
/// `server.log` of the data directory, ready when `/ready` answers 200.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// The loopback address to listen on.
    pub ip: Option<String>,
    /// `STEWARD_ADMIN_PASSWORD`.
    pub admin_password: Option<String>,
    /// `--database` (SQLite in the data directory otherwise).
    pub database: Option<String>,
    /// The data directory (kept by the caller), instead of a temporary one.
    pub data: Option<PathBuf>,
    /// Arguments after `serve --listen ADDRESS --data-dir DIR`.
    pub args: Vec<String>,
    /// More environment variables (`STEWARD_LOG`, ...).
    pub env: Vec<(String, String)>,
    /// Shell commands run before the server in the same shell (`ulimit -n
    /// 64;`): the server is then started through `sh -c ... exec`.
    pub before: Option<String>,
    /// Serves HTTPS: ready when its port accepts connections (the test
    /// checks the rest with its own client).
    pub tls: bool,
}

impl ServerOptions {
    /// The defaults with `password` for `admin`.
    pub fn admin(password: &str) -> Self {
        Self {
            admin_password: Some(password.to_owned()),
            ..Self::default()
        }
    }

    /// These options with more arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// These options with one more environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One `steward serve` process on a loopback address, killed when
/// dropped (or by [`Server::kill`]), started again on the same data by
/// [`Server::restart`].
pub struct Server {
    /// `IP:PORT` it listens on (a new port at every start).
    pub addr: String,
    pub port: u16,
    /// The data directory.
    pub data: PathBuf,
    options: ServerOptions,
    process: Option<Killed>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A server with the default options and `password` for `admin`.
    pub fn start(password: &str) -> Self {
        Self::with(ServerOptions::admin(password))
    }

    /// A server with `options`, started and ready.
    pub fn with(options: ServerOptions) -> Self {
        let (dir, data) = match &options.data {
            Some(data) => (None, data.clone()),
            None => {
                let dir = tempfile::tempdir().expect("a data directory");
                let data = dir.path().to_owned();
                (Some(dir), data)
            }
        };
        let mut server = Server {
            addr: String::new(),
            port: 0,
            data,
            options,
            process: None,
            _dir: dir,
        };
        server.restart();
        server
    }

    /// Starts the server (again, when it was killed) on a new port and
    /// waits until it is ready; panics with its log when it exits first.
    pub fn restart(&mut self) {
        self.kill();
        let ip = self.options.ip.as_deref().unwrap_or("127.0.0.1");
        self.port = free_port(ip);
        self.addr = format!("{ip}:{}", self.port);
        let serve = [
            "serve",
            "--listen",
            &self.addr,
            "--data-dir",
            self.data.to_str().expect("a UTF-8 path"),
        ];
        let mut command = match &self.options.before {
            Some(before) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("{before} exec \"$0\" \"$@\""))
                    .arg(STEWARD);
                command
            }
            None => Command::new(STEWARD),
        };
        command
            .args(serve)
            .args(&self.options.args)
            .env_remove("STEWARD_DATABASE_URL")
            .env_remove("STEWARD_CONFIG")
            .env_remove("STEWARD_ADMIN_PASSWORD")
            .env_remove("STEWARD_BASE_PATH")
            .env("STEWARD_LOG", "info");
        if let Some(url) = &self.options.database {
            command.args(["--database", url]);
        }
        if let Some(password) = &self.options.admin_password {
            command.env("STEWARD_ADMIN_PASSWORD", password);
        }
        command.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        // The log lives in the data directory, made private as the server
        // makes it.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&self.data)
            .expect("the data directory");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("server.log"))
            .expect("the server's log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts steward");
        self.process = Some(Killed(child));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = if self.options.tls {
                TcpStream::connect(&self.addr).is_ok()
            } else {
                http(&self.addr, "GET", "/ready", None, "").0 == 200
            };
            if ready {
                return;
            }
            if let Some(Killed(child)) = &mut self.process
                && let Ok(Some(exit)) = child.try_wait()
            {
                panic!("steward exited early ({exit}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "steward did not become ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no chance to finish anything.
    pub fn kill(&mut self) {
        self.process = None;
    }

    /// SIGTERM: the server begins its graceful stop; the process is
    /// handed back to be waited for.
    pub fn terminate(&mut self) -> Killed {
        let process = self.process.take().expect("the server runs");
        let signalled = Command::new("kill")
            .args(["-TERM", &process.0.id().to_string()])
            .status()
            .expect("runs kill");
        assert!(signalled.success());
        process
    }

    /// The options the next [`Server::restart`] uses.
    pub fn options(&mut self) -> &mut ServerOptions {
        &mut self.options
    }

    /// The process, while it runs.
    pub fn child(&mut self) -> &mut Child {
        &mut self.process.as_mut().expect("the server runs").0
    }

    /// What the server logged, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `Authorization` for `admin` with the configured password.
    pub fn admin(&self) -> String {
        basic(
            "admin",
            self.options
                .admin_password
                .as_deref()
                .expect("an admin password was configured"),
        )
    }

    /// One request with an optional `Authorization` value and body: the
    /// status (0 when nothing answers) and the body text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        http_text(&self.addr, method, path, auth, body)
    }

    /// One request as `admin`: the status and the body as JSON.
    pub fn call(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        http(
            &self.addr,
            method,
            path,
            Some(&self.admin()),
            &body.to_string(),
        )
    }

    /// Runs `steward ARGS --data-dir DIR` on the same data with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut child = Command::new(STEWARD)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .env_remove("STEWARD_DATABASE_URL")
            .env_remove("STEWARD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs steward");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("writes stdin");
        child.wait_with_output().expect("output")
    }
}
