//! Steward's schema migrations, run at every start and by `steward migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_objects;
mod m20261122_000002_create_users_and_activity;
mod m20261122_000003_create_api_keys;
mod m20261122_000004_create_deployments;
mod m20261123_000005_deployment_counts;
mod m20261123_000006_template_revisions;
mod m20261202_000007_retired_keys;
mod m20261203_000008_delivery_and_notifications;
mod m20261204_000009_key_changes;
mod m20261204_000010_deployment_scope;
mod m20261204_000011_activity_revert;
mod m20261204_000012_staged_deploys;
mod m20261205_000013_object_changes;

/// Every migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_objects::Migration),
            Box::new(m20261122_000002_create_users_and_activity::Migration),
            Box::new(m20261122_000003_create_api_keys::Migration),
            Box::new(m20261122_000004_create_deployments::Migration),
            Box::new(m20261123_000005_deployment_counts::Migration),
            Box::new(m20261123_000006_template_revisions::Migration),
            Box::new(m20261202_000007_retired_keys::Migration),
            Box::new(m20261203_000008_delivery_and_notifications::Migration),
            Box::new(m20261204_000009_key_changes::Migration),
            Box::new(m20261204_000010_deployment_scope::Migration),
            Box::new(m20261204_000011_activity_revert::Migration),
            Box::new(m20261204_000012_staged_deploys::Migration),
            Box::new(m20261205_000013_object_changes::Migration),
        ]
    }
}
