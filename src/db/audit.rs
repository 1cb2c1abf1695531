//! The audit log: one row per tool call the AI assistant made on a notebook.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::audit_log;
use super::{Db, DbError};
use crate::db_run;

/// A row of `audit_log`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// A UUID.
    pub id: String,
    /// When the tool call finished (UTC).
    pub created_at: NaiveDateTime,
    /// The user whose chat made the call.
    pub user_id: String,
    /// The notebook it acted on.
    pub notebook_id: String,
    /// The tool's name.
    pub tool: String,
    /// The tool input as JSON text.
    pub input: String,
    /// The tool result (or error) as JSON text.
    pub outcome: String,
    /// Whether the tool call succeeded.
    pub ok: bool,
}

impl AuditRow {
    /// A new row stamped now, with a fresh id.
    pub fn new(
        user_id: &str,
        notebook_id: &str,
        tool: &str,
        input: &serde_json::Value,
        outcome: &serde_json::Value,
        ok: bool,
    ) -> AuditRow {
        AuditRow {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: chrono::Utc::now().naive_utc(),
            user_id: user_id.to_string(),
            notebook_id: notebook_id.to_string(),
            tool: tool.to_string(),
            input: input.to_string(),
            outcome: outcome.to_string(),
            ok,
        }
    }
}

/// Appends one row.
pub async fn record(db: &Db, row: &AuditRow) -> Result<(), DbError> {
    let mut conn = db.get().await?;
    db_run!(conn, |c| {
        diesel::insert_into(audit_log::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// The newest `limit` rows of a notebook, newest first.
pub async fn list(db: &Db, notebook_id: &str, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        audit_log::table
            .filter(audit_log::notebook_id.eq(notebook_id))
            .order((audit_log::created_at.desc(), audit_log::id.desc()))
            .limit(limit)
            .select(AuditRow::as_select())
            .load::<AuditRow>(c)
            .await
    })?;
    Ok(rows)
}
