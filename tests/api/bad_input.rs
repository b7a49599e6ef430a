//! CONTRACT section 12: every bad input gets a clear 4xx JSON error and
//! changes nothing.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

struct Case {
    what: &'static str,
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<Vec<u8>>,
    status: StatusCode,
}

fn case(what: &'static str, method: &'static str, uri: &str, body: &[u8], status: u16) -> Case {
    Case {
        what,
        method,
        uri: uri.to_owned(),
        headers: Vec::new(),
        body: Some(body.to_vec()),
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
    }
}

fn cases() -> Vec<Case> {
    let deep = format!(
        "{{\"vars\": {{\"x\": {}{}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let huge = format!(
        "{{\"vars\": {{\"x\": \"{}\"}}}}",
        "a".repeat(1024 * 1024 + 10)
    );
    let long_name = format!("{{\"object_name\": \"{}\"}}", "a".repeat(256));
    let mut table = vec![
        case(
            "malformed JSON",
            "POST",
            "/director/host",
            b"{\"object_name\": ",
            400,
        ),
        case(
            "truncated JSON",
            "POST",
            "/director/host?name=existing",
            b"{\"address\": \"a\"",
            400,
        ),
        case("trailing garbage", "POST", "/director/host", b"{} {}", 400),
        case(
            "JSON nested thousands deep",
            "POST",
            "/director/host?name=existing",
            deep.as_bytes(),
            400,
        ),
        case(
            "a body over the limit",
            "POST",
            "/director/host?name=existing",
            huge.as_bytes(),
            413,
        ),
        case(
            "a deploy's ignored body over the limit",
            "POST",
            "/director/config/deploy?force=1",
            huge.as_bytes(),
            413,
        ),
        case(
            "invalid UTF-8",
            "POST",
            "/director/host",
            b"{\"object_name\": \"a\xff\"}",
            400,
        ),
        case(
            "a JSON array body",
            "POST",
            "/director/host",
            b"[1, 2]",
            400,
        ),
        case(
            "a JSON null body",
            "PUT",
            "/director/host?name=existing",
            b"null",
            400,
        ),
        case("an empty body", "POST", "/director/host", b"", 400),
        case(
            "duplicate keys",
            "POST",
            "/director/host",
            b"{\"object_name\": \"a\", \"object_name\": \"b\"}",
            400,
        ),
        case(
            "a string for a boolean",
            "POST",
            "/director/host?name=existing",
            b"{\"has_agent\": \"perhaps\"}",
            422,
        ),
        case(
            "a port out of range",
            "POST",
            "/director/host?name=existing",
            b"{\"agent_port\": 70000}",
            422,
        ),
        case(
            "a list for a string",
            "POST",
            "/director/host?name=existing",
            b"{\"address\": [\"a\"]}",
            422,
        ),
        case(
            "a string for vars",
            "POST",
            "/director/host?name=existing",
            b"{\"vars\": \"x\"}",
            422,
        ),
        case(
            "a number for groups",
            "POST",
            "/director/host?name=existing",
            b"{\"groups\": 5}",
            422,
        ),
        case(
            "a name with a space",
            "POST",
            "/director/host",
            b"{\"object_name\": \"a b\"}",
            422,
        ),
        case(
            "a name with a slash",
            "POST",
            "/director/host",
            b"{\"object_name\": \"a/b\"}",
            422,
        ),
        case(
            "a name with a control character",
            "POST",
            "/director/host",
            b"{\"object_name\": \"a\\u0007b\"}",
            422,
        ),
        case(
            "a name over the length limit",
            "POST",
            "/director/host",
            long_name.as_bytes(),
            422,
        ),
        case(
            "a name that is not a string",
            "POST",
            "/director/host",
            b"{\"object_name\": 5}",
            422,
        ),
        case(
            "a missing name",
            "POST",
            "/director/host",
            b"{\"address\": \"a\"}",
            422,
        ),
        case(
            "an unknown object_type",
            "POST",
            "/director/host",
            b"{\"object_name\": \"n\", \"object_type\": \"apply\"}",
            422,
        ),
        case(
            "an unknown template",
            "POST",
            "/director/host",
            b"{\"object_name\": \"n\", \"imports\": [\"ghost\"]}",
            422,
        ),
        case(
            "an unknown script",
            "POST",
            "/director/host?name=existing",
            b"{\"scripts\": [\"ghost\"]}",
            422,
        ),
        case(
            "an import loop",
            "POST",
            "/director/host?name=tpl-a",
            b"{\"imports\": [\"tpl-b\"]}",
            422,
        ),
        case(
            "an unknown key",
            "POST",
            "/director/host?name=existing",
            b"{\"foo\": \"bar\"}",
            422,
        ),
        case(
            "an empty variable name",
            "POST",
            "/director/host?name=existing",
            b"{\"vars.\": 1}",
            422,
        ),
        case(
            "a relative command",
            "POST",
            "/director/script?name=s",
            b"{\"command\": \"x\"}",
            422,
        ),
        case(
            "a command with '#'",
            "POST",
            "/director/script?name=s",
            b"{\"command\": \"/usr/bin/check#x\"}",
            422,
        ),
        case(
            "a command with a bidirectional override",
            "POST",
            "/director/script",
            "{\"object_name\": \"rtl\", \"command\": \"/usr/bin/\u{202e}hs\"}".as_bytes(),
            422,
        ),
        case(
            "a command with a zero-width space (escaped)",
            "PUT",
            "/director/script?name=s",
            b"{\"command\": \"/usr/bin/up\\u200btime\"}",
            422,
        ),
        case(
            "a PUT body name that differs on create",
            "PUT",
            "/director/host?name=newname",
            b"{\"object_name\": \"other\"}",
            422,
        ),
        case(
            "a PATCH with a form type",
            "PATCH",
            "/director/host?name=existing",
            b"address=x",
            415,
        ),
        case(
            "an invalid JSON patch",
            "PATCH",
            "/director/host?name=existing",
            b"{\"op\": \"add\"}",
            422,
        ),
        case(
            "a missing name parameter",
            "GET",
            "/director/host",
            b"",
            400,
        ),
        case(
            "a missing name on DELETE",
            "DELETE",
            "/director/host",
            b"",
            400,
        ),
        case(
            "a flag with a bad value",
            "GET",
            "/director/host?name=existing&resolved=perhaps",
            b"",
            400,
        ),
        case(
            "a flag with a bad value on a write",
            "POST",
            "/director/host?name=existing&withNull=maybe",
            b"{}",
            400,
        ),
        case("limit=-1", "GET", "/director/hosts?limit=-1", b"", 400),
        case(
            "cursor=garbage",
            "GET",
            "/director/hosts?limit=2&cursor=garbage",
            b"",
            400,
        ),
        case(
            "an unknown method",
            "KILL",
            "/director/host?name=existing",
            b"",
            400,
        ),
        case(
            "an override naming an unknown method",
            "POST",
            "/director/host?name=existing",
            b"{}",
            400,
        ),
        case("an undefined route", "GET", "/director/nothing", b"", 404),
        case(
            "a method the endpoint lacks",
            "POST",
            "/director/hosts",
            b"{}",
            405,
        ),
    ];
    for c in table.iter_mut() {
        match c.what {
            "a PATCH with a form type" => c
                .headers
                .push(("content-type", "application/x-www-form-urlencoded")),
            "an invalid JSON patch" => c
                .headers
                .push(("content-type", "application/json-patch+json")),
            "an override naming an unknown method" => {
                c.headers.push(("x-http-method-override", "KILL"))
            }
            _ => {}
        }
    }
    table.push(Case {
        what: "Accept without JSON",
        method: "GET",
        uri: "/director/host?name=existing".into(),
        headers: vec![("accept", "text/html")],
        body: None,
        status: StatusCode::NOT_ACCEPTABLE,
    });
    table.push(Case {
        what: "a cross-site browser write",
        method: "POST",
        uri: "/director/host?name=existing".into(),
        headers: vec![("sec-fetch-site", "cross-site")],
        body: Some(b"{\"address\": \"evil\"}".to_vec()),
        status: StatusCode::FORBIDDEN,
    });
    table
}

db_test!(
    every_bad_input_gets_a_4xx_json_error_and_changes_nothing,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "existing", "address": "a"}))
            .await;
        app.create(
            "host",
            json!({"object_name": "tpl-a", "object_type": "template"}),
        )
        .await;
        app.create(
            "host",
            json!({"object_name": "tpl-b", "object_type": "template", "imports": ["tpl-a"]}),
        )
        .await;
        app.create("script", json!({"object_name": "s", "command": "/bin/s"}))
            .await;
        let before = app.snapshot().await;

        for c in cases() {
            let response = app
                .request(c.method, &c.uri, &c.headers, c.body.clone())
                .await;
            assert_eq!(response.status, c.status, "{}: {}", c.what, response.text);
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{}",
                c.what
            );
            assert!(
                response.json()["error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty()),
                "{}: {}",
                c.what,
                response.text
            );
            assert_eq!(
                app.snapshot().await,
                before,
                "{} changed the database",
                c.what
            );
        }
    }
);
