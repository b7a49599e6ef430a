//! CONTRACT section 11: the Director sample scenario, answer by answer.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

db_test!(
    the_director_sample_scenario_gives_exactly_the_contracted_answers,
    async |app: &TestApp| {
        let first = json!({"object_name": "apitest", "object_type": "object", "address": "127.0.0.1", "vars": {"location": "Berlin"}});

        let r = app.post("/director/host", &first).await;
        assert_eq!(
            (r.status, r.json()),
            (StatusCode::CREATED, first.clone()),
            "1"
        );
        assert_eq!(r.header("location"), Some("/director/host?name=apitest"));

        let r = app.post("/director/host", &first).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "Trying to recreate host \"apitest\""})
            ),
            "2"
        );

        let r = app.post("/director/host?name=apitest", &first).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (StatusCode::NOT_MODIFIED, ""),
            "3"
        );

        let change = json!({"address": "127.0.0.2", "vars.event": "Icinga CAMP"});
        let r = app.post("/director/host?name=apitest", &change).await;
        assert_eq!(r.status, StatusCode::OK, "4");
        assert_eq!(
            r.json(),
            json!({"object_name": "apitest", "object_type": "object", "address": "127.0.0.2", "vars": {"location": "Berlin", "event": "Icinga CAMP"}})
        );

        let r = app.post("/director/host?name=apitest", &change).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (StatusCode::NOT_MODIFIED, ""),
            "5"
        );

        let r = app
            .post(
                "/director/host?name=apitest",
                &json!({"address": "127.0.0.2", "vars": {"event": ["Icinga", "Camp"]}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "6");
        assert_eq!(
            r.json(),
            json!({"object_name": "apitest", "object_type": "object", "address": "127.0.0.2", "vars": {"event": ["Icinga", "Camp"]}})
        );

        let put = json!({"vars": {"event": ["Icinga", "Camp"]}});
        let r = app.put("/director/host?name=apitest", &put).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::OK,
                json!({"object_name": "apitest", "object_type": "object", "vars": {"event": ["Icinga", "Camp"]}})
            ),
            "7"
        );

        let r = app.put("/director/host?name=apitest", &put).await;
        assert_eq!(
            (r.status, r.text.as_str()),
            (StatusCode::NOT_MODIFIED, ""),
            "8"
        );

        let r = app.put("/director/host?name=apitest", &json!({})).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::OK,
                json!({"object_name": "apitest", "object_type": "object"})
            ),
            "9"
        );

        let r = app
            .request("KILL", "/director/host?name=apitest", &[], None)
            .await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::BAD_REQUEST,
                json!({"error": "Unsupported method KILL"})
            ),
            "10"
        );

        let r = app.delete("/director/host?name=apitest").await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::OK,
                json!({"object_name": "apitest", "object_type": "object"})
            ),
            "11"
        );

        let r = app.get("/director/host?name=apitest").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "12");
        assert!(r.json()["error"].is_string());
    }
);
