//! API users, the activity log, and small settings (such as the users epoch).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    PasswordHash,
    Role,
    Permissions,
    Restrictions,
    Disabled,
    Revision,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Activity {
    Table,
    Id,
    At,
    Author,
    Action,
    ObjectType,
    ObjectName,
    Before,
    After,
    RequestId,
    ParentChecksum,
    Checksum,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(
                        ColumnDef::new(Users::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Users::Name).string().not_null().unique_key())
                    .col(ColumnDef::new(Users::PasswordHash).string().not_null())
                    .col(ColumnDef::new(Users::Role).string_len(16).not_null())
                    .col(ColumnDef::new(Users::Permissions).text().not_null())
                    .col(ColumnDef::new(Users::Restrictions).text().not_null())
                    .col(ColumnDef::new(Users::Disabled).boolean().not_null())
                    .col(ColumnDef::new(Users::Revision).big_integer().not_null())
                    .col(ColumnDef::new(Users::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Users::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Activity::Table)
                    .col(
                        ColumnDef::new(Activity::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Activity::At).big_integer().not_null())
                    .col(ColumnDef::new(Activity::Author).string().not_null())
                    .col(ColumnDef::new(Activity::Action).string_len(32).not_null())
                    .col(
                        ColumnDef::new(Activity::ObjectType)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Activity::ObjectName).string().not_null())
                    .col(ColumnDef::new(Activity::Before).text().null())
                    .col(ColumnDef::new(Activity::After).text().null())
                    .col(ColumnDef::new(Activity::RequestId).string().null())
                    .col(
                        ColumnDef::new(Activity::ParentChecksum)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Activity::Checksum).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("activity_object", Activity::ObjectName),
            ("activity_author", Activity::Author),
            ("activity_at", Activity::At),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Activity::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .col(
                        ColumnDef::new(Settings::Key)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Settings::Value).text().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Users::Table.into_iden(),
            Activity::Table.into_iden(),
            Settings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
