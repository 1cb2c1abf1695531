//! Typed queries over notebooks and cells; every mutation is one transaction.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::advisory::KeyLock;
use super::fence::{Fence, FenceCheck};
use super::models::{CellRow, CellRunState, NewUser, NotebookRow};
use super::schema::{audit_log, cells, notebook_leases, notebooks, users};
use super::{Db, DbError};
use crate::db_run;

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The notebook does not exist or belongs to someone else.
    #[error("Notebook not found")]
    NotebookNotFound,
    /// The cell does not exist in this notebook.
    #[error("Cell not found")]
    CellNotFound,
    /// `after_cell_id` names no cell of this notebook.
    #[error("after_cell_id not found")]
    AfterCellNotFound,
    /// `before_cell_id` names no cell of this notebook.
    #[error("before_cell_id not found")]
    BeforeCellNotFound,
    /// The owner already has as many notebooks as `NOTEBOOKS_PER_USER` allows.
    #[error("Notebook limit reached: a user may own at most {limit} notebooks (NOTEBOOKS_PER_USER); delete a notebook to create another")]
    NotebookLimit {
        /// The limit.
        limit: u64,
    },
    /// The cell changed after the revision the client edited.
    #[error("Cell was changed by someone else (current revision {current})")]
    Conflict {
        /// The notebook's current revision.
        current: i64,
    },
    /// This instance no longer holds the notebook's lease: another instance owns it now.
    #[error("This notebook moved to another server instance; try again")]
    LeaseLost,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Db(DbError::Query(e))
    }
}

/// A new cell to insert.
#[derive(Debug, Clone)]
pub struct NewCell {
    /// Its id.
    pub id: String,
    /// `python` or `sql`.
    pub cell_type: String,
    /// Its code.
    pub code: String,
    /// The Python name a SQL cell's result is bound to (None for Python cells).
    pub result_name: Option<String>,
}

/// What a cell update changes; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default)]
pub struct CellEdit<'a> {
    /// New code.
    pub code: Option<&'a str>,
    /// New result name (SQL cells).
    pub result_name: Option<&'a str>,
}

/// Typed access to the notebook store.
#[derive(Clone)]
pub struct Store {
    pub(super) db: Db,
    /// The lease a room's writes are fenced by (None: unfenced, as on SQLite).
    pub(super) fence: Option<Fence>,
}

fn now() -> chrono::NaiveDateTime {
    Utc::now().naive_utc()
}

/// Bumps a notebook's revision inside the caller's transaction and returns the new one.
macro_rules! bump_revision {
    ($c:ident, $notebook_id:expr) => {
        diesel::update(notebooks::table.find($notebook_id))
            .set((
                notebooks::revision.eq(notebooks::revision + 1),
                notebooks::updated_at.eq(now()),
            ))
            .returning(notebooks::revision)
            .get_result::<i64>($c)
            .await
    };
}

/// Lock class of "notebooks of an owner": counting an owner's notebooks and inserting one
/// cannot be raced by a concurrent request.
const OWNER_LOCK_CLASS: i32 = 0x6e62_6f77;

/// Number of notebooks `$owner` owns, inside the caller's transaction.
macro_rules! owned_count {
    ($c:ident, $owner:expr) => {
        notebooks::table
            .filter(notebooks::owner_id.eq($owner))
            .count()
            .get_result::<i64>($c)
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
}

/// Loads a notebook row owned by `$owner` inside a transaction, or fails with NotebookNotFound.
macro_rules! owned_notebook {
    ($c:ident, $owner:expr, $notebook_id:expr) => {
        notebooks::table
            .find($notebook_id)
            .filter(notebooks::owner_id.eq($owner))
            .select(NotebookRow::as_select())
            .first::<NotebookRow>($c)
            .await
            .optional()?
            .ok_or(StoreError::NotebookNotFound)
    };
}

/// Loads one cell of a notebook inside a transaction, or fails with CellNotFound.
macro_rules! find_cell {
    ($c:ident, $notebook_id:expr, $cell_id:expr) => {
        cells::table
            .filter(cells::notebook_id.eq($notebook_id))
            .filter(cells::id.eq($cell_id))
            .select(CellRow::as_select())
            .first::<CellRow>($c)
            .await
            .optional()?
            .ok_or(StoreError::CellNotFound)
    };
}

impl Store {
    /// Wraps a pool.
    pub fn new(db: Db) -> Store {
        Store { db, fence: None }
    }

    /// This store with every notebook mutation fenced by `fence` (a room's own store).
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            db: self.db.clone(),
            fence: Some(fence),
        }
    }

    /// The fence of a room's store, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }

    /// The underlying pool.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Records a user; true when this is the first time the user is seen.
    /// `seed` is inserted in the same transaction for a new user (their demo notebook), unless
    /// they already own `max_notebooks` notebooks.
    pub async fn register_user(
        &self,
        owner: &str,
        max_notebooks: u64,
        seed: impl FnOnce() -> (NotebookRow, Vec<NewCell>) + Send,
    ) -> Result<bool, StoreError> {
        let mut conn = self.db.get().await?;
        let (notebook, new_cells) = seed();
        let rows = cell_rows(&notebook.id, new_cells, 0, notebook.revision);
        let created = db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    let inserted = diesel::insert_into(users::table)
                        .values(NewUser {
                            id: owner,
                            created_at: now(),
                        })
                        .on_conflict_do_nothing()
                        .execute(c)
                        .await?;
                    if inserted == 0 {
                        return Ok(false);
                    }
                    c.lock_key(OWNER_LOCK_CLASS, owner).await?;
                    if owned_count!(c, owner)? >= max_notebooks {
                        return Ok(true);
                    }
                    diesel::insert_into(notebooks::table)
                        .values(&notebook)
                        .execute(c)
                        .await?;
                    for row in &rows {
                        diesel::insert_into(cells::table)
                            .values(row)
                            .execute(c)
                            .await?;
                    }
                    Ok(true)
                }
                .scope_boxed()
            })
            .await
        })?;
        Ok(created)
    }

    /// Inserts a new notebook with `new_cells` in the same transaction, unless its owner
    /// already has `max_notebooks` ([`StoreError::NotebookLimit`]); concurrent creations
    /// cannot exceed the limit.
    pub async fn create_notebook(
        &self,
        row: NotebookRow,
        max_notebooks: u64,
        new_cells: Vec<NewCell>,
    ) -> Result<NotebookRow, StoreError> {
        let mut conn = self.db.get().await?;
        let new = &row;
        let rows = cell_rows(&row.id, new_cells, 0, row.revision);
        let rows = &rows;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.lock_key(OWNER_LOCK_CLASS, &new.owner_id).await?;
                    if owned_count!(c, &new.owner_id)? >= max_notebooks {
                        return Err(StoreError::NotebookLimit {
                            limit: max_notebooks,
                        });
                    }
                    diesel::insert_into(notebooks::table)
                        .values(new)
                        .execute(c)
                        .await?;
                    for cell in rows {
                        diesel::insert_into(cells::table)
                            .values(cell)
                            .execute(c)
                            .await?;
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await
        })?;
        Ok(row)
    }

    /// The notebooks a user owns, oldest first.
    pub async fn list_notebooks(&self, owner: &str) -> Result<Vec<NotebookRow>, StoreError> {
        let mut conn = self.db.get().await?;
        let rows = db_run!(conn, |c| {
            notebooks::table
                .filter(notebooks::owner_id.eq(owner))
                .order((notebooks::created_at.asc(), notebooks::id.asc()))
                .select(NotebookRow::as_select())
                .load::<NotebookRow>(c)
                .await
        })?;
        Ok(rows)
    }

    /// A notebook (if `owner` owns it) with its cells in order, read in one transaction.
    pub async fn get_notebook(
        &self,
        owner: &str,
        notebook_id: &str,
    ) -> Result<(NotebookRow, Vec<CellRow>), StoreError> {
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    let notebook = owned_notebook!(c, owner, notebook_id)?;
                    let cells = cells::table
                        .filter(cells::notebook_id.eq(notebook_id))
                        .order(cells::position.asc())
                        .select(CellRow::as_select())
                        .load::<CellRow>(c)
                        .await?;
                    Ok((notebook, cells))
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Renames a notebook; returns the new revision.
    pub async fn rename_notebook(
        &self,
        owner: &str,
        notebook_id: &str,
        name: &str,
    ) -> Result<i64, StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    diesel::update(notebooks::table.find(notebook_id))
                        .set(notebooks::name.eq(name))
                        .execute(c)
                        .await?;
                    Ok(bump_revision!(c, notebook_id)?)
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Sets (or clears) the notebook's PostgreSQL connection string; returns the new revision.
    pub async fn set_db_conn_string(
        &self,
        owner: &str,
        notebook_id: &str,
        conn_string: Option<&str>,
    ) -> Result<i64, StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    diesel::update(notebooks::table.find(notebook_id))
                        .set(notebooks::db_conn_string.eq(conn_string))
                        .execute(c)
                        .await?;
                    Ok(bump_revision!(c, notebook_id)?)
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Deletes a notebook and its cells.
    pub async fn delete_notebook(&self, owner: &str, notebook_id: &str) -> Result<(), StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    diesel::delete(cells::table.filter(cells::notebook_id.eq(notebook_id)))
                        .execute(c)
                        .await?;
                    diesel::delete(audit_log::table.filter(audit_log::notebook_id.eq(notebook_id)))
                        .execute(c)
                        .await?;
                    diesel::delete(notebooks::table.find(notebook_id))
                        .execute(c)
                        .await?;
                    // Its lease goes too: a deleted notebook's id never opens again.
                    diesel::delete(notebook_leases::table.find(notebook_id))
                        .execute(c)
                        .await?;
                    Ok(())
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Inserts a cell after `after_cell_id`, before `before_cell_id`, or at the end (the caller
    /// passes at most one of them); returns the row, its index and
    /// the notebook's new revision.
    pub async fn create_cell(
        &self,
        owner: &str,
        notebook_id: &str,
        cell: NewCell,
        after_cell_id: Option<&str>,
        before_cell_id: Option<&str>,
    ) -> Result<(CellRow, usize, i64), StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    let position: i32 = match (after_cell_id, before_cell_id) {
                        (_, Some(before)) => cells::table
                            .filter(cells::notebook_id.eq(notebook_id))
                            .filter(cells::id.eq(before))
                            .select(cells::position)
                            .first::<i32>(c)
                            .await
                            .optional()?
                            .ok_or(StoreError::BeforeCellNotFound)?,
                        (Some(after), None) => {
                            let after_pos = cells::table
                                .filter(cells::notebook_id.eq(notebook_id))
                                .filter(cells::id.eq(after))
                                .select(cells::position)
                                .first::<i32>(c)
                                .await
                                .optional()?
                                .ok_or(StoreError::AfterCellNotFound)?;
                            after_pos + 1
                        }
                        (None, None) => {
                            let count: i64 = cells::table
                                .filter(cells::notebook_id.eq(notebook_id))
                                .count()
                                .get_result(c)
                                .await?;
                            i32::try_from(count).unwrap_or(i32::MAX)
                        }
                    };
                    // Make room; positions stay dense (0..n) so position == index.
                    diesel::update(
                        cells::table
                            .filter(cells::notebook_id.eq(notebook_id))
                            .filter(cells::position.ge(position)),
                    )
                    .set(cells::position.eq(cells::position + 1))
                    .execute(c)
                    .await?;
                    let revision = bump_revision!(c, notebook_id)?;
                    let mut rows = cell_rows(notebook_id, vec![cell], position, revision);
                    let row = rows.pop().ok_or(StoreError::CellNotFound)?;
                    diesel::insert_into(cells::table)
                        .values(&row)
                        .execute(c)
                        .await?;
                    let index = usize::try_from(position).unwrap_or(0);
                    Ok((row, index, revision))
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Replaces a cell's code and/or its result name (a missing one is kept). With
    /// `expected_revision`, refuses (Conflict) when the cell changed after that notebook
    /// revision, so edits to other cells never conflict.
    /// Returns the updated row and the notebook's new revision.
    pub async fn update_cell(
        &self,
        owner: &str,
        notebook_id: &str,
        cell_id: &str,
        edit: CellEdit<'_>,
        expected_revision: Option<i64>,
    ) -> Result<(CellRow, i64), StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    let notebook = owned_notebook!(c, owner, notebook_id)?;
                    let row = find_cell!(c, notebook_id, cell_id)?;
                    if let Some(expected) = expected_revision {
                        if row.code_revision > expected || expected > notebook.revision {
                            return Err(StoreError::Conflict {
                                current: notebook.revision,
                            });
                        }
                    }
                    let revision = bump_revision!(c, notebook_id)?;
                    let code = edit.code.unwrap_or(&row.code);
                    let result_name = edit.result_name.or(row.result_name.as_deref());
                    diesel::update(cells::table.find(cell_id))
                        .set((
                            cells::code.eq(code),
                            cells::result_name.eq(result_name),
                            cells::code_revision.eq(revision),
                            cells::updated_at.eq(now()),
                        ))
                        .execute(c)
                        .await?;
                    let row = find_cell!(c, notebook_id, cell_id)?;
                    Ok((row, revision))
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Deletes a cell; returns the notebook's new revision.
    pub async fn delete_cell(
        &self,
        owner: &str,
        notebook_id: &str,
        cell_id: &str,
    ) -> Result<i64, StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    let row = find_cell!(c, notebook_id, cell_id)?;
                    diesel::delete(cells::table.find(cell_id))
                        .execute(c)
                        .await?;
                    diesel::update(
                        cells::table
                            .filter(cells::notebook_id.eq(notebook_id))
                            .filter(cells::position.gt(row.position)),
                    )
                    .set(cells::position.eq(cells::position - 1))
                    .execute(c)
                    .await?;
                    Ok(bump_revision!(c, notebook_id)?)
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Whether a notebook runs in lazy mode (false for a missing notebook: the caller has
    /// already checked it exists).
    pub async fn notebook_lazy(&self, notebook_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.db.get().await?;
        let lazy = db_run!(conn, |c| {
            notebooks::table
                .find(notebook_id)
                .select(notebooks::lazy)
                .first::<bool>(c)
                .await
                .optional()
        })?;
        Ok(lazy.unwrap_or(false))
    }

    /// Turns lazy mode on or off; returns the new revision.
    pub async fn set_lazy(
        &self,
        owner: &str,
        notebook_id: &str,
        lazy: bool,
    ) -> Result<i64, StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    diesel::update(notebooks::table.find(notebook_id))
                        .set(notebooks::lazy.eq(lazy))
                        .execute(c)
                        .await?;
                    Ok(bump_revision!(c, notebook_id)?)
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Moves a cell just before or after `target` (the caller passes exactly one side, and a
    /// target other than the cell); returns the cell's new index and the notebook's new
    /// revision. Positions stay dense (0..n).
    pub async fn move_cell(
        &self,
        owner: &str,
        notebook_id: &str,
        cell_id: &str,
        target: &str,
        after: bool,
    ) -> Result<(usize, i64), StoreError> {
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    owned_notebook!(c, owner, notebook_id)?;
                    let row = find_cell!(c, notebook_id, cell_id)?;
                    let target_pos = cells::table
                        .filter(cells::notebook_id.eq(notebook_id))
                        .filter(cells::id.eq(target))
                        .select(cells::position)
                        .first::<i32>(c)
                        .await
                        .optional()?
                        .ok_or(if after {
                            StoreError::AfterCellNotFound
                        } else {
                            StoreError::BeforeCellNotFound
                        })?;
                    // The index the target's slot has once the cell is out of the list.
                    let target_pos = if target_pos > row.position {
                        target_pos - 1
                    } else {
                        target_pos
                    };
                    let new_pos = if after { target_pos + 1 } else { target_pos };
                    if new_pos != row.position {
                        // Close the gap the cell leaves, open one where it lands.
                        diesel::update(
                            cells::table
                                .filter(cells::notebook_id.eq(notebook_id))
                                .filter(cells::position.gt(row.position)),
                        )
                        .set(cells::position.eq(cells::position - 1))
                        .execute(c)
                        .await?;
                        diesel::update(
                            cells::table
                                .filter(cells::notebook_id.eq(notebook_id))
                                .filter(cells::id.ne(cell_id))
                                .filter(cells::position.ge(new_pos)),
                        )
                        .set(cells::position.eq(cells::position + 1))
                        .execute(c)
                        .await?;
                        diesel::update(cells::table.find(cell_id))
                            .set(cells::position.eq(new_pos))
                            .execute(c)
                            .await?;
                    }
                    let revision = bump_revision!(c, notebook_id)?;
                    Ok((usize::try_from(new_pos).unwrap_or(0), revision))
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Saves several cells' run states in one transaction (a batch of a run's results).
    pub async fn save_run_states(
        &self,
        notebook_id: &str,
        states: Vec<(String, CellRunState)>,
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let fence = self.fence.as_ref();
        let mut conn = self.db.get().await?;
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.check_fence(fence).await?;
                    for (cell_id, state) in &states {
                        diesel::update(
                            cells::table
                                .filter(cells::id.eq(cell_id))
                                .filter(cells::notebook_id.eq(notebook_id)),
                        )
                        .set(state)
                        .execute(c)
                        .await?;
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await
        })
    }

    /// Inserts a notebook together with its cells in one transaction (an import), unless its
    /// owner already has `max_notebooks` ([`StoreError::NotebookLimit`]).
    pub async fn import_notebook(
        &self,
        row: NotebookRow,
        new_cells: Vec<NewCell>,
        max_notebooks: u64,
    ) -> Result<NotebookRow, StoreError> {
        let mut conn = self.db.get().await?;
        let rows = cell_rows(&row.id, new_cells, 0, row.revision);
        let (new, rows) = (&row, &rows);
        db_run!(conn, |c| {
            c.transaction::<_, StoreError, _>(|c| {
                async move {
                    c.lock_key(OWNER_LOCK_CLASS, &new.owner_id).await?;
                    if owned_count!(c, &new.owner_id)? >= max_notebooks {
                        return Err(StoreError::NotebookLimit {
                            limit: max_notebooks,
                        });
                    }
                    diesel::insert_into(notebooks::table)
                        .values(new)
                        .execute(c)
                        .await?;
                    for cell in rows {
                        diesel::insert_into(cells::table)
                            .values(cell)
                            .execute(c)
                            .await?;
                    }
                    Ok(())
                }
                .scope_boxed()
            })
            .await
        })?;
        Ok(row)
    }
}

fn cell_rows(
    notebook_id: &str,
    cells: Vec<NewCell>,
    first_position: i32,
    revision: i64,
) -> Vec<CellRow> {
    let at = now();
    cells
        .into_iter()
        .zip(first_position..)
        .map(|(cell, position)| CellRow {
            id: cell.id,
            notebook_id: notebook_id.to_string(),
            position,
            cell_type: cell.cell_type,
            code: cell.code,
            code_revision: revision,
            status: "idle".into(),
            stdout: String::new(),
            error: None,
            outputs: "[]".into(),
            created_at: at,
            updated_at: at,
            result_name: cell.result_name,
        })
        .collect()
}
