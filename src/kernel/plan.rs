//! Plans: the cells of a run shipped to the kernel in one message and run back to back, so a
//! chain of cells costs no server round trip per cell.
//!
//! The driver reports each step as `started`, its streams and outputs, then `done` (ok, error,
//! interrupted, or not run: `blocked` when a parent failed in the same plan, `cancelled` after
//! an interrupt or a [`PlanCanceller::cancel`]). Every step gets exactly one
//! [`PlanEvent::Done`], also when the kernel dies mid-plan.

use std::sync::Weak;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::caps::CellBudget;
use super::protocol::{Command, DoneStatus, DriverMsg, PlanStepWire};
use super::{ExecResult, Kernel, Output};

/// One cell of a plan: its code and the earlier steps (indices) it reads from.
#[derive(Debug, Clone)]
pub struct PlanCell<'a> {
    /// The code.
    pub code: &'a str,
    /// Indices of earlier steps of the same plan it depends on.
    pub parents: Vec<usize>,
}

/// How a plan step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// It ran, with this result.
    Ran(ExecResult),
    /// Not run: a parent failed, was blocked or was interrupted in this plan.
    Blocked,
    /// Not run: the plan was interrupted, cancelled, or the kernel died.
    Cancelled,
}

/// Something a plan step did, by step index.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanEvent {
    /// The step began running.
    Started(usize),
    /// A chunk of `stdout`/`stderr` text (within the cell's caps).
    Stream {
        /// Step index.
        step: usize,
        /// `"stdout"` or `"stderr"`.
        name: String,
        /// The text.
        text: String,
    },
    /// A rich output (within the cell's caps).
    Output {
        /// Step index.
        step: usize,
        /// The output.
        output: Output,
    },
    /// The step ended (or was skipped).
    Done {
        /// Step index.
        step: usize,
        /// How.
        result: StepResult,
    },
}

/// Cancels the steps of a running plan that have not started; usable while it runs.
#[derive(Clone, Debug)]
pub struct PlanCanceller {
    writer: Weak<tokio::sync::Mutex<tokio::net::unix::pipe::Sender>>,
    id: u64,
}

impl PlanCanceller {
    /// Asks the driver to skip the plan's remaining steps (the running one finishes).
    pub fn cancel(&self) {
        let Some(writer) = self.writer.upgrade() else {
            return;
        };
        let Ok(line) = (Command::CancelPlan { id: self.id }).to_line() else {
            return;
        };
        // Written whole in a task of its own: the caller is the room, which never waits.
        tokio::spawn(async move {
            if let Err(e) = writer.lock().await.write_all(&line).await {
                log::debug!("plan cancel not written: {e}");
            }
        });
    }
}

impl Kernel {
    /// Reserves a plan id and the handle that cancels that plan.
    pub fn plan_canceller(&mut self) -> PlanCanceller {
        let id = self.new_id();
        PlanCanceller {
            writer: self
                .cmd_tx
                .as_ref()
                .map(std::sync::Arc::downgrade)
                .unwrap_or_default(),
            id,
        }
    }

    /// Runs `cells` as plan `canceller`'s id, streaming [`PlanEvent`]s to `events`; returns
    /// when every step has its `Done`.
    pub async fn execute_plan(
        &mut self,
        canceller: &PlanCanceller,
        cells: &[PlanCell<'_>],
        events: mpsc::UnboundedSender<PlanEvent>,
    ) {
        let _busy = crate::metrics::KernelBusy::new(&self.gauge);
        let mut ids = Vec::with_capacity(cells.len());
        for _ in cells {
            ids.push(self.new_id());
        }
        let first = ids.first().copied().unwrap_or(0);
        let steps: Vec<PlanStepWire<'_>> = cells
            .iter()
            .zip(&ids)
            .map(|(cell, &id)| PlanStepWire {
                id,
                code: cell.code,
                parents: cell
                    .parents
                    .iter()
                    .filter_map(|&p| ids.get(p).copied())
                    .collect(),
            })
            .collect();
        // The step an id names, if it belongs to this plan.
        let step_of = |id: Option<u64>| {
            id.and_then(|id| id.checked_sub(first))
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < cells.len())
        };
        let mut next_done = 0;
        let mut budget = CellBudget::default();
        let sent = match &self.dead {
            Some(reason) => Err(reason.clone()),
            None => {
                self.send(&Command::Plan {
                    id: canceller.id,
                    steps: &steps,
                })
                .await
            }
        };
        let died = match sent {
            Err(reason) => Some(reason),
            Ok(()) => loop {
                if next_done == cells.len() {
                    break None;
                }
                let (msg, line_bytes) = match self.next_sized().await {
                    Ok(sized) => sized,
                    Err(reason) => break Some(reason),
                };
                match msg {
                    DriverMsg::Started { id } if step_of(id) == Some(next_done) => {
                        budget = CellBudget::default();
                        let _ = events.send(PlanEvent::Started(next_done));
                    }
                    DriverMsg::Stream { id, name, text } if step_of(id) == Some(next_done) => {
                        if let Some(text) = budget.admit_stream(text) {
                            let _ = events.send(PlanEvent::Stream {
                                step: next_done,
                                name,
                                text,
                            });
                        }
                    }
                    DriverMsg::Output { id, output } if step_of(id) == Some(next_done) => {
                        if let Some(output) = budget.admit_output(output, line_bytes) {
                            let _ = events.send(PlanEvent::Output {
                                step: next_done,
                                output,
                            });
                        }
                    }
                    DriverMsg::Dropped { id, bytes } if step_of(id) == Some(next_done) => {
                        budget.note_dropped_by_kernel(bytes.unwrap_or(0))
                    }
                    DriverMsg::Done { id, status, error } if step_of(id) == Some(next_done) => {
                        let result = match status {
                            DoneStatus::Ok => StepResult::Ran(ExecResult::Ok),
                            DoneStatus::Error => {
                                StepResult::Ran(ExecResult::Error(self.annotate_error(error)))
                            }
                            DoneStatus::Interrupted => StepResult::Ran(ExecResult::Interrupted),
                            DoneStatus::Blocked => StepResult::Blocked,
                            DoneStatus::Cancelled => StepResult::Cancelled,
                        };
                        if let Some(marker) = budget.marker() {
                            let _ = events.send(PlanEvent::Output {
                                step: next_done,
                                output: marker,
                            });
                        }
                        budget = CellBudget::default();
                        let _ = events.send(PlanEvent::Done {
                            step: next_done,
                            result,
                        });
                        next_done += 1;
                    }
                    other => log::debug!("kernel {}: ignoring stale message {other:?}", self.pid),
                }
            },
        };
        if let Some(reason) = died {
            // The step that was running died with the kernel; the rest never ran.
            for step in next_done..cells.len() {
                let result = if step == next_done {
                    StepResult::Ran(ExecResult::Died(reason.clone()))
                } else {
                    StepResult::Cancelled
                };
                let _ = events.send(PlanEvent::Done { step, result });
            }
        }
    }
}
