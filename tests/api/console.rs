//! The web console under `/ui/`: pages through the real router, their
//! headers, authentication and the cross-site refusal, the same
//! permissions and host restrictions as the API, and the deploy action's
//! CSRF token.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::{ADMIN_PASSWORD, TestApp, TestResponse, basic};

const EVIL: &str = "<script>alert(1)</script>";

/// A page as a browser asks for it.
async fn page(app: &TestApp, auth: &str, uri: &str) -> TestResponse {
    app.request(
        "GET",
        uri,
        &[
            ("authorization", auth),
            ("accept", "text/html,application/xhtml+xml;q=0.9"),
        ],
        None,
    )
    .await
}

fn admin() -> String {
    basic("admin", ADMIN_PASSWORD)
}

/// The form token a page carries.
fn csrf_of(page: &TestResponse) -> String {
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = page
        .text
        .find(marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no csrf token in: {}", page.text));
    page.text[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Posts the deploy form as a browser would, from the console's origin.
async fn post_deploy(app: &TestApp, auth: &str, form: &str) -> TestResponse {
    app.request(
        "POST",
        "/ui/deploy",
        &[
            ("authorization", auth),
            ("accept", "text/html"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(form.as_bytes().to_vec()),
    )
    .await
}

async fn deployments(app: &TestApp) -> usize {
    app.get("/director/config/deployments").await.json()["objects"]
        .as_array()
        .map_or(0, Vec::len)
}

async fn world(app: &TestApp) {
    app.create(
        "script",
        json!({"object_name": "uptime", "command": "/usr/bin/uptime"}),
    )
    .await;
    app.create(
        "host",
        // Port 1 on loopback: nothing listens, so a deploy finds every
        // agent unreachable at once.
        json!({"object_name": "base", "object_type": "template", "has_agent": true, "agent_port": 1,
               "vars": {"env": "base", "tier": 1}, "scripts": ["uptime"]}),
    )
    .await;
    app.create(
        "host",
        json!({"object_name": "web", "object_type": "template", "imports": ["base"], "vars": {"env": "web"}}),
    )
    .await;
    for name in ["web-01", "web-02", "db-01"] {
        app.create(
            "host",
            json!({"object_name": name, "imports": ["web"], "address": "127.0.0.1", "vars": {"note": EVIL}}),
        )
        .await;
    }
}

db_test!(
    every_page_is_html_with_the_policy_and_answers_a_browsers_accept,
    async |app: &TestApp| {
        world(app).await;
        for uri in [
            "/ui/",
            "/ui/host?name=web-01",
            "/ui/template?name=web",
            "/ui/deployments",
            "/ui/activity",
            "/ui/pending",
        ] {
            let r = page(app, &admin(), uri).await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
            assert_eq!(
                r.header("content-type"),
                Some("text/html; charset=utf-8"),
                "{uri}"
            );
            let csp = r.header("content-security-policy").unwrap_or_default();
            assert!(csp.contains("script-src 'self'"), "{uri}: {csp}");
            assert!(csp.contains("default-src 'none'"), "{uri}: {csp}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
            assert!(r.text.contains("static/console.css"), "{uri}");
            // A var's value is user input: shown, escaped, never markup.
            assert!(!r.text.contains(EVIL), "{uri} shows markup from input");
        }
        let host = page(app, &admin(), "/ui/host?name=web-01").await;
        assert!(
            host.text
                .contains("&#60;script&#62;alert(1)&#60;/script&#62;")
        );
        for asset in ["/ui/static/console.css", "/ui/static/console.js"] {
            let r = page(app, &admin(), asset).await;
            assert_eq!(r.status, StatusCode::OK, "{asset}");
            assert!(r.header("content-security-policy").is_some());
        }
        // The API still answers JSON only.
        let api = page(app, &admin(), "/director/hosts").await;
        assert_eq!(api.status, StatusCode::NOT_ACCEPTABLE);
        // The console's own 404 and 400 are pages too.
        let missing = page(app, &admin(), "/ui/nope").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(
            missing.text.contains("<h1>404 Not Found</h1>"),
            "{}",
            missing.text
        );
        let bad = page(app, &admin(), "/ui/deployment?id=x").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.header("content-type"), Some("text/html; charset=utf-8"));
        let none = page(app, &admin(), "/ui/host?name=nope").await;
        assert_eq!(none.status, StatusCode::NOT_FOUND);
        let redirect = page(app, &admin(), "/ui").await;
        assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.header("location"), Some("/ui/"));
    }
);

db_test!(
    pages_need_credentials_and_refuse_other_sites,
    async |app: &TestApp| {
        let r = app
            .request(
                "GET",
                "/ui/",
                &[("authorization", ""), ("accept", "text/html")],
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.text.contains("<h1>401 Unauthorized</h1>"), "{}", r.text);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic"))
        );
        let wrong = page(app, &basic("admin", "wrong"), "/ui/").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(
            !wrong.text.contains("wrong"),
            "the password is never echoed"
        );
        let cross = app
            .request(
                "GET",
                "/ui/",
                &[("sec-fetch-site", "cross-site"), ("accept", "text/html")],
                None,
            )
            .await;
        assert_eq!(cross.status, StatusCode::FORBIDDEN);
        let foreign = app
            .request(
                "POST",
                "/ui/deploy",
                &[
                    ("origin", "http://127.0.0.9:1"),
                    ("host", "127.0.0.1:7440"),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                Some(b"csrf=x".to_vec()),
            )
            .await;
        assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    }
);

db_test!(
    the_fleet_filters_pages_by_keyset_and_shows_agent_states,
    async |app: &TestApp| {
        world(app).await;
        let all = page(app, &admin(), "/ui/").await;
        assert!(all.text.contains("<b id=\"total\">3</b>"), "{}", all.text);
        for name in ["web-01", "web-02", "db-01"] {
            assert!(all.text.contains(&format!("host?name={name}\"")), "{name}");
        }
        assert!(
            all.text.contains("never seen"),
            "no agent has been recorded"
        );
        assert!(!all.text.contains(">base<"), "templates are not hosts");
        let uncounted = page(app, &admin(), "/ui/?q=web").await;
        assert!(
            uncounted
                .text
                .contains("id=\"count\" href=\"./?q=web&#38;count=1\""),
            "{}",
            uncounted.text
        );
        let filtered = page(app, &admin(), "/ui/?q=web&count=1").await;
        assert!(filtered.text.contains("<b id=\"total\">2</b>"));
        assert!(!filtered.text.contains("host?name=db-01"));
        // Counted, the states are of every matching host, not of the page.
        let one = page(app, &admin(), "/ui/?limit=1&count=1").await;
        assert!(one.text.contains("<b id=\"total\">3</b>"), "{}", one.text);
        assert!(one.text.contains("<b>3</b> never seen"), "{}", one.text);
        assert!(one.text.contains("every matching host)"));
        let by_var = page(app, &admin(), "/ui/?var=env%3Dweb&count=1").await;
        assert!(
            by_var.text.contains("<b id=\"total\">3</b>"),
            "{}",
            by_var.text
        );
        let by_other_var = page(app, &admin(), "/ui/?var=env%3Dbase&count=1").await;
        assert!(by_other_var.text.contains("<b id=\"total\">0</b>"));
        // Keyset pages: db-01, then web-01, web-02 (byte order).
        let first = page(app, &admin(), "/ui/?limit=1").await;
        assert!(first.text.contains("host?name=db-01"));
        assert!(!first.text.contains("host?name=web-01"));
        let marker = "id=\"next\" href=\"./?";
        let next = first
            .text
            .find(marker)
            .map(|i| &first.text[i + marker.len()..])
            .and_then(|rest| rest.split('"').next())
            .expect("a next page")
            .replace("&#38;", "&");
        let second = page(app, &admin(), &format!("/ui/?{next}")).await;
        assert_eq!(second.status, StatusCode::OK, "{}", second.text);
        assert!(second.text.contains("host?name=web-01"), "{}", second.text);
        assert!(!second.text.contains("host?name=db-01"));
        let bad = page(app, &admin(), "/ui/?has_agent=maybe").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let bad_var = page(app, &admin(), "/ui/?var=novalue").await;
        assert_eq!(bad_var.status, StatusCode::BAD_REQUEST);
        let bad_cursor = page(app, &admin(), "/ui/?cursor=%21").await;
        assert_eq!(bad_cursor.status, StatusCode::BAD_REQUEST);
    }
);

db_test!(
    a_host_shows_where_each_resolved_value_comes_from_and_a_template_its_graph,
    async |app: &TestApp| {
        world(app).await;
        let host = page(app, &admin(), "/ui/host?name=web-01").await;
        let row = |key: &str| {
            let start = host
                .text
                .find(&format!("<th scope=\"row\">{key}</th>"))
                .unwrap_or_else(|| panic!("no row {key}: {}", host.text));
            let end = host.text[start..].find("</tr>").unwrap_or(0) + start;
            host.text[start..end].to_owned()
        };
        assert!(
            row("vars.env").contains("template?name=web\">web</a>"),
            "{}",
            row("vars.env")
        );
        assert!(row("vars.tier").contains("template?name=base\">base</a>"));
        assert!(row("vars.note").contains("<td>host</td>"));
        assert!(row("address").contains("<td>host</td>"));
        assert!(row("scripts").contains("template?name=base\">base</a>"));
        assert!(host.text.contains("never confirmed"));
        assert!(
            host.text.contains("/usr/bin/uptime"),
            "the allowlist preview"
        );
        assert!(host.text.contains("create"), "its activity");
        let template = page(app, &admin(), "/ui/template?name=web").await;
        assert_eq!(template.status, StatusCode::OK, "{}", template.text);
        let graph = template
            .text
            .split("id=\"graph\"")
            .nth(1)
            .unwrap_or_default();
        assert!(graph.contains("name=base\">base</a>"), "web imports base");
        assert!(graph.contains("host?name=web-02"), "web-02 imports web");
        let base = page(app, &admin(), "/ui/template?name=base").await;
        let imported_by = base
            .text
            .split("id=\"imported-by\"")
            .nth(1)
            .unwrap_or_default();
        assert!(imported_by.contains("name=web\">web</a>"), "{imported_by}");
        let not_template = page(app, &admin(), "/ui/template?name=web-01").await;
        assert_eq!(not_template.status, StatusCode::NOT_FOUND);
        let to_template = page(app, &admin(), "/ui/host?name=web").await;
        assert_eq!(to_template.status, StatusCode::SEE_OTHER);
    }
);

db_test!(
    a_restricted_user_sees_only_their_hosts_everywhere,
    async |app: &TestApp| {
        world(app).await;
        let web = app
            .user("webop", "operator", json!({"restrictions": ["web-*"]}))
            .await;
        let fleet = page(app, &web, "/ui/").await;
        assert_eq!(fleet.status, StatusCode::OK, "{}", fleet.text);
        assert!(fleet.text.contains("host?name=web-02\""), "{}", fleet.text);
        // A restricted count reads every host: it waits to be asked for.
        assert!(!fleet.text.contains("id=\"total\""), "{}", fleet.text);
        let counted = page(app, &web, "/ui/?count=1").await;
        assert!(
            counted.text.contains("<b id=\"total\">2</b>"),
            "{}",
            counted.text
        );
        assert!(!fleet.text.contains("db-01"));
        assert_eq!(
            page(app, &web, "/ui/host?name=db-01").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            page(app, &web, "/ui/host?name=web-01").await.status,
            StatusCode::OK
        );
        let template = page(app, &web, "/ui/template?name=web").await;
        assert!(!template.text.contains("db-01"));
        let pending = page(app, &web, "/ui/pending").await;
        assert_eq!(pending.status, StatusCode::OK, "{}", pending.text);
        assert!(pending.text.contains("host?name=web-01"));
        assert!(!pending.text.contains("db-01"));
        let activity = page(app, &web, "/ui/activity").await;
        assert!(activity.text.contains("web-01"));
        assert!(!activity.text.contains("db-01"), "{}", activity.text);
    }
);

db_test!(
    deploying_needs_the_sessions_token_and_the_deploy_permission,
    async |app: &TestApp| {
        world(app).await;
        let reader = app.user("watcher", "reader", json!({})).await;
        let seen = page(app, &reader, "/ui/pending").await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
        assert!(
            !seen.text.contains("id=\"deploy\""),
            "no deploy button for a reader"
        );
        assert!(seen.text.contains("host?name=web-01"), "what is pending");
        // With its own session's token the server refuses all the same.
        let reader_token = csrf_of(&seen);
        assert_eq!(reader_token.len(), 64);
        let refused = post_deploy(app, &reader, &format!("csrf={reader_token}")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert!(
            refused.text.contains("Permission deploy is required"),
            "{}",
            refused.text
        );
        // Another user's token is refused before anything else.
        let deployer = app.user("deployer", "operator", json!({})).await;
        let deployer_token = csrf_of(&page(app, &deployer, "/ui/pending").await);
        assert_ne!(deployer_token, reader_token);
        let refused = post_deploy(app, &deployer, &format!("csrf={reader_token}")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.text.contains("token"), "{}", refused.text);
        assert_eq!(deployments(app).await, 0);

        let admin_page = page(app, &admin(), "/ui/pending").await;
        assert!(admin_page.text.contains("id=\"deploy\""));
        assert!(
            admin_page.text.contains("would-deploy"),
            "{}",
            admin_page.text
        );
        let token = csrf_of(&admin_page);
        for bad in ["", "csrf=", "csrf=00", &format!("csrf={reader_token}")] {
            let r = post_deploy(app, &admin(), bad).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{bad:?}: {}", r.text);
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        }
        let json_body = app
            .request(
                "POST",
                "/ui/deploy",
                &[
                    ("content-type", "application/json"),
                    ("accept", "text/html"),
                ],
                Some(format!("{{\"csrf\": \"{token}\"}}").into_bytes()),
            )
            .await;
        assert_eq!(
            json_body.status,
            StatusCode::FORBIDDEN,
            "not a form: no token"
        );
        assert_eq!(deployments(app).await, 0, "no refused post deployed");
        for bad in ["stages=0", "stages=50%25,10%25", "max_failed=1"] {
            let r = post_deploy(app, &admin(), &format!("csrf={token}&{bad}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        }
        assert_eq!(deployments(app).await, 0, "no bad staging deployed");
        // The token is the same on every page of the session.
        assert_eq!(csrf_of(&page(app, &admin(), "/ui/pending").await), token);

        let started = post_deploy(app, &admin(), &format!("csrf={token}")).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.text);
        let location = started.header("location").unwrap_or_default().to_owned();
        assert!(location.starts_with("deployment?id="), "{location}");
        assert_eq!(deployments(app).await, 1);
        let id = location.trim_start_matches("deployment?id=");
        let shown = page(app, &admin(), &format!("/ui/{location}")).await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
        assert!(shown.text.contains(&format!("data-id=\"{id}\"")));
        assert!(shown.text.contains("id=\"bar-deployed\""));
        // The live view's blocking query: at once without `since`, and it
        // waits for a change with one (the deployment ends meanwhile).
        let progress = page(app, &admin(), &format!("/ui/deployment/progress?id={id}")).await;
        assert_eq!(progress.status, StatusCode::OK, "{}", progress.text);
        let p = progress.json();
        assert_eq!(p["id"].to_string(), id);
        let version = p["version"].as_str().unwrap_or_default().to_owned();
        if p["final"] == json!(false) {
            let moved = page(
                app,
                &admin(),
                &format!("/ui/deployment/progress?id={id}&since={version}&wait=20"),
            )
            .await;
            assert_ne!(moved.json()["version"], json!(version));
        }
        // It ends with every agent unreachable, each listed with its error.
        let end = page(
            app,
            &admin(),
            &format!("/ui/deployment/progress?id={id}&since=running-forever&wait=20"),
        )
        .await
        .json();
        let mut end = end;
        for _ in 0..20 {
            if end["final"] == json!(true) {
                break;
            }
            let version = end["version"].as_str().unwrap_or_default().to_owned();
            end = page(
                app,
                &admin(),
                &format!("/ui/deployment/progress?id={id}&since={version}&wait=20"),
            )
            .await
            .json();
        }
        assert_eq!(end["final"], json!(true), "{end}");
        assert_eq!(end["counts"]["unreachable"], json!(3), "{end}");
        assert_eq!(end["troubles"].as_array().map(Vec::len), Some(3), "{end}");
        let finished = page(app, &admin(), &format!("/ui/{location}")).await;
        assert!(
            finished.text.contains("connection failed"),
            "{}",
            finished.text
        );
        assert!(
            !finished.text.contains("http-equiv=\"refresh\""),
            "a finished one stays"
        );
        let too_long = page(
            app,
            &admin(),
            &format!("/ui/deployment/progress?id={id}&wait=600"),
        )
        .await;
        assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
        let logged = page(app, &admin(), "/ui/activity?object_type=deployment").await;
        assert!(
            logged
                .text
                .contains(&format!("href=\"deployment?id={id}\"")),
            "the log links its deployments: {}",
            logged.text
        );
        let list = page(app, &admin(), "/ui/deployments").await;
        assert!(list.text.contains(&format!("deployment?id={id}\"")));
        assert_eq!(
            app.get(&format!("/director/config/deployment?id={id}"))
                .await
                .json()["author"],
            json!("admin"),
            "the console deploys as its user"
        );
    }
);

db_test!(
    the_activity_page_filters_diffs_and_verifies_the_chain,
    async |app: &TestApp| {
        world(app).await;
        let r = app
            .post("/director/host?name=web-01", &json!({"vars.env": "prod"}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let activity = page(app, &admin(), "/ui/activity?object_type=host&name=web-01").await;
        assert_eq!(activity.status, StatusCode::OK, "{}", activity.text);
        assert!(
            activity
                .text
                .contains("<th>vars.env</th><td><del></del></td><td><ins>prod</ins></td>"),
            "{}",
            activity.text
        );
        assert!(!activity.text.contains("host?name=db-01\""));
        let by_author = page(app, &admin(), "/ui/activity?author=nobody").await;
        assert!(by_author.text.contains("No entries."));
        assert!(activity.text.contains("verify it now"));
        let verified = page(app, &admin(), "/ui/activity?verify=1").await;
        assert!(verified.text.contains("is intact"), "{}", verified.text);
        let bad = page(app, &admin(), "/ui/activity?cursor=zzz").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    }
);

db_test!(
    a_staged_deploy_from_the_form_shows_its_stages,
    async |app: &TestApp| {
        world(app).await;
        let token = csrf_of(&page(app, &admin(), "/ui/pending").await);
        let started = post_deploy(app, &admin(), &format!("csrf={token}&stages=1%2C100%25")).await;
        assert_eq!(started.status, StatusCode::SEE_OTHER, "{}", started.text);
        let location = started.header("location").unwrap_or_default().to_owned();
        let id = location.trim_start_matches("deployment?id=").to_owned();
        // Every agent is unreachable and none may fail: it halts after
        // the first stage.
        let mut progress = page(app, &admin(), &format!("/ui/deployment/progress?id={id}"))
            .await
            .json();
        for _ in 0..20 {
            if progress["final"] == json!(true) {
                break;
            }
            let version = progress["version"].as_str().unwrap_or_default().to_owned();
            progress = page(
                app,
                &admin(),
                &format!("/ui/deployment/progress?id={id}&since={version}&wait=20"),
            )
            .await
            .json();
        }
        assert_eq!(progress["status"], json!("halted"), "{progress}");
        assert_eq!(
            progress["stages"].as_array().map(Vec::len),
            Some(2),
            "{progress}"
        );
        let shown = page(app, &admin(), &format!("/ui/{location}")).await;
        assert!(shown.text.contains("<h2>Stages</h2>"), "{}", shown.text);
        assert!(shown.text.contains("Stage 1 of 2"), "{}", shown.text);
        assert!(shown.text.contains("halted"), "{}", shown.text);
    }
);
