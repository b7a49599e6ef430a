//! A revision number per kind that every change to a template of that kind
//! bumps in the same transaction, and an index to find a kind's templates
//! among many objects (the template cache reloads them after a change). Servers cache the templates (resolving a
//! host needs all of them) and compare the revision on every read, which
//! keeps the cache exactly coherent with commits, from any process or
//! replica.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Objects {
    Table,
    Kind,
    ObjectType,
}

#[derive(DeriveIden)]
enum TemplateRevisions {
    Table,
    Kind,
    Revision,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TemplateRevisions::Table)
                    .col(
                        ColumnDef::new(TemplateRevisions::Kind)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TemplateRevisions::Revision)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(TemplateRevisions::Table)
                    .columns([TemplateRevisions::Kind, TemplateRevisions::Revision])
                    .values_panic(["host".into(), 0i64.into()])
                    .values_panic(["script".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("objects_kind_type")
                    .table(Objects::Table)
                    .col(Objects::Kind)
                    .col(Objects::ObjectType)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("objects_kind_type")
                    .table(Objects::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(TemplateRevisions::Table).to_owned())
            .await
    }
}
