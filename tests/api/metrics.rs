//! `GET /metrics`: Prometheus' text format, parsed by a Prometheus parser.

use axum::http::StatusCode;
use serde_json::json;

use crate::db_test;
use crate::helpers::TestApp;

/// The value of the sample of `metric` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map(|b| b.count).unwrap_or_default()
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
}

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let anonymous = app
        .request("GET", "/metrics", &[("authorization", "")], None)
        .await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "a user with api"
    );
    let r = app.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    let lines = r.text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("Prometheus text format")
}

db_test!(
    metrics_count_requests_deployments_registrations_and_agents,
    async |app: &TestApp| {
        app.create("host", json!({"object_name": "web-01"})).await;
        assert_eq!(
            app.get("/director/host?name=nope").await.status,
            StatusCode::NOT_FOUND
        );
        let unauthorised = app
            .request("GET", "/director/hosts", &[("authorization", "")], None)
            .await;
        assert_eq!(unauthorised.status, StatusCode::UNAUTHORIZED);
        app.get("/no/such/route?key=secret").await;
        // One registration, one refused, one deployment (no address: failed).
        app.create(
            "host",
            json!({"object_name": "agents", "object_type": "template", "has_agent": true}),
        )
        .await;
        let key = app.template_key("agents").await;
        let ok = app
            .request(
                "POST",
                &format!("/director/self-service/register-host?name=node-1&key={key}"),
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
        let refused = app
            .request(
                "POST",
                "/director/self-service/register-host?name=node-2&key=0000",
                &[("authorization", "")],
                None,
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        let deployed = app
            .post("/director/config/deploy?wait=30", &json!([]))
            .await;
        assert_eq!(
            deployed.json()["status"],
            json!("failed"),
            "{}",
            deployed.text
        );

        let s = scrape(app).await;
        let requests = |method, route, status| {
            sample(
                &s,
                "steward_http_requests_total",
                &[("method", method), ("route", route), ("status", status)],
            )
        };
        assert_eq!(requests("POST", "/director/host", "201"), Some(2.0));
        assert_eq!(requests("GET", "/director/host", "404"), Some(1.0));
        assert_eq!(requests("GET", "/director/hosts", "401"), Some(1.0));
        assert_eq!(
            requests("GET", "other", "404"),
            Some(1.0),
            "unknown paths are one label"
        );
        assert!(
            s.samples
                .iter()
                .all(|x| !x.labels.values().any(|v| v.contains("secret"))),
            "no query string in any label"
        );
        assert_eq!(
            sample(
                &s,
                "steward_http_request_duration_seconds",
                &[("method", "POST"), ("route", "/director/host")]
            ),
            Some(2.0),
            "the histogram counts both creates"
        );
        assert_eq!(
            sample(
                &s,
                "steward_registrations_total",
                &[("outcome", "registered")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&s, "steward_registrations_total", &[("outcome", "refused")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&s, "steward_deployments", &[("status", "failed")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&s, "steward_deployments", &[("status", "succeeded")]),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &s,
                "steward_deploy_host_results_total",
                &[("result", "unreachable")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&s, "steward_agents", &[("state", "unconfirmed")]),
            Some(1.0)
        );
        assert_eq!(
            sample(&s, "steward_agents", &[("state", "current")]),
            Some(0.0)
        );
        assert!(
            s.docs.contains_key("steward_http_requests_total"),
            "every metric has its HELP line"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_made_public() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Backend::Sqlite, |c| {
        c.metrics_public = true;
    })
    .await;
    let r = app
        .request("GET", "/metrics", &[("authorization", "")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.text.contains("steward_deployments{status=\"running\"} 0"),
        "{}",
        r.text
    );
    let spec = app.get("/openapi.json").await.json();
    assert!(
        spec["paths"]["/metrics"]["get"]["security"].is_null(),
        "the spec says /metrics is open: {}",
        spec["paths"]["/metrics"]["get"]
    );
    app.cleanup().await;
}

db_test!(
    metrics_answer_scrapers_that_ask_for_the_text_format,
    async |app: &TestApp| {
        for accept in [
            "text/plain",
            "text/plain; version=0.0.4",
            // Prometheus 3.
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            // Telegraf, and scrapers that name no wildcard.
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
             encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
            "application/openmetrics-text; version=0.0.1",
        ] {
            let r = app
                .request("GET", "/metrics", &[("accept", accept)], None)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{accept}: {}", r.text);
            assert!(
                r.header("content-type")
                    .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
                "{accept}"
            );
        }
        // Elsewhere, and for types no scraper asks for, still 406.
        for (uri, accept) in [("/metrics", "text/html"), ("/director/hosts", "text/plain")] {
            let r = app.request("GET", uri, &[("accept", accept)], None).await;
            assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE, "{uri} {accept}");
        }
    }
);
