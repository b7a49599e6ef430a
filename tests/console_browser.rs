//! The web console in a real browser: headless Chromium (Debian's
//! `chromium`) drives a live `steward serve` with real agents on their own
//! loopback addresses (127.0.0.110 to .112). It signs in, sees the fleet,
//! opens a host and a template, runs the dry run, deploys through the form
//! in two stages (one host, a pause of a few seconds, the rest) and watches
//! the deployment live: between the stages, the first stage's results shown
//! while it still runs (`deployment-live.png`), then its end (one agent is
//! down: its error shows). Then it sees a reader's and a restricted user's
//! view, and keeps a screenshot of each page in `target/ui-screenshots/`.
//!
//! The driving is `tests/console/browser.py` (the DevTools protocol over a
//! pipe, Python's standard library only). Without `chromium` on the PATH
//! when the tests were built, the test is built as ignored (see
//! `build.rs`): a run reports it as skipped, never as passed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Agent, Server};

const PASSWORD: &str = "console-admin-Pa55word";
const READER: (&str, &str) = ("watcher", "watcher-Pa55word");
const RESTRICTED: (&str, &str) = ("webops", "webops-Pa55word");

fn call(server: &Server, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = server.call(method, path, &body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {answer}"
    );
    answer
}

/// Polls deployment `id` until it is no longer running.
fn finished(server: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = call(
            server,
            "GET",
            &format!("/director/config/deployment?id={id}"),
            json!({}),
        );
        if d["status"] != json!("running") {
            return d;
        }
        assert!(Instant::now() < deadline, "deployment {id} runs on: {d}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[cfg_attr(
    not(steward_chromium_tests),
    ignore = "chromium was not on the PATH when the tests were built (apt-get install chromium)"
)]
fn the_console_in_a_real_browser() {
    let server = Server::start(PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    for script in [
        json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        json!({"object_name": "df", "command": "/usr/bin/df", "arguments": ["-h"]}),
    ] {
        call(&server, "POST", "/director/script", script);
    }
    let template = json!({"object_name": "agents", "object_type": "template",
        "has_agent": true, "scripts": ["uptime"], "vars": {"owner": "<script>alert(1)</script>"}});
    call(&server, "POST", "/director/host", template);
    let key = call(
        &server,
        "POST",
        "/director/host/api-key?name=agents",
        json!({}),
    )["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut agents = Vec::new();
    for octet in [110u8, 111, 112] {
        let mut agent = Agent::register(
            &server.url(),
            &key,
            &format!("node-{octet}.example"),
            &format!("127.0.0.{octet}"),
            dir.path().join(format!("agent-{octet}")),
            None,
        );
        agent.start();
        agents.push(agent);
    }
    // Every agent holds its allowlist; then a change is pending.
    let first = call(
        &server,
        "POST",
        "/director/config/deploy?wait=30",
        json!({}),
    );
    let first = finished(&server, first["id"].as_i64().unwrap());
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    call(
        &server,
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    call(
        &server,
        "POST",
        "/director/user",
        json!({"object_name": READER.0, "password": READER.1, "role": "reader"}),
    );
    call(
        &server,
        "POST",
        "/director/user",
        json!({"object_name": RESTRICTED.0, "password": RESTRICTED.1, "role": "operator",
               "restrictions": ["node-110.*", "node-111.*"]}),
    );
    // One agent down: the deploy finds it unreachable.
    agents[2].stop();

    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.py");
    // The screenshots checked below are this run's, none left from another.
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = Command::new("python3")
        .arg(&script)
        .args(["--url", &format!("{}/ui/", server.url())])
        .args(["--admin", &format!("admin:{PASSWORD}")])
        .args(["--reader", &format!("{}:{}", READER.0, READER.1)])
        .args([
            "--restricted",
            &format!("{}:{}", RESTRICTED.0, RESTRICTED.1),
        ])
        .args([
            "--visible",
            "node-110.example",
            "--hidden",
            "node-112.example",
        ])
        .args(["--template", "agents", "--unreachable", "node-112.example"])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("python3 runs the browser script");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}{stderr}");
    println!("screenshots: {}", out_dir.display());
    assert_ne!(
        run.status.code(),
        Some(77),
        "chromium was found at build time but not now:\n{stdout}"
    );
    assert!(
        run.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}\n--- server log\n{}",
        server.log()
    );
    for page in [
        "fleet",
        "host",
        "template",
        "pending",
        "deployment-live",
        "deployment",
        "restricted-fleet",
    ] {
        let shot = out_dir.join(format!("{page}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "{} is not a screenshot",
            shot.display()
        );
    }
    // Nothing the browser did put a password in the server's log.
    let log = server.log();
    for secret in [PASSWORD, READER.1, RESTRICTED.1] {
        assert!(!log.contains(secret), "a password reached the log");
    }
}
