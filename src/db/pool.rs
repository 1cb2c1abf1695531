//! Connection pools for the two backends behind one enum.

use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

use crate::config::DatabaseTarget;

/// SQLite connection usable from async code (queries run on tokio's blocking pool).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be obtained.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// Applying migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

/// A pool of connections to the notebook store.
#[derive(Clone)]
pub enum Db {
    /// PostgreSQL (production).
    Pg(Pool<AsyncPgConnection>),
    /// SQLite (embedded default).
    Sqlite(Pool<SqliteConn>),
}

/// One pooled connection of either backend; use it with [`crate::db_run!`].
pub enum DbConn {
    /// A PostgreSQL connection.
    Pg(Object<AsyncPgConnection>),
    /// A SQLite connection.
    Sqlite(Object<SqliteConn>),
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                              PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

impl Db {
    /// Builds the pool for `target` (connections are opened lazily).
    pub fn connect(target: &DatabaseTarget) -> Result<Db, DbError> {
        let wait = Some(Duration::from_secs(10));
        match target {
            DatabaseTarget::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.clone());
                let pool = Pool::builder(manager)
                    .max_size(16)
                    .wait_timeout(wait)
                    .create_timeout(wait)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                Ok(Db::Pg(pool))
            }
            DatabaseTarget::Sqlite(path) => {
                crate::data_dir::prepare_sqlite(path).map_err(|e| {
                    DbError::Unavailable(format!("cannot prepare {}: {e}", path.display()))
                })?;
                let mut config = ManagerConfig::<SqliteConn>::default();
                config.custom_setup = Box::new(|url| {
                    async move {
                        let mut conn = SqliteConn::establish(url).await?;
                        conn.batch_execute(SQLITE_PRAGMAS)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    }
                    .boxed()
                });
                let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(
                    path.to_string_lossy(),
                    config,
                );
                // One connection: SQLite has a single writer anyway, and a lone connection
                // cannot hit SQLITE_BUSY on a read-to-write transaction upgrade.
                let pool = Pool::builder(manager)
                    .max_size(1)
                    .wait_timeout(wait)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .map_err(|e| DbError::Unavailable(e.to_string()))?;
                Ok(Db::Sqlite(pool))
            }
        }
    }

    /// Takes a connection from the pool.
    pub async fn get(&self) -> Result<DbConn, DbError> {
        let waiting = std::time::Instant::now();
        let conn = self.checkout().await;
        crate::metrics::db_pool_wait(self.backend_name(), waiting.elapsed());
        conn
    }

    async fn checkout(&self) -> Result<DbConn, DbError> {
        match self {
            Db::Pg(pool) => pool
                .get()
                .await
                .map(DbConn::Pg)
                .map_err(|e| DbError::Unavailable(e.to_string())),
            Db::Sqlite(pool) => pool
                .get()
                .await
                .map(DbConn::Sqlite)
                .map_err(|e| DbError::Unavailable(e.to_string())),
        }
    }

    /// Checks that the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        let mut conn = self.get().await?;
        crate::db_run!(conn, |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }

    /// Short name of the backend, for logs.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Pg(_) => "postgresql",
            Db::Sqlite(_) => "sqlite",
        }
    }
}
