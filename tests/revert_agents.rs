//! Undo with real agents: a deployment, changes of every kind, another
//! deployment, `steward revert --to` the first deployment's activity
//! entry, and a third deployment leave every agent (on its own loopback
//! address, 127.0.0.90 to .92) holding exactly what it held after the
//! first. And `steward revert` as a script sees it: its table and its exit
//! codes.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use support::{Agent, STEWARD, Server};

const PASSWORD: &str = "revert-admin-Pa55word";

/// `steward revert ARGS` against `server` as admin.
fn steward_revert(server: &Server, args: &[&str], password: &str) -> Output {
    Command::new(STEWARD)
        .arg("revert")
        .args(["--server", &server.url()])
        .args(args)
        .env("STEWARD_PASSWORD", password)
        .env_remove("STEWARD_USER")
        .env_remove("STEWARD_SERVER")
        .stdin(Stdio::null())
        .output()
        .expect("runs steward revert")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(server: &Server, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = server.call(method, path, &body);
    assert!(
        (200..300).contains(&status),
        "{method} {path} {body}: {status} {answer}"
    );
    answer
}

/// Deploys and waits for the end: the deployment's details.
fn deploy(server: &Server) -> Value {
    let started = ok(server, "POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(started["status"], json!("succeeded"), "{started}");
    let id = started["id"]
        .as_i64()
        .or_else(|| started["deployment_id"].as_i64())
        .expect("a deployment id");
    ok(
        server,
        "GET",
        &format!("/director/config/deployment?id={id}"),
        json!({}),
    )
}

/// A server with scripts `uptime` and `df`, a template `agents` allowing
/// `uptime`, and three agents registered from it.
fn world(dir: &std::path::Path) -> (Server, Vec<Agent>) {
    let server = Server::start(PASSWORD);
    ok(
        &server,
        "POST",
        "/director/script",
        json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
    );
    ok(
        &server,
        "POST",
        "/director/script",
        json!({"object_name": "df", "command": "/usr/bin/df", "arguments": ["-h"]}),
    );
    ok(
        &server,
        "POST",
        "/director/host",
        json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]}),
    );
    let key = ok(
        &server,
        "POST",
        "/director/host/api-key?name=agents",
        json!({}),
    )["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut agents = Vec::new();
    for i in 0..3 {
        let mut agent = Agent::register(
            &server.url(),
            &key,
            &format!("node-{i}.example"),
            &format!("127.0.0.{}", 90 + i),
            dir.join(format!("agent-{i}")),
            None,
        );
        agent.start();
        agents.push(agent);
    }
    (server, agents)
}

/// What each agent holds: its checksum and its scripts.
fn held(agents: &[Agent]) -> Vec<(Value, Value)> {
    agents
        .iter()
        .map(|a| {
            let h = a.held();
            (h["checksum"].clone(), h["scripts"].clone())
        })
        .collect()
}

#[test]
fn reverting_to_a_deployments_entry_and_deploying_gives_every_agent_what_it_held_then() {
    let dir = tempfile::tempdir().unwrap();
    let (server, agents) = world(dir.path());
    let first = deploy(&server);
    let then = held(&agents);
    let n = first["activity_id"]
        .as_i64()
        .expect("the deployment's activity_id");
    assert!(then.iter().all(|(c, _)| c.is_string()), "{then:?}");

    // Changes of every kind: a template, renames, a delete, creates.
    ok(
        &server,
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    ok(
        &server,
        "POST",
        "/director/script?name=uptime",
        json!({"object_name": "load", "timeout": 5}),
    );
    ok(
        &server,
        "POST",
        "/director/script?name=df",
        json!({"arguments": ["-h", "-T"]}),
    );
    ok(
        &server,
        "POST",
        "/director/host",
        json!({"object_name": "extra", "object_type": "template", "scripts": ["df"]}),
    );
    ok(
        &server,
        "POST",
        "/director/host?name=node-1.example",
        json!({"imports": ["agents", "extra"]}),
    );
    ok(
        &server,
        "POST",
        "/director/host?name=node-0.example",
        json!({"object_name": "node-0b.example"}),
    );
    ok(
        &server,
        "DELETE",
        "/director/host?name=node-2.example",
        json!({}),
    );
    deploy(&server);
    let changed = held(&agents);
    for (i, (was, now)) in then.iter().zip(&changed).enumerate() {
        assert_ne!(was.0, now.0, "agent {i} got the changes");
    }
    assert_eq!(
        changed[2].1,
        json!([]),
        "the deleted host's agent holds nothing"
    );

    // A dry run first: it lists the changes and makes none.
    let to = n.to_string();
    let dry = steward_revert(&server, &["--to", &to, "--dry-run"], PASSWORD);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    let table = text(&dry.stdout);
    assert!(table.contains("dry run: "), "{table}");
    assert!(
        table.contains("node-0b.example -> node-0.example"),
        "{table}"
    );
    let (status, _) = server.call("GET", "/director/host?name=node-0b.example", &json!({}));
    assert_eq!(status, 200, "the dry run changed nothing");

    let done = steward_revert(&server, &["--to", &to], PASSWORD);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains(" changes made"),
        "{}",
        text(&done.stdout)
    );

    deploy(&server);
    assert_eq!(held(&agents), then, "every agent holds what it held then");
}

#[test]
fn steward_revert_exits_4_on_a_conflict_2_on_an_unknown_entry_and_3_when_refused() {
    let server = Server::start(PASSWORD);
    ok(
        &server,
        "POST",
        "/director/host",
        json!({"object_name": "web-1", "address": "127.0.0.1"}),
    );
    ok(
        &server,
        "POST",
        "/director/host?name=web-1",
        json!({"address": "127.0.0.2"}),
    );
    let newest = |server: &Server| {
        ok(server, "GET", "/director/activity?limit=1", json!({}))["objects"][0]["id"]
            .as_i64()
            .unwrap()
    };
    let first_change = newest(&server);
    ok(
        &server,
        "POST",
        "/director/host?name=web-1",
        json!({"address": "127.0.0.3"}),
    );
    let id = first_change.to_string();

    let conflict = steward_revert(&server, &["--id", &id], PASSWORD);
    assert_eq!(
        conflict.status.code(),
        Some(4),
        "{}",
        text(&conflict.stderr)
    );
    assert!(
        text(&conflict.stderr).contains("address"),
        "{}",
        text(&conflict.stderr)
    );

    let unknown = steward_revert(&server, &["--id", "999999"], PASSWORD);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown.stderr));
    assert!(
        text(&unknown.stderr).contains("No activity entry 999999"),
        "{}",
        text(&unknown.stderr)
    );

    let refused = steward_revert(&server, &["--id", &id], "not-the-password");
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));

    let usage = Command::new(STEWARD)
        .args([
            "revert",
            "--server",
            &server.url(),
            "--id",
            "1",
            "--to",
            "1",
        ])
        .env("STEWARD_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "--id and --to together");

    let latest = newest(&server).to_string();
    let undone = steward_revert(&server, &["--id", &latest], PASSWORD);
    assert_eq!(undone.status.code(), Some(0), "{}", text(&undone.stderr));
    assert!(
        text(&undone.stdout).contains("modify  host    web-1"),
        "{}",
        text(&undone.stdout)
    );
    let web = ok(&server, "GET", "/director/host?name=web-1", json!({}));
    assert_eq!(web["address"], json!("127.0.0.2"));
}
