//! Embedded migrations for both backends, applied under a PostgreSQL advisory lock.

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::DbError;
use crate::config::DatabaseTarget;

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Arbitrary constant naming this application's migration lock.
const MIGRATION_LOCK_KEY: i64 = 0x6e6f_7465_626f_6f6b;

/// Applies pending migrations; returns the versions applied (empty when up to date).
pub async fn run_pending(target: &DatabaseTarget) -> Result<Vec<String>, DbError> {
    let target = target.clone();
    tokio::task::spawn_blocking(move || match target {
        DatabaseTarget::Postgres(url) => migrate_postgres(&url),
        DatabaseTarget::Sqlite(path) => migrate_sqlite(&path),
    })
    .await
    .map_err(|e| DbError::Migration(format!("migration task failed: {e}")))?
}

fn migrate_postgres(url: &str) -> Result<Vec<String>, DbError> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    // Several instances starting at once take turns; the lock is per session, so it is
    // released when this connection closes even if we fail half-way.
    conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
    let result = apply(&mut conn, PG_MIGRATIONS);
    let unlock = conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"));
    let applied = result?;
    unlock?;
    Ok(applied)
}

fn migrate_sqlite(path: &std::path::Path) -> Result<Vec<String>, DbError> {
    crate::data_dir::prepare_sqlite(path)
        .map_err(|e| DbError::Unavailable(format!("cannot prepare {}: {e}", path.display())))?;
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    conn.batch_execute("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")?;
    apply(&mut conn, SQLITE_MIGRATIONS)
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> Result<Vec<String>, DbError>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    conn.run_pending_migrations(migrations)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect())
        .map_err(|e| DbError::Migration(e.to_string()))
}
