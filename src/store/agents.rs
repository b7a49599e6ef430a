//! What each host's agent last confirmed, and where it was.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};

use super::entities::{agent_state, deployment_host};

/// An agent's recorded state.
pub type AgentState = agent_state::Model;

/// Every recorded agent state, by host id.
pub async fn all(db: &impl ConnectionTrait) -> Result<HashMap<i64, AgentState>, DbErr> {
    Ok(agent_state::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.host_id, a))
        .collect())
}

/// The recorded agent states of these hosts, by host id.
pub async fn of_hosts(
    db: &impl ConnectionTrait,
    host_ids: &[i64],
) -> Result<HashMap<i64, AgentState>, DbErr> {
    Ok(agent_state::Entity::find()
        .filter(agent_state::Column::HostId.is_in(host_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|a| (a.host_id, a))
        .collect())
}

/// The checksum of the newest allowlist issued to each of these hosts
/// that was issued one. Deployments are pruned to `keep_deployments`,
/// which bounds the rows read.
pub async fn issued_to(
    db: &impl ConnectionTrait,
    host_ids: &[i64],
) -> Result<HashMap<i64, String>, DbErr> {
    // Newest first: the first row of a host is the newest issued to it.
    let rows: Vec<(i64, String)> = deployment_host::Entity::find()
        .select_only()
        .column(deployment_host::Column::HostId)
        .column(deployment_host::Column::Checksum)
        .filter(deployment_host::Column::HostId.is_in(host_ids.iter().copied()))
        .order_by_desc(deployment_host::Column::DeploymentId)
        .into_tuple()
        .all(db)
        .await?;
    let mut issued = HashMap::new();
    for (host, checksum) in rows {
        issued.entry(host).or_insert(checksum);
    }
    Ok(issued)
}

/// One host's recorded agent state.
pub async fn of_host(db: &impl ConnectionTrait, host_id: i64) -> Result<Option<AgentState>, DbErr> {
    agent_state::Entity::find_by_id(host_id).one(db).await
}

/// For every recorded agent: the checksum it confirmed and the checksum of
/// the newest allowlist issued to its host (`None`: none yet).
pub async fn confirmed_and_issued(
    db: &impl ConnectionTrait,
) -> Result<Vec<(Option<String>, Option<String>)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT a.confirmed_checksum AS confirmed, \
             (SELECT d.checksum FROM deployment_hosts d WHERE d.host_id = a.host_id \
              ORDER BY d.deployment_id DESC LIMIT 1) AS issued \
             FROM agent_states a",
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "confirmed")?, row.try_get("", "issued")?)))
        .collect()
}
