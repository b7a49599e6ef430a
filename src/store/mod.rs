//! Every query and transaction lives here. The store reads and writes rows;
//! it never decides a business rule (that is `domain`'s job).

pub mod activity;
pub mod agents;
pub mod deployments;
pub mod entities;
pub mod keys;
pub mod objects;
pub mod settings;
pub mod users;

use std::path::Path;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard};

pub use objects::StoredObject;

/// How long SQLite waits for another connection's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory lock key that serialises writers on PostgreSQL, across replicas.
const PG_WRITE_LOCK: i64 = 0x5745_4152_4400; // "STEWARD" writers

/// The database, and the lock that makes writes one at a time.
#[derive(Debug)]
pub struct Store {
    db: DatabaseConnection,
    url: String,
    write_lock: Mutex<()>,
}

/// A write transaction: holds the writer lock until committed or dropped
/// (dropping rolls back).
pub struct WriteTx<'a> {
    pub tx: DatabaseTransaction,
    _guard: MutexGuard<'a, ()>,
}

impl WriteTx<'_> {
    /// Commits the transaction and releases the writer lock.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.tx.commit().await
    }
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`), creating a
    /// SQLite file when absent, and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, DbErr> {
        let store = Self::connect(url).await?;
        Migrator::up(&store.db, None).await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // Durable answered writes: WAL with synchronous=FULL survives a
            // power cut; the busy timeout covers the CLI writing meanwhile.
            options.map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
            });
            options.max_connections(8).min_connections(1);
        } else {
            options.max_connections(16).min_connections(1);
        }
        options.connect_timeout(Duration::from_secs(10));
        let db = Database::connect(options).await?;
        Ok(Self {
            db,
            url: url.to_owned(),
            write_lock: Mutex::new(()),
        })
    }

    /// On SQLite, a dedicated read-only connection to the same file, outside
    /// the pool: its `PRAGMA data_version` changes whenever any other
    /// connection commits. A plain synchronous connection, because the
    /// check runs on every authenticated request and must cost microseconds.
    pub fn watch_connection(&self) -> Result<Option<rusqlite::Connection>, DbErr> {
        let Some(path) = sqlite_path(&self.url) else {
            return Ok(None);
        };
        rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map(Some)
        .map_err(|e| DbErr::Custom(format!("cannot open the SQLite watch connection: {e}")))
    }

    /// Runs the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    /// The connection pool, for reads.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }

    /// Starts a write transaction. Writes are serialised: one at a time in
    /// this process, and across processes by SQLite's write lock (taken at
    /// BEGIN) or PostgreSQL's advisory lock. Whole-store rules (renames,
    /// dependants, import loops) can then read and write without races.
    pub async fn begin_write(&self) -> Result<WriteTx<'_>, DbErr> {
        let guard = self.write_lock.lock().await;
        let backend = self.db.get_database_backend();
        let tx = match backend {
            DbBackend::Sqlite => {
                self.db
                    .begin_with_options(TransactionOptions {
                        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                        ..TransactionOptions::default()
                    })
                    .await?
            }
            _ => {
                let tx = self.db.begin().await?;
                tx.execute_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT pg_advisory_xact_lock($1)",
                    [PG_WRITE_LOCK.into()],
                ))
                .await?;
                tx
            }
        };
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// The file of a `sqlite://PATH?options` URL (`None` for other databases).
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// The default SQLite URL for a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("steward.sqlite").display()
    )
}

/// Unix time in milliseconds.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
