//! Queries on self-service keys.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Set,
};

use super::entities::{agent_state, api_key, object, retired_key};
use super::now_millis;
use crate::domain::apikey::Limits;
use crate::domain::{Kind, ObjectType};

/// A stored key's metadata (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub object_id: i64,
    pub created_at: i64,
    pub limits: Limits,
    pub uses: i64,
}

fn decode(row: api_key::Model) -> StoredKey {
    StoredKey {
        object_id: row.object_id,
        created_at: row.created_at,
        limits: Limits {
            expires_at: row.expires_at,
            max_uses: row.max_uses,
        },
        uses: row.uses,
    }
}

/// The key of an object, if it has one.
pub async fn of_object(
    db: &impl ConnectionTrait,
    object_id: i64,
) -> Result<Option<StoredKey>, DbErr> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::ObjectId.eq(object_id))
        .one(db)
        .await?
        .map(decode))
}

/// The key with this hash, if any.
pub async fn by_hash(db: &impl ConnectionTrait, hash: &str) -> Result<Option<StoredKey>, DbErr> {
    Ok(api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash))
        .one(db)
        .await?
        .map(decode))
}

/// The host whose own key has this hash (not a template's key), in one
/// query: what a pulling agent's every look checks.
pub async fn host_by_hash(db: &impl ConnectionTrait, hash: &str) -> Result<Option<i64>, DbErr> {
    let is_host = Query::select()
        .expr(Expr::val(1))
        .from(object::Entity)
        .and_where(
            Expr::col((object::Entity, object::Column::Id))
                .equals((api_key::Entity, api_key::Column::ObjectId)),
        )
        .and_where(Expr::col((object::Entity, object::Column::Kind)).eq(Kind::Host.as_str()))
        .and_where(
            Expr::col((object::Entity, object::Column::ObjectType)).eq(ObjectType::Object.as_str()),
        )
        .to_owned();
    api_key::Entity::find()
        .select_only()
        .column(api_key::Column::ObjectId)
        .filter(api_key::Column::KeyHash.eq(hash))
        .filter(Expr::exists(is_host))
        .into_tuple::<i64>()
        .one(db)
        .await
}

/// Gives an object a new key, replacing its old one.
pub async fn replace(
    db: &impl ConnectionTrait,
    object_id: i64,
    hash: &str,
    limits: Limits,
) -> Result<StoredKey, DbErr> {
    revoke(db, object_id).await?;
    let row = api_key::ActiveModel {
        object_id: Set(object_id),
        key_hash: Set(hash.to_owned()),
        created_at: Set(now_millis()),
        expires_at: Set(limits.expires_at),
        max_uses: Set(limits.max_uses),
        uses: Set(0),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(decode(row))
}

/// Removes an object's key; answers whether there was one.
pub async fn revoke(db: &impl ConnectionTrait, object_id: i64) -> Result<bool, DbErr> {
    let result = api_key::Entity::delete_many()
        .filter(api_key::Column::ObjectId.eq(object_id))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Counts one use of an object's key.
pub async fn use_once(db: &impl ConnectionTrait, object_id: i64) -> Result<(), DbErr> {
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::Uses,
            Expr::col(api_key::Column::Uses).add(1),
        )
        .filter(api_key::Column::ObjectId.eq(object_id))
        .exec(db)
        .await?;
    Ok(())
}

/// The deleted host whose retired key has this hash, if any: such a key
/// may fetch only the host's allowlist (see [`retire`]).
pub async fn retired_by_hash(db: &impl ConnectionTrait, hash: &str) -> Result<Option<i64>, DbErr> {
    Ok(retired_key::Entity::find_by_id(hash.to_owned())
        .one(db)
        .await?
        .map(|row| row.host_id))
}

/// Whether the agent of host `host_id` can still fetch its allowlist: it
/// has a key, or its host was deleted while it held scripts.
pub async fn can_fetch(db: &impl ConnectionTrait, host_id: i64) -> Result<bool, DbErr> {
    if of_object(db, host_id).await?.is_some() {
        return Ok(true);
    }
    Ok(retired_key::Entity::find()
        .filter(retired_key::Column::HostId.eq(host_id))
        .one(db)
        .await?
        .is_some())
}

/// The key of a host being deleted: kept, as retired, when its agent may
/// still hold scripts (a pulling agent must be able to fetch the empty
/// allowlist that revokes them), removed otherwise. A retired key is
/// refused for everything but fetching the allowlist.
pub async fn retire(db: &impl ConnectionTrait, object_id: i64) -> Result<(), DbErr> {
    let key = api_key::Entity::find()
        .filter(api_key::Column::ObjectId.eq(object_id))
        .one(db)
        .await?;
    let holds = agent_state::Entity::find_by_id(object_id)
        .one(db)
        .await?
        .is_some_and(|s| s.in_deploy_set);
    if let Some(key) = key.filter(|_| holds) {
        retired_key::Entity::insert(retired_key::ActiveModel {
            key_hash: Set(key.key_hash),
            host_id: Set(object_id),
            retired_at: Set(now_millis()),
        })
        .exec(db)
        .await?;
    }
    revoke(db, object_id).await?;
    Ok(())
}

/// Forgets the retired key of `host_id`: its agent holds an empty
/// allowlist, and needs nothing more.
pub async fn forget_retired(db: &impl ConnectionTrait, host_id: i64) -> Result<(), DbErr> {
    retired_key::Entity::delete_many()
        .filter(retired_key::Column::HostId.eq(host_id))
        .exec(db)
        .await?;
    Ok(())
}

/// On SQLite, the key revision: moved by triggers at every change of
/// `api_keys` (migration 9), read when another process may have
/// committed, to tell a key change from anything else.
pub async fn revision(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let query = Query::select()
        .column(Alias::new("revision"))
        .from(Alias::new("key_changes"))
        .to_owned();
    let row = db
        .query_one(&query)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("key_changes".into()))?;
    row.try_get("", "revision")
}
