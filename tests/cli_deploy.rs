//! `steward deploy` as an operator runs it: a real `steward serve`, real
//! agents on their own loopback addresses (127.0.0.70 to .79), and the
//! command's exit codes and output as a script sees them.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{Agent, Killed, free_port, http, wait_for};

const STEWARD: &str = env!("CARGO_BIN_EXE_steward");
const PASSWORD: &str = "cli-deploy-Pa55word";
const WRONG_PASSWORD: &str = "not-the-Pa55word";
const READER_PASSWORD: &str = "reader-Pa55word";

/// A server with a template `agents` (scripts `uptime` and `df` exist, the
/// template allows `uptime`) and agents registered from it as
/// `node-70.example` and so on.
struct World {
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The base path of the Director routes: `""` or like `/icingaweb2`.
    base_path: String,
    admin: String,
    agents: Vec<Agent>,
    _server: Killed,
    dir: tempfile::TempDir,
}

impl World {
    /// `agents` gives each agent's last address octet (70 to 79) and
    /// reload command.
    fn new(base_path: &str, agents: &[(u8, Option<&str>)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port("127.0.0.1"));
        let mut command = Command::new(STEWARD);
        command
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(dir.path().join("data"))
            .env("STEWARD_ADMIN_PASSWORD", PASSWORD)
            .env_remove("STEWARD_DATABASE_URL")
            .env_remove("STEWARD_CONFIG")
            .env_remove("STEWARD_BASE_PATH");
        if !base_path.is_empty() {
            command.args(["--base-path", base_path]);
        }
        let server = Killed(
            command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("steward"),
        );
        wait_for(&addr, "/ready");
        let admin = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"))
        );
        let mut w = World {
            addr,
            base_path: base_path.to_owned(),
            admin,
            agents: Vec::new(),
            _server: server,
            dir,
        };
        for script in [
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
            json!({"object_name": "df", "command": "/usr/bin/df", "arguments": ["-h"]}),
        ] {
            assert_eq!(w.call("POST", "/director/script", script).0, 201);
        }
        let template = json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]});
        assert_eq!(w.call("POST", "/director/host", template).0, 201);
        let (_, key) = w.call("POST", "/director/host/api-key?name=agents", json!({}));
        let key = key["api_key"].as_str().unwrap().to_owned();
        for (octet, reload) in agents {
            let mut agent = Agent::register(
                &w.url(),
                &key,
                &format!("node-{octet}.example"),
                &format!("127.0.0.{octet}"),
                w.dir.path().join(format!("agent-{octet}")),
                reload.map(str::to_owned),
            );
            agent.start();
            w.agents.push(agent);
        }
        w
    }

    /// The server's URL as `--server` takes it.
    fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// An API call as admin; `path` is below the base path.
    fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        http(
            &self.addr,
            method,
            &format!("{}{path}", self.base_path),
            Some(&self.admin),
            &body.to_string(),
        )
    }

    /// Polls deployment `id` until it no longer runs.
    fn finished(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, d) = self.call(
                "GET",
                &format!("/director/config/deployment?id={id}"),
                json!({}),
            );
            if d["status"].is_string() && d["status"] != json!("running") {
                return d;
            }
            assert!(Instant::now() < deadline, "deployment {id} runs on: {d}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A change to every agent's allowlist.
    fn allow_df(&self) {
        let (status, body) = self.call(
            "POST",
            "/director/host?name=agents",
            json!({"scripts": ["uptime", "df"]}),
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// Where `steward deploy` gets its password.
#[derive(Clone, Copy)]
enum Password<'a> {
    /// `STEWARD_PASSWORD`.
    Env(&'a str),
    /// The first line of standard input (a pipe), no variable.
    Stdin(&'a str),
}

/// What one `steward deploy` run came to.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// The count in the summary table's row for `result`.
    fn count(&self, result: &str) -> Option<u64> {
        self.stdout.lines().find_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() == Some(result) {
                words.next()?.parse().ok()
            } else {
                None
            }
        })
    }
}

/// Runs `steward deploy --server SERVER ARGS...` with a clean environment
/// for its own variables; no password ever shows in its output.
fn deploy(server: &str, password: Password, args: &[&str]) -> Run {
    let mut command = Command::new(STEWARD);
    command
        .args(["deploy", "--server", server])
        .args(args)
        .env_remove("STEWARD_PASSWORD")
        .env_remove("STEWARD_USER")
        .env_remove("STEWARD_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Password::Env(p) = password {
        command.env("STEWARD_PASSWORD", p);
    }
    let mut child = command.spawn().expect("steward deploy");
    let mut stdin = child.stdin.take().unwrap();
    if let Password::Stdin(p) = password {
        writeln!(stdin, "{p}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [PASSWORD, WRONG_PASSWORD, READER_PASSWORD] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a password was printed:\n{run}"
        );
    }
    run
}

#[test]
fn a_waited_deploy_shows_its_results_and_exits_0_only_when_every_host_has_them() {
    let mut w = World::new("", &[(70, None), (71, None)]);
    let url = w.url();

    // Both agents reached: a table, a clean standard error (not a terminal:
    // no progress bar), exit 0.
    let first = deploy(&url, Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(first.code, Some(0), "{first}");
    assert_eq!(first.count("deployed"), Some(2), "{first}");
    assert_eq!(first.count("unreachable"), Some(0), "{first}");
    assert_eq!(first.count("pending"), Some(0), "{first}");
    assert!(first.stdout.contains("deployment 1: succeeded"), "{first}");
    assert_eq!(first.stderr, "", "{first}");

    // Nothing changed; the password from a pipe.
    let again = deploy(&url, Password::Stdin(PASSWORD), &["--wait"]);
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(
        again.stdout, "deployment 1: unchanged, nothing to deploy\n",
        "{again}"
    );

    // One agent down during a change: partial, exit 1, the host named.
    w.agents[1].stop();
    w.allow_df();
    let partial = deploy(&url, Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(partial.code, Some(1), "{partial}");
    assert_eq!(partial.count("deployed"), Some(1), "{partial}");
    assert_eq!(partial.count("unreachable"), Some(1), "{partial}");
    assert!(
        partial.stdout.contains("deployment 2: partial"),
        "{partial}"
    );
    let row = partial
        .stdout
        .lines()
        .find(|l| l.starts_with("node-71.example"))
        .unwrap_or_else(|| panic!("no row for the host that is down:\n{partial}"));
    assert!(row.contains("unreachable"), "{row}");
    assert!(row.contains("connection failed"), "{row}");
    assert!(
        !partial.stdout.contains("node-70.example"),
        "a deployed host listed:\n{partial}"
    );

    // Wrong password: 3, and nothing deployed.
    let refused = deploy(&url, Password::Env(WRONG_PASSWORD), &["--wait"]);
    assert_eq!(refused.code, Some(3), "{refused}");
    assert_eq!(refused.stdout, "", "{refused}");
    assert!(refused.stderr.contains("Invalid credentials"), "{refused}");

    // Back up; without --wait: the deployment's id at once, exit 0.
    w.agents[1].start();
    let started = deploy(&url, Password::Env(PASSWORD), &[]);
    assert_eq!(started.code, Some(0), "{started}");
    assert!(
        started.stdout.starts_with("deployment 3: running, "),
        "{started}"
    );
    // Waiting now joins it, or finds it done.
    let joined = deploy(&url, Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(joined.code, Some(0), "{joined}");
    assert!(
        joined.stdout.contains("deployment 3: succeeded")
            || joined.stdout.contains("deployment 3: unchanged"),
        "{joined}"
    );
    assert_eq!(w.finished(3)["counts"]["unreachable"], json!(0));
}

#[test]
fn refused_busy_timed_out_and_unreachable_deploys_exit_with_their_own_codes() {
    // A slow agent: each new allowlist takes it 3 s.
    let w = World::new("/icingaweb2", &[(72, Some("sleep 3"))]);
    // A base path, with a trailing slash.
    let url = format!("{}/", w.url());

    let started = deploy(&url, Password::Stdin(PASSWORD), &[]);
    assert_eq!(started.code, Some(0), "{started}");
    assert_eq!(
        started.stdout, "deployment 1: running, 1 host\n",
        "{started}"
    );

    // Another checksum while deployment 1 runs: 4, naming it.
    w.allow_df();
    let busy = deploy(&url, Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(busy.code, Some(4), "{busy}");
    assert!(busy.stderr.contains("deployment 1 is running"), "{busy}");
    assert_eq!(w.finished(1)["status"], json!("succeeded"));

    // A wait shorter than the agent: 1, with the table so far.
    let late = deploy(&url, Password::Env(PASSWORD), &["--wait", "--timeout", "1"]);
    assert_eq!(late.code, Some(1), "{late}");
    assert_eq!(late.count("pending"), Some(1), "{late}");
    assert!(late.stdout.contains("deployment 2: running"), "{late}");
    assert!(late.stderr.contains("did not end within 1 s"), "{late}");

    // A user without the deploy permission: 3.
    let reader = json!({"object_name": "viewer", "role": "reader", "password": READER_PASSWORD});
    assert_eq!(w.call("POST", "/director/user", reader).0, 201);
    let forbidden = deploy(&url, Password::Env(READER_PASSWORD), &["--user", "viewer"]);
    assert_eq!(forbidden.code, Some(3), "{forbidden}");
    assert!(forbidden.stderr.contains("viewer"), "{forbidden}");

    // Usage and configuration: 2.
    let no_password = deploy(&url, Password::Stdin(""), &[]);
    assert_eq!(no_password.code, Some(2), "{no_password}");
    let bad_scheme = deploy("ftp://127.0.0.1/", Password::Env(PASSWORD), &[]);
    assert_eq!(bad_scheme.code, Some(2), "{bad_scheme}");
    let without_base_path = deploy(&format!("http://{}", w.addr), Password::Env(PASSWORD), &[]);
    assert_eq!(without_base_path.code, Some(2), "{without_base_path}");
    assert!(
        without_base_path.stderr.contains("base path"),
        "{without_base_path}"
    );

    // Nothing listening: 6.
    let nobody = deploy("http://127.0.0.1:1", Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(nobody.code, Some(6), "{nobody}");
    assert!(nobody.stderr.contains("not reachable"), "{nobody}");
}

#[test]
fn a_dry_run_prints_each_hosts_changes_and_hosts_limits_the_deploy() {
    let w = World::new("", &[(72, None), (73, None)]);
    let url = w.url();
    let first = deploy(&url, Password::Env(PASSWORD), &["--wait"]);
    assert_eq!(first.code, Some(0), "{first}");
    let canary = json!({"vars": {"ring": "canary"}});
    assert_eq!(
        w.call("POST", "/director/host?name=node-72.example", canary)
            .0,
        200
    );
    w.allow_df();
    let held = |i: usize| w.agents[i].held()["checksum"].clone();
    let before = (held(0), held(1));

    let dry = deploy(&url, Password::Env(PASSWORD), &["--dry-run"]);
    assert_eq!(dry.code, Some(0), "{dry}");
    let row = dry
        .stdout
        .lines()
        .find(|l| l.starts_with("node-72.example"))
        .unwrap_or_else(|| panic!("no row for node-72:\n{dry}"));
    assert!(row.contains("push") && row.contains("update"), "{row}");
    assert!(row.contains("+ df: /usr/bin/df"), "{row}");
    assert!(
        dry.stdout
            .contains("2 to update, 0 to revoke, 0 to skip: would-deploy"),
        "{dry}"
    );
    assert_eq!((held(0), held(1)), before, "a dry run pushed");
    let (_, list) = w.call("GET", "/director/config/deployments", json!({}));
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "{list}");

    let typo = deploy(
        &url,
        Password::Env(PASSWORD),
        &["--hosts", "var.ring=canary"],
    );
    assert_eq!(typo.code, Some(2), "{typo}");
    assert!(typo.stderr.contains("not a host filter"), "{typo}");

    let partial = deploy(
        &url,
        Password::Env(PASSWORD),
        &["--hosts", "vars.ring=canary", "--wait"],
    );
    assert_eq!(partial.code, Some(0), "{partial}");
    assert_eq!(partial.count("deployed"), Some(1), "{partial}");
    assert_ne!(held(0), before.0, "the canary got it");
    assert_eq!(held(1), before.1, "the other host did not");
}
