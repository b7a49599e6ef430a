//! `deployments`: one row per deploy action.

use sea_orm::entity::prelude::*;

use crate::domain::deployment::DeploymentStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deployments")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The config checksum deployed.
    pub checksum: String,
    pub author: String,
    pub status: DeploymentStatus,
    pub force: bool,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub request_id: Option<String>,
    /// The checksum of the newest activity entry when the deployment started.
    pub activity_checksum: Option<String>,
    /// The id of that entry (`None` on deployments from before it was kept).
    pub activity_id: Option<i64>,
    /// Hosts per result (JSON), set when the deployment finishes.
    #[sea_orm(column_type = "Text", nullable)]
    pub counts: Option<String>,
    /// The host filter of a partial deployment; `None` for the whole fleet.
    #[sea_orm(column_type = "Text", nullable)]
    pub scope: Option<String>,
    /// A staged deployment's stages as asked for (`1,10%,100%`); `None`
    /// when it is not staged.
    #[sea_orm(column_type = "Text", nullable)]
    pub stages: Option<String>,
    /// How many stages it has (1 when not staged).
    pub stage_count: i32,
    /// The stage it is at: begun, its hosts published (from 1).
    pub stage: i32,
    /// How many failed or unreachable hosts it tolerates (staged only).
    pub max_failed: Option<i64>,
    /// Failed or unreachable hosts an operator resumed past.
    pub accepted_failures: i64,
    /// Seconds between a stage's end and the next one's start.
    pub stage_wait: i32,
    /// When the current stage began (its pulling agents' grace runs from there).
    pub stage_started_at: Option<i64>,
    /// Between stages: when the next may begin.
    pub next_stage_at: Option<i64>,
    /// Why it halted.
    #[sea_orm(column_type = "Text", nullable)]
    pub halted_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
