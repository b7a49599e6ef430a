//! The write transaction of object writes: creating, changing and deleting
//! hosts, scripts and templates, and registering hosts.
//!
//! On a SQLite file it runs on the inline writer ([`super::writer`]),
//! elsewhere on a transaction of the pool. Either way it is an [`Exec`],
//! and every query run through it is the one function of
//! [`super::objects`], [`super::activity`] or [`super::keys`] that also
//! runs on the pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use tokio::sync::MutexGuard;

use super::exec::{Exec, FromRow};
use super::objects::{self, Relation, StoredObject};
use super::pg_writer::PgTx;
use super::reads::Reads;
use super::writer::LiteTx;
use super::{WriteTx, activity, keys};
use crate::domain::activity::Entry;
use crate::domain::resolve::Resolver;
use crate::domain::{Draft, Kind, ObjectType};

/// A write transaction for object writes (see [`super::Store::begin_object_write`]).
pub struct ObjectTx<'a> {
    conn: Conn<'a>,
    reads: &'a Reads,
    /// Whether a write through it changed what a key belongs to.
    keys_changed: AtomicBool,
}

enum Conn<'a> {
    /// On the inline SQLite writer; holds the store's write lock.
    Inline {
        tx: LiteTx<'a>,
        guard: MutexGuard<'a, ()>,
        changes: &'a super::Changes,
    },
    /// A transaction of the pool.
    Pool(WriteTx<'a>),
    /// On PostgreSQL, a write in a group's transaction.
    Group {
        tx: PgTx,
        changes: &'a super::Changes,
    },
}

impl std::fmt::Debug for ObjectTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = match self.conn {
            Conn::Inline { .. } => "inline",
            Conn::Pool(_) => "pool",
            Conn::Group { .. } => "group",
        };
        f.debug_struct("ObjectTx").field("on", &on).finish()
    }
}

impl<'a> ObjectTx<'a> {
    pub(super) fn inline(
        tx: LiteTx<'a>,
        guard: MutexGuard<'a, ()>,
        reads: &'a Reads,
        changes: &'a super::Changes,
    ) -> Self {
        Self {
            conn: Conn::Inline { tx, guard, changes },
            reads,
            keys_changed: AtomicBool::new(false),
        }
    }

    pub(super) fn group(tx: PgTx, reads: &'a Reads, changes: &'a super::Changes) -> Self {
        Self {
            conn: Conn::Group { tx, changes },
            reads,
            keys_changed: AtomicBool::new(false),
        }
    }

    pub(super) fn pool(tx: WriteTx<'a>, reads: &'a Reads) -> Self {
        Self {
            conn: Conn::Pool(tx),
            reads,
            keys_changed: AtomicBool::new(false),
        }
    }

    /// Whether it runs on the inline SQLite writer.
    pub fn is_inline(&self) -> bool {
        matches!(self.conn, Conn::Inline { .. })
    }

    /// Commits the transaction and releases the writer lock. Pulling
    /// agents' remembered looks are forgotten only when a write changed a
    /// key ([`Self::keys_changed`]): no other object write changes what a
    /// key belongs to.
    pub async fn commit(self) -> Result<(), DbErr> {
        let keys_changed = self.keys_changed.into_inner();
        let changes = match self.conn {
            Conn::Inline { tx, guard, changes } => {
                tx.commit(guard).await?;
                changes
            }
            Conn::Group { tx, changes } => {
                tx.commit().await?;
                changes
            }
            Conn::Pool(tx) if keys_changed => return tx.commit().await,
            Conn::Pool(tx) => return tx.commit_keys_unchanged().await,
        };
        if keys_changed {
            changes.committed();
        } else {
            changes.recorded();
        }
        Ok(())
    }

    /// Marks the transaction as changing keys (see [`Self::commit`]).
    pub fn keys_changed(&self) {
        self.keys_changed.store(true, Ordering::Relaxed);
    }

    /// One object by kind and name.
    pub async fn find(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>, DbErr> {
        objects::find(self, kind, name).await
    }

    /// The objects that import or list object `id`.
    pub async fn dependants(&self, id: i64) -> Result<Vec<StoredObject>, DbErr> {
        objects::dependants(self, id).await
    }

    /// Inserts a new object.
    pub async fn insert(&self, draft: &Draft) -> Result<StoredObject, DbErr> {
        objects::insert(self, draft).await
    }

    /// Inserts a new object with the stable id `id` (see [`objects::insert_with_id`]).
    pub async fn insert_with_id(&self, id: i64, draft: &Draft) -> Result<StoredObject, DbErr> {
        objects::insert_with_id(self, id, draft).await
    }

    /// One object by its stable id.
    pub async fn find_by_id(&self, id: i64) -> Result<Option<StoredObject>, DbErr> {
        objects::find_by_id(self, id).await
    }

    /// Forgets the retired keys of host `host_id` (see [`keys::forget_retired_in`]).
    pub async fn forget_retired_keys(&self, host_id: i64) -> Result<(), DbErr> {
        self.keys_changed();
        keys::forget_retired_in(self, host_id).await
    }

    /// Overwrites `current` with `draft`. In a group's transaction on
    /// PostgreSQL the update of an object (not a template) is sent with
    /// the activity entry that follows it ([`PgTx::update_object`]).
    pub async fn update(
        &self,
        current: &StoredObject,
        draft: &Draft,
    ) -> Result<StoredObject, DbErr> {
        match &self.conn {
            Conn::Group { tx, .. } if !objects::touches_templates(current, draft) => {
                let (values, stored) = objects::update_values(current, draft);
                tx.update_object(values).await?;
                Ok(stored)
            }
            _ => objects::update(self, current, draft).await,
        }
    }

    /// Deletes `current` and the references it holds.
    pub async fn delete(&self, current: &StoredObject) -> Result<(), DbErr> {
        objects::delete(self, current).await
    }

    /// Ids of the objects of `kind` and `object_type` with these names.
    pub async fn ids_by_name(
        &self,
        kind: Kind,
        object_type: ObjectType,
        names: &[&str],
    ) -> Result<HashMap<String, i64>, DbErr> {
        objects::ids_by_name(self, kind, object_type, names).await
    }

    /// Replaces the references object `from_id` holds.
    pub async fn set_refs(&self, from_id: i64, refs: &[(Relation, i64)]) -> Result<(), DbErr> {
        objects::set_refs(self, from_id, refs).await
    }

    /// The resolver over `kind`'s templates as this transaction sees them.
    pub async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        self.reads.resolver_in(self, kind).await
    }

    /// Takes the key of an object being deleted (see [`keys::retire`]).
    pub async fn retire_key(&self, object_id: i64) -> Result<(), DbErr> {
        self.keys_changed();
        keys::retire(self, object_id).await
    }

    /// Appends an activity entry chained to the last one.
    pub async fn append_activity(&self, entry: &Entry) -> Result<(), DbErr> {
        match &self.conn {
            Conn::Group { tx, .. } => tx.append_activity(entry).await,
            _ => activity::append(self, entry).await,
        }
    }
}

/// Runs a statement on the transaction's connection.
macro_rules! on_conn {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match &$self.conn {
            Conn::Inline { tx, .. } => tx.inline().$method($($arg),*).await,
            Conn::Pool(tx) => tx.tx.$method($($arg),*).await,
            Conn::Group { tx, .. } => {
                tx.send_deferred().await?;
                tx.conn()?.$method($($arg),*).await
            }
        }
    };
}

#[async_trait::async_trait]
impl Exec for ObjectTx<'_> {
    fn backend(&self) -> DbBackend {
        match &self.conn {
            Conn::Inline { .. } => DbBackend::Sqlite,
            Conn::Pool(tx) => tx.tx.get_database_backend(),
            Conn::Group { .. } => DbBackend::Postgres,
        }
    }

    async fn run_raw(&self, stmt: Statement) -> Result<u64, DbErr> {
        on_conn!(self, run_raw(stmt))
    }

    async fn rows_raw<T: FromRow + Send>(&self, stmt: Statement) -> Result<Vec<T>, DbErr> {
        on_conn!(self, rows_raw(stmt))
    }

    async fn insert_raw(&self, stmt: Statement) -> Result<i64, DbErr> {
        on_conn!(self, insert_raw(stmt))
    }
}
