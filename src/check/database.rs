//! Is the database reachable, and which migrations are applied or pending?

use std::time::Duration;

use super::Item;
use crate::config::DatabaseTarget;
use crate::db::migrate;

const NAME: &str = "database";
/// An unreachable host must not hang the check.
const WAIT: Duration = Duration::from_secs(10);

/// Connects once and compares the applied migrations with the embedded ones.
pub async fn check(target: &DatabaseTarget) -> Item {
    let backend = match target {
        DatabaseTarget::Postgres(_) => "postgresql",
        DatabaseTarget::Sqlite(_) => "sqlite",
    };
    if let DatabaseTarget::Sqlite(path) = target {
        if !path.exists() {
            return Item::warn(
                NAME,
                format!("sqlite file {} does not exist yet", path.display()),
                "`reactive-notebook serve` or `reactive-notebook migrate` creates and migrates it",
            );
        }
    }
    let status = match migrate::status(target, WAIT).await {
        Ok(status) => status,
        Err(e) => {
            return Item::fail(
                NAME,
                format!("{backend} not reachable: {e}"),
                "check DATABASE_URL (host, port, user, password, database name) and that the server accepts connections from this host",
            )
        }
    };
    if !status.pending.is_empty() {
        return Item::warn(
            NAME,
            format!(
                "{backend} reachable; {} migrations applied, {} pending ({})",
                status.applied.len(),
                status.pending.len(),
                status.pending.join(", ")
            ),
            "run `reactive-notebook migrate` (or `diesel migration run` on PostgreSQL); `serve` applies them itself unless --no-migrate",
        );
    }
    if !status.unknown.is_empty() {
        return Item::warn(
            NAME,
            format!(
                "{backend} reachable; it has migrations this binary does not know ({})",
                status.unknown.join(", ")
            ),
            "the database was migrated by a newer version: run that version, or roll those migrations back",
        );
    }
    let known = status.applied.len();
    Item::ok(
        NAME,
        format!("{backend} reachable; {known} migrations applied, none pending"),
    )
}
