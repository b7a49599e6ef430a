//! Object writes on PostgreSQL, in groups that share one transaction and
//! its commit (see [`super::group`]).
//!
//! A group's transaction takes the advisory lock that serialises writers
//! across replicas ([`super::PG_WRITE_LOCK`]) when it begins and holds it
//! until it commits, so whole-store rules (renames, import loops) stay
//! exact while its writes run one after the other. Each write runs in a
//! savepoint (`SAVEPOINT object_write`, one round trip); a write that
//! joins the group leaves its savepoint unreleased (the next one nests
//! inside it, which costs nothing), and a write that fails rolls back to
//! its own savepoint only. The commit is one `COMMIT` for up to
//! [`super::group::MAX_GROUP`] writes.
//!
//! An object's `UPDATE` waits in the write ([`PgTx::update_object`]) and
//! travels with the activity entry that follows it, in one statement
//! (`WITH object_update AS (UPDATE ..) INSERT INTO activity ..`): a merge
//! in a group is three round trips (the savepoint, the object's `SELECT`,
//! the change with its entry). Any other statement of the write, and its
//! commit, sends a waiting update first, so the write's statements keep
//! their order; a failure of the update fails the statement that carries
//! it, and the write rolls back alone as any failed write does.
//!
//! Between two writes of a group the transaction is idle and holds the
//! lock: a write that waits for its group's commit commits it itself after
//! a moment ([`super::group`]), every other write transaction commits it
//! first ([`PgWriter::flush`]), and the store's sweeper once a second.
//!
//! A write that is dropped unfinished (its request went away, or it failed)
//! is rolled back on a task of its own, which holds the store's write lock
//! until it is done, so the next write finds the transaction as it was.

use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait, Value,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::group::{Groups, Queued};
use super::{activity, objects};
use crate::domain::activity::Entry;

/// The group commit of object writes on PostgreSQL.
#[derive(Debug)]
pub struct PgWriter {
    db: DatabaseConnection,
    /// The store's write lock.
    lock: Arc<Mutex<()>>,
    groups: Groups,
    /// The open transaction, between two writes of its group.
    open: std::sync::Mutex<Option<DatabaseTransaction>>,
    /// The statements that begin a group: the advisory lock, the savepoint.
    begin_sql: String,
    /// The activity log's head as the open transaction holds it after the
    /// writes that joined it (`None`: read it from the log). Nobody else
    /// appends while the transaction holds the advisory lock, so a group's
    /// later writes chain their entries without reading the log.
    head: std::sync::Mutex<Option<String>>,
}

impl PgWriter {
    /// Its group commit (the tests look into it).
    #[cfg(test)]
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

    /// The writer over `db`, serialised by the store's write `lock` in
    /// this process and by the advisory lock `advisory_lock` across them.
    pub fn new(db: DatabaseConnection, lock: Arc<Mutex<()>>, advisory_lock: i64) -> Self {
        Self {
            db,
            lock,
            groups: Groups::default(),
            open: std::sync::Mutex::new(None),
            begin_sql: format!(
                "SELECT pg_advisory_xact_lock({advisory_lock}); SAVEPOINT object_write"
            ),
            head: std::sync::Mutex::new(None),
        }
    }

    /// Counts an object write as queued for the write lock until the
    /// returned guard is dropped.
    pub fn queue(&self) -> Queued<'_> {
        self.groups.queue()
    }

    /// Whether a transaction is open (a group waits for its commit).
    pub fn is_open(&self) -> bool {
        self.groups.group().open
    }

    fn take_open(&self) -> Option<DatabaseTransaction> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn put_open(&self, tx: DatabaseTransaction) {
        *self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx);
    }

    /// Begins an object write with the store's write lock (`guard`) held:
    /// joins the open transaction, or begins one and takes the advisory
    /// lock, then opens the write's savepoint.
    pub async fn begin(self: &Arc<Self>, guard: OwnedMutexGuard<()>) -> Result<PgTx, DbErr> {
        let (tx, first) = match self.take_open() {
            Some(tx) => (tx, false),
            None => (self.db.begin().await?, true),
        };
        // A group's first write takes the advisory lock and opens its
        // savepoint in one round trip.
        let sql = if first {
            self.begin_sql.as_str()
        } else {
            "SAVEPOINT object_write"
        };
        if let Err(e) = tx.execute_unprepared(sql).await {
            // The transaction is in no known state: the group ends with it.
            drop(tx);
            self.end(Err(e.to_string()));
            return Err(e);
        }
        if first {
            self.groups.group().open = true;
        }
        let head = if first { None } else { self.head().clone() };
        Ok(PgTx {
            writer: Arc::clone(self),
            tx: Some(tx),
            guard: Some(guard),
            head: std::sync::Mutex::new(head),
            deferred: std::sync::Mutex::new(None),
        })
    }

    /// Commits the open transaction, if any, for every write in it (with
    /// the store's write lock held).
    pub async fn flush(&self) -> Result<(), DbErr> {
        match self.take_open() {
            Some(tx) => self.commit(tx).await,
            None => Ok(()),
        }
    }

    /// Commits `tx` for its group, and tells the group's members how it went.
    async fn commit(&self, tx: DatabaseTransaction) -> Result<(), DbErr> {
        let committed = tx.commit().await;
        self.end(committed.as_ref().map(|_| ()).map_err(ToString::to_string));
        committed
    }

    fn head(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The group ended (committed or rolled back): its members learn how.
    fn end(&self, outcome: Result<(), String>) {
        *self.head() = None;
        self.groups.group().end(outcome);
        self.groups.ended();
    }

    /// Waits until the group `generation` is committed and answers how. If
    /// the commit does not come (the write that was to make it went away),
    /// takes the write lock and commits the group itself.
    async fn committed(&self, generation: u64) -> Result<(), DbErr> {
        loop {
            if let Some(outcome) = self.groups.outcome(generation).await {
                return outcome.map_err(|e| DbErr::Custom(format!("PostgreSQL write: {e}")));
            }
            let _guard = self.lock.lock().await;
            if self.groups.pending(generation) {
                self.flush().await?;
            }
        }
    }

    /// Rolls back the write that ran last in `tx` (the store's write lock is
    /// held). When earlier writes of the group are in it, to its savepoint
    /// only; otherwise, or when that fails, the whole transaction, and the
    /// group's writes learn it failed.
    async fn roll_back(&self, tx: DatabaseTransaction) {
        let members = self.groups.group().members;
        if members > 0
            && tx
                .execute_unprepared("ROLLBACK TO SAVEPOINT object_write")
                .await
                .is_ok()
        {
            // The group's earlier writes wait for a commit: when no other
            // write is queued to carry the group on, it is now.
            if self.groups.others_queued() {
                self.put_open(tx);
            } else if let Err(e) = self.commit(tx).await {
                tracing::warn!(error = %e, "cannot commit a group of object writes");
            }
            return;
        }
        if let Err(e) = tx.rollback().await {
            tracing::warn!(error = %e, "cannot roll back an object write");
        }
        self.end(Err("the transaction was rolled back".to_owned()));
    }
}

/// One object write in a group's transaction. Committing it joins the
/// group or commits it; dropping it unfinished rolls it back.
#[derive(Debug)]
pub struct PgTx {
    writer: Arc<PgWriter>,
    tx: Option<DatabaseTransaction>,
    guard: Option<OwnedMutexGuard<()>>,
    /// The activity log's head in the transaction, when known.
    head: std::sync::Mutex<Option<String>>,
    /// An object update not sent yet: it travels with the activity entry
    /// that follows it, or goes before any other statement.
    deferred: std::sync::Mutex<Option<Box<[Value; 5]>>>,
}

impl PgTx {
    /// The transaction, for the store's queries.
    pub fn conn(&self) -> Result<&DatabaseTransaction, DbErr> {
        self.tx
            .as_ref()
            .ok_or_else(|| DbErr::Custom("the object write already ended".into()))
    }

    fn head(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Overwrites an object (the values of [`objects::update_query`]) in
    /// this write's transaction, sent with the activity entry that follows
    /// (one round trip for both) or before the next statement.
    pub async fn update_object(&self, values: [Value; 5]) -> Result<(), DbErr> {
        self.send_deferred().await?;
        *self.deferred() = Some(Box::new(values));
        Ok(())
    }

    /// Sends the deferred object update, if any: every statement of this
    /// write goes after it.
    pub async fn send_deferred(&self) -> Result<(), DbErr> {
        let Some(values) = self.deferred().take() else {
            return Ok(());
        };
        objects::run_update(self.conn()?, *values).await
    }

    fn deferred(&self) -> std::sync::MutexGuard<'_, Option<Box<[Value; 5]>>> {
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends an activity entry in this write's transaction, chained to
    /// the head the transaction holds (known, or read first), in one
    /// statement with the deferred object update if there is one.
    pub async fn append_activity(&self, entry: &Entry) -> Result<(), DbErr> {
        let known = self.head().clone();
        let head = match known {
            Some(head) => head,
            None => activity::last_checksum(self.conn()?).await?,
        };
        let deferred = self.deferred().take();
        let head = match deferred {
            Some(update) => {
                activity::update_and_append(self.conn()?, *update, entry, &head).await?
            }
            None => activity::append_after(self.conn()?, entry, Some(&head)).await?,
        };
        *self.head() = Some(head);
        Ok(())
    }

    /// Ends this write: it joins the group when other object writes are
    /// queued (and waits for the group's commit), or commits the group.
    /// Answers once the commit holding it is durable.
    pub async fn commit(mut self) -> Result<(), DbErr> {
        self.send_deferred().await?;
        let (Some(tx), Some(guard)) = (self.tx.take(), self.guard.take()) else {
            return Err(DbErr::Custom("the object write already ended".into()));
        };
        let writer = Arc::clone(&self.writer);
        let generation = writer.groups.group().join(writer.groups.others_queued());
        match generation {
            Some(generation) => {
                // The next write of the group chains to this one's entries.
                *writer.head() = self.head().take();
                writer.put_open(tx);
                drop(guard);
                writer.committed(generation).await
            }
            None => {
                let committed = writer.commit(tx).await;
                drop(guard);
                committed
            }
        }
    }
}

impl Drop for PgTx {
    fn drop(&mut self) {
        let (Some(tx), Some(guard)) = (self.tx.take(), self.guard.take()) else {
            return;
        };
        let writer = Arc::clone(&self.writer);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    writer.roll_back(tx).await;
                    drop(guard);
                });
            }
            // No runtime to roll back on (the process is ending): dropping
            // the transaction rolls it all back.
            Err(_) => {
                drop(tx);
                writer.end(Err("the transaction was rolled back".to_owned()));
            }
        }
    }
}
