//! What a write transaction does to objects, on either connection: the
//! pool's transaction ([`WriteTx`], through sea-orm) or the inline SQLite
//! writer ([`super::writer`]). The service's object rules are written once
//! against [`ObjectWrites`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DbErr;
use tokio::sync::MutexGuard;

use super::objects::{self, Relation, StoredObject};
use super::reads::Reads;
use super::writer::LiteTx;
use super::{WriteTx, activity, keys};
use crate::domain::activity::Entry;
use crate::domain::resolve::Resolver;
use crate::domain::{Draft, Kind, ObjectType};

/// The object operations of a write transaction.
#[async_trait::async_trait]
pub trait ObjectWrites: Sync {
    /// One object by kind and name.
    async fn find(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>, DbErr>;
    /// The objects that import or list object `id`.
    async fn dependants(&self, id: i64) -> Result<Vec<StoredObject>, DbErr>;
    /// Inserts a new object.
    async fn insert(&self, draft: &Draft) -> Result<StoredObject, DbErr>;
    /// Overwrites `current` with `draft`.
    async fn update(&self, current: &StoredObject, draft: &Draft) -> Result<StoredObject, DbErr>;
    /// Deletes `current` and the references it holds.
    async fn delete(&self, current: &StoredObject) -> Result<(), DbErr>;
    /// Ids of the objects of `kind` and `object_type` with these names.
    async fn ids_by_name(
        &self,
        kind: Kind,
        object_type: ObjectType,
        names: &[&str],
    ) -> Result<HashMap<String, i64>, DbErr>;
    /// Replaces the references object `from_id` holds.
    async fn set_refs(&self, from_id: i64, refs: &[(Relation, i64)]) -> Result<(), DbErr>;
    /// The resolver over `kind`'s templates as this transaction sees them.
    async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr>;
    /// Takes the key of an object being deleted (see [`keys::retire`]).
    async fn retire_key(&self, object_id: i64) -> Result<(), DbErr>;
    /// Appends an activity entry chained to the last one.
    async fn append_activity(&self, entry: &Entry) -> Result<(), DbErr>;
}

#[async_trait::async_trait]
impl ObjectWrites for WriteTx<'_> {
    async fn find(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>, DbErr> {
        objects::find(&self.tx, kind, name).await
    }

    async fn dependants(&self, id: i64) -> Result<Vec<StoredObject>, DbErr> {
        objects::dependants(&self.tx, id).await
    }

    async fn insert(&self, draft: &Draft) -> Result<StoredObject, DbErr> {
        objects::insert(&self.tx, draft).await
    }

    async fn update(&self, current: &StoredObject, draft: &Draft) -> Result<StoredObject, DbErr> {
        objects::update(&self.tx, current, draft).await
    }

    async fn delete(&self, current: &StoredObject) -> Result<(), DbErr> {
        objects::delete(&self.tx, current).await
    }

    async fn ids_by_name(
        &self,
        kind: Kind,
        object_type: ObjectType,
        names: &[&str],
    ) -> Result<HashMap<String, i64>, DbErr> {
        objects::ids_by_name(&self.tx, kind, object_type, names).await
    }

    async fn set_refs(&self, from_id: i64, refs: &[(Relation, i64)]) -> Result<(), DbErr> {
        objects::set_refs(&self.tx, from_id, refs).await
    }

    async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        WriteTx::resolver(self, kind).await
    }

    async fn retire_key(&self, object_id: i64) -> Result<(), DbErr> {
        self.retired_key.store(true, Ordering::Relaxed);
        keys::retire(&self.tx, object_id).await
    }

    async fn append_activity(&self, entry: &Entry) -> Result<(), DbErr> {
        activity::append(&self.tx, entry).await
    }
}

/// A write transaction for object writes (see [`super::Store::begin_object_write`]).
pub enum ObjectTx<'a> {
    /// On the inline SQLite writer; holds the store's write lock.
    Inline {
        tx: LiteTx<'a>,
        guard: MutexGuard<'a, ()>,
        reads: &'a Reads,
        changes: &'a super::Changes,
        /// Whether a write through it retired a key.
        retired_key: AtomicBool,
    },
    /// A transaction of the pool.
    Pool(WriteTx<'a>),
}

impl ObjectTx<'_> {
    /// Commits the transaction and releases the writer lock. Pulling
    /// agents' remembered looks are forgotten only when a write retired a
    /// key (a host was deleted): no other object write changes what a key
    /// belongs to.
    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            ObjectTx::Inline {
                tx,
                guard,
                changes,
                retired_key,
                ..
            } => {
                tx.commit(guard).await?;
                if retired_key.into_inner() {
                    changes.committed();
                } else {
                    changes.recorded();
                }
                Ok(())
            }
            ObjectTx::Pool(tx) => {
                if tx.retired_key.load(Ordering::Relaxed) {
                    tx.commit().await
                } else {
                    tx.commit_keys_unchanged().await
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl ObjectWrites for ObjectTx<'_> {
    async fn find(&self, kind: Kind, name: &str) -> Result<Option<StoredObject>, DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.find(kind, name),
            ObjectTx::Pool(tx) => tx.find(kind, name).await,
        }
    }

    async fn dependants(&self, id: i64) -> Result<Vec<StoredObject>, DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.dependants(id),
            ObjectTx::Pool(tx) => tx.dependants(id).await,
        }
    }

    async fn insert(&self, draft: &Draft) -> Result<StoredObject, DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.insert(draft),
            ObjectTx::Pool(tx) => ObjectWrites::insert(tx, draft).await,
        }
    }

    async fn update(&self, current: &StoredObject, draft: &Draft) -> Result<StoredObject, DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.update(current, draft),
            ObjectTx::Pool(tx) => tx.update(current, draft).await,
        }
    }

    async fn delete(&self, current: &StoredObject) -> Result<(), DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.delete(current),
            ObjectTx::Pool(tx) => tx.delete(current).await,
        }
    }

    async fn ids_by_name(
        &self,
        kind: Kind,
        object_type: ObjectType,
        names: &[&str],
    ) -> Result<HashMap<String, i64>, DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.ids_by_name(kind, object_type, names),
            ObjectTx::Pool(tx) => tx.ids_by_name(kind, object_type, names).await,
        }
    }

    async fn set_refs(&self, from_id: i64, refs: &[(Relation, i64)]) -> Result<(), DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.set_refs(from_id, refs),
            ObjectTx::Pool(tx) => tx.set_refs(from_id, refs).await,
        }
    }

    async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        match self {
            ObjectTx::Inline { tx, reads, .. } => {
                let revision = tx.template_revision(kind)?;
                match reads.committed_at(kind, revision).await? {
                    Some(resolver) => Ok(resolver),
                    // The transaction changed templates: read them through
                    // it, and do not cache what may yet roll back.
                    None => Ok(Arc::new(Resolver::new(tx.templates(kind)?))),
                }
            }
            ObjectTx::Pool(tx) => WriteTx::resolver(tx, kind).await,
        }
    }

    async fn retire_key(&self, object_id: i64) -> Result<(), DbErr> {
        match self {
            ObjectTx::Inline {
                tx, retired_key, ..
            } => {
                retired_key.store(true, Ordering::Relaxed);
                tx.retire_key(object_id)
            }
            ObjectTx::Pool(tx) => tx.retire_key(object_id).await,
        }
    }

    async fn append_activity(&self, entry: &Entry) -> Result<(), DbErr> {
        match self {
            ObjectTx::Inline { tx, .. } => tx.append_activity(entry),
            ObjectTx::Pool(tx) => tx.append_activity(entry).await,
        }
    }
}
