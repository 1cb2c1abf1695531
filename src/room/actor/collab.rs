//! The room's side of collaboration: presence broadcasts, focus, and member changes reaching
//! open sockets (a removed member's sockets close, a changed role applies at once).

use actix::prelude::*;

use super::NotebookRoom;
use crate::collab::Role;
use crate::error::ApiError;
use crate::room::outbox::CloseOrder;
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

impl Handler<Focus> for NotebookRoom {
    type Result = Result<(), ApiError>;

    fn handle(&mut self, msg: Focus, _: &mut Self::Context) -> Self::Result {
        if let Some(cell_id) = &msg.cell_id {
            if self.state.cell(cell_id).is_none() {
                return Err(ApiError::NotFound("Cell not found".into()));
            }
        }
        if self.presence.focus(msg.session_id, msg.cell_id) {
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
