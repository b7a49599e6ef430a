//! The console's handlers: thin, as the API's are. Each extracts, calls
//! the same use cases as the API with the same caller, and renders a page.

use askama::Template;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::csrf::Session;
use super::view::{self, Chrome, query_string, short, shown};
use super::{PageError, html, secure};
use crate::api::{ActivityEntry, Deployment};
use crate::domain::auth::Permission;
use crate::domain::kind::Delivery;
use crate::domain::resolve::Origin;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::http::query::QueryParams;
use crate::service::activity::{self as activity_service, ActivityRequest};
use crate::service::caller::Caller;
use crate::service::deploy::{self as deploy_service, DeployOptions, Started};
use crate::service::fleet::{self, Seen};
use crate::service::lists::{self, ListRequest};
use crate::service::objects::{self, View};
use crate::service::waiting::Wait;
use crate::state::AppState;
use crate::store::activity::Query;

/// Hosts on a fleet page.
const FLEET_PAGE: u64 = 100;
/// Entries on an activity page, and on a host's.
const ACTIVITY_PAGE: u64 = 50;
const HOST_ACTIVITY: u64 = 10;
/// Deployments on a page.
const DEPLOYMENTS_PAGE: u64 = 50;
/// Hosts importing a template listed on its page.
const TEMPLATE_HOSTS: u64 = 25;
/// Failed or unreachable hosts listed with a deployment.
const TROUBLES_SHOWN: usize = 200;
/// Hosts listed on the pending page.
const PENDING_SHOWN: usize = 1000;
/// The longest a progress request waits for a change.
const PROGRESS_WAIT: u64 = 25;

/// The caller of a console request and its session.
pub struct Console {
    pub caller: Caller,
    pub session: Session,
}

impl<S: Send + Sync> FromRequestParts<S> for Console {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("Authentication required".into()))?;
        Ok(Self { caller, session })
    }
}

impl Console {
    fn chrome(&self, section: &'static str) -> Chrome {
        Chrome {
            user: self.caller.author.clone(),
            csrf: self.session.token().to_owned(),
            can_deploy: self.caller.permissions.contains(&Permission::Deploy),
            section,
        }
    }
}

fn page(template: &impl Template) -> Result<Response, PageError> {
    let body = template
        .render()
        .map_err(|e| ApiError::Internal(format!("rendering a page: {e}")))?;
    Ok(html(StatusCode::OK, body))
}

/// `303 See Other` to `location` (relative to the console).
fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response)
}

/// `GET /ui`: the fleet is at `/ui/` (relative links need the slash).
pub async fn to_fleet(State(state): State<AppState>) -> Response {
    let mut response = StatusCode::PERMANENT_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("{}/ui/", state.config.base_path)) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response)
}

fn text(query: &QueryParams, name: &str) -> String {
    query.get(name).unwrap_or("").to_owned()
}

// ---------------------------------------------------------------- fleet

/// The hosts list's parameters from the fleet form: its filters as they
/// are, and `var=KEY=VALUE` as the list's `vars.KEY=VALUE`.
fn list_params(query: &QueryParams) -> Result<QueryParams, ApiError> {
    let mut params = Vec::new();
    for (k, v) in &query.0 {
        match k.as_str() {
            "q" | "has_agent" | "disabled" | "imports" => params.push((k.clone(), v.clone())),
            "var" if !v.is_empty() => {
                let (key, value) = v
                    .split_once('=')
                    .ok_or_else(|| ApiError::BadRequest("A variable filter is KEY=VALUE".into()))?;
                params.push((format!("vars.{}", key.trim()), value.to_owned()));
            }
            _ if k.starts_with("vars.") => params.push((k.clone(), v.clone())),
            _ => {}
        }
    }
    let params = QueryParams(params);
    params.check_vars_filters()?;
    Ok(params)
}

/// `GET /ui/?q=&has_agent=&disabled=&imports=&var=&cursor=`: the fleet.
pub async fn fleet(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let params = list_params(&query)?;
    let (limit, cursor) = query.paging(lists::MAX_LIMIT)?;
    let limit = limit.unwrap_or(FLEET_PAGE);
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(lists::decode_cursor)
        .transpose()?;
    let filter = params.filter(Kind::Host)?;
    // Counting the hosts is one query for the whole fleet; under a filter
    // or a restriction it reads every host, and so does counting their
    // agents' states: those wait to be asked for (`count=1`).
    let fleet_wide = query.is_set("count")?;
    let count = !fleet_wide && filter.is_empty() && console.caller.restrictions.is_unrestricted();
    let request = ListRequest {
        kind: Kind::Host,
        object_type: ObjectType::Object,
        filter,
        view: View {
            resolved: true,
            ..View::default()
        },
        limit: Some(limit),
        after: after.clone(),
        count,
        caller: console.caller.clone(),
    };
    let listed = lists::page_objects(&state.store, &request, limit).await?;
    let every = if fleet_wide {
        Some(fleet::standings(&state.store, &request).await?)
    } else {
        None
    };
    let ids: Vec<i64> = listed.objects.iter().map(|(o, _)| o.id).collect();
    let agents = fleet::agents_of(&state.store, &ids).await?;
    let mut counts: Vec<view::Count> = Vec::new();
    let rows = listed
        .objects
        .iter()
        .map(|(object, resolved)| {
            let d = &object.draft;
            let props = resolved.as_ref().map_or(&d.props, |r| &r.props);
            let text_of = |key: &str| props.get(key).map(shown).unwrap_or_default();
            let seen = agents.get(&object.id).map_or(Seen::NeverSeen, |a| a.seen);
            match counts.iter_mut().find(|c| c.label == seen.as_str()) {
                Some(c) => c.n += 1,
                None => counts.push(view::Count {
                    label: seen.as_str().to_owned(),
                    class: seen.as_str().replace(' ', "-"),
                    n: 1,
                }),
            }
            view::FleetRow {
                name: d.name.as_str().to_owned(),
                display_name: text_of("display_name"),
                address: text_of("address"),
                delivery: Delivery::of(props.get("delivery")).as_str().to_owned(),
                agent: seen.as_str().to_owned(),
                agent_class: seen.as_str().replace(' ', "-"),
                imports: d.imports().map(str::to_owned).collect(),
                disabled: d.props.get("disabled") == Some(&Value::Bool(true)),
            }
        })
        .collect();
    if let Some((_, states)) = &every {
        counts = states
            .iter()
            .map(|(seen, n)| view::Count {
                label: seen.as_str().to_owned(),
                class: seen.as_str().replace(' ', "-"),
                n: usize::try_from(*n).unwrap_or(usize::MAX),
            })
            .collect();
    }
    counts.sort_by(|a, b| a.label.cmp(&b.label));
    let filters = view::FleetFilters {
        q: text(&query, "q"),
        has_agent: text(&query, "has_agent"),
        disabled: text(&query, "disabled"),
        imports: text(&query, "imports"),
        var: text(&query, "var"),
    };
    let limit_text = if limit == FLEET_PAGE {
        String::new()
    } else {
        limit.to_string()
    };
    let kept: Vec<(&str, &str)> = query
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("vars."))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([
            ("q", filters.q.as_str()),
            ("has_agent", filters.has_agent.as_str()),
            ("disabled", filters.disabled.as_str()),
            ("imports", filters.imports.as_str()),
            ("var", filters.var.as_str()),
            ("limit", limit_text.as_str()),
        ])
        .collect();
    let next = listed
        .next
        .as_deref()
        .map(|cursor| query_string(kept.iter().copied().chain([("cursor", cursor)])));
    page(&view::FleetPage {
        chrome: console.chrome("fleet"),
        rows,
        total: every.as_ref().map(|(total, _)| *total).or(listed.total),
        fleet_wide,
        count_link: query_string(
            kept.iter()
                .copied()
                .chain(query.get("cursor").map(|c| ("cursor", c)))
                .chain([("count", "1")]),
        ),
        counts,
        later: after.is_some(),
        first: query_string(kept.iter().copied()),
        filters,
        next,
    })
}

// ---------------------------------------------------------------- host

fn origin_of(origin: Option<&Origin>) -> (String, bool) {
    match origin {
        Some(Origin::Template(t)) => (t.clone(), true),
        Some(Origin::Own) => ("host".to_owned(), false),
        None => (String::new(), false),
    }
}

/// The property rows of the host page: every stored or resolved property,
/// each variable, each script.
fn property_rows(
    stored: &Value,
    resolved: &Value,
    origins: &crate::domain::resolve::Origins,
) -> Vec<view::PropRow> {
    let hidden = ["object_name", "object_type", "imports", "vars", "scripts"];
    let mut keys: Vec<&String> = stored
        .as_object()
        .into_iter()
        .chain(resolved.as_object())
        .flat_map(|m| m.keys())
        .filter(|k| !hidden.contains(&k.as_str()))
        .collect();
    keys.sort();
    keys.dedup();
    let cell = |v: &Value, key: &str| v.get(key).map(shown).unwrap_or_default();
    let mut rows: Vec<view::PropRow> = keys
        .into_iter()
        .map(|key| {
            let (from, from_template) = origin_of(origins.props.get(key));
            view::PropRow {
                key: key.clone(),
                stored: cell(stored, key),
                resolved: cell(resolved, key),
                from,
                from_template,
            }
        })
        .collect();
    let vars = |v: &Value| {
        v.get("vars")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (stored_vars, resolved_vars) = (vars(stored), vars(resolved));
    let mut names: Vec<&String> = stored_vars.keys().chain(resolved_vars.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (from, from_template) = origin_of(origins.vars.get(name));
        rows.push(view::PropRow {
            key: format!("vars.{name}"),
            stored: stored_vars.get(name).map(shown).unwrap_or_default(),
            resolved: resolved_vars.get(name).map(shown).unwrap_or_default(),
            from,
            from_template,
        });
    }
    let scripts = |v: &Value| -> Vec<String> {
        v.get("scripts")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let stored_scripts = scripts(stored);
    for name in scripts(resolved) {
        let (from, from_template) = origin_of(origins.scripts.get(&name));
        rows.push(view::PropRow {
            key: "scripts".to_owned(),
            stored: if stored_scripts.contains(&name) {
                name.clone()
            } else {
                String::new()
            },
            resolved: name,
            from,
            from_template,
        });
    }
    rows
}

fn activity_rows(page: &Value) -> Vec<view::ActivityRow> {
    page["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| serde_json::from_value::<ActivityEntry>(e.clone()).ok())
        .map(|e| view::ActivityRow {
            id: e.id,
            time: e.time,
            author: e.author,
            action: e.action,
            object_type: e.object_type,
            object_name: e.object_name,
            diff: view::diff(e.before.as_ref(), e.after.as_ref()),
        })
        .collect()
}

/// `GET /ui/host?name=N`.
pub async fn host(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let name = query.required_name()?;
    let store = &state.store;
    let caller = &console.caller;
    let stored = objects::show(store, caller, Kind::Host, name, &View::default()).await?;
    if stored.body["object_type"] == "template" {
        return Ok(see_other(&format!(
            "template?{}",
            query_string([("name", name)])
        )));
    }
    let resolved_view = View {
        resolved: true,
        ..View::default()
    };
    let resolved = objects::show(store, caller, Kind::Host, name, &resolved_view).await?;
    let origins = objects::origins(store, caller, Kind::Host, name).await?;
    let preview = deploy_service::preview(store, caller, name).await?;
    let agents = fleet::agents_of(store, &[preview.host_id]).await?;
    let seen = agents
        .get(&preview.host_id)
        .map_or(Seen::NeverSeen, |a| a.seen);
    let confirmed = preview.confirmed.as_ref().map(|c| view::ConfirmedView {
        state: seen.as_str().to_owned(),
        state_class: seen.as_str().replace(' ', "-"),
        checksum: c.checksum.clone(),
        serial: c.serial.map(|s| s.to_string()).unwrap_or_default(),
        at: c.confirmed_at.clone().unwrap_or_default(),
        version: c.agent_version.clone().unwrap_or_default(),
    });
    let activity = ActivityRequest {
        query: Query {
            object_type: Some("host".into()),
            name: Some(name.to_owned()),
            ..Query::default()
        },
        limit: Some(HOST_ACTIVITY),
        caller: caller.clone(),
    };
    // Without `activity.read` the host page shows no activity.
    let activity = match activity_service::page(store, &activity, HOST_ACTIVITY).await {
        Ok(page) => activity_rows(&page),
        Err(ApiError::Forbidden(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let imports = stored.body["imports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    page(&view::HostPage {
        chrome: console.chrome("fleet"),
        name: name.to_owned(),
        imports,
        rows: property_rows(&stored.body, &resolved.body, &origins),
        preview: Some(view::PreviewView {
            checksum: preview.checksum,
            delivery: preview.delivery.as_str().to_owned(),
            in_deploy_set: preview.in_deploy_set,
            address: preview.address.unwrap_or_default(),
            agent_port: preview.agent_port,
            document: serde_json::to_string_pretty(&preview.allowlist).unwrap_or_default(),
        }),
        confirmed,
        activity,
        activity_link: format!(
            "activity?{}",
            query_string([("object_type", "host"), ("name", name)])
        ),
    })
}

// ---------------------------------------------------------------- template

/// `GET /ui/template?name=N&kind=host|script`.
pub async fn template(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let name = query.required_name()?;
    let kind = match query.get("kind").filter(|k| !k.is_empty()) {
        None | Some("host") => Kind::Host,
        Some("script") => Kind::Script,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid kind \"{}\": host or script",
                other.escape_debug()
            ))
            .into());
        }
    };
    let store = &state.store;
    let caller = &console.caller;
    let shown_template = objects::show(store, caller, kind, name, &View::default()).await?;
    if shown_template.body["object_type"] != "template" {
        return Err(ApiError::NotFound(format!(
            "\"{}\" is not a {kind} template",
            name.escape_debug()
        ))
        .into());
    }
    let graph = objects::template_graph(store, caller, kind, name).await?;
    let mut hosts = Vec::new();
    let mut more_hosts = false;
    if kind == Kind::Host {
        let params = QueryParams(vec![("imports".into(), name.to_owned())]);
        let request = ListRequest {
            kind,
            object_type: ObjectType::Object,
            filter: params.filter(kind)?,
            view: View::default(),
            limit: Some(TEMPLATE_HOSTS),
            after: None,
            count: false,
            caller: caller.clone(),
        };
        let listed = lists::page_objects(store, &request, TEMPLATE_HOSTS).await?;
        more_hosts = listed.next.is_some();
        hosts = listed
            .objects
            .iter()
            .map(|(o, _)| o.draft.name.as_str().to_owned())
            .collect();
    }
    let props = shown_template
        .body
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !["object_name", "object_type", "imports"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), shown(v)))
        .collect();
    page(&view::TemplatePage {
        chrome: console.chrome("fleet"),
        kind: kind.as_str().to_owned(),
        name: name.to_owned(),
        props,
        imports: graph.imports,
        ancestors: graph.ancestors,
        imported_by: graph.imported_by,
        hosts,
        more_hosts,
        hosts_link: format!("./?{}", query_string([("imports", name)])),
    })
}

// ---------------------------------------------------------------- deployments

/// `GET /ui/deployments?cursor=`.
pub async fn deployments(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let before = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(activity_service::decode_cursor)
        .transpose()?;
    let list =
        deploy_service::list(&state.store, &console.caller, before, DEPLOYMENTS_PAGE).await?;
    let rows = list
        .objects
        .into_iter()
        .map(|d| view::DeploymentRow {
            id: d.id,
            status: d.status.as_str().to_owned(),
            author: d.author,
            scope: d.scope.unwrap_or_default(),
            checksum: short(&d.checksum),
        })
        .collect();
    page(&view::DeploymentsPage {
        chrome: console.chrome("deployments"),
        rows,
        next: list.next.map(|n| query_string([("cursor", n.as_str())])),
    })
}

fn deployment_id(query: &QueryParams) -> Result<i64, ApiError> {
    query
        .get("id")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest("The parameter id is required: a deployment number".into())
        })
}

/// What the page and its script show of a deployment.
fn progress_of(d: &Deployment) -> view::Progress {
    let counts = serde_json::to_value(d.counts)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let troubled = d.hosts.iter().filter(|h| h.result.is_trouble());
    let trouble_count = troubled.clone().count();
    let troubles = troubled
        .take(TROUBLES_SHOWN)
        .map(|h| view::Trouble {
            host: h.host.clone(),
            result: h.result.as_str().to_owned(),
            error: h.error.clone().unwrap_or_default(),
            stage: h.stage.map(|s| s.to_string()).unwrap_or_default(),
        })
        .collect::<Vec<_>>();
    let (stage_line, stages) = match &d.staging {
        Some(s) => {
            let mut line = format!(
                "Stage {} of {} ({}); {} failures tolerated, {} accepted; {} s between stages",
                s.stage, s.stage_count, s.stages, s.max_failed, s.accepted_failures, s.stage_wait
            );
            if let Some(at) = &s.next_stage_at {
                line.push_str(&format!("; next stage at {at}"));
            }
            if let Some(reason) = &s.halted_reason {
                line.push_str(&format!("; halted: {reason}"));
            }
            let rows = s
                .summary
                .iter()
                .map(|st| view::StageRow {
                    stage: st.stage,
                    hosts: st.hosts,
                    state: st.state.as_str().to_owned(),
                    deployed: st.counts.deployed + st.counts.skipped,
                    trouble: st.counts.failed + st.counts.unreachable,
                    pending: st.counts.pending,
                })
                .collect();
            (line, rows)
        }
        None => (String::new(), Vec::new()),
    };
    view::Progress {
        id: d.id,
        status: d.status.as_str().to_owned(),
        version: d.version.clone(),
        is_final: d.status.is_final(),
        total: d.counts.total(),
        counts,
        finished_at: d.finished_at.clone().unwrap_or_default(),
        stage_line,
        stages,
        more_troubles: (trouble_count - troubles.len()) as u64,
        troubles,
    }
}

/// `GET /ui/deployment?id=N`.
pub async fn deployment(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let id = deployment_id(&query)?;
    let d = deploy_service::details(&state.store, &console.caller, id).await?;
    page(&view::DeploymentPage {
        chrome: console.chrome("deployments"),
        progress: progress_of(&d),
        author: d.author.clone(),
        checksum: short(&d.checksum),
        scope: d.scope.clone().unwrap_or_default(),
        force: d.force,
        started_at: d.started_at.clone().unwrap_or_default(),
    })
}

/// `GET /ui/deployment/progress?id=N&since=VERSION&wait=S`: the page's
/// script asks this (a blocking query, as the API's deployment is: the
/// answer comes when the results move past `since`, or when `wait` is
/// over) for the progress alone, without every host's result.
pub async fn progress(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let id = deployment_id(&query)?;
    let wait = query.wait(PROGRESS_WAIT)?;
    let since = query.get("since").filter(|s| !s.is_empty());
    let wait = Wait::new(wait, &state.shutdown);
    let d = deploy_service::details_since(&state.store, &console.caller, id, since, &wait).await?;
    let body = serde_json::to_vec(&progress_of(&d))
        .map_err(|e| ApiError::Internal(format!("progress: {e}")))?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(secure(response))
}

// ---------------------------------------------------------------- activity

/// `GET /ui/activity?object_type=&name=&author=&cursor=&verify=1`.
pub async fn activity(
    State(state): State<AppState>,
    console: Console,
    query: QueryParams,
) -> Result<Response, PageError> {
    let before_id = query
        .get("cursor")
        .filter(|c| !c.is_empty())
        .map(activity_service::decode_cursor)
        .transpose()?;
    let given = |name: &str| query.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    let request = ActivityRequest {
        query: Query {
            object_type: given("object_type"),
            name: given("name"),
            author: given("author"),
            before_id,
            ..Query::default()
        },
        limit: Some(ACTIVITY_PAGE),
        caller: console.caller.clone(),
    };
    let found = activity_service::page(&state.store, &request, ACTIVITY_PAGE).await?;
    let filters = view::ActivityFilters {
        object_type: text(&query, "object_type"),
        name: text(&query, "name"),
        author: text(&query, "author"),
    };
    let kept = [
        ("object_type", filters.object_type.as_str()),
        ("name", filters.name.as_str()),
        ("author", filters.author.as_str()),
    ];
    let chain = if query.is_set("verify")? {
        Some(match activity_service::verify(&state.store).await? {
            Ok(count) => view::ChainState {
                intact: true,
                text: format!("The chain of all {count} entries is intact."),
            },
            Err(crate::domain::activity::Break::Checksum { id }) => view::ChainState {
                intact: false,
                text: format!("Entry {id} is broken: its checksum does not match its content."),
            },
            Err(crate::domain::activity::Break::Link { id }) => view::ChainState {
                intact: false,
                text: format!("Entry {id} is broken: it does not chain to the entry before it."),
            },
        })
    } else {
        None
    };
    let next = found["next"]
        .as_str()
        .map(|cursor| query_string(kept.iter().copied().chain([("cursor", cursor)])));
    page(&view::ActivityPage {
        chrome: console.chrome("activity"),
        activity: activity_rows(&found),
        next,
        chain,
        verify_link: format!(
            "activity?{}",
            query_string(kept.iter().copied().chain([("verify", "1")]))
        ),
        filters,
    })
}

// ---------------------------------------------------------------- pending

/// `GET /ui/pending`: a user with `deploy` sees the dry run of a deploy of
/// the whole fleet; any other the hosts whose agent lacks its allowlist.
pub async fn pending(
    State(state): State<AppState>,
    console: Console,
) -> Result<Response, PageError> {
    let caller = &console.caller;
    if !caller.permissions.contains(&Permission::Deploy) {
        let p = deploy_service::pending(&state.store, caller).await?;
        let more = p.hosts.len().saturating_sub(PENDING_SHOWN);
        let rows = p
            .hosts
            .into_iter()
            .take(PENDING_SHOWN)
            .map(|h| view::PendingRow {
                host: h.host,
                action: String::new(),
                delivery: String::new(),
                added: h.added,
                removed: h.removed,
                changed: Vec::new(),
            })
            .collect();
        return page(&view::PendingPage {
            chrome: console.chrome("pending"),
            status: "pending".into(),
            checksum: short(&p.checksum),
            counts: Vec::new(),
            rows,
            more,
            dry_run: false,
        });
    }
    let run = deploy_service::dry_run(&state.store, caller, &DeployOptions::default()).await?;
    let changing: Vec<_> = run
        .hosts
        .into_iter()
        .filter(|h| h.action != crate::domain::deployment::Action::Skip)
        .collect();
    let more = changing.len().saturating_sub(PENDING_SHOWN);
    let names = |list: &[crate::api::ScriptDefinition]| {
        list.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    };
    let rows = changing
        .into_iter()
        .take(PENDING_SHOWN)
        .map(|h| view::PendingRow {
            action: h.action.as_str().to_owned(),
            delivery: h.delivery.as_str().to_owned(),
            added: names(&h.added),
            removed: names(&h.removed),
            changed: h
                .changed
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .collect(),
            host: h.host,
        })
        .collect();
    page(&view::PendingPage {
        chrome: console.chrome("pending"),
        status: run.status,
        checksum: short(&run.checksum),
        counts: vec![
            ("update".into(), run.counts.update),
            ("revoke".into(), run.counts.revoke),
            ("skip".into(), run.counts.skip),
        ],
        rows,
        more,
        dry_run: true,
    })
}

/// The deploy form.
#[derive(Debug, serde::Deserialize)]
pub struct DeployForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    force: Option<String>,
    /// A staged deploy: as the API's `stages`, `max_failed`, `stage_wait`.
    #[serde(default)]
    stages: String,
    #[serde(default)]
    max_failed: String,
    #[serde(default)]
    stage_wait: String,
}

/// `POST /ui/deploy` (`csrf`, `force`, and `stages`, `max_failed`,
/// `stage_wait` for a staged one): starts a deploy of the whole fleet as
/// the API's deploy does, then shows the deployment.
pub async fn deploy(
    State(state): State<AppState>,
    console: Console,
    form: Result<axum::extract::Form<DeployForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    // A body that is not the form carries no token either.
    let token = form.as_ref().map_or("", |f| f.csrf.as_str());
    if !console.session.verify(token) {
        return Err(ApiError::Forbidden(
            "The form's token is missing or not this session's: reload the page and try again"
                .into(),
        )
        .into());
    }
    let axum::extract::Form(form) =
        form.map_err(|e| ApiError::BadRequest(format!("Invalid form: {}", e.body_text())))?;
    let options = DeployOptions {
        force: form
            .force
            .as_deref()
            .map(|v| crate::http::query::parse_flag("force", v))
            .transpose()?
            .unwrap_or(false),
        scope: None,
        staging: {
            let given = |v: &str| Some(v.trim()).filter(|v| !v.is_empty()).map(str::to_owned);
            let (stages, max_failed, stage_wait) = (
                given(&form.stages),
                given(&form.max_failed),
                given(&form.stage_wait),
            );
            crate::domain::staging::Plan::parse(
                stages.as_deref(),
                max_failed.as_deref(),
                stage_wait.as_deref(),
            )
            .map_err(ApiError::BadRequest)?
        },
    };
    let server_key = state.signing_key()?;
    let started = deploy_service::start(
        &state.store,
        &console.caller,
        &server_key,
        &options,
        state.deployer.owner(),
        &state.metrics,
    )
    .await?;
    match started {
        Started::Running { deployment_id, .. } => {
            state.deployer.spawn(deployment_id);
            Ok(see_other(&format!("deployment?id={deployment_id}")))
        }
        Started::Unchanged {
            deployment_id: Some(id),
            ..
        } => Ok(see_other(&format!("deployment?id={id}&unchanged=1"))),
        Started::Unchanged { .. } => Ok(see_other("pending")),
        Started::Busy { deployment_id, .. } => Err(ApiError::Conflict(format!(
            "Deployment {deployment_id} is running with another checksum: wait for it, or cancel it"
        ))
        .into()),
    }
}
