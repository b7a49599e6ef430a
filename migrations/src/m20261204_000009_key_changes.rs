//! What tells a server that another process changed a key. A pulling
//! agent's look (its key's host) is remembered until a key changes; other
//! commits (deployments, their results, the activity log) leave it be.
//!
//! - On PostgreSQL, a change of `api_keys` notifies the channel
//!   `steward_changes` with `k` (besides the `c` and `i` of migration 8).
//! - On SQLite, it moves the one row of `key_changes` on: a server that
//!   sees the WAL-index mark move reads it to tell another process's key
//!   change from its own deployments and results.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r"
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION steward_notify_changes('k');
";

const POSTGRES_DOWN: &str = r"
DROP TRIGGER IF EXISTS api_keys_notify ON api_keys;
";

const SQLITE_UP: &str = r"
CREATE TABLE key_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO key_changes (id, revision) VALUES (1, 0);
CREATE TRIGGER api_keys_inserted AFTER INSERT ON api_keys
    BEGIN UPDATE key_changes SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_updated AFTER UPDATE ON api_keys
    BEGIN UPDATE key_changes SET revision = revision + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_deleted AFTER DELETE ON api_keys
    BEGIN UPDATE key_changes SET revision = revision + 1 WHERE id = 1; END;
";

const SQLITE_DOWN: &str = r"
DROP TRIGGER IF EXISTS api_keys_inserted;
DROP TRIGGER IF EXISTS api_keys_updated;
DROP TRIGGER IF EXISTS api_keys_deleted;
DROP TABLE IF EXISTS key_changes;
";

/// Runs `postgres` or `sqlite`, whichever is the database's.
async fn run(manager: &SchemaManager<'_>, postgres: &str, sqlite: &str) -> Result<(), DbErr> {
    let sql = match manager.get_database_backend() {
        DatabaseBackend::Postgres => postgres,
        _ => sqlite,
    };
    manager.get_connection().execute_unprepared(sql).await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_UP, SQLITE_UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run(manager, POSTGRES_DOWN, SQLITE_DOWN).await
    }
}
