//! The room's side of co-editing cell text with Yjs.
//!
//! Each cell's text lives in a `yrs` document ([`CellDocs`]). A session's update is applied,
//! relayed to every session (with `seq`) and the merged text becomes the cell's live code at
//! once (re-analysed like a REST edit, so a run uses it); writing it to the database is
//! debounced, and anything unsaved is written before a REST edit, at shutdown, and before the
//! room may idle out.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::NotebookRoom;
use crate::collab::yjs::{self, CellDocs};
use crate::db::store::{CellEdit, Store};
use crate::room::messages::YjsUpdate;
use crate::room::outbox::{Outbox, Pushed};
use crate::room::Wake;

/// How long typing may go on before the merged text is written to the database.
const SAVE_AFTER: Duration = Duration::from_millis(300);

/// How long `cell_updated` for co-edited text may lag: typing yields one per pause, not one
/// per keystroke (Yjs clients already have the text; the rest is names and errors).
const ANNOUNCE_AFTER: Duration = Duration::from_millis(100);

/// A room's co-editing state.
#[derive(Default)]
pub struct Collab {
    /// The cells' documents.
    pub(super) docs: CellDocs,
    /// Cells whose live code is newer than the stored one.
    unsaved: HashSet<String>,
    save_scheduled: bool,
    /// Cells whose `cell_updated` is owed, in the order they changed.
    unannounced: Vec<String>,
    announce_scheduled: bool,
}

impl NotebookRoom {
    /// Queues every cell's full document for a joining session (no `seq`: only it gets them).
    pub(super) fn yjs_welcome(&mut self, outbox: &Outbox, wake: &Recipient<Wake>) {
        let mut events = Vec::with_capacity(self.state.cells.len());
        for cell in &self.state.cells {
            let state = self
                .collab
                .docs
                .get_or_create(&cell.id, &cell.code)
                .full_state();
            events.push(Arc::new(yjs::event(&cell.id, &state).to_string()));
        }
        if outbox.push_welcome(events) == Pushed::Wake {
            wake.do_send(Wake);
        }
    }

    /// A new cell: every session gets its document.
    pub(super) fn yjs_cell_created(&mut self, cell_id: &str) {
        let Some(cell) = self.state.cell(cell_id) else {
            return;
        };
        let state = self
            .collab
            .docs
            .get_or_create(cell_id, &cell.code)
            .full_state();
        self.broadcast(yjs::event(cell_id, &state));
    }

    /// A deleted cell's document goes with it.
    pub(super) fn yjs_cell_deleted(&mut self, cell_id: &str) {
        self.collab.docs.remove(cell_id);
        self.collab.unsaved.remove(cell_id);
    }

    /// The code was replaced by a REST edit: the document follows and sessions get the change.
    pub(super) fn yjs_code_replaced(&mut self, cell_id: &str, code: &str) {
        if let Some(update) = self.collab.docs.get_or_create(cell_id, code).replace(code) {
            self.broadcast(yjs::event(cell_id, &update));
        }
    }

    /// Sends the owed `cell_updated` events. Every other broadcast calls this first, so no
    /// client sees a later event (a run's status, a move) before the edit it follows.
    pub(super) fn announce_co_edits(&mut self) {
        for cell_id in std::mem::take(&mut self.collab.unannounced) {
            self.broadcast_cell_updated(&cell_id);
        }
    }

    /// Whether a `cell_updated` is owed.
    pub(super) fn has_unannounced(&self) -> bool {
        !self.collab.unannounced.is_empty()
    }

    /// Takes the cells whose live code is not stored yet, with that code.
    pub(super) fn take_unsaved_code(&mut self) -> Vec<(String, String)> {
        let ids: Vec<String> = self.collab.unsaved.drain().collect();
        ids.into_iter()
            .filter_map(|id| self.state.cell(&id).map(|c| (id, c.code.clone())))
            .collect()
    }

    /// Whether some co-edited code still waits to be stored.
    pub(super) fn has_unsaved_code(&self) -> bool {
        !self.collab.unsaved.is_empty()
    }

    /// Makes `code` (the merged text) the cell's live code, the same way a REST edit does.
    fn code_from_yjs(&mut self, cell_id: &str, code: String, ctx: &mut Context<Self>) {
        // The edited cell and what read it before the edit turn stale (as for a REST edit).
        let marks = self
            .state
            .cell(cell_id)
            .filter(|c| c.code != code)
            .map(|_| {
                let mut marks = vec![cell_id.to_string()];
                marks.extend(super::super::staleness::descendants(
                    &self.state,
                    &marks.clone(),
                ));
                marks
            });
        let Some(cell) = self.state.cell_mut(cell_id) else {
            return;
        };
        let old_writes = cell.names.writes.clone();
        let result_name = cell.result_name.clone();
        let names_changed = cell.set_code(code, result_name);
        let stale = self.state.names_only_defined_by(cell_id, &old_writes);
        self.forget(stale);
        self.code_changed(cell_id, names_changed);
        self.mark_edited_stale(marks);
        if !self.collab.unannounced.iter().any(|id| id == cell_id) {
            self.collab.unannounced.push(cell_id.to_string());
        }
        if !self.collab.announce_scheduled {
            self.collab.announce_scheduled = true;
            ctx.run_later(ANNOUNCE_AFTER, |room, _| {
                room.collab.announce_scheduled = false;
                room.announce_co_edits();
            });
        }
        self.collab.unsaved.insert(cell_id.to_string());
        if !self.collab.save_scheduled {
            self.collab.save_scheduled = true;
            ctx.run_later(SAVE_AFTER, |room, ctx| room.save_unsaved_code(ctx));
        }
    }

    /// Writes the unsaved code; the room waits for it, so writes never overtake each other.
    fn save_unsaved_code(&mut self, ctx: &mut Context<Self>) {
        self.collab.save_scheduled = false;
        let codes = self.take_unsaved_code();
        if codes.is_empty() {
            return;
        }
        let store = self.store.clone();
        let (owner, id) = (self.state.owner_id.clone(), self.state.id.clone());
        ctx.wait(
            async move { save_codes(&store, &owner, &id, codes).await }
                .into_actor(self)
                .map(|revision, room, _| {
                    if let Some(revision) = revision {
                        room.state.revision = room.state.revision.max(revision);
                    }
                }),
        );
    }
}

/// Stores each cell's code; answers the notebook's last revision, if any write succeeded.
pub(super) async fn save_codes(
    store: &Store,
    owner: &str,
    notebook_id: &str,
    codes: Vec<(String, String)>,
) -> Option<i64> {
    let mut revision = None;
    for (cell_id, code) in codes {
        let edit = CellEdit {
            code: Some(&code),
            result_name: None,
        };
        match store
            .update_cell(owner, notebook_id, &cell_id, edit, None)
            .await
        {
            Ok((_, r)) => revision = Some(r),
            // Deleted meanwhile: nothing left to save.
            Err(e) => log::warn!("saving co-edited cell {cell_id} of {notebook_id} failed: {e}"),
        }
    }
    revision
}

impl Handler<YjsUpdate> for NotebookRoom {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: YjsUpdate, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        let Some(cell) = self.state.cell(&msg.cell_id) else {
            return Err("Cell not found".into());
        };
        let bytes = yjs::decode_wire(&msg.update).map_err(|e| e.to_string())?;
        let text = self
            .collab
            .docs
            .get_or_create(&cell.id, &cell.code)
            .apply(&bytes)
            .map_err(|e| e.to_string())?;
        let changed = text != cell.code;
        // Relayed as received: it is exactly what the room applied.
        self.broadcast(serde_json::json!({
            "type": "yjs", "cellId": msg.cell_id, "update": msg.update,
        }));
        if changed {
            self.code_from_yjs(&msg.cell_id, text, ctx);
        }
        Ok(())
    }
}
