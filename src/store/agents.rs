//! What each host's agent last confirmed, and where it was.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::entities::agent_state;

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

/// One host's recorded agent state.
pub async fn of_host(db: &impl ConnectionTrait, host_id: i64) -> Result<Option<AgentState>, DbErr> {
    agent_state::Entity::find_by_id(host_id).one(db).await
}
