//! CONTRACT section 7: keys, registration at boot, agent config, tickets.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app_with};

/// An agent template and its key.
async fn agent_template(app: &TestApp, name: &str, limits: Value) -> String {
    app.create(
        "host",
        json!({"object_name": name, "object_type": "template", "has_agent": true}),
    )
    .await;
    let r = app
        .post(&format!("/director/host/api-key?name={name}"), &limits)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()["api_key"].as_str().unwrap().to_owned()
}

async fn register(
    app: &TestApp,
    name: &str,
    key: &str,
    body: Value,
) -> crate::helpers::TestResponse {
    let uri = format!("/director/self-service/register-host?name={name}&key={key}");
    app.request(
        "POST",
        &uri,
        &[("authorization", "")],
        Some(body.to_string().into_bytes()),
    )
    .await
}

db_test!(
    keys_are_shown_once_stored_as_hashes_replaced_and_revoked,
    async |app: &TestApp| {
        let key = agent_template(app, "agents", json!({"expires_in": 3600, "max_uses": 5})).await;
        assert_eq!(key.len(), 64);
        let meta = app.get("/director/host/api-key?name=agents").await;
        assert_eq!(meta.status, StatusCode::OK);
        assert_eq!(meta.json()["max_uses"], json!(5));
        assert_eq!(meta.json()["uses"], json!(0));
        assert!(meta.json()["expires_at"].is_string());
        assert!(meta.json().get("api_key").is_none());

        // The secret appears in no later answer.
        for uri in [
            "/director/host?name=agents",
            "/director/host?name=agents&withNull",
            "/director/hosts/templates",
            "/director/activity",
            "/director/host/api-key?name=agents",
        ] {
            let r = app.get(uri).await;
            assert!(!r.text.contains(&key), "{uri} shows the key");
        }
        if app.pg_database().is_none() {
            let bytes = app.database_bytes();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "the key is in the database file"
            );
        }

        let replaced = app.template_key("agents").await;
        assert_ne!(replaced, key);
        assert_eq!(
            register(app, "n1", &key, json!({})).await.status,
            StatusCode::FORBIDDEN,
            "a replaced key is void"
        );
        assert_eq!(
            register(app, "n1", &replaced, json!({})).await.status,
            StatusCode::OK
        );

        let r = app.delete("/director/host/api-key?name=agents").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.get("/director/host/api-key?name=agents").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            register(app, "n2", &replaced, json!({})).await.status,
            StatusCode::FORBIDDEN,
            "a revoked key is void"
        );
        assert_eq!(
            app.delete("/director/host/api-key?name=agents")
                .await
                .status,
            StatusCode::NOT_FOUND
        );

        let log = app
            .get("/director/activity?object_type=host&name=agents")
            .await
            .json();
        let actions: Vec<&str> = log["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["revoke-key", "create-key", "create-key", "create"]
        );
    }
);

db_test!(key_requests_are_checked, async |app: &TestApp| {
    app.create("host", json!({"object_name": "plain"})).await;
    app.create(
        "host",
        json!({"object_name": "tpl", "object_type": "template"}),
    )
    .await;
    let before = app.snapshot().await;
    for (uri, body, status) in [
        (
            "/director/host/api-key?name=plain",
            json!({"max_uses": 3}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/director/host/api-key?name=tpl",
            json!({"max_uses": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/director/host/api-key?name=tpl",
            json!({"expires_in": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/director/host/api-key?name=tpl",
            json!({"color": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/director/host/api-key?name=ghost",
            json!({}),
            StatusCode::NOT_FOUND,
        ),
        ("/director/host/api-key", json!({}), StatusCode::BAD_REQUEST),
    ] {
        let r = app.post(uri, &body).await;
        assert_eq!(r.status, status, "{uri} {body}: {}", r.text);
    }
    assert_eq!(app.snapshot().await, before);
    let reader = app.user("rd", "reader", json!({})).await;
    assert_eq!(
        app.as_user(
            &reader,
            "POST",
            "/director/host/api-key?name=plain",
            Some(&json!({}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.as_user(&reader, "GET", "/director/host/ticket?name=plain", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let web = app
        .user("web", "operator", json!({"restrictions": ["web-*"]}))
        .await;
    assert_eq!(
        app.as_user(
            &web,
            "POST",
            "/director/host/api-key?name=plain",
            Some(&json!({}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.as_user(
            &web,
            "POST",
            "/director/host/api-key?name=tpl",
            Some(&json!({}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
});

db_test!(
    registration_answers_every_outcome_in_the_contracted_order,
    async |app: &TestApp| {
        let key = agent_template(app, "agents", json!({})).await;
        app.create(
            "host",
            json!({"object_name": "no-agent", "object_type": "template"}),
        )
        .await;
        let no_agent_key = app.template_key("no-agent").await;
        app.create(
            "host",
            json!({"object_name": "adoptable", "imports": ["agents"]}),
        )
        .await;
        app.create("host", json!({"object_name": "stranger"})).await;

        // 1. Missing name or key.
        let r = app
            .request(
                "POST",
                &format!("/director/self-service/register-host?key={key}"),
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = app
            .request(
                "POST",
                "/director/self-service/register-host?name=x",
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        // 8. A new host, importing the template, with the given properties.
        let r = register(app, "node-1.example", &key, json!({"address": "127.0.0.5", "display_name": "", "agent_port": 5665, "colour": "blue"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let host_key = r.json().as_str().unwrap().to_owned();
        assert_eq!(host_key.len(), 64);
        assert_ne!(host_key, key);
        let host = app.get("/director/host?name=node-1.example").await.json();
        assert_eq!(
            host,
            json!({"object_name": "node-1.example", "object_type": "object", "imports": ["agents"], "address": "127.0.0.5", "agent_port": 5665})
        );
        assert_eq!(
            app.get("/director/host/api-key?name=agents").await.json()["uses"],
            json!(1)
        );

        // 2. The host's own key: idempotent, applies the properties, same key,
        //    even after the template key is gone.
        app.delete("/director/host/api-key?name=agents").await;
        let r = register(
            app,
            "node-1.example",
            &host_key,
            json!({"address": "127.0.0.6"}),
        )
        .await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!(host_key)));
        assert_eq!(
            app.get("/director/host?name=node-1.example").await.json()["address"],
            json!("127.0.0.6")
        );
        let key = app.template_key("agents").await;

        // 3. Unknown keys and another host's key.
        assert_eq!(
            register(app, "node-2.example", &"0".repeat(64), json!({}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        app.create("host", json!({"object_name": "other.example"}))
            .await;
        assert_eq!(
            register(app, "other.example", &host_key, json!({}))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
        // 4. A template not for agents.
        let r = register(app, "node-3.example", &no_agent_key, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.error().contains("not for agents"));
        // 5. Invalid names, and a template's name.
        assert_eq!(
            register(app, "bad%20name", &key, json!({})).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            register(app, "no-agent", &key, json!({})).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        // 6. Already registered.
        assert_eq!(
            register(app, "node-1.example", &key, json!({}))
                .await
                .status,
            StatusCode::CONFLICT
        );
        // 7. Adopted when importing the template directly, refused otherwise.
        let r = register(app, "adoptable", &key, json!({"address": "127.0.0.7"})).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.get("/director/host?name=adoptable").await.json()["address"],
            json!("127.0.0.7")
        );
        assert_eq!(
            register(app, "stranger", &key, json!({})).await.status,
            StatusCode::CONFLICT
        );

        // Name and key may come in the body; text mode for Director's scripts.
        let r = app
            .request(
                "POST",
                "/director/self-service/register-host",
                &[("authorization", ""), ("x-director-accept", "text/plain")],
                Some(
                    json!({"name": "node-4.example", "key": key})
                        .to_string()
                        .into_bytes(),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.text.len(), 64);
        let r = app
            .request(
                "POST",
                "/director/self-service/register-host?name=node-4.example",
                &[
                    ("authorization", &format!("Bearer {key}")),
                    ("x-director-accept", "text/plain"),
                ],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.text.starts_with("ERROR: "), "{}", r.text);

        let log = app.get("/director/activity?action=register").await.json();
        let entry = &log["objects"][0];
        assert_eq!(entry["author"], json!("self-service (127.0.0.1)"));
        assert!(!app.get("/director/activity").await.text.contains(&key));
    }
);

db_test!(
    expired_and_used_up_template_keys_are_refused,
    async |app: &TestApp| {
        let key = agent_template(app, "agents", json!({"max_uses": 2})).await;
        assert_eq!(
            register(app, "a1", &key, json!({})).await.status,
            StatusCode::OK
        );
        assert_eq!(
            register(app, "a2", &key, json!({})).await.status,
            StatusCode::OK
        );
        let r = register(app, "a3", &key, json!({})).await;
        assert_eq!(
            (r.status, r.error()),
            (
                StatusCode::FORBIDDEN,
                "The API key has been used up".to_owned()
            )
        );

        let expiring = app
            .post(
                "/director/host/api-key?name=agents",
                &json!({"expires_in": 1}),
            )
            .await
            .json()["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        // Only what happens after the expiry is asserted: whether a
        // registration lands within the one second depends on the machine.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = register(app, "b2", &expiring, json!({})).await;
        assert_eq!(
            (r.status, r.error()),
            (StatusCode::FORBIDDEN, "The API key has expired".to_owned())
        );
    }
);

db_test!(
    of_fifty_nodes_racing_for_one_name_exactly_one_wins,
    async |app: &TestApp| {
        use tower::ServiceExt;
        let key = agent_template(app, "agents", json!({})).await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let router = app.router.clone();
            let uri = format!("/director/self-service/register-host?name=contested&key={key}");
            tasks.push(tokio::spawn(async move {
                let request = axum::http::Request::post(uri)
                    .body(axum::body::Body::empty())
                    .unwrap();
                router.oneshot(request).await.map(|r| r.status()).ok()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap().unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CONFLICT)
                .count(),
            49
        );
        assert_eq!(
            app.get("/director/host/api-key?name=agents").await.json()["uses"],
            json!(1)
        );
    }
);

db_test!(
    a_thousand_nodes_register_at_once_with_distinct_keys_and_no_use_beyond_the_limit,
    async |app: &TestApp| {
        use tower::ServiceExt;
        let key = agent_template(app, "agents", json!({"max_uses": 1000})).await;
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let router = app.router.clone();
            let uri = format!("/director/self-service/register-host?name=node-{i:04}&key={key}");
            tasks.push(tokio::spawn(async move {
                use http_body_util::BodyExt;
                let request = axum::http::Request::post(uri)
                    .body(axum::body::Body::empty())
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8_lossy(&body).into_owned())
            }));
        }
        let mut keys = HashSet::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            keys.insert(body);
        }
        assert_eq!(keys.len(), 1000, "every node got its own key");
        assert_eq!(
            app.get("/director/host/api-key?name=agents").await.json()["uses"],
            json!(1000)
        );
        assert_eq!(
            register(app, "one-too-many", &key, json!({})).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.get("/director/hosts?count=1&limit=1").await.json()["total"],
            json!(1000)
        );
    }
);

db_test!(
    agent_config_and_tickets_serve_the_hosts_own_key,
    async |app: &TestApp| {
        let key = agent_template(app, "agents", json!({})).await;
        let host_key = register(app, "web-01.example.com", &key, json!({}))
            .await
            .json()
            .as_str()
            .unwrap()
            .to_owned();
        let r = app
            .request(
                "GET",
                "/director/self-service/agent-config",
                &[("authorization", &format!("Bearer {host_key}"))],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let config = r.json();
        assert_eq!(config["host"], json!("web-01.example.com"));
        assert_eq!(config["agent_port"], json!(7446));
        assert!(config["host_id"].is_i64());
        use base64::Engine;
        let public = base64::engine::general_purpose::STANDARD
            .decode(config["signing_key"]["public_key"].as_str().unwrap())
            .unwrap();
        assert_eq!(public.len(), 32);
        assert_eq!(
            config["signing_key"]["fingerprint"],
            json!(steward::signing::fingerprint(&public))
        );
        // A template key is not a host key.
        let r = app
            .request(
                "GET",
                &format!("/director/self-service/agent-config?key={key}"),
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Tickets: the same as Python's hashlib computes, by name and by key.
        let salt = app.ticket_salt();
        let expected = python_ticket("web-01.example.com", &salt);
        let r = app
            .get("/director/host/ticket?name=web-01.example.com")
            .await;
        assert_eq!((r.status, r.json()), (StatusCode::OK, json!(expected)));
        let r = app
            .request(
                "GET",
                &format!("/director/self-service/ticket?key={host_key}"),
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(r.json(), json!(expected));
        app.create("host", json!({"object_name": "no-agent"})).await;
        assert_eq!(
            app.get("/director/host/ticket?name=no-agent").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/director/host/ticket?name=ghost").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

/// PBKDF2-HMAC-SHA1 computed by Python's hashlib, independently of the server.
pub fn python_ticket(cn: &str, salt: &str) -> String {
    let script = "import hashlib,sys; print(hashlib.pbkdf2_hmac('sha1', sys.argv[1].encode(), sys.argv[2].encode(), 50000, 20).hex())";
    let out = std::process::Command::new("python3")
        .args(["-c", script, cn, salt])
        .output()
        .expect("python3");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn invalid_keys_are_throttled_per_address_and_valid_keys_always_pass() {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec![std::net::IpAddr::from([127, 0, 0, 1])]
    })
    .await;
    let key = agent_template(&app, "agents", json!({})).await;
    let from = |ip: &'static str, key: String, name: String| {
        let app = &app;
        async move {
            let uri = format!("/director/self-service/register-host?name={name}&key={key}");
            app.request(
                "POST",
                &uri,
                &[("authorization", ""), ("x-forwarded-for", ip)],
                None,
            )
            .await
        }
    };
    // A boot storm of valid keys from one address is never throttled.
    for i in 0..30 {
        assert_eq!(
            from("127.0.0.20", key.clone(), format!("ok-{i}"))
                .await
                .status,
            StatusCode::OK
        );
    }
    for i in 0..steward::auth::throttle::KEY_ADDRESS_FREE_FAILURES {
        assert_eq!(
            from("127.0.0.66", "f".repeat(64), format!("x{i}"))
                .await
                .status,
            StatusCode::FORBIDDEN
        );
    }
    // Bad keys from that address are throttled now...
    let r = from("127.0.0.66", "f".repeat(64), "x-late".into()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    // ...but a valid key from behind the same address is let through (one
    // stale node behind a NAT must not hold up the others' boot storm),
    // and does not wipe the address's failures.
    let r = from("127.0.0.66", key.clone(), "late".into()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let host_key = r.json().as_str().unwrap_or_default().to_owned();
    let r = app
        .request(
            "GET",
            "/director/self-service/agent-config",
            &[
                ("authorization", &format!("Bearer {host_key}")),
                ("x-forwarded-for", "127.0.0.66"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        from("127.0.0.66", "f".repeat(64), "x-later".into())
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        from("127.0.0.20", key.clone(), "still-fine".into())
            .await
            .status,
        StatusCode::OK
    );
    app.cleanup().await;
}

db_test!(
    a_renamed_hosts_own_key_re_registers_under_the_old_or_the_new_name,
    async |app: &TestApp| {
        // Arrange: ag1 registered, then renamed to ag1r.
        let key = agent_template(app, "agents", json!({})).await;
        let r = register(app, "ag1", &key, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let host_key = r.json().as_str().unwrap().to_owned();
        let renamed = app
            .post("/director/host?name=ag1", &json!({"object_name": "ag1r"}))
            .await;
        assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);

        // Act: the node's next boot, under the name it knows.
        let old = register(app, "ag1", &host_key, json!({"address": "127.0.0.9"})).await;

        // Assert: its own key still, the current name, the change applied
        // to the renamed host, and no second host.
        assert_eq!(old.status, StatusCode::OK, "{}", old.text);
        assert_eq!(old.json(), json!(host_key));
        assert_eq!(old.header("x-steward-host"), Some("ag1r"));
        let host = app.get("/director/host?name=ag1r").await.json();
        assert_eq!(host["address"], json!("127.0.0.9"), "{host}");
        assert_eq!(
            app.get("/director/host?name=ag1").await.status,
            StatusCode::NOT_FOUND
        );
        let new = register(app, "ag1r", &host_key, json!({})).await;
        assert_eq!(new.status, StatusCode::OK, "{}", new.text);
        assert_eq!(new.header("x-steward-host"), Some("ag1r"));

        // Another host's name with this key is still refused.
        app.create("host", json!({"object_name": "other"})).await;
        let before = app.snapshot().await;
        let r = register(app, "other", &host_key, json!({"address": "127.0.0.10"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(app.snapshot().await, before, "changed nothing");
    }
);
