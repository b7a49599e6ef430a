//! What a deployment would send: every host's rendered allowlist, the
//! preview of one host's, and the hosts whose agents hold something else.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use super::caller::Caller;
use super::waiting::Wait;
use crate::api::{
    ActionCounts, ActiveConfiguration, AllowlistPreview, BUSY, Confirmed, Deployment,
    DeploymentHost, DeploymentList, DeploymentSummary, DirectorStatus, DryRun, DryRunHost, Pending,
    PendingHost, ScriptChange, ScriptDefinition, StageSummary, Staging as StagingView, UNCHANGED,
    WOULD_DEPLOY,
};
use crate::domain::allowlist::{
    AllowedScript, Allowlist, ScriptSource, compare, config_checksum, nothing_to_deploy, render,
    scripts_of,
};
use crate::domain::auth::Permission;
use crate::domain::deployment::{
    Action, Counts, DeploymentStatus, HostResult, action, activity_state, config_state,
    results_version, stage_state,
};
use crate::domain::filter::Filter;
use crate::domain::kind::{DEFAULT_AGENT_PORT, Delivery};
use crate::domain::normalise::parse_bool;
use crate::domain::resolve::Resolver;
use crate::domain::staging::Plan;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::store::agents::{self, AgentState};
use crate::store::objects as rows;
use crate::store::{Store, StoredObject};
use sea_orm::ConnectionTrait;

/// One host's desired allowlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub host_id: i64,
    pub host: String,
    pub address: Option<String>,
    pub agent_port: i64,
    /// Resolved `delivery`.
    pub delivery: Delivery,
    /// Resolved `has_agent`, not disabled.
    pub in_deploy_set: bool,
    pub allowlist: Allowlist,
    pub checksum: String,
}

/// The whole rendering: every host that gets an allowlist, and the config checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendering {
    /// The hosts covered: all of them, or those matching the scope.
    pub hosts: Vec<Desired>,
    /// The config checksum of the covered hosts.
    pub checksum: String,
    /// How many hosts a deploy of the whole fleet would cover.
    pub fleet: usize,
}

impl Rendering {
    /// Whether it covers only part of the fleet.
    pub fn is_partial(&self) -> bool {
        self.hosts.len() < self.fleet
    }
}

async fn script_sources(
    db: &impl ConnectionTrait,
) -> Result<HashMap<String, ScriptSource>, ApiError> {
    let resolver = Resolver::new(rows::templates(db, Kind::Script).await?);
    Ok(rows::all_of(db, Kind::Script, ObjectType::Object)
        .await?
        .into_iter()
        .map(|s| {
            let mut props = resolver.resolve(&s.draft).props.as_map().clone();
            // `disabled` is the script's own, never inherited.
            if let Some(own) = s.draft.props.get("disabled") {
                props.insert("disabled".into(), own.clone());
            }
            (
                s.draft.name.as_str().to_owned(),
                ScriptSource::from_props(&props),
            )
        })
        .collect())
}

/// A host's desired allowlist, and whether it matches `scope` (any host
/// does without one).
fn desired(
    host: &StoredObject,
    resolver: &Resolver,
    sources: &HashMap<String, ScriptSource>,
    scope: Option<&Filter>,
) -> (Desired, bool) {
    let resolved = resolver.resolve(&host.draft);
    let matches = scope.is_none_or(|f| f.matches(&host.draft, Some(&resolved)));
    let props = &resolved.props;
    let has_agent = props.get("has_agent").and_then(parse_bool) == Some(true);
    let disabled = host.draft.props.get("disabled").and_then(parse_bool) == Some(true);
    let in_deploy_set = has_agent && !disabled;
    let names: Vec<String> = if in_deploy_set {
        props.names("scripts").map(str::to_owned).collect()
    } else {
        Vec::new()
    };
    let allowlist = render(host.id, host.draft.name.as_str(), &names, sources);
    let desired = Desired {
        host_id: host.id,
        host: host.draft.name.as_str().to_owned(),
        address: props
            .get("address")
            .and_then(Value::as_str)
            .map(str::to_owned),
        agent_port: props
            .get("agent_port")
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_AGENT_PORT),
        delivery: Delivery::of(props.get("delivery")),
        in_deploy_set,
        checksum: allowlist.checksum(),
        allowlist,
    };
    (desired, matches)
}

/// Renders every host a deployment concerns: the hosts in the deploy set,
/// and those that left it (disabled, no longer agents, deleted) while their
/// agent may still hold something: they get an empty allowlist, a deleted
/// host at its last known address. With a `scope`, only the hosts matching
/// it are covered (a deleted host by its name: [`Filter::matches_name`]).
pub async fn render_all(
    db: &impl ConnectionTrait,
    states: &HashMap<i64, AgentState>,
    scope: Option<&Filter>,
) -> Result<Rendering, ApiError> {
    let resolver = Resolver::new(rows::templates(db, Kind::Host).await?);
    let sources = script_sources(db).await?;
    let mut hosts = Vec::new();
    let mut seen = HashSet::new();
    let mut fleet = 0;
    let stored = rows::all_of(db, Kind::Host, ObjectType::Object).await?;
    for (d, matches) in on_every_core(&stored, |host| desired(host, &resolver, &sources, scope)) {
        seen.insert(d.host_id);
        let held = states.get(&d.host_id).is_some_and(|s| s.in_deploy_set);
        if d.in_deploy_set || held {
            fleet += 1;
            if matches {
                hosts.push(d);
            }
        }
    }
    for state in states
        .values()
        .filter(|s| s.in_deploy_set && !seen.contains(&s.host_id))
    {
        fleet += 1;
        if !scope.is_none_or(|f| f.matches_name(&state.host_name)) {
            continue;
        }
        let allowlist = render(state.host_id, &state.host_name, &[], &HashMap::new());
        hosts.push(Desired {
            host_id: state.host_id,
            host: state.host_name.clone(),
            address: state.address.clone(),
            agent_port: i64::from(state.agent_port),
            // A deleted host's agent was pushed to before, unless it pulled.
            delivery: if state.pulled_at.is_some() {
                Delivery::Pull
            } else {
                Delivery::Push
            },
            in_deploy_set: false,
            checksum: allowlist.checksum(),
            allowlist,
        });
    }
    hosts.sort_by(|a, b| a.host.cmp(&b.host));
    let map: BTreeMap<String, String> = hosts
        .iter()
        .map(|h| (h.host.clone(), h.checksum.clone()))
        .collect();
    Ok(Rendering {
        checksum: config_checksum(&map),
        hosts,
        fleet,
    })
}

/// `f` over `items` spread over the machine's cores, in their order: a
/// deployment renders and signs every host's allowlist, its largest CPU
/// work before the first agent can be answered (docs/PERFORMANCE.md,
/// "What made the update fit in 2 s"). Few items stay on the calling
/// thread.
fn on_every_core<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    const AT_LEAST: usize = 512;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let chunk = items.len().div_ceil(cores).max(AT_LEAST);
    if items.len() <= chunk {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<U>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn confirmed(state: AgentState) -> Option<Confirmed> {
    Some(Confirmed {
        checksum: state.confirmed_checksum?,
        serial: state.confirmed_serial,
        confirmed_at: state
            .confirmed_at
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        agent_version: state.agent_version,
    })
}

/// `GET /director/host/allowlist?name=N`: the allowlist the host would get
/// now, its checksum, and what its agent last confirmed.
pub async fn preview(
    store: &Store,
    caller: &Caller,
    name: &str,
) -> Result<AllowlistPreview, ApiError> {
    caller.require(Permission::HostsRead)?;
    let db = store.db();
    let host = rows::find(db, Kind::Host, name)
        .await?
        .filter(|h| h.draft.object_type == ObjectType::Object && caller.sees_draft(&h.draft))
        .ok_or_else(|| ApiError::no_such_object(Kind::Host, name))?;
    let resolver = Resolver::new(rows::templates(db, Kind::Host).await?);
    let (d, _) = desired(&host, &resolver, &script_sources(db).await?, None);
    let state = agents::of_host(db, host.id).await?;
    Ok(AllowlistPreview {
        allowlist: d.allowlist.document(),
        host: d.host,
        host_id: d.host_id,
        in_deploy_set: d.in_deploy_set,
        address: d.address,
        agent_port: d.agent_port,
        delivery: d.delivery,
        checksum: d.checksum,
        confirmed: state.and_then(confirmed),
    })
}

/// `GET /director/config/pending`: the hosts whose rendered allowlist
/// differs from what their agent last confirmed, with the script names a
/// deploy would add and remove.
pub async fn pending(store: &Store, caller: &Caller) -> Result<Pending, ApiError> {
    caller.require(Permission::HostsRead)?;
    let db = store.db();
    let states = agents::all(db).await?;
    let rendering = render_all(db, &states, None).await?;
    let mut hosts = Vec::new();
    for d in &rendering.hosts {
        if !caller.restrictions.allows(&d.host) {
            continue;
        }
        let state = states.get(&d.host_id);
        let held_checksum = state.and_then(|s| s.confirmed_checksum.clone());
        if held_checksum.as_deref() == Some(d.checksum.as_str()) {
            continue;
        }
        let held: Vec<String> = state
            .and_then(|s| s.confirmed_scripts.as_deref())
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let wanted: Vec<&str> = d
            .allowlist
            .scripts
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        hosts.push(PendingHost {
            host: d.host.clone(),
            host_id: d.host_id,
            checksum: d.checksum.clone(),
            confirmed_checksum: held_checksum,
            added: wanted
                .iter()
                .filter(|n| !held.iter().any(|h| h == *n))
                .map(|n| (*n).to_owned())
                .collect(),
            removed: held
                .iter()
                .filter(|h| !wanted.contains(&h.as_str()))
                .cloned()
                .collect(),
        });
    }
    Ok(Pending {
        checksum: rendering.checksum,
        hosts,
    })
}

/// What `POST /director/config/deploy` came to.
#[derive(Debug, Clone)]
pub enum Started {
    /// Every agent already holds its allowlist: nothing to do.
    Unchanged {
        checksum: String,
        deployment_id: Option<i64>,
    },
    /// A new deployment (or the running one with the same checksum).
    Running {
        checksum: String,
        deployment_id: i64,
        hosts: usize,
    },
    /// Another deployment with another checksum is running.
    Busy {
        checksum: String,
        deployment_id: i64,
    },
}

/// What a deploy is asked to do: its parameters but `wait`.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// Deploy even when nothing changed, and push to hosts that hold it.
    pub force: bool,
    /// Only the hosts matching this (a partial deploy); `None`: all.
    pub scope: Option<Filter>,
    /// A staged deploy's stages, failures tolerated and pause.
    pub staging: Option<Plan>,
}

impl DeployOptions {
    fn scope(&self) -> Option<&Filter> {
        self.scope.as_ref().filter(|f| !f.is_empty())
    }
}

/// Whether `host`'s agent holds its rendered allowlist, with the serial it
/// came with (a host without a serial on record is sent it again).
fn held_serial(states: &HashMap<i64, AgentState>, host: &Desired) -> Option<i64> {
    states
        .get(&host.host_id)
        .filter(|s| s.confirmed_checksum.as_deref() == Some(host.checksum.as_str()))
        .and_then(|s| s.confirmed_serial)
}

/// What a deploy does to each covered host.
fn actions(rendering: &Rendering, states: &HashMap<i64, AgentState>, force: bool) -> Vec<Action> {
    rendering
        .hosts
        .iter()
        .map(|h| {
            action(
                held_serial(states, h).is_some(),
                !h.allowlist.scripts.is_empty(),
                force,
            )
        })
        .collect()
}

/// What a deploy of `rendering` comes to, before anything is written: a
/// deployment running already, nothing to do, or a new deployment (`None`).
async fn decide(
    db: &impl ConnectionTrait,
    rendering: &Rendering,
    states: &HashMap<i64, AgentState>,
    force: bool,
) -> Result<Option<Started>, ApiError> {
    use crate::store::deployments;
    if let Some(running) = deployments::running(db).await? {
        if running.checksum == rendering.checksum {
            let hosts = deployments::hosts(db, running.id).await?.len();
            return Ok(Some(Started::Running {
                checksum: running.checksum,
                deployment_id: running.id,
                hosts,
            }));
        }
        return Ok(Some(Started::Busy {
            checksum: running.checksum,
            deployment_id: running.id,
        }));
    }
    let agents_hold_it = rendering.hosts.iter().all(|h| {
        states
            .get(&h.host_id)
            .and_then(|s| s.confirmed_checksum.as_deref())
            == Some(h.checksum.as_str())
    });
    // A partial deploy records nothing when its hosts hold their
    // allowlists; a deploy of the whole fleet also needs its configuration
    // on record as the active one.
    let unchanged = if rendering.is_partial() {
        agents_hold_it && !force
    } else {
        let active = deployments::active(db).await?;
        let active_checksum = active.as_ref().map(|d| d.checksum.as_str());
        !force && nothing_to_deploy(agents_hold_it, active_checksum, &rendering.checksum)
    };
    if unchanged {
        let latest = deployments::latest(db).await?.map(|d| d.id);
        return Ok(Some(Started::Unchanged {
            checksum: rendering.checksum.clone(),
            deployment_id: latest,
        }));
    }
    Ok(None)
}

/// A partial deploy that covers no host is refused: its filter most likely
/// names nothing the operator meant.
fn check_covers_something(options: &DeployOptions, rendering: &Rendering) -> Result<(), ApiError> {
    match options.scope() {
        Some(scope) if rendering.hosts.is_empty() => Err(ApiError::Unprocessable(format!(
            "No host a deploy concerns matches the filter {}",
            scope.describe()
        ))),
        _ => Ok(()),
    }
}

/// The scope a deployment records: the filter, when it covers only part
/// of the fleet (one that matches every host is a deploy of the fleet).
fn recorded_scope(options: &DeployOptions, rendering: &Rendering) -> Option<String> {
    options
        .scope()
        .filter(|_| rendering.is_partial())
        .map(Filter::describe)
}

fn definition(script: &AllowedScript) -> ScriptDefinition {
    ScriptDefinition {
        name: script.name.clone(),
        command: Some(script.command.clone()),
        arguments: script.arguments.clone(),
        timeout: script.timeout,
    }
}

/// How `host`'s scripts would change: from the document its agent holds
/// when that is on record, from the script names it confirmed otherwise.
fn script_changes(
    host: &Desired,
    state: Option<&AgentState>,
    held_document: Option<&str>,
) -> (
    Vec<ScriptDefinition>,
    Vec<ScriptDefinition>,
    Option<Vec<ScriptChange>>,
) {
    let wanted = &host.allowlist.scripts;
    let confirmed = state.and_then(|s| s.confirmed_checksum.as_deref());
    let held = match confirmed {
        None => Some(Vec::new()),
        Some(_) => held_document
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| scripts_of(&d)),
    };
    if let Some(held) = held {
        let changes = compare(&held, wanted);
        let changed = changes
            .changed
            .iter()
            .map(|(old, new)| ScriptChange {
                name: new.name.clone(),
                old: definition(old),
                new: definition(new),
            })
            .collect();
        return (
            changes.added.iter().map(definition).collect(),
            changes.removed.iter().map(definition).collect(),
            Some(changed),
        );
    }
    let names: Vec<String> = state
        .and_then(|s| s.confirmed_scripts.as_deref())
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default();
    let added = wanted
        .iter()
        .filter(|w| !names.contains(&w.name))
        .map(definition)
        .collect();
    let removed = names
        .iter()
        .filter(|n| !wanted.iter().any(|w| &w.name == *n))
        .map(|n| ScriptDefinition {
            name: n.clone(),
            command: None,
            arguments: None,
            timeout: None,
        })
        .collect();
    (added, removed, None)
}

/// `POST /director/config/deploy?dry_run=1`: what that deploy would do
/// now, without pushing, recording a deployment or using a serial.
pub async fn dry_run(
    store: &Store,
    caller: &Caller,
    options: &DeployOptions,
) -> Result<DryRun, ApiError> {
    use crate::store::deployments;
    caller.require(Permission::Deploy)?;
    let db = store.db();
    let states = agents::all(db).await?;
    let rendering = render_all(db, &states, options.scope()).await?;
    check_covers_something(options, &rendering)?;
    let actions = actions(&rendering, &states, options.force);
    let status = match decide(db, &rendering, &states, options.force).await? {
        Some(Started::Unchanged { .. }) => UNCHANGED.to_owned(),
        Some(Started::Running { .. }) => DeploymentStatus::Running.as_str().to_owned(),
        Some(Started::Busy { .. }) => BUSY.to_owned(),
        None => WOULD_DEPLOY.to_owned(),
    };
    let mut counts = ActionCounts::default();
    let mut held = Vec::new();
    for (h, a) in rendering.hosts.iter().zip(&actions) {
        *match a {
            Action::Update => &mut counts.update,
            Action::Revoke => &mut counts.revoke,
            Action::Skip => &mut counts.skip,
        } += 1;
        let confirmed = states
            .get(&h.host_id)
            .and_then(|s| s.confirmed_checksum.clone());
        if let Some(confirmed) = confirmed.filter(|_| *a != Action::Skip)
            && caller.restrictions.allows(&h.host)
        {
            held.push((h.host_id, confirmed));
        }
    }
    let documents = deployments::held_documents(db, &held).await?;
    let stages = options.staging.as_ref().map(|plan| {
        let covered: Vec<i64> = rendering
            .hosts
            .iter()
            .zip(&actions)
            .filter(|(_, a)| **a != Action::Skip)
            .map(|(h, _)| h.host_id)
            .collect();
        stages_of(plan, &covered).1
    });
    let hosts = rendering
        .hosts
        .iter()
        .zip(&actions)
        .filter(|(h, _)| caller.restrictions.allows(&h.host))
        .map(|(h, a)| {
            let state = states.get(&h.host_id);
            let (added, removed, changed) = if *a == Action::Skip {
                (Vec::new(), Vec::new(), Some(Vec::new()))
            } else {
                script_changes(h, state, documents.get(&h.host_id).map(String::as_str))
            };
            DryRunHost {
                host: h.host.clone(),
                host_id: h.host_id,
                delivery: h.delivery,
                action: *a,
                stage: stages.as_ref().and_then(|s| s.get(&h.host_id).copied()),
                checksum: h.checksum.clone(),
                confirmed_checksum: state.and_then(|s| s.confirmed_checksum.clone()),
                added,
                removed,
                changed,
            }
        })
        .collect();
    Ok(DryRun {
        checksum: rendering.checksum.clone(),
        status,
        scope: recorded_scope(options, &rendering),
        counts,
        hosts,
    })
}

/// Starts a deployment: renders, short-circuits when unchanged, stores the
/// signed allowlists and the targets in one write transaction, and leaves
/// the pushing to [`crate::deploy::run`] (which the caller spawns).
pub async fn start(
    store: &Store,
    caller: &Caller,
    key: &crate::signing::ServerKey,
    options: &DeployOptions,
    owner: &str,
    metrics: &crate::metrics::Metrics,
) -> Result<Started, ApiError> {
    use crate::store::deployments;
    caller.require(Permission::Deploy)?;
    let force = options.force;
    let tx = store.begin_write().await?;
    let states = agents::all(&tx.tx).await?;
    let rendering = render_all(&tx.tx, &states, options.scope()).await?;
    check_covers_something(options, &rendering)?;
    if let Some(decided) = decide(&tx.tx, &rendering, &states, force).await? {
        return Ok(decided);
    }
    let actions = actions(&rendering, &states, force);
    let scope = recorded_scope(options, &rendering);
    let serial = deployments::next_serial(&tx.tx).await?;
    let (activity_id, activity_checksum) = crate::store::activity::latest(&tx.tx).await?.unzip();
    let deployment = deployments::create(
        &tx.tx,
        &rendering.checksum,
        &caller.author,
        force,
        caller.request_id.clone(),
        activity_checksum,
        activity_id,
        owner,
        crate::deploy::lease_until(crate::store::now_millis()),
        scope.clone(),
    )
    .await?;
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let next_key = key.next_public_key_base64();
    let now = crate::store::now_millis();
    // Only what changed is signed and pushed: a host whose agent holds
    // its rendered allowlist is `skipped` from the start (unless `force`),
    // its row naming the serial the agent holds and carrying no document.
    let planned: Vec<(&Desired, Action)> = rendering.hosts.iter().zip(actions).collect();
    let mut rows: Vec<deployments::DeploymentHost> = on_every_core(&planned, |(h, action)| {
        let (serial, allowlist, result) = match held_serial(&states, h) {
            Some(held) if *action == Action::Skip => (held, String::new(), HostResult::Skipped),
            _ => {
                let signed = h.allowlist.sign(
                    serial,
                    &generated_at,
                    key.signing_key(),
                    next_key.as_deref(),
                );
                (serial, signed.to_string(), HostResult::Pending)
            }
        };
        deployments::DeploymentHost {
            deployment_id: deployment.id,
            host_id: h.host_id,
            host_name: h.host.clone(),
            address: h.address.clone(),
            agent_port: i32::try_from(h.agent_port).unwrap_or(7446),
            checksum: h.checksum.clone(),
            serial,
            allowlist,
            result,
            error: None,
            attempts: 0,
            updated_at: now,
            delivery: h.delivery,
            stage: 1,
            staged_allowlist: String::new(),
        }
    });
    if let Some(plan) = &options.staging {
        stage(&tx.tx, deployment.id, plan, &mut rows, now).await?;
    }
    let skipped = rows
        .iter()
        .filter(|r| r.result == HostResult::Skipped)
        .count();
    let issued: Vec<deployments::DeploymentHost> = rows
        .iter()
        .filter(|r| !r.allowlist.is_empty())
        .cloned()
        .collect();
    deployments::add_hosts(&tx.tx, rows).await?;
    for h in &rendering.hosts {
        let state = states.get(&h.host_id);
        let held = state.is_some_and(|s| s.in_deploy_set);
        let port = i32::try_from(h.agent_port).unwrap_or(7446);
        let in_set = h.in_deploy_set || held;
        let known = state.is_some_and(|s| {
            s.host_name == h.host
                && s.address == h.address
                && s.agent_port == port
                && s.in_deploy_set == in_set
        });
        if !known {
            deployments::target(&tx.tx, h.host_id, &h.host, h.address.clone(), port, in_set)
                .await?;
        }
    }
    let entry = crate::domain::activity::Entry::deployment(
        now,
        &caller.author,
        "deploy-start",
        deployment.id,
        json!({
            "checksum": rendering.checksum,
            "hosts": rendering.hosts.len(),
            "force": force,
            "scope": scope,
            "stages": options.staging.as_ref().map(|p| p.stages_text()),
        }),
        caller.request_id.clone(),
    );
    crate::store::activity::append(&tx.tx, &entry).await?;
    let publishing = store.changes().publishing();
    tx.commit_keys_unchanged().await?;
    // Wakes the pulling agents of these hosts, and answers them.
    store.changes().issued_documents(deployment.id, issued);
    drop(publishing);
    metrics.host_result(HostResult::Skipped, skipped as u64);
    Ok(Started::Running {
        checksum: rendering.checksum,
        deployment_id: deployment.id,
        hosts: rendering.hosts.len(),
    })
}

/// A deployment as `GET /director/config/deployment?id=N` shows it.
pub async fn details(store: &Store, caller: &Caller, id: i64) -> Result<Deployment, ApiError> {
    use crate::store::deployments;
    caller.require(Permission::Api)?;
    let d = deployments::get(store.db(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No such deployment {id}")))?;
    let hosts = deployments::hosts(store.db(), id).await?;
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    // A finished deployment keeps its counts, also once its per-host
    // details were pruned. A halted one is counted afresh: a late fetch
    // of its begun stages still moves its hosts.
    let counts = deployments::stored_counts(&d)
        .filter(|_| d.status != DeploymentStatus::Halted)
        .unwrap_or_else(|| Counts::of(&hosts.iter().map(|h| h.result).collect::<Vec<_>>()));
    let staged = d.stages.is_some();
    let staging = d.stages.clone().map(|stages| StagingView {
        summary: stage_summary(&hosts, d.stage_count, d.stage),
        stages,
        stage_count: u32::try_from(d.stage_count).unwrap_or(0),
        stage: u32::try_from(d.stage).unwrap_or(0),
        max_failed: d
            .max_failed
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0),
        accepted_failures: u64::try_from(d.accepted_failures).unwrap_or(0),
        stage_wait: u32::try_from(d.stage_wait).unwrap_or(0),
        next_stage_at: d.next_stage_at.and_then(time),
        halted_reason: d.halted_reason.clone(),
    });
    let visible = hosts
        .into_iter()
        .filter(|h| caller.restrictions.allows(&h.host_name))
        .map(|h| DeploymentHost {
            host: h.host_name,
            host_id: h.host_id,
            delivery: h.delivery,
            checksum: h.checksum,
            serial: h.serial,
            result: h.result,
            error: h.error,
            attempts: h.attempts,
            stage: u32::try_from(h.stage).ok().filter(|s| staged && *s > 0),
        })
        .collect();
    Ok(Deployment {
        id: d.id,
        checksum: d.checksum,
        author: d.author,
        status: d.status,
        force: d.force,
        scope: d.scope,
        started_at: time(d.started_at),
        finished_at: d.finished_at.and_then(time),
        version: results_version(
            d.status,
            &counts,
            u32::try_from(d.stage).unwrap_or(0),
            d.next_stage_at.is_some(),
        ),
        counts,
        staging,
        hosts: visible,
        activity_id: d.activity_id,
    })
}

/// A blocking query on a deployment (`since=VERSION&wait=`): its details
/// as soon as their `version` differs from `since` (at once without one),
/// or as they are when `wait` is over.
pub async fn details_since(
    store: &Store,
    caller: &Caller,
    id: i64,
    since: Option<&str>,
    wait: &Wait,
) -> Result<Deployment, ApiError> {
    let moved = |d: &Deployment| since.is_none_or(|since| d.version != since);
    wait.until(store, || details(store, caller, id), moved)
        .await
}

/// A deploy's `wait`: the deployment's details once it has ended, `None`
/// when the wait is over first (then the deploy answers `202`).
pub async fn finished(
    store: &Store,
    caller: &Caller,
    id: i64,
    wait: &Wait,
) -> Result<Option<Deployment>, ApiError> {
    use crate::store::deployments;
    if wait.is_over() {
        return Ok(None);
    }
    let ended =
        |d: &Option<deployments::Deployment>| d.as_ref().is_some_and(|d| d.status.is_final());
    let current = wait
        .until(store, || deployments::get(store.db(), id), ended)
        .await?;
    if ended(&current) {
        Ok(Some(details(store, caller, id).await?))
    } else {
        Ok(None)
    }
}

/// `DELETE /director/config/deployment?id=N`: cancels the pushes not yet made.
pub async fn cancel(store: &Store, caller: &Caller, id: i64) -> Result<Deployment, ApiError> {
    use crate::store::deployments;
    caller.require(Permission::Deploy)?;
    let tx = store.begin_write().await?;
    let d = deployments::get(&tx.tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No such deployment {id}")))?;
    match d.status {
        DeploymentStatus::Running => {
            deployments::set_status(&tx.tx, id, DeploymentStatus::Cancelled).await?;
        }
        // Nobody runs a halted deployment: its end is written here.
        DeploymentStatus::Halted => {
            let hosts = deployments::hosts(&tx.tx, id).await?;
            let counts = Counts::of(&hosts.iter().map(|h| h.result).collect::<Vec<_>>());
            deployments::finish(&tx.tx, id, DeploymentStatus::Cancelled, &counts).await?;
            let entry = crate::deploy::end_entry(&d, DeploymentStatus::Cancelled, &counts);
            crate::store::activity::append(&tx.tx, &entry).await?;
        }
        _ => {
            return Err(ApiError::Conflict(format!(
                "Deployment {id} is {}, not running or halted",
                d.status
            )));
        }
    }
    tx.commit_keys_unchanged().await?;
    details(store, caller, id).await
}

/// `POST /director/config/deployment?id=N&resume=1`: a halted deployment
/// goes on with its next stage, run by `owner` (the caller spawns the
/// runner). Only the newest deployment may be resumed: a later one's
/// serials are newer, and agents refuse older ones.
pub async fn resume(store: &Store, caller: &Caller, id: i64, owner: &str) -> Result<(), ApiError> {
    use crate::store::deployments;
    caller.require(Permission::Deploy)?;
    let tx = store.begin_write().await?;
    let d = deployments::get(&tx.tx, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("No such deployment {id}")))?;
    if d.status != DeploymentStatus::Halted {
        return Err(ApiError::Conflict(format!(
            "Deployment {id} is {}, not halted",
            d.status
        )));
    }
    let newest = deployments::newest_id(&tx.tx).await?;
    if newest != id {
        return Err(ApiError::Conflict(format!(
            "Deployment {id} cannot be resumed: deployment {newest} is newer"
        )));
    }
    let now = crate::store::now_millis();
    let accepted = deployments::trouble_count(&tx.tx, id, d.stage).await?;
    deployments::resume(
        &tx.tx,
        id,
        owner,
        crate::deploy::lease_until(now),
        i64::try_from(accepted).unwrap_or(i64::MAX),
        now,
    )
    .await?;
    let entry = crate::domain::activity::Entry::deployment(
        now,
        &caller.author,
        "deploy-resume",
        id,
        json!({
            "checksum": d.checksum,
            "stage": d.stage,
            "accepted_failures": accepted,
        }),
        caller.request_id.clone(),
    );
    crate::store::activity::append(&tx.tx, &entry).await?;
    tx.commit_keys_unchanged().await?;
    Ok(())
}

/// The cumulative stage sizes of `plan` over the `covered` hosts (those
/// that get a new allowlist), and each one's stage.
fn stages_of(plan: &Plan, covered: &[i64]) -> (Vec<u64>, HashMap<i64, u32>) {
    use crate::domain::staging::{assign, stage_sizes};
    let sizes = stage_sizes(&plan.stages, covered.len() as u64);
    let stages = assign(covered, &sizes).into_iter().collect();
    (sizes, stages)
}

/// Gives a new deployment's rows their stages ([`crate::domain::staging`]):
/// the hosts that get a new allowlist (not the skipped ones) in the
/// spread order; the allowlists of every stage but the first are kept
/// apart until their stage begins. Records the plan on the deployment.
async fn stage(
    db: &impl ConnectionTrait,
    id: i64,
    plan: &Plan,
    rows: &mut [crate::store::deployments::DeploymentHost],
    now: i64,
) -> Result<(), ApiError> {
    let covered: Vec<i64> = rows
        .iter()
        .filter(|r| r.result == HostResult::Pending)
        .map(|r| r.host_id)
        .collect();
    let (sizes, stages) = stages_of(plan, &covered);
    for row in rows.iter_mut() {
        let stage = stages.get(&row.host_id).copied().unwrap_or(0);
        row.stage = i32::try_from(stage).unwrap_or(i32::MAX);
        if stage > 1 {
            row.staged_allowlist = std::mem::take(&mut row.allowlist);
        }
    }
    let recorded = crate::store::deployments::StagePlan {
        stages: plan.stages_text(),
        stage_count: i32::try_from(sizes.len()).unwrap_or(i32::MAX),
        max_failed: i64::try_from(plan.allowed_failures(covered.len() as u64)).unwrap_or(i64::MAX),
        stage_wait: i32::try_from(plan.stage_wait).unwrap_or(i32::MAX),
    };
    crate::store::deployments::set_plan(db, id, &recorded, now).await?;
    Ok(())
}

/// Per stage: its hosts, their results, and where it stands.
fn stage_summary(
    hosts: &[crate::store::deployments::DeploymentHost],
    stage_count: i32,
    current: i32,
) -> Vec<StageSummary> {
    let current = u32::try_from(current).unwrap_or(0);
    (1..=u32::try_from(stage_count).unwrap_or(0))
        .map(|stage| {
            let results: Vec<HostResult> = hosts
                .iter()
                .filter(|h| u32::try_from(h.stage).ok() == Some(stage))
                .map(|h| h.result)
                .collect();
            let counts = Counts::of(&results);
            StageSummary {
                stage,
                hosts: counts.total(),
                state: stage_state(stage, current, counts.pending),
                counts,
            }
        })
        .collect()
}

/// `GET /director/config/deployments`: newest first.
pub async fn list(
    store: &Store,
    caller: &Caller,
    before_id: Option<i64>,
    limit: u64,
) -> Result<DeploymentList, ApiError> {
    caller.require(Permission::Api)?;
    let rows = crate::store::deployments::list(store.db(), before_id, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    let next = rows
        .get(limit as usize - 1)
        .filter(|_| more)
        .map(|last| crate::service::activity::encode_cursor(last.id));
    let objects = rows
        .into_iter()
        .take(limit as usize)
        .map(|d| DeploymentSummary {
            id: d.id,
            checksum: d.checksum,
            author: d.author,
            status: d.status,
            scope: d.scope,
        })
        .collect();
    Ok(DeploymentList { objects, next })
}

/// `GET /director/config/deployment-status?configs=c1,c2&activities=a1,a2`,
/// in Director's shape. The active configuration is the newest deployment
/// that has not failed, a running one included.
pub async fn director_status(
    store: &Store,
    caller: &Caller,
    configs: &[&str],
    activities: &[&str],
) -> Result<DirectorStatus, ApiError> {
    use crate::store::{activity, deployments};
    caller.require(Permission::Api)?;
    let db = store.db();
    let active = deployments::active(db).await?;
    let active_configuration = match &active {
        Some(d) => ActiveConfiguration {
            config: Some(d.checksum.clone()),
            stage_name: Some(format!("deployment-{}", d.id)),
            activity: d.activity_checksum.clone(),
        },
        None => ActiveConfiguration::default(),
    };
    let mut config_status = BTreeMap::new();
    let rendered = if configs.is_empty() {
        None
    } else {
        Some(
            render_all(db, &agents::all(db).await?, None)
                .await?
                .checksum,
        )
    };
    for c in configs {
        let is_active = active.as_ref().is_some_and(|d| d.checksum == *c);
        let statuses = if is_active {
            Vec::new()
        } else {
            deployments::statuses_of(db, c).await?
        };
        let state = config_state(is_active, &statuses, rendered.as_deref() == Some(*c));
        config_status.insert((*c).to_owned(), state);
    }
    let active_activity_id = match active.as_ref().and_then(|d| d.activity_checksum.as_deref()) {
        Some(a) => activity::id_of(db, a).await?,
        None => None,
    };
    let mut activity_status = BTreeMap::new();
    for a in activities {
        let is_active_entry = active
            .as_ref()
            .is_some_and(|d| d.activity_checksum.as_deref() == Some(*a));
        let state = activity_state(
            activity::id_of(db, a).await?,
            active_activity_id,
            is_active_entry,
            active.is_some(),
        );
        activity_status.insert((*a).to_owned(), state);
    }
    Ok(DirectorStatus {
        active_configuration,
        configs: config_status,
        activities: activity_status,
    })
}

#[cfg(test)]
mod tests {
    use super::on_every_core;

    #[test]
    fn work_spread_over_the_cores_keeps_its_order() {
        for n in [0, 1, 511, 512, 513, 5_000] {
            let items: Vec<usize> = (0..n).collect();
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let doubled = on_every_core(&items, |i| {
                threads
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(std::thread::current().id());
                i * 2
            });
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let used = threads.into_inner().unwrap_or_default().len();
            if n > 512 && cores > 1 {
                assert!(used > 1, "{n} items on {used} thread");
            } else if n > 0 {
                assert_eq!(used, 1, "{n} items stay on the calling thread");
            }
        }
    }
}
