//! Activity entries name the object they changed by its stable id (so an
//! undo can recreate a deleted object with its id) and, for a `revert`
//! entry, the entry it undid. Both are null on older entries, and an
//! entry's checksum covers them only when they are set, so older chains
//! keep verifying. And entries are found by checksum (a deployment names
//! the newest entry at its start by its checksum) through an index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Activity {
    Table,
    Checksum,
    ObjectId,
    Reverts,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [Activity::ObjectId, Activity::Reverts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Activity::Table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("activity_checksum")
                    .table(Activity::Table)
                    .col(Activity::Checksum)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("activity_checksum")
                    .table(Activity::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Activity::ObjectId, Activity::Reverts] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Activity::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
