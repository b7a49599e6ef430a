//! A partial deployment (a deploy with host filters that covered only part
//! of the fleet) records its filter as `scope`; a deployment of the whole
//! fleet has none. A deployment records the id of the newest activity
//! entry at its start (`activity_id`, beside its checksum), so that its
//! details name it without a look-up by checksum.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployments {
    Table,
    Scope,
    ActivityId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .add_column(ColumnDef::new(Deployments::Scope).text().null())
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .add_column(ColumnDef::new(Deployments::ActivityId).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .drop_column(Deployments::ActivityId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .drop_column(Deployments::Scope)
                    .to_owned(),
            )
            .await
    }
}
