//! `POST /director/activity/revert`: undoing one logged object change, or
//! every one after an entry; dry runs, conflicts, permissions, bad input.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::TestApp;

/// The id of the newest activity entry.
async fn newest(app: &TestApp) -> i64 {
    app.get("/director/activity?limit=1").await.json()["objects"][0]["id"]
        .as_i64()
        .expect("an entry")
}

/// The newest activity entry, whole.
async fn newest_entry(app: &TestApp) -> Value {
    app.get("/director/activity?limit=1").await.json()["objects"][0].clone()
}

async fn activity_count(app: &TestApp) -> usize {
    app.rows("SELECT id FROM activity").await.len()
}

/// Every object as stored, by stable id (its checksum and time aside).
async fn objects(app: &TestApp) -> Vec<String> {
    app.rows("SELECT id, kind, object_name, object_type, properties FROM objects ORDER BY id")
        .await
}

/// Objects, references and the activity log's length: a refused revert
/// changes none of them.
async fn everything(app: &TestApp) -> (Vec<String>, usize) {
    (app.snapshot().await, activity_count(app).await)
}

async fn revert(app: &TestApp, query: &str) -> crate::helpers::TestResponse {
    app.request(
        "POST",
        &format!("/director/activity/revert?{query}"),
        &[],
        None,
    )
    .await
}

fn base_objects() -> [(&'static str, Value); 3] {
    [
        (
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        ),
        (
            "host",
            json!({"object_name": "linux", "object_type": "template", "has_agent": true}),
        ),
        (
            "host",
            json!({"object_name": "web-1", "imports": ["linux"], "scripts": ["uptime"], "address": "127.0.0.1"}),
        ),
    ]
}

async fn arrange(app: &TestApp) {
    for (kind, body) in base_objects() {
        app.create(kind, body).await;
    }
}

db_test!(
    undoing_one_entry_puts_back_what_it_changed_and_logs_a_revert_naming_it,
    async |app: &TestApp| {
        arrange(app).await;
        let before = app.get("/director/host?name=web-1").await.json();
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.2"}),
        )
        .await;
        let modify = newest(app).await;

        let r = revert(app, &format!("id={modify}")).await;

        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let answer = r.json();
        assert_eq!(answer["dry_run"], json!(false));
        assert_eq!(answer["changes"].as_array().map(Vec::len), Some(1));
        assert_eq!(answer["changes"][0]["action"], json!("modify"));
        assert_eq!(answer["changes"][0]["reverts"], json!(modify));
        assert_eq!(app.get("/director/host?name=web-1").await.json(), before);
        let logged = newest_entry(app).await;
        assert_eq!(logged["action"], json!("revert"));
        assert_eq!(logged["reverts"], json!(modify));
        assert_eq!(answer["activity_id"], logged["id"]);
        assert_eq!(logged["before"]["address"], json!("127.0.0.2"));
        assert_eq!(logged["after"], before);
    }
);

db_test!(
    undoing_a_create_a_rename_and_a_delete_deletes_renames_back_and_recreates_with_the_id,
    async |app: &TestApp| {
        arrange(app).await;
        // Create: undone by deleting.
        app.create("host", json!({"object_name": "web-2"})).await;
        let create = newest(app).await;
        let r = revert(app, &format!("id={create}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["changes"][0]["action"], json!("delete"));
        assert_eq!(
            app.get("/director/host?name=web-2").await.status,
            StatusCode::NOT_FOUND
        );

        // Rename: undone by renaming back (its dependants follow).
        app.post(
            "/director/script?name=uptime",
            &json!({"object_name": "load"}),
        )
        .await;
        let rename = newest(app).await;
        let r = revert(app, &format!("id={rename}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            (
                &r.json()["changes"][0]["action"],
                &r.json()["changes"][0]["new_name"]
            ),
            (&json!("rename"), &json!("uptime"))
        );
        assert_eq!(
            app.get("/director/host?name=web-1").await.json()["scripts"],
            json!(["uptime"])
        );

        // Delete: undone by recreating the object with its stable id.
        let stored = objects(app).await;
        app.delete("/director/host?name=web-1").await;
        let delete = newest(app).await;
        let deleted = newest_entry(app).await;
        assert!(deleted["object_id"].is_i64(), "{deleted}");
        let r = revert(app, &format!("id={delete}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["changes"][0]["action"], json!("create"));
        assert_eq!(objects(app).await, stored, "the same id, the same object");
        assert_eq!(newest_entry(app).await["object_id"], deleted["object_id"]);
    }
);

db_test!(
    a_conflicting_undo_answers_409_naming_what_changed_and_changes_nothing,
    async |app: &TestApp| {
        arrange(app).await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.2"}),
        )
        .await;
        let first = newest(app).await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.3"}),
        )
        .await;
        let second = newest(app).await;
        app.create("host", json!({"object_name": "web-9"})).await;
        app.delete("/director/host?name=web-9").await;
        let deleted = newest(app).await;
        app.create(
            "host",
            json!({"object_name": "web-9", "address": "127.0.0.9"}),
        )
        .await;
        let before = everything(app).await;

        let changed = revert(app, &format!("id={first}")).await;
        let taken = revert(app, &format!("id={deleted}")).await;
        let dry = revert(app, &format!("id={first}&dry_run=1")).await;

        assert_eq!(changed.status, StatusCode::CONFLICT, "{}", changed.text);
        assert!(changed.error().contains("address"), "{}", changed.error());
        assert!(
            changed.error().contains(&format!("entry {second}")),
            "{}",
            changed.error()
        );
        assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
        assert!(taken.error().contains("taken"), "{}", taken.error());
        assert_eq!(dry.status, StatusCode::CONFLICT);
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    a_template_or_script_still_referenced_is_not_deleted_by_an_undo,
    async |app: &TestApp| {
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        )
        .await;
        let create = newest(app).await;
        app.create(
            "host",
            json!({"object_name": "web-1", "scripts": ["uptime"]}),
        )
        .await;
        let before = everything(app).await;

        let r = revert(app, &format!("id={create}")).await;

        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        assert!(r.error().contains("web-1"), "{}", r.error());
        assert!(
            r.error().contains(&format!("entry {create}")),
            "{}",
            r.error()
        );
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    revert_to_brings_every_object_back_across_creates_renames_deletes_and_templates,
    async |app: &TestApp| {
        arrange(app).await;
        app.create(
            "host",
            json!({"object_name": "db-1", "address": "127.0.0.4"}),
        )
        .await;
        let at_n = objects(app).await;
        let n = newest(app).await;

        app.post(
            "/director/host?name=linux",
            &json!({"vars": {"env": "prod"}, "object_name": "base"}),
        )
        .await;
        app.post(
            "/director/script?name=uptime",
            &json!({"object_name": "load", "timeout": 5}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "web-2", "imports": ["base"], "scripts": ["load"]}),
        )
        .await;
        app.delete("/director/host?name=db-1").await;
        app.post("/director/host?name=web-2", &json!({"object_name": "db-1"}))
            .await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.5"}),
        )
        .await;
        app.user("bob", "reader", json!({})).await;
        let user_entry = newest(app).await;
        let count = activity_count(app).await;

        let dry = revert(app, &format!("to={n}&dry_run=1")).await;
        assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
        assert_eq!(activity_count(app).await, count, "a dry run logs nothing");
        assert_ne!(objects(app).await, at_n, "a dry run changes nothing");

        let r = revert(app, &format!("to={n}")).await;

        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let answer = r.json();
        assert_eq!(
            answer["changes"],
            dry.json()["changes"],
            "the dry run said so"
        );
        assert_eq!(answer["skipped"], json!([user_entry]));
        assert_eq!(
            objects(app).await,
            at_n,
            "every object as at entry {n}, ids too"
        );
        let reverts = app.get("/director/activity?action=revert").await.json()["objects"]
            .as_array()
            .map(Vec::len);
        assert_eq!(
            reverts,
            answer["changes"].as_array().map(Vec::len),
            "one revert entry per change"
        );
        assert!(matches!(
            steward::service::activity::verify(&app.store).await,
            Ok(Ok(_))
        ));
    }
);

db_test!(
    a_revert_to_the_newest_entry_changes_nothing,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        let before = everything(app).await;
        let r = revert(app, &format!("to={n}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["changes"], json!([]));
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    bad_parameters_answer_400_and_unknown_entries_404_changing_nothing,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        let before = everything(app).await;
        for query in [
            String::new(),
            format!("id={n}&to={n}"),
            "id=abc".into(),
            "to=".into(),
            "id=0".into(),
            "to=-3".into(),
            "id=1.5".into(),
            format!("id={n}&dry_run=maybe"),
        ] {
            let r = revert(app, &query).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.text);
            assert!(!r.error().is_empty());
        }
        for query in [format!("id={}", n + 100), format!("to={}", n + 100)] {
            let r = revert(app, &query).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{query}: {}", r.text);
        }
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    an_entry_that_is_not_an_object_change_answers_422,
    async |app: &TestApp| {
        arrange(app).await;
        app.user("bob", "reader", json!({})).await;
        let user_entry = newest(app).await;
        app.post("/director/host/api-key?name=web-1", &json!({}))
            .await;
        let key_entry = newest(app).await;
        let before = everything(app).await;
        for id in [user_entry, key_entry] {
            let r = revert(app, &format!("id={id}")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            assert!(r.error().contains("not a change"), "{}", r.error());
        }
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    more_entries_than_the_limit_answer_422,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        app.rows(
            "INSERT INTO activity (at, author, action, object_type, object_name, parent_checksum, checksum) \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001) \
             SELECT i, 'test', 'deploy-start', 'deployment', 'x', 'p', 'c' FROM n",
        )
        .await;
        let before = everything(app).await;
        let r = revert(app, &format!("to={n}")).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
        assert!(r.error().contains("1000"), "{}", r.error());
        assert_eq!(everything(app).await, before);
    }
);

db_test!(
    reverting_needs_the_objects_write_permissions_and_deploy_for_to,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.2"}),
        )
        .await;
        let modify = newest(app).await;
        let reader = app.user("rita", "reader", json!({})).await;
        let scripter = app
            .user(
                "sam",
                "reader",
                json!({"permissions": ["scripts.write", "deploy"]}),
            )
            .await;
        let hoster = app
            .user("hal", "reader", json!({"permissions": ["hosts.write"]}))
            .await;
        let before = everything(app).await;

        for (auth, query) in [
            (&reader, format!("id={modify}")),
            (&scripter, format!("id={modify}")),
            (&scripter, format!("to={n}")),
            (&hoster, format!("to={n}")),
            (&hoster, format!("to={n}&dry_run=1")),
        ] {
            let uri = format!("/director/activity/revert?{query}");
            let r = app.as_user(auth, "POST", &uri, None).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{query}: {}", r.text);
        }
        assert_eq!(everything(app).await, before);

        let uri = format!("/director/activity/revert?id={modify}");
        let r = app.as_user(&hoster, "POST", &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
);

db_test!(
    a_restricted_user_reverts_only_changes_to_hosts_they_can_see,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        app.create("host", json!({"object_name": "db-1"})).await;
        let hidden = newest(app).await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.2"}),
        )
        .await;
        let visible = newest(app).await;
        app.post("/director/host?name=linux", &json!({"vars": {"a": 1}}))
            .await;
        let template = newest(app).await;
        let webop = app
            .user("webop", "operator", json!({"restrictions": ["web-*"]}))
            .await;
        let before = everything(app).await;

        let as_webop = |query: String| {
            let uri = format!("/director/activity/revert?{query}");
            let auth = webop.clone();
            async move { app.as_user(&auth, "POST", &uri, None).await }
        };
        let r = as_webop(format!("id={hidden}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
        let r = as_webop(format!("to={n}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(!r.error().contains("db-1"), "hidden names stay hidden");
        let r = as_webop(format!("id={template}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert_eq!(everything(app).await, before);

        let r = as_webop(format!("id={visible}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            app.get("/director/host?name=web-1").await.json()["address"],
            json!("127.0.0.1")
        );
    }
);

db_test!(
    a_deployment_names_the_newest_activity_entry_at_its_start,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        let r = app.post("/director/config/deploy", &json!({})).await;
        let id = r.json()["deployment_id"].as_i64().expect("a deployment");
        let d = app
            .get(&format!("/director/config/deployment?id={id}"))
            .await
            .json();
        assert_eq!(d["activity_id"], json!(n));
    }
);

db_test!(
    an_operator_without_the_users_permission_reverts_across_user_entries,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        app.user("bob", "reader", json!({})).await;
        let user_entry = newest(app).await;
        app.create("host", json!({"object_name": "web-2"})).await;
        let op = app.user("olga", "operator", json!({})).await;
        let olga_entry = newest(app).await;

        let uri = format!("/director/activity/revert?to={n}");
        let r = app.as_user(&op, "POST", &uri, None).await;

        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["skipped"], json!([olga_entry, user_entry]));
        assert_eq!(
            app.get("/director/host?name=web-2").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/director/user?name=bob").await.status,
            StatusCode::OK,
            "users are not reverted"
        );
    }
);

db_test!(
    a_restricted_user_reverts_a_span_of_their_hosts_changes_and_key_entries,
    async |app: &TestApp| {
        arrange(app).await;
        let n = newest(app).await;
        app.post("/director/host/api-key?name=web-1", &json!({}))
            .await;
        let key_entry = newest(app).await;
        app.post(
            "/director/host?name=web-1",
            &json!({"address": "127.0.0.2"}),
        )
        .await;
        let webop = app
            .user("webop", "operator", json!({"restrictions": ["web-*"]}))
            .await;
        let user_entry = newest(app).await;

        let uri = format!("/director/activity/revert?to={n}");
        let r = app.as_user(&webop, "POST", &uri, None).await;

        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["skipped"], json!([user_entry, key_entry]));
        assert_eq!(
            app.get("/director/host?name=web-1").await.json()["address"],
            json!("127.0.0.1")
        );
    }
);
