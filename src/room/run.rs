//! Bookkeeping of the run in progress: what is left, what failed, what waits.

use std::collections::{HashSet, VecDeque};

/// The run a room is executing, step by step.
#[derive(Debug, Default)]
pub struct RunState {
    /// Cells still to run, in order.
    pub plan: VecDeque<String>,
    /// Cells that failed or were blocked in this run (their descendants are blocked).
    pub failed: HashSet<String>,
    /// The step executing now: (token, cell id).
    pub current: Option<(u64, String)>,
    /// The code and result name the current step runs, to tell whether the cell was edited
    /// while it ran (its results then describe older code: stale).
    pub current_source: Option<(String, Option<String>)>,
    /// Run requests that arrived mid-run, coalesced into the next run.
    pub next_roots: Vec<String>,
    /// A kernel restart was requested while a cell ran.
    pub restarting: bool,
}

impl RunState {
    /// Whether a run is in progress.
    pub fn active(&self) -> bool {
        self.current.is_some() || !self.plan.is_empty()
    }

    /// Whether `cell_id` will run (or runs now) in the current run.
    pub fn will_run(&self, cell_id: &str) -> bool {
        self.current.as_ref().is_some_and(|(_, id)| id == cell_id)
            || self.plan.iter().any(|id| id == cell_id)
    }

    /// Drops everything not yet run; returns the dropped cells.
    pub fn abandon(&mut self) -> Vec<String> {
        self.next_roots.clear();
        self.plan.drain(..).collect()
    }
}
