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

/// Which embedded migrations a database has applied and which are pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Versions recorded in `__diesel_schema_migrations` (the diesel CLI writes the same table).
    pub applied: Vec<String>,
    /// Embedded versions not applied yet, oldest first.
    pub pending: Vec<String>,
    /// Applied versions this binary does not embed (the database is newer than the binary).
    pub unknown: Vec<String>,
}

#[derive(diesel::QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

const APPLIED_SQL: &str = "SELECT CAST(version AS TEXT) AS version FROM __diesel_schema_migrations";

/// Reads the migration state without writing anything (unlike diesel's harness, which creates
/// its bookkeeping table first). Fails when the database cannot be reached within `wait`.
pub async fn status(
    target: &DatabaseTarget,
    wait: std::time::Duration,
) -> Result<MigrationStatus, DbError> {
    match target {
        DatabaseTarget::Postgres(url) => {
            let applied = tokio::time::timeout(wait, applied_postgres(url))
                .await
                .map_err(|_| DbError::Unavailable(format!("no answer within {wait:?}")))??;
            Ok(compare(
                embedded_versions::<diesel::pg::Pg>(PG_MIGRATIONS)?,
                applied,
            ))
        }
        DatabaseTarget::Sqlite(path) => {
            let path = path.clone();
            let applied = tokio::task::spawn_blocking(move || applied_sqlite(&path))
                .await
                .map_err(|e| DbError::Migration(format!("status task failed: {e}")))??;
            Ok(compare(
                embedded_versions::<diesel::sqlite::Sqlite>(SQLITE_MIGRATIONS)?,
                applied,
            ))
        }
    }
}

fn embedded_versions<DB: diesel::backend::Backend>(
    migrations: EmbeddedMigrations,
) -> Result<Vec<String>, DbError> {
    let list = diesel::migration::MigrationSource::<DB>::migrations(&migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    let mut versions: Vec<String> = list
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

fn compare(embedded: Vec<String>, mut applied: Vec<String>) -> MigrationStatus {
    applied.sort();
    let unknown = applied
        .iter()
        .filter(|v| !embedded.contains(v))
        .cloned()
        .collect();
    let pending = embedded
        .into_iter()
        .filter(|v| !applied.contains(v))
        .collect();
    MigrationStatus {
        applied,
        pending,
        unknown,
    }
}

async fn applied_postgres(url: &str) -> Result<Vec<String>, DbError> {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let exists: CountRow = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = '__diesel_schema_migrations'",
    )
    .get_result(&mut conn)
    .await?;
    if exists.n == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<VersionRow> = diesel::sql_query(APPLIED_SQL).load(&mut conn).await?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}

fn applied_sqlite(path: &std::path::Path) -> Result<Vec<String>, DbError> {
    use diesel::RunQueryDsl;
    if !path.exists() {
        // Not created yet: everything is pending, and opening it would create the file.
        return Ok(Vec::new());
    }
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let exists: CountRow = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM sqlite_master \
         WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .get_result(&mut conn)?;
    if exists.n == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<VersionRow> = diesel::sql_query(APPLIED_SQL).load(&mut conn)?;
    Ok(rows.into_iter().map(|r| r.version).collect())
}
