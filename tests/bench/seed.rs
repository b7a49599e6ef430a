//! Seeds a Steward database for the benchmarks: host templates and hosts
//! written straight through the library, so that 100,000 hosts take seconds
//! instead of 100,000 HTTP requests.
//!
//! Every object is built by the same rule the API uses for a create
//! (`domain::write::create`, which normalises the body), its imports are
//! checked by the API's integrity rule and recorded as references, exactly
//! as `POST /director/host` stores them. No activity entries are written
//! (like a restored database, the log starts empty).
//!
//! ```text
//! cargo run --release --example seed -- \
//!     --database-url 'sqlite://DIR/steward.sqlite?mode=rwc' \
//!     --hosts 100000 --templates 200 [--chain 10]
//! ```
//!
//! The database must hold no objects of these names (it is migrated first;
//! an empty or new database is what the benchmarks use). Run it with the
//! server stopped.
//!
//! What is written:
//!
//! * `--templates N`: N / 10 base templates `tmpl-base-NNN` (agent
//!   settings, several vars) and the others `tmpl-NNNN`, each importing one
//!   base and setting intervals, a zone, groups and more vars;
//! * `--hosts N`: hosts `host-NNNNNNN`, each importing one to three of the
//!   `tmpl-NNNN` templates, with an address, a display name and a few vars;
//! * `--chain D`: templates `chain-01` ... `chain-D`, where `chain-K`
//!   imports `chain-K+1`, and the host `chain-host` importing `chain-01`: a
//!   host at the end of a D-deep import chain.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use serde_json::{Map, Value, json};
use steward::domain::integrity::check_imports;
use steward::domain::resolve::Resolver;
use steward::domain::{Draft, Kind, ObjectType, write};
use steward::store::Store;
use steward::store::objects::{self, Relation};

#[derive(Parser)]
#[command(about = "Seeds a Steward database with host templates and hosts")]
struct Args {
    /// `sqlite://PATH?mode=rwc` or `postgres://...`.
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value_t = 100_000)]
    hosts: usize,
    #[arg(long, default_value_t = 200)]
    templates: usize,
    /// Also a host at the end of an import chain this deep (0: none).
    #[arg(long, default_value_t = 0)]
    chain: usize,
    /// Objects written per transaction.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
}

fn body(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn base_template(i: usize) -> Map<String, Value> {
    body(json!({
        "object_name": format!("tmpl-base-{i:03}"),
        "object_type": "template",
        "has_agent": true,
        "agent_port": 5665 + (i % 3),
        "enable_active_checks": true,
        "enable_notifications": i.is_multiple_of(2),
        "max_check_attempts": 3,
        "check_command": "hostalive",
        "vars": {
            "os": if i.is_multiple_of(4) { "Windows" } else { "Linux" },
            "datacenter": format!("dc-{}", i % 5),
            "monitoring": {"profile": format!("profile-{i}"), "checks": ["ping", "ssh", "disk"]},
            "owner": "ops",
        },
    }))
}

fn leaf_template(i: usize, base: &str) -> Map<String, Value> {
    body(json!({
        "object_name": format!("tmpl-{i:04}"),
        "object_type": "template",
        "imports": [base],
        "check_interval": format!("{}m", 1 + i % 10),
        "retry_interval": "30s",
        "zone": format!("zone-{}", i % 8),
        "groups": [format!("group-{i}"), if i.is_multiple_of(2) { "linux-servers" } else { "app-servers" }],
        "notes": format!("Template {i} for the benchmarks"),
        "vars": {
            "tier": format!("tier-{}", i % 3),
            "team": format!("team-{}", i % 12),
            "sla": {"level": if i.is_multiple_of(3) { "gold" } else { "silver" }, "hours": 8 + i % 17},
            "ports": [22, 80 + i % 20, 443],
        },
    }))
}

fn chain_template(level: usize, depth: usize) -> Map<String, Value> {
    let mut b = json!({
        "object_name": format!("chain-{level:02}"),
        "object_type": "template",
        "check_interval": format!("{level}m"),
        "notes": format!("chain level {level}"),
        "groups": [format!("chain-{level}")],
        "vars": {"depth": level, format!("level_{level:02}"): format!("value {level}"), "owner": format!("chain-{level}")},
    });
    if level < depth {
        b["imports"] = json!([format!("chain-{:02}", level + 1)]);
    }
    body(b)
}

const ROLES: [&str; 4] = ["web", "db", "cache", "queue"];

fn host(i: usize, leaves: &[String]) -> Map<String, Value> {
    let imports: Vec<&str> = (0..1 + i % 3)
        .map(|k| leaves[(i * 7 + k * 53) % leaves.len()].as_str())
        .collect();
    body(json!({
        "object_name": format!("host-{i:07}"),
        "imports": imports,
        "address": format!("127.{}.{}.{}", 100 + ((i >> 16) & 127), (i >> 8) & 255, i & 255),
        "display_name": format!("Host {i}"),
        "vars": {"n": i, "rack": format!("rack-{}", i % 400), "role": ROLES[i % ROLES.len()]},
    }))
}

/// Every draft to write, templates first, each after the templates it imports.
fn drafts(args: &Args) -> Result<Vec<Draft>, String> {
    if args.hosts > 0 && args.templates == 0 {
        return Err("hosts need at least one template (--templates)".into());
    }
    let bases = (args.templates / 10).max(1).min(args.templates);
    let mut bodies: Vec<Map<String, Value>> = (0..bases).map(base_template).collect();
    let mut leaves = Vec::new();
    for i in 0..args.templates - bases {
        let b = leaf_template(i, &format!("tmpl-base-{:03}", i % bases));
        leaves.push(format!("tmpl-{i:04}"));
        bodies.push(b);
    }
    if leaves.is_empty() {
        leaves = (0..bases).map(|i| format!("tmpl-base-{i:03}")).collect();
    }
    bodies.extend(
        (1..=args.chain)
            .rev()
            .map(|level| chain_template(level, args.chain)),
    );
    if args.chain > 0 {
        bodies.push(body(json!({
            "object_name": "chain-host",
            "imports": ["chain-01"],
            "address": "127.0.2.10",
            "vars": {"depth": 0, "own": "chain-host"},
        })));
    }
    bodies.extend((0..args.hosts).map(|i| host(i, &leaves)));
    bodies
        .iter()
        .map(|b| write::create(Kind::Host, None, b).map_err(|e| e.to_string()))
        .collect()
}

async fn seed(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let drafts = drafts(args)?;
    let templates = Resolver::new(
        drafts
            .iter()
            .filter(|d| d.object_type == ObjectType::Template)
            .cloned(),
    );
    for draft in &drafts {
        check_imports(draft, None, &templates).map_err(|e| format!("{}: {e}", draft.name))?;
    }
    let store = Store::open(&args.database_url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    let mut template_ids: HashMap<String, i64> = HashMap::new();
    for batch in drafts.chunks(args.batch.max(1)) {
        let tx = store.begin_write().await.map_err(|e| e.to_string())?;
        for draft in batch {
            let stored = objects::insert(&tx.tx, draft)
                .await
                .map_err(|e| format!("{}: {e}", draft.name))?;
            let refs: Vec<(Relation, i64)> = draft
                .imports()
                .filter_map(|name| template_ids.get(name))
                .map(|id| (Relation::Import, *id))
                .collect();
            objects::set_refs(&tx.tx, stored.id, &refs)
                .await
                .map_err(|e| format!("{}: {e}", draft.name))?;
            if draft.object_type == ObjectType::Template {
                template_ids.insert(draft.name.as_str().to_owned(), stored.id);
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
    }
    println!(
        "seeded {} templates and {} hosts in {:.1} s",
        template_ids.len(),
        drafts.len() - template_ids.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match seed(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seed: {e}");
            ExitCode::FAILURE
        }
    }
}
