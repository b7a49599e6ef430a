//! `deployment_hosts`: one row per host of a deployment, with its result.

use sea_orm::entity::prelude::*;

use crate::domain::deployment::HostResult;
use crate::domain::kind::Delivery;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "deployment_hosts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub deployment_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub host_id: i64,
    pub host_name: String,
    pub address: Option<String>,
    pub agent_port: i32,
    pub checksum: String,
    pub serial: i64,
    /// The signed allowlist document, as JSON.
    #[sea_orm(column_type = "Text")]
    pub allowlist: String,
    pub result: HostResult,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub attempts: i32,
    pub updated_at: i64,
    /// The host's `delivery`.
    pub delivery: Delivery,
    /// Its stage in a staged deployment (from 1; 0 for a skipped host);
    /// 1 in one that is not staged.
    pub stage: i32,
    /// The signed allowlist while its stage has not begun (then moved to
    /// `allowlist`): what is not published cannot be fetched.
    #[sea_orm(column_type = "Text")]
    pub staged_allowlist: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
