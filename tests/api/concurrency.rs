//! No lost updates: concurrent merges, renames and deletes.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::{ADMIN_PASSWORD, TestApp, basic};

db_test!(
    a_hundred_concurrent_merges_leave_a_hundred_variables,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "h"})).await;
        let router = app.router.clone();
        let mut tasks = Vec::new();
        for n in 0..100 {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                use tower::ServiceExt;
                let request = axum::http::Request::post("/director/host?name=h")
                    .header("authorization", basic("admin", ADMIN_PASSWORD))
                    .body(axum::body::Body::from(
                        json!({ format!("vars.v{n}"): n }).to_string(),
                    ))
                    .expect("request");
                router.oneshot(request).await.map(|r| r.status()).ok()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.ok().flatten(), Some(StatusCode::OK));
        }
        let vars = app.get("/director/host?name=h").await.json()["vars"].clone();
        let vars = vars.as_object().expect("vars");
        assert_eq!(vars.len(), 100);
        for n in 0..100 {
            assert_eq!(vars.get(&format!("v{n}")), Some(&json!(n)));
        }
        // The writes went in groups, each entry chained to the one before.
        let chain = steward::service::activity::verify(&app.store)
            .await
            .expect("read the log");
        assert!(
            chain.as_ref().is_ok_and(|entries| *entries >= 101),
            "{chain:?}"
        );
    }
);

db_test!(
    renames_and_deletes_racing_with_merges_leave_a_consistent_state,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "tpl", "object_type": "template"}),
        )
        .await;
        app.create("host", json!({"object_name": "a", "imports": ["tpl"]}))
            .await;
        let app_router = Arc::new(app.router.clone());
        let send = |method: &'static str, uri: String, body: serde_json::Value| {
            let router = app_router.clone();
            tokio::spawn(async move {
                use tower::ServiceExt;
                let request = axum::http::Request::builder()
                    .method(method)
                    .uri(uri)
                    .header("authorization", basic("admin", ADMIN_PASSWORD))
                    .body(axum::body::Body::from(body.to_string()))
                    .expect("request");
                (*router)
                    .clone()
                    .oneshot(request)
                    .await
                    .map(|r| r.status())
                    .ok()
            })
        };
        let mut tasks = Vec::new();
        for n in 0..30 {
            tasks.push(send(
                "POST",
                "/director/host?name=a".into(),
                json!({ format!("vars.m{n}"): n }),
            ));
            if n == 10 {
                tasks.push(send(
                    "POST",
                    "/director/host?name=tpl".into(),
                    json!({"object_name": "tpl2"}),
                ));
                tasks.push(send(
                    "POST",
                    "/director/host?name=a".into(),
                    json!({"object_name": "b"}),
                ));
            }
            if n == 20 {
                tasks.push(send("DELETE", "/director/host?name=b".into(), json!({})));
            }
        }
        for task in tasks {
            let status = task.await.ok().flatten().expect("answered");
            assert!(
                [
                    StatusCode::OK,
                    StatusCode::NOT_FOUND,
                    StatusCode::NOT_MODIFIED
                ]
                .contains(&status),
                "unexpected {status}"
            );
        }
        // Whatever the interleaving: the template was renamed, and every host
        // that still exists imports it under its new name and keeps its id.
        assert_eq!(
            app.get("/director/host?name=tpl").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get("/director/host?name=tpl2").await.status,
            StatusCode::OK
        );
        let hosts = app.get("/director/hosts").await.json();
        for host in hosts["objects"].as_array().expect("objects") {
            assert_eq!(host["imports"], json!(["tpl2"]), "{host}");
        }
        let a = app.get("/director/host?name=a").await.status;
        let b = app.get("/director/host?name=b").await.status;
        assert!(
            a == StatusCode::NOT_FOUND || b == StatusCode::NOT_FOUND,
            "the rename happened, so not both exist"
        );
        // The template can only be deleted once no host imports it.
        let hosts_left = hosts["objects"].as_array().map_or(0, Vec::len);
        let delete = app.delete("/director/host?name=tpl2").await.status;
        assert_eq!(
            delete,
            if hosts_left == 0 {
                StatusCode::OK
            } else {
                StatusCode::CONFLICT
            }
        );
    }
);
