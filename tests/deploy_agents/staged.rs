//! Staged deploys to real agents on loopback: a refusing agent in the first
//! stage halts the deployment before the second (whose agents, pushed or
//! pulling, get nothing), resuming goes on; a server killed while a
//! deployment waits between stages, or while one is halted, finds it where
//! it was.

use super::*;

/// A node registered with the template key, not started yet.
struct Node {
    name: String,
    ip: String,
    port: u16,
    state: PathBuf,
    host_id: i64,
}

impl Node {
    /// Starts it as a pushed agent (`serve`) with more arguments.
    fn serve(&self, args: &[&str]) -> Agent {
        let mut agent = Agent {
            ip: self.ip.clone(),
            port: self.port,
            state: self.state.clone(),
            reload: None,
            process: None,
        };
        agent.start_with(args);
        agent
    }

    /// Its host key, from its state file.
    fn host_key(&self) -> String {
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(self.state.join("state.json")).unwrap())
                .unwrap();
        state["host_key"].as_str().unwrap().to_owned()
    }
}

/// Registers `count` nodes (127.0.0.`first`+i), answered in the stage order
/// (the spread order of their host ids), so a test knows which node is in
/// which stage.
fn register_nodes(w: &World, prefix: &str, first: usize, count: usize) -> Vec<Node> {
    let (_, key) = w.call("POST", "/director/host/api-key?name=agents", json!({}));
    let key = key["api_key"].as_str().unwrap().to_owned();
    let mut nodes: Vec<Node> = (0..count)
        .map(|i| {
            let ip = format!("127.0.0.{}", first + i);
            let port = free_port(&ip);
            let name = format!("{prefix}-{i}.example");
            let state = w.dir.path().join(&name);
            let out = Command::new(agent_binary())
                .args(["register", "--server", &w.servers[0].url(), "--key", &key])
                .args(["--name", &name, "--address", &ip])
                .args(["--agent-port", &port.to_string()])
                .arg("--state-dir")
                .arg(&state)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let host_id = w
                .call(
                    "GET",
                    &format!("/director/host/allowlist?name={name}"),
                    json!({}),
                )
                .1["host_id"]
                .as_i64()
                .unwrap();
            Node {
                name,
                ip,
                port,
                state,
                host_id,
            }
        })
        .collect();
    let ids: Vec<i64> = nodes.iter().map(|n| n.host_id).collect();
    let order = steward::domain::staging::spread_order(&ids);
    nodes.sort_by_key(|n| order.iter().position(|id| *id == n.host_id));
    nodes
}

/// An agent that refuses every allowlist of this fleet: its only allowed
/// directory holds none of the scripts' commands (422).
fn refusing(w: &World, node: &Node) -> Agent {
    let allowed = w.dir.path().join("nothing-allowed-here");
    std::fs::create_dir_all(&allowed).unwrap();
    node.serve(&["--allowed-dir", allowed.to_str().unwrap()])
}

/// The newest deployment's id.
fn newest(w: &World) -> i64 {
    w.call("GET", "/director/config/deployments?limit=1", json!({}))
        .1["objects"][0]["id"]
        .as_i64()
        .unwrap()
}

fn deployment(w: &World, id: i64) -> Value {
    w.call(
        "GET",
        &format!("/director/config/deployment?id={id}"),
        json!({}),
    )
    .1
}

/// Deployment `id` once stage 1 is done and the pause before the next is
/// recorded (`staging.next_stage_at`), followed by blocking queries; as
/// it is after 20 of them otherwise.
fn until_paused(w: &World, id: i64) -> Value {
    let mut seen = deployment(w, id);
    for _ in 0..20 {
        if seen["staging"]["next_stage_at"].is_string() {
            break;
        }
        seen = w
            .call(
                "GET",
                &format!(
                    "/director/config/deployment?id={id}&wait=30&since={}",
                    seen["version"].as_str().unwrap()
                ),
                json!({}),
            )
            .1;
    }
    seen
}

/// `steward deploy ARGS --server URL` as admin: exit code and standard output.
fn steward_deploy(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(STEWARD)
        .arg("deploy")
        .args(args)
        .args(["--server", &w.servers[0].url()])
        .env("STEWARD_PASSWORD", PASSWORD)
        .env_remove("STEWARD_SERVER")
        .env_remove("STEWARD_USER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_refusing_agent_in_the_first_stage_halts_the_deploy_before_the_second_and_resume_goes_on() {
    // Arrange: stage 1 is one refusing agent; stage 2 has two pushed
    // agents and a pulling one.
    let w = world(0);
    let nodes = register_nodes(&w, "staged", 70, 4);
    let refuser = refusing(&w, &nodes[0]);
    let pushed: Vec<Agent> = nodes[1..3].iter().map(|n| n.serve(&[])).collect();
    let puller = &nodes[3];
    let (status, _) = w.call(
        "POST",
        &format!("/director/host?name={}", puller.name),
        json!({"delivery": "pull"}),
    );
    assert_eq!(status, 200);
    let log = std::fs::File::create(w.dir.path().join("puller.log")).unwrap();
    let _pulling = Killed(
        Command::new(agent_binary())
            .args(["pull", "--wait", "5", "--state-dir"])
            .arg(&puller.state)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Act: a staged deploy, followed by the CLI.
    let (code, out) = steward_deploy(
        &w,
        &[
            "--stages",
            "1,100%",
            "--max-failed",
            "0",
            "--wait",
            "--timeout",
            "120",
        ],
    );

    // Assert: halted (exit 5) after stage 1; stage 2 got nothing.
    assert_eq!(code, Some(5), "{out}");
    assert!(out.contains(": halted"), "{out}");
    let id = newest(&w);
    let halted = deployment(&w, id);
    assert_eq!(halted["status"], json!("halted"), "{halted}");
    assert_eq!(halted["staging"]["stage"], json!(1), "{halted}");
    for host in halted["hosts"].as_array().unwrap() {
        if host["host"] == json!(nodes[0].name) {
            assert_eq!(host["stage"], json!(1), "{host}");
            assert_eq!(host["result"], json!("failed"), "{host}");
            assert!(
                host["error"].as_str().is_some_and(|e| e.starts_with("422")),
                "{host}"
            );
        } else {
            assert_eq!(host["stage"], json!(2), "{host}");
            assert_eq!(host["result"], json!("pending"), "{host}");
        }
    }
    assert_eq!(refuser.pushes(), 1);
    let later: Vec<usize> = pushed.iter().map(Agent::pushes).collect();
    assert_eq!(later, [0, 0], "a later stage was pushed to");
    assert_eq!(
        held(&puller.state),
        Value::Null,
        "the pulling agent holds something"
    );
    let (status, body) = http(
        &w.servers[0].addr,
        "GET",
        "/director/self-service/allowlist",
        Some(&format!("Bearer {}", puller.host_key())),
        "",
    );
    assert_eq!(status, 404, "stage 2's allowlist is fetchable: {body}");

    // Act: resume with the CLI.
    let id_text = id.to_string();
    let (code, out) = steward_deploy(&w, &["--resume", &id_text, "--wait", "--timeout", "120"]);

    // Assert: stage 2 got it; the refusal stays; partial (exit 1).
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(": partial"), "{out}");
    assert!(out.contains("stage 2 of 2"), "{out}");
    let ended = deployment(&w, id);
    assert_eq!(ended["counts"]["deployed"], json!(3), "{ended}");
    assert_eq!(ended["counts"]["failed"], json!(1), "{ended}");
    for agent in &pushed {
        assert_eq!(agent.pushes(), 1);
        assert_eq!(agent.held()["scripts"][0]["name"], json!("uptime"));
    }
    assert_eq!(
        refuser.pushes(),
        1,
        "the refusing agent was pushed to again"
    );
    // Its fetch was recorded before it was answered: the file follows.
    assert!(holds(&puller.state, 1, Duration::from_secs(30)).is_some());
}

#[test]
fn a_deployment_killed_while_waiting_between_stages_goes_on_after_restart() {
    let mut w = world(0);
    let nodes = register_nodes(&w, "paused", 80, 3);
    let agents: Vec<Agent> = nodes.iter().map(|n| n.serve(&[])).collect();
    let (status, started) = w.call(
        "POST",
        "/director/config/deploy?stages=1,100%25&stage_wait=5",
        json!([]),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["deployment_id"].as_i64().unwrap();
    // Until stage 1 is done and the pause before stage 2 is recorded.
    let seen = until_paused(&w, id);
    let next_stage_at = seen["staging"]["next_stage_at"].clone();
    assert!(next_stage_at.is_string(), "{seen}");

    // Act: SIGKILL, then start again.
    w.servers[0].kill();
    w.servers[0].restart();

    // Assert: where it was (the pause's end kept), then it goes on.
    // (Its lease outlives the restart by seconds; should the restart be
    // slower, stage 2 may have begun: then the pause was over.)
    let after = deployment(&w, id);
    if after["staging"]["stage"] == json!(1) {
        assert_eq!(after["status"], json!("running"), "{after}");
        assert_eq!(after["staging"]["next_stage_at"], next_stage_at, "{after}");
    }
    let ended = w.finished(0, id, Duration::from_secs(120));
    assert_eq!(ended["status"], json!("succeeded"), "{ended}");
    assert_eq!(ended["staging"]["stage"], json!(2), "{ended}");
    let pushes: Vec<usize> = agents.iter().map(Agent::pushes).collect();
    assert_eq!(pushes, [1, 1, 1], "each agent exactly once");
}

#[test]
fn a_halted_deployment_stays_halted_across_a_server_kill_and_resumes_after() {
    let mut w = world(0);
    let nodes = register_nodes(&w, "held", 90, 3);
    let refuser = refusing(&w, &nodes[0]);
    let later: Vec<Agent> = nodes[1..].iter().map(|n| n.serve(&[])).collect();
    let (_, halted) = w.call(
        "POST",
        "/director/config/deploy?stages=1&wait=120",
        json!([]),
    );
    assert_eq!(halted["status"], json!("halted"), "{halted}");
    let id = halted["id"].as_i64().unwrap();

    w.servers[0].kill();
    w.servers[0].restart();

    // Still halted: a blocking query sees no movement, nothing was pushed.
    let version = deployment(&w, id)["version"].clone();
    let (_, still) = w.call(
        "GET",
        &format!(
            "/director/config/deployment?id={id}&wait=3&since={}",
            version.as_str().unwrap()
        ),
        json!({}),
    );
    assert_eq!(still["status"], json!("halted"), "{still}");
    assert_eq!(still["version"], version, "{still}");
    assert_eq!(later.iter().map(Agent::pushes).sum::<usize>(), 0);

    let (status, resumed) = w.call(
        "POST",
        &format!("/director/config/deployment?id={id}&resume=1"),
        json!([]),
    );
    assert_eq!(status, 202, "{resumed}");
    let ended = w.finished(0, id, Duration::from_secs(120));
    assert_eq!(ended["status"], json!("partial"), "{ended}");
    let pushes: Vec<usize> = later.iter().map(Agent::pushes).collect();
    assert_eq!(pushes, [1, 1], "{ended}");
    assert_eq!(refuser.pushes(), 1);
}

#[test]
#[cfg_attr(
    not(steward_postgres_tests),
    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
)]
fn a_replica_takes_over_a_staged_deployment_whose_server_died_between_stages() {
    let database = fresh_postgres();
    let mut w = build(Setup {
        agents: 0,
        reload: None,
        database: Some(database.url.clone()),
        replicas: 2,
    });
    let nodes = register_nodes(&w, "replicated", 100, 3);
    let agents: Vec<Agent> = nodes.iter().map(|n| n.serve(&[])).collect();
    let (status, started) = w.call(
        "POST",
        "/director/config/deploy?stages=1,100%25&stage_wait=5",
        json!([]),
    );
    assert_eq!(status, 202, "{started}");
    let id = started["deployment_id"].as_i64().unwrap();
    let seen = until_paused(&w, id);
    assert!(seen["staging"]["next_stage_at"].is_string(), "{seen}");

    // Act: the replica running it dies during the pause.
    w.servers[0].kill();

    // Assert: the other replica goes on with stage 2; nobody pushed twice.
    let ended = w.finished(1, id, Duration::from_secs(120));
    assert_eq!(ended["status"], json!("succeeded"), "{ended}");
    assert_eq!(ended["staging"]["stage"], json!(2), "{ended}");
    let pushes: Vec<usize> = agents.iter().map(Agent::pushes).collect();
    assert_eq!(pushes, [1, 1, 1], "each agent exactly once");
}
