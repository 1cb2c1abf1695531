//! Notebook membership: who may open a notebook, with which role (queries for both backends).

use diesel::prelude::*;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::roles::Role;
use crate::db::models::NotebookRow;
use crate::db::schema::{notebook_members, notebooks};
use crate::db::{Db, DbError};
use crate::db_run;

/// A row of `notebook_members`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notebook_members)]
struct MemberRow {
    notebook_id: String,
    user_id: String,
    role: String,
    created_at: chrono::NaiveDateTime,
}

/// The role stored for a member; an unreadable value grants the least.
fn stored_role(text: &str) -> Role {
    match Role::parse(text) {
        Some(Role::Editor) => Role::Editor,
        _ => Role::Viewer,
    }
}

/// Who may open a notebook: its owner's id and the caller's role (None when the notebook
/// is missing; `Some((owner, None))` when the caller is not a member).
pub async fn access(
    db: &Db,
    user_id: &str,
    notebook_id: &str,
) -> Result<Option<(String, Option<Role>)>, DbError> {
    let mut conn = db.get().await?;
    // One statement (no transaction): this runs on every notebook request.
    let found = db_run!(conn, |c| {
        notebooks::table
            .left_join(
                notebook_members::table.on(notebook_members::notebook_id
                    .eq(notebooks::id)
                    .and(notebook_members::user_id.eq(user_id))),
            )
            .filter(notebooks::id.eq(notebook_id))
            .select((notebooks::owner_id, notebook_members::role.nullable()))
            .first::<(String, Option<String>)>(c)
            .await
            .optional()
    })
    .map_err(DbError::Query)?;
    Ok(found.map(|(owner, role)| {
        let role = if owner == user_id {
            Some(Role::Owner)
        } else {
            role.as_deref().map(stored_role)
        };
        (owner, role)
    }))
}

/// The members of a notebook (owner excluded), oldest first.
pub async fn list(db: &Db, notebook_id: &str) -> Result<Vec<(String, Role)>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        notebook_members::table
            .filter(notebook_members::notebook_id.eq(notebook_id))
            .order((
                notebook_members::created_at.asc(),
                notebook_members::user_id.asc(),
            ))
            .select(MemberRow::as_select())
            .load::<MemberRow>(c)
            .await
    })
    .map_err(DbError::Query)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let role = stored_role(&row.role);
            (row.user_id, role)
        })
        .collect())
}

/// Grants `role` to `user_id` unless they already hold a higher one; answers the role they
/// hold afterwards.
pub async fn grant(db: &Db, notebook_id: &str, user_id: &str, role: Role) -> Result<Role, DbError> {
    let mut conn = db.get().await?;
    let held = db_run!(conn, |c| {
        c.transaction::<_, diesel::result::Error, _>(|c| {
            async move {
                let current = notebook_members::table
                    .find((notebook_id, user_id))
                    .select(notebook_members::role)
                    .first::<String>(c)
                    .await
                    .optional()?
                    .map(|r| stored_role(&r));
                match current {
                    Some(current) if current >= role => Ok(current),
                    Some(_) => {
                        diesel::update(notebook_members::table.find((notebook_id, user_id)))
                            .set(notebook_members::role.eq(role.as_str()))
                            .execute(c)
                            .await?;
                        Ok(role)
                    }
                    None => {
                        diesel::insert_into(notebook_members::table)
                            .values(MemberRow {
                                notebook_id: notebook_id.to_string(),
                                user_id: user_id.to_string(),
                                role: role.as_str().to_string(),
                                created_at: chrono::Utc::now().naive_utc(),
                            })
                            .execute(c)
                            .await?;
                        Ok(role)
                    }
                }
            }
            .scope_boxed()
        })
        .await
    })
    .map_err(DbError::Query)?;
    Ok(held)
}

/// Sets an existing member's role; false when `user_id` is not a member.
pub async fn set_role(
    db: &Db,
    notebook_id: &str,
    user_id: &str,
    role: Role,
) -> Result<bool, DbError> {
    let mut conn = db.get().await?;
    let changed = db_run!(conn, |c| {
        diesel::update(notebook_members::table.find((notebook_id, user_id)))
            .set(notebook_members::role.eq(role.as_str()))
            .execute(c)
            .await
    })
    .map_err(DbError::Query)?;
    Ok(changed > 0)
}

/// Removes a member; false when `user_id` was not one.
pub async fn remove(db: &Db, notebook_id: &str, user_id: &str) -> Result<bool, DbError> {
    let mut conn = db.get().await?;
    let removed = db_run!(conn, |c| {
        diesel::delete(notebook_members::table.find((notebook_id, user_id)))
            .execute(c)
            .await
    })
    .map_err(DbError::Query)?;
    Ok(removed > 0)
}

/// The notebooks shared with `user_id` (not owned), oldest first, with the role held.
pub async fn shared_with(db: &Db, user_id: &str) -> Result<Vec<(NotebookRow, Role)>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        notebooks::table
            .inner_join(notebook_members::table)
            .filter(notebook_members::user_id.eq(user_id))
            .filter(notebooks::owner_id.ne(user_id))
            .order((notebooks::created_at.asc(), notebooks::id.asc()))
            .select((NotebookRow::as_select(), notebook_members::role))
            .load::<(NotebookRow, String)>(c)
            .await
    })
    .map_err(DbError::Query)?;
    Ok(rows
        .into_iter()
        .map(|(row, role)| (row, stored_role(&role)))
        .collect())
}
