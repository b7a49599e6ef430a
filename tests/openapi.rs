//! `GET /openapi.json`: the document describes exactly the routes the
//! router serves, is valid OpenAPI 3.1 as far as references and responses
//! go, and says truthfully which operations need credentials.

// Tests may panic on what must not fail: that is how they report.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use serde_json::Value;
use steward::router::route_paths;

use helpers::{Backend, TestApp, spawn_app, spawn_app_with};

/// The methods the parity check probes (HEAD follows GET and is not listed).
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The document, fetched the way a client does: without credentials.
async fn document(app: &TestApp) -> Value {
    let r = app
        .request("GET", "/openapi.json", &[("authorization", "")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// Every (path, METHOD) pair the document describes.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut pairs = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                pairs.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    pairs
}

/// Every operation of the document with its path and method.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    documented_operations(doc)
        .into_iter()
        .map(|(path, method)| {
            let operation = doc["paths"][&path][method.to_lowercase()].clone();
            (path, method, operation)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_needs_no_credentials() {
    let app = spawn_app(Backend::Sqlite).await;

    let doc = document(&app).await;

    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Steward");
    assert!(doc["info"]["version"].is_string());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_exactly_the_routes_and_methods_the_router_serves() {
    let app = spawn_app(Backend::Sqlite).await;
    let documented = documented_operations(&document(&app).await);

    // A 405 means the router has the path but not the method; anything else
    // (200, 400 for a missing parameter, 404 for a missing object, ...)
    // means the method is routed there.
    let mut routed = BTreeSet::new();
    // The console's pages are no part of the API's contract: routed, with
    // route labels of their own, and never in the document.
    let (console, api): (Vec<_>, Vec<_>) = route_paths()
        .iter()
        .partition(|path| steward::console::is_console_path(path, ""));
    assert!(!console.is_empty(), "the console's pages have route labels");
    for path in console {
        assert!(
            !documented.iter().any(|(p, _)| p == path),
            "{path} is a console page, not an API operation"
        );
        let r = app
            .request("GET", path, &[("accept", "text/html")], None)
            .await;
        assert_ne!(r.status, StatusCode::NOT_FOUND, "{path} is not served");
    }
    for path in api {
        let mut answers = Vec::new();
        for method in METHODS {
            let r = app.request(method, path, &[], None).await;
            if r.status != StatusCode::METHOD_NOT_ALLOWED {
                routed.insert((path.to_string(), method.to_owned()));
            }
            answers.push((method, r.status, r.error()));
        }
        assert!(
            answers
                .iter()
                .any(|(_, status, error)| !(*status == StatusCode::NOT_FOUND
                    && error == "Not found")),
            "{path} is a route path but the router does not serve it: {answers:?}"
        );
    }

    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let not_routed: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in the document: {undocumented:?}"
    );
    assert!(
        not_routed.is_empty(),
        "in the document but not routed: {not_routed:?}"
    );
    app.cleanup().await;
}

/// Resolves a local JSON reference (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` string anywhere in `value`.
fn references(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("$ref", Value::String(reference)) => found.push(reference.clone()),
                    _ => references(item, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_resolves_and_every_operation_has_its_responses() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;

    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(found.len() > 50, "the document uses shared schemas");
    for reference in &found {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }

    let mut operation_ids = BTreeSet::new();
    for (path, method, operation) in operations(&doc) {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            operation_ids.insert(id.to_owned()),
            "{method} {path}: operationId {id:?} is missing or not unique"
        );
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        for (status, response) in responses {
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}: no description"
            );
        }
        // What the layers in front of every handler can answer.
        for status in ["400", "403", "406"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: {status} is not documented"
            );
        }
        if operation.get("requestBody").is_some() {
            assert!(
                responses.contains_key("413"),
                "{method} {path}: a body can be too large"
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secured_operations_refuse_requests_without_credentials_as_documented() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["type"], "http");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["key"]["type"], "apiKey");
    assert_eq!(schemes["key"]["in"], "query");
    assert_eq!(schemes["key"]["name"], "key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");

    for (path, method, operation) in operations(&doc) {
        let security: Vec<String> = operation["security"]
            .as_array()
            .map(|requirements| {
                requirements
                    .iter()
                    .flat_map(|r| r.as_object().into_iter().flat_map(|o| o.keys().cloned()))
                    .collect()
            })
            .unwrap_or_default();
        let r = app
            .request(&method, &path, &[("authorization", "")], None)
            .await;
        if path.starts_with("/director/self-service/") {
            assert_eq!(security, ["key", "bearer"], "{method} {path}");
            assert!(
                operation["responses"]["429"].is_object(),
                "{method} {path}: bad keys are throttled"
            );
            // No key: refused, never served.
            assert!(
                r.status == StatusCode::BAD_REQUEST,
                "{method} {path} without a key: {} {}",
                r.status,
                r.text
            );
        } else if path.starts_with("/director/") || path == "/metrics" {
            // `/metrics` needs a user with `api` unless `metrics_public`.
            assert_eq!(security, ["basic"], "{method} {path}");
            for status in ["401", "429", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path}: {status} is not documented"
                );
            }
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Basic realm=\"steward\""),
                "{method} {path}"
            );
        } else {
            assert!(security.is_empty(), "{method} {path} is open");
            assert_ne!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(
                r.status.is_success(),
                "{method} {path} without credentials: {}",
                r.status
            );
        }
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_base_path_the_director_routes_resolve_under_it_and_the_others_at_the_root() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.base_path = "/icingaweb2".into()).await;

    let doc = document(&app).await;

    assert_eq!(doc["servers"][0]["url"], "/icingaweb2");
    assert!(doc["paths"]["/director/hosts"]["get"].is_object());
    assert!(doc["paths"]["/director/hosts"]["servers"].is_null());
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        assert_eq!(doc["paths"][path]["servers"][0]["url"], "/", "{path}");
    }
    // Resolved as the document says, both answer.
    assert_eq!(
        app.get("/icingaweb2/director/hosts").await.status,
        StatusCode::OK
    );
    assert_eq!(app.get("/health").await.status, StatusCode::OK);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_base_path_the_document_names_no_servers() {
    let app = spawn_app(Backend::Sqlite).await;

    let doc = document(&app).await;

    assert!(doc["servers"].is_null(), "{}", doc["servers"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_script_bodies_list_the_properties_the_server_knows() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc = document(&app).await;

    for (schema, kind) in [
        ("HostBody", steward::domain::Kind::Host),
        ("ScriptBody", steward::domain::Kind::Script),
    ] {
        let properties: BTreeSet<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .expect(schema)
            .keys()
            .cloned()
            .collect();
        let mut known: BTreeSet<String> = kind
            .properties()
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        known.extend(["object_name".to_owned(), "object_type".to_owned()]);
        assert_eq!(properties, known, "{schema}");
        // Unknown keys only as null; `vars.NAME` keys set one variable.
        assert_eq!(
            doc["components"]["schemas"][schema]["additionalProperties"]["type"],
            "null"
        );
        assert!(doc["components"]["schemas"][schema]["patternProperties"]["^vars\\."].is_object());
    }
    app.cleanup().await;
}

// Found by schemathesis: QUERY (RFC 10008) is an HTTP method, so a route
// that does not take it answers 405 with Allow, not Director's 400 for
// methods HTTP does not define.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_gets_405_with_allow_and_an_undefined_method_still_gets_400() {
    let app = spawn_app(Backend::Sqlite).await;

    let query = app.request("QUERY", "/director/hosts", &[], None).await;
    let health = app
        .request("QUERY", "/health", &[("authorization", "")], None)
        .await;
    let kill = app.request("KILL", "/director/hosts", &[], None).await;

    assert_eq!(query.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(query.header("allow"), Some("GET,HEAD"));
    assert_eq!(query.error(), "Method QUERY is not allowed here");
    assert_eq!(health.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(kill.status, StatusCode::BAD_REQUEST);
    assert_eq!(kill.error(), "Unsupported method KILL");
    app.cleanup().await;
}
