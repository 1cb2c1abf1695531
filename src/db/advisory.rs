//! Transaction-scoped locks on a text key, so a check-then-insert cannot be raced by another
//! request or another instance.

use diesel::QueryResult;
use diesel_async::RunQueryDsl;

/// Serializes transactions that lock the same `(class, key)` until the caller's transaction
/// ends. `class` keeps unrelated kinds of keys apart (the first int4 key of PostgreSQL's
/// two-key advisory lock space, apart from the one-bigint-key space migrations use).
pub(crate) trait KeyLock {
    /// Waits for, then holds, the lock on `key` of `class` until the transaction ends.
    async fn lock_key(&mut self, class: i32, key: &str) -> QueryResult<()>;
}

impl KeyLock for diesel_async::AsyncPgConnection {
    async fn lock_key(&mut self, class: i32, key: &str) -> QueryResult<()> {
        // Hash collisions only make two keys wait for each other, never skip the lock.
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind::<diesel::sql_types::Integer, _>(class)
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(self)
            .await
            .map(|_| ())
    }
}

impl KeyLock for super::pool::SqliteConn {
    async fn lock_key(&mut self, _class: i32, _key: &str) -> QueryResult<()> {
        // SQLite is single-instance and its pool has one connection, so transactions already
        // run one at a time (and in WAL mode a transaction whose read went stale cannot write).
        Ok(())
    }
}
