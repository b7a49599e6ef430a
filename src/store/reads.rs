//! The read path: objects by name, and the template cache.
//!
//! **Point reads on SQLite** go through plain rusqlite connections opened
//! read-only on the same file, called inline on the request's thread. The
//! pool's driver (sqlx) runs every SQLite statement on a worker thread of
//! its own and hands the rows back through channels; for a lookup by key
//! that costs microseconds, those thread switches were most of the request
//! (see docs/PERFORMANCE.md). A WAL reader never waits for the writer, so
//! the inline call does not hold the thread for longer than the lookup.
//! Idle connections are kept for reuse; as many exist as requests ever read
//! at once (at most one per runtime thread, since nothing awaits while one
//! is in use). On PostgreSQL, and for SQLite databases without a file, the
//! reads go through the pool.
//!
//! **Recent objects on SQLite.** An object read by name is kept in memory
//! with the WAL-index mark ([`super::wal_index`]) read *before* the read
//! began. A later read whose mark is equal is answered from memory: equal
//! marks mean nothing was committed in between, by this process, the CLI
//! or anyone else, so the kept object is what the database would return.
//! (If a commit lands between the mark and the read, the object kept is
//! newer than its mark; it is served only to reads that saw the same mark,
//! which began before that commit was visible and so may see either.) Any
//! commit moves the mark, and the next read that sees the new mark starts
//! the memory afresh. On PostgreSQL, objects are kept by the object
//! revision instead, exactly across replicas ([`super::fresh`]). At most
//! [`MAX_RECENT`] objects are kept, and at most
//! [`MAX_RECENT_BYTES`] of their stored text (an object may be as large as a
//! request body); a larger object is not kept at all.
//!
//! **Templates**: resolving an object needs every template of its kind, so
//! they are cached per kind, as a [`Resolver`], together with the kind's
//! template revision (`template_revisions`), which every change to a
//! template bumps in its own transaction. A read fetches the revision with
//! the object, in the same statement, and uses the cache only when the
//! revisions are equal. That is exact for every writer (this process, the
//! CLI, another replica on the same PostgreSQL) at the price of one small
//! subquery. The revision is read before the templates when loading, so a
//! cached resolver is never older than its revision says.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sea_orm::{DatabaseConnection, DbBackend, DbErr};

use super::exec::{Exec, Inline, STATEMENT_CACHE};
use super::fresh::Fresh;
use super::objects::{self, StoredObject, decode};
use super::wal_index::{Mark, WalIndex};
use crate::domain::resolve::Resolver;
use crate::domain::{Draft, Kind, ObjectType};

/// How long a read waits for a lock (only WAL recovery takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept at most.
const MAX_IDLE: usize = 16;
/// Objects kept in memory at most (see "Recent objects" above).
const MAX_RECENT: usize = 4096;
/// The stored text of the objects kept, in bytes, at most: 4 MiB (what
/// they take decoded is measured in docs/PERFORMANCE.md, "What the memory
/// costs").
const MAX_RECENT_BYTES: usize = 4 << 20;
/// Objects whose stored text is larger are not kept: 64 KiB.
const MAX_KEPT_BYTES: usize = MAX_RECENT_BYTES / 64;

/// Runs a query on a read connection: `$db` is an inline connection to the
/// SQLite file ([`super::exec`]) or the pool. A connection is kept for
/// reuse only when its query succeeded.
macro_rules! read {
    ($reads:expr, |$db:ident| $query:expr) => {
        match &$reads.sqlite {
            Some(sqlite) => {
                let conn = sqlite.checkout()?;
                let out = {
                    let $db = &Inline::new(&conn, "SQLite read");
                    $query.await
                };
                if out.is_ok() {
                    sqlite.checkin(conn);
                }
                out
            }
            None => {
                let $db = &$reads.db;
                $query.await
            }
        }
    };
}

/// The reads and the template cache of one store.
#[derive(Debug)]
pub struct Reads {
    /// The pool, for what is not read through `sqlite`.
    db: DatabaseConnection,
    sqlite: Option<SqliteReads>,
    templates: RwLock<HashMap<Kind, Cached>>,
    /// Objects read by name on SQLite, and the mark they are current at.
    recent: RwLock<Recent>,
    /// On PostgreSQL, objects read by name and what keeps them exact.
    fresh: Option<Fresh>,
    /// Reads answered from memory (the tests count them).
    recent_hits: AtomicU64,
}

/// An object found by name, with its kind's template revision.
pub type Found = (Arc<StoredObject>, i64);

#[derive(Debug, Default)]
struct Recent {
    mark: Option<Mark>,
    kept: Kept,
}

/// Objects kept in memory by kind and name, within [`MAX_RECENT`] objects
/// and [`MAX_RECENT_BYTES`] of stored text.
#[derive(Debug, Default)]
pub(super) struct Kept {
    objects: HashMap<Kind, HashMap<String, (Found, usize)>>,
    len: usize,
    /// The stored text of the objects kept, in bytes.
    bytes: usize,
}

impl Kept {
    pub(super) fn get(&self, kind: Kind, name: &str) -> Option<Found> {
        let ((object, revision), _) = self.objects.get(&kind)?.get(name)?;
        Some((Arc::clone(object), *revision))
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn contains(&self, kind: Kind, name: &str) -> bool {
        self.objects
            .get(&kind)
            .is_some_and(|objects| objects.contains_key(name))
    }

    /// Keeps `found` (`size` bytes of stored text) unless it is larger than
    /// [`MAX_KEPT_BYTES`]; when the bounds are reached, everything kept is
    /// forgotten first.
    pub(super) fn keep(&mut self, kind: Kind, name: &str, found: &Found, size: usize) {
        if size > MAX_KEPT_BYTES {
            return;
        }
        self.forget(kind, name);
        if self.len >= MAX_RECENT || self.bytes + size > MAX_RECENT_BYTES {
            *self = Self::default();
        }
        self.objects
            .entry(kind)
            .or_default()
            .insert(name.to_owned(), ((Arc::clone(&found.0), found.1), size));
        self.len += 1;
        self.bytes += size;
    }

    pub(super) fn forget(&mut self, kind: Kind, name: &str) {
        if let Some((_, size)) = self
            .objects
            .get_mut(&kind)
            .and_then(|objects| objects.remove(name))
        {
            self.len -= 1;
            self.bytes -= size;
        }
    }

    pub(super) fn forget_kind(&mut self, kind: Kind) {
        if let Some(objects) = self.objects.remove(&kind) {
            self.len -= objects.len();
            self.bytes -= objects.values().map(|(_, size)| size).sum::<usize>();
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    revision: i64,
    resolver: Arc<Resolver>,
}

impl Reads {
    /// Reads for the SQLite file at `sqlite.0` with its WAL-index, or
    /// through the pool.
    pub fn new(db: DatabaseConnection, sqlite: Option<(PathBuf, Arc<WalIndex>)>) -> Self {
        let fresh =
            (db.get_database_backend() == DbBackend::Postgres).then(|| Fresh::new(db.clone()));
        Self {
            fresh,
            db,
            sqlite: sqlite.map(|(path, index)| SqliteReads::new(path, index)),
            templates: RwLock::new(HashMap::new()),
            recent: RwLock::new(Recent::default()),
            recent_hits: AtomicU64::new(0),
        }
    }

    /// The object of `kind` named `name`, with its kind's current template
    /// revision (to pass to [`Reads::resolver_at`]).
    pub async fn find(&self, kind: Kind, name: &str) -> Result<Option<Found>, DbErr> {
        // Taken before the read: see "Recent objects" above.
        let mark = self.sqlite.as_ref().and_then(|sqlite| sqlite.index.mark());
        if let Some(found) = mark.and_then(|mark| self.recent(mark, kind, name)) {
            self.recent_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(found));
        }
        if let Some(fresh) = &self.fresh
            && let Some(found) = fresh.current(kind, name).await
        {
            self.recent_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(found));
        }
        let read = read!(self, |db| objects::find_with_revision(db, kind, name));
        let Some(read) = read? else {
            return Ok(None);
        };
        let size = read.row.object_name.len() + read.row.properties.len();
        let found = (Arc::new(decode(read.row)?), read.template_revision);
        if let Some(mark) = mark {
            self.remember(mark, kind, name, &found, size);
        }
        if let (Some(fresh), Some(read_at)) = (&self.fresh, read.object_revision) {
            fresh.remember(read_at, kind, name, &found, size);
        }
        Ok(Some(found))
    }

    /// How many reads of an object by name were answered from memory.
    pub fn from_memory(&self) -> u64 {
        self.recent_hits.load(Ordering::Relaxed)
    }

    /// On PostgreSQL, what keeps objects in memory exactly (see [`Fresh`]).
    pub fn fresh(&self) -> Option<&Fresh> {
        self.fresh.as_ref()
    }

    /// The object kept for `kind` and `name` when it is current at `mark`.
    fn recent(&self, mark: Mark, kind: Kind, name: &str) -> Option<Found> {
        let recent = self.recent.read().unwrap_or_else(PoisonError::into_inner);
        if recent.mark != Some(mark) {
            return None;
        }
        recent.kept.get(kind, name)
    }

    /// Keeps `found` (`size` bytes of stored text), read after `mark` was
    /// taken. A different mark starts the memory afresh.
    fn remember(&self, mark: Mark, kind: Kind, name: &str, found: &Found, size: usize) {
        let mut recent = self.recent.write().unwrap_or_else(PoisonError::into_inner);
        if recent.mark != Some(mark) {
            *recent = Recent {
                mark: Some(mark),
                ..Recent::default()
            };
        }
        recent.kept.keep(kind, name, found, size);
    }

    /// Up to `limit` objects of `kind` and `object_type` in name order
    /// (byte order), after `after`: a page of a list. On SQLite read inline
    /// (a page of 1,000 costs about a millisecond or two).
    pub async fn page(
        &self,
        kind: Kind,
        object_type: ObjectType,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<StoredObject>, DbErr> {
        read!(self, |db| objects::page(
            db,
            kind,
            object_type,
            after,
            limit
        ))
    }

    /// The resolver over `kind`'s current templates.
    pub async fn resolver(&self, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        Ok(self.committed(kind).await?.1)
    }

    /// The resolver over `kind`'s templates at `revision` or later.
    pub async fn resolver_at(&self, kind: Kind, revision: i64) -> Result<Arc<Resolver>, DbErr> {
        match self.cached(kind, revision) {
            Some(cached) => Ok(cached),
            None => Ok(self.load(kind).await?.1),
        }
    }

    /// The resolver as a write transaction sees the templates: the
    /// committed templates (cached) when the transaction sees their
    /// revision, otherwise (it changed templates itself) read through the
    /// transaction and not cached, since it may yet roll back.
    pub async fn resolver_in(&self, tx: &impl Exec, kind: Kind) -> Result<Arc<Resolver>, DbErr> {
        let revision = objects::template_revision(tx, kind).await?;
        if let Some(resolver) = self.committed_at(kind, revision).await? {
            return Ok(resolver);
        }
        Ok(Arc::new(Resolver::new(objects::templates(tx, kind).await?)))
    }

    /// The cached resolver, when a write transaction that sees template
    /// `revision` may use it. Writers are serialised: the committed revision
    /// cannot move while the transaction runs, so it differs only if the
    /// transaction changed templates.
    async fn committed_at(
        &self,
        kind: Kind,
        revision: i64,
    ) -> Result<Option<Arc<Resolver>>, DbErr> {
        let (committed, resolver) = self.committed(kind).await?;
        Ok((committed == revision).then_some(resolver))
    }

    /// The committed revision and its resolver (from the cache when current).
    async fn committed(&self, kind: Kind) -> Result<(i64, Arc<Resolver>), DbErr> {
        let revision = read!(self, |db| objects::template_revision(db, kind))?;
        match self.cached(kind, revision) {
            Some(cached) => Ok((revision, cached)),
            None => self.load(kind).await,
        }
    }

    /// Reads the revision, then the templates (so they are at least that
    /// recent), and caches them unless the cache holds newer ones.
    async fn load(&self, kind: Kind) -> Result<(i64, Arc<Resolver>), DbErr> {
        let (revision, templates) = read!(self, |db| revision_and_templates(db, kind))?;
        let resolver = Arc::new(Resolver::new(templates));
        let mut cache = self
            .templates
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let newer = cache.get(&kind).is_none_or(|c| c.revision < revision);
        if newer {
            cache.insert(
                kind,
                Cached {
                    revision,
                    resolver: Arc::clone(&resolver),
                },
            );
        }
        Ok((revision, resolver))
    }

    fn cached(&self, kind: Kind, revision: i64) -> Option<Arc<Resolver>> {
        let cache = self
            .templates
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .get(&kind)
            .filter(|c| c.revision == revision)
            .map(|c| Arc::clone(&c.resolver))
    }
}

/// The revision, then the templates it (at least) describes.
async fn revision_and_templates(db: &impl Exec, kind: Kind) -> Result<(i64, Vec<Draft>), DbErr> {
    let revision = objects::template_revision(db, kind).await?;
    Ok((revision, objects::templates(db, kind).await?))
}

/// Read-only rusqlite connections to one SQLite file, and its WAL-index.
#[derive(Debug)]
struct SqliteReads {
    path: PathBuf,
    index: Arc<WalIndex>,
    idle: Mutex<Vec<Mutex<rusqlite::Connection>>>,
}

impl SqliteReads {
    fn new(path: PathBuf, index: Arc<WalIndex>) -> Self {
        Self {
            path,
            index,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    fn checkout(&self) -> Result<Mutex<rusqlite::Connection>, DbErr> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open(&self.path)
                .map(Mutex::new)
                .map_err(|e| DbErr::Custom(format!("SQLite read: {e}"))),
        }
    }

    /// Keeps `conn` for reuse, unless enough are kept.
    fn checkin(&self, conn: Mutex<rusqlite::Connection>) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::domain::{Draft, write};
    use crate::store::{ObjectTx, Store, sqlite_url};

    fn host(name: &str, vars: Value) -> Draft {
        let mut body = Map::new();
        body.insert("vars".into(), vars);
        write::create(Kind::Host, Some(name), &body).expect("a valid host")
    }

    async fn existing(tx: &ObjectTx<'_>, name: &str) -> Option<StoredObject> {
        tx.find(Kind::Host, name).await.expect("find")
    }

    async fn write(store: &Store, draft: &Draft) {
        let tx = store.begin_object_write().await.expect("begin");
        match existing(&tx, draft.name.as_str()).await {
            Some(current) => tx.update(&current, draft).await.expect("update"),
            None => tx.insert(draft).await.expect("insert"),
        };
        tx.commit().await.expect("commit");
    }

    async fn vars(store: &Store, name: &str) -> Option<Value> {
        let (object, _) = store.find_object(Kind::Host, name).await.expect("read")?;
        Some(representation_vars(&object))
    }

    fn representation_vars(object: &StoredObject) -> Value {
        crate::service::objects::representation(&object.draft)["vars"].clone()
    }

    fn hits(store: &Store) -> u64 {
        store.reads.recent_hits.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_kept_object_is_served_until_anyone_commits() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = sqlite_url(dir.path());
        let store = Store::open(&url).await.expect("store");
        // Another process on the same file, as the CLI is.
        let other = Store::open(&url).await.expect("another store");

        write(&store, &host("web", json!({ "n": 1 }))).await;
        assert_eq!(vars(&store, "web").await, Some(json!({ "n": 1 })));
        let before = hits(&store);
        for _ in 0..5 {
            assert_eq!(vars(&store, "web").await, Some(json!({ "n": 1 })));
        }
        assert_eq!(hits(&store), before + 5, "no commit: served from memory");

        // A commit by another process is seen by the next read.
        write(&other, &host("web", json!({ "n": 2 }))).await;
        assert_eq!(vars(&store, "web").await, Some(json!({ "n": 2 })));
        // So is an uncommitted write not, and its commit is.
        let tx = store.begin_object_write().await.expect("begin");
        let current = existing(&tx, "web").await.expect("web");
        tx.update(&current, &host("web", json!({ "n": 3 })))
            .await
            .expect("update");
        assert_eq!(vars(&store, "web").await, Some(json!({ "n": 2 })));
        assert_eq!(vars(&store, "web").await, Some(json!({ "n": 2 })));
        tx.commit().await.expect("commit");
        assert_eq!(vars(&store, "web").await, Some(json!({ "n": 3 })));

        // A deletion by another process too.
        let tx = other.begin_object_write().await.expect("begin");
        let current = existing(&tx, "web").await.expect("web");
        tx.delete(&current).await.expect("delete");
        tx.commit().await.expect("commit");
        assert_eq!(vars(&store, "web").await, None);
        assert_eq!(vars(&other, "web").await, None);
    }

    /// Writers in groups and readers at once: every writer reads its own
    /// write back at once, whatever the readers left in memory meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_writer_reads_its_own_write_while_others_read_and_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::open(&sqlite_url(dir.path())).await.expect("store"));
        const WRITERS: usize = 8;
        for w in 0..WRITERS {
            write(&store, &host(&format!("h{w}"), json!({ "n": 0 }))).await;
        }
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (store, done) = (Arc::clone(&store), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut i = r;
                    while !done.load(Ordering::Relaxed) {
                        vars(&store, &format!("h{}", i % WRITERS)).await;
                        i += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let name = format!("h{w}");
                    for n in 1..=100 {
                        write(&store, &host(&name, json!({ "n": n }))).await;
                        assert_eq!(vars(&store, &name).await, Some(json!({ "n": n })), "{name}");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("a writer");
        }
        done.store(true, Ordering::Relaxed);
        for reader in readers {
            reader.await.expect("a reader");
        }
        assert!(hits(&store) > 0, "the memory was used");
    }

    #[tokio::test]
    async fn the_memory_holds_at_most_its_bounds_and_no_large_object() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&sqlite_url(dir.path())).await.expect("store");
        write(&store, &host("web", json!({}))).await;
        let found = store
            .find_object(Kind::Host, "web")
            .await
            .expect("read")
            .expect("web");
        let mark = store
            .wal_index
            .as_ref()
            .expect("a WAL-index")
            .mark()
            .expect("a mark");
        let reads = &store.reads;
        let kept = || {
            let recent = reads.recent.read().expect("lock");
            let counted: usize = recent.kept.objects.values().map(HashMap::len).sum();
            assert_eq!(counted, recent.kept.len);
            (recent.kept.len, recent.kept.bytes)
        };

        // By count, from empty.
        *reads.recent.write().expect("lock") = Recent::default();
        for i in 0..=MAX_RECENT {
            reads.remember(mark, Kind::Host, &format!("small-{i}"), &found, 100);
            assert!(kept().0 <= MAX_RECENT, "{:?} kept after {i}", kept());
        }
        assert_eq!(kept(), (1, 100), "full: emptied, then the new one kept");

        // By bytes: 64 of the largest kept size fill it exactly.
        *reads.recent.write().expect("lock") = Recent::default();
        let mut previous = kept();
        for i in 0..=64 {
            reads.remember(
                mark,
                Kind::Host,
                &format!("big-{i}"),
                &found,
                MAX_KEPT_BYTES,
            );
            let now = kept();
            assert!(now.1 <= MAX_RECENT_BYTES, "{now:?} kept after {i}");
            if i == 63 {
                assert_eq!(now, (64, MAX_RECENT_BYTES));
            }
            previous = now;
        }
        assert_eq!(
            previous,
            (1, MAX_KEPT_BYTES),
            "emptied when the bytes ran out"
        );

        // Too large to keep at all.
        reads.remember(mark, Kind::Host, "huge", &found, MAX_KEPT_BYTES + 1);
        assert!(reads.recent(mark, Kind::Host, "huge").is_none());

        // A real one: read right, every time from the database.
        let large = "x".repeat(MAX_KEPT_BYTES);
        write(&store, &host("large", json!({ "blob": large }))).await;
        let before = hits(&store);
        for _ in 0..3 {
            assert_eq!(vars(&store, "large").await, Some(json!({ "blob": large })));
        }
        assert_eq!(hits(&store), before, "not kept");
        vars(&store, "web").await;
        vars(&store, "web").await;
        assert_eq!(hits(&store), before + 1, "a small one is");
    }
}
