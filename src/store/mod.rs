//! Every query and transaction lives here. The store reads and writes rows;
//! it never decides a business rule (that is `domain`'s job).

pub mod activity;
pub mod agents;
pub mod changes;
pub mod deployments;
pub mod entities;
pub mod exec;
pub mod fresh;
mod group;
pub mod keys;
mod object_tx;
pub mod objects;
mod pg_writer;
pub mod reads;
pub mod settings;
pub mod users;
pub mod wal_index;
pub mod watch;
pub mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, MutexGuard};

use changes::{Changes, Issued};
pub use object_tx::ObjectTx;
pub use objects::StoredObject;
use pg_writer::PgWriter;
use reads::Reads;
use wal_index::WalIndex;
use watch::DataWatch;
use writer::SqliteWriter;

use crate::domain::Kind;
use crate::domain::resolve::Resolver;

/// The PostgreSQL channel commits are announced on (see the migration
/// `delivery_and_notifications`).
const CHANGES_CHANNEL: &str = "steward_changes";
/// The PostgreSQL channel object changes are announced on (see the
/// migration `object_changes` and [`fresh`]).
const OBJECTS_CHANNEL: &str = "steward_objects";
/// How often the SQLite WAL-index mark is looked at for others' commits.
const MARK_EVERY: Duration = Duration::from_millis(250);
/// At most this many new deployments are published one by one at a catch-up.
const CATCH_UP_DEPLOYMENTS: u64 = 16;

/// How long SQLite waits for another connection's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory lock key that serialises writers on PostgreSQL, across replicas.
const PG_WRITE_LOCK: i64 = 0x5745_4152_4400; // "STEWARD" writers

/// The database, and the lock that makes writes one at a time.
#[derive(Debug)]
pub struct Store {
    db: DatabaseConnection,
    url: String,
    write_lock: Arc<Mutex<()>>,
    /// On a SQLite file, the connection object writes run on (see [`writer`]).
    writer: Option<SqliteWriter>,
    /// On PostgreSQL, the group commit of object writes (see [`pg_writer`]).
    pg_writer: Option<Arc<PgWriter>>,
    /// On a SQLite file, its WAL-index (see [`wal_index`]).
    wal_index: Option<Arc<WalIndex>>,
    reads: Reads,
    /// Wakes what waits for commits (see [`changes`]).
    changes: Arc<Changes>,
}

/// A write transaction: holds the writer lock until committed or dropped
/// (dropping rolls back).
pub struct WriteTx<'a> {
    pub tx: DatabaseTransaction,
    _guard: MutexGuard<'a, ()>,
    changes: &'a Changes,
}

impl WriteTx<'_> {
    /// Commits the transaction and releases the writer lock.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.tx.commit().await?;
        self.changes.committed();
        Ok(())
    }

    /// Commits a transaction that changed no key (deployments, their
    /// results, agents' fetches and states, object writes that deleted no
    /// host): pulling agents' remembered looks are kept (see [`changes`]).
    pub async fn commit_keys_unchanged(self) -> Result<(), DbErr> {
        self.tx.commit().await?;
        self.changes.recorded();
        Ok(())
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
        if let Some(path) = sqlite_path(url) {
            // It holds password and key hashes: the owner's alone.
            for narrowed in crate::files::private_sqlite(&path).map_err(DbErr::Custom)? {
                tracing::warn!(file = %narrowed.display(), "the database file was readable by others: now by its owner only");
            }
        }
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
        // Opened after the pool, which has put the file in WAL mode.
        let path = sqlite_path(url);
        let writer = path.as_deref().map(SqliteWriter::open).transpose()?;
        let wal_index = path.as_deref().map(|path| Arc::new(WalIndex::open(path)));
        let write_lock = Arc::new(Mutex::new(()));
        let pg_writer = (db.get_database_backend() == DbBackend::Postgres).then(|| {
            Arc::new(PgWriter::new(
                db.clone(),
                Arc::clone(&write_lock),
                PG_WRITE_LOCK,
            ))
        });
        Ok(Self {
            url: url.to_owned(),
            write_lock,
            writer,
            pg_writer,
            reads: Reads::new(db.clone(), path.zip(wal_index.clone())),
            wal_index,
            db,
            changes: Arc::new(Changes::new()),
        })
    }

    /// What wakes waiters when something was committed.
    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    /// On SQLite, the watch that tells whether anyone committed (see
    /// [`watch`]); `None` on PostgreSQL.
    pub fn data_watch(&self) -> Option<DataWatch> {
        let index = self.wal_index.as_ref()?;
        sqlite_path(&self.url).map(|path| DataWatch::new(&path, Arc::clone(index)))
    }

    /// Runs the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        Migrator::up(&self.db, None).await
    }

    /// The connection pool, for reads.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The object of `kind` named `name`, and its kind's template revision.
    pub async fn find_object(&self, kind: Kind, name: &str) -> Result<Option<reads::Found>, DbErr> {
        self.reads.find(kind, name).await
    }

    /// A page of a list (see [`Reads::page`]).
    pub async fn page(
        &self,
        kind: Kind,
        object_type: crate::domain::ObjectType,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<StoredObject>, DbErr> {
        self.reads.page(kind, object_type, after, limit).await
    }

    /// The group commit of object writes (the tests look into it).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> &group::Groups {
        match (&self.pg_writer, &self.writer) {
            (Some(writer), _) => writer.groups(),
            (None, Some(writer)) => writer.groups(),
            (None, None) => panic!("a database in memory has no group commit"),
        }
    }

    /// How many reads of an object by name were answered from memory.
    pub fn reads_from_memory(&self) -> u64 {
        self.reads.from_memory()
    }

    /// The resolver over `kind`'s current templates (cached).
    pub async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        self.reads.resolver(kind).await
    }

    /// The resolver over `kind`'s templates at `revision` (from
    /// [`Store::find_object`]) or later.
    pub async fn resolver_at(&self, kind: Kind, revision: i64) -> Result<Arc<Resolver>, DbErr> {
        self.reads.resolver_at(kind, revision).await
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
        self.begin_pool_write(guard).await
    }

    /// Starts a write transaction for object writes: on a SQLite file it
    /// runs inline on the write connection (see [`writer`]), elsewhere it is
    /// a [`WriteTx`]. Serialised with every other write transaction.
    pub async fn begin_object_write(&self) -> Result<ObjectTx<'_>, DbErr> {
        if let Some(writer) = &self.pg_writer {
            let queued = writer.queue();
            let guard = Arc::clone(&self.write_lock).lock_owned().await;
            drop(queued);
            let tx = writer.begin(guard).await?;
            return Ok(ObjectTx::group(tx, &self.reads, &self.changes));
        }
        let Some(writer) = &self.writer else {
            let guard = self.write_lock.lock().await;
            let tx = self.begin_pool_write(guard).await?;
            return Ok(ObjectTx::pool(tx, &self.reads));
        };
        let queued = writer.queue();
        let guard = self.write_lock.lock().await;
        drop(queued);
        let tx = writer.begin(SQLITE_BUSY_TIMEOUT).await?;
        Ok(ObjectTx::inline(tx, guard, &self.reads, &self.changes))
    }

    /// Commits a group of object writes whose every member went away (their
    /// requests were cancelled while they waited for the commit), which
    /// would otherwise hold SQLite's write lock until the next write. With
    /// the write lock taken no write is under way, so an open group holds
    /// only finished writes.
    pub async fn commit_open_group(&self) -> Result<(), DbErr> {
        if let Some(writer) = &self.pg_writer {
            if !writer.is_open() {
                return Ok(());
            }
            let _guard = self.write_lock.lock().await;
            return writer.flush().await;
        }
        let Some(writer) = &self.writer else {
            return Ok(());
        };
        if !writer.is_open() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        writer.flush()
    }

    /// Follows what other processes commit, for as long as the process
    /// runs, and gives [`Self::changes`] their signals: on PostgreSQL the
    /// notifications of the channel `steward_changes` (other replicas,
    /// the CLI), on SQLite the WAL-index mark (the CLI). Every
    /// `catch_up_every`, and whenever notifications may have been lost (the
    /// listening connection was lost), it looks in the database itself.
    pub async fn follow_changes(self: Arc<Self>, catch_up_every: Duration) {
        match deployments::newest_id(&self.db).await {
            // What was issued before has no waiters yet.
            Ok(newest) => self.changes.know(newest),
            Err(e) => tracing::warn!(error = %e, "cannot read the newest deployment"),
        }
        if self.db.get_database_backend() == DbBackend::Postgres {
            self.follow_postgres(catch_up_every).await;
        } else {
            self.follow_sqlite(catch_up_every).await;
        }
    }

    /// On SQLite: a look at the WAL-index mark four times a second (one
    /// `pread`); when it moved, a catch-up. The mark moves at this
    /// process's commits too: the key revision (`key_changes`, moved by
    /// triggers) tells whether a key changed, for only then are pulling
    /// agents' remembered looks forgotten.
    async fn follow_sqlite(&self, catch_up_every: Duration) {
        let mark = || self.wal_index.as_ref().and_then(|index| index.mark());
        let mut seen = mark();
        let mut keys_seen = keys::revision(&self.db).await.ok();
        let mut caught_up = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(MARK_EVERY).await;
            let now = mark();
            if now != seen {
                seen = now;
                caught_up = tokio::time::Instant::now();
                let keys_now = keys::revision(&self.db).await.ok();
                if keys_now.is_none() || keys_now != keys_seen {
                    keys_seen = keys_now;
                    self.catch_up().await;
                } else {
                    self.changes.recorded();
                    self.catch_up_issued().await;
                }
            } else if caught_up.elapsed() >= catch_up_every {
                caught_up = tokio::time::Instant::now();
                self.periodic_catch_up().await;
            }
        }
    }

    /// On PostgreSQL: one connection listening to `steward_changes` and
    /// `steward_objects`, connected again when lost. While it is not
    /// listening, objects are not kept in memory ([`fresh`]).
    async fn follow_postgres(&self, catch_up_every: Duration) {
        use sea_orm::sqlx::postgres::PgListener;
        let fresh = self.reads.fresh();
        let mut every = tokio::time::interval(catch_up_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(fresh) = fresh {
                fresh.stopped_listening();
            }
            let listening = async {
                let mut listener = PgListener::connect(&self.url).await?;
                listener
                    .listen_all([CHANGES_CHANNEL, OBJECTS_CHANNEL])
                    .await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let mut listener = match listening.await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for changes: retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Read after listening began: what was committed before it is
            // in the database, what after it will be notified.
            if let Some(fresh) = fresh {
                match objects::object_revision(&self.db).await {
                    Ok(revision) => fresh.listening_from(revision),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the object revision: objects are not kept in memory")
                    }
                }
            }
            // What was committed while nobody listened.
            self.catch_up().await;
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(first)) => {
                            let mut received = vec![first];
                            while let Some(next) = listener.next_buffered() {
                                received.push(next);
                            }
                            self.notified(&received).await;
                        }
                        // The connection was lost: notifications may have
                        // been lost with it.
                        Ok(None) => {
                            tracing::warn!("lost the connection listening for changes");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the connection listening for changes");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    },
                    _ = every.tick() => self.periodic_catch_up().await,
                }
            }
        }
    }

    /// Gives the signals of notifications received together.
    async fn notified(&self, received: &[sea_orm::sqlx::postgres::PgNotification]) {
        let objects = received
            .iter()
            .filter(|n| n.channel() == OBJECTS_CHANNEL)
            .map(|n| n.payload());
        if let Some(fresh) = self.reads.fresh() {
            fresh.changed(objects);
        }
        let changes: Vec<&str> = received
            .iter()
            .filter(|n| n.channel() == CHANGES_CHANNEL)
            .map(|n| n.payload())
            .collect();
        if changes.is_empty() {
            return;
        }
        if changes.contains(&"k") {
            self.changes.committed();
        } else {
            self.changes.recorded();
        }
        if changes.contains(&"i") {
            self.catch_up_issued().await;
        }
    }

    /// Signals whatever may have been committed by others: wakes the
    /// commit waiters, and publishes the deployments not published yet.
    async fn catch_up(&self) {
        self.changes.committed();
        self.catch_up_issued().await;
    }

    /// The rare safety catch-up: wakes the commit waiters and publishes
    /// deployments not published yet, but keeps remembered looks (they
    /// are forgotten by what is seen to change, and age out after
    /// [`changes::LOOK_KEPT`]).
    async fn periodic_catch_up(&self) {
        self.changes.recorded();
        self.catch_up_issued().await;
    }

    /// Publishes the deployments newer than the newest published.
    async fn catch_up_issued(&self) {
        // A deployment of this process publishes itself, with its documents.
        self.changes.own_published(Duration::from_secs(10)).await;
        let known = self.changes.newest_issued();
        let found = async {
            let newer = deployments::ids_after(&self.db, known, CATCH_UP_DEPLOYMENTS).await?;
            if newer.len() as u64 >= CATCH_UP_DEPLOYMENTS {
                // Too many to look at one by one: every waiter looks.
                if let Some(newest) = newer.last() {
                    self.changes.issued(*newest, Issued::Everyone);
                }
                return Ok(());
            }
            for id in newer {
                let hosts = deployments::issued_hosts(&self.db, id).await?;
                self.changes
                    .issued(id, Issued::Hosts(Arc::new(hosts.into_iter().collect())));
            }
            // A staged deployment's later stages (begun by another
            // replica, or before this server started): the hosts of every
            // stage begun, since stages may have begun unseen.
            if let Some(running) = deployments::running(&self.db).await?
                && running.stage > 1
            {
                let stage = u32::try_from(running.stage).unwrap_or(u32::MAX);
                if !self.changes.stage_published(running.id, stage) {
                    let hosts = deployments::issued_hosts(&self.db, running.id).await?;
                    self.changes.issued_stage(
                        running.id,
                        stage,
                        Issued::Hosts(Arc::new(hosts.into_iter().collect())),
                    );
                }
            }
            Ok::<(), DbErr>(())
        };
        if let Err(e) = found.await {
            tracing::warn!(error = %e, "cannot look for new deployments");
        }
    }

    /// Runs [`Store::commit_open_group`] every second, for as long as the
    /// process runs.
    pub async fn sweep_open_groups(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Err(e) = self.commit_open_group().await {
                tracing::warn!(error = %e, "cannot commit a group of object writes");
            }
        }
    }

    async fn begin_pool_write<'a>(
        &'a self,
        guard: MutexGuard<'a, ()>,
    ) -> Result<WriteTx<'a>, DbErr> {
        // Object writes waiting for a group commit are committed first: this
        // transaction needs SQLite's write lock, which their group holds.
        if let Some(writer) = &self.writer {
            writer.flush()?;
        }
        // So are they on PostgreSQL: their transaction holds the advisory lock.
        if let Some(writer) = &self.pg_writer {
            writer.flush().await?;
        }
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
        Ok(WriteTx {
            changes: &self.changes,
            tx,
            _guard: guard,
        })
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
