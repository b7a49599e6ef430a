//! CONTRACT section 9: the activity log over REST, and its chain.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::TestApp;

fn entries(body: &Value) -> Vec<Value> {
    body["objects"].as_array().cloned().unwrap_or_default()
}

db_test!(
    every_change_writes_one_entry_with_author_before_after_and_request_id,
    async |app: &TestApp| {
        let id = [("x-request-id", "req-create-1")];
        app.request(
            "POST",
            "/director/host",
            &id,
            Some(
                json!({"object_name": "h", "address": "a"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
        app.post("/director/host?name=h", &json!({"address": "b"}))
            .await;
        app.post("/director/host?name=h", &json!({"address": "b"}))
            .await; // 304: no entry
        app.post("/director/host?name=h", &json!({"object_name": "h2"}))
            .await;
        app.delete("/director/host?name=h2").await;

        let log = entries(&app.get("/director/activity?object_type=host").await.json());
        let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(
            actions,
            ["delete", "rename", "modify", "create"],
            "newest first"
        );
        let create = &log[3];
        assert_eq!(create["author"], json!("admin"));
        assert_eq!(create["request_id"], json!("req-create-1"));
        assert_eq!(create["object_name"], json!("h"));
        assert_eq!(
            create["after"],
            json!({"object_name": "h", "object_type": "object", "address": "a"})
        );
        assert!(create.get("before").is_none());
        assert_eq!(log[2]["before"]["address"], json!("a"));
        assert_eq!(log[2]["after"]["address"], json!("b"));
        assert_eq!(log[1]["object_name"], json!("h2"));
        assert_eq!(log[0]["before"]["object_name"], json!("h2"));
        assert!(log[0].get("after").is_none());
        // Chained: each entry names the checksum of the one before it.
        assert_eq!(log[0]["parent_checksum"], log[1]["checksum"]);
        assert!(create["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
);

db_test!(
    a_rename_logs_every_dependant_it_rewrites,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "t", "object_type": "template"}),
        )
        .await;
        app.create("host", json!({"object_name": "a", "imports": ["t"]}))
            .await;
        app.create("host", json!({"object_name": "b", "imports": ["t"]}))
            .await;
        app.post("/director/host?name=t", &json!({"object_name": "t2"}))
            .await;
        let log = entries(&app.get("/director/activity?limit=3").await.json());
        let summary: Vec<(String, String)> = log
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["object_name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("rename".into(), "t2".into()),
                ("modify".into(), "b".into()),
                ("modify".into(), "a".into())
            ]
        );
        assert_eq!(log[1]["after"]["imports"], json!(["t2"]));
    }
);

db_test!(
    user_changes_are_logged_without_secrets,
    async |app: &TestApp| {
        app.post(
            "/director/user",
            &json!({"object_name": "dave", "password": "dave-secret-1", "role": "reader"}),
        )
        .await;
        app.post(
            "/director/user?name=dave",
            &json!({"password": "dave-secret-2"}),
        )
        .await;
        let text = app.get("/director/activity?object_type=user").await.text;
        assert!(
            !text.contains("dave-secret") && !text.contains("argon2"),
            "{text}"
        );
        let log = entries(&serde_json::from_str(&text).unwrap());
        assert_eq!(log[0]["action"], json!("modify"));
        assert_eq!(log[0]["after"]["password_changed"], json!(true));
    }
);

db_test!(
    the_log_filters_and_pages_newest_first,
    async |app: &TestApp| {
        for i in 0..7 {
            app.create("host", json!({"object_name": format!("p{i}")}))
                .await;
        }
        app.create("script", json!({"object_name": "s", "command": "/bin/s"}))
            .await;
        let op = app.user("op", "operator", json!({})).await;
        app.as_user(
            &op,
            "POST",
            "/director/host?name=p0",
            Some(&json!({"vars.x": 1})),
        )
        .await;

        assert_eq!(
            entries(
                &app.get("/director/activity?object_type=script")
                    .await
                    .json()
            )
            .len(),
            1
        );
        assert_eq!(
            entries(&app.get("/director/activity?name=p0").await.json()).len(),
            2
        );
        let by_op = entries(&app.get("/director/activity?author=op").await.json());
        assert_eq!(by_op.len(), 1);
        assert_eq!(by_op[0]["action"], json!("modify"));
        assert_eq!(
            entries(
                &app.get("/director/activity?action=create&object_type=host")
                    .await
                    .json()
            )
            .len(),
            7
        );
        assert_eq!(
            entries(&app.get("/director/activity?since=4102444800").await.json()).len(),
            0,
            "nothing after 2100"
        );
        assert!(
            !entries(
                &app.get("/director/activity?since=2020-01-01T00:00:00Z")
                    .await
                    .json()
            )
            .is_empty()
        );

        let first = app
            .get("/director/activity?object_type=host&limit=5")
            .await
            .json();
        let second = app
            .get(&format!(
                "/director/activity?object_type=host&limit=5&cursor={}",
                first["next"].as_str().unwrap()
            ))
            .await
            .json();
        let ids: Vec<i64> = entries(&first)
            .iter()
            .chain(entries(&second).iter())
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 8);
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "newest first without overlap: {ids:?}"
        );
        assert!(second.get("next").is_none());

        for bad in [
            "since=yesterday",
            "limit=0",
            "cursor=abc",
            "limit=5&cursor=zz",
        ] {
            assert_eq!(
                app.get(&format!("/director/activity?{bad}")).await.status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
);

db_test!(
    restricted_users_see_no_activity_of_hosts_they_cannot_see,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "web-1"})).await;
        app.create("host", json!({"object_name": "db-1"})).await;
        let web = app
            .user("web", "operator", json!({"restrictions": ["web-*"]}))
            .await;
        let log = app
            .as_user(&web, "GET", "/director/activity?object_type=host", None)
            .await
            .json();
        let names: Vec<&str> = log["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["object_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web-1"]);
    }
);

db_test!(
    entries_about_users_are_shown_only_to_callers_with_the_users_permission,
    async |app: &TestApp| {
        let reader = app.user("rita", "reader", json!({})).await;
        let operator = app.user("otto", "operator", json!({})).await;
        app.create("host", json!({"object_name": "h"})).await;
        let ask = async |auth: &str, uri: &str| {
            let r = app.as_user(auth, "GET", uri, None).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
            entries(&r.json())
        };
        for uri in [
            "/director/activity",
            "/director/activity?limit=1000",
            "/director/activity?object_type=user",
            "/director/activity?object_type=user&limit=10",
            "/director/activity?name=rita",
            "/director/activity?action=create&limit=5",
        ] {
            for auth in [&reader, &operator] {
                let seen = ask(auth, uri).await;
                assert!(
                    seen.iter().all(|e| e["object_type"] != json!("user")),
                    "{uri}: {seen:?}"
                );
            }
        }
        // The host entry stays visible, and `users` still sees user entries.
        let all = ask(&reader, "/director/activity").await;
        assert!(all.iter().any(|e| e["object_type"] == json!("host")));
        let admin = entries(&app.get("/director/activity?object_type=user").await.json());
        let names: Vec<&str> = admin
            .iter()
            .map(|e| e["object_name"].as_str().unwrap())
            .collect();
        assert_eq!(names[..2], ["otto", "rita"], "newest first");
    }
);

/// The newest entry's id.
async fn newest_id(app: &TestApp) -> i64 {
    entries(&app.get("/director/activity?limit=1").await.json())[0]["id"]
        .as_i64()
        .unwrap()
}

db_test!(
    a_blocking_query_answers_with_the_new_entry_or_empty_at_the_deadline,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "first"})).await;
        let after = newest_id(app).await;
        // Nothing new: an empty list when the wait ends.
        let r = app
            .get(&format!("/director/activity?after={after}&wait=1"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json(), json!({"objects": []}));
        // Something new during a 30 s wait: the answer is the new entry
        // (at the deadline it would be empty).
        let uri = format!("/director/activity?after={after}&wait=30");
        let (r, ()) = tokio::join!(app.get(&uri), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            app.create("host", json!({"object_name": "second"})).await;
        });
        let seen = entries(&r.json());
        assert_eq!(seen.len(), 1, "{}", r.text);
        assert_eq!(seen[0]["object_name"], json!("second"));
        assert!(seen[0]["id"].as_i64().unwrap() > after);
        // Entries already newer answer at once; `wait` needs `after`.
        let r = app
            .get(&format!("/director/activity?after={after}&wait=300"))
            .await;
        assert_eq!(entries(&r.json()).len(), 1);
        for bad in [
            "wait=5",
            "after=x",
            "after=1&wait=301",
            "after=1&wait=-1",
            "after=",
        ] {
            let r = app.get(&format!("/director/activity?{bad}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        }
    }
);

db_test!(
    a_blocking_query_shows_a_restricted_caller_only_what_it_may_see,
    async |app: &TestApp| {
        let reader = app.user("rita", "reader", json!({})).await;
        let after = newest_id(app).await;
        // An entry about a user does not answer the reader's wait...
        let short = format!("/director/activity?after={after}&wait=2");
        let (r, ()) = tokio::join!(app.as_user(&reader, "GET", &short, None), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            app.user("ulla", "reader", json!({})).await;
        });
        assert_eq!(r.json(), json!({"objects": []}), "{}", r.text);
        // ...a host's does, and alone.
        let long = format!("/director/activity?after={after}&wait=30");
        let (r, ()) = tokio::join!(app.as_user(&reader, "GET", &long, None), async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            app.create("host", json!({"object_name": "seen"})).await;
        });
        let seen = entries(&r.json());
        let names: Vec<&Value> = seen.iter().map(|e| &e["object_name"]).collect();
        assert_eq!(names, [&json!("seen")], "{}", r.text);
    }
);

db_test!(
    registrations_write_entries_with_the_request_id,
    async |app: &TestApp| {
        // Arrange: an agent template and its key.
        app.create(
            "host",
            json!({"object_name": "agents", "object_type": "template", "has_agent": true}),
        )
        .await;
        let key = app.template_key("agents").await;
        let register = async |key: &str, address: &str, request_id: &str| {
            app.request(
                "POST",
                &format!("/director/self-service/register-host?name=node-1&key={key}"),
                &[("authorization", ""), ("x-request-id", request_id)],
                Some(json!({"address": address}).to_string().into_bytes()),
            )
            .await
        };

        // Act: a registration, then a re-registration that changes the address.
        let first = register(&key, "127.0.0.1", "req-register-1").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text);
        let host_key = first.json().as_str().unwrap().to_owned();
        let again = register(&host_key, "127.0.0.2", "req-register-2").await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);

        // Assert
        let log = entries(&app.get("/director/activity?action=register").await.json());
        let ids: Vec<&Value> = log.iter().map(|e| &e["request_id"]).collect();
        assert_eq!(
            ids,
            [&json!("req-register-2"), &json!("req-register-1")],
            "{log:?}"
        );
    }
);
