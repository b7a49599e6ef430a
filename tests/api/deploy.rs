//! CONTRACT section 8, the parts that exist so far: rendering, the preview
//! of one host's allowlist, and what is pending.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

async fn world(app: &TestApp) {
    app.create(
        "script",
        json!({"object_name": "base-script", "object_type": "template", "timeout": 30}),
    )
    .await;
    app.create(
        "script",
        json!({"object_name": "uptime", "command": "/usr/bin/uptime", "imports": ["base-script"]}),
    )
    .await;
    app.create("script", json!({"object_name": "check_disk", "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%"]})).await;
    app.create(
        "script",
        json!({"object_name": "retired", "command": "/usr/bin/retired", "disabled": true}),
    )
    .await;
    app.create("host", json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]})).await;
    app.create("host", json!({"object_name": "web-01", "imports": ["agents"], "address": "127.0.0.11", "scripts": ["check_disk", "retired"]})).await;
    app.create(
        "host",
        json!({"object_name": "off", "imports": ["agents"], "disabled": true}),
    )
    .await;
    app.create(
        "host",
        json!({"object_name": "plain", "scripts": ["uptime"]}),
    )
    .await;
}

db_test!(
    the_preview_renders_the_resolved_enabled_scripts_sorted_by_name,
    async |app: &TestApp| {
        world(app).await;
        let r = app.get("/director/host/allowlist?name=web-01").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let preview = r.json();
        assert_eq!(preview["in_deploy_set"], json!(true));
        assert_eq!(preview["address"], json!("127.0.0.11"));
        assert_eq!(preview["agent_port"], json!(7446));
        assert_eq!(preview["confirmed"], json!(null));
        assert_eq!(
            preview["allowlist"]["scripts"],
            json!([
                {"name": "check_disk", "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%"], "timeout": null},
                {"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": 30}
            ])
        );
        assert_eq!(preview["checksum"].as_str().map(str::len), Some(64));

        // Hosts outside the deploy set render empty.
        let off = app.get("/director/host/allowlist?name=off").await.json();
        assert_eq!(
            (
                off["in_deploy_set"].clone(),
                off["allowlist"]["scripts"].clone()
            ),
            (json!(false), json!([]))
        );
        let plain = app.get("/director/host/allowlist?name=plain").await.json();
        assert_eq!(plain["in_deploy_set"], json!(false));
        assert_eq!(
            app.get("/director/host/allowlist?name=agents").await.status,
            StatusCode::NOT_FOUND,
            "templates have no allowlist"
        );

        // A change to a script changes the checksum.
        let before =
            app.get("/director/host/allowlist?name=web-01").await.json()["checksum"].clone();
        app.post("/director/script?name=base-script", &json!({"timeout": 60}))
            .await;
        assert_ne!(
            app.get("/director/host/allowlist?name=web-01").await.json()["checksum"],
            before
        );
    }
);

db_test!(
    pending_lists_the_hosts_whose_agents_hold_something_else,
    async |app: &TestApp| {
        world(app).await;
        let pending = app.get("/director/config/pending").await.json();
        assert_eq!(pending["checksum"].as_str().map(str::len), Some(64));
        let hosts = pending["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 1, "only hosts in the deploy set: {pending}");
        assert_eq!(hosts[0]["host"], json!("web-01"));
        assert_eq!(hosts[0]["added"], json!(["check_disk", "uptime"]));
        assert_eq!(hosts[0]["removed"], json!([]));
        assert_eq!(hosts[0]["confirmed_checksum"], json!(null));

        let web = app
            .user("web", "reader", json!({"restrictions": ["db-*"]}))
            .await;
        let restricted = app
            .as_user(&web, "GET", "/director/config/pending", None)
            .await
            .json();
        assert_eq!(restricted["hosts"], json!([]));
        assert_eq!(
            app.as_user(&web, "GET", "/director/host/allowlist?name=web-01", None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
);

db_test!(
    hosts_that_left_the_deploy_set_are_sent_an_empty_allowlist,
    async |app: &TestApp| {
        use sea_orm::{ActiveModelTrait, Set};
        use steward::store::entities::agent_state;
        world(app).await;
        let off_id = app.get("/director/host/allowlist?name=off").await.json()["host_id"]
            .as_i64()
            .unwrap();
        // The agents of "off" (disabled since) and of a deleted host confirmed
        // allowlists with scripts in an earlier deployment.
        for (host_id, name) in [(off_id, "off"), (99_999, "gone")] {
            agent_state::ActiveModel {
                host_id: Set(host_id),
                host_name: Set(name.into()),
                address: Set(Some("127.0.0.99".into())),
                agent_port: Set(7446),
                in_deploy_set: Set(true),
                confirmed_checksum: Set(Some("0".repeat(64))),
                confirmed_serial: Set(Some(1)),
                confirmed_at: Set(Some(0)),
                confirmed_scripts: Set(Some("[\"uptime\"]".into())),
                agent_version: Set(None),
                pulled_at: Set(None),
            }
            .insert(app.store.db())
            .await
            .unwrap();
        }
        let states = steward::store::agents::all(app.store.db()).await.unwrap();
        let rendering = steward::service::deploy::render_all(app.store.db(), &states, None)
            .await
            .unwrap();
        let names: Vec<&str> = rendering.hosts.iter().map(|h| h.host.as_str()).collect();
        assert_eq!(names, ["gone", "off", "web-01"]);
        for host in rendering.hosts.iter().filter(|h| h.host != "web-01") {
            assert!(
                host.allowlist.scripts.is_empty(),
                "{} keeps nothing",
                host.host
            );
            assert!(!host.in_deploy_set);
        }
        assert_eq!(
            rendering.hosts[0].address.as_deref(),
            Some("127.0.0.99"),
            "a deleted host's last address is kept"
        );

        let pending = app.get("/director/config/pending").await.json();
        let gone = pending["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == json!("gone"))
            .cloned()
            .unwrap();
        assert_eq!(
            (gone["added"].clone(), gone["removed"].clone()),
            (json!([]), json!(["uptime"]))
        );
    }
);

db_test!(
    deployment_status_keeps_directors_shape,
    async |app: &TestApp| {
        let before = app.get("/director/config/deployment-status").await.json();
        assert_eq!(
            before,
            json!({"active_configuration": {"config": null, "stage_name": null, "activity": null}, "configs": {}, "activities": {}})
        );
        app.create("host", json!({"object_name": "h"})).await;
        let first = app
            .post("/director/config/deploy?wait=30", &json!([]))
            .await;
        assert_eq!(
            first.json()["status"],
            json!("succeeded"),
            "no agent host: the first deploy is recorded all the same"
        );
        let unchanged = app.post("/director/config/deploy", &json!([])).await;
        assert_eq!(unchanged.json()["status"], json!("unchanged"));
        let forced = app
            .post("/director/config/deploy?force=1&wait=30", &json!([]))
            .await;
        assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
        assert_eq!(forced.json()["status"], json!("succeeded"));
        let checksum = forced.json()["checksum"].as_str().unwrap().to_owned();
        let status = app
            .get(&format!(
                "/director/config/deployment-status?configs={checksum},{}&activities=",
                "f".repeat(64)
            ))
            .await
            .json();
        let active = &status["active_configuration"];
        assert_eq!(active["config"], json!(checksum));
        assert_eq!(
            active["stage_name"],
            json!(format!("deployment-{}", forced.json()["id"]))
        );
        assert_eq!(status["configs"][&checksum], json!("active"));
        assert_eq!(status["configs"]["f".repeat(64)], json!("unknown"));
        let activity = active["activity"].as_str().unwrap().to_owned();
        app.create("host", json!({"object_name": "later"})).await;
        let newest = app
            .get("/director/activity?limit=1&action=create")
            .await
            .json()["objects"][0]["checksum"]
            .as_str()
            .unwrap()
            .to_owned();
        let status = app
            .get(&format!(
                "/director/config/deployment-status?activities={activity},{newest},nope"
            ))
            .await
            .json();
        assert_eq!(
            status["activities"],
            json!({activity.clone(): "active", newest.clone(): "undeployed", "nope": "unknown"})
        );
        let reader = app.user("rd", "reader", json!({})).await;
        assert_eq!(
            app.as_user(&reader, "POST", "/director/config/deploy", Some(&json!([])))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.as_user(&reader, "GET", "/director/config/deployments", None)
                .await
                .status,
            StatusCode::OK
        );
    }
);

/// `GET /director/self-service/allowlist{query}` with `headers`: status,
/// ETag and body.
async fn pull(
    app: &TestApp,
    headers: Vec<(&'static str, String)>,
    query: &str,
) -> (StatusCode, Option<String>, serde_json::Value) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(format!("/director/self-service/allowlist{query}"));
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        etag,
        serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
    )
}

/// A host registered through self-service at an address nothing listens
/// on (a node behind NAT, port 9); answers the template key and the host key.
async fn register_puller(app: &TestApp, name: &str) -> (String, String) {
    app.create(
        "script",
        json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
    )
    .await;
    app.create("host", json!({"object_name": "agents", "object_type": "template", "has_agent": true, "scripts": ["uptime"]})).await;
    let key = app.template_key("agents").await;
    // Nothing listens on port 9.
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
    (key, r.json().as_str().unwrap().to_owned())
}

db_test!(
    a_deleted_hosts_key_fetches_only_its_empty_allowlist_and_is_revoked_once_fetched,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "leaver").await.1);
        let auth = || vec![("authorization", bearer.clone())];
        app.post("/director/config/deploy?wait=30", &json!([]))
            .await;
        let (status, _, doc) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["scripts"][0]["name"], json!("uptime"));

        assert_eq!(
            app.delete("/director/host?name=leaver").await.status,
            StatusCode::OK
        );
        // Nothing deployed since: the key still fetches what the agent has.
        let (status, _, doc) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["scripts"][0]["name"], json!("uptime"));
        // And nothing else.
        let r = app
            .request(
                "GET",
                "/director/self-service/agent-config",
                &[("authorization", &bearer)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);

        let started = app.post("/director/config/deploy", &json!([])).await.json();
        let id = started["deployment_id"].as_i64().unwrap();
        let (status, _, doc) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["host"], json!("leaver"));
        assert_eq!(doc["scripts"], json!([]));
        let (status, _, _) = pull(app, auth(), "").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "revoked once the agent holds nothing"
        );
        let finished = app
            .get(&format!("/director/config/deployment?id={id}&wait=30"))
            .await
            .json();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut finished = finished;
        while finished["status"] == json!("running") && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            finished = app
                .get(&format!("/director/config/deployment?id={id}"))
                .await
                .json();
        }
        assert_eq!(finished["status"], json!("succeeded"), "{finished}");
        assert_eq!(finished["counts"]["deployed"], json!(1), "{finished}");
    }
);

db_test!(
    the_metrics_count_the_waiting_long_polls,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "waiter").await.1);
        let waiting_now = || async {
            let text = app.get("/metrics").await.text;
            text.lines()
                .find_map(|l| l.strip_prefix("steward_pull_waiting "))
                .map(str::to_owned)
        };
        assert_eq!(waiting_now().await.as_deref(), Some("0"));
        // Nothing deployed yet: the poll waits until its deadline.
        let waiting = pull(app, vec![("authorization", bearer)], "?wait=3");
        let watch = async {
            for _ in 0..25 {
                if waiting_now().await.as_deref() == Some("1") {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            false
        };
        let ((status, _, _), seen) = tokio::join!(waiting, watch);
        assert!(seen, "steward_pull_waiting never showed the waiting poll");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(waiting_now().await.as_deref(), Some("0"));
    }
);

db_test!(
    a_remembered_look_does_not_outlive_the_keys_revocation,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "revoked").await.1);
        // Twice: the second look is answered from what the first read.
        for _ in 0..2 {
            let (status, _, _) = pull(app, vec![("authorization", bearer.clone())], "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "nothing deployed yet");
        }
        assert_eq!(
            app.delete("/director/host/api-key?name=revoked")
                .await
                .status,
            StatusCode::OK
        );
        let (status, _, _) = pull(app, vec![("authorization", bearer)], "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "refused at once");
    }
);

/// `steward_pulls_total{what}`: how many looks were answered from memory
/// (`looks_remembered`) or read (`looks_read`).
async fn pulls_counted(app: &TestApp, what: &str) -> u64 {
    let text = app.get("/metrics").await.text;
    let prefix = format!("steward_pulls_total{{what=\"{what}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in the metrics"))
}

/// Follows other processes' commits for `app`, as `serve` does, until the
/// handle is aborted; its rare catch-up does not come within a test.
fn follow_others(app: &TestApp) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        app.store
            .clone()
            .follow_changes(std::time::Duration::from_secs(3600)),
    )
}

db_test!(
    a_remembered_look_does_not_outlive_a_revocation_by_another_process,
    async |app: &TestApp| {
        let follower = follow_others(app);
        let bearer = format!("Bearer {}", register_puller(app, "elsewhere").await.1);
        let auth = || vec![("authorization", bearer.clone())];
        // The follower sees the registration's key change (it cannot tell
        // this server's from another's) and forgets what was remembered:
        // until then, a look may not stay remembered.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while pulls_counted(app, "looks_remembered").await < 1 {
            let (status, _, _) = pull(app, auth(), "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "nothing deployed yet");
            assert!(
                std::time::Instant::now() < deadline,
                "no look was remembered in 10 s"
            );
        }
        // Revoked by another server (or the CLI) on the same database.
        let other = app.replica().await;
        assert_eq!(
            other
                .delete("/director/host/api-key?name=elsewhere")
                .await
                .status,
            StatusCode::OK
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, _, _) = pull(app, auth(), "").await;
            if status == StatusCode::FORBIDDEN {
                break;
            }
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert!(
                std::time::Instant::now() < deadline,
                "the revocation by another process was not noticed in 10 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        follower.abort();
    }
);

db_test!(
    a_pulling_agents_look_outlives_deployments_and_their_results,
    async |app: &TestApp| {
        let follower = follow_others(app);
        let bearer = format!("Bearer {}", register_puller(app, "steady").await.1);
        let auth = || vec![("authorization", bearer.clone())];
        // The follower sees the registration's key change (it cannot tell
        // this server's from another's) and forgets what was remembered:
        // until then, a look may not stay remembered.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let read = loop {
            let (status, _, _) = pull(app, auth(), "").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "nothing deployed yet");
            let read = pulls_counted(app, "looks_read").await;
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            let (status, _, _) = pull(app, auth(), "").await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            if pulls_counted(app, "looks_read").await == read {
                break read;
            }
            assert!(std::time::Instant::now() < deadline, "looks are never kept");
        };
        assert!(read >= 1);
        // A script changes (an object write that deletes no host), and a
        // long poll is woken by the deployment and answered from memory.
        app.post("/director/script?name=uptime", &json!({"timeout": 10}))
            .await;
        let deploy = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            app.post("/director/config/deploy?wait=30", &json!([]))
                .await
                .json()
        };
        let ((status, etag, doc), deployed) = tokio::join!(pull(app, auth(), "?wait=30"), deploy);
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(deployed["status"], json!("succeeded"), "{deployed}");
        // The follower sees this server's own commits (the deployment, its
        // results, the fetch): none changed a key.
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let remembered = pulls_counted(app, "looks_remembered").await;
        let mut headers = auth();
        headers.push(("if-none-match", etag.expect("an ETag")));
        let (status, _, _) = pull(app, headers, "").await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(
            pulls_counted(app, "looks_read").await,
            read,
            "the agent's next poll read the database"
        );
        assert_eq!(pulls_counted(app, "looks_remembered").await, remembered + 1);
        follower.abort();
    }
);

db_test!(
    a_deleted_host_that_never_got_an_allowlist_keeps_no_key,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "never").await.1);
        // Remembered: the deletion must make it forgotten.
        let (status, _, _) = pull(app, vec![("authorization", bearer.clone())], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            app.delete("/director/host?name=never").await.status,
            StatusCode::OK
        );
        let (status, _, _) = pull(app, vec![("authorization", bearer)], "").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);

db_test!(
    a_pulling_agent_gets_its_signed_allowlist_and_counts_as_confirmed,
    async |app: &TestApp| {
        let (key, host_key) = register_puller(app, "puller").await;
        let bearer = format!("Bearer {host_key}");
        let (status, _, _) = pull(app, vec![("authorization", bearer.clone())], "").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing deployed yet");
        let (status, _, _) = pull(app, vec![("authorization", bearer.clone())], "?wait=1").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "nothing deployed at the deadline"
        );

        let deployed = app
            .post("/director/config/deploy?wait=30", &json!([]))
            .await
            .json();
        assert_eq!(
            deployed["hosts"][0]["result"],
            json!("unreachable"),
            "{deployed}"
        );
        let (status, etag, doc) = pull(app, vec![("authorization", bearer.clone())], "").await;
        assert_eq!(status, StatusCode::OK);
        let preview = app.get("/director/host/allowlist?name=puller").await.json();
        assert_eq!(doc["checksum"], preview["checksum"]);
        assert_eq!(doc["scripts"][0]["name"], json!("uptime"));
        assert!(doc["signature"].is_string());
        let etag = etag.unwrap();
        // Fetched counts as confirmed and deployed.
        assert_eq!(preview["confirmed"]["checksum"], doc["checksum"]);
        let id = deployed["id"].as_i64().unwrap();
        assert_eq!(
            app.get(&format!("/director/config/deployment?id={id}"))
                .await
                .json()["hosts"][0]["result"],
            json!("deployed")
        );
        assert_eq!(
            app.get("/director/config/pending").await.json()["hosts"],
            json!([])
        );

        let (status, _, _) = pull(
            app,
            vec![
                ("authorization", bearer.clone()),
                ("if-none-match", etag.clone()),
            ],
            "",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        // A long poll returns as soon as a new allowlist is deployed.
        let waiting = pull(
            app,
            vec![
                ("authorization", bearer.clone()),
                ("if-none-match", etag.clone()),
            ],
            "?wait=30",
        );
        let change = async {
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
            app.post("/director/config/deploy?wait=30", &json!([]))
                .await;
        };
        let ((status, new_etag, doc), ()) = tokio::join!(waiting, change);
        assert_eq!(status, StatusCode::OK);
        assert_ne!(new_etag.as_deref(), Some(etag.as_str()));
        assert_eq!(doc["scripts"].as_array().unwrap().len(), 2);
        let new_etag = new_etag.unwrap();
        let (status, at_deadline, _) = pull(
            app,
            vec![
                ("authorization", bearer.clone()),
                ("if-none-match", new_etag.clone()),
            ],
            "?wait=1",
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_MODIFIED,
            "nothing new at the deadline"
        );
        assert_eq!(at_deadline, Some(new_etag));
        let (status, _, _) = pull(app, vec![("authorization", format!("Bearer {key}"))], "").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a template key is not a host key"
        );
        let (status, _, _) = pull(app, vec![("authorization", bearer)], "?wait=301").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
);

// With `keep_deployments = 2`, the third deployment drops the first one's
// per-host details; its counts stay.
db_test!(
    only_the_newest_deployments_keep_their_details,
    |c| c.keep_deployments = 2,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "lonely", "has_agent": true}))
            .await;
        for _ in 0..3 {
            let r = app
                .post("/director/config/deploy?force=1&wait=30", &json!([]))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(
                r.json()["status"],
                json!("failed"),
                "no address: unreachable"
            );
        }
        let first = app.get("/director/config/deployment?id=1").await.json();
        assert_eq!(first["hosts"], json!([]), "{first}");
        assert_eq!(first["counts"]["unreachable"], json!(1), "{first}");
        assert_eq!(first["status"], json!("failed"));
        for id in [2, 3] {
            let kept = app
                .get(&format!("/director/config/deployment?id={id}"))
                .await
                .json();
            assert_eq!(kept["hosts"][0]["host"], json!("lonely"), "{kept}");
            assert_eq!(kept["hosts"][0]["error"], json!("the host has no address"));
        }
        let listed = app.get("/director/config/deployments").await.json();
        assert_eq!(listed["objects"].as_array().map(Vec::len), Some(3));
    }
);

// A pulling agent whose allowlist did not change for more deployments
// than are kept can still fetch it: pruning keeps each host's newest
// issued allowlist.
db_test!(
    pruning_keeps_each_hosts_newest_allowlist,
    |c| c.keep_deployments = 2,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "steady").await.1);
        let auth = || vec![("authorization", bearer.clone())];
        let first = app
            .post("/director/config/deploy?wait=30", &json!([]))
            .await
            .json();
        assert_eq!(first["hosts"][0]["host"], json!("steady"), "{first}");
        let (status, etag, doc) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        // Three more deployments that change another host only: "steady" is
        // skipped in each (its agent holds its allowlist), so its document
        // stays in the first deployment, which is no longer kept.
        app.create("host", json!({"object_name": "other", "has_agent": true}))
            .await;
        for i in 0..3 {
            app.create(
                "script",
                json!({"object_name": format!("s{i}"), "command": format!("/usr/bin/s{i}")}),
            )
            .await;
            app.post(
                "/director/host?name=other",
                &json!({"scripts": [format!("s{i}")]}),
            )
            .await;
            let r = app
                .post("/director/config/deploy?wait=30", &json!([]))
                .await
                .json();
            let steady = r["hosts"]
                .as_array()
                .and_then(|hosts| hosts.iter().find(|h| h["host"] == json!("steady")))
                .cloned()
                .unwrap_or_default();
            assert_eq!(steady["result"], json!("skipped"), "{r}");
        }
        let pruned = app.get("/director/config/deployment?id=1").await.json();
        assert_eq!(pruned["status"], json!("succeeded"), "{pruned}");
        // The agent renews with what it holds: still current.
        let mut holding = auth();
        holding.push(("if-none-match", etag.clone().expect("an ETag")));
        let (status, _, _) = pull(app, holding, "").await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        // A reinstalled agent (holding nothing) gets the same allowlist.
        let (status, again, refetched) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK, "{refetched}");
        assert_eq!(again, etag);
        assert_eq!(refetched, doc);
    }
);

/// Every row a fetch could record: the agents' states and the deployments'
/// per-host results and counts.
async fn fetch_records(app: &TestApp) -> Vec<String> {
    let mut rows = app
        .rows("SELECT * FROM agent_states ORDER BY host_id")
        .await;
    rows.extend(
        app.rows("SELECT deployment_id, host_id, result, attempts FROM deployment_hosts ORDER BY deployment_id, host_id")
            .await,
    );
    rows.extend(
        app.rows("SELECT id, status, counts FROM deployments ORDER BY id")
            .await,
    );
    rows
}

db_test!(
    a_pulling_agent_fetching_what_it_holds_again_writes_nothing,
    async |app: &TestApp| {
        let bearer = format!("Bearer {}", register_puller(app, "repeater").await.1);
        let auth = || vec![("authorization", bearer.clone())];
        app.post("/director/config/deploy?wait=30", &json!([]))
            .await;
        let before = fetch_records(app).await;
        let (status, _, _) = pull(app, auth(), "").await;
        assert_eq!(status, StatusCode::OK);
        let first = fetch_records(app).await;
        assert_ne!(before, first, "the first fetch is recorded");
        for _ in 0..3 {
            // Past the millisecond the first fetch was stamped with.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let (status, _, doc) = pull(app, auth(), "").await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(doc["scripts"][0]["name"], json!("uptime"));
            assert_eq!(fetch_records(app).await, first, "nothing written again");
        }
    }
);

db_test!(
    a_pull_host_waits_for_its_fetch_and_a_blocking_query_answers_when_it_lands,
    async |app: &TestApp| {
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        )
        .await;
        // Pull delivery from the template; nothing listens on port 9.
        app.create(
            "host",
            json!({"object_name": "pullers", "object_type": "template", "has_agent": true,
            "delivery": "pull", "agent_port": 9, "scripts": ["uptime"]}),
        )
        .await;
        let key = app.template_key("pullers").await;
        let r = app
            .request(
                "POST",
                &format!("/director/self-service/register-host?name=nat-1&key={key}"),
                &[("authorization", "")],
                Some(json!({"address": "127.0.0.1"}).to_string().into_bytes()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let host_key = r.json().as_str().unwrap().to_owned();
        let preview = app.get("/director/host/allowlist?name=nat-1").await.json();
        assert_eq!(preview["delivery"], json!("pull"), "{preview}");
        let bad = app
            .post(
                "/director/host",
                &json!({"object_name": "x", "delivery": "carrier-pigeon"}),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);

        let started = app.post("/director/config/deploy", &json!([])).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.text);
        let id = started.json()["deployment_id"].as_i64().unwrap();
        let uri = format!("/director/config/deployment?id={id}");
        let before = app.get(&uri).await.json();
        assert_eq!(before["status"], json!("running"), "{before}");
        assert_eq!(before["hosts"][0]["delivery"], json!("pull"), "{before}");
        assert_eq!(before["hosts"][0]["result"], json!("pending"), "{before}");
        assert_eq!(
            before["hosts"][0]["attempts"],
            json!(0),
            "never pushed: {before}"
        );
        let version = before["version"].as_str().unwrap().to_owned();
        // Unchanged: the same version when the wait ends.
        let same = app
            .get(&format!("{uri}&wait=1&since={version}"))
            .await
            .json();
        assert_eq!(same["version"], json!(version), "{same}");

        // The agent fetches during a 30 s wait: the query answers then.
        let blocking = format!("{uri}&wait=30&since={version}");
        let (moved, (status, _, _)) = tokio::join!(app.get(&blocking), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            pull(
                app,
                vec![("authorization", format!("Bearer {host_key}"))],
                "",
            )
            .await
        });
        assert_eq!(status, StatusCode::OK);
        let moved = moved.json();
        assert_ne!(moved["version"], json!(version), "{moved}");
        assert_eq!(moved["hosts"][0]["result"], json!("deployed"), "{moved}");
        // The deployment ends with its last fetch, not at the pull grace
        // (which is far longer than this wait).
        let mut ended = moved.clone();
        for _ in 0..2 {
            if ended["status"] != json!("running") {
                break;
            }
            ended = app
                .get(&format!(
                    "{uri}&wait=30&since={}",
                    ended["version"].as_str().unwrap()
                ))
                .await
                .json();
        }
        assert_eq!(ended["status"], json!("succeeded"), "{ended}");
        // Nothing left to deploy afterwards. (Asked while the deployment
        // was still running, the same request would join it instead.)
        let done = app
            .post("/director/config/deploy?wait=30", &json!([]))
            .await
            .json();
        assert_eq!(done["status"], json!("unchanged"), "{done}");
    }
);

db_test!(
    the_first_deploy_of_an_empty_configuration_is_recorded_as_succeeded,
    async |app: &TestApp| {
        // Arrange: no agent host at all, as on a new server. The Ansible
        // module reads the active checksum, deploys with the body `[]`,
        // and reads it again: it must have moved to the deployed checksum.
        let before = app.get("/director/config/deployment-status").await.json();
        assert_eq!(before["active_configuration"]["config"], json!(null));

        // Act
        let first = app.post("/director/config/deploy", &json!([])).await;

        // Assert
        assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
        let checksum = first.json()["checksum"].as_str().unwrap().to_owned();
        use sha2::Digest;
        let empty = hex::encode(sha2::Sha256::digest(b"{}"));
        assert_eq!(checksum, empty, "the checksum of the empty map");
        let id = first.json()["deployment_id"].as_i64().unwrap();
        let after = app.get("/director/config/deployment-status").await.json();
        assert_eq!(after["active_configuration"]["config"], json!(checksum));
        let uri = format!("/director/config/deployment?id={id}");
        let mut done = app.get(&uri).await.json();
        if done["status"] == json!("running") {
            let since = done["version"].as_str().unwrap_or_default().to_owned();
            done = app
                .get(&format!("{uri}&wait=30&since={since}"))
                .await
                .json();
        }
        assert_eq!(done["status"], json!("succeeded"), "{done}");

        // The same configuration again: unchanged, naming that deployment.
        let again = app.post("/director/config/deploy", &json!([])).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
        assert_eq!(
            again.json(),
            json!({"checksum": checksum, "status": "unchanged", "deployment_id": id})
        );
        let listed = app.get("/director/config/deployments").await.json();
        assert_eq!(listed["objects"].as_array().map(Vec::len), Some(1));
    }
);

/// A stand-in agent on 127.0.0.1 that refuses every allowlist (`403`) and
/// counts the connections made to it: its port and the count.
async fn counting_agent() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let port = listener.local_addr().expect("address").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = vec![0u8; 16 * 1024];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        }
    });
    (port, count)
}

/// Deploys once to one host at 127.0.0.1 with `push_networks` set to
/// `networks`: the host's result and error, and how many connections its
/// agent got.
async fn deploy_within(networks: &[&str]) -> (serde_json::Value, usize) {
    let networks: Vec<steward::domain::network::Network> = networks
        .iter()
        .map(|n| n.parse().expect("a network"))
        .collect();
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |c| {
        c.push_networks = networks;
    })
    .await;
    let (port, connections) = counting_agent().await;
    app.create(
        "host",
        json!({"object_name": "fenced", "has_agent": true, "address": "127.0.0.1", "agent_port": port}),
    )
    .await;
    let r = app
        .post("/director/config/deploy?wait=30", &json!([]))
        .await
        .json();
    app.cleanup().await;
    (
        r["hosts"][0].clone(),
        connections.load(std::sync::atomic::Ordering::SeqCst),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_networks_keep_the_server_from_connecting_elsewhere() {
    // Outside the networks: not connected to at all.
    let (host, connections) = deploy_within(&["127.0.0.2/32", "::1"]).await;
    assert_eq!(connections, 0, "{host}");
    assert_eq!(host["result"], json!("unreachable"), "{host}");
    assert_eq!(host["attempts"], json!(0), "{host}");
    assert_eq!(host["error"], json!("127.0.0.1 is outside push_networks"));
    // Inside: pushed (and refused by the stand-in).
    let (host, connections) = deploy_within(&["127.0.0.0/8"]).await;
    assert!(connections >= 1, "{host}");
    assert_eq!(host["result"], json!("failed"), "{host}");
    // None set: anywhere, as before.
    let (host, connections) = deploy_within(&[]).await;
    assert!(connections >= 1, "{host}");
}

db_test!(
    a_dry_run_needs_deploy_shows_a_restricted_user_their_hosts_and_writes_nothing,
    async |app: &TestApp| {
        world(app).await;
        app.create(
            "host",
            json!({"object_name": "db-01", "imports": ["agents"], "vars": {"env": "prod"}}),
        )
        .await;
        let before = app.snapshot().await;
        let deployments = app.rows("SELECT id FROM deployments").await;

        let r = app
            .post("/director/config/deploy?dry_run=1", &json!({}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let dry = r.json();
        assert_eq!(dry["status"], json!("would-deploy"));
        assert_eq!(dry["counts"], json!({"update": 2, "revoke": 0, "skip": 0}));
        let names: Vec<&str> = dry["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["host"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["db-01", "web-01"]);
        assert_eq!(dry["hosts"][1]["confirmed_checksum"], json!(null));
        assert_eq!(
            dry["hosts"][1]["added"],
            json!([
                {"name": "check_disk", "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%"], "timeout": null},
                {"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": 30}
            ])
        );
        assert_eq!(dry["hosts"][1]["changed"], json!([]), "nothing is held yet");

        let scoped = app
            .post(
                "/director/config/deploy?dry_run=1&vars.env=prod",
                &json!({}),
            )
            .await
            .json();
        assert_eq!(scoped["scope"], json!("vars.env=prod"));
        assert_eq!(scoped["counts"]["update"], json!(1));
        assert_ne!(
            scoped["checksum"], dry["checksum"],
            "the covered hosts' config"
        );
        assert_eq!(dry["hosts"][0]["stage"], json!(null), "not staged");
        let staged = app
            .post("/director/config/deploy?dry_run=1&stages=1", &json!({}))
            .await
            .json();
        let mut stages: Vec<i64> = staged["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["stage"].as_i64().unwrap())
            .collect();
        stages.sort_unstable();
        assert_eq!(stages, [1, 2], "one canary, then the rest: {staged}");

        let reader = app.user("looker", "reader", json!({})).await;
        let r = app
            .as_user(
                &reader,
                "POST",
                "/director/config/deploy?dry_run=1",
                Some(&json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        let operator = app
            .user("dbops", "operator", json!({"restrictions": ["db-*"]}))
            .await;
        let mine = app
            .as_user(
                &operator,
                "POST",
                "/director/config/deploy?dry_run=1",
                Some(&json!({})),
            )
            .await
            .json();
        assert_eq!(mine["hosts"].as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine["hosts"][0]["host"], json!("db-01"));
        assert_eq!(
            mine["counts"]["update"],
            json!(2),
            "counts cover the deploy"
        );

        for bad in [
            "dry_run=maybe",
            "dry_run=1&has_agent=perhaps",
            "dry_run=1&vars.=web-01",
            "dry_run=1&var.env=prod",
            "dry_run=1&Vars.env=prod",
        ] {
            let r = app
                .post(&format!("/director/config/deploy?{bad}"), &json!({}))
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
            assert!(r.json()["error"].is_string());
        }
        // What Director clients add is ignored, as on every endpoint.
        let director = app
            .post(
                "/director/config/deploy?dry_run=1&showStacktrace=1&withServices=1",
                &json!({}),
            )
            .await;
        assert_eq!(director.status, StatusCode::OK, "{}", director.text);
        assert_eq!(director.json(), dry);
        let r = app
            .post(
                "/director/config/deploy?dry_run=1&q=nothing-like-it",
                &json!({}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert_eq!(app.snapshot().await, before);
        assert_eq!(app.rows("SELECT id FROM deployments").await, deployments);
    }
);
