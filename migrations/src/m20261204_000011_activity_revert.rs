//! Activity entries name the object they changed by its stable id (so an
//! undo can recreate a deleted object with its id) and, for a `revert`
//! entry, the entry it undid. Both are null on older entries, and an
//! entry's checksum covers them only when they are set, so older chains
//! keep verifying.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Activity {
    Table,
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
