//! Appending to and reading the activity log.

use sea_orm::sea_query::{self, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};
use serde_json::Value;

use super::entities::activity;
use super::exec::{Exec, Shape, insert_statement};
use super::objects;
use crate::domain::activity::{Entry, GENESIS};

/// A stored entry with its id and chain checksums.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub id: i64,
    pub entry: Entry,
    pub parent_checksum: String,
    pub checksum: String,
}

/// What to select from the log.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub object_type: Option<String>,
    pub name: Option<String>,
    pub author: Option<String>,
    pub action: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Only entries with a smaller id (newest first paging).
    pub before_id: Option<i64>,
    /// Only entries with a greater id (a blocking query's `after`).
    pub after_id: Option<i64>,
}

fn parse_json(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn decode(row: activity::Model) -> StoredEntry {
    StoredEntry {
        id: row.id,
        entry: Entry {
            at: row.at,
            author: row.author,
            action: row.action,
            object_type: row.object_type,
            object_name: row.object_name,
            before: parse_json(row.before),
            after: parse_json(row.after),
            request_id: row.request_id,
            object_id: row.object_id,
            reverts: row.reverts,
        },
        parent_checksum: row.parent_checksum,
        checksum: row.checksum,
    }
}

/// Appends an entry chained to the last one. Must run inside the write
/// transaction of the change it records (writes are serialised, so the last
/// checksum cannot move meanwhile).
pub async fn append(db: &impl Exec, entry: &Entry) -> Result<(), DbErr> {
    append_after(db, entry, None).await.map(|_| ())
}

/// Appends an entry chained to `head`, the checksum of the log's last
/// entry when the caller knows it (read from the log otherwise), and
/// answers the new entry's checksum: the new head.
pub async fn append_after(
    db: &impl Exec,
    entry: &Entry,
    head: Option<&str>,
) -> Result<String, DbErr> {
    static INSERT: Shape<12> =
        Shape::new(|backend, values| insert_statement(backend, &insert_query(values)));
    let parent = match head {
        Some(head) => head.to_owned(),
        None => last_checksum(db).await?,
    };
    let (values, checksum) = entry_values(entry, parent);
    db.insert_raw(INSERT.bind(db.backend(), values)?).await?;
    Ok(checksum)
}

/// On PostgreSQL, runs an object's [`objects::update_query`] with
/// `update`'s values and appends `entry` (chained to `head`) in one
/// statement, one round trip: the entry of a change travels with it.
/// Answers the new head.
pub async fn update_and_append(
    db: &impl Exec,
    update: [sea_query::Value; 5],
    entry: &Entry,
    head: &str,
) -> Result<String, DbErr> {
    static UPDATE_AND_INSERT: Shape<17> = Shape::new(|backend, values| {
        let [a, b, c, d, e, rest @ ..] = values;
        let mut insert = insert_query(rest);
        insert.returning_col(activity::Column::Id);
        let change = sea_query::CommonTableExpression::new()
            .query(objects::update_query([a, b, c, d, e]))
            .table_name("object_update")
            .to_owned();
        let (sql, values) = sea_query::WithClause::new()
            .cte(change)
            .to_owned()
            .query(insert)
            .build(sea_query::PostgresQueryBuilder);
        sea_orm::Statement::from_sql_and_values(backend, sql, values)
    });
    if db.backend() != DbBackend::Postgres {
        return Err(DbErr::Custom(
            "an object update travels with its entry on PostgreSQL only".into(),
        ));
    }
    let (values, checksum) = entry_values(entry, head.to_owned());
    let values: [sea_query::Value; 17] = update
        .into_iter()
        .chain(values)
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| DbErr::Custom("5 and 12 values make 17".into()))?;
    db.insert_raw(UPDATE_AND_INSERT.bind(DbBackend::Postgres, values)?)
        .await?;
    Ok(checksum)
}

/// The checksum of the log's last entry (the chain's genesis when empty).
pub(super) async fn last_checksum(db: &impl Exec) -> Result<String, DbErr> {
    static LAST: Shape<0> = Shape::new(|backend, []| {
        backend.build(
            &activity::Entity::find()
                .select_only()
                .column(activity::Column::Checksum)
                .order_by_desc(activity::Column::Id)
                .limit(1)
                .into_query(),
        )
    });
    Ok(db
        .row_raw::<(String,)>(LAST.bind(db.backend(), [])?)
        .await?
        .map_or_else(|| GENESIS.to_owned(), |(checksum,)| checksum))
}

/// The INSERT of an entry, as a query of its values (see [`entry_values`]).
fn insert_query(values: [sea_query::Value; 12]) -> sea_query::InsertStatement {
    use activity::Column as C;
    let mut query = sea_query::Query::insert();
    query.into_table(activity::Entity).columns([
        C::At,
        C::Author,
        C::Action,
        C::ObjectType,
        C::ObjectName,
        C::Before,
        C::After,
        C::RequestId,
        C::ObjectId,
        C::Reverts,
        C::ParentChecksum,
        C::Checksum,
    ]);
    // As many values as columns: it cannot fail (and a value left out
    // would fail the shape's build).
    let _ = query.values(values.map(Expr::from));
    query
}

/// The values of [`insert_query`] for `entry` chained to `parent`, and the
/// entry's checksum.
fn entry_values(entry: &Entry, parent: String) -> ([sea_query::Value; 12], String) {
    let checksum = entry.checksum(&parent);
    let values = [
        entry.at.into(),
        entry.author.as_str().into(),
        entry.action.as_str().into(),
        entry.object_type.as_str().into(),
        entry.object_name.as_str().into(),
        entry.before.as_ref().map(Value::to_string).into(),
        entry.after.as_ref().map(Value::to_string).into(),
        entry.request_id.clone().into(),
        entry.object_id.into(),
        entry.reverts.into(),
        parent.into(),
        checksum.as_str().into(),
    ];
    (values, checksum)
}

/// Entry `id`, read through any connection (a write transaction too).
pub async fn get(db: &impl Exec, id: i64) -> Result<Option<StoredEntry>, DbErr> {
    let query = activity::Entity::find_by_id(id).into_query();
    Ok(db.row::<activity::Model, _>(&query).await?.map(decode))
}

/// The entries after `after_id`, newest first, at most `limit`, read
/// through any connection (a write transaction too).
pub async fn newest_after(
    db: &impl Exec,
    after_id: i64,
    limit: u64,
) -> Result<Vec<StoredEntry>, DbErr> {
    let query = activity::Entity::find()
        .filter(activity::Column::Id.gt(after_id))
        .order_by_desc(activity::Column::Id)
        .limit(limit)
        .into_query();
    Ok(db
        .rows::<activity::Model, _>(&query)
        .await?
        .into_iter()
        .map(decode)
        .collect())
}

/// The id of the newest entry about `object_type` `name` after `after_id`.
pub async fn newest_about(
    db: &impl Exec,
    object_type: &str,
    name: &str,
    after_id: i64,
) -> Result<Option<i64>, DbErr> {
    let query = activity::Entity::find()
        .select_only()
        .column(activity::Column::Id)
        .filter(activity::Column::Id.gt(after_id))
        .filter(activity::Column::ObjectType.eq(object_type))
        .filter(activity::Column::ObjectName.eq(name))
        .order_by_desc(activity::Column::Id)
        .limit(1)
        .into_query();
    Ok(db.row::<(i64,), _>(&query).await?.map(|(id,)| id))
}

/// Entries matching `query`, newest first, at most `limit`.
pub async fn find(
    db: &impl ConnectionTrait,
    query: &Query,
    limit: u64,
) -> Result<Vec<StoredEntry>, DbErr> {
    let mut select = activity::Entity::find();
    if let Some(v) = &query.object_type {
        select = select.filter(activity::Column::ObjectType.eq(v.as_str()));
    }
    if let Some(v) = &query.name {
        select = select.filter(activity::Column::ObjectName.eq(v.as_str()));
    }
    if let Some(v) = &query.author {
        select = select.filter(activity::Column::Author.eq(v.as_str()));
    }
    if let Some(v) = &query.action {
        select = select.filter(activity::Column::Action.eq(v.as_str()));
    }
    if let Some(v) = query.since {
        select = select.filter(activity::Column::At.gte(v));
    }
    if let Some(v) = query.before_id {
        select = select.filter(activity::Column::Id.lt(v));
    }
    if let Some(v) = query.after_id {
        select = select.filter(activity::Column::Id.gt(v));
    }
    Ok(select
        .order_by_desc(activity::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect())
}

/// Entries in id order after `after_id`, at most `limit` (for verifying).
pub async fn chain(
    db: &impl ConnectionTrait,
    after_id: i64,
    limit: u64,
) -> Result<Vec<StoredEntry>, DbErr> {
    Ok(activity::Entity::find()
        .filter(activity::Column::Id.gt(after_id))
        .order_by_asc(activity::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect())
}

/// The newest entry's id and checksum, if any.
pub async fn latest(db: &impl ConnectionTrait) -> Result<Option<(i64, String)>, DbErr> {
    Ok(activity::Entity::find()
        .order_by_desc(activity::Column::Id)
        .one(db)
        .await?
        .map(|row| (row.id, row.checksum)))
}

/// The newest entry's checksum, if any.
pub async fn latest_checksum(db: &impl ConnectionTrait) -> Result<Option<String>, DbErr> {
    Ok(activity::Entity::find()
        .order_by_desc(activity::Column::Id)
        .one(db)
        .await?
        .map(|row| row.checksum))
}

/// The id of the entry with this checksum, if any.
pub async fn id_of(db: &impl ConnectionTrait, checksum: &str) -> Result<Option<i64>, DbErr> {
    Ok(activity::Entity::find()
        .filter(activity::Column::Checksum.eq(checksum))
        .one(db)
        .await?
        .map(|row| row.id))
}
