//! `activity`: the chained log of every change.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "activity")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub author: String,
    pub action: String,
    pub object_type: String,
    pub object_name: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub before: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub after: Option<String>,
    pub request_id: Option<String>,
    /// The changed object's stable id (null on entries before it was kept).
    pub object_id: Option<i64>,
    /// The entry a `revert` entry undid.
    pub reverts: Option<i64>,
    pub parent_checksum: String,
    pub checksum: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Rows of the pool and of the inline SQLite connections, by column name.
impl crate::store::exec::FromRow for Model {
    fn from_row(row: &impl crate::store::exec::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.get(Column::Id.as_str())?,
            at: row.get(Column::At.as_str())?,
            author: row.get(Column::Author.as_str())?,
            action: row.get(Column::Action.as_str())?,
            object_type: row.get(Column::ObjectType.as_str())?,
            object_name: row.get(Column::ObjectName.as_str())?,
            before: row.get(Column::Before.as_str())?,
            after: row.get(Column::After.as_str())?,
            request_id: row.get(Column::RequestId.as_str())?,
            object_id: row.get(Column::ObjectId.as_str())?,
            reverts: row.get(Column::Reverts.as_str())?,
            parent_checksum: row.get(Column::ParentChecksum.as_str())?,
            checksum: row.get(Column::Checksum.as_str())?,
        })
    }
}
