//! Queries on objects and their references.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};

use super::entities::{object, object_ref, template_revision};
use super::now_millis;
use crate::domain::{Draft, Kind, ObjectName, ObjectType, Props};

/// An object as stored: its stable id, the object, and its version checksum.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub id: i64,
    pub draft: Draft,
    pub checksum: String,
}

/// How one object references another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// An object or template imports a template of its kind.
    Import,
    /// A host lists a script.
    Script,
}

impl Relation {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Relation::Import => "import",
            Relation::Script => "script",
        }
    }
}

pub(super) fn decode(row: object::Model) -> Result<StoredObject, DbErr> {
    let corrupt = |what: &str| DbErr::Custom(format!("object {} has an invalid {what}", row.id));
    let kind = Kind::parse(&row.kind).ok_or_else(|| corrupt("kind"))?;
    let object_type = ObjectType::parse(&row.object_type).ok_or_else(|| corrupt("object_type"))?;
    let props: Map<String, Value> =
        serde_json::from_str(&row.properties).map_err(|_| corrupt("properties"))?;
    Ok(StoredObject {
        id: row.id,
        draft: Draft {
            kind,
            name: ObjectName::from_stored(row.object_name),
            object_type,
            props: Props::from_stored(props),
        },
        checksum: row.checksum,
    })
}

pub(super) fn encode_props(draft: &Draft) -> String {
    serde_json::to_string(draft.props.as_map()).unwrap_or_else(|_| "{}".into())
}

/// One object by kind and name.
pub async fn find(
    db: &impl ConnectionTrait,
    kind: Kind,
    name: &str,
) -> Result<Option<StoredObject>, DbErr> {
    object::Entity::find()
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectName.eq(name))
        .one(db)
        .await?
        .map(decode)
        .transpose()
}

/// One object by id.
pub async fn find_by_id(db: &impl ConnectionTrait, id: i64) -> Result<Option<StoredObject>, DbErr> {
    object::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(decode)
        .transpose()
}

/// Every template of a kind (there are few: hundreds, not thousands).
pub async fn templates(db: &impl ConnectionTrait, kind: Kind) -> Result<Vec<Draft>, DbErr> {
    object::Entity::find()
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(ObjectType::Template.as_str()))
        .all(db)
        .await?
        .into_iter()
        .map(|row| decode(row).map(|o| o.draft))
        .collect()
}

/// Ids of the objects of `kind` and `object_type` with these names.
pub async fn ids_by_name(
    db: &impl ConnectionTrait,
    kind: Kind,
    object_type: ObjectType,
    names: &[&str],
) -> Result<HashMap<String, i64>, DbErr> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = object::Entity::find()
        .select_only()
        .column(object::Column::Id)
        .column(object::Column::ObjectName)
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(object_type.as_str()))
        .filter(object::Column::ObjectName.is_in(names.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|(id, name)| (name, id)).collect())
}

/// The objects that reference object `id` (import it, or list it as a script).
pub async fn dependants(db: &impl ConnectionTrait, id: i64) -> Result<Vec<StoredObject>, DbErr> {
    let from_ids: Vec<i64> = object_ref::Entity::find()
        .select_only()
        .column(object_ref::Column::FromId)
        .filter(object_ref::Column::ToId.eq(id))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    if from_ids.is_empty() {
        return Ok(Vec::new());
    }
    object::Entity::find()
        .filter(object::Column::Id.is_in(from_ids))
        .order_by_asc(object::Column::Kind)
        .order_by_asc(object::Column::ObjectName)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// A page of objects of one kind and type, by name in byte order, after `after`.
pub async fn page(
    db: &impl ConnectionTrait,
    kind: Kind,
    object_type: ObjectType,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<StoredObject>, DbErr> {
    let mut query = object::Entity::find()
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(object_type.as_str()));
    if let Some(after) = after {
        query = query.filter(object::Column::ObjectName.gt(after));
    }
    query
        .order_by_asc(object::Column::ObjectName)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

/// How many objects of one kind and type exist.
pub async fn count(
    db: &impl ConnectionTrait,
    kind: Kind,
    object_type: ObjectType,
) -> Result<u64, DbErr> {
    object::Entity::find()
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(object_type.as_str()))
        .count(db)
        .await
}

/// Inserts a new object and answers its id.
pub async fn insert(db: &impl ConnectionTrait, draft: &Draft) -> Result<StoredObject, DbErr> {
    let now = now_millis();
    let checksum = draft.checksum();
    let row = object::ActiveModel {
        kind: Set(draft.kind.as_str().to_owned()),
        object_name: Set(draft.name.as_str().to_owned()),
        object_type: Set(draft.object_type.as_str().to_owned()),
        properties: Set(encode_props(draft)),
        checksum: Set(checksum.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    if is_template(draft) {
        bump_templates(db, draft.kind).await?;
    }
    Ok(StoredObject {
        id: row.id,
        draft: draft.clone(),
        checksum,
    })
}

/// Overwrites `current` with `draft`.
pub async fn update(
    db: &impl ConnectionTrait,
    current: &StoredObject,
    draft: &Draft,
) -> Result<StoredObject, DbErr> {
    let checksum = draft.checksum();
    object::Entity::update_many()
        .col_expr(object::Column::ObjectName, Expr::value(draft.name.as_str()))
        .col_expr(object::Column::Properties, Expr::value(encode_props(draft)))
        .col_expr(object::Column::Checksum, Expr::value(checksum.clone()))
        .col_expr(object::Column::UpdatedAt, Expr::value(now_millis()))
        .filter(object::Column::Id.eq(current.id))
        .exec(db)
        .await?;
    if is_template(&current.draft) || is_template(draft) {
        bump_templates(db, draft.kind).await?;
    }
    Ok(StoredObject {
        id: current.id,
        draft: draft.clone(),
        checksum,
    })
}

/// Deletes `current` and the references it holds.
pub async fn delete(db: &impl ConnectionTrait, current: &StoredObject) -> Result<(), DbErr> {
    object_ref::Entity::delete_many()
        .filter(object_ref::Column::FromId.eq(current.id))
        .exec(db)
        .await?;
    object::Entity::delete_by_id(current.id).exec(db).await?;
    if is_template(&current.draft) {
        bump_templates(db, current.draft.kind).await?;
    }
    Ok(())
}

fn is_template(draft: &Draft) -> bool {
    draft.object_type == ObjectType::Template
}

/// Every change to a template bumps its kind's revision in the same
/// transaction: the template cache ([`super::reads`]) compares it.
async fn bump_templates(db: &impl ConnectionTrait, kind: Kind) -> Result<(), DbErr> {
    template_revision::Entity::update_many()
        .col_expr(
            template_revision::Column::Revision,
            Expr::col(template_revision::Column::Revision).add(1),
        )
        .filter(template_revision::Column::Kind.eq(kind.as_str()))
        .exec(db)
        .await?;
    Ok(())
}

/// The current template revision of a kind.
pub async fn template_revision(db: &impl ConnectionTrait, kind: Kind) -> Result<i64, DbErr> {
    Ok(template_revision::Entity::find_by_id(kind.as_str())
        .one(db)
        .await?
        .map_or(0, |row| row.revision))
}

/// Replaces the references object `from_id` holds.
pub async fn set_refs(
    db: &impl ConnectionTrait,
    from_id: i64,
    refs: &[(Relation, i64)],
) -> Result<(), DbErr> {
    object_ref::Entity::delete_many()
        .filter(object_ref::Column::FromId.eq(from_id))
        .exec(db)
        .await?;
    if refs.is_empty() {
        return Ok(());
    }
    let rows = refs
        .iter()
        .map(|(relation, to_id)| object_ref::ActiveModel {
            from_id: Set(from_id),
            relation: Set(relation.as_str().to_owned()),
            to_id: Set(*to_id),
        });
    object_ref::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// Every object of one kind and type, read in keyset batches.
pub async fn all_of(
    db: &impl ConnectionTrait,
    kind: Kind,
    object_type: ObjectType,
) -> Result<Vec<StoredObject>, DbErr> {
    const BATCH: u64 = 1000;
    let mut out = Vec::new();
    loop {
        let after = out
            .last()
            .map(|o: &StoredObject| o.draft.name.as_str().to_owned());
        let batch = page(db, kind, object_type, after.as_deref(), BATCH).await?;
        let done = (batch.len() as u64) < BATCH;
        out.extend(batch);
        if done {
            return Ok(out);
        }
    }
}
