//! Queries on users and the users epoch (bumped by every user change, so
//! other processes notice).

use std::collections::BTreeSet;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Set,
};

use super::entities::{setting, user};
use super::exec::Exec;
use super::now_millis;
use crate::domain::auth::{Permission, Restrictions, Role};
use crate::domain::user::UserDraft;

pub(super) const USERS_EPOCH: &str = "users_epoch";

/// A stored user, with its hash and revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUser {
    pub id: i64,
    pub draft: UserDraft,
    pub password_hash: String,
    pub revision: i64,
}

fn decode(row: user::Model) -> Result<StoredUser, DbErr> {
    let corrupt = |what: &str| DbErr::Custom(format!("user {} has an invalid {what}", row.id));
    let role = Role::parse(&row.role).map_err(|_| corrupt("role"))?;
    let permissions: Vec<String> =
        serde_json::from_str(&row.permissions).map_err(|_| corrupt("permission list"))?;
    let permissions: BTreeSet<Permission> = permissions
        .iter()
        .map(|p| Permission::parse(p))
        .collect::<Result<_, _>>()
        .map_err(|_| corrupt("permission"))?;
    let restrictions: Vec<String> =
        serde_json::from_str(&row.restrictions).map_err(|_| corrupt("restriction list"))?;
    let restrictions = Restrictions::parse(restrictions).map_err(|_| corrupt("restriction"))?;
    Ok(StoredUser {
        id: row.id,
        draft: UserDraft {
            name: row.name,
            role,
            permissions,
            restrictions,
            disabled: row.disabled,
        },
        password_hash: row.password_hash,
        revision: row.revision,
    })
}

fn lists(draft: &UserDraft) -> (String, String) {
    let permissions: Vec<&str> = draft.permissions.iter().map(|p| p.as_str()).collect();
    (
        serde_json::to_string(&permissions).unwrap_or_else(|_| "[]".into()),
        serde_json::to_string(draft.restrictions.globs()).unwrap_or_else(|_| "[]".into()),
    )
}

/// Every user, by name.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<StoredUser>, DbErr> {
    user::Entity::find()
        .order_by_asc(user::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// One user by name.
pub async fn find(db: &impl ConnectionTrait, name: &str) -> Result<Option<StoredUser>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Name.eq(name))
        .one(db)
        .await?
        .map(decode)
        .transpose()
}

/// How many users exist.
pub async fn count(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    user::Entity::find().count(db).await
}

/// Inserts a user with a password hash.
pub async fn insert(
    db: &impl ConnectionTrait,
    draft: &UserDraft,
    password_hash: &str,
) -> Result<StoredUser, DbErr> {
    let now = now_millis();
    let (permissions, restrictions) = lists(draft);
    let row = user::ActiveModel {
        name: Set(draft.name.clone()),
        password_hash: Set(password_hash.to_owned()),
        role: Set(draft.role.as_str().to_owned()),
        permissions: Set(permissions),
        restrictions: Set(restrictions),
        disabled: Set(draft.disabled),
        revision: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    bump_epoch(db).await?;
    decode(row)
}

/// Overwrites a user; a new hash replaces the password when given.
pub async fn update(
    db: &impl ConnectionTrait,
    current: &StoredUser,
    draft: &UserDraft,
    password_hash: Option<&str>,
) -> Result<StoredUser, DbErr> {
    let (permissions, restrictions) = lists(draft);
    let hash = password_hash.unwrap_or(&current.password_hash).to_owned();
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value(draft.name.clone()))
        .col_expr(user::Column::PasswordHash, Expr::value(hash.clone()))
        .col_expr(user::Column::Role, Expr::value(draft.role.as_str()))
        .col_expr(user::Column::Permissions, Expr::value(permissions))
        .col_expr(user::Column::Restrictions, Expr::value(restrictions))
        .col_expr(user::Column::Disabled, Expr::value(draft.disabled))
        .col_expr(user::Column::Revision, Expr::value(current.revision + 1))
        .col_expr(user::Column::UpdatedAt, Expr::value(now_millis()))
        .filter(user::Column::Id.eq(current.id))
        .exec(db)
        .await?;
    bump_epoch(db).await?;
    Ok(StoredUser {
        id: current.id,
        draft: draft.clone(),
        password_hash: hash,
        revision: current.revision + 1,
    })
}

/// Deletes a user.
pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<(), DbErr> {
    user::Entity::delete_by_id(id).exec(db).await?;
    bump_epoch(db).await
}

/// The users epoch: changes whenever any user changes, in any process.
pub async fn epoch(db: &impl Exec) -> Result<i64, DbErr> {
    let query = setting::Entity::find_by_id(USERS_EPOCH.to_owned())
        .select_only()
        .column(setting::Column::Value)
        .into_query();
    Ok(db
        .row::<(String,), _>(&query)
        .await?
        .and_then(|(value,)| value.parse().ok())
        .unwrap_or(0))
}

async fn bump_epoch(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let next = epoch(db).await? + 1;
    setting::Entity::insert(setting::ActiveModel {
        key: Set(USERS_EPOCH.to_owned()),
        value: Set(next.to_string()),
    })
    .on_conflict(
        OnConflict::column(setting::Column::Key)
            .update_column(setting::Column::Value)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}
