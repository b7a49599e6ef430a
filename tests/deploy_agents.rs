//! Deploying to real agent processes on loopback addresses: every agent
//! gets its own address (127.0.0.x) and verifies what it receives.

#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "deploy_agents/staged.rs"]
mod staged;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{
    Agent, Killed, STEWARD, Server, ServerOptions, agent_binary, basic, free_port, http,
};

const PASSWORD: &str = "deploy-admin-password";

struct World {
    admin: String,
    servers: Vec<Server>,
    dir: tempfile::TempDir,
    agents: Vec<Agent>,
}

impl World {
    fn call(&self, method: &str, path: &str, body: Value) -> (u16, Value) {
        self.call_on(0, method, path, body)
    }

    fn call_on(&self, server: usize, method: &str, path: &str, body: Value) -> (u16, Value) {
        http(
            &self.servers[server].addr,
            method,
            path,
            Some(&self.admin),
            &body.to_string(),
        )
    }

    /// Polls a deployment until it is no longer running.
    fn finished(&self, server: usize, id: i64, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (_, d) = self.call_on(
                server,
                "GET",
                &format!("/director/config/deployment?id={id}"),
                json!({}),
            );
            if d["status"] != json!("running") && d["status"] != Value::Null {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "deployment {id} did not finish: {d}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// How a world is built.
#[derive(Default)]
struct Setup {
    agents: usize,
    /// The reload command of agent i (a `sleep` makes it slow).
    reload: Option<fn(usize) -> String>,
    /// A PostgreSQL database for every server (SQLite in the data directory otherwise).
    database: Option<String>,
    /// Servers on the same database (more than one needs PostgreSQL).
    replicas: usize,
}

fn world(agents: usize) -> World {
    build(Setup {
        agents,
        ..Setup::default()
    })
}

fn build(setup: Setup) -> World {
    let dir = tempfile::tempdir().unwrap();
    let admin = basic("admin", PASSWORD);
    let mut w = World {
        admin,
        servers: Vec::new(),
        dir,
        agents: Vec::new(),
    };
    for i in 0..setup.replicas.max(1) {
        let data = w.dir.path().join(format!("data-{i}"));
        if i > 0 {
            // Replicas sign with the same key.
            std::fs::create_dir_all(&data).unwrap();
            let first = w.dir.path().join("data-0");
            std::fs::copy(first.join("signing.key"), data.join("signing.key")).unwrap();
        }
        w.servers.push(Server::with(ServerOptions {
            database: setup.database.clone(),
            data: Some(data),
            ..ServerOptions::admin(PASSWORD)
        }));
    }
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
    for i in 0..setup.agents {
        let mut agent = Agent::register(
            &format!("http://{}", w.servers[0].addr),
            &key,
            &format!("node-{i}.example"),
            &format!("127.0.0.{}", 30 + i),
            w.dir.path().join(format!("agent-{i}")),
            setup.reload.map(|r| r(i)),
        );
        agent.start();
        w.agents.push(agent);
    }
    w
}

/// A fresh PostgreSQL database on the server `STEWARD_TEST_DATABASE_URL`
/// names, dropped when the guard is (after the servers that use it, when
/// it is declared before them). The tests that need one are ignored
/// (reported as skipped) when it was not set at build time (see
/// `build.rs`), and fail when run without it.
struct FreshPostgres {
    /// The database's URL.
    url: String,
    /// The server's URL, to drop it from.
    server: String,
    name: String,
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        postgres(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the PostgreSQL server at `url`.
fn postgres(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let conn = Database::connect(url).await.expect("PostgreSQL");
        conn.execute_raw(Statement::from_string(
            conn.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .expect(sql);
        conn.close().await.ok();
    });
}

fn fresh_postgres() -> FreshPostgres {
    let server = std::env::var("STEWARD_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("STEWARD_TEST_DATABASE_URL is not set: a PostgreSQL test cannot run");
    let name = format!("steward_r_{}", uuid::Uuid::new_v4().simple());
    postgres(&server, &format!("CREATE DATABASE {name}"));
    let (base, query) = server
        .split_once('?')
        .map_or((server.as_str(), None), |(b, q)| (b, Some(q)));
    let root = &base[..base.rfind('/').expect("a database in the URL")];
    let url = match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    };
    FreshPostgres { url, server, name }
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
    let mut w = world(20);

    let (status, result) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["status"], json!("succeeded"), "{result}");
    assert_eq!(result["counts"]["deployed"], json!(20));
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
        (json!(19), json!(1))
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
        (json!(1), json!(19))
    );
    // Every agent got exactly two pushes: the first deployment's and the
    // template change's (the one that was down got it from the third).
    let pushes: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    assert_eq!(pushes, [2; 20]);
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
    // The configuration without that host (its agent confirmed the empty
    // list) is new: it is recorded once, with nothing pushed, then unchanged.
    let pushed: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    let (_, settled) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(settled["status"], json!("succeeded"), "{settled}");
    assert_eq!(settled["counts"]["skipped"], json!(19), "{settled}");
    assert_eq!(
        w.agents.iter().map(Agent::pushes).collect::<Vec<_>>(),
        pushed
    );
    let (_, again) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(again["status"], json!("unchanged"), "{again}");

    // Serials only grow; every deployment is listed, newest first.
    let list = w.call("GET", "/director/config/deployments", json!({})).1;
    let ids: Vec<i64> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [5, 4, 3, 2, 1]);
    let log = w
        .call(
            "GET",
            "/director/activity?object_type=deployment",
            json!({}),
        )
        .1;
    assert_eq!(
        log["objects"].as_array().unwrap().len(),
        10,
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

/// A long poll with `If-None-Match`: the status.
fn poll(addr: &str, path: &str, key: &str, etag: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {key}\r\nIf-None-Match: {etag}\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `reload` commands that make agent i take 0.4 * (i + 1) seconds per new
/// allowlist.
fn slow(i: usize) -> String {
    format!("sleep {}", 0.4 * (i as f64 + 1.0))
}

#[test]
fn a_server_stopped_while_pushing_answers_waiting_requests_and_hands_the_deployment_over_at_once() {
    let mut w = build(Setup {
        agents: 4,
        reload: Some(slow),
        ..Setup::default()
    });
    let (status, started) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{started}");
    let id = started["deployment_id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    // Two requests waiting: a deploy joining the running one, and a long
    // poll of an allowlist the agent is said to hold already.
    let (_, running) = w.call(
        "GET",
        &format!("/director/config/deployment?id={id}"),
        json!({}),
    );
    let node0 = running["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == json!("node-0.example"))
        .unwrap()
        .clone();
    let etag = format!(
        "\"{}-{}\"",
        node0["checksum"].as_str().unwrap(),
        node0["serial"]
    );
    let host_key = agent_state(&w.agents[0])["host_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let addr = w.servers[0].addr.clone();
    let admin = w.admin.clone();
    let joined = std::thread::spawn({
        let addr = addr.clone();
        move || {
            http(
                &addr,
                "POST",
                "/director/config/deploy?wait=60",
                Some(&admin),
                "[]",
            )
        }
    });
    let polled = std::thread::spawn(move || {
        poll(
            &addr,
            "/director/self-service/allowlist?wait=60",
            &host_key,
            &etag,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    // SIGTERM: the waiting requests are answered at once, the pushes in
    // flight end and are recorded, the lease is given up, exit 0.
    let signalled = Instant::now();
    let mut process = w.servers[0].terminate();
    let (status, body) = joined.join().unwrap();
    assert_eq!(
        (status, body["status"].clone()),
        (202, json!("running")),
        "{body}"
    );
    assert_eq!(polled.join().unwrap(), 304);
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "waiting requests were held: {:?}",
        signalled.elapsed()
    );
    let exit = process.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    let stopped_at = Instant::now();
    w.servers[0].restart();
    let done = w.finished(0, id, Duration::from_secs(60));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(done["counts"]["deployed"], json!(4), "{done}");
    // Taken over at the restart, not when a lease ran out (6 s).
    assert!(
        stopped_at.elapsed() < Duration::from_secs(5),
        "the deployment waited for its lease to run out: {:?}",
        stopped_at.elapsed()
    );
}

#[test]
fn a_server_killed_while_pushing_to_slow_agents_finishes_the_deployment_after_restart() {
    let mut w = build(Setup {
        agents: 6,
        reload: Some(slow),
        ..Setup::default()
    });
    let (status, started) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{started}");
    let id = started["deployment_id"].as_i64().unwrap();
    // The fastest agents have answered, the slowest are still reloading.
    std::thread::sleep(Duration::from_millis(1200));
    w.servers[0].kill();
    let before: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    assert_eq!(before, [1; 6], "every agent got its push before the kill");

    w.servers[0].restart();
    let done = w.finished(0, id, Duration::from_secs(60));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(done["counts"]["deployed"], json!(6), "{done}");
    for (i, agent) in w.agents.iter().enumerate() {
        assert_eq!(
            agent.held()["checksum"],
            checksum_of(&w, &format!("node-{i}.example"))
        );
    }
    // Only the pushes whose answers the killed server never recorded were
    // made again (the agents answered those as held already).
    let after: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    assert!(after.iter().all(|n| (1..=2).contains(n)), "{after:?}");
    assert_eq!(after[0], 1, "the fastest agent was pushed twice: {after:?}");
    assert_eq!(
        after[5], 2,
        "the slowest agent was not pushed again: {after:?}"
    );
    let log = w
        .call(
            "GET",
            "/director/activity?object_type=deployment",
            json!({}),
        )
        .1;
    let actions: Vec<&str> = log["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "deploy-end").count(),
        1,
        "{actions:?}"
    );
}

#[test]
#[cfg_attr(
    not(steward_postgres_tests),
    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
)]
fn two_replicas_on_postgresql_push_each_host_once_and_take_over_a_dead_one() {
    let database = fresh_postgres();
    let mut w = build(Setup {
        agents: 6,
        reload: Some(slow),
        database: Some(database.url.clone()),
        replicas: 2,
    });
    // Started on replica 0; replica 1 joins it rather than running it too.
    let (status, started) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{started}");
    let id = started["deployment_id"].as_i64().unwrap();
    let (status, joined) = w.call_on(1, "POST", "/director/config/deploy", json!([]));
    assert_eq!(
        (status, joined["deployment_id"].as_i64()),
        (202, Some(id)),
        "{joined}"
    );
    let done = w.finished(1, id, Duration::from_secs(60));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    let pushes: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    assert_eq!(pushes, [1; 6], "every host is pushed once");

    // Replica 0 dies while pushing; replica 1 takes the deployment over.
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    let (status, second) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{second}");
    let id = second["deployment_id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    w.servers[0].kill();
    let done = w.finished(1, id, Duration::from_secs(60));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(done["counts"]["deployed"], json!(6), "{done}");
    for agent in &w.agents {
        assert_eq!(agent.held()["scripts"].as_array().unwrap().len(), 2);
    }
    let pushes: Vec<usize> = w.agents.iter().map(Agent::pushes).collect();
    assert!(pushes.iter().all(|n| (2..=3).contains(n)), "{pushes:?}");
}

/// Registers a node the server cannot reach (nothing listens at `ip`) as
/// `name` and starts `steward-agent pull --wait 5` for it; answers its
/// state directory and the running puller.
fn start_puller(w: &World, ip: &str, name: &str) -> (PathBuf, Killed) {
    let port = free_port(ip);
    pull_agent(
        w,
        PullAgent {
            server: 0,
            ip,
            port,
            name,
            pull: false,
            wait: 5,
        },
    )
}

/// How [`pull_agent`] registers and starts a pulling agent.
struct PullAgent<'a> {
    /// The server it registers with and pulls from.
    server: usize,
    ip: &'a str,
    port: u16,
    name: &'a str,
    /// `register --pull`: the server never pushes to it.
    pull: bool,
    wait: u64,
}

fn pull_agent(w: &World, a: PullAgent) -> (PathBuf, Killed) {
    let (ip, name) = (a.ip, a.name);
    let state = w.dir.path().join(name);
    let (_, key) = w.call("POST", "/director/host/api-key?name=agents", json!({}));
    let mut register = Command::new(agent_binary());
    register
        .args([
            "register",
            "--server",
            &format!("http://{}", w.servers[a.server].addr),
        ])
        .args(["--key", key["api_key"].as_str().unwrap()])
        .args(["--name", name, "--address", ip])
        .args(["--agent-port", &a.port.to_string()])
        .arg("--state-dir")
        .arg(&state);
    if a.pull {
        register.arg("--pull");
    }
    let out = register.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::File::create(w.dir.path().join(format!("{name}.log"))).unwrap();
    let puller = Killed(
        Command::new(agent_binary())
            .args(["pull", "--wait", &a.wait.to_string(), "--state-dir"])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    (state, puller)
}

/// The allowlist an agent's state directory holds.
fn held(state: &Path) -> Value {
    std::fs::read_to_string(state.join("allowlist.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// The allowlist held in `state` once `wanted` holds for it, or the last
/// one seen after 10 s. A pulling agent's fetch counts as confirmed when
/// the server answers it: the agent writes what it fetched a moment later.
fn held_once(state: &Path, wanted: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now = held(state);
        if wanted(&now) || started.elapsed() > Duration::from_secs(10) {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `steward-agent check` on a state directory: its exit code.
fn check(state: &Path, args: &[&str]) -> Option<i32> {
    Command::new(agent_binary())
        .args(["check", "--state-dir"])
        .arg(state)
        .args(args)
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn a_pulling_agent_converges_within_one_wait_and_counts_as_deployed() {
    let w = world(1);
    let (state, _puller) = start_puller(&w, "127.0.0.60", "puller.example");

    // The first deployment: the pushes to it fail, its fetch counts.
    let (_, first) = w.call("POST", "/director/config/deploy", json!([]));
    let id = first["deployment_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let d = w.finished(0, id, Duration::from_secs(30));
        if d["status"] == json!("succeeded") || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(done["counts"]["deployed"], json!(2), "{done}");
    let expected = checksum_of(&w, "puller.example");
    assert_eq!(
        held_once(&state, |h| h["checksum"] == expected)["checksum"],
        expected
    );

    // A change: the deployment waits for the pulling agent's fetch, which
    // comes within the wait it is already in.
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    let (_, second) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(second["status"], json!("succeeded"), "{second}");
    let puller = second["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == json!("puller.example"))
        .unwrap()
        .clone();
    assert_eq!(puller["result"], json!("deployed"), "{puller}");
    assert!(
        holds(&state, 2, Duration::from_secs(10)).is_some(),
        "{}",
        held(&state)
    );
    let check = Command::new(agent_binary())
        .args(["check", "--state-dir"])
        .arg(&state)
        .args(["df", "-h"])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "/usr/bin/df -h"
    );
    let preview = w
        .call(
            "GET",
            "/director/host/allowlist?name=puller.example",
            json!({}),
        )
        .1;
    assert_eq!(
        preview["confirmed"]["checksum"], preview["checksum"],
        "{preview}"
    );
    let (_, settled) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(settled["status"], json!("unchanged"), "{settled}");

    // `--once` with the newest held: exit 0 after one 304.
    let once = Command::new(agent_binary())
        .args(["pull", "--once", "--wait", "0", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(
        once.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&once.stderr)
    );
}

#[test]
fn a_deleted_hosts_pulling_agent_gets_its_empty_allowlist_and_then_its_key_is_revoked() {
    let w = world(0);
    let (state, _puller) = start_puller(&w, "127.0.0.61", "leaver.example");
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    assert_eq!(check(&state, &["uptime"]), Some(0));
    let host_key = std::fs::read_to_string(state.join("state.json")).unwrap();
    let host_key: Value = serde_json::from_str(&host_key).unwrap();
    let host_key = host_key["host_key"]
        .as_str()
        .expect("a host key")
        .to_owned();

    let (status, _) = w.call("DELETE", "/director/host?name=leaver.example", json!({}));
    assert_eq!(status, 200);
    // The deleted host's key is good for nothing else now.
    let addr = &w.servers[0].addr;
    let (status, _) = http(
        addr,
        "GET",
        &format!("/director/self-service/agent-config?key={host_key}"),
        None,
        "",
    );
    assert_eq!(status, 403);

    let (_, second) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(second["status"], json!("succeeded"), "{second}");
    assert_eq!(second["counts"]["deployed"], json!(1), "{second}");
    assert_eq!(
        held_once(&state, |h| h["scripts"] == json!([]))["scripts"],
        json!([])
    );
    assert_eq!(check(&state, &["uptime"]), Some(1));

    // Holding the empty allowlist, the agent needs its key no more.
    let (status, _) = http(
        addr,
        "GET",
        &format!("/director/self-service/allowlist?key={host_key}"),
        None,
        "",
    );
    assert_eq!(status, 403);
    // The configuration without that host (its agent confirmed the empty
    // list) is new: it is recorded once, with nothing pushed, then unchanged.
    let (_, settled) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(settled["status"], json!("succeeded"), "{settled}");
    assert_eq!(settled["counts"]["deployed"], json!(0), "{settled}");
    let (_, again) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(again["status"], json!("unchanged"), "{again}");
}

fn steward_key(w: &World, action: &str) -> String {
    let out = Command::new(STEWARD)
        .args(["key", action, "--data-dir"])
        .arg(&w.servers[0].data)
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn agent_state(agent: &Agent) -> Value {
    serde_json::from_str(&std::fs::read_to_string(agent.state.join("state.json")).unwrap()).unwrap()
}

#[test]
fn agents_follow_a_key_rotation_announced_in_a_signed_allowlist() {
    let mut w = world(2);
    let old = steward_key(&w, "show");
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");

    // Agent 1 is down while the next key is announced.
    w.agents[1].process = None;
    let rotated = steward_key(&w, "rotate");
    let next = rotated.trim().strip_prefix("next  ").unwrap().to_owned();
    let (_, announced) = w.call("POST", "/director/config/deploy?force=1&wait=60", json!([]));
    assert_eq!(announced["status"], json!("partial"), "{announced}");
    let state = agent_state(&w.agents[0]);
    assert!(state["next_server_key"].is_string(), "{state}");
    let bearer = format!("Bearer {}", state["host_key"].as_str().unwrap());
    let config = || {
        http(
            &w.servers[0].addr,
            "GET",
            "/director/self-service/agent-config",
            Some(&bearer),
            "",
        )
        .1
    };
    assert_eq!(config()["signing_key"]["next"]["fingerprint"], json!(next));
    assert_eq!(
        state["server_fingerprint"].as_str(),
        old.trim().strip_prefix("key   ")
    );

    // Promoted: the agent that heard the announcement follows, the one that
    // did not refuses allowlists signed by a key it never trusted.
    w.agents[1].start();
    let promoted = steward_key(&w, "promote");
    assert_eq!(promoted.trim(), format!("key   {next}"));
    let (_, after) = w.call("POST", "/director/config/deploy?force=1&wait=60", json!([]));
    let result = |host: &str| -> Value {
        after["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == json!(host))
            .unwrap()
            .clone()
    };
    assert_eq!(
        result("node-0.example")["result"],
        json!("deployed"),
        "{after}"
    );
    let refused = result("node-1.example");
    assert_eq!(refused["result"], json!("failed"), "{after}");
    assert!(
        refused["error"].as_str().unwrap().starts_with("403"),
        "{refused}"
    );
    let state = agent_state(&w.agents[0]);
    assert_eq!(state["server_fingerprint"], json!(next), "{state}");
    assert!(state.get("next_server_key").is_none(), "{state}");
    assert_eq!(steward_key(&w, "show").trim(), format!("key   {next}"));
    let config = config();
    assert_eq!(
        config["signing_key"]["fingerprint"],
        json!(next),
        "{config}"
    );
    assert!(config["signing_key"].get("next").is_none(), "{config}");
}

/// The allowlist document an agent keeps on disk.
fn held_document(agent: &Agent) -> Value {
    serde_json::from_str(&std::fs::read_to_string(agent.state.join("allowlist.json")).unwrap())
        .unwrap()
}

#[test]
fn a_node_registered_afresh_refuses_an_older_validly_signed_allowlist() {
    let mut w = world(1);
    let host = "node-0.example";
    // Serial 1 lets the host run df; serial 2 takes df away.
    w.call(
        "POST",
        &format!("/director/host?name={host}"),
        json!({"scripts": ["df"]}),
    );
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    let old = held_document(&w.agents[0]);
    assert!(old["scripts"].to_string().contains("/usr/bin/df"), "{old}");
    w.call(
        "POST",
        &format!("/director/host?name={host}"),
        json!({"scripts": null}),
    );
    let (_, second) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(second["status"], json!("succeeded"), "{second}");
    let current = held_document(&w.agents[0]);
    assert!(current["serial"].as_i64() > old["serial"].as_i64());

    // The node is reinstalled: its state is gone, its host key revoked, and
    // it registers again with the template key (the host is adopted).
    let agent = &mut w.agents[0];
    agent.stop();
    std::fs::remove_dir_all(&agent.state).unwrap();
    let (status, _) = w.call(
        "DELETE",
        &format!("/director/host/api-key?name={host}"),
        json!({}),
    );
    assert_eq!(status, 200);
    let (_, key) = w.call("POST", "/director/host/api-key?name=agents", json!({}));
    let agent = &mut w.agents[0];
    let out = Command::new(agent_binary())
        .args([
            "register",
            "--server",
            &format!("http://{}", w.servers[0].addr),
        ])
        .args(["--key", key["api_key"].as_str().unwrap(), "--name", host])
        .args([
            "--address",
            &agent.ip,
            "--agent-port",
            &agent.port.to_string(),
        ])
        .arg("--state-dir")
        .arg(&agent.state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(agent_state(agent)["serial_floor"], current["serial"]);
    agent.start();

    // The old allowlist, replayed: refused as stale, nothing written.
    let addr = format!("{}:{}", agent.ip, agent.port);
    let (status, body) = http(&addr, "PUT", "/v1/allowlist", None, &old.to_string());
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("stale"), "{body}");
    assert!(!agent.state.join("allowlist.json").exists());
    assert_eq!(agent.held(), json!({"error": "no allowlist"}));
    // The current one is taken.
    let (status, body) = http(&addr, "PUT", "/v1/allowlist", None, &current.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["serial"], current["serial"]);
}

/// Counts the connections made to `ip:port` (and closes each at once).
fn connection_counter(ip: &str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (port, count)
}

/// Waits until the state directory holds an allowlist with `scripts` scripts.
fn holds(state: &Path, scripts: usize, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if held(state)["scripts"].as_array().map(Vec::len) == Some(scripts) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_pull_hosts_agent_is_woken_by_a_deploy_and_never_pushed_to() {
    let w = world(0);
    // Something listens at the agent's address, and counts: no connection
    // may ever come.
    let (port, connections) = connection_counter("127.0.0.62");
    let (state, _puller) = pull_agent(
        &w,
        PullAgent {
            server: 0,
            ip: "127.0.0.62",
            port,
            name: "nat.example",
            pull: true,
            wait: 60,
        },
    );
    let preview = w
        .call(
            "GET",
            "/director/host/allowlist?name=nat.example",
            json!({}),
        )
        .1;
    assert_eq!(preview["delivery"], json!("pull"), "{preview}");
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    assert_eq!(first["hosts"][0]["delivery"], json!("pull"), "{first}");
    assert!(holds(&state, 1, Duration::from_secs(10)).is_some());

    // The agent waits in a 60 s long poll: the deploy wakes it, long
    // before that wait would end (its own timeouts are not the measure:
    // the kit's pull farm is).
    std::thread::sleep(Duration::from_millis(500));
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    let (status, _) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202);
    let took = holds(&state, 2, Duration::from_secs(30));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(20)),
        "woken after {took:?}, not by the deploy"
    );
    let (_, again) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(again["status"], json!("unchanged"), "{again}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server connected to a pull host's agent"
    );
}

/// Turns PostgreSQL's notification of new deployments off or on (as if
/// they were lost).
fn issued_notifications(database: &str, on: bool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sea_orm::{ConnectionTrait, Database, Statement};
        let conn = Database::connect(database).await.expect("PostgreSQL");
        let verb = if on { "ENABLE" } else { "DISABLE" };
        conn.execute_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("ALTER TABLE deployments {verb} TRIGGER deployments_issued_notify"),
        ))
        .await
        .expect("alter trigger");
        conn.close().await.ok();
    });
}

#[test]
#[cfg_attr(
    not(steward_postgres_tests),
    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
)]
fn a_deploy_on_one_replica_wakes_an_agent_pulling_from_the_other() {
    let database = fresh_postgres();
    let mut w = build(Setup {
        agents: 0,
        database: Some(database.url.clone()),
        replicas: 2,
        ..Setup::default()
    });
    // Replica 1 looks for lost notifications every 2 s.
    w.servers[1]
        .options()
        .args
        .extend(["--catch-up-every".into(), "2".into()]);
    w.servers[1].restart();
    let (state, _puller) = pull_agent(
        &w,
        PullAgent {
            server: 1,
            ip: "127.0.0.63",
            port: 9,
            name: "far.example",
            pull: true,
            wait: 60,
        },
    );
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    assert!(holds(&state, 1, Duration::from_secs(10)).is_some());

    // Deployed on replica 0: replica 1 is notified and wakes its agent.
    std::thread::sleep(Duration::from_millis(500));
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["uptime", "df"]}),
    );
    let (status, second) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{second}");
    let took = holds(&state, 2, Duration::from_secs(30));
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(20)),
        "woken after {took:?}"
    );
    let id = second["deployment_id"].as_i64().unwrap();
    let done = w.finished(0, id, Duration::from_secs(30));
    assert_eq!(done["status"], json!("succeeded"), "{done}");

    // The notification is lost: replica 1's catch-up finds the deployment.
    issued_notifications(&database.url, false);
    w.call(
        "POST",
        "/director/host?name=agents",
        json!({"scripts": ["df"]}),
    );
    let (status, third) = w.call("POST", "/director/config/deploy", json!([]));
    assert_eq!(status, 202, "{third}");
    let took = holds(&state, 1, Duration::from_secs(30));
    issued_notifications(&database.url, true);
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(20)),
        "woken after {took:?}"
    );
    assert_eq!(held(&state)["scripts"][0]["name"], json!("df"));
}

/// Every row of every table of a server's SQLite file, as text: equal
/// snapshots mean nothing was written in between.
fn snapshot(w: &World) -> String {
    let path = w.dir.path().join("data-0").join("steward.sqlite");
    let db =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the server's database");
    let mut tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables.retain(|t| t != "sqlite_sequence");
    let mut out = String::new();
    for table in tables {
        let mut statement = db.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns = statement.column_count();
        let mut rows: Vec<String> = statement
            .query_map([], |r| {
                Ok((0..columns)
                    .map(|i| {
                        format!("{:?}", r.get_ref(i).map(|v| v.data_type()))
                            + &format!("{:?}", r.get::<_, rusqlite::types::Value>(i))
                    })
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        out.push_str(&format!("{table}: {}\n", rows.join("\n  ")));
    }
    out
}

fn pushes(w: &World) -> Vec<usize> {
    w.agents.iter().map(Agent::pushes).collect()
}

fn dry_host<'a>(dry: &'a Value, host: &str) -> &'a Value {
    dry["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == json!(host))
        .unwrap_or_else(|| panic!("{host} in {dry}"))
}

#[test]
fn a_dry_run_shows_each_hosts_changes_and_changes_nothing() {
    let w = world(4);
    let (status, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(
        (status, first["status"].clone()),
        (200, json!("succeeded")),
        "{first}"
    );
    // A changed script, an added one, and a host leaving the deploy set.
    assert_eq!(
        w.call(
            "POST",
            "/director/script?name=uptime",
            json!({"timeout": 30})
        )
        .0,
        200
    );
    assert_eq!(
        w.call(
            "POST",
            "/director/host?name=agents",
            json!({"scripts": ["uptime", "df"]})
        )
        .0,
        200
    );
    assert_eq!(
        w.call(
            "POST",
            "/director/host?name=node-3.example",
            json!({"disabled": true})
        )
        .0,
        200
    );
    let before = (snapshot(&w), pushes(&w));

    let (status, dry) = w.call("POST", "/director/config/deploy?dry_run=1", json!([]));
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["status"], json!("would-deploy"));
    assert_eq!(
        dry["counts"],
        json!({"update": 3, "revoke": 1, "skip": 0}),
        "{dry}"
    );
    assert_eq!(dry["scope"], Value::Null);
    let (_, pending) = w.call("GET", "/director/config/pending", json!({}));
    assert_eq!(
        dry["checksum"], pending["checksum"],
        "the config a deploy would deploy"
    );
    let node0 = dry_host(&dry, "node-0.example");
    assert_eq!(node0["action"], json!("update"));
    assert_eq!(node0["delivery"], json!("push"));
    assert_eq!(node0["checksum"], checksum_of(&w, "node-0.example"));
    assert_eq!(
        node0["added"],
        json!([{"name": "df", "command": "/usr/bin/df", "arguments": ["-h"], "timeout": null}])
    );
    assert_eq!(node0["removed"], json!([]));
    assert_eq!(
        node0["changed"],
        json!([{
            "name": "uptime",
            "old": {"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": null},
            "new": {"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": 30},
        }])
    );
    let node3 = dry_host(&dry, "node-3.example");
    assert_eq!(node3["action"], json!("revoke"));
    assert_eq!(node3["added"], json!([]));
    assert_eq!(
        node3["removed"],
        json!([{"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": null}])
    );
    assert_eq!(node3["changed"], json!([]));

    // Forced, every host would be sent its allowlist; still nothing moves.
    let (_, forced) = w.call(
        "POST",
        "/director/config/deploy?dry_run=1&force=1",
        json!([]),
    );
    assert_eq!(
        forced["counts"],
        json!({"update": 3, "revoke": 1, "skip": 0})
    );
    assert_eq!(
        before,
        (snapshot(&w), pushes(&w)),
        "a dry run wrote or pushed"
    );

    // The deploy does what the dry run said, and then a dry run says so.
    let (_, done) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(done["status"], json!("succeeded"), "{done}");
    assert_eq!(done["counts"]["deployed"], json!(4));
    assert_eq!(w.agents[0].held()["checksum"], node0["checksum"]);
    assert_eq!(w.agents[3].held()["scripts"], json!([]));
    // node-3's agent holds its empty allowlist: it is no longer a deploy's
    // concern. The configuration of the other three is not on record yet,
    // so a deploy would record it, pushing nothing.
    let (_, after) = w.call("POST", "/director/config/deploy?dry_run=1", json!([]));
    assert_eq!(after["status"], json!("would-deploy"), "{after}");
    assert_eq!(
        after["counts"],
        json!({"update": 0, "revoke": 0, "skip": 3})
    );
    let pushed = pushes(&w);
    let (_, recorded) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(recorded["checksum"], after["checksum"]);
    assert_eq!(recorded["counts"]["skipped"], json!(3), "{recorded}");
    assert_eq!(pushes(&w), pushed);
    let (_, after) = w.call("POST", "/director/config/deploy?dry_run=1", json!([]));
    assert_eq!(after["status"], json!("unchanged"), "{after}");
}

#[test]
fn a_partial_deploy_pushes_to_the_matching_agents_only() {
    let w = world(4);
    let (_, first) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(first["status"], json!("succeeded"), "{first}");
    for i in [0, 2] {
        let name = format!("node-{i}.example");
        let vars = json!({"vars": {"env": "canary"}});
        assert_eq!(
            w.call("POST", &format!("/director/host?name={name}"), vars)
                .0,
            200
        );
    }
    assert_eq!(
        w.call(
            "POST",
            "/director/host?name=agents",
            json!({"scripts": ["uptime", "df"]})
        )
        .0,
        200
    );
    let before = (snapshot(&w), pushes(&w));
    // A mistyped filter or one that matches nothing changes nothing.
    let (status, typo) = w.call("POST", "/director/config/deploy?var.env=canary", json!([]));
    assert_eq!(status, 400, "{typo}");
    assert!(
        typo["error"].as_str().unwrap().contains("var.env"),
        "{typo}"
    );
    let (status, none) = w.call(
        "POST",
        "/director/config/deploy?vars.env=nowhere",
        json!([]),
    );
    assert_eq!(status, 422, "{none}");
    assert_eq!(before, (snapshot(&w), pushes(&w)));

    let (_, dry) = w.call(
        "POST",
        "/director/config/deploy?vars.env=canary&dry_run=1",
        json!([]),
    );
    assert_eq!(dry["scope"], json!("vars.env=canary"));
    assert_eq!(
        dry["counts"],
        json!({"update": 2, "revoke": 0, "skip": 0}),
        "{dry}"
    );
    let (status, partial) = w.call(
        "POST",
        "/director/config/deploy?vars.env=canary&wait=60",
        json!([]),
    );
    assert_eq!(status, 200, "{partial}");
    assert_eq!(partial["status"], json!("succeeded"), "{partial}");
    assert_eq!(partial["scope"], json!("vars.env=canary"));
    assert_eq!(partial["checksum"], dry["checksum"]);
    let hosts: Vec<&Value> = partial["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["host"])
        .collect();
    assert_eq!(hosts, [&json!("node-0.example"), &json!("node-2.example")]);
    let now = pushes(&w);
    assert_eq!(
        now.iter()
            .zip(&before.1)
            .map(|(a, b)| a - b)
            .collect::<Vec<_>>(),
        [1, 0, 1, 0],
        "only the canaries were pushed to"
    );
    assert_eq!(
        w.agents[0].held()["checksum"],
        checksum_of(&w, "node-0.example")
    );
    assert_ne!(
        w.agents[1].held()["checksum"],
        checksum_of(&w, "node-1.example")
    );

    // Director's view keeps the whole fleet's configuration active, and
    // the rest of the fleet is pending.
    let (_, status) = w.call(
        "GET",
        &format!(
            "/director/config/deployment-status?configs={},{}",
            first["checksum"].as_str().unwrap(),
            partial["checksum"].as_str().unwrap()
        ),
        json!({}),
    );
    assert_eq!(
        status["active_configuration"]["config"], first["checksum"],
        "{status}"
    );
    let (_, pending) = w.call("GET", "/director/config/pending", json!({}));
    let pending: Vec<&Value> = pending["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["host"])
        .collect();
    assert_eq!(
        pending,
        [&json!("node-1.example"), &json!("node-3.example")]
    );
    let (_, again) = w.call("POST", "/director/config/deploy?vars.env=canary", json!([]));
    assert_eq!(again["status"], json!("unchanged"), "{again}");

    // The deploy of the whole fleet sends the rest, and is the active one.
    let (_, full) = w.call("POST", "/director/config/deploy?wait=60", json!([]));
    assert_eq!(full["status"], json!("succeeded"), "{full}");
    assert_eq!(full["scope"], Value::Null);
    assert_eq!(
        (
            full["counts"]["deployed"].clone(),
            full["counts"]["skipped"].clone()
        ),
        (json!(2), json!(2))
    );
    let (_, status) = w.call("GET", "/director/config/deployment-status", json!({}));
    assert_eq!(status["active_configuration"]["config"], full["checksum"]);
}
