//! Objects (hosts and scripts, templates included) and the references between them.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Objects {
    Table,
    Id,
    Kind,
    ObjectName,
    ObjectType,
    Properties,
    Checksum,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ObjectRefs {
    Table,
    FromId,
    ToId,
    Relation,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Names sort in byte order on every database: SQLite's default BINARY
        // collation already does; PostgreSQL needs the "C" collation.
        let mut name = ColumnDef::new(Objects::ObjectName);
        name.string().not_null();
        if manager.get_database_backend() == DbBackend::Postgres {
            name.extra("COLLATE \"C\"");
        }
        manager
            .create_table(
                Table::create()
                    .table(Objects::Table)
                    .col(
                        ColumnDef::new(Objects::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Objects::Kind).string_len(16).not_null())
                    .col(&mut name)
                    .col(
                        ColumnDef::new(Objects::ObjectType)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Objects::Properties).text().not_null())
                    .col(ColumnDef::new(Objects::Checksum).string_len(64).not_null())
                    .col(ColumnDef::new(Objects::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Objects::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("objects_kind_name")
                    .table(Objects::Table)
                    .col(Objects::Kind)
                    .col(Objects::ObjectName)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ObjectRefs::Table)
                    .col(ColumnDef::new(ObjectRefs::FromId).big_integer().not_null())
                    .col(ColumnDef::new(ObjectRefs::ToId).big_integer().not_null())
                    .col(
                        ColumnDef::new(ObjectRefs::Relation)
                            .string_len(16)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ObjectRefs::FromId)
                            .col(ObjectRefs::Relation)
                            .col(ObjectRefs::ToId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ObjectRefs::Table, ObjectRefs::FromId)
                            .to(Objects::Table, Objects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ObjectRefs::Table, ObjectRefs::ToId)
                            .to(Objects::Table, Objects::Id)
                            .on_delete(ForeignKeyAction::Restrict),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("object_refs_to")
                    .table(ObjectRefs::Table)
                    .col(ObjectRefs::ToId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ObjectRefs::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Objects::Table).to_owned())
            .await
    }
}
