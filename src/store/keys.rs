//! Queries on self-service keys.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait, Set,
};

use super::entities::{agent_state, api_key, object, retired_key};
use super::exec::Exec;
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
pub async fn of_object(db: &impl Exec, object_id: i64) -> Result<Option<StoredKey>, DbErr> {
    let query = api_key::Entity::find()
        .filter(api_key::Column::ObjectId.eq(object_id))
        .into_query();
    Ok(db.row(&query).await?.map(decode))
}

/// The key with this hash, if any.
pub async fn by_hash(db: &impl Exec, hash: &str) -> Result<Option<StoredKey>, DbErr> {
    let query = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash))
        .into_query();
    Ok(db.row(&query).await?.map(decode))
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
    db: &impl Exec,
    object_id: i64,
    hash: &str,
    limits: Limits,
) -> Result<StoredKey, DbErr> {
    revoke(db, object_id).await?;
    let key = StoredKey {
        object_id,
        created_at: now_millis(),
        limits,
        uses: 0,
    };
    let query = api_key::Entity::insert(api_key::ActiveModel {
        object_id: Set(key.object_id),
        key_hash: Set(hash.to_owned()),
        created_at: Set(key.created_at),
        expires_at: Set(limits.expires_at),
        max_uses: Set(limits.max_uses),
        uses: Set(key.uses),
        ..Default::default()
    })
    .into_query();
    db.insert(&query).await?;
    Ok(key)
}

/// Removes an object's key; answers whether there was one.
pub async fn revoke(db: &impl Exec, object_id: i64) -> Result<bool, DbErr> {
    let query = api_key::Entity::delete_many()
        .filter(api_key::Column::ObjectId.eq(object_id))
        .into_query();
    Ok(db.run(&query).await? > 0)
}

/// Counts one use of an object's key.
pub async fn use_once(db: &impl Exec, object_id: i64) -> Result<(), DbErr> {
    let query = api_key::Entity::update_many()
        .col_expr(
            api_key::Column::Uses,
            Expr::col(api_key::Column::Uses).add(1),
        )
        .filter(api_key::Column::ObjectId.eq(object_id))
        .into_query();
    db.run(&query).await?;
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
pub async fn retire(db: &impl Exec, object_id: i64) -> Result<(), DbErr> {
    let holds = Query::select()
        .expr(Expr::val(1))
        .from(agent_state::Entity)
        .and_where(Expr::col(agent_state::Column::HostId).eq(object_id))
        .and_where(Expr::col(agent_state::Column::InDeploySet).eq(true))
        .to_owned();
    let keep = Query::insert()
        .into_table(retired_key::Entity)
        .columns([
            retired_key::Column::KeyHash,
            retired_key::Column::HostId,
            retired_key::Column::RetiredAt,
        ])
        .select_from(
            Query::select()
                .column(api_key::Column::KeyHash)
                .column(api_key::Column::ObjectId)
                .expr(Expr::val(now_millis()))
                .from(api_key::Entity)
                .and_where(Expr::col(api_key::Column::ObjectId).eq(object_id))
                .and_where(Expr::exists(holds))
                .to_owned(),
        )
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .to_owned();
    db.run(&keep).await?;
    revoke(db, object_id).await?;
    Ok(())
}

/// Forgets the retired keys of `host_id` inside an object write: a host
/// recreated with its id does not get back the key its deletion retired.
pub async fn forget_retired_in(db: &impl Exec, host_id: i64) -> Result<(), DbErr> {
    let query = retired_key::Entity::delete_many()
        .filter(retired_key::Column::HostId.eq(host_id))
        .into_query();
    db.run(&query).await?;
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
