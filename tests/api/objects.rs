//! CONTRACT sections 3 and 4: one object, every method and status.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

db_test!(
    get_views_show_set_properties_with_null_and_picked_properties,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "h1", "address": "127.10.0.1", "vars": {"a": 1}}),
        )
        .await;

        let plain = app.get("/director/host?name=h1").await;
        assert_eq!(
            plain.json(),
            json!({"object_name": "h1", "object_type": "object", "address": "127.10.0.1", "vars": {"a": 1}})
        );

        let with_null = app.get("/director/host?name=h1&withNull").await.json();
        assert_eq!(with_null["display_name"], json!(null));
        assert_eq!(with_null["groups"], json!([]));
        assert_eq!(with_null["address"], json!("127.10.0.1"));

        let picked = app
            .get("/director/host?name=h1&properties=address,display_name")
            .await
            .json();
        assert_eq!(picked, json!({"address": "127.10.0.1"}));
        let picked_null = app
            .get("/director/host?name=h1&properties=address,display_name&withNull=1")
            .await
            .json();
        assert_eq!(
            picked_null,
            json!({"address": "127.10.0.1", "display_name": null})
        );
    }
);

db_test!(
    post_with_a_name_that_does_not_exist_is_404_and_put_creates,
    async |app: &TestApp| {
        let r = app
            .post("/director/host?name=ghost", &json!({"address": "x"}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        let r = app
            .put("/director/host?name=ghost", &json!({"address": "x"}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(
            r.json(),
            json!({"object_name": "ghost", "object_type": "object", "address": "x"})
        );
        assert_eq!(r.header("location"), Some("/director/host?name=ghost"));
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "web-01.example_x"}),
            )
            .await;
        assert_eq!(
            r.header("location"),
            Some("/director/host?name=web-01.example_x")
        );

        let r = app
            .put("/director/host", &json!({"object_name": "ghost"}))
            .await;
        assert_eq!(
            (r.status, r.error()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Trying to recreate host \"ghost\"".to_owned()
            )
        );
        let r = app
            .put(
                "/director/host",
                &json!({"object_name": "fresh", "object_type": "template"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.json()["object_type"], json!("template"));
    }
);

db_test!(
    put_with_if_none_match_star_only_creates,
    async |app: &TestApp| {
        let star = [("if-none-match", "*")];
        let body = Some(b"{\"address\": \"a\"}".to_vec());
        let r = app
            .request("PUT", "/director/host?name=once", &star, body.clone())
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let before = app.snapshot().await;
        let r = app
            .request(
                "PUT",
                "/director/host?name=once",
                &star,
                Some(b"{\"address\": \"b\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    etags_name_the_version_and_drive_conditional_requests,
    async |app: &TestApp| {
        let created = app
            .post(
                "/director/host",
                &json!({"object_name": "e1", "address": "a"}),
            )
            .await;
        let etag = created.header("etag").expect("ETag on create").to_owned();
        let got = app.get("/director/host?name=e1").await;
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        assert_eq!(
            app.get("/director/host?name=e1&withNull")
                .await
                .header("etag"),
            Some(etag.as_str())
        );

        let r = app
            .request(
                "GET",
                "/director/host?name=e1",
                &[("if-none-match", &etag)],
                None,
            )
            .await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::NOT_MODIFIED, ""));

        let before = app.snapshot().await;
        let stale = [("if-match", "\"0000\"")];
        let r = app
            .request(
                "POST",
                "/director/host?name=e1",
                &stale,
                Some(b"{\"address\": \"b\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        // If-Match is checked before deciding 304.
        let r = app
            .request(
                "POST",
                "/director/host?name=e1",
                &stale,
                Some(b"{\"address\": \"a\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        let r = app
            .request("DELETE", "/director/host?name=e1", &stale, None)
            .await;
        assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(app.snapshot().await, before);

        let current = [("if-match", etag.as_str())];
        let r = app
            .request(
                "POST",
                "/director/host?name=e1",
                &current,
                Some(b"{\"address\": \"b\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let new_etag = r.header("etag").expect("ETag on write").to_owned();
        assert_ne!(new_etag, etag);
        assert_eq!(
            app.get("/director/host?name=e1").await.header("etag"),
            Some(new_etag.as_str())
        );
        let r = app
            .request(
                "GET",
                "/director/host?name=e1",
                &[("if-none-match", &etag)],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
);

db_test!(
    resending_what_get_returned_or_what_was_posted_answers_304,
    async |app: &TestApp| {
        let posted = json!({
            "object_name": "n1", "object_type": "object", "address": "a", "has_agent": "y", "agent_port": "5665",
            "display_name": "", "notes": null, "groups": ["g", "g"], "disabled": "n", "vars": {"x": "", "y": null},
            "check_interval": "5m", "flapping_threshold_high": "30", "unknown_but_null": null
        });
        let created = app.post("/director/host", &posted).await;
        assert_eq!(created.status, StatusCode::CREATED);
        assert_eq!(
            created.json(),
            json!({"object_name": "n1", "object_type": "object", "address": "a", "has_agent": true, "agent_port": 5665,
               "groups": ["g"], "vars": {"x": ""}, "check_interval": 300, "flapping_threshold_high": 30})
        );
        let r = app.post("/director/host?name=n1", &posted).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        let r = app.post("/director/host?name=n1", &created.json()).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        let with_null = app.get("/director/host?name=n1&withNull").await.json();
        let r = app.put("/director/host?name=n1", &with_null).await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        let r = app
            .post(
                "/director/host?name=n1",
                &json!({"groups": ["g"], "vars": {"x": ""}, "disabled": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    }
);

db_test!(
    object_type_cannot_change_by_any_method,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "fixed"})).await;
        let before = app.snapshot().await;
        let to_template = json!({"object_type": "template"});
        assert_eq!(
            app.post("/director/host?name=fixed", &to_template)
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.put("/director/host?name=fixed", &to_template)
                .await
                .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let r = app
            .patch(
                "/director/host?name=fixed",
                "application/merge-patch+json",
                &to_template,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let ops = json!([{"op": "replace", "path": "/object_type", "value": "template"}]);
        let r = app
            .patch(
                "/director/host?name=fixed",
                "application/json-patch+json",
                &ops,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    patch_applies_merge_and_json_patches_to_the_stored_object,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "p1", "address": "a", "vars": {"keep": 1, "drop": 2}}),
        )
        .await;

        let r = app
            .patch(
                "/director/host?name=p1",
                "application/merge-patch+json",
                &json!({"vars": {"drop": null, "new": 3}, "display_name": "P"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json(),
            json!({"object_name": "p1", "object_type": "object", "address": "a", "display_name": "P", "vars": {"keep": 1, "new": 3}})
        );
        let r = app
            .patch(
                "/director/host?name=p1",
                "application/merge-patch+json",
                &json!({"display_name": "P"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);

        let ops = json!([
            {"op": "test", "path": "/address", "value": "a"},
            {"op": "add", "path": "/groups/-", "value": "linux"},
            {"op": "remove", "path": "/vars/keep"}
        ]);
        let r = app
            .patch(
                "/director/host?name=p1",
                "application/json-patch+json; charset=utf-8",
                &ops,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["groups"], json!(["linux"]));
        assert_eq!(r.json()["vars"], json!({"new": 3}));

        let before = app.snapshot().await;
        let failing = json!([{"op": "test", "path": "/address", "value": "zzz"}, {"op": "remove", "path": "/address"}]);
        let r = app
            .patch(
                "/director/host?name=p1",
                "application/json-patch+json",
                &failing,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let invalid = json!([{"op": "remove", "path": "/nothing/here"}]);
        assert_eq!(
            app.patch(
                "/director/host?name=p1",
                "application/json-patch+json",
                &invalid
            )
            .await
            .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let not_a_patch = json!([{"op": "explode", "path": "/address"}]);
        assert_eq!(
            app.patch(
                "/director/host?name=p1",
                "application/json-patch+json",
                &not_a_patch
            )
            .await
            .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let bad_value = json!({"agent_port": "many"});
        assert_eq!(
            app.patch(
                "/director/host?name=p1",
                "application/merge-patch+json",
                &bad_value
            )
            .await
            .status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let r = app
            .patch(
                "/director/host?name=p1",
                "application/json",
                &json!({"address": "b"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(app.snapshot().await, before);

        let r = app
            .patch(
                "/director/host?name=nobody",
                "application/merge-patch+json",
                &json!({"address": "b"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
);

db_test!(
    delete_answers_the_deleted_object_and_404_afterwards,
    async |app: &TestApp| {
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime", "timeout": "10"}),
        )
        .await;
        let r = app.delete("/director/script?name=uptime").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.json(),
            json!({"object_name": "uptime", "object_type": "object", "command": "/usr/bin/uptime", "timeout": 10})
        );
        assert_eq!(
            app.delete("/director/script?name=uptime").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/director/script?name=uptime").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

db_test!(
    scripts_check_names_commands_and_arguments,
    async |app: &TestApp| {
        let ok = app.post("/director/script", &json!({"object_name": "check_disk", "command": "/usr/lib/nagios/plugins/check_disk", "arguments": ["-w", "10%", "-w"], "description": "disk"})).await;
        assert_eq!(ok.status, StatusCode::CREATED);
        assert_eq!(ok.json()["arguments"], json!(["-w", "10%"]));
        let before = app.snapshot().await;
        for (body, why) in [
            (
                json!({"object_name": "a.b", "command": "/bin/true"}),
                "dot in a script name",
            ),
            (
                json!({"object_name": "x", "command": "bin/true"}),
                "relative command",
            ),
            (
                json!({"object_name": "x", "command": "/usr/bin/../true"}),
                "dot-dot segment",
            ),
            (
                json!({"object_name": "x", "command": "/usr/bin/tr ue"}),
                "whitespace",
            ),
            (
                json!({"object_name": "x", "command": "/usr/bin/\u{1}"}),
                "control character",
            ),
            (
                json!({"object_name": "x", "command": "/bin/true", "timeout": 0}),
                "timeout below 1",
            ),
            (
                json!({"object_name": "x", "command": "/bin/true", "arguments": [1]}),
                "non-string argument",
            ),
            (
                json!({"object_name": "x", "command": "/bin/true", "address": "a"}),
                "host property on a script",
            ),
        ] {
            let r = app.post("/director/script", &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{why}: {}",
                r.text
            );
            assert!(r.json()["error"].is_string(), "{why}");
        }
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    a_hosts_scripts_must_exist_and_a_listed_script_cannot_be_deleted,
    async |app: &TestApp| {
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        )
        .await;
        app.create(
            "script",
            json!({"object_name": "base-script", "object_type": "template"}),
        )
        .await;
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "h", "scripts": ["uptime", "missing"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.error().contains("missing"), "{}", r.error());
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "h", "scripts": ["base-script"]}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a script template is not a script object"
        );

        app.create("host", json!({"object_name": "h", "scripts": ["uptime"]}))
            .await;
        let r = app.delete("/director/script?name=uptime").await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(
            r.error().contains("\"h\""),
            "names the dependant: {}",
            r.error()
        );
        app.post("/director/host?name=h", &json!({"scripts": null}))
            .await;
        assert_eq!(
            app.delete("/director/script?name=uptime").await.status,
            StatusCode::OK
        );
    }
);

db_test!(
    renaming_updates_every_reference_and_the_dependants_etags,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "base", "object_type": "template", "vars": {"v": 1}}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "mid", "object_type": "template", "imports": ["base"]}),
        )
        .await;
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "h", "imports": ["mid", "base"], "scripts": ["uptime"]}),
        )
        .await;
        let h_etag = app
            .get("/director/host?name=h")
            .await
            .header("etag")
            .map(str::to_owned);

        let r = app
            .post("/director/host?name=base", &json!({"object_name": "root"}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["object_name"], json!("root"));
        assert_eq!(
            app.get("/director/host?name=base").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/director/host?name=mid").await.json()["imports"],
            json!(["root"])
        );
        let h = app.get("/director/host?name=h").await;
        assert_eq!(h.json()["imports"], json!(["mid", "root"]));
        assert_ne!(
            h.header("etag").map(str::to_owned),
            h_etag,
            "a dependant gets a new ETag"
        );
        assert_eq!(
            app.get("/director/host?name=h&resolved").await.json()["vars"],
            json!({"v": 1})
        );

        let r = app
            .put(
                "/director/script?name=uptime",
                &json!({"object_name": "up", "command": "/usr/bin/uptime"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.get("/director/host?name=h").await.json()["scripts"],
            json!(["up"])
        );

        let r = app
            .patch(
                "/director/host?name=h",
                "application/merge-patch+json",
                &json!({"object_name": "h2"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.get("/director/host?name=h2").await.status,
            StatusCode::OK
        );

        app.create("host", json!({"object_name": "taken"})).await;
        let before = app.snapshot().await;
        let r = app
            .post("/director/host?name=h2", &json!({"object_name": "taken"}))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = app
            .post(
                "/director/host?name=h2",
                &json!({"object_name": "bad name"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    unknown_properties_are_refused_unless_null,
    async |app: &TestApp| {
        let r = app
            .post("/director/host", &json!({"object_name": "u", "foo": 1}))
            .await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "Trying to set invalid key \"foo\""})
            )
        );
        let r = app.post("/director/host", &json!({"object_name": "u", "foo": null, "check_command": "hostalive", "zone": "master"})).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(
            r.json(),
            json!({"object_name": "u", "object_type": "object", "check_command": "hostalive", "zone": "master"})
        );
    }
);

db_test!(names_are_case_sensitive, async |app: &TestApp| {
    app.create("host", json!({"object_name": "Web"})).await;
    app.create("host", json!({"object_name": "web"})).await;
    assert_eq!(
        app.get("/director/host?name=WEB").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/director/host?name=Web").await.json()["object_name"],
        json!("Web")
    );
});

db_test!(
    an_empty_argument_list_means_no_arguments_and_is_kept_apart_from_unset,
    async |app: &TestApp| {
        // Unset: withNull shows null, and re-posting that view changes nothing.
        app.create(
            "script",
            json!({"object_name": "any", "command": "/bin/any"}),
        )
        .await;
        let view = app.get("/director/script?name=any&withNull=1").await.json();
        assert_eq!(view["arguments"], json!(null));
        assert_eq!(view["imports"], json!([]));
        for method in ["POST", "PUT"] {
            let r = app
                .request(
                    method,
                    "/director/script?name=any",
                    &[],
                    Some(view.to_string().into_bytes()),
                )
                .await;
            assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{method}: {}", r.text);
        }

        // `[]` is a value: stored, shown, changed to and from.
        let none = app
            .post(
                "/director/script",
                &json!({"object_name": "none", "command": "/bin/none", "arguments": []}),
            )
            .await;
        assert_eq!(none.status, StatusCode::CREATED, "{}", none.text);
        assert_eq!(none.json()["arguments"], json!([]));
        assert_eq!(
            app.get("/director/script?name=none").await.json()["arguments"],
            json!([])
        );
        let view = app
            .get("/director/script?name=none&withNull=1")
            .await
            .json();
        assert_eq!(view["arguments"], json!([]));
        let again = app.post("/director/script?name=none", &view).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text);

        let r = app
            .post("/director/script?name=any", &json!({"arguments": []}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "[] is not unset: {}", r.text);
        assert_eq!(r.json()["arguments"], json!([]));
        let r = app
            .post("/director/script?name=any", &json!({"arguments": []}))
            .await;
        assert_eq!(r.status, StatusCode::NOT_MODIFIED);
        let r = app
            .post("/director/script?name=any", &json!({"arguments": null}))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.json().get("arguments").is_none());

        // An own `[]` overrides a template's list.
        app.create(
            "script",
            json!({"object_name": "verbose", "object_type": "template", "arguments": ["-v"]}),
        )
        .await;
        app.create(
            "script",
            json!({"object_name": "quiet", "command": "/bin/quiet", "imports": ["verbose"], "arguments": []}),
        )
        .await;
        let resolved = app
            .get("/director/script?name=quiet&resolved=1")
            .await
            .json();
        assert_eq!(resolved["arguments"], json!([]));

        // The signed allowlist tells `[]` from null.
        app.create(
            "host",
            json!({"object_name": "h", "has_agent": true, "scripts": ["none", "any", "quiet"]}),
        )
        .await;
        let preview = app.get("/director/host/allowlist?name=h").await.json();
        let arguments: Vec<(serde_json::Value, serde_json::Value)> =
            preview["allowlist"]["scripts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["name"].clone(), s["arguments"].clone()))
                .collect();
        assert_eq!(
            arguments,
            [
                (json!("any"), json!(null)),
                (json!("none"), json!([])),
                (json!("quiet"), json!([]))
            ]
        );
    }
);

db_test!(
    directors_other_host_properties_are_stored_returned_and_compared,
    async |app: &TestApp| {
        // Arrange: what a Director export or curl script sends for a host.
        let body = json!({
            "object_name": "d1",
            "address": "127.0.0.1",
            "action_url": "http://127.0.0.1/act?h=$host.name$",
            "custom_endpoint_name": "d1-endpoint",
            "template_choice": "linux-choices",
            "uuid": "2a1c2b94-4d51-4c3a-9d40-2f1fcd1b7a11",
            "check_interval": "1m 30s",
            "retry_interval": "1h 5m",
            "check_timeout": "45",
        });

        // Act
        let created = app.post("/director/host", &body).await;

        // Assert: stored and returned, intervals normalised to seconds.
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let shown = app.get("/director/host?name=d1").await.json();
        for key in [
            "action_url",
            "custom_endpoint_name",
            "template_choice",
            "uuid",
        ] {
            assert_eq!(shown[key], body[key], "{key}: {shown}");
        }
        assert_eq!(shown["check_interval"], json!(90));
        assert_eq!(shown["retry_interval"], json!(3900));
        assert_eq!(shown["check_timeout"], json!(45));
        // Compared like the others: the same body again changes nothing,
        // and the interval as seconds is the same value.
        let again = app.post("/director/host?name=d1", &body).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{}", again.text);
        let seconds = app
            .post("/director/host?name=d1", &json!({"check_interval": 90}))
            .await;
        assert_eq!(seconds.status, StatusCode::NOT_MODIFIED, "{}", seconds.text);
        let changed = app
            .post(
                "/director/host?name=d1",
                &json!({"action_url": "http://127.0.0.1/other"}),
            )
            .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);

        // Refused: intervals Director refuses too, and the key (a secret).
        let before = app.snapshot().await;
        for bad in [
            json!({"check_interval": "1m30s"}),
            json!({"check_interval": "5x"}),
            json!({"check_interval": "-5m"}),
            json!({"check_interval": "1.5m"}),
            json!({"retry_interval": "   "}),
            json!({"api_key": "0123456789abcdef"}),
        ] {
            let r = app.post("/director/host?name=d1", &bad).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{bad}: {}",
                r.text
            );
        }
        let key = app
            .post(
                "/director/host?name=d1",
                &json!({"api_key": "0123456789abcdef"}),
            )
            .await;
        assert!(
            key.error().contains("/director/host/api-key"),
            "{}",
            key.text
        );
        assert!(
            !key.text.contains("0123456789abcdef"),
            "the value is not echoed"
        );
        assert_eq!(app.snapshot().await, before, "changed nothing");
    }
);

db_test!(
    inert_director_properties_do_not_change_what_is_deployed,
    async |app: &TestApp| {
        app.create(
            "script",
            json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "a1", "has_agent": true, "address": "127.0.0.1", "scripts": ["uptime"]}),
        )
        .await;
        let before = app.get("/director/host/allowlist?name=a1").await.json()["checksum"].clone();
        let r = app
            .post(
                "/director/host?name=a1",
                &json!({"action_url": "http://127.0.0.1/a", "custom_endpoint_name": "e1"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let after = app.get("/director/host/allowlist?name=a1").await.json()["checksum"].clone();
        assert_eq!(before, after);
    }
);

db_test!(
    numbers_are_kept_exactly_or_refused_never_changed,
    async |app: &TestApp| {
        // Kept: integers within 64 bits, and decimals a double holds (the
        // value, not always the spelling: 1.5e300 comes back as 1.5e+300).
        let body = br#"{"object_name": "n1", "vars": {"u": 12345678901234567890, "i": -9223372036854775808, "d": 0.1, "e": 1.5e300}}"#;
        let r = app
            .request("POST", "/director/host", &[], Some(body.to_vec()))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let shown = app.get("/director/host?name=n1").await;
        for kept in [
            "12345678901234567890",
            "-9223372036854775808",
            "0.1",
            "1.5e+300",
        ] {
            assert!(shown.text.contains(kept), "{kept}: {}", shown.text);
        }

        // Refused with 422, and nothing changes: what a double cannot hold.
        let before = app.snapshot().await;
        for (uri, value) in [
            (
                "/director/host",
                r#"{"object_name": "n2", "vars": {"big": 123456789012345678901234567890}}"#,
            ),
            (
                "/director/host?name=n1",
                r#"{"vars.big": 123456789012345678901234567890}"#,
            ),
            (
                "/director/host?name=n1",
                r#"{"vars": {"x": [1, {"y": 1.00000000000000000001}]}}"#,
            ),
            ("/director/host?name=n1", r#"{"vars.tiny": 1e-400}"#),
        ] {
            let r = app
                .request("POST", uri, &[], Some(value.as_bytes().to_vec()))
                .await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{value}: {}",
                r.text
            );
            assert!(r.error().contains("cannot be kept exactly"), "{}", r.text);
        }
        assert_eq!(app.snapshot().await, before, "changed nothing");
    }
);
