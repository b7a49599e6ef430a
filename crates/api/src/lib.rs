//! The API's answers as types (`steward-api`), each shape written once:
//! what the server serializes, what the OpenAPI document describes
//! (`ToSchema`), and what `steward deploy` reads back (`Deserialize`). The
//! enums of `steward-domain` are documented as the strings they are
//! written as. The server re-exports it as `steward::api`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use steward_domain::deployment::{
    Action, Counts, DeploymentStatus, DirectorState, HostResult, StageState,
};
use steward_domain::kind::Delivery;
use steward_domain::user::UserDraft;

/// `{"error": "..."}`: every error answer. Some carry more fields (a
/// deployment conflict names the running `deployment_id` and its `checksum`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": "No such host \"web-01\""}))]
pub struct ErrorBody {
    pub error: String,
}

/// The `409` of a deploy while another deployment runs with another checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeployConflict {
    pub error: String,
    /// The running deployment's config checksum.
    pub checksum: String,
    pub deployment_id: i64,
}

/// `/health` and `/ready` when all is well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `ok` (`/health`) or `ready` (`/ready`).
    pub status: String,
}

// `steward-agent` reads this with a reader of its own that also takes
// older servers' answers (`steward_agent::client::AgentConfig`); a test below
// keeps the two in step.
/// What an agent needs: its host, its stable id, the server's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentConfig {
    pub host: String,
    pub host_id: i64,
    pub agent_port: i64,
    /// `push` or `pull`: how the host gets its allowlist.
    #[schema(value_type = String)]
    pub delivery: Delivery,
    pub signing_key: SigningKey,
    /// The newest allowlist serial issued to the host (absent before any):
    /// the agent refuses every allowlist with a smaller serial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_floor: Option<i64>,
}

/// The server's Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The raw 32-byte key, base64.
    pub public_key: String,
    /// `sha256:` and the hex SHA-256 of the raw key.
    pub fingerprint: String,
    /// During a key rotation: the key that will replace it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextKey>,
}

/// The key a rotation will bring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NextKey {
    /// The raw 32-byte key, base64.
    pub public_key: String,
    /// `sha256:` and the hex SHA-256 of the raw key.
    pub fingerprint: String,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deployment {
    pub id: i64,
    pub checksum: String,
    pub author: String,
    /// `running`, `succeeded`, `partial`, `failed`, `cancelled`, `halted`.
    #[schema(value_type = String)]
    pub status: DeploymentStatus,
    pub force: bool,
    /// The host filter of a partial deployment (`null`: the whole fleet).
    #[serde(default)]
    pub scope: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Changes whenever the status, the counts or the stage move: `since`
    /// of a blocking query.
    pub version: String,
    /// Hosts per result, over all hosts (also those a restricted user does
    /// not see).
    #[schema(value_type = Object)]
    pub counts: Counts,
    /// A staged deployment's stages (absent when it is not staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
    /// The hosts the user may see; `[]` once the details were pruned.
    pub hosts: Vec<DeploymentHost>,
    /// The newest activity entry when it started (`null` before any):
    /// `POST /director/activity/revert?to=` with it brings the objects back
    /// to what it rolled out.
    #[serde(default)]
    pub activity_id: Option<i64>,
}

/// A staged deployment's plan and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Staging {
    /// The stages as asked for, cumulative (`1,10%,100%`).
    pub stages: String,
    /// How many stages the hosts were given (entries that added no host
    /// dropped, a final one added when the list stops short).
    pub stage_count: u32,
    /// The stage begun last (from 1).
    pub stage: u32,
    /// Failed or unreachable hosts tolerated before halting (a percentage
    /// taken of the covered hosts, rounded down).
    pub max_failed: u64,
    /// Failed or unreachable hosts resumed past (not counted again).
    pub accepted_failures: u64,
    /// Seconds between a stage's end and the next one's start.
    pub stage_wait: u32,
    /// Between stages: when the next begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage_at: Option<String>,
    /// Why the deployment halted (while it is halted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted_reason: Option<String>,
    /// Each stage's hosts and results.
    pub summary: Vec<StageSummary>,
}

/// One stage of a staged deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StageSummary {
    /// Its number, from 1.
    pub stage: u32,
    /// How many hosts it has.
    pub hosts: u64,
    /// `waiting` (not begun), `running`, `done`.
    #[schema(value_type = String)]
    pub state: StageState,
    /// Its hosts per result.
    #[schema(value_type = Object)]
    pub counts: Counts,
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
    /// Its stage in a staged deployment (absent for a skipped host, and
    /// when the deployment is not staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<u32>,
}

/// A deployment in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeploymentSummary {
    pub id: i64,
    pub checksum: String,
    pub author: String,
    /// `running`, `succeeded`, `partial`, `failed`, `cancelled`, `halted`.
    #[schema(value_type = String)]
    pub status: DeploymentStatus,
    /// The host filter of a partial deployment (`null`: the whole fleet).
    #[serde(default)]
    pub scope: Option<String>,
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

/// One script of an allowlist: what its agent may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScriptDefinition {
    pub name: String,
    /// The absolute path of the executable; `null` for a held script whose
    /// definition is no longer on record.
    pub command: Option<String>,
    /// `null`: any arguments.
    pub arguments: Option<Vec<String>>,
    /// Seconds.
    pub timeout: Option<i64>,
}

/// A script a deploy would keep under its name but change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScriptChange {
    pub name: String,
    /// What the agent holds.
    pub old: ScriptDefinition,
    /// What it would get.
    pub new: ScriptDefinition,
}

/// What a deploy would do to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRunHost {
    pub host: String,
    pub host_id: i64,
    /// `push` or `pull`.
    #[schema(value_type = String)]
    pub delivery: Delivery,
    /// `update`, `revoke` (an empty allowlist) or `skip` (its agent holds it).
    #[schema(value_type = String)]
    pub action: Action,
    /// With `stages`: the stage it would be in (`null` when skipped or not
    /// staged).
    pub stage: Option<u32>,
    /// The checksum of the allowlist it would get.
    pub checksum: String,
    /// What its agent last confirmed holding (`null`: nothing yet).
    pub confirmed_checksum: Option<String>,
    pub added: Vec<ScriptDefinition>,
    pub removed: Vec<ScriptDefinition>,
    /// `null` when the definitions the agent holds are no longer on record
    /// (the deployment that sent them was pruned): `added` and `removed`
    /// then go by the script names the agent confirmed.
    pub changed: Option<Vec<ScriptChange>>,
}

/// Hosts per action of a dry run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActionCounts {
    pub update: u64,
    pub revoke: u64,
    pub skip: u64,
}

/// `POST /director/config/deploy?dry_run=1`: what that deploy would do now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DryRun {
    /// The config checksum it would deploy (of the covered hosts only, for
    /// a partial deploy).
    pub checksum: String,
    /// `would-deploy`; `unchanged` when the deploy would record nothing;
    /// `running` when a deployment of this very configuration runs (the
    /// deploy would answer it); `busy` when another runs (a `409`).
    pub status: String,
    /// The host filter when the deploy would cover only part of the fleet.
    pub scope: Option<String>,
    pub counts: ActionCounts,
    /// Every covered host, by name.
    pub hosts: Vec<DryRunHost>,
}

/// The status of a dry run whose deploy would start a deployment.
pub const WOULD_DEPLOY: &str = "would-deploy";
/// The status of a dry run whose deploy would be refused (`409`): another
/// deployment runs with another checksum.
pub const BUSY: &str = "busy";

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

/// A self-service key's metadata; `api_key` (64 hex digits) only in the
/// answer that created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub object_name: String,
    /// `object` (a host's own key) or `template` (a key to register with).
    pub object_type: String,
    /// RFC 3339, milliseconds, UTC.
    pub created_at: String,
    /// RFC 3339, milliseconds, UTC; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<i64>,
    pub uses: i64,
}

/// `GET /director/host/allowlist`: the allowlist one host would get now,
/// and what its agent last confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AllowlistPreview {
    pub host: String,
    pub host_id: i64,
    /// Its resolved `has_agent`, and not disabled.
    pub in_deploy_set: bool,
    pub address: Option<String>,
    pub agent_port: i64,
    /// `push` (the server pushes the allowlist) or `pull` (the agent fetches it).
    #[schema(value_type = String)]
    pub delivery: Delivery,
    /// The checksum of `allowlist`.
    pub checksum: String,
    /// The allowlist document (`domain::allowlist::Allowlist::document`).
    #[schema(value_type = Allowlist)]
    pub allowlist: serde_json::Value,
    /// What the agent last confirmed, or `null`.
    pub confirmed: Option<Confirmed>,
}

/// What an agent last confirmed holding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Confirmed {
    pub checksum: String,
    pub serial: Option<i64>,
    /// RFC 3339, in milliseconds.
    pub confirmed_at: Option<String>,
    pub agent_version: Option<String>,
}

/// Director's deployment status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = DeploymentStatus)]
pub struct DirectorStatus {
    /// The newest deployment that has not failed (a running one included);
    /// every field `null` before any deployment.
    pub active_configuration: ActiveConfiguration,
    /// Each requested config checksum and its state: `active`, `deployed`,
    /// `failed`, `undeployed` or `unknown`.
    #[schema(value_type = Object)]
    pub configs: BTreeMap<String, DirectorState>,
    /// Each requested activity checksum and its state: `active`,
    /// `deployed`, `undeployed` or `unknown`.
    #[schema(value_type = Object)]
    pub activities: BTreeMap<String, DirectorState>,
}

/// The active configuration, in Director's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ActiveConfiguration {
    /// Its config checksum.
    pub config: Option<String>,
    /// `deployment-N`.
    pub stage_name: Option<String>,
    /// The checksum of the newest activity entry when it started.
    pub activity: Option<String>,
}

/// An API user as answered (never a password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub object_name: String,
    /// `admin`, `operator` or `reader`.
    pub role: String,
    /// Permissions beyond the role's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// Host name globs; absent means every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restrictions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

impl From<&UserDraft> for User {
    fn from(user: &UserDraft) -> Self {
        Self {
            object_name: user.name.clone(),
            role: user.role.as_str().to_owned(),
            permissions: (!user.permissions.is_empty()).then(|| {
                user.permissions
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect()
            }),
            restrictions: (!user.restrictions.is_unrestricted())
                .then(|| user.restrictions.globs().to_vec()),
            disabled: user.disabled.then_some(true),
        }
    }
}

/// Every user, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub objects: Vec<User>,
}

/// One activity log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ActivityEntry {
    pub id: i64,
    /// RFC 3339, milliseconds, UTC.
    pub time: String,
    /// A user name, `cli`, or `self-service (ADDRESS)`.
    pub author: String,
    /// `create`, `modify`, `rename`, `delete`, `create-key`, `revoke-key`,
    /// `register`, `revert`, `deploy-start`, `deploy-end`, ...
    pub action: String,
    /// `host`, `script`, `user`, `deployment`.
    pub object_type: String,
    pub object_name: String,
    /// The object before the change (absent on create).
    #[schema(value_type = Option<Object>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The object after the change (absent on delete).
    #[schema(value_type = Option<Object>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The changed object's stable id (object changes logged since undo
    /// exists; absent on older entries and on entries about other things).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<i64>,
    /// On a `revert` entry: the id of the entry it undid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<i64>,
    /// Hex SHA-256 chaining this entry to the previous one.
    pub checksum: String,
    pub parent_checksum: String,
}

// Streamed: its entries are `ActivityEntry`s written one by one.
/// A page of the activity log, newest first.
#[derive(Debug, ToSchema)]
pub struct ActivityList {
    pub objects: Vec<ActivityEntry>,
    /// The cursor of the next page: only with `limit`.
    pub next: Option<String>,
}

// The allowlist documents are `serde_json` values, written once in
// `steward_domain::allowlist`; the three types below describe them.

/// One script of an allowlist.
#[derive(Debug, ToSchema)]
pub struct AllowedScript {
    pub name: String,
    pub command: String,
    /// `null`: any arguments; a list: only those; `[]`: none at all.
    pub arguments: Option<Vec<String>>,
    pub timeout: Option<i64>,
}

/// A signed allowlist, as agents receive it.
#[derive(Debug, ToSchema)]
pub struct SignedAllowlist {
    pub format: i64,
    pub host_id: i64,
    pub host: String,
    pub serial: i64,
    pub checksum: String,
    pub generated_at: String,
    pub scripts: Vec<AllowedScript>,
    /// Base64 Ed25519 signature over the canonical JSON of the other fields.
    pub signature: String,
    /// During a key rotation: the next public key.
    pub next_key: Option<String>,
}

/// The allowlist a host would get now.
#[derive(Debug, ToSchema)]
pub struct Allowlist {
    pub host_id: i64,
    pub host: String,
    pub scripts: Vec<AllowedScript>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_reads_the_agent_config_the_server_writes() {
        let written = AgentConfig {
            host: "node-1.example".into(),
            host_id: 7,
            agent_port: 7446,
            delivery: Delivery::Pull,
            signing_key: SigningKey {
                algorithm: "ed25519".into(),
                public_key: "cHVibGlj".into(),
                fingerprint: "sha256:00".into(),
                next: Some(NextKey {
                    public_key: "bmV4dA==".into(),
                    fingerprint: "sha256:01".into(),
                }),
            },
            serial_floor: Some(42),
        };
        let text = serde_json::to_string(&written).expect("serialises");
        let read: steward_agent::client::AgentConfig =
            serde_json::from_str(&text).expect("the agent reads it");
        assert_eq!(read.host, "node-1.example");
        assert_eq!(read.host_id, 7);
        assert_eq!(read.agent_port, Some(7446));
        assert_eq!(read.delivery.as_deref(), Some("pull"));
        assert_eq!(read.signing_key.public_key, "cHVibGlj");
        assert_eq!(read.signing_key.fingerprint, "sha256:00");
        assert_eq!(
            read.signing_key.next.map(|n| n.public_key).as_deref(),
            Some("bmV4dA==")
        );
        assert_eq!(read.serial_floor, Some(42));
        // Outside a rotation and before any deployment, both are absent.
        let plain = AgentConfig {
            serial_floor: None,
            signing_key: SigningKey {
                next: None,
                ..written.signing_key.clone()
            },
            ..written
        };
        let value = serde_json::to_value(&plain).expect("serialises");
        assert!(value.get("serial_floor").is_none(), "{value}");
        assert!(value["signing_key"].get("next").is_none(), "{value}");
    }

    #[test]
    fn a_user_is_shown_without_its_password_and_without_what_it_lacks() {
        use serde_json::{Map, json};
        let body = |v: serde_json::Value| -> Map<String, serde_json::Value> {
            v.as_object().cloned().expect("an object")
        };
        let w = steward_domain::user::create(
            None,
            &body(json!({"object_name": "a", "password": "long enough", "restrictions": ["web-*"], "permissions": ["deploy"]})),
        )
        .expect("valid");
        assert_eq!(
            serde_json::to_value(User::from(&w.draft)).expect("serialises"),
            json!({"object_name": "a", "role": "reader", "permissions": ["deploy"], "restrictions": ["web-*"]})
        );
        let plain = steward_domain::user::create(
            None,
            &body(json!({"object_name": "b", "role": "admin", "disabled": true, "password": "long enough"})),
        )
        .expect("valid");
        assert_eq!(
            serde_json::to_string(&User::from(&plain.draft)).expect("serialises"),
            r#"{"object_name":"b","role":"admin","disabled":true}"#
        );
    }
}

/// One change an undo makes (or, on a dry run, would make).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RevertChange {
    /// The id of the activity entry undone.
    pub reverts: i64,
    /// What the undo does to the object: `create`, `delete`, `modify` or `rename`.
    pub action: String,
    /// `host` or `script`.
    pub object_type: String,
    /// The object's name when the undo finds it (for `create`: the name it
    /// is created with).
    pub object_name: String,
    /// The name a `rename` gives it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// The object as the undo leaves it (absent for `delete`).
    #[schema(value_type = Option<Object>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// What `POST /director/activity/revert` did, or on a dry run would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Revert {
    pub dry_run: bool,
    /// The changes, in the order they run (newest entry first).
    pub changes: Vec<RevertChange>,
    /// Entries already undone by an earlier change of this revert (a
    /// dependant a rename back rewrote): nothing to do.
    pub unchanged: Vec<i64>,
    /// Entries that are not changes of hosts or scripts (users,
    /// deployments, keys): left alone.
    pub skipped: Vec<i64>,
    /// The newest activity entry once the revert is written (absent on a
    /// dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<i64>,
}
