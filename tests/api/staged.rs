//! Staged deploys through the real router: their parameters, halting,
//! resuming, cancelling, and pulling agents of a later stage. Agents here
//! are addresses nothing listens on (port 9 on loopback) or pulling agents
//! played by the test; tests/deploy_agents.rs has real agents.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::TestApp;

/// Hosts `names` registered through self-service at 127.0.0.1 port 9
/// (nothing listens there), each with its host key, in the stage order
/// (the spread order of their ids).
async fn fleet(app: &TestApp, names: &[&str]) -> Vec<(String, i64, String)> {
    app.create(
        "script",
        json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
    )
    .await;
    app.create("host", json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]})).await;
    let key = app.template_key("agents").await;
    let mut hosts = Vec::new();
    for name in names {
        let body = json!({"address": "127.0.0.1", "agent_port": 9})
            .to_string()
            .into_bytes();
        let r = app
            .request(
                "POST",
                &format!("/director/self-service/register-host?name={name}&key={key}"),
                &[("authorization", "")],
                Some(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let host_key = r.json().as_str().unwrap().to_owned();
        let id = app
            .get(&format!("/director/host/allowlist?name={name}"))
            .await
            .json()["host_id"]
            .as_i64()
            .unwrap();
        hosts.push(((*name).to_owned(), id, host_key));
    }
    let ids: Vec<i64> = hosts.iter().map(|(_, id, _)| *id).collect();
    let order = steward::domain::staging::spread_order(&ids);
    hosts.sort_by_key(|(_, id, _)| order.iter().position(|o| o == id));
    hosts
}

/// Everything a refused request must leave as it was: the objects, the
/// deployments and the activity log.
async fn state(app: &TestApp) -> Vec<String> {
    let mut rows = app.snapshot().await;
    rows.extend(
        app.rows("SELECT id, status, stage, next_stage_at FROM deployments ORDER BY id")
            .await,
    );
    rows.extend(
        app.rows("SELECT id, action FROM activity ORDER BY id")
            .await,
    );
    rows
}

/// The deployment as `GET` shows it once it no longer runs (a blocking
/// query on its version).
async fn settled(app: &TestApp, id: i64) -> Value {
    let uri = format!("/director/config/deployment?id={id}");
    let mut seen = app.get(&uri).await.json();
    for _ in 0..20 {
        if seen["status"] != json!("running") {
            break;
        }
        let version = seen["version"].as_str().unwrap().to_owned();
        seen = app
            .get(&format!("{uri}&wait=30&since={version}"))
            .await
            .json();
    }
    seen
}

async fn pull(app: &TestApp, host_key: &str, wait: u32) -> (StatusCode, Value) {
    let r = app
        .request(
            "GET",
            &format!("/director/self-service/allowlist?wait={wait}"),
            &[("authorization", &format!("Bearer {host_key}"))],
            None,
        )
        .await;
    let body = serde_json::from_str(&r.text).unwrap_or_default();
    (r.status, body)
}

fn activity_actions(entries: &Value) -> Vec<String> {
    entries["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

db_test!(
    staged_deploy_parameters_are_checked_and_a_refusal_changes_nothing,
    async |app: &TestApp| {
        fleet(app, &["bad-1", "bad-2"]).await;
        let before = state(app).await;
        let twenty_one = (1..=21)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let bad = [
            "stages=0".to_owned(),
            "stages=2,1".into(),
            "stages=1,1".into(),
            "stages=10%25,5%25".into(),
            "stages=101%25".into(),
            "stages=100%25,5".into(),
            "stages=abc".into(),
            "stages=1.5".into(),
            format!("stages={twenty_one}"),
            "stages=1&max_failed=-1".into(),
            "stages=1&max_failed=101%25".into(),
            "stages=1&max_failed=many".into(),
            "stages=1&stage_wait=3601".into(),
            "stages=1&stage_wait=-1".into(),
            "stages=1&stage_wait=soon".into(),
            "max_failed=1".into(),
            "stage_wait=10".into(),
        ];
        for query in bad {
            let r = app
                .post(&format!("/director/config/deploy?{query}"), &json!([]))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
            assert!(!r.error().is_empty(), "{query}: {}", r.text);
        }
        let id = "/director/config/deployment?resume=1";
        for (uri, status) in [
            (id.to_owned(), StatusCode::BAD_REQUEST),
            (format!("{id}&id=abc"), StatusCode::BAD_REQUEST),
            (
                "/director/config/deployment?id=1".into(),
                StatusCode::BAD_REQUEST,
            ),
            (
                "/director/config/deployment?id=1&resume=maybe".into(),
                StatusCode::BAD_REQUEST,
            ),
            (format!("{id}&id=999"), StatusCode::NOT_FOUND),
        ] {
            let r = app.post(&uri, &json!([])).await;
            assert_eq!(r.status, status, "{uri}: {}", r.text);
            assert!(!r.error().is_empty(), "{uri}: {}", r.text);
        }
        assert_eq!(state(app).await, before, "a refusal changed something");
    }
);

db_test!(
    a_staged_deploy_halts_after_a_stage_with_too_many_failures_and_resumes_with_the_next,
    async |app: &TestApp| {
        // Arrange: the first host in the stage order is pushed to (and is
        // unreachable); the others pull, so the test can fetch for them.
        let hosts = fleet(app, &["st-a", "st-b", "st-c"]).await;
        for (name, ..) in &hosts[1..] {
            let r = app
                .post(
                    &format!("/director/host?name={name}"),
                    &json!({"delivery": "pull"}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }

        // Act: stage 1 is one host, stage 2 the rest; no failure allowed.
        let halted = app
            .post(
                "/director/config/deploy?stages=1,100%25&max_failed=0&wait=60",
                &json!([]),
            )
            .await;

        // Assert: halted after stage 1; stage 2 got nothing.
        assert_eq!(halted.status, StatusCode::OK, "{}", halted.text);
        let halted = halted.json();
        assert_eq!(halted["status"], json!("halted"), "{halted}");
        let id = halted["id"].as_i64().unwrap();
        let staging = &halted["staging"];
        assert_eq!(staging["stages"], json!("1,100%"), "{halted}");
        assert_eq!(staging["stage"], json!(1), "{halted}");
        assert_eq!(staging["stage_count"], json!(2), "{halted}");
        assert_eq!(staging["max_failed"], json!(0), "{halted}");
        assert!(
            staging["halted_reason"]
                .as_str()
                .is_some_and(|r| r.contains("after stage 1 of 2")),
            "{halted}"
        );
        assert_eq!(
            staging["summary"],
            json!([
                {"stage": 1, "hosts": 1, "state": "done",
                 "counts": {"pending": 0, "deployed": 0, "skipped": 0, "failed": 0, "unreachable": 1}},
                {"stage": 2, "hosts": 2, "state": "waiting",
                 "counts": {"pending": 2, "deployed": 0, "skipped": 0, "failed": 0, "unreachable": 0}},
            ]),
            "{halted}"
        );
        for host in halted["hosts"].as_array().unwrap() {
            let expected = if host["host"] == json!(hosts[0].0) {
                1
            } else {
                2
            };
            assert_eq!(host["stage"], json!(expected), "{host}");
        }
        // A pulling agent of stage 2 cannot fetch what its stage has not begun.
        let (status, _) = pull(app, &hosts[1].2, 0).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stage 2 was published");
        // A halted deployment is not the active configuration.
        let status = app.get("/director/config/deployment-status").await.json();
        assert_eq!(
            status["active_configuration"]["config"],
            json!(null),
            "{status}"
        );
        let entries = app
            .get("/director/activity?object_type=deployment")
            .await
            .json();
        assert!(
            activity_actions(&entries).contains(&"deploy-halt".to_owned()),
            "{entries}"
        );

        // Act: resume.
        let resumed = app
            .post(
                &format!("/director/config/deployment?id={id}&resume=1"),
                &json!([]),
            )
            .await;
        assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.text);
        assert_eq!(
            resumed.json()["status"],
            json!("running"),
            "{}",
            resumed.text
        );

        // Assert: stage 2's agents get their allowlist now.
        for (name, _, key) in &hosts[1..] {
            let (status, doc) = pull(app, key, 30).await;
            assert_eq!(status, StatusCode::OK, "{name}: {doc}");
            let preview = app
                .get(&format!("/director/host/allowlist?name={name}"))
                .await
                .json();
            assert_eq!(doc["checksum"], preview["checksum"], "{name}");
        }
        let ended = settled(app, id).await;
        assert_eq!(ended["status"], json!("partial"), "{ended}");
        assert_eq!(ended["staging"]["stage"], json!(2), "{ended}");
        assert_eq!(ended["staging"]["accepted_failures"], json!(1), "{ended}");
        assert_eq!(
            (
                ended["counts"]["deployed"].clone(),
                ended["counts"]["unreachable"].clone()
            ),
            (json!(2), json!(1)),
            "{ended}"
        );
        let entries = app
            .get("/director/activity?object_type=deployment")
            .await
            .json();
        let actions = activity_actions(&entries);
        for action in ["deploy-start", "deploy-halt", "deploy-resume", "deploy-end"] {
            assert!(actions.contains(&action.to_owned()), "{action}: {entries}");
        }
        // Not halted any more.
        let again = app
            .post(
                &format!("/director/config/deployment?id={id}&resume=1"),
                &json!([]),
            )
            .await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    }
);

db_test!(
    a_halted_deployment_resumes_only_while_it_is_the_newest_and_can_be_cancelled,
    async |app: &TestApp| {
        fleet(app, &["old-a", "old-b"]).await;
        let first = app
            .post("/director/config/deploy?stages=1&wait=60", &json!([]))
            .await
            .json();
        assert_eq!(first["status"], json!("halted"), "{first}");
        let first_id = first["id"].as_i64().unwrap();
        // Not running: a new deploy may start (here, another configuration).
        app.create(
            "script",
            json!({"object_name": "df", "command": "/usr/bin/df"}),
        )
        .await;
        app.post(
            "/director/host?name=agents",
            &json!({"scripts": ["uptime", "df"]}),
        )
        .await;
        let second = app
            .post("/director/config/deploy?stages=1&wait=60", &json!([]))
            .await
            .json();
        assert_eq!(second["status"], json!("halted"), "{second}");
        let second_id = second["id"].as_i64().unwrap();
        assert!(second_id > first_id);

        let before = state(app).await;
        let r = app
            .post(
                &format!("/director/config/deployment?id={first_id}&resume=1"),
                &json!([]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert!(r.error().contains("newer"), "{}", r.text);
        assert_eq!(
            state(app).await,
            before,
            "a refused resume changed something"
        );

        // Cancelling a halted deployment ends it; then it cannot resume.
        let cancelled = app
            .delete(&format!("/director/config/deployment?id={second_id}"))
            .await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        assert_eq!(cancelled.json()["status"], json!("cancelled"));
        let r = app
            .post(
                &format!("/director/config/deployment?id={second_id}&resume=1"),
                &json!([]),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        let r = app
            .delete(&format!("/director/config/deployment?id={second_id}"))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    }
);

db_test!(
    a_staged_deployment_waiting_between_stages_is_running_and_can_be_cancelled,
    async |app: &TestApp| {
        let hosts = fleet(app, &["w-a", "w-b"]).await;
        // Unreachable hosts are tolerated; the next stage is an hour away.
        let started = app
            .post(
                "/director/config/deploy?stages=1,100%25&max_failed=100%25&stage_wait=3600",
                &json!([]),
            )
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
        let id = started.json()["deployment_id"].as_i64().unwrap();
        let uri = format!("/director/config/deployment?id={id}");
        // Until stage 1 is done and the pause begins.
        let mut seen = app.get(&uri).await.json();
        for _ in 0..20 {
            if seen["staging"]["next_stage_at"].is_string() {
                break;
            }
            let version = seen["version"].as_str().unwrap().to_owned();
            seen = app
                .get(&format!("{uri}&wait=30&since={version}"))
                .await
                .json();
        }
        assert_eq!(seen["status"], json!("running"), "{seen}");
        assert!(seen["staging"]["next_stage_at"].is_string(), "{seen}");
        assert_eq!(seen["staging"]["stage_wait"], json!(3600), "{seen}");
        assert_eq!(
            seen["staging"]["summary"][1]["state"],
            json!("waiting"),
            "{seen}"
        );
        // One deployment at a time: another configuration is refused.
        app.post("/director/host?name=agents", &json!({"scripts": []}))
            .await;
        let busy = app.post("/director/config/deploy", &json!([])).await;
        assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.text);
        assert_eq!(busy.json()["deployment_id"], json!(id));
        // Resuming a running deployment is a conflict.
        let r = app.post(&format!("{uri}&resume=1"), &json!([])).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);

        let cancelled = app.delete(&uri).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
        let ended = settled(app, id).await;
        assert_eq!(ended["status"], json!("cancelled"), "{ended}");
        assert_eq!(
            ended["staging"]["stage"],
            json!(1),
            "stage 2 never began: {ended}"
        );
        let (status, _) = pull(app, &hosts[1].2, 0).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "stage 2's allowlist was published"
        );
    }
);

db_test!(
    a_pulling_agent_waiting_on_another_server_is_woken_when_its_stage_begins,
    async |app: &TestApp| {
        // Arrange: this server follows others' commits; another server on
        // the same database runs the deployment.
        let follower = tokio::spawn(
            app.store
                .clone()
                .follow_changes(std::time::Duration::from_secs(3600)),
        );
        let hosts = fleet(app, &["far-a", "far-b"]).await;
        let r = app
            .post(
                &format!("/director/host?name={}", hosts[1].0),
                &json!({"delivery": "pull"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let other = app.replica().await;
        let halted = other
            .post("/director/config/deploy?stages=1&wait=60", &json!([]))
            .await
            .json();
        assert_eq!(halted["status"], json!("halted"), "{halted}");
        let id = halted["id"].as_i64().unwrap();
        let (status, _) = pull(app, &hosts[1].2, 0).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "stage 2 was published");

        // Act: the agent waits here while the other server resumes.
        let (waited, resumed) = tokio::join!(pull(app, &hosts[1].2, 30), async {
            other
                .post(
                    &format!("/director/config/deployment?id={id}&resume=1"),
                    &json!([]),
                )
                .await
        });

        // Assert: woken with its allowlist, not at the end of its wait.
        assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.text);
        assert_eq!(waited.0, StatusCode::OK, "{}", waited.1);
        assert_eq!(waited.1["host"], json!(hosts[1].0), "{}", waited.1);
        follower.abort();
    }
);
