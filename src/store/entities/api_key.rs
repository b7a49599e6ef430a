//! `api_keys`: one self-service key per host or host template, as a hash.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub object_id: i64,
    /// Hex SHA-256 of the key; the key itself is never stored.
    #[sea_orm(unique)]
    pub key_hash: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub uses: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Rows of the pool and of the inline SQLite connections, by column name.
impl crate::store::exec::FromRow for Model {
    fn from_row(row: &impl crate::store::exec::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.get(Column::Id.as_str())?,
            object_id: row.get(Column::ObjectId.as_str())?,
            key_hash: row.get(Column::KeyHash.as_str())?,
            created_at: row.get(Column::CreatedAt.as_str())?,
            expires_at: row.get(Column::ExpiresAt.as_str())?,
            max_uses: row.get(Column::MaxUses.as_str())?,
            uses: row.get(Column::Uses.as_str())?,
        })
    }
}
