//! CONTRACT section 6: lists, filters, keyset paging, counts and streaming.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::db_test;
use crate::helpers::TestApp;

fn names(body: &Value) -> Vec<String> {
    body["objects"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["object_name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

db_test!(
    lists_are_in_byte_order_and_separate_objects_from_templates,
    async |app: &TestApp| {
        for name in ["b", "B", "a", "_x", "A-1", "a.b"] {
            app.create("host", json!({"object_name": name})).await;
        }
        app.create(
            "host",
            json!({"object_name": "tpl", "object_type": "template"}),
        )
        .await;
        app.create("script", json!({"object_name": "s", "command": "/bin/s"}))
            .await;
        app.create(
            "script",
            json!({"object_name": "st", "object_type": "template"}),
        )
        .await;

        let r = app.get("/director/hosts").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(names(&r.json()), ["A-1", "B", "_x", "a", "a.b", "b"]);
        // Streamed output is pretty-printed exactly like the same document built whole.
        let mut pretty = serde_json::to_string_pretty(&r.json()).expect("pretty");
        pretty.push('\n');
        assert_eq!(r.text, pretty);

        assert_eq!(
            names(&app.get("/director/hosts/templates").await.json()),
            ["tpl"]
        );
        assert_eq!(names(&app.get("/director/scripts").await.json()), ["s"]);
        assert_eq!(
            names(&app.get("/director/scripts/templates").await.json()),
            ["st"]
        );
    }
);

db_test!(an_empty_list_is_an_empty_array, async |app: &TestApp| {
    let r = app.get("/director/hosts?count=1").await;
    assert_eq!(r.json(), json!({"objects": [], "total": 0}));
    assert_eq!(r.text, "{\n  \"objects\": [],\n  \"total\": 0\n}\n");
});

db_test!(
    filters_match_names_resolved_values_and_the_import_chain,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "agents", "object_type": "template", "has_agent": true, "vars": {"os": "Linux"}})).await;
        app.create(
            "host",
            json!({"object_name": "web-agents", "object_type": "template", "imports": ["agents"]}),
        )
        .await;
        app.create("host", json!({"object_name": "web-1", "imports": ["web-agents"], "display_name": "Frontend One"})).await;
        app.create(
            "host",
            json!({"object_name": "db-1", "vars": {"os": "BSD", "tags": ["prod", "db"]}}),
        )
        .await;
        app.create("host", json!({"object_name": "old-1", "disabled": true, "imports": ["agents"], "vars": {"os": "Windows"}})).await;

        let cases = [
            ("q=WEB", vec!["web-1"]),
            ("q=frontend", vec!["web-1"]),
            ("has_agent=1", vec!["old-1", "web-1"]),
            ("has_agent=n", vec!["db-1"]),
            ("disabled=y", vec!["old-1"]),
            ("disabled=0", vec!["db-1", "web-1"]),
            ("imports=agents", vec!["old-1", "web-1"]),
            ("imports=web-agents", vec!["web-1"]),
            ("vars.os=Linux", vec!["web-1"]),
            ("vars.tags=prod", vec!["db-1"]),
            ("vars.os=Linux&has_agent=true", vec!["web-1"]),
            ("q=1&disabled=n&has_agent=y", vec!["web-1"]),
        ];
        for (query, expected) in cases {
            let body = app.get(&format!("/director/hosts?{query}")).await.json();
            assert_eq!(names(&body), expected, "{query}");
            let counted = app
                .get(&format!("/director/hosts?{query}&count=1&limit=1"))
                .await
                .json();
            assert_eq!(counted["total"], json!(expected.len()), "count of {query}");
        }
        let resolved = app
            .get("/director/hosts?q=web&resolved&properties=vars,has_agent")
            .await
            .json();
        assert_eq!(
            resolved["objects"],
            json!([{"has_agent": true, "vars": {"os": "Linux"}}])
        );
    }
);

db_test!(
    keyset_pages_are_stable_while_objects_are_added_and_deleted,
    async |app: &TestApp| {
        for i in 0..25 {
            app.create("host", json!({"object_name": format!("h{i:02}")}))
                .await;
        }
        let first = app.get("/director/hosts?limit=10&count=1").await.json();
        assert_eq!(names(&first).len(), 10);
        assert_eq!(first["total"], json!(25));
        let cursor = first["next"].as_str().expect("a next cursor").to_owned();

        // Changes before the cursor do not shift the next page.
        app.delete("/director/host?name=h00").await;
        app.create("host", json!({"object_name": "a-first"})).await;
        let second = app
            .get(&format!("/director/hosts?limit=10&cursor={cursor}"))
            .await
            .json();
        assert_eq!(names(&second).first().map(String::as_str), Some("h10"));
        let third = app
            .get(&format!(
                "/director/hosts?limit=10&cursor={}",
                second["next"].as_str().expect("next")
            ))
            .await
            .json();
        assert_eq!(names(&third), ["h20", "h21", "h22", "h23", "h24"]);
        assert!(third.get("next").is_none(), "no next on the last page");

        let exact = app.get("/director/hosts?limit=25").await.json();
        assert!(
            exact.get("next").is_none(),
            "a page that ends exactly at the end has no next"
        );
    }
);

db_test!(
    paging_with_a_filter_finds_matches_across_many_rows,
    async |app: &TestApp| {
        for i in 0..120 {
            let disabled = i % 40 == 0;
            app.create(
                "host",
                json!({"object_name": format!("n{i:03}"), "disabled": disabled}),
            )
            .await;
        }
        let page = app.get("/director/hosts?disabled=1&limit=2").await.json();
        assert_eq!(names(&page), ["n000", "n040"]);
        let rest = app
            .get(&format!(
                "/director/hosts?disabled=1&limit=2&cursor={}",
                page["next"].as_str().expect("next")
            ))
            .await
            .json();
        assert_eq!(names(&rest), ["n080"]);
        assert!(rest.get("next").is_none());
    }
);

db_test!(list_parameters_are_checked, async |app: &TestApp| {
    for query in [
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=abc",
        "limit=5&cursor=garbage!",
        "count=maybe",
        "resolved=2",
    ] {
        let r = app.get(&format!("/director/hosts?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(r.json()["error"].is_string(), "{query}");
    }
    let r = app
        .get("/director/hosts?showStacktrace=1&withServices=1")
        .await;
    assert_eq!(r.status, StatusCode::OK, "unknown parameters are ignored");
});

db_test!(
    a_streamed_list_longer_than_a_batch_equals_its_pages_put_together,
    async |app: &TestApp| {
        use steward::domain::Kind;
        use steward::domain::write::create;
        use steward::store::objects::insert;
        // Seeded through the store: 1,100 rows span three of the stream's batches.
        for i in 0..1100 {
            let draft = create(
                Kind::Host,
                None,
                json!({"object_name": format!("s{i:04}"), "vars": {"i": i}})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
            insert(app.store.db(), &draft).await.unwrap();
        }
        let whole = app.get("/director/hosts?count=1").await.json();
        assert_eq!(whole["total"], json!(1100));
        let mut paged = Vec::new();
        let mut uri = "/director/hosts?limit=1000".to_owned();
        loop {
            let page = app.get(&uri).await.json();
            paged.extend(page["objects"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) => uri = format!("/director/hosts?limit=1000&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(whole["objects"], Value::Array(paged));
    }
);

db_test!(
    a_cursor_alone_continues_every_paged_list,
    async |app: &TestApp| {
        // Arrange: three hosts (three activity entries) and three deployments.
        for name in ["a", "b", "c"] {
            app.create("host", json!({"object_name": name})).await;
        }
        for _ in 0..3 {
            let r = app
                .post("/director/config/deploy?force=1&wait=30", &json!([]))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        for (list, first_page, more) in [
            ("/director/hosts", "limit=1", 2),
            ("/director/activity", "limit=1&object_type=host", 2),
            ("/director/config/deployments", "limit=1", 2),
        ] {
            let page = app.get(&format!("{list}?{first_page}")).await.json();
            let next = page["next"]
                .as_str()
                .unwrap_or_else(|| panic!("{list}: {page}"));

            // Act: the cursor alone (`limit` left at its default).
            let filters = first_page
                .trim_start_matches("limit=1")
                .trim_start_matches('&');
            let uri = format!("{list}?cursor={next}&{filters}");
            let r = app.get(&uri).await;

            // Assert: the rest of the list.
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
            let rest = r.json()["objects"].as_array().cloned().unwrap_or_default();
            assert_eq!(rest.len(), more, "{uri}: {}", r.text);
            assert_ne!(rest[0], page["objects"][0], "{uri}");
        }
    }
);
