//! The room's side of stale cells: marking them, lazy mode, and running all or the stale ones.

use actix::prelude::*;
use serde_json::json;

use super::NotebookRoom;
use crate::db::models::CellRow;
use crate::error::ApiError;
use crate::notebook::CellStatus;
use crate::room::messages::{RunAll, SetLazy};
use crate::room::staleness;

impl NotebookRoom {
    /// Marks the cells that took part in a run stale (persisted and broadcast); others are
    /// left as they are.
    pub(super) fn mark_stale(&mut self, ids: &[String]) {
        for id in ids {
            if self.state.cell(id).is_some_and(staleness::can_go_stale) {
                self.set_status(id, CellStatus::Stale);
                self.persist_cell(id);
            }
        }
    }

    /// Settles a cell whose values are out of date and that will not run now: stale if it
    /// had run, idle otherwise.
    pub(super) fn out_of_date(&mut self, id: &str) {
        let Some(cell) = self.state.cell(id) else {
            return;
        };
        let settled = if cell.has_run && staleness::executable(cell.cell_type) {
            CellStatus::Stale
        } else {
            CellStatus::Idle
        };
        if cell.status != settled {
            self.set_status(id, settled);
            self.persist_cell(id);
        }
    }

    /// Settles the cells still shown queued that the next run leaves out (queued for a plan
    /// that changed meanwhile).
    pub(super) fn unqueue_except(&mut self, order: &[String]) {
        let left: Vec<String> = self
            .state
            .cells
            .iter()
            .filter(|c| c.status == CellStatus::Queued && !order.contains(&c.id))
            .map(|c| c.id.clone())
            .collect();
        for id in left {
            self.out_of_date(&id);
        }
    }

    /// Before an edit is applied: if it changes the code or result name of a cell, the cell
    /// and its current descendants (which read its old names) are to be marked stale.
    pub(super) fn edit_marks(&self, row: &CellRow) -> Option<Vec<String>> {
        let cell = self.state.cell(&row.id)?;
        if cell.code == row.code && cell.result_name == row.result_name {
            return None;
        }
        let mut marks = vec![row.id.clone()];
        marks.extend(staleness::descendants(&self.state, &marks.clone()));
        Some(marks)
    }

    /// After an edit is applied (graph rebuilt): marks the cells from [`Self::edit_marks`]
    /// and the edited cell's new descendants stale.
    pub(super) fn mark_edited_stale(&mut self, marks: Option<Vec<String>>) {
        let Some(mut marks) = marks else {
            return;
        };
        if let Some(edited) = marks.first().cloned() {
            marks.extend(staleness::descendants(&self.state, &[edited]));
        }
        self.mark_stale(&marks);
    }
}

impl Handler<RunAll> for NotebookRoom {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: RunAll, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let targets = if msg.only_stale {
            staleness::stale_cells(&self.state)
        } else {
            self.state
                .cells
                .iter()
                .filter(|c| staleness::executable(c.cell_type))
                .map(|c| c.id.clone())
                .collect()
        };
        if targets.is_empty() {
            return Ok(());
        }
        self.request_run(targets, ctx)
    }
}

impl Handler<SetLazy> for NotebookRoom {
    type Result = AtomicResponse<Self, Result<(), ApiError>>;

    fn handle(&mut self, msg: SetLazy, _: &mut Self::Context) -> Self::Result {
        self.touch();
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        let lazy = msg.lazy;
        AtomicResponse::new(Box::pin(
            async move {
                store
                    .set_lazy(&owner, &id, lazy)
                    .await
                    .map_err(ApiError::from)
            }
            .into_actor(self)
            .map(move |result, room, _| {
                room.state.revision = result?;
                room.state.lazy = lazy;
                let name = room.state.name.clone();
                room.broadcast(json!({"type": "notebook_updated", "name": name, "lazy": lazy}));
                Ok(())
            }),
        ))
    }
}
