//! Queries on deployments, their hosts, and the agents' confirmed state.

use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::entities::{agent_state, deployment, deployment_host, setting};
use super::now_millis;
use crate::domain::deployment::{Counts, DeploymentStatus, HostResult};

pub use deployment::Model as Deployment;
pub use deployment_host::Model as DeploymentHost;

const SERIAL: &str = "allowlist_serial";

/// The next allowlist serial: strictly above every earlier one, and at least
/// the current time in milliseconds, so it never goes back, even after a
/// restore from an older backup.
pub async fn next_serial(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let previous: i64 = setting::Entity::find_by_id(SERIAL.to_owned())
        .one(db)
        .await?
        .and_then(|s| s.value.parse().ok())
        .unwrap_or(0);
    let next = (previous + 1).max(now_millis());
    setting::Entity::insert(setting::ActiveModel {
        key: Set(SERIAL.to_owned()),
        value: Set(next.to_string()),
    })
    .on_conflict(
        OnConflict::column(setting::Column::Key)
            .update_column(setting::Column::Value)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(next)
}

/// The running deployment, if any.
pub async fn running(db: &impl ConnectionTrait) -> Result<Option<Deployment>, DbErr> {
    deployment::Entity::find()
        .filter(deployment::Column::Status.eq(DeploymentStatus::Running))
        .order_by_desc(deployment::Column::Id)
        .one(db)
        .await
}

/// The newest deployment, if any.
pub async fn latest(db: &impl ConnectionTrait) -> Result<Option<Deployment>, DbErr> {
    deployment::Entity::find()
        .order_by_desc(deployment::Column::Id)
        .one(db)
        .await
}

/// One deployment.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<Option<Deployment>, DbErr> {
    deployment::Entity::find_by_id(id).one(db).await
}

/// Deployments newest first, before `before_id`.
pub async fn list(
    db: &impl ConnectionTrait,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<Deployment>, DbErr> {
    let mut q = deployment::Entity::find();
    if let Some(id) = before_id {
        q = q.filter(deployment::Column::Id.lt(id));
    }
    q.order_by_desc(deployment::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Running deployments no live server holds: never leased, or whose lease
/// ran out (its holder stopped or died).
pub async fn unleased(db: &impl ConnectionTrait, now: i64) -> Result<Vec<Deployment>, DbErr> {
    deployment::Entity::find()
        .filter(deployment::Column::Status.eq(DeploymentStatus::Running))
        .filter(
            Condition::any()
                .add(deployment::Column::LeaseUntil.is_null())
                .add(deployment::Column::LeaseUntil.lt(now)),
        )
        .order_by_asc(deployment::Column::Id)
        .all(db)
        .await
}

/// Takes (or renews) the lease of a running deployment for `owner` until
/// `until`: only when nobody else holds an unexpired one. True when `owner`
/// holds it now.
pub async fn claim(
    db: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbErr> {
    let done = deployment::Entity::update_many()
        .col_expr(deployment::Column::LeaseOwner, Expr::value(owner))
        .col_expr(deployment::Column::LeaseUntil, Expr::value(until))
        .filter(deployment::Column::Id.eq(id))
        .filter(deployment::Column::Status.eq(DeploymentStatus::Running))
        .filter(
            Condition::any()
                .add(deployment::Column::LeaseOwner.is_null())
                .add(deployment::Column::LeaseOwner.eq(owner))
                .add(deployment::Column::LeaseUntil.lt(now)),
        )
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Renews `owner`'s lease of a running deployment. False when the
/// deployment was cancelled or finished, or another server took it over.
pub async fn renew(
    db: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    until: i64,
) -> Result<bool, DbErr> {
    let done = deployment::Entity::update_many()
        .col_expr(deployment::Column::LeaseUntil, Expr::value(until))
        .filter(deployment::Column::Id.eq(id))
        .filter(deployment::Column::Status.eq(DeploymentStatus::Running))
        .filter(deployment::Column::LeaseOwner.eq(owner))
        .exec(db)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Gives up `owner`'s leases (a graceful stop): another server, or this
/// one started again, takes the deployments over at once.
pub async fn release(db: &impl ConnectionTrait, owner: &str) -> Result<u64, DbErr> {
    let done = deployment::Entity::update_many()
        .col_expr(deployment::Column::LeaseUntil, Expr::value(0i64))
        .filter(deployment::Column::LeaseOwner.eq(owner))
        .filter(deployment::Column::Status.eq(DeploymentStatus::Running))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Drops the per-host details of every deployment but the newest `keep`
/// (the deployments themselves stay listed, with their counts gone).
pub async fn prune(db: &impl ConnectionTrait, keep: u64) -> Result<u64, DbErr> {
    let Some(oldest_kept) = deployment::Entity::find()
        .order_by_desc(deployment::Column::Id)
        .offset(keep.saturating_sub(1))
        .limit(1)
        .one(db)
        .await?
    else {
        return Ok(0);
    };
    use sea_orm::sea_query::ExprTrait;
    // A host's newest issued allowlist stays, however old: its agent may
    // hold it and fetch it again (a reinstalled pulling agent), and a
    // deployment that skipped the host carries no document of its own.
    let newest = Alias::new("newest");
    let newest_issued = Query::select()
        .expr(Expr::col((newest.clone(), deployment_host::Column::DeploymentId)).max())
        .from_as(deployment_host::Entity, newest.clone())
        .and_where(
            Expr::col((newest.clone(), deployment_host::Column::HostId))
                .equals((deployment_host::Entity, deployment_host::Column::HostId)),
        )
        .and_where(Expr::col((newest, deployment_host::Column::Allowlist)).ne(""))
        .to_owned();
    let done = deployment_host::Entity::delete_many()
        .filter(deployment_host::Column::DeploymentId.lt(oldest_kept.id))
        .filter(
            Condition::all()
                .add(deployment_host::Column::Allowlist.ne(""))
                .add(deployment_host::Column::DeploymentId.in_subquery(newest_issued))
                .not(),
        )
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Starts a deployment row, leased to `owner` (the server that runs it)
/// until `lease_until`.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &impl ConnectionTrait,
    checksum: &str,
    author: &str,
    force: bool,
    request_id: Option<String>,
    activity_checksum: Option<String>,
    activity_id: Option<i64>,
    owner: &str,
    lease_until: i64,
    scope: Option<String>,
) -> Result<Deployment, DbErr> {
    deployment::ActiveModel {
        checksum: Set(checksum.to_owned()),
        author: Set(author.to_owned()),
        status: Set(DeploymentStatus::Running),
        force: Set(force),
        started_at: Set(now_millis()),
        finished_at: Set(None),
        lease_owner: Set(Some(owner.to_owned())),
        lease_until: Set(Some(lease_until)),
        request_id: Set(request_id),
        activity_checksum: Set(activity_checksum),
        activity_id: Set(activity_id),
        counts: Set(None),
        scope: Set(scope),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Adds the hosts of a deployment.
pub async fn add_hosts(db: &impl ConnectionTrait, hosts: Vec<DeploymentHost>) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        return add_hosts_as_json(db, &hosts).await;
    }
    for chunk in hosts.chunks(500) {
        let rows = chunk.iter().cloned().map(|h| deployment_host::ActiveModel {
            deployment_id: Set(h.deployment_id),
            host_id: Set(h.host_id),
            host_name: Set(h.host_name),
            address: Set(h.address),
            agent_port: Set(h.agent_port),
            checksum: Set(h.checksum),
            serial: Set(h.serial),
            allowlist: Set(h.allowlist),
            result: Set(h.result),
            error: Set(h.error),
            attempts: Set(h.attempts),
            updated_at: Set(h.updated_at),
            delivery: Set(h.delivery),
            stage: Set(h.stage),
            staged_allowlist: Set(h.staged_allowlist),
        });
        deployment_host::Entity::insert_many(rows).exec(db).await?;
    }
    Ok(())
}

/// On PostgreSQL, a deployment's hosts are inserted as one JSON parameter
/// per 5,000 rows, expanded by `json_populate_recordset`: statements with
/// thousands of bound parameters cost far more than the insert itself
/// (docs/PERFORMANCE.md, "What made the update fit in 2 s"). The columns
/// are the entity's, named once.
async fn add_hosts_as_json(
    db: &impl ConnectionTrait,
    hosts: &[DeploymentHost],
) -> Result<(), DbErr> {
    use sea_orm::{Iden, Iterable, Statement};
    let columns = deployment_host::Column::iter()
        .map(|c| format!("\"{}\"", c.to_string()))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO deployment_hosts ({columns}) SELECT {columns} \
         FROM json_populate_recordset(NULL::deployment_hosts, $1::json)"
    );
    for chunk in hosts.chunks(5000) {
        let rows = serde_json::to_string(chunk).map_err(|e| DbErr::Custom(e.to_string()))?;
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql.as_str(),
            [rows.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Every host of a deployment, by name.
pub async fn hosts(db: &impl ConnectionTrait, id: i64) -> Result<Vec<DeploymentHost>, DbErr> {
    deployment_host::Entity::find()
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .order_by_asc(deployment_host::Column::HostName)
        .all(db)
        .await
}

/// The hosts of a deployment not pushed yet, in the stages up to `stage`.
pub async fn pending_hosts(
    db: &impl ConnectionTrait,
    id: i64,
    stage: i32,
) -> Result<Vec<DeploymentHost>, DbErr> {
    deployment_host::Entity::find()
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Result.eq(HostResult::Pending))
        .filter(deployment_host::Column::Stage.lte(stage))
        .all(db)
        .await
}

/// What a staged deployment records at its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    /// The stages as asked for (`1,10%,100%`).
    pub stages: String,
    pub stage_count: i32,
    pub max_failed: i64,
    pub stage_wait: i32,
}

/// Records a new deployment's stages; its first stage begins `now`.
pub async fn set_plan(
    db: &impl ConnectionTrait,
    id: i64,
    plan: &StagePlan,
    now: i64,
) -> Result<(), DbErr> {
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Stages, Expr::value(plan.stages.clone()))
        .col_expr(
            deployment::Column::StageCount,
            Expr::value(plan.stage_count),
        )
        .col_expr(deployment::Column::Stage, Expr::value(1))
        .col_expr(deployment::Column::MaxFailed, Expr::value(plan.max_failed))
        .col_expr(deployment::Column::StageWait, Expr::value(plan.stage_wait))
        .col_expr(deployment::Column::StageStartedAt, Expr::value(now))
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Begins stage `stage` of a deployment: its hosts' allowlists are
/// published (moved to `allowlist`, where agents fetch them), in one
/// statement. Returns the published rows.
pub async fn begin_stage(
    db: &impl ConnectionTrait,
    id: i64,
    stage: i32,
    now: i64,
) -> Result<Vec<DeploymentHost>, DbErr> {
    let mut rows = deployment_host::Entity::find()
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Stage.eq(stage))
        .filter(deployment_host::Column::StagedAllowlist.ne(""))
        .all(db)
        .await?;
    deployment_host::Entity::update_many()
        .col_expr(
            deployment_host::Column::Allowlist,
            Expr::col(deployment_host::Column::StagedAllowlist),
        )
        .col_expr(deployment_host::Column::StagedAllowlist, Expr::value(""))
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Stage.eq(stage))
        .filter(deployment_host::Column::StagedAllowlist.ne(""))
        .exec(db)
        .await?;
    for row in &mut rows {
        row.allowlist = std::mem::take(&mut row.staged_allowlist);
    }
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Stage, Expr::value(stage))
        .col_expr(deployment::Column::StageStartedAt, Expr::value(now))
        .col_expr(
            deployment::Column::NextStageAt,
            Expr::value(Option::<i64>::None),
        )
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Other replicas' pulling agents learn of the stage as of a new
        // deployment (the `i` of migration 8).
        db.execute_unprepared("SELECT pg_notify('steward_changes', 'i')")
            .await?;
    }
    Ok(rows)
}

/// A stage ended and the halt rule let the deployment go on: the next
/// stage may begin at `at`.
pub async fn next_stage_at(db: &impl ConnectionTrait, id: i64, at: i64) -> Result<(), DbErr> {
    deployment::Entity::update_many()
        .col_expr(deployment::Column::NextStageAt, Expr::value(at))
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// How many hosts of a deployment's stages up to `stage` failed or were
/// unreachable.
pub async fn trouble_count(db: &impl ConnectionTrait, id: i64, stage: i32) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    deployment_host::Entity::find()
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Stage.lte(stage))
        .filter(
            deployment_host::Column::Result.is_in([HostResult::Failed, HostResult::Unreachable]),
        )
        .count(db)
        .await
}

/// Halts a deployment: its status, why, its counts so far; the lease is
/// given up (nobody runs it until it is resumed).
pub async fn halt(
    db: &impl ConnectionTrait,
    id: i64,
    reason: &str,
    counts: &Counts,
) -> Result<(), DbErr> {
    finish(db, id, DeploymentStatus::Halted, counts).await?;
    deployment::Entity::update_many()
        .col_expr(deployment::Column::HaltedReason, Expr::value(reason))
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Resumes a halted deployment, leased to `owner` until `lease_until`:
/// running again, its next stage due `now`, the failures so far accepted.
pub async fn resume(
    db: &impl ConnectionTrait,
    id: i64,
    owner: &str,
    lease_until: i64,
    accepted: i64,
    now: i64,
) -> Result<(), DbErr> {
    deployment::Entity::update_many()
        .col_expr(
            deployment::Column::Status,
            Expr::value(DeploymentStatus::Running),
        )
        .col_expr(
            deployment::Column::FinishedAt,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(
            deployment::Column::Counts,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            deployment::Column::HaltedReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(deployment::Column::AcceptedFailures, Expr::value(accepted))
        .col_expr(deployment::Column::NextStageAt, Expr::value(now))
        .col_expr(deployment::Column::LeaseOwner, Expr::value(owner))
        .col_expr(deployment::Column::LeaseUntil, Expr::value(lease_until))
        .filter(deployment::Column::Id.eq(id))
        .filter(deployment::Column::Status.eq(DeploymentStatus::Halted))
        .exec(db)
        .await?;
    Ok(())
}

/// Records one host's result. A host recorded `deployed` stays so (a
/// pulling agent may fetch its allowlist while a push to it fails).
pub async fn set_result(
    db: &impl ConnectionTrait,
    id: i64,
    host_id: i64,
    result: HostResult,
    error: Option<String>,
    attempts: i32,
) -> Result<(), DbErr> {
    let mut update = deployment_host::Entity::update_many();
    if result != HostResult::Deployed {
        update = update.filter(deployment_host::Column::Result.ne(HostResult::Deployed));
    }
    update
        .col_expr(deployment_host::Column::Result, Expr::value(result))
        .col_expr(deployment_host::Column::Error, Expr::value(error))
        .col_expr(deployment_host::Column::Attempts, Expr::value(attempts))
        .col_expr(
            deployment_host::Column::UpdatedAt,
            Expr::value(now_millis()),
        )
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::HostId.eq(host_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Sets a deployment's status (a final one also sets `finished_at`).
pub async fn set_status(
    db: &impl ConnectionTrait,
    id: i64,
    status: DeploymentStatus,
) -> Result<(), DbErr> {
    let finished = status.is_final().then(now_millis);
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Status, Expr::value(status))
        .col_expr(deployment::Column::FinishedAt, Expr::value(finished))
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A deployment's counts as stored (JSON text).
fn counts_text(counts: &Counts) -> String {
    serde_json::to_string(counts).unwrap_or_default()
}

/// A deployment's stored counts (kept when it finished), if any.
pub fn stored_counts(deployment: &Deployment) -> Option<Counts> {
    deployment
        .counts
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
}

/// Ends a deployment: its final status, finish time and counts per result.
pub async fn finish(
    db: &impl ConnectionTrait,
    id: i64,
    status: DeploymentStatus,
    counts: &Counts,
) -> Result<(), DbErr> {
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Status, Expr::value(status))
        .col_expr(deployment::Column::FinishedAt, Expr::value(now_millis()))
        .col_expr(deployment::Column::Counts, Expr::value(counts_text(counts)))
        .col_expr(
            deployment::Column::LeaseOwner,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            deployment::Column::LeaseUntil,
            Expr::value(Option::<i64>::None),
        )
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records where a host's agent is and whether the deployment includes it.
pub async fn target(
    db: &impl ConnectionTrait,
    host_id: i64,
    host_name: &str,
    address: Option<String>,
    agent_port: i32,
    in_deploy_set: bool,
) -> Result<(), DbErr> {
    let row = agent_state::ActiveModel {
        host_id: Set(host_id),
        host_name: Set(host_name.to_owned()),
        address: Set(address),
        agent_port: Set(agent_port),
        in_deploy_set: Set(in_deploy_set),
        confirmed_checksum: Set(None),
        confirmed_serial: Set(None),
        confirmed_at: Set(None),
        confirmed_scripts: Set(None),
        agent_version: Set(None),
        pulled_at: Set(None),
    };
    agent_state::Entity::insert(row)
        .on_conflict(
            OnConflict::column(agent_state::Column::HostId)
                .update_columns([
                    agent_state::Column::HostName,
                    agent_state::Column::Address,
                    agent_state::Column::AgentPort,
                    agent_state::Column::InDeploySet,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// Records what a host's agent confirmed holding. An agent that confirmed
/// an empty allowlist no longer needs one: it leaves the deploy set unless
/// the next rendering puts it back.
pub async fn confirm(
    db: &impl ConnectionTrait,
    host_id: i64,
    checksum: &str,
    serial: i64,
    scripts: &[String],
) -> Result<(), DbErr> {
    confirmation(checksum, serial, scripts, now_millis())
        .filter(agent_state::Column::HostId.eq(host_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The update recording that agents hold an allowlist ([`confirm`],
/// [`confirm_fetched`]), to be given the hosts it is for.
fn confirmation(
    checksum: &str,
    serial: i64,
    scripts: &[String],
    now: i64,
) -> sea_orm::UpdateMany<agent_state::Entity> {
    agent_state::Entity::update_many()
        .col_expr(
            agent_state::Column::InDeploySet,
            Expr::value(!scripts.is_empty()),
        )
        .col_expr(
            agent_state::Column::ConfirmedChecksum,
            Expr::value(checksum),
        )
        .col_expr(agent_state::Column::ConfirmedSerial, Expr::value(serial))
        .col_expr(agent_state::Column::ConfirmedAt, Expr::value(now))
        .col_expr(
            agent_state::Column::ConfirmedScripts,
            Expr::value(serde_json::to_string(scripts).unwrap_or_else(|_| "[]".into())),
        )
}

/// The newest deployment of the whole fleet that has not failed (a running
/// one included). A partial deployment never makes its configuration the
/// active one: only part of the fleet holds it.
pub async fn active(db: &impl ConnectionTrait) -> Result<Option<Deployment>, DbErr> {
    deployment::Entity::find()
        .filter(deployment::Column::Scope.is_null())
        .filter(deployment::Column::Status.is_in([
            DeploymentStatus::Running,
            DeploymentStatus::Succeeded,
            DeploymentStatus::Partial,
        ]))
        .order_by_desc(deployment::Column::Id)
        .one(db)
        .await
}

/// How many deployments have each status.
pub async fn count_by_status(
    db: &impl ConnectionTrait,
) -> Result<Vec<(DeploymentStatus, i64)>, DbErr> {
    use sea_orm::sea_query::ExprTrait;
    deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Status)
        .column_as(Expr::col(deployment::Column::Id).count(), "n")
        .group_by(deployment::Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// The statuses of the whole-fleet deployments of a config checksum.
pub async fn statuses_of(
    db: &impl ConnectionTrait,
    checksum: &str,
) -> Result<Vec<DeploymentStatus>, DbErr> {
    Ok(deployment::Entity::find()
        .filter(deployment::Column::Checksum.eq(checksum))
        .filter(deployment::Column::Scope.is_null())
        .all(db)
        .await?
        .into_iter()
        .map(|d| d.status)
        .collect())
}

/// The newest allowlist issued to a host, in any deployment (rows of
/// skipped hosts carry none).
pub async fn latest_for_host(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<DeploymentHost>, DbErr> {
    deployment_host::Entity::find()
        .filter(deployment_host::Column::HostId.eq(host_id))
        .filter(deployment_host::Column::Allowlist.ne(""))
        .order_by_desc(deployment_host::Column::DeploymentId)
        .one(db)
        .await
}

/// The documents the agents hold, as far as they are on record: for each
/// `(host id, confirmed checksum)`, the newest allowlist with that checksum
/// issued to the host. Hosts whose document was pruned are left out.
pub async fn held_documents(
    db: &impl ConnectionTrait,
    held: &[(i64, String)],
) -> Result<std::collections::HashMap<i64, String>, DbErr> {
    const CHUNK: usize = 500;
    let mut found = std::collections::HashMap::new();
    for chunk in held.chunks(CHUNK) {
        let wanted: std::collections::HashMap<i64, &str> =
            chunk.iter().map(|(id, c)| (*id, c.as_str())).collect();
        let rows: Vec<(i64, String, String)> = deployment_host::Entity::find()
            .select_only()
            .column(deployment_host::Column::HostId)
            .column(deployment_host::Column::Checksum)
            .column(deployment_host::Column::Allowlist)
            .filter(deployment_host::Column::HostId.is_in(wanted.keys().copied()))
            .filter(
                deployment_host::Column::Checksum.is_in(wanted.values().map(|c| (*c).to_owned())),
            )
            .filter(deployment_host::Column::Allowlist.ne(""))
            .order_by_desc(deployment_host::Column::DeploymentId)
            .into_tuple()
            .all(db)
            .await?;
        for (host_id, checksum, allowlist) in rows {
            if wanted.get(&host_id) == Some(&checksum.as_str()) {
                found.entry(host_id).or_insert(allowlist);
            }
        }
    }
    Ok(found)
}

/// Which allowlist was issued to a host last, without the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedVersion {
    pub deployment_id: i64,
    pub checksum: String,
    pub serial: i64,
}

/// The version of the newest allowlist issued to a host: what a pulling
/// agent's look compares with what it holds ([`latest_for_host`] reads
/// the document only when they differ).
pub async fn latest_version_for_host(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<IssuedVersion>, DbErr> {
    Ok(deployment_host::Entity::find()
        .select_only()
        .columns([
            deployment_host::Column::DeploymentId,
            deployment_host::Column::Checksum,
            deployment_host::Column::Serial,
        ])
        .filter(deployment_host::Column::HostId.eq(host_id))
        .filter(deployment_host::Column::Allowlist.ne(""))
        .order_by_desc(deployment_host::Column::DeploymentId)
        .into_tuple::<(i64, String, i64)>()
        .one(db)
        .await?
        .map(|(deployment_id, checksum, serial)| IssuedVersion {
            deployment_id,
            checksum,
            serial,
        }))
}

/// Records that a host's agent holds the allowlist `issued` to it.
pub async fn confirm_issued(
    db: &impl ConnectionTrait,
    issued: &DeploymentHost,
) -> Result<(), DbErr> {
    let doc: serde_json::Value = serde_json::from_str(&issued.allowlist).unwrap_or_default();
    let names = crate::domain::allowlist::script_names(&doc);
    confirm(db, issued.host_id, &issued.checksum, issued.serial, &names).await?;
    if names.is_empty() {
        // A deleted host's agent that holds nothing needs its key no more.
        super::keys::forget_retired(db, issued.host_id).await?;
    }
    Ok(())
}

/// Sets a finished deployment's status and counts again (a pulling agent
/// fetched its allowlist after the deployment ended).
pub async fn restate(
    db: &impl ConnectionTrait,
    id: i64,
    status: DeploymentStatus,
    counts: &Counts,
) -> Result<(), DbErr> {
    deployment::Entity::update_many()
        .col_expr(deployment::Column::Status, Expr::value(status))
        .col_expr(deployment::Column::Counts, Expr::value(counts_text(counts)))
        .filter(deployment::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The deployments newer than `after`, oldest first, at most `limit`.
pub async fn ids_after(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<i64>, DbErr> {
    deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .filter(deployment::Column::Id.gt(after))
        .order_by_asc(deployment::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// The newest deployment's number (0 when there is none).
pub async fn newest_id(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    Ok(latest(db).await?.map_or(0, |d| d.id))
}

/// The hosts a deployment issued an allowlist to (not the skipped ones).
pub async fn issued_hosts(db: &impl ConnectionTrait, id: i64) -> Result<Vec<i64>, DbErr> {
    deployment_host::Entity::find()
        .select_only()
        .column(deployment_host::Column::HostId)
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Allowlist.ne(""))
        .into_tuple()
        .all(db)
        .await
}

/// How many hosts of a deployment's stages up to `stage` have no result yet.
pub async fn pending_count(db: &impl ConnectionTrait, id: i64, stage: i32) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    deployment_host::Entity::find()
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Result.eq(HostResult::Pending))
        .filter(deployment_host::Column::Stage.lte(stage))
        .count(db)
        .await
}

/// Ends the wait for the agents of a deployment's stages up to `stage`
/// that did not fetch: every such host still pending gets `result` with
/// `error`.
pub async fn settle_pending(
    db: &impl ConnectionTrait,
    id: i64,
    stage: i32,
    result: HostResult,
    error: &str,
) -> Result<u64, DbErr> {
    let done = deployment_host::Entity::update_many()
        .col_expr(deployment_host::Column::Result, Expr::value(result))
        .col_expr(deployment_host::Column::Error, Expr::value(error))
        .col_expr(
            deployment_host::Column::UpdatedAt,
            Expr::value(now_millis()),
        )
        .filter(deployment_host::Column::DeploymentId.eq(id))
        .filter(deployment_host::Column::Result.eq(HostResult::Pending))
        .filter(deployment_host::Column::Stage.lte(stage))
        .exec(db)
        .await?;
    Ok(done.rows_affected)
}

/// Records that hosts' agents fetched and hold the same allowlist
/// themselves: confirmed, and pulling, in one statement per 500 hosts.
pub async fn confirm_fetched(
    db: &impl ConnectionTrait,
    hosts: &[i64],
    checksum: &str,
    serial: i64,
    scripts: &[String],
) -> Result<(), DbErr> {
    let now = now_millis();
    for chunk in hosts.chunks(500) {
        confirmation(checksum, serial, scripts, now)
            .col_expr(agent_state::Column::PulledAt, Expr::value(now))
            .filter(agent_state::Column::HostId.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Marks hosts of a deployment `deployed` (their agents fetched), in
/// statements of at most 500 hosts.
pub async fn set_deployed(db: &impl ConnectionTrait, id: i64, hosts: &[i64]) -> Result<(), DbErr> {
    for chunk in hosts.chunks(500) {
        deployment_host::Entity::update_many()
            .col_expr(
                deployment_host::Column::Result,
                Expr::value(HostResult::Deployed),
            )
            .col_expr(
                deployment_host::Column::Error,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                deployment_host::Column::UpdatedAt,
                Expr::value(now_millis()),
            )
            .filter(deployment_host::Column::DeploymentId.eq(id))
            .filter(deployment_host::Column::HostId.is_in(chunk.iter().copied()))
            .filter(deployment_host::Column::Result.ne(HostResult::Deployed))
            .exec(db)
            .await?;
    }
    Ok(())
}
