//! Keys of deleted hosts whose agents may still hold scripts. Deleting a
//! host takes its key away from every use but one: fetching the empty
//! allowlist the next deployment issues to it (a pulling agent has no
//! other way to learn that nothing is allowed any more). The row goes once
//! the agent holds an empty allowlist.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RetiredKeys {
    Table,
    KeyHash,
    HostId,
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RetiredKeys::Table)
                    .col(
                        ColumnDef::new(RetiredKeys::KeyHash)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RetiredKeys::HostId).big_integer().not_null())
                    .col(
                        ColumnDef::new(RetiredKeys::RetiredAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("retired_keys_host")
                    .table(RetiredKeys::Table)
                    .col(RetiredKeys::HostId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RetiredKeys::Table).to_owned())
            .await
    }
}
