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
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement};

use super::entities::object;
use super::objects::{self, StoredObject, decode};
use crate::domain::resolve::Resolver;
use crate::domain::{Kind, ObjectType};

/// How long a read waits for a lock (only WAL recovery takes one).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept at most.
const MAX_IDLE: usize = 16;

/// The columns of `objects o`, in [`object::Model`]'s order.
macro_rules! columns {
    () => {
        "o.id, o.kind, o.object_name, o.object_type, o.properties, o.checksum, o.created_at, o.updated_at"
    };
}
pub(super) use columns;

/// An object by kind and name, with its kind's template revision.
const FIND: &str = concat!(
    "SELECT ",
    columns!(),
    ", (SELECT r.revision FROM template_revisions r WHERE r.kind = o.kind) AS template_revision",
    " FROM objects o WHERE o.kind = ?1 AND o.object_name = ?2"
);

/// A page of a kind's objects or templates in name order, after a name.
const PAGE_AFTER: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM objects o WHERE o.kind = ?1 AND o.object_type = ?2 AND o.object_name > ?3",
    " ORDER BY o.object_name LIMIT ?4"
);

/// The first page of a kind's objects or templates in name order.
const PAGE_FIRST: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM objects o WHERE o.kind = ?1 AND o.object_type = ?2",
    " ORDER BY o.object_name LIMIT ?3"
);

/// The templates of a kind.
pub(super) const TEMPLATES: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM objects o WHERE o.kind = ?1 AND o.object_type = ?2"
);

/// The reads and the template cache of one store.
#[derive(Debug)]
pub struct Reads {
    /// The pool, for what is not read through `sqlite`.
    db: DatabaseConnection,
    sqlite: Option<SqliteReads>,
    templates: RwLock<HashMap<Kind, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    revision: i64,
    resolver: Arc<Resolver>,
}

impl Reads {
    /// Reads for the database at `sqlite_file` (SQLite), or through the pool.
    pub fn new(db: DatabaseConnection, sqlite_file: Option<PathBuf>) -> Self {
        Self {
            db,
            sqlite: sqlite_file.map(SqliteReads::new),
            templates: RwLock::new(HashMap::new()),
        }
    }

    /// The object of `kind` named `name`, with its kind's current template
    /// revision (to pass to [`Reads::resolver_at`]).
    pub async fn find(&self, kind: Kind, name: &str) -> Result<Option<(StoredObject, i64)>, DbErr> {
        let found = match &self.sqlite {
            Some(sqlite) => sqlite.find(kind, name)?,
            None => find_through_pool(&self.db, kind, name).await?,
        };
        found
            .map(|(row, revision)| Ok((decode(row)?, revision)))
            .transpose()
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
        match &self.sqlite {
            Some(sqlite) => sqlite
                .page(kind, object_type, after, limit)?
                .into_iter()
                .map(decode)
                .collect(),
            None => objects::page(&self.db, kind, object_type, after, limit).await,
        }
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
    pub async fn resolver_in(
        &self,
        tx: &impl ConnectionTrait,
        kind: Kind,
    ) -> Result<Arc<Resolver>, DbErr> {
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
    pub async fn committed_at(
        &self,
        kind: Kind,
        revision: i64,
    ) -> Result<Option<Arc<Resolver>>, DbErr> {
        let (committed, resolver) = self.committed(kind).await?;
        Ok((committed == revision).then_some(resolver))
    }

    /// The committed revision and its resolver (from the cache when current).
    async fn committed(&self, kind: Kind) -> Result<(i64, Arc<Resolver>), DbErr> {
        let revision = match &self.sqlite {
            Some(sqlite) => sqlite.revision(kind)?,
            None => objects::template_revision(&self.db, kind).await?,
        };
        match self.cached(kind, revision) {
            Some(cached) => Ok((revision, cached)),
            None => self.load(kind).await,
        }
    }

    /// Reads the revision, then the templates (so they are at least that
    /// recent), and caches them unless the cache holds newer ones.
    async fn load(&self, kind: Kind) -> Result<(i64, Arc<Resolver>), DbErr> {
        let (revision, templates) = match &self.sqlite {
            Some(sqlite) => sqlite.templates(kind)?,
            None => (
                objects::template_revision(&self.db, kind).await?,
                objects::templates(&self.db, kind).await?,
            ),
        };
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

async fn find_through_pool(
    db: &impl ConnectionTrait,
    kind: Kind,
    name: &str,
) -> Result<Option<(object::Model, i64)>, DbErr> {
    let backend = db.get_database_backend();
    // `?1` is SQLite's numbered parameter, `$1` PostgreSQL's.
    let sql = match backend {
        DbBackend::Postgres => FIND.replace('?', "$"),
        _ => FIND.to_owned(),
    };
    let statement =
        Statement::from_sql_and_values(backend, sql, [kind.as_str().into(), name.into()]);
    let Some(row) = db.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let model = object::Model::from_query_result(&row, "")?;
    let revision: Option<i64> = row.try_get("", "template_revision")?;
    Ok(Some((model, revision.unwrap_or(0))))
}

/// Read-only rusqlite connections to one SQLite file.
#[derive(Debug)]
struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl SqliteReads {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn find(&self, kind: Kind, name: &str) -> Result<Option<(object::Model, i64)>, DbErr> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(FIND)?;
            let mut rows = statement.query((kind.as_str(), name))?;
            rows.next()?
                .map(|row| Ok((model(row)?, row.get::<_, Option<i64>>(8)?.unwrap_or(0))))
                .transpose()
        })
    }

    fn page(
        &self,
        kind: Kind,
        object_type: ObjectType,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<object::Model>, DbErr> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (kind, object_type) = (kind.as_str(), object_type.as_str());
        self.with(|conn| match after {
            Some(after) => conn
                .prepare_cached(PAGE_AFTER)?
                .query_map((kind, object_type, after, limit), model)?
                .collect(),
            None => conn
                .prepare_cached(PAGE_FIRST)?
                .query_map((kind, object_type, limit), model)?
                .collect(),
        })
    }

    fn revision(&self, kind: Kind) -> Result<i64, DbErr> {
        self.with(|conn| revision(conn, kind))
    }

    /// The revision, then the templates it (at least) describes.
    fn templates(&self, kind: Kind) -> Result<(i64, Vec<crate::domain::Draft>), DbErr> {
        let (revision, rows) = self.with(|conn| {
            let revision = revision(conn, kind)?;
            let mut statement = conn.prepare_cached(TEMPLATES)?;
            let rows = statement
                .query_map((kind.as_str(), ObjectType::Template.as_str()), model)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((revision, rows))
        })?;
        let templates = rows
            .into_iter()
            .map(|row| decode(row).map(|o| o.draft))
            .collect::<Result<_, _>>()?;
        Ok((revision, templates))
    }

    /// Runs `read` on an idle connection, or a new one.
    fn with<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, DbErr> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&self.path).map_err(sqlite_error)?,
        };
        let out = read(&conn).map_err(sqlite_error)?;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        Ok(out)
    }
}

fn open(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

pub(super) fn revision(conn: &rusqlite::Connection, kind: Kind) -> rusqlite::Result<i64> {
    let mut statement =
        conn.prepare_cached("SELECT revision FROM template_revisions WHERE kind = ?1")?;
    let mut rows = statement.query([kind.as_str()])?;
    Ok(match rows.next()? {
        Some(row) => row.get(0)?,
        None => 0,
    })
}

pub(super) fn model(row: &rusqlite::Row<'_>) -> rusqlite::Result<object::Model> {
    Ok(object::Model {
        id: row.get(0)?,
        kind: row.get(1)?,
        object_name: row.get(2)?,
        object_type: row.get(3)?,
        properties: row.get(4)?,
        checksum: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn sqlite_error(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(format!("SQLite read: {e}"))
}
