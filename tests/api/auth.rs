//! CONTRACT section 2: authentication, permissions, host restrictions, throttling.

use std::net::IpAddr;

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::{ADMIN_PASSWORD, Backend, TestApp, basic, spawn_app_with};

db_test!(
    requests_without_or_with_wrong_credentials_get_401_with_the_challenge,
    async |app: &TestApp| {
        for auth in ["", "Basic bm9ib2R5Om5vdGhpbmc=", "Bearer abc", "Basic !!!"] {
            let r = app
                .request("GET", "/director/hosts", &[("authorization", auth)], None)
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"steward\"")
            );
            assert!(r.json()["error"].is_string());
        }
        let wrong = basic("admin", "not-the-password");
        let r = app
            .request("GET", "/director/hosts", &[("authorization", &wrong)], None)
            .await;
        assert_eq!(r.error(), "Invalid credentials");
        // 401 comes before any other 4xx.
        for (method, uri, body) in [
            ("KILL", "/director/host?name=x", None),
            ("POST", "/director/host", Some(b"not json".to_vec())),
            ("GET", "/director/nothing", None),
            ("POST", "/director/hosts", None),
        ] {
            let r = app
                .request(method, uri, &[("authorization", "")], body)
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
        // Operational endpoints need none.
        assert_eq!(
            app.request("GET", "/health", &[("authorization", "")], None)
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.request("GET", "/ready", &[("authorization", "")], None)
                .await
                .status,
            StatusCode::OK
        );
    }
);

db_test!(
    each_role_gets_exactly_its_permissions_on_every_endpoint_and_method,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "m-host"})).await;
        app.create(
            "script",
            json!({"object_name": "m-script", "command": "/bin/true"}),
        )
        .await;
        let roles = [
            (
                "admin",
                basic("admin", ADMIN_PASSWORD),
                vec![
                    "hosts.read",
                    "hosts.write",
                    "scripts.read",
                    "scripts.write",
                    "users",
                    "activity.read",
                ],
            ),
            (
                "operator",
                app.user("op", "operator", json!({})).await,
                vec![
                    "hosts.read",
                    "hosts.write",
                    "scripts.read",
                    "scripts.write",
                    "activity.read",
                ],
            ),
            (
                "reader",
                app.user("rd", "reader", json!({})).await,
                vec!["hosts.read", "scripts.read", "activity.read"],
            ),
            (
                "reader+hosts.write",
                app.user("hw", "reader", json!({"permissions": ["hosts.write"]}))
                    .await,
                vec!["hosts.read", "hosts.write", "scripts.read", "activity.read"],
            ),
        ];
        let matrix: Vec<(&str, String, Option<serde_json::Value>, &str)> = vec![
            (
                "GET",
                "/director/host?name=m-host".into(),
                None,
                "hosts.read",
            ),
            (
                "HEAD",
                "/director/host?name=m-host".into(),
                None,
                "hosts.read",
            ),
            ("GET", "/director/hosts".into(), None, "hosts.read"),
            (
                "GET",
                "/director/hosts/templates".into(),
                None,
                "hosts.read",
            ),
            (
                "POST",
                "/director/host".into(),
                Some(json!({"object_name": "new-host"})),
                "hosts.write",
            ),
            (
                "POST",
                "/director/host?name=m-host".into(),
                Some(json!({"vars.x": 1})),
                "hosts.write",
            ),
            (
                "PUT",
                "/director/host?name=m-host".into(),
                Some(json!({})),
                "hosts.write",
            ),
            (
                "PATCH",
                "/director/host?name=m-host".into(),
                Some(json!({"vars": {"y": 2}})),
                "hosts.write",
            ),
            (
                "DELETE",
                "/director/host?name=new-host".into(),
                None,
                "hosts.write",
            ),
            (
                "GET",
                "/director/script?name=m-script".into(),
                None,
                "scripts.read",
            ),
            ("GET", "/director/scripts".into(), None, "scripts.read"),
            (
                "GET",
                "/director/scripts/templates".into(),
                None,
                "scripts.read",
            ),
            (
                "POST",
                "/director/script".into(),
                Some(json!({"object_name": "new-script", "command": "/bin/x"})),
                "scripts.write",
            ),
            (
                "POST",
                "/director/script?name=m-script".into(),
                Some(json!({"timeout": 5})),
                "scripts.write",
            ),
            (
                "PUT",
                "/director/script?name=m-script".into(),
                Some(json!({"command": "/bin/true"})),
                "scripts.write",
            ),
            (
                "PATCH",
                "/director/script?name=m-script".into(),
                Some(json!({"timeout": 6})),
                "scripts.write",
            ),
            (
                "DELETE",
                "/director/script?name=new-script".into(),
                None,
                "scripts.write",
            ),
            ("GET", "/director/user?name=admin".into(), None, "users"),
            ("GET", "/director/users".into(), None, "users"),
            (
                "POST",
                "/director/user?name=admin".into(),
                Some(json!({"role": "admin"})),
                "users",
            ),
            ("GET", "/director/activity".into(), None, "activity.read"),
        ];
        for (role, auth, granted) in &roles {
            for (method, uri, body, permission) in &matrix {
                let patch = *method == "PATCH";
                let body = body.as_ref().map(|b| b.to_string().into_bytes());
                let mut headers = vec![("authorization", auth.as_str())];
                if patch {
                    headers.push(("content-type", "application/merge-patch+json"));
                }
                let r = app.request(method, uri, &headers, body).await;
                let allowed = granted.contains(permission);
                if allowed {
                    assert!(
                        r.status.is_success() || r.status == StatusCode::NOT_MODIFIED,
                        "{role} {method} {uri}: {} {}",
                        r.status,
                        r.text
                    );
                } else {
                    assert_eq!(
                        r.status,
                        StatusCode::FORBIDDEN,
                        "{role} {method} {uri}: {}",
                        r.text
                    );
                    if *method != "HEAD" {
                        assert_eq!(r.error(), format!("Permission {permission} is required"));
                    }
                }
            }
        }
    }
);

db_test!(
    a_restricted_user_can_neither_see_nor_create_nor_rename_into_other_hosts,
    async |app: &TestApp| {
        app.create(
            "host",
            json!({"object_name": "linux", "object_type": "template", "vars": {"os": "linux"}}),
        )
        .await;
        for name in ["web-1", "web-2", "db-1"] {
            app.create("host", json!({"object_name": name, "imports": ["linux"]}))
                .await;
        }
        let web = app
            .user("webop", "operator", json!({"restrictions": ["web-*"]}))
            .await;
        let before = app.snapshot().await;

        let r = app
            .as_user(&web, "GET", "/director/host?name=db-1", None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "invisible, not forbidden");
        let r = app
            .as_user(&web, "GET", "/director/host?name=db-1&resolved", None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let listed = app
            .as_user(&web, "GET", "/director/hosts?count=1", None)
            .await
            .json();
        let names: Vec<&str> = listed["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["object_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["web-1", "web-2"]);
        assert_eq!(listed["total"], json!(2));
        let filtered = app
            .as_user(
                &web,
                "GET",
                "/director/hosts?imports=linux&count=1&limit=1",
                None,
            )
            .await
            .json();
        assert_eq!(filtered["total"], json!(2));
        // Templates stay readable: they are shared building blocks.
        assert_eq!(
            app.as_user(&web, "GET", "/director/host?name=linux", None)
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            app.as_user(&web, "GET", "/director/host?name=web-1&resolved", None)
                .await
                .json()["vars"],
            json!({"os": "linux"})
        );

        for (method, uri, body, status) in [
            (
                "POST",
                "/director/host",
                Some(json!({"object_name": "db-2"})),
                StatusCode::FORBIDDEN,
            ),
            (
                "PUT",
                "/director/host?name=db-2",
                Some(json!({})),
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                "/director/host?name=web-1",
                Some(json!({"object_name": "db-9"})),
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                "/director/host?name=db-1",
                Some(json!({"vars.x": 1})),
                StatusCode::NOT_FOUND,
            ),
            (
                "PUT",
                "/director/host?name=db-1",
                Some(json!({})),
                StatusCode::FORBIDDEN,
            ),
            (
                "DELETE",
                "/director/host?name=db-1",
                None,
                StatusCode::NOT_FOUND,
            ),
            (
                "POST",
                "/director/host?name=linux",
                Some(json!({"vars.x": 1})),
                StatusCode::FORBIDDEN,
            ),
            (
                "POST",
                "/director/host",
                Some(json!({"object_name": "web-tpl", "object_type": "template"})),
                StatusCode::FORBIDDEN,
            ),
        ] {
            let r = app.as_user(&web, method, uri, body.as_ref()).await;
            assert_eq!(r.status, status, "{method} {uri}: {}", r.text);
        }
        assert_eq!(app.snapshot().await, before, "nothing changed");

        let r = app
            .as_user(
                &web,
                "POST",
                "/director/host",
                Some(&json!({"object_name": "web-3", "imports": ["linux"]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = app
            .as_user(
                &web,
                "POST",
                "/director/host?name=web-3",
                Some(&json!({"object_name": "web-4"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        // Deleting a template they can see, with dependants they cannot: the
        // hidden ones are counted, not named.
        let r = app
            .as_user(&web, "DELETE", "/director/host?name=linux", None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let admin_view = app.delete("/director/host?name=linux").await;
        assert!(admin_view.error().contains("db-1"));
    }
);

db_test!(
    a_remembered_credential_skips_the_hash_and_changes_take_effect_at_once,
    async |app: &TestApp| {
        let alice = app.user("alice", "operator", json!({})).await;
        let hashes = app.auth.hashes_computed();
        for _ in 0..10 {
            assert_eq!(
                app.as_user(&alice, "GET", "/director/hosts", None)
                    .await
                    .status,
                StatusCode::OK
            );
        }
        assert_eq!(
            app.auth.hashes_computed() - hashes,
            1,
            "one hash for ten requests"
        );

        let r = app
            .post(
                "/director/user?name=alice",
                &json!({"password": "a-new-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            app.as_user(&alice, "GET", "/director/hosts", None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let new = basic("alice", "a-new-password");
        assert_eq!(
            app.as_user(&new, "GET", "/director/hosts", None)
                .await
                .status,
            StatusCode::OK
        );

        app.post("/director/user?name=alice", &json!({"disabled": true}))
            .await;
        assert_eq!(
            app.as_user(&new, "GET", "/director/hosts", None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        app.post("/director/user?name=alice", &json!({"disabled": false}))
            .await;
        assert_eq!(
            app.as_user(&new, "GET", "/director/hosts", None)
                .await
                .status,
            StatusCode::OK
        );

        app.post("/director/user?name=alice", &json!({"role": "reader"}))
            .await;
        let r = app
            .as_user(
                &new,
                "POST",
                "/director/host",
                Some(&json!({"object_name": "x"})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "a role change applies at once"
        );

        app.delete("/director/user?name=alice").await;
        assert_eq!(
            app.as_user(&new, "GET", "/director/hosts", None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
);

async fn throttled_app() -> TestApp {
    // Behind a trusted proxy on 127.0.0.1 (the test's peer), X-Forwarded-For names the client.
    let loopback: IpAddr = IpAddr::from([127, 0, 0, 1]);
    spawn_app_with(Backend::Sqlite, |c| c.trusted_proxies = vec![loopback]).await
}

#[tokio::test]
async fn wrong_credentials_are_throttled_per_address_and_user_without_locking_out_others() {
    let app = throttled_app().await;
    let wrong = basic("admin", "guess");
    let right = basic("admin", ADMIN_PASSWORD);
    let send = |ip: &'static str, auth: &str| {
        let auth = auth.to_owned();
        let app = &app;
        async move {
            app.request(
                "GET",
                "/director/hosts",
                &[("authorization", &auth), ("x-forwarded-for", ip)],
                None,
            )
            .await
        }
    };
    // Requests without credentials never count.
    for _ in 0..20 {
        assert_eq!(
            app.request(
                "GET",
                "/director/hosts",
                &[("authorization", ""), ("x-forwarded-for", "127.0.0.66")],
                None
            )
            .await
            .status,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..5 {
        assert_eq!(
            send("127.0.0.66", &wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = send("127.0.0.66", &wrong).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    assert!(r.json()["error"].is_string());
    // Even the right password waits at the throttled address...
    assert_eq!(
        send("127.0.0.66", &right).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the real user at their own address is not locked out.
    assert_eq!(send("127.0.0.10", &right).await.status, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test]
async fn an_address_guessing_many_names_is_throttled_as_a_whole() {
    let app = throttled_app().await;
    for i in 0..steward::auth::throttle::ADDRESS_FREE_FAILURES {
        let auth = basic(&format!("user{i}"), "guess");
        let r = app
            .request(
                "GET",
                "/director/hosts",
                &[("authorization", &auth), ("x-forwarded-for", "127.0.0.77")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .request(
            "GET",
            "/director/hosts",
            &[
                ("authorization", &basic("fresh", "guess")),
                ("x-forwarded-for", "127.0.0.77"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // An untrusted peer cannot pick its address through the header.
    let plain = spawn_app_with(Backend::Sqlite, |_| {}).await;
    for _ in 0..6 {
        plain
            .request(
                "GET",
                "/director/hosts",
                &[
                    ("authorization", &basic("admin", "guess")),
                    ("x-forwarded-for", "127.0.0.5"),
                ],
                None,
            )
            .await;
    }
    let r = plain
        .request(
            "GET",
            "/director/hosts",
            &[("x-forwarded-for", "127.0.0.6")],
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the peer address counted, not the header's"
    );
    app.cleanup().await;
    plain.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_is_bounded_and_does_not_starve_remembered_users() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    let app = throttled_app().await;
    // Remember admin's credential before the flood.
    assert_eq!(app.get("/director/hosts").await.status, StatusCode::OK);
    let flood_done = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for i in 0..150u32 {
        let router = app.router.clone();
        flood.push(tokio::spawn(async move {
            let request = axum::http::Request::get("/director/hosts")
                .header("authorization", basic("admin", "guess"))
                .header(
                    "x-forwarded-for",
                    format!("127.0.{}.{}", 1 + i / 200, 1 + i % 200),
                )
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(request).await.map(|r| r.status()).ok()
        }));
    }
    let watcher = {
        let flood_done = flood_done.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for task in flood {
                statuses.push(task.await.ok().flatten());
            }
            flood_done.store(true, Ordering::SeqCst);
            statuses
        })
    };
    tokio::task::yield_now().await;
    for _ in 0..5 {
        assert_eq!(app.get("/director/hosts").await.status, StatusCode::OK);
    }
    assert!(
        !flood_done.load(Ordering::SeqCst),
        "remembered users were served while the flood was still being hashed"
    );
    let statuses = watcher.await.unwrap();
    let busy = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::SERVICE_UNAVAILABLE))
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::UNAUTHORIZED))
        .count();
    assert_eq!(busy + refused, 150, "{statuses:?}");
    assert!(
        busy > 0,
        "past the waiting line, checks are refused at once instead of queueing"
    );
    assert_eq!(
        app.auth.hashes_computed(),
        1 + refused,
        "one hash per check that was not refused at once"
    );
    app.cleanup().await;
}

#[tokio::test]
#[cfg_attr(
    not(steward_postgres_tests),
    ignore = "STEWARD_TEST_DATABASE_URL was not set when the tests were built"
)]
async fn another_replica_on_postgresql_sees_a_password_change_within_the_bound() {
    let app = crate::helpers::spawn_app(Backend::Postgres).await;
    // A second replica: its own authenticator over the same database.
    let replica = steward::auth::Authenticator::new(app.store.db().clone(), None)
        .await
        .unwrap();
    assert!(replica.authenticate("admin", ADMIN_PASSWORD).await.is_ok());
    let r = app
        .post(
            "/director/user?name=admin",
            &json!({"password": "changed-elsewhere"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(
        steward::auth::authenticator::PG_POLL + std::time::Duration::from_millis(200),
    )
    .await;
    assert!(
        replica.authenticate("admin", ADMIN_PASSWORD).await.is_err(),
        "the old password is refused after the bound"
    );
    assert!(
        replica
            .authenticate("admin", "changed-elsewhere")
            .await
            .is_ok()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn over_long_names_and_passwords_get_401_before_any_hash_or_count() {
    let app = throttled_app().await;
    let hashes = app.auth.hashes_computed();
    let long_name = "n".repeat(200_000);
    for auth in [
        basic(&long_name, "guess"),
        basic("admin", &"p".repeat(200_000)),
    ] {
        for _ in 0..10 {
            let r = app
                .request(
                    "GET",
                    "/director/hosts",
                    &[("authorization", &auth), ("x-forwarded-for", "127.0.0.88")],
                    None,
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert_eq!(r.error(), "Invalid credentials");
        }
    }
    assert_eq!(app.auth.hashes_computed(), hashes, "no hash computed");
    let right = basic("admin", ADMIN_PASSWORD);
    let r = app
        .request(
            "GET",
            "/director/hosts",
            &[("authorization", &right), ("x-forwarded-for", "127.0.0.88")],
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "nothing was counted against the address"
    );
    app.cleanup().await;
}

/// `n` concurrent requests with wrong passwords from `ip`, user `user(i)`:
/// how many got each status.
async fn concurrent_guesses(
    app: &TestApp,
    ip: &str,
    n: u32,
    user: impl Fn(u32) -> String,
) -> std::collections::HashMap<StatusCode, usize> {
    use tower::ServiceExt;
    let mut tasks = Vec::new();
    for i in 0..n {
        let request = axum::http::Request::get("/director/hosts")
            .header("authorization", basic(&user(i), "guess"))
            .header("x-forwarded-for", ip)
            .body(axum::body::Body::empty())
            .unwrap();
        let router = app.router.clone();
        tasks.push(tokio::spawn(async move {
            router.oneshot(request).await.map(|r| r.status()).ok()
        }));
    }
    let mut counts = std::collections::HashMap::new();
    for task in tasks {
        let status = task.await.unwrap().unwrap();
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_for_one_user_get_no_more_hashes_than_the_limit() {
    let app = throttled_app().await;
    let counts = concurrent_guesses(&app, "127.0.9.1", 40, |_| "admin".into()).await;
    let refused = counts.get(&StatusCode::UNAUTHORIZED).copied().unwrap_or(0);
    let throttled = counts
        .get(&StatusCode::TOO_MANY_REQUESTS)
        .copied()
        .unwrap_or(0);
    assert_eq!(refused + throttled, 40, "{counts:?}");
    assert!(refused <= 5, "{refused} guesses were hashed: {counts:?}");
    assert_eq!(app.auth.hashes_computed(), refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_wrong_passwords_from_one_address_get_no_more_hashes_than_its_limit() {
    let app = throttled_app().await;
    let counts = concurrent_guesses(&app, "127.0.9.2", 100, |i| format!("nobody{i}")).await;
    let refused = counts.get(&StatusCode::UNAUTHORIZED).copied().unwrap_or(0);
    assert!(refused <= 30, "{refused} guesses were hashed: {counts:?}");
    assert!(
        counts.keys().all(|s| matches!(
            *s,
            StatusCode::UNAUTHORIZED
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
        )),
        "{counts:?}"
    );
    // The right password from another address is not affected.
    let r = app
        .request(
            "GET",
            "/director/hosts",
            &[
                ("authorization", &basic("admin", ADMIN_PASSWORD)),
                ("x-forwarded-for", "127.0.9.3"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_right_password_gives_its_reserved_attempt_back() {
    let app = throttled_app().await;
    let send = |auth: String| {
        let app = &app;
        async move {
            app.request(
                "GET",
                "/director/hosts",
                &[("authorization", &auth), ("x-forwarded-for", "127.0.9.4")],
                None,
            )
            .await
            .status
        }
    };
    // 29 wrong guesses at other names, then admin logs in (a hash, and
    // the attempt reserved for it given back): the address may still make
    // its 30th guess.
    for i in 0..29 {
        assert_eq!(
            send(basic(&format!("n{i}"), "x")).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(send(basic("admin", ADMIN_PASSWORD)).await, StatusCode::OK);
    assert_eq!(send(basic("n99", "x")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(basic("n100", "x")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// During a flood of wrong passwords from 1,400 addresses (half at a real
/// user, half at names that do not exist, about 1,200 a second as the
/// attack this was measured with), nine of ten first logins of other users
/// succeed within 5 s: the flood fills only its own user's place in the
/// hashing line, and guesses at unknown names take no place in it at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_logins_get_through_a_flood_of_wrong_passwords_from_many_addresses() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};
    use tower::ServiceExt;

    let app = throttled_app().await;
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(app.user(&format!("ops{i}"), "operator", json!({})).await);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let busy = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..100 {
        let (router, stop, sent, busy) =
            (app.router.clone(), stop.clone(), sent.clone(), busy.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let address = n % 1400;
                let name = if n % 2 == 0 {
                    "admin".to_owned()
                } else {
                    format!("nobody{n}")
                };
                let request = axum::http::Request::get("/director/hosts")
                    .header("authorization", basic(&name, "guess"))
                    .header(
                        "x-forwarded-for",
                        format!("127.1.{}.{}", address / 200, 1 + address % 200),
                    )
                    .body(axum::body::Body::empty())
                    .unwrap();
                if let Ok(r) = router.clone().oneshot(request).await
                    && r.status() == StatusCode::SERVICE_UNAVAILABLE
                {
                    busy.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut in_time = Vec::new();
    for (i, auth) in users.iter().enumerate() {
        let started = Instant::now();
        let r = app
            .request(
                "GET",
                "/director/hosts",
                &[
                    ("authorization", auth),
                    ("x-forwarded-for", &format!("127.0.2.{}", 1 + i)),
                ],
                None,
            )
            .await;
        in_time.push((r.status, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        busy.load(Ordering::Relaxed) > 0,
        "the flood ({sent} requests) kept the hashing line full"
    );
    let ok = in_time
        .iter()
        .filter(|(status, took)| *status == StatusCode::OK && *took <= Duration::from_secs(5))
        .count();
    assert!(ok >= 9, "{ok} of 10 in time: {in_time:?}");
    app.cleanup().await;
}
