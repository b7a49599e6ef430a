//! `agent_states`: per host (by stable id), where its agent is and what it
//! last confirmed holding.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub host_id: i64,
    pub host_name: String,
    /// The last address pushed to; kept after the host is deleted, to send it
    /// an empty allowlist.
    pub address: Option<String>,
    pub agent_port: i32,
    /// Whether the last deployment included the host.
    pub in_deploy_set: bool,
    pub confirmed_checksum: Option<String>,
    pub confirmed_serial: Option<i64>,
    pub confirmed_at: Option<i64>,
    /// The script names of the confirmed allowlist, as a JSON list.
    #[sea_orm(column_type = "Text", nullable)]
    pub confirmed_scripts: Option<String>,
    pub agent_version: Option<String>,
    /// When the agent last fetched its allowlist itself (`steward-agent pull`).
    pub pulled_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
