//! A deployment's hosts carry their delivery (`push`, or `pull`: the server
//! never pushes to the host, its agent fetches the allowlist itself). On
//! PostgreSQL, commits that change the activity log or deployments notify
//! the channel `steward_changes`, so that every replica wakes what waits
//! for them (long-polling agents, blocking queries) without polling:
//! `c` after such a commit, `i` when a deployment issued allowlists.
//! Notifications are sent at commit, and repeated ones of one transaction
//! are folded into one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeploymentHosts {
    Table,
    Delivery,
}

/// The trigger function and the statement triggers that call it.
const NOTIFY_UP: &str = r"
CREATE OR REPLACE FUNCTION steward_notify_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('steward_changes', TG_ARGV[0]);
    RETURN NULL;
END
$$;
CREATE TRIGGER activity_notify AFTER INSERT ON activity
    FOR EACH STATEMENT EXECUTE FUNCTION steward_notify_changes('c');
CREATE TRIGGER deployments_issued_notify AFTER INSERT ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION steward_notify_changes('i');
CREATE TRIGGER deployments_notify AFTER UPDATE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION steward_notify_changes('c');
CREATE TRIGGER deployment_hosts_notify AFTER UPDATE ON deployment_hosts
    FOR EACH STATEMENT EXECUTE FUNCTION steward_notify_changes('c');
";

const NOTIFY_DOWN: &str = r"
DROP TRIGGER IF EXISTS activity_notify ON activity;
DROP TRIGGER IF EXISTS deployments_issued_notify ON deployments;
DROP TRIGGER IF EXISTS deployments_notify ON deployments;
DROP TRIGGER IF EXISTS deployment_hosts_notify ON deployment_hosts;
DROP FUNCTION IF EXISTS steward_notify_changes();
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(DeploymentHosts::Table)
                    .add_column(
                        ColumnDef::new(DeploymentHosts::Delivery)
                            .string()
                            .not_null()
                            .default("push"),
                    )
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(NOTIFY_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(NOTIFY_DOWN)
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(DeploymentHosts::Table)
                    .drop_column(DeploymentHosts::Delivery)
                    .to_owned(),
            )
            .await
    }
}
