//! Messages a notebook room answers: REST mutations, runs, and executor events.

use actix::Message;
use serde_json::Value;

use crate::error::ApiError;
use crate::notebook::CellType;

/// How a cell's execution ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Ran without error.
    Success,
    /// Raised an error (traceback or SQL error text).
    Error(String),
    /// Stopped by an interrupt.
    Interrupted,
    /// The kernel died running it (the text says why); the executor started a new one.
    Died(String),
    /// Not run: a parent failed in the same plan (the kernel skipped it).
    Blocked,
    /// Not run: its plan was cancelled (an edit re-plans it) or cut short.
    Cancelled,
}

/// The end of one cell's execution, with outputs produced at the end (SQL tables).
#[derive(Debug, Clone)]
pub struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// Outputs delivered with the result.
    pub outputs: Vec<Value>,
}

impl Finished {
    /// A success without extra outputs.
    pub fn success() -> Finished {
        Finished {
            outcome: Outcome::Success,
            outputs: Vec::new(),
        }
    }

    /// A success carrying outputs.
    pub fn with_outputs(outputs: Vec<Value>) -> Finished {
        Finished {
            outcome: Outcome::Success,
            outputs,
        }
    }

    /// An error.
    pub fn error(message: impl Into<String>) -> Finished {
        Finished {
            outcome: Outcome::Error(message.into()),
            outputs: Vec::new(),
        }
    }

    /// Stopped by an interrupt.
    pub fn interrupted() -> Finished {
        Finished {
            outcome: Outcome::Interrupted,
            outputs: Vec::new(),
        }
    }

    /// Not run, for `outcome` (blocked or cancelled).
    pub fn not_run(outcome: Outcome) -> Finished {
        Finished {
            outcome,
            outputs: Vec::new(),
        }
    }

    /// The kernel died.
    pub fn died(message: impl Into<String>) -> Finished {
        Finished {
            outcome: Outcome::Died(message.into()),
            outputs: Vec::new(),
        }
    }
}

/// What happened in the executor.
#[derive(Debug, Clone)]
pub enum ExecEventKind {
    /// A chunk of stdout/stderr.
    Stream {
        /// `stdout` or `stderr`.
        name: String,
        /// The text.
        text: String,
    },
    /// A rich output.
    Output(Value),
    /// The cell waits before it can run (`Some(reason)`, shown as `queued`), or stopped
    /// waiting and runs now (`None`).
    Waiting(Option<String>),
    /// The cell, part of a plan sent to the kernel in one message, begins running.
    Started,
    /// The cell finished.
    Finished(Finished),
}

/// An executor event for the cell run identified by `token`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ExecEvent {
    /// The run step this belongs to.
    pub token: u64,
    /// The cell.
    pub cell_id: String,
    /// What happened.
    pub kind: ExecEventKind,
}

/// Executor events that arrived together, handled in order in one go (a plan's small
/// events: starts, ends, short text).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ExecEvents(pub Vec<ExecEvent>);

/// The notebook as JSON (GET).
#[derive(Message)]
#[rtype(result = "Result<Value, ApiError>")]
pub struct Snapshot;

/// Rename the notebook.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct Rename {
    /// The new name (validated).
    pub name: String,
}

/// Set or clear the SQL connection string.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct SetDb {
    /// The validated connection string, or None to clear.
    pub conn_string: Option<String>,
}

/// Delete the notebook; the room stops.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct DeleteNotebook;

/// Add a cell; answers its id.
#[derive(Message)]
#[rtype(result = "Result<String, ApiError>")]
pub struct CreateCell {
    /// Python or SQL.
    pub cell_type: CellType,
    /// Initial code.
    pub code: String,
    /// Insert after this cell (None = at the end).
    pub after_cell_id: Option<String>,
    /// Insert before this cell instead.
    pub before_cell_id: Option<String>,
}

/// Change a cell's code; answers the new revision.
#[derive(Message)]
#[rtype(result = "Result<i64, ApiError>")]
pub struct UpdateCell {
    /// The cell.
    pub cell_id: String,
    /// New code (None keeps it).
    pub code: Option<String>,
    /// New result name of a SQL cell (None keeps it); already validated.
    pub result_name: Option<String>,
    /// Refuse if the cell changed after this revision.
    pub expected_revision: Option<i64>,
}

/// A session's Yjs v1 update to a cell's text (base64, as on the wire); refused with a reason.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct YjsUpdate {
    /// The cell.
    pub cell_id: String,
    /// The update, base64.
    pub update: String,
}

/// Delete a cell; answers the new revision.
#[derive(Message)]
#[rtype(result = "Result<i64, ApiError>")]
pub struct DeleteCell {
    /// The cell.
    pub cell_id: String,
}

/// Move a cell before or after another; answers the new revision.
#[derive(Message)]
#[rtype(result = "Result<i64, ApiError>")]
pub struct MoveCell {
    /// The cell to move.
    pub cell_id: String,
    /// The cell it lands next to (never `cell_id` itself).
    pub target_id: String,
    /// Lands after the target (true) or before it (false).
    pub after: bool,
}

/// Run a cell and everything downstream of it.
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct RunCell {
    /// The cell.
    pub cell_id: String,
}

/// Interrupt the running cell; the rest of the run is dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Interrupt;

/// Restart the kernel; every cell's values are gone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// The kernel quota ledger picked this room's idle kernel to be stopped for another run.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopKernelForQuota {
    /// The slot picked; ignored if the room no longer holds it.
    pub ticket: u64,
}

/// Sends the wake-ups the room's last handled messages collected (see `NotebookRoom::broadcast`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushWakes;

/// Periodic check whether the room should stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IdleCheck;

/// A WebSocket session joins the room; answers its id and the current `seq`.
#[derive(Message)]
#[rtype(result = "Joined")]
pub struct Join {
    /// Where the room queues events for the session.
    pub outbox: std::sync::Arc<super::outbox::Outbox>,
    /// How the room wakes the session when its outbox fills.
    pub wake: actix::Recipient<super::Wake>,
    /// Who the session is signed in as.
    pub user_id: String,
    /// Their display name from the token, for presence.
    pub name: Option<String>,
    /// Their role, shared with the session (the room lowers or raises it on member changes).
    pub role: std::sync::Arc<crate::collab::SessionRole>,
}

/// The answer to [`Join`].
#[derive(Debug, Clone, Copy, actix::MessageResponse)]
pub struct Joined {
    /// The session's id in the room.
    pub session_id: u64,
    /// The room's current broadcast sequence number.
    pub seq: u64,
}

/// A session leaves.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The id [`Join`] answered.
    pub session_id: u64,
}

/// Server shutdown: close sessions (1001), flush pending writes, stop the kernel, stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Run every cell, or only the stale ones (with whatever must run with them).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct RunAll {
    /// Only the stale cells.
    pub only_stale: bool,
}

/// Turn lazy mode on or off (persisted).
#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
pub struct SetLazy {
    /// The new setting.
    pub lazy: bool,
}
