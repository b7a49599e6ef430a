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
    /// Hosts per result (JSON), set when the deployment finishes.
    #[sea_orm(column_type = "Text", nullable)]
    pub counts: Option<String>,
    /// The host filter of a partial deployment; `None` for the whole fleet.
    #[sea_orm(column_type = "Text", nullable)]
    pub scope: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
