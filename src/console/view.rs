//! The console's pages as askama templates (in `templates/`, compiled into
//! the binary), and what they show, made plain: strings and numbers, each
//! escaped by the template on the way out.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::StatusCode;
use serde_json::Value;

/// What every page's frame shows: who is signed in, the form token, and
/// whether the deploy actions are offered.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub user: String,
    pub csrf: String,
    pub can_deploy: bool,
    /// The navigation entry to mark (`fleet`, `deployments`, ...).
    pub section: &'static str,
}

/// A value as a cell shows it: strings as they are, anything else as
/// compact JSON.
pub fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key=value&...`, each part percent-encoded, for links that keep a
/// page's parameters.
pub fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

/// The first 12 characters of a checksum.
pub fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

// ---------------------------------------------------------------- fleet

/// One host of the fleet page.
#[derive(Debug, Clone)]
pub struct FleetRow {
    pub name: String,
    pub display_name: String,
    pub address: String,
    pub delivery: String,
    pub agent: String,
    /// The CSS class of the agent's state.
    pub agent_class: String,
    pub imports: Vec<String>,
    pub disabled: bool,
}

/// How many hosts are in one agent state.
#[derive(Debug, Clone)]
pub struct Count {
    pub label: String,
    pub class: String,
    pub n: usize,
}

/// The filters of the hosts list, as the form shows them.
#[derive(Debug, Clone, Default)]
pub struct FleetFilters {
    pub q: String,
    pub has_agent: String,
    pub disabled: String,
    pub imports: String,
    /// `KEY=VALUE`: the list's `vars.KEY=VALUE`.
    pub var: String,
}

#[derive(Template)]
#[template(path = "fleet.html")]
pub struct FleetPage {
    pub chrome: Chrome,
    pub rows: Vec<FleetRow>,
    pub total: Option<u64>,
    /// The query of this page with `count=1`.
    pub count_link: String,
    /// Whether the counts are of every matching host (else of this page).
    pub fleet_wide: bool,
    /// How many hosts of this page stand where (current, outdated ...).
    pub counts: Vec<Count>,
    pub filters: FleetFilters,
    /// The query of the next page, when one follows.
    pub next: Option<String>,
    /// Whether this is a later page (a link back to the first).
    pub later: bool,
    pub first: String,
}

// ---------------------------------------------------------------- host

/// One property of a host: stored, resolved, and where the resolved value
/// comes from.
#[derive(Debug, Clone)]
pub struct PropRow {
    pub key: String,
    pub stored: String,
    pub resolved: String,
    /// `host`, or the template it comes from (linked).
    pub from: String,
    pub from_template: bool,
}

/// A host's allowlist as the next deploy would send it.
#[derive(Debug, Clone)]
pub struct PreviewView {
    pub checksum: String,
    pub delivery: String,
    pub in_deploy_set: bool,
    pub address: String,
    pub agent_port: i64,
    pub document: String,
}

/// What a host's agent last confirmed.
#[derive(Debug, Clone)]
pub struct ConfirmedView {
    pub state: String,
    pub state_class: String,
    pub checksum: String,
    pub serial: String,
    pub at: String,
    pub version: String,
}

/// One activity entry, with its change as a diff.
#[derive(Debug, Clone)]
pub struct ActivityRow {
    pub id: i64,
    pub time: String,
    pub author: String,
    pub action: String,
    pub object_type: String,
    pub object_name: String,
    pub diff: Vec<DiffLine>,
}

#[derive(Template)]
#[template(path = "host.html")]
pub struct HostPage {
    pub chrome: Chrome,
    pub name: String,
    pub imports: Vec<String>,
    pub rows: Vec<PropRow>,
    pub preview: Option<PreviewView>,
    pub confirmed: Option<ConfirmedView>,
    pub activity: Vec<ActivityRow>,
    pub activity_link: String,
}

// ---------------------------------------------------------------- template

#[derive(Template)]
#[template(path = "template.html")]
pub struct TemplatePage {
    pub chrome: Chrome,
    pub kind: String,
    pub name: String,
    pub props: Vec<(String, String)>,
    /// What it imports itself, in order.
    pub imports: Vec<String>,
    /// Its whole chain, in the order values apply.
    pub ancestors: Vec<String>,
    /// Templates importing it directly.
    pub imported_by: Vec<String>,
    /// The first host objects importing it (anywhere in their chain).
    pub hosts: Vec<String>,
    pub more_hosts: bool,
    pub hosts_link: String,
}

// ---------------------------------------------------------------- deployments

#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub id: i64,
    pub status: String,
    pub author: String,
    pub scope: String,
    pub checksum: String,
}

#[derive(Template)]
#[template(path = "deployments.html")]
pub struct DeploymentsPage {
    pub chrome: Chrome,
    pub rows: Vec<DeploymentRow>,
    pub next: Option<String>,
}

/// One result's bar: how many hosts of the deployment came to it.
#[derive(Debug, Clone)]
pub struct Bar {
    pub result: String,
    pub count: u64,
    pub total: u64,
}

/// A host that failed or was unreachable, with its error.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trouble {
    pub host: String,
    pub result: String,
    pub error: String,
    pub stage: String,
}

/// One stage of a staged deployment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageRow {
    pub stage: u32,
    pub hosts: u64,
    pub state: String,
    pub deployed: u64,
    pub trouble: u64,
    pub pending: u64,
}

/// A deployment's progress: what the page shows and its script updates
/// (the script reads the same fields as JSON from `deployment/progress`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    pub id: i64,
    pub status: String,
    pub version: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub total: u64,
    pub counts: BTreeMap<String, u64>,
    pub finished_at: String,
    pub stage_line: String,
    pub stages: Vec<StageRow>,
    pub troubles: Vec<Trouble>,
    /// Failed or unreachable hosts beyond those listed.
    pub more_troubles: u64,
}

impl Progress {
    /// The bars, one per result, in a fixed order.
    pub fn bars(&self) -> Vec<Bar> {
        RESULTS
            .iter()
            .map(|r| Bar {
                result: (*r).to_owned(),
                count: self.counts.get(*r).copied().unwrap_or(0),
                total: self.total.max(1),
            })
            .collect()
    }
}

/// Every host result, in the order the bars show them.
pub const RESULTS: &[&str] = &["deployed", "skipped", "pending", "failed", "unreachable"];

#[derive(Template)]
#[template(path = "deployment.html")]
pub struct DeploymentPage {
    pub chrome: Chrome,
    pub progress: Progress,
    pub author: String,
    pub checksum: String,
    pub scope: String,
    pub force: bool,
    pub started_at: String,
}

// ---------------------------------------------------------------- activity

/// How an entry changed one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// `+` added, `-` removed, `~` changed.
    pub op: char,
    pub path: String,
    pub before: String,
    pub after: String,
}

impl DiffLine {
    /// The CSS class of the line.
    pub fn class(&self) -> &'static str {
        match self.op {
            '+' => "added",
            '-' => "removed",
            _ => "changed",
        }
    }
}

/// Values deeper than this are compared whole.
const DIFF_DEPTH: usize = 4;

fn flatten(prefix: &str, value: &Value, depth: usize, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) if depth < DIFF_DEPTH && !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, depth + 1, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), shown(other));
        }
    }
}

/// What changed between an entry's `before` and `after`, value by value
/// (objects are walked, lists compared whole), in key order.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<DiffLine> {
    let mut old = BTreeMap::new();
    let mut new = BTreeMap::new();
    if let Some(b) = before {
        flatten("", b, 0, &mut old);
    }
    if let Some(a) = after {
        flatten("", a, 0, &mut new);
    }
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| match (old.get(k), new.get(k)) {
            (Some(o), Some(n)) if o == n => None,
            (Some(o), Some(n)) => Some(DiffLine {
                op: '~',
                path: k.clone(),
                before: o.clone(),
                after: n.clone(),
            }),
            (Some(o), None) => Some(DiffLine {
                op: '-',
                path: k.clone(),
                before: o.clone(),
                after: String::new(),
            }),
            (None, Some(n)) => Some(DiffLine {
                op: '+',
                path: k.clone(),
                before: String::new(),
                after: n.clone(),
            }),
            (None, None) => None,
        })
        .collect()
}

/// The activity page's filters.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilters {
    pub object_type: String,
    pub name: String,
    pub author: String,
}

/// The chain's verification, when asked for.
#[derive(Debug, Clone)]
pub struct ChainState {
    pub intact: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "activity.html")]
pub struct ActivityPage {
    pub chrome: Chrome,
    pub activity: Vec<ActivityRow>,
    pub filters: ActivityFilters,
    pub next: Option<String>,
    pub chain: Option<ChainState>,
    pub verify_link: String,
}

// ---------------------------------------------------------------- pending

/// One host a deploy would change.
#[derive(Debug, Clone)]
pub struct PendingRow {
    pub host: String,
    pub action: String,
    pub delivery: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Template)]
#[template(path = "pending.html")]
pub struct PendingPage {
    pub chrome: Chrome,
    /// `would-deploy`, `unchanged`, `running`, `busy`; or `pending` for
    /// the read-only view of a user without `deploy`.
    pub status: String,
    pub checksum: String,
    /// What each action would touch (`update`, `revoke`, `skip`).
    pub counts: Vec<(String, u64)>,
    pub rows: Vec<PendingRow>,
    /// Hosts beyond those listed.
    pub more: usize,
    /// Whether this is a dry run (a user with `deploy`).
    pub dry_run: bool,
}

// ---------------------------------------------------------------- errors

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub reason: String,
    pub message: String,
}

/// A plain error page.
pub fn error_page(status: StatusCode, message: &str) -> String {
    ErrorPage {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.to_owned(),
    }
    .render()
    .unwrap_or_else(|_| format!("{status}"))
}

#[cfg(test)]
mod tests;
