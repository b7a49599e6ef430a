//! `/director/user` and `/director/users`: the same write semantics as objects.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

db_test!(
    users_are_created_merged_replaced_and_deleted_with_a_write_only_password,
    async |app: &TestApp| {
        let body = json!({"object_name": "bob", "password": "bob-password", "role": "operator", "restrictions": ["web-*"]});
        let r = app.post("/director/user", &body).await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.header("location"), Some("/director/user?name=bob"));
        assert_eq!(
            r.json(),
            json!({"object_name": "bob", "role": "operator", "restrictions": ["web-*"]})
        );
        assert!(!r.text.contains("bob-password") && !r.text.contains("argon2"));

        let r = app.post("/director/user", &body).await;
        assert_eq!(
            (r.status, r.error()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Trying to recreate user \"bob\"".to_owned()
            )
        );
        assert_eq!(
            app.post("/director/user?name=bob", &body).await.status,
            StatusCode::NOT_MODIFIED,
            "same password, same everything"
        );
        let r = app
            .post(
                "/director/user?name=bob",
                &json!({"permissions": ["deploy"]}),
            )
            .await;
        assert_eq!(
            r.json(),
            json!({"object_name": "bob", "role": "operator", "permissions": ["deploy"], "restrictions": ["web-*"]})
        );
        let r = app
            .put("/director/user?name=bob", &json!({"role": "reader"}))
            .await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::OK,
                json!({"object_name": "bob", "role": "reader"})
            )
        );
        assert_eq!(
            app.put("/director/user?name=bob", &json!({"role": "reader"}))
                .await
                .status,
            StatusCode::NOT_MODIFIED
        );
        let r = app
            .put(
                "/director/user?name=carol",
                &json!({"password": "carol-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);

        let list = app.get("/director/users").await.json();
        let names: Vec<&str> = list["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["object_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["admin", "bob", "carol"]);
        assert!(!app.get("/director/users").await.text.contains("password"));

        let r = app.delete("/director/user?name=bob").await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::OK,
                json!({"object_name": "bob", "role": "reader"})
            )
        );
        assert_eq!(
            app.get("/director/user?name=bob").await.status,
            StatusCode::NOT_FOUND
        );
    }
);

db_test!(
    bad_user_writes_get_422_and_change_nothing,
    async |app: &TestApp| {
        let before = app.snapshot().await;
        for body in [
            json!({"object_name": "x", "password": "short"}),
            json!({"object_name": "x"}),
            json!({"object_name": "a b", "password": "long enough"}),
            json!({"object_name": "x", "password": "long enough", "role": "root"}),
            json!({"object_name": "x", "password": "long enough", "permissions": ["everything"]}),
            json!({"object_name": "x", "password": "long enough", "restrictions": ["a/b"]}),
            json!({"object_name": "x", "password": "long enough", "password_hash": "$argon2id$..."}),
        ] {
            let r = app.post("/director/user", &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body}: {}",
                r.text
            );
        }
        assert_eq!(app.snapshot().await, before);
    }
);

db_test!(
    the_last_user_manager_cannot_be_removed_or_disabled,
    async |app: &TestApp| {
        let r = app
            .post("/director/user?name=admin", &json!({"disabled": true}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        let r = app
            .post("/director/user?name=admin", &json!({"role": "operator"}))
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(
            app.delete("/director/user?name=admin").await.status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            app.get("/director/hosts").await.status,
            StatusCode::OK,
            "admin still works"
        );
        app.user("second", "admin", json!({})).await;
        assert_eq!(
            app.post("/director/user?name=admin", &json!({"role": "operator"}))
                .await
                .status,
            StatusCode::OK
        );
    }
);
