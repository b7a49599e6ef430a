//! `objects`: hosts and scripts, templates included.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "objects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// `host` or `script`.
    pub kind: String,
    pub object_name: String,
    /// `object` or `template`.
    pub object_type: String,
    /// The normalised properties as compact JSON.
    #[sea_orm(column_type = "Text")]
    pub properties: String,
    /// Hex SHA-256 of the whole object: its version, the base of its ETag.
    pub checksum: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Rows of the pool and of the inline SQLite connections, by column name.
impl crate::store::exec::FromRow for Model {
    fn from_row(row: &impl crate::store::exec::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.get(Column::Id.as_str())?,
            kind: row.get(Column::Kind.as_str())?,
            object_name: row.get(Column::ObjectName.as_str())?,
            object_type: row.get(Column::ObjectType.as_str())?,
            properties: row.get(Column::Properties.as_str())?,
            checksum: row.get(Column::Checksum.as_str())?,
            created_at: row.get(Column::CreatedAt.as_str())?,
            updated_at: row.get(Column::UpdatedAt.as_str())?,
        })
    }
}
