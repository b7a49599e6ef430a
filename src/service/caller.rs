//! Who is asking: permissions, host restrictions, and what the activity log
//! records as the author.

use std::collections::BTreeSet;

use crate::domain::auth::{Permission, Restrictions};
use crate::domain::user::UserDraft;
use crate::domain::{Draft, Kind, ObjectType};
use crate::error::ApiError;

/// The caller of a use case.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user name, `cli`, or `self-service (ADDRESS)`.
    pub author: String,
    pub permissions: BTreeSet<Permission>,
    pub restrictions: Restrictions,
    pub request_id: Option<String>,
}

impl Caller {
    /// A caller with every permission and no restriction (the CLI, startup).
    pub fn system(author: &str) -> Self {
        Self {
            author: author.to_owned(),
            permissions: Permission::ALL.into_iter().collect(),
            restrictions: Restrictions::default(),
            request_id: None,
        }
    }

    /// An API user, as authenticated, for the request `request_id`.
    pub fn user(user: &UserDraft, request_id: Option<String>) -> Self {
        Self {
            author: user.name.clone(),
            permissions: user.effective_permissions(),
            restrictions: user.restrictions.clone(),
            request_id,
        }
    }

    /// A node registering itself from `address` (self-service acts with
    /// every permission: the key it presents is what it is allowed).
    pub fn self_service(address: std::net::IpAddr, request_id: Option<String>) -> Self {
        Self {
            request_id,
            ..Self::system(&format!("self-service ({address})"))
        }
    }

    /// 403 unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(&permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "Permission {permission} is required"
            )))
        }
    }

    /// Whether the caller may see this object: host objects outside the
    /// restrictions are invisible; templates and scripts are not restricted.
    pub fn sees(&self, kind: Kind, object_type: ObjectType, name: &str) -> bool {
        kind != Kind::Host || object_type == ObjectType::Template || self.restrictions.allows(name)
    }

    /// Whether the caller may see this object.
    pub fn sees_draft(&self, draft: &Draft) -> bool {
        self.sees(draft.kind, draft.object_type, draft.name.as_str())
    }

    /// 403 unless the caller may write this object as it would be: a
    /// restricted user writes only host objects within the restrictions and
    /// no host templates (they reach beyond any restriction).
    pub fn may_write(&self, draft: &Draft) -> Result<(), ApiError> {
        if draft.kind != Kind::Host || self.restrictions.is_unrestricted() {
            return Ok(());
        }
        if draft.object_type == ObjectType::Template {
            return Err(ApiError::Forbidden(
                "Users with host restrictions cannot change host templates".into(),
            ));
        }
        if !self.restrictions.allows(draft.name.as_str()) {
            return Err(ApiError::Forbidden(format!(
                "Host \"{}\" is outside your host restrictions",
                draft.name
            )));
        }
        Ok(())
    }
}

/// The read and write permissions of a kind.
pub fn permissions_of(kind: Kind) -> (Permission, Permission) {
    match kind {
        Kind::Host => (Permission::HostsRead, Permission::HostsWrite),
        Kind::Script => (Permission::ScriptsRead, Permission::ScriptsWrite),
    }
}
