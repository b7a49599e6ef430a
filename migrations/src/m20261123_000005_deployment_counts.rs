//! Deployments keep their per-result counts once finished, so that a
//! deployment whose per-host details were pruned still says how it went;
//! agents states record when the agent last pulled its allowlist; a
//! host's newest allowlist is found by index (pulls ask for it often).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Deployments {
    Table,
    Counts,
}

#[derive(DeriveIden)]
enum DeploymentHosts {
    Table,
    HostId,
    DeploymentId,
}

#[derive(DeriveIden)]
enum AgentStates {
    Table,
    PulledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .add_column(ColumnDef::new(Deployments::Counts).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AgentStates::Table)
                    .add_column(ColumnDef::new(AgentStates::PulledAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deployment_hosts_host")
                    .table(DeploymentHosts::Table)
                    .col(DeploymentHosts::HostId)
                    .col(DeploymentHosts::DeploymentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("deployment_hosts_host")
                    .table(DeploymentHosts::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AgentStates::Table)
                    .drop_column(AgentStates::PulledAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deployments::Table)
                    .drop_column(Deployments::Counts)
                    .to_owned(),
            )
            .await
    }
}
