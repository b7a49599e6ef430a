//! Queries on objects and their references.

use std::collections::HashMap;

use sea_orm::Value as SeaValue;
use sea_orm::sea_query::{
    DeleteStatement, Expr, ExprTrait, Query, SelectStatement, UpdateStatement,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, Statement,
};
use serde_json::{Map, Value};

use super::entities::{object, object_ref, template_revision};
use super::exec::{Exec, FromRow, Row, Shape, insert_statement};
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

pub fn decode(row: object::Model) -> Result<StoredObject, DbErr> {
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
pub async fn find(db: &impl Exec, kind: Kind, name: &str) -> Result<Option<StoredObject>, DbErr> {
    static FIND: Shape<2> = Shape::new(|backend, [kind, name]| backend.build(&by_name(kind, name)));
    let stmt = FIND.bind(db.backend(), [kind.as_str().into(), name.into()])?;
    db.row_raw(stmt).await?.map(decode).transpose()
}

fn by_name(kind: SeaValue, name: SeaValue) -> SelectStatement {
    object::Entity::find()
        .filter(object::Column::Kind.eq(kind))
        .filter(object::Column::ObjectName.eq(name))
        .into_query()
}

/// One object by kind and name as stored, with its kind's template
/// revision (0 before the kind has one) and, on PostgreSQL, the object
/// revision (`object_changes`) it was read at, in one statement: the read
/// path compares the first with its template cache and keeps the object in
/// memory by the second ([`super::reads`], [`super::fresh`]).
pub async fn find_with_revision(
    db: &impl Exec,
    kind: Kind,
    name: &str,
) -> Result<Option<Found>, DbErr> {
    static FIND: Shape<2> = Shape::new(|backend, [kind, name]| {
        let revision = Query::select()
            .column(template_revision::Column::Revision)
            .from(template_revision::Entity)
            .and_where(
                Expr::col((template_revision::Entity, template_revision::Column::Kind))
                    .equals((object::Entity, object::Column::Kind)),
            )
            .to_owned();
        let object_revision = match backend {
            DbBackend::Postgres => Expr::cust("(SELECT revision FROM object_changes WHERE id = 1)"),
            _ => Expr::cust("NULL"),
        };
        backend.build(
            by_name(kind, name)
                .expr_as(Expr::from(revision), "template_revision")
                .expr_as(object_revision, "object_revision"),
        )
    });
    let stmt = FIND.bind(db.backend(), [kind.as_str().into(), name.into()])?;
    db.row_raw::<Found>(stmt).await
}

/// An object's row, its kind's template revision, and (on PostgreSQL) the
/// object revision it was read at.
#[derive(Debug)]
pub struct Found {
    pub row: object::Model,
    pub template_revision: i64,
    pub object_revision: Option<i64>,
}

impl FromRow for Found {
    fn from_row(row: &impl Row) -> Result<Self, DbErr> {
        Ok(Self {
            row: object::Model::from_row(row)?,
            template_revision: row.get::<Option<i64>>("template_revision")?.unwrap_or(0),
            object_revision: row.get("object_revision")?,
        })
    }
}

/// The query of the object revision (PostgreSQL).
pub const OBJECT_REVISION: &str = "SELECT revision FROM object_changes WHERE id = 1";

/// The object revision now (PostgreSQL only: see [`super::fresh`]).
pub async fn object_revision(db: &impl Exec) -> Result<i64, DbErr> {
    let stmt = Statement::from_string(DbBackend::Postgres, OBJECT_REVISION);
    db.row_raw::<Revision>(stmt)
        .await?
        .map(|Revision(revision)| revision)
        .ok_or_else(|| DbErr::Custom("object_changes has no row".into()))
}

struct Revision(i64);

impl FromRow for Revision {
    fn from_row(row: &impl Row) -> Result<Self, DbErr> {
        Ok(Self(row.get_at(0)?))
    }
}

/// One object by id.
pub async fn find_by_id(db: &impl Exec, id: i64) -> Result<Option<StoredObject>, DbErr> {
    let query = object::Entity::find_by_id(id).into_query();
    db.row(&query).await?.map(decode).transpose()
}

/// Every template of a kind (there are few: hundreds, not thousands).
pub async fn templates(db: &impl Exec, kind: Kind) -> Result<Vec<Draft>, DbErr> {
    let query = object::Entity::find()
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(ObjectType::Template.as_str()))
        .into_query();
    db.rows(&query)
        .await?
        .into_iter()
        .map(|row| decode(row).map(|o| o.draft))
        .collect()
}

/// Ids of the objects of `kind` and `object_type` with these names.
pub async fn ids_by_name(
    db: &impl Exec,
    kind: Kind,
    object_type: ObjectType,
    names: &[&str],
) -> Result<HashMap<String, i64>, DbErr> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let query = object::Entity::find()
        .select_only()
        .column(object::Column::Id)
        .column(object::Column::ObjectName)
        .filter(object::Column::Kind.eq(kind.as_str()))
        .filter(object::Column::ObjectType.eq(object_type.as_str()))
        .filter(object::Column::ObjectName.is_in(names.iter().copied()))
        .into_query();
    let rows: Vec<(i64, String)> = db.rows(&query).await?;
    Ok(rows.into_iter().map(|(id, name)| (name, id)).collect())
}

/// The objects that reference object `id` (import it, or list it as a script).
pub async fn dependants(db: &impl Exec, id: i64) -> Result<Vec<StoredObject>, DbErr> {
    let from_ids = Query::select()
        .column(object_ref::Column::FromId)
        .from(object_ref::Entity)
        .and_where(Expr::col(object_ref::Column::ToId).eq(id))
        .to_owned();
    let query = object::Entity::find()
        .filter(object::Column::Id.in_subquery(from_ids))
        .order_by_asc(object::Column::Kind)
        .order_by_asc(object::Column::ObjectName)
        .into_query();
    db.rows(&query).await?.into_iter().map(decode).collect()
}

/// A page of objects of one kind and type, by name in byte order, after `after`.
pub async fn page(
    db: &impl Exec,
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
    let query = query
        .order_by_asc(object::Column::ObjectName)
        .limit(limit)
        .into_query();
    db.rows(&query).await?.into_iter().map(decode).collect()
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
pub async fn insert(db: &impl Exec, draft: &Draft) -> Result<StoredObject, DbErr> {
    static INSERT: Shape<7> = Shape::new(|backend, values| {
        let mut query = Query::insert();
        query.into_table(object::Entity).columns(INSERTED);
        // As many values as columns: it cannot fail (and a value left out
        // would fail the shape's build).
        let _ = query.values(values.map(Expr::from));
        insert_statement(backend, &query)
    });
    let checksum = draft.checksum();
    let stmt = INSERT.bind(db.backend(), inserted_values(draft, &checksum))?;
    inserted(db, draft, stmt, checksum).await
}

/// Inserts a new object with the stable id `id`, which no object has (an
/// undone delete recreates the object it was).
pub async fn insert_with_id(db: &impl Exec, id: i64, draft: &Draft) -> Result<StoredObject, DbErr> {
    static INSERT: Shape<8> = Shape::new(|backend, values| {
        let mut query = Query::insert();
        query
            .into_table(object::Entity)
            .columns(std::iter::once(object::Column::Id).chain(INSERTED));
        let _ = query.values(values.map(Expr::from));
        insert_statement(backend, &query)
    });
    let checksum = draft.checksum();
    let [a, b, c, d, e, f, g] = inserted_values(draft, &checksum);
    let stmt = INSERT.bind(db.backend(), [id.into(), a, b, c, d, e, f, g])?;
    inserted(db, draft, stmt, checksum).await
}

/// The columns an insert sets (besides the id).
const INSERTED: [object::Column; 7] = [
    object::Column::Kind,
    object::Column::ObjectName,
    object::Column::ObjectType,
    object::Column::Properties,
    object::Column::Checksum,
    object::Column::CreatedAt,
    object::Column::UpdatedAt,
];

/// The values of [`INSERTED`] for `draft`.
fn inserted_values(draft: &Draft, checksum: &str) -> [SeaValue; 7] {
    let now = now_millis();
    [
        draft.kind.as_str().into(),
        draft.name.as_str().into(),
        draft.object_type.as_str().into(),
        encode_props(draft).into(),
        checksum.into(),
        now.into(),
        now.into(),
    ]
}

/// Runs an insert of `draft` and bumps its kind's template revision when
/// it is a template.
async fn inserted(
    db: &impl Exec,
    draft: &Draft,
    stmt: sea_orm::Statement,
    checksum: String,
) -> Result<StoredObject, DbErr> {
    let id = db.insert_raw(stmt).await?;
    if is_template(draft) {
        bump_templates(db, draft.kind).await?;
    }
    Ok(StoredObject {
        id,
        draft: draft.clone(),
        checksum,
    })
}

/// Overwrites `current` with `draft`.
pub async fn update(
    db: &impl Exec,
    current: &StoredObject,
    draft: &Draft,
) -> Result<StoredObject, DbErr> {
    let (values, stored) = update_values(current, draft);
    run_update(db, values).await?;
    if touches_templates(current, draft) {
        bump_templates(db, draft.kind).await?;
    }
    Ok(stored)
}

/// Runs [`update_query`] with `values`.
pub(super) async fn run_update(db: &impl Exec, values: [SeaValue; 5]) -> Result<(), DbErr> {
    static UPDATE: Shape<5> = Shape::new(|backend, values| backend.build(&update_query(values)));
    db.run_raw(UPDATE.bind(db.backend(), values)?).await?;
    Ok(())
}

/// The statement of [`update`], as a query of its values (see
/// [`update_values`]).
pub(super) fn update_query([name, properties, checksum, at, id]: [SeaValue; 5]) -> UpdateStatement {
    object::Entity::update_many()
        .col_expr(object::Column::ObjectName, Expr::value(name))
        .col_expr(object::Column::Properties, Expr::value(properties))
        .col_expr(object::Column::Checksum, Expr::value(checksum))
        .col_expr(object::Column::UpdatedAt, Expr::value(at))
        .filter(object::Column::Id.eq(id))
        .into_query()
}

/// The values of [`update_query`] that overwrite `current` with `draft`,
/// and the object stored then.
pub(super) fn update_values(
    current: &StoredObject,
    draft: &Draft,
) -> ([SeaValue; 5], StoredObject) {
    let checksum = draft.checksum();
    let values = [
        draft.name.as_str().into(),
        encode_props(draft).into(),
        checksum.clone().into(),
        now_millis().into(),
        current.id.into(),
    ];
    let stored = StoredObject {
        id: current.id,
        draft: draft.clone(),
        checksum,
    };
    (values, stored)
}

/// Whether overwriting `current` with `draft` changes its kind's templates
/// (then [`update`] moves the template revision on too).
pub(super) fn touches_templates(current: &StoredObject, draft: &Draft) -> bool {
    is_template(&current.draft) || is_template(draft)
}

/// Deletes `current` and the references it holds.
pub async fn delete(db: &impl Exec, current: &StoredObject) -> Result<(), DbErr> {
    db.run(&refs_of(current.id)).await?;
    db.run(&object::Entity::delete_by_id(current.id).into_query())
        .await?;
    if is_template(&current.draft) {
        bump_templates(db, current.draft.kind).await?;
    }
    Ok(())
}

/// Deletes the references object `from_id` holds.
fn refs_of(from_id: i64) -> DeleteStatement {
    object_ref::Entity::delete_many()
        .filter(object_ref::Column::FromId.eq(from_id))
        .into_query()
}

fn is_template(draft: &Draft) -> bool {
    draft.object_type == ObjectType::Template
}

/// Every change to a template bumps its kind's revision in the same
/// transaction: the template cache ([`super::reads`]) compares it.
async fn bump_templates(db: &impl Exec, kind: Kind) -> Result<(), DbErr> {
    static BUMP: Shape<1> = Shape::new(|backend, [kind]| {
        backend.build(
            &template_revision::Entity::update_many()
                .col_expr(
                    template_revision::Column::Revision,
                    Expr::col(template_revision::Column::Revision).add(1),
                )
                .filter(template_revision::Column::Kind.eq(kind))
                .into_query(),
        )
    });
    db.run_raw(BUMP.bind(db.backend(), [kind.as_str().into()])?)
        .await?;
    Ok(())
}

/// The current template revision of a kind.
pub async fn template_revision(db: &impl Exec, kind: Kind) -> Result<i64, DbErr> {
    static REVISION: Shape<1> = Shape::new(|backend, [kind]| {
        backend.build(
            &template_revision::Entity::find()
                .select_only()
                .column(template_revision::Column::Revision)
                .filter(template_revision::Column::Kind.eq(kind))
                .into_query(),
        )
    });
    let stmt = REVISION.bind(db.backend(), [kind.as_str().into()])?;
    Ok(db
        .row_raw::<(i64,)>(stmt)
        .await?
        .map_or(0, |(revision,)| revision))
}

/// Replaces the references object `from_id` holds.
pub async fn set_refs(db: &impl Exec, from_id: i64, refs: &[(Relation, i64)]) -> Result<(), DbErr> {
    db.run(&refs_of(from_id)).await?;
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
    db.run(&object_ref::Entity::insert_many(rows).into_query())
        .await?;
    Ok(())
}

/// Every object of one kind and type, read in keyset batches.
pub async fn all_of(
    db: &impl Exec,
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
