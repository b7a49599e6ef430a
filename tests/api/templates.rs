//! CONTRACT sections 4 (integrity) and 5: templates, imports and the resolved view.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

async fn template(app: &TestApp, kind: &str, body: serde_json::Value) {
    let mut body = body;
    body["object_type"] = json!("template");
    app.create(kind, body).await;
}

db_test!(
    templates_share_the_name_space_and_resolve_along_a_diamond,
    async |app: &TestApp| {
        app.create("script", json!({"object_name": "s1", "command": "/bin/s1"}))
            .await;
        app.create("script", json!({"object_name": "s2", "command": "/bin/s2"}))
            .await;
        app.create("script", json!({"object_name": "s3", "command": "/bin/s3"}))
            .await;
        template(app, "host", json!({"object_name": "base", "vars": {"os": "linux", "v": "base"}, "has_agent": true, "scripts": ["s1"], "disabled": true})).await;
        template(app, "host", json!({"object_name": "left", "imports": ["base"], "vars": {"v": "left"}, "scripts": ["s2"]})).await;
        template(app, "host", json!({"object_name": "right", "imports": ["base"], "vars": {"v": "right"}, "agent_port": 5665})).await;
        app.create("host", json!({"object_name": "h", "imports": ["left", "right"], "scripts": ["s3", "s1"], "address": "a"})).await;

        let t = app.get("/director/host?name=base").await;
        assert_eq!(t.json()["object_type"], json!("template"));

        let r = app.get("/director/host?name=h&resolved").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json(),
            json!({
                "object_name": "h", "object_type": "object", "address": "a", "agent_port": 5665, "has_agent": true,
                // The chain is left, base, right (base keeps its last position).
                "scripts": ["s2", "s1", "s3"], "vars": {"os": "linux", "v": "right"}
            })
        );
        let plain_etag = app
            .get("/director/host?name=h")
            .await
            .header("etag")
            .map(str::to_owned);
        let resolved_etag = r.header("etag").map(str::to_owned);
        assert_ne!(plain_etag, resolved_etag);

        // Changing an ancestor changes the resolved ETag, not the plain one.
        app.post("/director/host?name=base", &json!({"vars.os": "bsd"}))
            .await;
        let again = app.get("/director/host?name=h&resolved=1").await;
        assert_eq!(again.json()["vars"]["os"], json!("bsd"));
        assert_ne!(again.header("etag").map(str::to_owned), resolved_etag);
        assert_eq!(
            app.get("/director/host?name=h")
                .await
                .header("etag")
                .map(str::to_owned),
            plain_etag
        );

        let with_null = app
            .get("/director/host?name=h&resolved&withNull")
            .await
            .json();
        assert!(
            with_null.get("imports").is_none(),
            "the resolved view omits imports"
        );
        assert_eq!(
            with_null["disabled"],
            json!(null),
            "disabled is not inherited"
        );
    }
);

db_test!(
    imports_must_name_existing_templates_of_the_same_kind,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "plain-host"}))
            .await;
        template(app, "script", json!({"object_name": "script-tpl"})).await;
        template(app, "host", json!({"object_name": "ok-tpl"})).await;
        let before = app.snapshot().await;
        for imports in [
            json!(["nope"]),
            json!(["plain-host"]),
            json!(["script-tpl"]),
        ] {
            let r = app
                .post(
                    "/director/host",
                    &json!({"object_name": "x", "imports": imports}),
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{imports}: {}",
                r.text
            );
        }
        assert_eq!(app.snapshot().await, before);
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "x", "imports": ["", "ok-tpl", ""]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.json()["imports"], json!(["ok-tpl"]));
    }
);

db_test!(
    import_loops_and_self_imports_are_refused,
    async |app: &TestApp| {
        template(app, "host", json!({"object_name": "a"})).await;
        template(app, "host", json!({"object_name": "b", "imports": ["a"]})).await;
        template(app, "host", json!({"object_name": "c", "imports": ["b"]})).await;
        let before = app.snapshot().await;
        let r = app
            .post("/director/host?name=a", &json!({"imports": ["c"]}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.error().contains("loop"), "{}", r.error());
        let r = app
            .post("/director/host?name=a", &json!({"imports": ["a"]}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "self", "object_type": "template", "imports": ["self"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    a_template_still_imported_cannot_be_deleted,
    async |app: &TestApp| {
        template(app, "host", json!({"object_name": "t"})).await;
        app.create("host", json!({"object_name": "h1", "imports": ["t"]}))
            .await;
        app.create("host", json!({"object_name": "h2", "imports": ["t"]}))
            .await;
        let before = app.snapshot().await;
        let r = app.delete("/director/host?name=t").await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(
            r.error().contains("\"h1\"") && r.error().contains("\"h2\""),
            "{}",
            r.error()
        );
        assert_eq!(app.snapshot().await, before);
        app.delete("/director/host?name=h1").await;
        app.post("/director/host?name=h2", &json!({"imports": []}))
            .await;
        assert_eq!(
            app.delete("/director/host?name=t").await.status,
            StatusCode::OK
        );
    }
);

db_test!(
    an_empty_value_never_overrides_an_inherited_one,
    async |app: &TestApp| {
        template(
            app,
            "host",
            json!({"object_name": "t", "groups": ["g"], "vars": {"a": 1}, "address": "t-addr"}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "h", "imports": ["t"], "groups": [], "vars": {}, "address": ""}),
        )
        .await;
        let r = app.get("/director/host?name=h&resolved").await.json();
        assert_eq!(
            (r["groups"].clone(), r["vars"].clone(), r["address"].clone()),
            (json!(["g"]), json!({"a": 1}), json!("t-addr"))
        );
    }
);

db_test!(
    another_server_sees_a_template_change_at_once,
    async |app: &TestApp| {
        template(
            app,
            "host",
            json!({"object_name": "base", "vars": {"v": "one"}}),
        )
        .await;
        app.create("host", json!({"object_name": "h", "imports": ["base"]}))
            .await;
        let replica = app.replica().await;
        let vars = |r: crate::helpers::TestResponse| r.json()["vars"].clone();
        // The replica reads the templates once and keeps them.
        assert_eq!(
            vars(replica.get("/director/host?name=h&resolved").await),
            json!({"v": "one"})
        );

        // A change made by the first server shows in the replica's next read,
        // in single reads and in lists.
        let r = app
            .post("/director/host?name=base", &json!({"vars.v": "two"}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            vars(replica.get("/director/host?name=h&resolved").await),
            json!({"v": "two"})
        );
        let list = replica.get("/director/hosts?resolved&limit=10").await;
        assert_eq!(list.json()["objects"][0]["vars"], json!({"v": "two"}));

        // A template created elsewhere may be imported through the replica;
        // one deleted elsewhere may not.
        template(app, "host", json!({"object_name": "new"})).await;
        let r = replica
            .post(
                "/director/host?name=h",
                &json!({"imports": ["base", "new"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        template(app, "host", json!({"object_name": "gone"})).await;
        assert_eq!(
            app.delete("/director/host?name=gone").await.status,
            StatusCode::OK
        );
        let r = replica
            .post("/director/host?name=h", &json!({"imports": ["gone"]}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

        // A rename elsewhere: the host follows, and so does its resolved view.
        let r = app
            .post(
                "/director/host?name=base",
                &json!({"object_name": "renamed", "vars.v": "three"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let resolved = replica.get("/director/host?name=h&resolved").await.json();
        assert_eq!(resolved["vars"], json!({"v": "three"}));
        let own = replica.get("/director/host?name=h").await.json();
        assert_eq!(own["imports"], json!(["renamed", "new"]));
    }
);
