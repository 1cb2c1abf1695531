//! The room's side of completion, inspection and the variables table.
//!
//! Completion and inspection do not go through the room's run queue: the room only hands out
//! the kernel's [`Introspector`] (starting a kernel within quota when none runs), and the
//! handler asks the kernel directly, so a running cell does not delay the answer.
//! After each cell run the room asks the kernel about the names that cell defines and keeps
//! the answers in its [`Variables`] table, broadcast as `variables {variables}`.

use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::NotebookRoom;
use crate::error::ApiError;
use crate::kernel::{IntrospectRequest, Introspector};
use crate::room::executor::{ExecutorHandle, Job};

/// How long the room waits for a cell's variable summaries before keeping the old ones.
const VARIABLES_TIMEOUT: Duration = Duration::from_secs(5);

/// How a caller reaches the notebook's kernel for introspection.
pub enum KernelAccess {
    /// A kernel runs.
    Ready(Introspector),
    /// A kernel is being started; `None` arrives if it cannot start now.
    Starting(oneshot::Receiver<Option<Introspector>>),
}

/// Asks for the kernel's introspector, starting a kernel (within quota) when none runs.
#[derive(Message)]
#[rtype(result = "Result<KernelAccess, ApiError>")]
pub struct Introspection;

/// The variables table as `{"variables": [...]}`.
#[derive(Message)]
#[rtype(result = "Result<Value, ApiError>")]
pub struct GetVariables;

impl NotebookRoom {
    /// The variables table with each name's defining cell as the graph has it now.
    fn variables_json(&self) -> Value {
        let cells = &self.state.cells;
        self.variables.to_json(|name| {
            cells
                .iter()
                .find(|c| c.names.writes.iter().any(|w| w == name))
                .map(|c| c.id.clone())
        })
    }

    pub(super) fn broadcast_variables(&mut self) {
        let variables = self.variables_json();
        self.broadcast(json!({"type": "variables", "variables": variables}));
    }

    /// Asks the kernel, without waiting, about the names `cell_id` defines (it just ran);
    /// while an earlier request is answered, cells that ran meanwhile wait for the next one.
    pub(super) fn refresh_variables(&mut self, cell_id: &str, ctx: &mut Context<Self>) {
        // During a run the cells are only noted: one refresh (and one broadcast of the table)
        // when the run ends, so per-cell work does not grow with the notebook.
        if self.variables.ran(cell_id) && !self.run.active() {
            self.send_variables_request(ctx);
        }
    }

    pub(super) fn send_variables_request(&mut self, ctx: &mut Context<Self>) {
        let introspector = self
            .executor
            .as_ref()
            .and_then(ExecutorHandle::introspector);
        let Some((generation, cells)) = self.variables.start_refresh() else {
            return;
        };
        let mut names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in &cells {
            for name in self
                .state
                .cell(id)
                .map(|c| &c.names.writes[..])
                .unwrap_or(&[])
            {
                if seen.insert(name.as_str()) {
                    names.push(name.clone());
                }
            }
        }
        let Some(introspector) = introspector.filter(|_| !names.is_empty()) else {
            self.variables.refresh_ended();
            return;
        };
        let request = IntrospectRequest::Variables { names };
        ctx.spawn(
            async move { introspector.request(&request, VARIABLES_TIMEOUT).await }
                .into_actor(self)
                .map(move |answer, room, ctx| {
                    room.variables.refresh_ended();
                    match answer {
                        Ok(answer) => {
                            // Only names each cell still defines (it may have changed).
                            let asked: Vec<(&str, Vec<String>)> = cells
                                .iter()
                                .map(|id| {
                                    let names = room
                                        .state
                                        .cell(id)
                                        .map(|c| c.names.writes.clone())
                                        .unwrap_or_default();
                                    (id.as_str(), names)
                                })
                                .collect();
                            let changed = room.variables.apply_all(&asked, generation, &answer);
                            if changed {
                                room.broadcast_variables();
                            }
                        }
                        Err(e) => log::debug!("variables of {} cells: {e}", cells.len()),
                    }
                    room.send_variables_request(ctx);
                }),
        );
    }

    /// Drops names removed from the kernel from the table (and tells the sessions).
    pub(super) fn forget_variables(&mut self, names: &[String]) {
        if self.variables.forget(names) {
            self.broadcast_variables();
        }
    }

    /// Empties the table: the kernel's values are gone.
    pub(super) fn clear_variables(&mut self) {
        if self.variables.clear() {
            self.broadcast_variables();
        }
    }
}

impl Handler<Introspection> for NotebookRoom {
    type Result = Result<KernelAccess, ApiError>;

    fn handle(&mut self, _: Introspection, ctx: &mut Self::Context) -> Self::Result {
        self.touch();
        if let Some(introspector) = self
            .executor
            .as_ref()
            .and_then(ExecutorHandle::introspector)
        {
            return Ok(KernelAccess::Ready(introspector));
        }
        self.claim_kernel(true, ctx)?;
        if !self.run.active() {
            // Claimed like a run's kernel, but nothing runs: it may be stopped for quota.
            if let Some(ticket) = self.slot {
                self.quota.finish(ticket);
            }
        }
        let (reply, starting) = oneshot::channel();
        self.executor(ctx).send(Job::StartForIntrospection(reply));
        Ok(KernelAccess::Starting(starting))
    }
}

impl Handler<GetVariables> for NotebookRoom {
    type Result = Result<Value, ApiError>;

    fn handle(&mut self, _: GetVariables, _: &mut Self::Context) -> Self::Result {
        self.touch();
        Ok(json!({ "variables": self.variables_json() }))
    }
}
