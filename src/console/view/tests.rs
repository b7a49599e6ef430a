//! Every template escapes what it shows: object names, variables, errors
//! and authors are user input.

use super::*;
use serde_json::json;

const EVIL: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

fn chrome() -> Chrome {
    Chrome {
        user: EVIL.into(),
        csrf: "0123abcd".into(),
        can_deploy: true,
        section: "fleet",
    }
}

/// The page holds no markup from `EVIL`, and shows it escaped.
fn assert_escaped(page: &str) {
    assert!(!page.contains(EVIL), "unescaped in:\n{page}");
    assert!(!page.contains("<script>alert"), "unescaped in:\n{page}");
    assert!(
        page.contains(ESCAPED) || page.contains("&lt;script&gt;"),
        "not shown escaped in:\n{page}"
    );
}

fn rendered(template: &impl Template) -> String {
    match template.render() {
        Ok(page) => page,
        Err(e) => panic!("rendering failed: {e}"),
    }
}

fn evil_row() -> ActivityRow {
    ActivityRow {
        id: 1,
        time: EVIL.into(),
        author: EVIL.into(),
        action: EVIL.into(),
        object_type: "host".into(),
        object_name: EVIL.into(),
        diff: diff(
            None,
            Some(&json!({"object_name": EVIL, "vars": {EVIL: EVIL}})),
        ),
    }
}

#[test]
fn the_fleet_page_escapes_names_and_filters() {
    let page = rendered(&FleetPage {
        chrome: chrome(),
        rows: vec![FleetRow {
            name: EVIL.into(),
            display_name: EVIL.into(),
            address: EVIL.into(),
            delivery: "push".into(),
            agent: EVIL.into(),
            agent_class: EVIL.into(),
            imports: vec![EVIL.into()],
            disabled: true,
        }],
        total: Some(1),
        count_link: EVIL.into(),
        fleet_wide: false,
        counts: vec![Count {
            label: EVIL.into(),
            class: EVIL.into(),
            n: 1,
        }],
        filters: FleetFilters {
            q: format!("\"{EVIL}"),
            has_agent: EVIL.into(),
            disabled: EVIL.into(),
            imports: EVIL.into(),
            var: EVIL.into(),
        },
        next: Some(format!("cursor={EVIL}")),
        later: true,
        first: EVIL.into(),
    });
    assert_escaped(&page);
    // Names in links are percent-encoded as well.
    assert!(page.contains("host?name=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"));
    assert!(page.contains("value=\"&#34;&#60;script"), "{page}");
}

#[test]
fn the_host_page_escapes_properties_the_document_and_activity() {
    let page = rendered(&HostPage {
        chrome: chrome(),
        name: EVIL.into(),
        imports: vec![EVIL.into()],
        rows: vec![PropRow {
            key: format!("vars.{EVIL}"),
            stored: EVIL.into(),
            resolved: EVIL.into(),
            from: EVIL.into(),
            from_template: true,
        }],
        preview: Some(PreviewView {
            checksum: EVIL.into(),
            delivery: EVIL.into(),
            in_deploy_set: true,
            address: EVIL.into(),
            agent_port: 7446,
            document: EVIL.into(),
        }),
        confirmed: Some(ConfirmedView {
            state: EVIL.into(),
            state_class: EVIL.into(),
            checksum: EVIL.into(),
            serial: EVIL.into(),
            at: EVIL.into(),
            version: EVIL.into(),
        }),
        activity: vec![evil_row()],
        activity_link: format!("activity?name={EVIL}"),
    });
    assert_escaped(&page);
}

#[test]
fn the_template_page_escapes_the_graph() {
    let page = rendered(&TemplatePage {
        chrome: chrome(),
        kind: "host".into(),
        name: EVIL.into(),
        props: vec![(EVIL.into(), EVIL.into())],
        imports: vec![EVIL.into()],
        ancestors: vec![EVIL.into()],
        imported_by: vec![EVIL.into()],
        hosts: vec![EVIL.into()],
        more_hosts: true,
        hosts_link: EVIL.into(),
    });
    assert_escaped(&page);
}

#[test]
fn the_deployment_pages_escape_authors_hosts_and_errors() {
    let list = rendered(&DeploymentsPage {
        chrome: chrome(),
        rows: vec![DeploymentRow {
            id: 1,
            status: EVIL.into(),
            author: EVIL.into(),
            scope: EVIL.into(),
            checksum: EVIL.into(),
        }],
        next: Some(EVIL.into()),
    });
    assert_escaped(&list);
    let progress = Progress {
        id: 7,
        status: EVIL.into(),
        version: EVIL.into(),
        is_final: false,
        total: 2,
        counts: [("failed".to_owned(), 1), ("deployed".to_owned(), 1)]
            .into_iter()
            .collect(),
        finished_at: EVIL.into(),
        stage_line: EVIL.into(),
        stages: vec![StageRow {
            stage: 1,
            hosts: 2,
            state: EVIL.into(),
            deployed: 1,
            trouble: 1,
            pending: 0,
        }],
        troubles: vec![Trouble {
            host: EVIL.into(),
            result: "failed".into(),
            error: EVIL.into(),
            stage: "1".into(),
        }],
        more_troubles: 3,
    };
    let page = rendered(&DeploymentPage {
        chrome: chrome(),
        progress,
        author: EVIL.into(),
        checksum: EVIL.into(),
        scope: EVIL.into(),
        force: true,
        started_at: EVIL.into(),
    });
    assert_escaped(&page);
    // A running deployment refreshes itself without a script.
    assert!(page.contains("http-equiv=\"refresh\""));
    assert!(page.contains("<progress id=\"bar-failed\" max=\"2\" value=\"1\">"));
    assert!(page.contains("and 3 more"));
}

#[test]
fn the_activity_page_escapes_entries_filters_and_the_chain() {
    let page = rendered(&ActivityPage {
        chrome: chrome(),
        activity: vec![evil_row()],
        filters: ActivityFilters {
            object_type: EVIL.into(),
            name: EVIL.into(),
            author: EVIL.into(),
        },
        next: Some(EVIL.into()),
        chain: Some(ChainState {
            intact: false,
            text: EVIL.into(),
        }),
        verify_link: EVIL.into(),
    });
    assert_escaped(&page);
}

#[test]
fn the_pending_page_escapes_hosts_and_scripts_and_offers_deploy_only_to_deployers() {
    let mut pending = PendingPage {
        chrome: chrome(),
        status: EVIL.into(),
        checksum: EVIL.into(),
        counts: vec![(EVIL.into(), 1)],
        rows: vec![PendingRow {
            host: EVIL.into(),
            action: EVIL.into(),
            delivery: EVIL.into(),
            added: vec![EVIL.into()],
            removed: vec![EVIL.into()],
            changed: vec![EVIL.into()],
        }],
        more: 0,
        dry_run: true,
    };
    let page = rendered(&pending);
    assert_escaped(&page);
    assert!(page.contains("name=\"csrf\" value=\"0123abcd\""));
    assert!(page.contains("id=\"deploy\""));
    pending.chrome.can_deploy = false;
    let page = rendered(&pending);
    assert!(!page.contains("id=\"deploy\""));
    assert!(!page.contains("name=\"csrf\""));
}

#[test]
fn the_error_page_escapes_its_message() {
    assert_escaped(&error_page(
        StatusCode::NOT_FOUND,
        &format!("No such host \"{EVIL}\""),
    ));
    assert!(error_page(StatusCode::FORBIDDEN, "x").contains("403 Forbidden"));
}

#[test]
fn a_diff_shows_what_was_added_removed_and_changed() {
    let before =
        json!({"object_name": "a", "address": "127.0.0.1", "vars": {"env": "prod", "old": 1}});
    let after =
        json!({"object_name": "a", "address": "127.0.0.2", "vars": {"env": "prod", "new": [1, 2]}});
    let lines = diff(Some(&before), Some(&after));
    let summary: Vec<(char, &str, &str, &str)> = lines
        .iter()
        .map(|l| (l.op, l.path.as_str(), l.before.as_str(), l.after.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ('~', "address", "127.0.0.1", "127.0.0.2"),
            ('+', "vars.new", "", "[1,2]"),
            ('-', "vars.old", "1", ""),
        ]
    );
    // A creation lists every value; a deletion every value removed.
    assert_eq!(diff(None, Some(&after)).len(), 4);
    assert!(diff(Some(&before), None).iter().all(|l| l.op == '-'));
    assert!(diff(Some(&before), Some(&before)).is_empty());
}

#[test]
fn query_strings_encode_and_skip_empty_values() {
    assert_eq!(
        query_string([("q", "a b&c"), ("imports", ""), ("vars.env", "<x>")]),
        "q=a+b%26c&vars.env=%3Cx%3E"
    );
}
