//! CONTRACT section 1: transport rules.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

db_test!(
    responses_are_sorted_pretty_json_with_a_trailing_newline,
    async |app: &TestApp| {
        let r = app
            .post(
                "/director/host",
                &json!({"object_name": "h", "vars": {"b": 1, "a": 2}, "address": "x"}),
            )
            .await;
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.text,
            "{\n  \"address\": \"x\",\n  \"object_name\": \"h\",\n  \"object_type\": \"object\",\n  \"vars\": {\n    \"a\": 2,\n    \"b\": 1\n  }\n}\n"
        );
    }
);

db_test!(
    bodies_are_json_whatever_the_content_type,
    async |app: &TestApp| {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let r = app
            .request(
                "POST",
                "/director/host",
                &form,
                Some(b"{\"object_name\": \"h\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = app
            .request(
                "GET",
                "/director/host?name=h",
                &[("content-type", "text/plain")],
                Some(Vec::new()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
);

db_test!(
    accept_lists_with_json_are_served_and_others_get_406,
    async |app: &TestApp| {
        for accept in [
            "application/json",
            "application/json; charset=utf-8",
            "*/*",
            "application/*",
            "text/html, application/json;q=0.5",
            // Parameters, `q` values included, never refuse JSON.
            "application/json;q=0",
            "application/json; charset=utf-8; q=0",
        ] {
            let r = app
                .request("GET", "/director/hosts", &[("accept", accept)], None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{accept}");
        }
        let r = app
            .request("GET", "/director/hosts", &[("accept", "text/html")], None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    }
);

db_test!(
    methods_get_400_405_or_are_overridden_as_documented,
    async |app: &TestApp| {
        let r = app
            .request("POST", "/director/hosts", &[], Some(b"{}".to_vec()))
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            r.header("allow").is_some_and(|a| a.contains("GET")),
            "{:?}",
            r.header("allow")
        );
        assert!(r.json()["error"].is_string());

        app.create("host", json!({"object_name": "h"})).await;
        let r = app
            .request(
                "POST",
                "/director/host?name=h",
                &[("x-http-method-override", "DELETE")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.get("/director/host?name=h").await.status,
            StatusCode::NOT_FOUND
        );
        let r = app
            .request(
                "PUT",
                "/director/host?name=h",
                &[("x-http-method-override", "PUT")],
                Some(b"{}".to_vec()),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "an override naming the request's own method is honoured"
        );
        let r = app
            .request(
                "GET",
                "/director/host?name=h",
                &[("x-http-method-override", "DELETE")],
                None,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "only POST can be overridden to another method"
        );
        assert_eq!(
            app.get("/director/host?name=h").await.status,
            StatusCode::OK
        );

        let r = app
            .request("HEAD", "/director/host?name=h", &[], None)
            .await;
        assert_eq!((r.status, r.text.as_str()), (StatusCode::OK, ""));
        assert!(r.header("etag").is_some());
    }
);

db_test!(
    every_response_carries_a_request_id_and_echoes_the_clients,
    async |app: &TestApp| {
        let r = app.get("/health").await;
        assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));
        let r = app
            .request(
                "GET",
                "/director/host?name=none",
                &[("x-request-id", "abc-123")],
                None,
            )
            .await;
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
    }
);

db_test!(
    browsers_from_another_origin_are_refused,
    async |app: &TestApp| {
        let foreign = [
            ("origin", "https://evil.example"),
            ("host", "steward.local"),
        ];
        let r = app
            .request(
                "POST",
                "/director/host",
                &foreign,
                Some(b"{\"object_name\": \"x\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let same = [
            ("origin", "http://steward.local"),
            ("host", "steward.local"),
        ];
        let r = app
            .request(
                "POST",
                "/director/host",
                &same,
                Some(b"{\"object_name\": \"x\"}".to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
);

db_test!(
    health_and_ready_answer_at_the_root,
    async |app: &TestApp| {
        assert_eq!(app.get("/health").await.json(), json!({"status": "ok"}));
        assert_eq!(app.get("/ready").await.json(), json!({"status": "ready"}));
    }
);

#[tokio::test]
async fn a_base_path_prefixes_director_routes_but_not_operational_ones() {
    use crate::helpers::{Backend, spawn_app_with};
    let app = spawn_app_with(Backend::Sqlite, |c| c.base_path = "/icingaweb2".into()).await;
    let r = app
        .post("/icingaweb2/director/host", &json!({"object_name": "h"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        r.header("location"),
        Some("/icingaweb2/director/host?name=h")
    );
    assert_eq!(
        app.get("/icingaweb2/director/hosts").await.json()["objects"][0]["object_name"],
        json!("h")
    );
    assert_eq!(
        app.get("/director/hosts").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/icingaweb2/health").await.status,
        StatusCode::NOT_FOUND
    );
    app.cleanup().await;
}
