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

use std::sync::{Mutex, PoisonError};

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

    /// Runs an insert into a table whose key is `id`; answers the new row's id.
    async fn insert(&self, stmt: &InsertStatement) -> Result<i64, DbErr>;

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

    /// The first row of a query, decoded.
    async fn row<T: FromRow + Send, S: StatementBuilder>(
        &self,
        stmt: &S,
    ) -> Result<Option<T>, DbErr> {
        Ok(self.rows(stmt).await?.into_iter().next())
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

    async fn insert(&self, stmt: &InsertStatement) -> Result<i64, DbErr> {
        let backend = self.get_database_backend();
        if backend.support_returning() {
            let mut stmt = stmt.clone();
            stmt.returning_col(sea_orm::sea_query::Alias::new("id"));
            let row = self.query_one_raw(backend.build(&stmt)).await?;
            return row
                .ok_or_else(|| DbErr::RecordNotInserted)?
                .try_get("", "id");
        }
        let done = self.execute_raw(backend.build(stmt)).await?;
        i64::try_from(done.last_insert_id())
            .map_err(|_| DbErr::Custom("an inserted id out of range".into()))
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
        self.with(|conn| {
            let changed = conn
                .prepare_cached(&stmt.sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(params(&stmt))))
                .map_err(sqlite)?;
            Ok(changed as u64)
        })
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

    async fn insert(&self, stmt: &InsertStatement) -> Result<i64, DbErr> {
        let stmt = DbBackend::Sqlite.build(stmt);
        self.with(|conn| {
            conn.prepare_cached(&stmt.sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(params(&stmt))))
                .map_err(sqlite)?;
            Ok(conn.last_insert_rowid())
        })
    }
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
