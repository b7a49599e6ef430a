//! `users`: API users with argon2id password hashes.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// PHC string of an argon2id hash; never leaves the server.
    pub password_hash: String,
    pub role: String,
    /// Extra permissions beyond the role, as a JSON list.
    #[sea_orm(column_type = "Text")]
    pub permissions: String,
    /// Host name globs, as a JSON list; empty means unrestricted.
    #[sea_orm(column_type = "Text")]
    pub restrictions: String,
    pub disabled: bool,
    /// Bumped by every change: remembered credentials of older revisions are void.
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
