//! The room's side of collaboration: presence broadcasts, focus, and member changes reaching
//! open sockets (a removed member's sockets close, a changed role applies at once).

use actix::prelude::*;

use std::sync::Arc;

use super::NotebookRoom;
use crate::collab::cursor::{self, CursorOwner, Selection};
use crate::collab::Role;
use crate::error::ApiError;
use crate::room::outbox::{max_events, CloseOrder, Pushed};
use crate::room::Wake;

/// Close code for a socket whose user lost access (policy violation, like a refused join).
pub const ACCESS_REMOVED_CODE: u16 = 1008;

/// A session moved into a cell (`Some`) or out of every cell (`None`).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Focus {
    /// The session's id in the room.
    pub session_id: u64,
    /// The cell, which must exist.
    pub cell_id: Option<String>,
}

/// A session's selection moved (`Some`) or it left every cell (`None`).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct MoveCursor {
    /// The session's id in the room.
    pub session_id: u64,
    /// The cell (which must exist) and the checked selection in it.
    pub at: Option<(String, Selection)>,
}

/// A user's membership changed: `Some(role)` is their new role, `None` means removed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MemberChanged {
    /// The user.
    pub user_id: String,
    /// The new role, or None when removed.
    pub role: Option<Role>,
}

impl NotebookRoom {
    /// Broadcasts who is here and where.
    pub(super) fn broadcast_presence(&mut self) {
        let message = self.presence.message();
        self.broadcast(message);
    }
}

impl NotebookRoom {
    /// Relays a session's cursor to every other session. Cursors are ephemeral: no `seq`,
    /// nothing stored, and a tab that joins later only sees the next move.
    pub(super) fn relay_cursor(&mut self, session_id: u64, at: Option<(&str, &Selection)>) {
        let Some((user_id, name)) = self.presence.identity(session_id) else {
            return;
        };
        let owner = CursorOwner {
            session_id,
            user_id,
            name,
        };
        let message = Arc::new(cursor::event(&owner, at).to_string());
        let limit = max_events(self.state.cells.len());
        self.sessions.retain(|id, session| {
            if *id == session_id {
                return true;
            }
            match session.outbox.push(message.clone(), limit) {
                Pushed::Wake => {
                    session.wake.do_send(Wake);
                    true
                }
                Pushed::Queued => true,
                Pushed::Dropped => {
                    session.wake.do_send(Wake);
                    false
                }
            }
        });
    }
}

impl NotebookRoom {
    /// A session left its cell (or the room): others stop showing its cursor.
    pub(super) fn hide_cursor(&mut self, session_id: u64) {
        if self.presence.note_cursor(session_id, false) {
            self.relay_cursor(session_id, None);
        }
    }
}

impl Handler<MoveCursor> for NotebookRoom {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: MoveCursor, _: &mut Self::Context) -> Self::Result {
        if let Some((cell_id, _)) = &msg.at {
            if self.state.cell(cell_id).is_none() {
                return Err(ApiError::NotFound("Cell not found".into()));
            }
        }
        let at = msg.at.as_ref().map(|(cell, sel)| (cell.as_str(), sel));
        let was_shown = self.presence.note_cursor(msg.session_id, at.is_some());
        if at.is_some() || was_shown {
            self.relay_cursor(msg.session_id, at);
        }
        Ok(())
    }
}

impl Handler<Focus> for NotebookRoom {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: Focus, _: &mut Self::Context) -> Self::Result {
        if let Some(cell_id) = &msg.cell_id {
            if self.state.cell(cell_id).is_none() {
                return Err(ApiError::NotFound("Cell not found".into()));
            }
        }
        if self.presence.focus(msg.session_id, msg.cell_id) {
            self.hide_cursor(msg.session_id);
            self.broadcast_presence();
        }
        Ok(())
    }
}

impl Handler<MemberChanged> for NotebookRoom {
    type Result = ();

    fn handle(&mut self, msg: MemberChanged, _: &mut Self::Context) {
        let Some(role) = msg.role else {
            let removed: Vec<u64> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.user_id == msg.user_id)
                .map(|(id, _)| *id)
                .collect();
            for id in &removed {
                if let Some(session) = self.sessions.remove(id) {
                    let order = CloseOrder {
                        code: ACCESS_REMOVED_CODE,
                        reason: "your access to this notebook was removed".into(),
                    };
                    if session.outbox.close(order) {
                        session.wake.do_send(Wake);
                    }
                }
                self.presence.leave(*id);
            }
            if !removed.is_empty() {
                log::info!(
                    "closed {} socket(s) of removed member {} on notebook {}",
                    removed.len(),
                    msg.user_id,
                    self.state.id
                );
                self.broadcast_presence();
            }
            return;
        };
        for session in self.sessions.values() {
            if session.user_id == msg.user_id {
                session.role.set(role);
            }
        }
    }
}
