//! One executor for the store's queries: the pool, or an inline rusqlite
//! connection.
//!
//! The store's queries are written once, with sea-orm's and sea-query's
//! builders, against [`Exec`]. On PostgreSQL (and SQLite without a file)
//! they run on the pool or a pool transaction: every sea-orm connection is
//! an [`Exec`]. On a SQLite file the object writes ([`super::writer`]) and
//! the point reads ([`super::reads`]) run on plain rusqlite connections
//! called on the request's own thread, because the pool's driver hands
//! every SQLite statement to a thread of its own (docs/PERFORMANCE.md):
//! [`Inline`] runs the same statements, built for SQLite, there.
//!
//! Rows are decoded once, by column name, by a [`FromRow`] implementation
//! that reads a [`Row`] of either kind. Statements are prepared once per
//! inline connection (rusqlite's cache, keyed by the text the builder
//! makes) and run at once: nothing awaits while the connection is locked.

use std::sync::{Mutex, OnceLock, PoisonError};

use rusqlite::types::{FromSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};
use sea_orm::sea_query::{InsertStatement, Value};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, StatementBuilder, TryGetable,
};

/// Prepared statements kept per inline connection: more than the object
/// writes, reads and key changes use (rusqlite keeps 16 by default).
pub const STATEMENT_CACHE: usize = 64;

/// A column value either kind of row can give.
pub trait Col: TryGetable + FromSql {}
impl<T: TryGetable + FromSql> Col for T {}

/// A row of a result, of the pool or of an inline connection.
pub trait Row {
    /// The value of the column named `name`.
    fn get<T: Col>(&self, name: &str) -> Result<T, DbErr>;
    /// The value of the `index`th column (for one- and two-column results).
    fn get_at<T: Col>(&self, index: usize) -> Result<T, DbErr>;
}

/// What a row decodes into: each shape is decoded here and only here.
pub trait FromRow: Sized {
    fn from_row(row: &impl Row) -> Result<Self, DbErr>;
}

impl<A: Col> FromRow for (A,) {
    fn from_row(row: &impl Row) -> Result<Self, DbErr> {
        Ok((row.get_at(0)?,))
    }
}

impl<A: Col, B: Col> FromRow for (A, B) {
    fn from_row(row: &impl Row) -> Result<Self, DbErr> {
        Ok((row.get_at(0)?, row.get_at(1)?))
    }
}

/// Where the store's queries run.
#[async_trait::async_trait]
pub trait Exec: Sync {
    /// The backend statements are built for.
    fn backend(&self) -> DbBackend;

    /// Runs a statement; answers the number of rows it changed.
    async fn run_raw(&self, stmt: Statement) -> Result<u64, DbErr>;

    /// The rows of a query, decoded.
    async fn rows_raw<T: FromRow + Send>(&self, stmt: Statement) -> Result<Vec<T>, DbErr>;

    /// Runs an insert into a table whose key is `id`, built by
    /// [`insert_statement`] for this backend; answers the new row's id.
    async fn insert_raw(&self, stmt: Statement) -> Result<i64, DbErr>;

    /// Runs an insert into a table whose key is `id`; answers the new row's id.
    async fn insert(&self, stmt: &InsertStatement) -> Result<i64, DbErr> {
        self.insert_raw(insert_statement(self.backend(), stmt))
            .await
    }

    /// Runs a statement; answers the number of rows it changed.
    async fn run<S: StatementBuilder>(&self, stmt: &S) -> Result<u64, DbErr> {
        self.run_raw(self.backend().build(stmt)).await
    }

    /// The rows of a query, decoded.
    async fn rows<T: FromRow + Send, S: StatementBuilder>(
        &self,
        stmt: &S,
    ) -> Result<Vec<T>, DbErr> {
        self.rows_raw(self.backend().build(stmt)).await
    }

    /// The first row of a query, decoded (for queries by a unique key).
    async fn row_raw<T: FromRow + Send>(&self, stmt: Statement) -> Result<Option<T>, DbErr> {
        Ok(self.rows_raw(stmt).await?.into_iter().next())
    }

    /// The first row of a query, decoded (for queries by a unique key).
    async fn row<T: FromRow + Send, S: StatementBuilder>(
        &self,
        stmt: &S,
    ) -> Result<Option<T>, DbErr> {
        self.row_raw(self.backend().build(stmt)).await
    }
}

impl Row for QueryResult {
    fn get<T: Col>(&self, name: &str) -> Result<T, DbErr> {
        self.try_get("", name)
    }

    fn get_at<T: Col>(&self, index: usize) -> Result<T, DbErr> {
        self.try_get_by_index(index)
    }
}

/// Every sea-orm connection (the pool, a transaction) runs the queries.
#[async_trait::async_trait]
impl<C: ConnectionTrait> Exec for C {
    fn backend(&self) -> DbBackend {
        self.get_database_backend()
    }

    async fn run_raw(&self, stmt: Statement) -> Result<u64, DbErr> {
        Ok(self.execute_raw(stmt).await?.rows_affected())
    }

    async fn rows_raw<T: FromRow + Send>(&self, stmt: Statement) -> Result<Vec<T>, DbErr> {
        self.query_all_raw(stmt)
            .await?
            .iter()
            .map(T::from_row)
            .collect()
    }

    async fn insert_raw(&self, stmt: Statement) -> Result<i64, DbErr> {
        if self.get_database_backend() == DbBackend::Postgres {
            let row = self.query_one_raw(stmt).await?;
            return row
                .ok_or_else(|| DbErr::RecordNotInserted)?
                .try_get("", "id");
        }
        let done = self.execute_raw(stmt).await?;
        i64::try_from(done.last_insert_id())
            .map_err(|_| DbErr::Custom("an inserted id out of range".into()))
    }
}

/// An insert built for `backend`: with `RETURNING id` on PostgreSQL; on
/// SQLite the id is the connection's last one.
pub fn insert_statement(backend: DbBackend, stmt: &InsertStatement) -> Statement {
    if backend == DbBackend::Postgres {
        let mut stmt = stmt.clone();
        stmt.returning_col(sea_orm::sea_query::Alias::new("id"));
        return backend.build(&stmt);
    }
    backend.build(stmt)
}

/// A statement of a fixed shape whose text is built once per backend.
///
/// Building a statement (sea-orm's query, then its SQL text) costs a few
/// microseconds; a durable merge runs four, which was a sixth of its time
/// on SQLite (docs/PERFORMANCE.md). A shape is written once, with the
/// builders, as a function of its parameters; the first use on a backend
/// builds it with a marker for each parameter and keeps the text and, for
/// each value the builder bound, which parameter it is (or the constant it
/// was). Later uses bind their arguments in that order. Only statements
/// whose text never depends on their arguments may be shapes (not `IN`
/// lists, not a `LIMIT` given by the caller).
pub struct Shape<const N: usize> {
    build: fn(DbBackend, [Value; N]) -> Statement,
    sqlite: OnceLock<Result<Built, String>>,
    postgres: OnceLock<Result<Built, String>>,
}

#[derive(Debug)]
struct Built {
    sql: String,
    slots: Vec<Slot>,
}

#[derive(Debug)]
enum Slot {
    /// Argument `.0`; `.1`: its last use (taken, not cloned).
    Arg(usize, bool),
    Const(Value),
}

impl<const N: usize> std::fmt::Debug for Shape<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shape").finish_non_exhaustive()
    }
}

impl<const N: usize> Shape<N> {
    /// The shape `build` makes (`build` returns the statement built for
    /// the backend it is given, with these values as its parameters).
    pub const fn new(build: fn(DbBackend, [Value; N]) -> Statement) -> Self {
        Self {
            build,
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    /// The statement for `backend` with `args` bound.
    pub fn bind(&self, backend: DbBackend, args: [Value; N]) -> Result<Statement, DbErr> {
        let built = match backend {
            DbBackend::Postgres => &self.postgres,
            _ => &self.sqlite,
        }
        .get_or_init(|| self.built(backend))
        .as_ref()
        .map_err(|e| DbErr::Custom(e.clone()))?;
        let mut args = args.map(Some);
        let mut values = Vec::with_capacity(built.slots.len());
        for slot in &built.slots {
            values.push(
                match slot {
                    Slot::Arg(i, true) => args[*i].take(),
                    Slot::Arg(i, false) => args[*i].clone(),
                    Slot::Const(v) => Some(v.clone()),
                }
                // Cannot happen: an argument's last use is its last.
                .ok_or_else(|| DbErr::Custom("a parameter bound after its last use".into()))?,
            );
        }
        Ok(Statement::from_sql_and_values(
            backend,
            built.sql.clone(),
            values,
        ))
    }

    fn built(&self, backend: DbBackend) -> Result<Built, String> {
        let marker = |i: usize| Value::String(Some(format!("\u{0}parameter {i}\u{0}")));
        let stmt = (self.build)(backend, std::array::from_fn(marker));
        let mut slots: Vec<Slot> = stmt
            .values
            .iter()
            .flat_map(|v| v.0.iter())
            .map(|v| match (0..N).find(|&i| *v == marker(i)) {
                Some(i) => Slot::Arg(i, false),
                None => Slot::Const(v.clone()),
            })
            .collect();
        for i in 0..N {
            let last = slots
                .iter_mut()
                .rev()
                .find(|slot| matches!(slot, Slot::Arg(j, _) if *j == i));
            match last {
                Some(slot) => *slot = Slot::Arg(i, true),
                None => return Err(format!("parameter {i} is not bound in {}", stmt.sql)),
            }
        }
        Ok(Built {
            sql: stmt.sql,
            slots,
        })
    }
}

/// An inline rusqlite connection that the store's queries run on.
#[derive(Debug, Clone, Copy)]
pub struct Inline<'a> {
    conn: &'a Mutex<Connection>,
    /// Names the connection in errors: "SQLite read", "SQLite write".
    role: &'static str,
}

impl<'a> Inline<'a> {
    pub fn new(conn: &'a Mutex<Connection>, role: &'static str) -> Self {
        Self { conn, role }
    }

    fn with<T>(&self, run: impl FnOnce(&Connection) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        run(&conn).map_err(|e| match e {
            DbErr::Custom(e) => DbErr::Custom(format!("{}: {e}", self.role)),
            other => other,
        })
    }
}

fn sqlite(e: rusqlite::Error) -> DbErr {
    DbErr::Custom(e.to_string())
}

fn params(stmt: &Statement) -> impl Iterator<Item = Param<'_>> {
    stmt.values.iter().flat_map(|v| v.0.iter()).map(Param)
}

#[async_trait::async_trait]
impl Exec for Inline<'_> {
    fn backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }

    async fn run_raw(&self, stmt: Statement) -> Result<u64, DbErr> {
        self.with(|conn| execute(conn, &stmt).map(|changed| changed as u64))
    }

    async fn rows_raw<T: FromRow + Send>(&self, stmt: Statement) -> Result<Vec<T>, DbErr> {
        self.with(|conn| {
            let mut prepared = conn.prepare_cached(&stmt.sql).map_err(sqlite)?;
            let mut rows = prepared
                .query(rusqlite::params_from_iter(params(&stmt)))
                .map_err(sqlite)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next().map_err(sqlite)? {
                out.push(T::from_row(&LiteRow(row))?);
            }
            Ok(out)
        })
    }

    async fn insert_raw(&self, stmt: Statement) -> Result<i64, DbErr> {
        // Built without `RETURNING` for SQLite (see `insert_statement`).
        self.with(|conn| execute(conn, &stmt).map(|_| conn.last_insert_rowid()))
    }
}

/// Runs `stmt` on `conn`, prepared once per connection; answers the number
/// of rows it changed.
fn execute(conn: &Connection, stmt: &Statement) -> Result<usize, DbErr> {
    conn.prepare_cached(&stmt.sql)
        .and_then(|mut s| s.execute(rusqlite::params_from_iter(params(stmt))))
        .map_err(sqlite)
}

/// A row of an inline connection.
struct LiteRow<'a, 'r>(&'r rusqlite::Row<'a>);

impl Row for LiteRow<'_, '_> {
    fn get<T: Col>(&self, name: &str) -> Result<T, DbErr> {
        self.0
            .get(name)
            .map_err(|e| DbErr::Type(format!("column {name}: {e}")))
    }

    fn get_at<T: Col>(&self, index: usize) -> Result<T, DbErr> {
        self.0
            .get(index)
            .map_err(|e| DbErr::Type(format!("column {index}: {e}")))
    }
}

/// A value sea-query bound to a statement, as rusqlite binds it.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Sql;
        fn owned(v: Option<Sql>) -> rusqlite::Result<ToSqlOutput<'static>> {
            Ok(ToSqlOutput::Owned(v.unwrap_or(Sql::Null)))
        }
        match self.0 {
            Value::Bool(v) => owned(v.map(|b| Sql::Integer(b.into()))),
            Value::TinyInt(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::SmallInt(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::Int(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::BigInt(v) => owned(v.map(Sql::Integer)),
            Value::TinyUnsigned(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::SmallUnsigned(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::Unsigned(v) => owned(v.map(|i| Sql::Integer(i.into()))),
            Value::BigUnsigned(Some(u)) => i64::try_from(*u)
                .map(|i| ToSqlOutput::Owned(Sql::Integer(i)))
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
            Value::BigUnsigned(None) => owned(None),
            Value::Float(v) => owned(v.map(|f| Sql::Real(f.into()))),
            Value::Double(v) => owned(v.map(Sql::Real)),
            Value::String(Some(s)) => Ok(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))),
            Value::String(None) => owned(None),
            Value::Char(v) => owned(v.map(|c| Sql::Text(c.to_string()))),
            Value::Bytes(Some(b)) => Ok(ToSqlOutput::Borrowed(ValueRef::Blob(b))),
            Value::Bytes(None) => owned(None),
            Value::Json(v) => owned(v.as_ref().map(|j| Sql::Text(j.to_string()))),
            other => Err(rusqlite::Error::ToSqlConversionFailure(
                format!("a {other:?} is not bound inline").into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};

    use super::*;

    fn connection() -> Mutex<Connection> {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE t (id integer PRIMARY KEY AUTOINCREMENT, n integer NULL, \
             s varchar NULL, flag boolean NOT NULL)",
        )
        .expect("schema");
        Mutex::new(conn)
    }

    #[derive(Debug, PartialEq)]
    struct T {
        id: i64,
        n: Option<i64>,
        s: Option<String>,
        flag: bool,
    }

    impl FromRow for T {
        fn from_row(row: &impl Row) -> Result<Self, DbErr> {
            Ok(Self {
                id: row.get("id")?,
                n: row.get("n")?,
                s: row.get("s")?,
                flag: row.get("flag")?,
            })
        }
    }

    fn insert(n: Option<i64>, s: Option<&str>, flag: bool) -> InsertStatement {
        Query::insert()
            .into_table(Alias::new("t"))
            .columns([Alias::new("n"), Alias::new("s"), Alias::new("flag")])
            .values_panic([n.into(), s.map(str::to_owned).into(), flag.into()])
            .to_owned()
    }

    fn all() -> sea_orm::sea_query::SelectStatement {
        Query::select()
            .columns([
                Alias::new("flag"),
                Alias::new("s"),
                Alias::new("n"),
                Alias::new("id"),
            ])
            .from(Alias::new("t"))
            .order_by(Alias::new("id"), Order::Asc)
            .to_owned()
    }

    #[tokio::test]
    async fn values_go_in_and_rows_come_back_by_column_name() {
        let conn = connection();
        let db = Inline::new(&conn, "SQLite test");
        let text = "ünïcode ' \" ?1 $1";
        assert_eq!(
            db.insert(&insert(Some(i64::MAX), Some(text), true)).await,
            Ok(1)
        );
        assert_eq!(db.insert(&insert(None, None, false)).await, Ok(2));

        let rows: Vec<T> = db.rows(&all()).await.expect("select");
        assert_eq!(
            rows,
            [
                T {
                    id: 1,
                    n: Some(i64::MAX),
                    s: Some(text.into()),
                    flag: true
                },
                T {
                    id: 2,
                    n: None,
                    s: None,
                    flag: false
                },
            ]
        );
        let first: Option<T> = db.row(&all()).await.expect("one");
        assert_eq!(first.map(|t| t.id), Some(1));

        let count = Query::select()
            .expr(Expr::col(Alias::new("id")).count())
            .from(Alias::new("t"))
            .and_where(Expr::col(Alias::new("flag")).eq(true))
            .to_owned();
        let counted: Option<(i64,)> = db.row(&count).await.expect("count");
        assert_eq!(counted, Some((1,)));

        let update = Query::update()
            .table(Alias::new("t"))
            .value(Alias::new("n"), 5)
            .to_owned();
        assert_eq!(db.run(&update).await, Ok(2));
    }

    fn shaped(backend: DbBackend, [n, s]: [Value; 2]) -> Statement {
        // The second parameter comes first, the first twice, with a
        // constant between them.
        backend.build(
            Query::select()
                .column(Alias::new("id"))
                .from(Alias::new("t"))
                .and_where(Expr::col(Alias::new("s")).eq(s))
                .and_where(Expr::col(Alias::new("id")).gt(7))
                .and_where(Expr::col(Alias::new("n")).eq(n.clone()))
                .and_where(Expr::col(Alias::new("n")).lt(n)),
        )
    }

    #[test]
    fn a_shape_binds_as_the_builder_would_on_either_backend() {
        static SHAPE: Shape<2> = Shape::new(shaped);
        for backend in [DbBackend::Sqlite, DbBackend::Postgres] {
            for (n, s) in [(1_i64, "a"), (2, "b ?1 $1")] {
                let bound = SHAPE.bind(backend, [n.into(), s.into()]).expect("a shape");
                let built = shaped(backend, [n.into(), s.into()]);
                assert_eq!(
                    (bound.sql, bound.values),
                    (built.sql, built.values),
                    "{backend:?}"
                );
            }
        }
    }

    #[test]
    fn a_shape_that_leaves_out_a_parameter_is_an_error() {
        static SHAPE: Shape<2> = Shape::new(|backend, [n, _forgotten]| {
            backend.build(
                Query::select()
                    .column(Alias::new("id"))
                    .from(Alias::new("t"))
                    .and_where(Expr::col(Alias::new("n")).eq(n)),
            )
        });
        let bound = SHAPE.bind(DbBackend::Sqlite, [1.into(), 2.into()]);
        assert!(bound.is_err(), "{bound:?}");
    }

    #[tokio::test]
    async fn a_value_of_the_wrong_type_is_an_error_not_a_null() {
        let conn = connection();
        let db = Inline::new(&conn, "SQLite test");
        db.insert(&insert(None, Some("text"), false))
            .await
            .expect("insert");
        let select = Query::select()
            .column(Alias::new("s"))
            .from(Alias::new("t"))
            .to_owned();
        let wrong: Result<Vec<(Option<i64>,)>, _> = db.rows(&select).await;
        assert!(wrong.is_err(), "{wrong:?}");
    }

    #[tokio::test]
    async fn an_error_names_the_connection_and_changes_nothing() {
        let conn = connection();
        let db = Inline::new(&conn, "SQLite test");
        let failed = db
            .insert(&insert(None, None, false).to_owned())
            .await
            .map(|_| ());
        assert_eq!(failed, Ok(()));
        let null_flag = Query::insert()
            .into_table(Alias::new("t"))
            .columns([Alias::new("flag")])
            .values_panic([Option::<bool>::None.into()])
            .to_owned();
        let failed = db.insert(&null_flag).await.expect_err("NOT NULL");
        assert!(failed.to_string().contains("SQLite test"), "{failed}");
        let rows: Vec<T> = db.rows(&all()).await.expect("select");
        assert_eq!(rows.len(), 1);
    }
}
