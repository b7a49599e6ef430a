//! What lets a PostgreSQL replica answer reads of objects from memory,
//! exactly (see `src/store/fresh.rs` and docs/ARCHITECTURE.md):
//!
//! - `object_changes` holds one revision number, moved on by every row
//!   written to `objects` in the writing transaction. Row locks order the
//!   moves as the commits are ordered.
//! - Each such row notifies the channel `steward_objects` with
//!   `REVISION KIND TYPE NAME` (the old name and the new one for a rename),
//!   or `REVISION *` when the name is too long for a notification (every
//!   replica then forgets every object it keeps). A notification is
//!   delivered at its transaction's commit, in commit order, and not at all
//!   when its transaction (or savepoint) rolls back.
//!
//! SQLite needs neither: a server there sees every commit in the WAL-index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_UP: &str = r"
CREATE TABLE object_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO object_changes (id, revision) VALUES (1, 0);
CREATE FUNCTION steward_object_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT;
BEGIN
    UPDATE object_changes SET revision = revision + 1 WHERE id = 1 RETURNING revision INTO moved;
    IF TG_OP <> 'INSERT' THEN
        PERFORM pg_notify('steward_objects', CASE WHEN octet_length(OLD.object_name) > 7000
            THEN moved || ' *'
            ELSE moved || ' ' || OLD.kind || ' ' || OLD.object_type || ' ' || OLD.object_name END);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('steward_objects', CASE WHEN octet_length(NEW.object_name) > 7000
            THEN moved || ' *'
            ELSE moved || ' ' || NEW.kind || ' ' || NEW.object_type || ' ' || NEW.object_name END);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER objects_changed AFTER INSERT OR UPDATE OR DELETE ON objects
    FOR EACH ROW EXECUTE FUNCTION steward_object_changed();
";

const POSTGRES_DOWN: &str = r"
DROP TRIGGER IF EXISTS objects_changed ON objects;
DROP FUNCTION IF EXISTS steward_object_changed();
DROP TABLE IF EXISTS object_changes;
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_UP)
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(POSTGRES_DOWN)
                .await?;
        }
        Ok(())
    }
}
