//! What a deployment would send: every host's rendered allowlist, the
//! preview of one host's, and the hosts whose agents hold something else.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Value, json};

use super::caller::Caller;
use crate::domain::allowlist::{Allowlist, ScriptSource, config_checksum, render};
use crate::domain::auth::Permission;
use crate::domain::kind::DEFAULT_AGENT_PORT;
use crate::domain::normalise::parse_bool;
use crate::domain::resolve::Resolver;
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
    /// Resolved `has_agent`, not disabled.
    pub in_deploy_set: bool,
    pub allowlist: Allowlist,
    pub checksum: String,
}

/// The whole rendering: every host that gets an allowlist, and the config checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendering {
    pub hosts: Vec<Desired>,
    pub checksum: String,
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

fn desired(
    host: &StoredObject,
    resolver: &Resolver,
    sources: &HashMap<String, ScriptSource>,
) -> Desired {
    let resolved = resolver.resolve(&host.draft);
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
    Desired {
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
        in_deploy_set,
        checksum: allowlist.checksum(),
        allowlist,
    }
}

/// Renders every host a deployment concerns: the hosts in the deploy set,
/// and those that left it (disabled, no longer agents, deleted) while their
/// agent may still hold something: they get an empty allowlist, a deleted
/// host at its last known address.
pub async fn render_all(db: &impl ConnectionTrait) -> Result<Rendering, ApiError> {
    let resolver = Resolver::new(rows::templates(db, Kind::Host).await?);
    let sources = script_sources(db).await?;
    let states = agents::all(db).await?;
    let mut hosts = Vec::new();
    let mut seen = HashSet::new();
    for host in rows::all_of(db, Kind::Host, ObjectType::Object).await? {
        let d = desired(&host, &resolver, &sources);
        seen.insert(d.host_id);
        let held = states.get(&d.host_id).is_some_and(|s| s.in_deploy_set);
        if d.in_deploy_set || held {
            hosts.push(d);
        }
    }
    for state in states
        .values()
        .filter(|s| s.in_deploy_set && !seen.contains(&s.host_id))
    {
        let allowlist = render(state.host_id, &state.host_name, &[], &HashMap::new());
        hosts.push(Desired {
            host_id: state.host_id,
            host: state.host_name.clone(),
            address: state.address.clone(),
            agent_port: i64::from(state.agent_port),
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
    })
}

fn allowlist_json(a: &Allowlist) -> Value {
    json!({
        "host_id": a.host_id,
        "host": a.host,
        "scripts": a.scripts.iter().map(|s| json!({
            "name": s.name, "command": s.command, "arguments": s.arguments, "timeout": s.timeout
        })).collect::<Vec<_>>(),
    })
}

fn confirmed(state: Option<&AgentState>) -> Value {
    match state.filter(|s| s.confirmed_checksum.is_some()) {
        Some(s) => json!({
            "checksum": s.confirmed_checksum,
            "serial": s.confirmed_serial,
            "confirmed_at": s.confirmed_at.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "agent_version": s.agent_version,
        }),
        None => Value::Null,
    }
}

/// `GET /director/host/allowlist?name=N`: the allowlist the host would get
/// now, its checksum, and what its agent last confirmed.
pub async fn preview(store: &Store, caller: &Caller, name: &str) -> Result<Value, ApiError> {
    caller.require(Permission::HostsRead)?;
    let db = store.db();
    let host = rows::find(db, Kind::Host, name)
        .await?
        .filter(|h| h.draft.object_type == ObjectType::Object && caller.sees_draft(&h.draft))
        .ok_or_else(|| ApiError::no_such_object(Kind::Host, name))?;
    let resolver = Resolver::new(rows::templates(db, Kind::Host).await?);
    let d = desired(&host, &resolver, &script_sources(db).await?);
    let state = agents::of_host(db, host.id).await?;
    Ok(json!({
        "host": d.host,
        "host_id": d.host_id,
        "in_deploy_set": d.in_deploy_set,
        "address": d.address,
        "agent_port": d.agent_port,
        "checksum": d.checksum,
        "allowlist": allowlist_json(&d.allowlist),
        "confirmed": confirmed(state.as_ref()),
    }))
}

/// `GET /director/config/pending`: the hosts whose rendered allowlist
/// differs from what their agent last confirmed, with the script names a
/// deploy would add and remove.
pub async fn pending(store: &Store, caller: &Caller) -> Result<Value, ApiError> {
    caller.require(Permission::HostsRead)?;
    let db = store.db();
    let rendering = render_all(db).await?;
    let states = agents::all(db).await?;
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
        hosts.push(json!({
            "host": d.host,
            "host_id": d.host_id,
            "checksum": d.checksum,
            "confirmed_checksum": held_checksum,
            "added": wanted.iter().filter(|n| !held.iter().any(|h| h == *n)).collect::<Vec<_>>(),
            "removed": held.iter().filter(|h| !wanted.contains(&h.as_str())).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"checksum": rendering.checksum, "hosts": hosts}))
}
