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
