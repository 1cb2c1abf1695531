//! Storage: a pool over PostgreSQL or SQLite, embedded migrations, and typed queries.
//!
//! Every query is written once and run on either backend through [`db_run!`], which expands
//! the same diesel code for each connection type (the enum-of-connections pattern).

pub mod advisory;
pub mod audit;
pub mod fence;
pub mod instance_lock;
pub mod migrate;
pub mod models;
pub mod packages;
pub mod pool;
pub mod schema;
pub mod store;

pub use pool::{Db, DbConn, DbError};

/// Runs `$body` with `$c` bound to the concrete connection (`&mut AsyncPgConnection` or
/// `&mut SyncConnectionWrapper<SqliteConnection>`), so one diesel query serves both backends.
#[macro_export]
macro_rules! db_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(ref mut pooled) => {
                let $c: &mut diesel_async::AsyncPgConnection = &mut *pooled;
                $body
            }
            $crate::db::DbConn::Sqlite(ref mut pooled) => {
                let $c: &mut $crate::db::pool::SqliteConn = &mut *pooled;
                $body
            }
        }
    };
}
