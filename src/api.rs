//! The API's answers as types, each shape written once: what the server
//! serializes, what the OpenAPI document describes (`ToSchema`), and what
//! `steward deploy` reads back (`Deserialize`). The enums of `domain/` are
//! documented as the strings they are written as.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::deployment::{Counts, DeploymentStatus, HostResult};
use crate::domain::kind::Delivery;

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    pub checksum: String,
    pub author: String,
    /// `running`, `succeeded`, `partial`, `failed`, `cancelled`.
    #[schema(value_type = String)]
    pub status: DeploymentStatus,
    pub force: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Changes whenever the status or the counts move: `since` of a blocking query.
    pub version: String,
    /// Hosts per result, over all hosts (also those a restricted user does
    /// not see).
    #[schema(value_type = Object)]
    pub counts: Counts,
    /// The hosts the user may see; `[]` once the details were pruned.
    pub hosts: Vec<DeploymentHost>,
}

/// One host's result in a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentHost {
    pub host: String,
    pub host_id: i64,
    /// `push` (the server pushes) or `pull` (the agent fetches).
    #[schema(value_type = String)]
    pub delivery: Delivery,
    pub checksum: String,
    pub serial: i64,
    /// `pending`, `deployed`, `skipped`, `failed`, `unreachable`.
    #[schema(value_type = String)]
    pub result: HostResult,
    pub error: Option<String>,
    pub attempts: i32,
}

/// A deployment in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentSummary {
    pub id: i64,
    pub checksum: String,
    pub author: String,
    /// `running`, `succeeded`, `partial`, `failed`, `cancelled`.
    #[schema(value_type = String)]
    pub status: DeploymentStatus,
}

/// Deployments, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentList {
    pub objects: Vec<DeploymentSummary>,
    /// The cursor of the next page, when more follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A host whose allowlist differs from what its agent confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingHost {
    pub host: String,
    pub host_id: i64,
    /// The checksum of the allowlist a deploy would send now.
    pub checksum: String,
    /// What the agent last confirmed holding (`null`: nothing yet).
    pub confirmed_checksum: Option<String>,
    /// Scripts a deploy would add.
    pub added: Vec<String>,
    /// Scripts a deploy would remove.
    pub removed: Vec<String>,
}

/// `GET /director/config/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pending {
    /// The config checksum a deploy would deploy now.
    pub checksum: String,
    pub hosts: Vec<PendingHost>,
}

/// The status of a deploy that found nothing to deploy.
pub const UNCHANGED: &str = "unchanged";

/// The answer of `POST /director/config/deploy` (without `wait`, or when
/// nothing changed); with `wait`, a finished deployment as `Deployment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployAnswer {
    pub checksum: String,
    /// `unchanged`, `running`, or a final status after `wait`.
    pub status: String,
    /// The deployment started or running; with `unchanged` the newest (one
    /// is always on record then: the first deploy of a configuration is).
    #[serde(default)]
    pub deployment_id: Option<i64>,
    /// How many hosts a started deployment renders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u64>,
}
