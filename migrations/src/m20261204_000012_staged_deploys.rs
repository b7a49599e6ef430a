//! Staged deploys: a deployment keeps its stages (as asked for), how many
//! there are and which one it is at, the failures it tolerates and those
//! an operator resumed past, the pause between stages, when its current
//! stage began and when the next may begin, and why it halted. Each host
//! of it keeps its stage, and, until that stage begins, its signed
//! allowlist apart (`staged_allowlist`): the `allowlist` column, which
//! agents fetch and which marks what was issued, is filled when the stage
//! begins.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployments {
    Table,
    Stages,
    StageCount,
    Stage,
    MaxFailed,
    AcceptedFailures,
    StageWait,
    StageStartedAt,
    NextStageAt,
    HaltedReason,
}

#[derive(DeriveIden)]
enum DeploymentHosts {
    Table,
    Stage,
    StagedAllowlist,
}

fn deployment_columns() -> Vec<ColumnDef> {
    use Deployments::*;
    vec![
        ColumnDef::new(Stages).text().null().to_owned(),
        ColumnDef::new(StageCount)
            .integer()
            .not_null()
            .default(1)
            .to_owned(),
        ColumnDef::new(Stage)
            .integer()
            .not_null()
            .default(1)
            .to_owned(),
        ColumnDef::new(MaxFailed).big_integer().null().to_owned(),
        ColumnDef::new(AcceptedFailures)
            .big_integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(StageWait)
            .integer()
            .not_null()
            .default(0)
            .to_owned(),
        ColumnDef::new(StageStartedAt)
            .big_integer()
            .null()
            .to_owned(),
        ColumnDef::new(NextStageAt).big_integer().null().to_owned(),
        ColumnDef::new(HaltedReason).text().null().to_owned(),
    ]
}

fn host_columns() -> Vec<ColumnDef> {
    vec![
        ColumnDef::new(DeploymentHosts::Stage)
            .integer()
            .not_null()
            .default(1)
            .to_owned(),
        ColumnDef::new(DeploymentHosts::StagedAllowlist)
            .text()
            .not_null()
            .default("")
            .to_owned(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one at a time.
        for mut column in deployment_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deployments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        for mut column in host_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(DeploymentHosts::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in host_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(DeploymentHosts::Table)
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        for column in deployment_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Deployments::Table)
                        .drop_column(column.get_column_name())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
