//! Bookkeeping of the run in progress: what is left, what the kernel holds, what failed.

use std::collections::{HashMap, HashSet, VecDeque};

/// The code and result name a cell was sent to run with, to tell whether it was edited while
/// it ran (its results then describe older code: stale).
pub type Source = (String, Option<String>);

/// The run a room is executing: a plan of cells, sent to the executor a batch at a time.
#[derive(Debug, Default)]
pub struct RunState {
    /// Cells still to send, in order.
    plan: VecDeque<String>,
    /// Cells of [`Self::plan`] and [`Self::in_flight`], for constant-time membership.
    pending: HashMap<String, usize>,
    /// Cells sent in the current job, not finished yet, in order: the first runs now (or
    /// next). Each with the source it was sent with.
    in_flight: VecDeque<(String, Source)>,
    /// The token of the job in flight.
    token: Option<u64>,
    /// Whether the first cell of [`Self::in_flight`] has started (a plan's next cell has not
    /// until the kernel says so).
    head_started: bool,
    /// Cells of the job in flight that it skipped because it was cancelled; sent again first.
    requeue: Vec<String>,
    /// Cells that failed or were blocked in this run (their descendants are blocked).
    pub failed: HashSet<String>,
    /// Run requests that arrived mid-run, coalesced into the next run.
    pub next_roots: Vec<String>,
    /// A kernel restart was requested while a cell ran.
    pub restarting: bool,
}

impl RunState {
    /// Whether a run is in progress.
    pub fn active(&self) -> bool {
        self.token.is_some() || !self.plan.is_empty()
    }

    /// The job in flight and the cell it runs now (or next): (token, cell id).
    pub fn current(&self) -> Option<(u64, &str)> {
        let token = self.token?;
        self.in_flight.front().map(|(id, _)| (token, id.as_str()))
    }

    /// Whether cells sent with the job in flight wait behind the one running now.
    pub fn has_unstarted(&self) -> bool {
        self.in_flight.len() > 1
    }

    /// Whether `cell_id` will run (or runs now) in the current run.
    pub fn will_run(&self, cell_id: &str) -> bool {
        self.pending.contains_key(cell_id)
    }

    /// Replaces the plan (no job may be in flight).
    pub fn set_plan(&mut self, order: Vec<String>) {
        self.drop_pending(self.plan.clone().iter());
        for id in &order {
            *self.pending.entry(id.clone()).or_default() += 1;
        }
        self.plan = order.into();
    }

    /// The next cell to send, taken off the plan (it stays pending until it is sent or
    /// settled by the caller through [`Self::settled_unsent`]).
    pub fn next_planned(&mut self) -> Option<String> {
        self.plan.pop_front()
    }

    /// Puts a cell taken with [`Self::next_planned`] back at the front, to be sent next time.
    pub fn put_back(&mut self, cell_id: String) {
        self.plan.push_front(cell_id);
    }

    /// A cell taken with [`Self::next_planned`] that will not be sent after all.
    pub fn settled_unsent(&mut self, cell_id: &str) {
        self.drop_pending(std::iter::once(&cell_id.to_string()));
    }

    /// Records a job sent: its token and cells (each taken with [`Self::next_planned`]).
    pub fn sent(&mut self, token: u64, cells: Vec<(String, Source)>) {
        self.token = Some(token);
        self.in_flight = cells.into();
        self.head_started = false;
    }

    /// The first cell in flight has started running.
    pub fn mark_started(&mut self) {
        self.head_started = !self.in_flight.is_empty();
    }

    /// Whether an event of job `token` for `cell_id` is for the cell running now.
    pub fn is_current(&self, token: u64, cell_id: &str) -> bool {
        self.current() == Some((token, cell_id))
    }

    /// The running cell finished: returns the source it ran with. When the job is done the
    /// cells it skipped go back to the front of the plan.
    pub fn finish_current(&mut self) -> Option<Source> {
        let (id, source) = self.in_flight.pop_front()?;
        self.head_started = false;
        self.drop_pending(std::iter::once(&id));
        self.end_job_if_done();
        Some(source)
    }

    /// The running cell was skipped by a cancelled job: it goes back to the plan.
    pub fn requeue_current(&mut self) {
        if let Some((id, _)) = self.in_flight.pop_front() {
            self.requeue.push(id);
        }
        self.head_started = false;
        self.end_job_if_done();
    }

    fn end_job_if_done(&mut self) {
        if self.in_flight.is_empty() {
            self.token = None;
            for id in std::mem::take(&mut self.requeue).into_iter().rev() {
                self.plan.push_front(id);
            }
        }
    }

    /// Removes a deleted cell from the plan.
    pub fn remove(&mut self, cell_id: &str) {
        let before = self.plan.len();
        self.plan.retain(|id| id != cell_id);
        self.requeue.retain(|id| id != cell_id);
        if self.plan.len() != before {
            self.pending.remove(cell_id);
        }
    }

    /// Drops everything not yet running: the plan, and the cells of the job in flight that
    /// have not started (the caller cancels them in the kernel). Returns the dropped cells.
    pub fn abandon(&mut self) -> Vec<String> {
        self.next_roots.clear();
        let behind = usize::from(self.head_started).min(self.in_flight.len());
        let mut dropped: Vec<String> = self.in_flight.drain(behind..).map(|(id, _)| id).collect();
        dropped.append(&mut self.requeue);
        dropped.extend(self.plan.drain(..));
        self.pending.clear();
        if let Some((id, _)) = self.in_flight.front() {
            self.pending.insert(id.clone(), 1);
        }
        if self.in_flight.is_empty() {
            self.token = None;
        }
        dropped
    }

    fn drop_pending<'a>(&mut self, ids: impl Iterator<Item = &'a String>) {
        for id in ids {
            if let Some(n) = self.pending.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        (String::new(), None)
    }

    #[test]
    fn a_cancelled_job_goes_back_to_the_front_in_order() {
        let mut run = RunState::default();
        run.set_plan(vec!["a".into(), "b".into(), "c".into(), "d".into()]);
        let a = run.next_planned().unwrap_or_default();
        let b = run.next_planned().unwrap_or_default();
        let c = run.next_planned().unwrap_or_default();
        run.sent(7, vec![(a, src()), (b, src()), (c, src())]);
        assert_eq!(run.current(), Some((7, "a")));
        assert!(run.finish_current().is_some());
        run.requeue_current();
        assert!(run.will_run("c") && run.will_run("b"));
        run.requeue_current();
        assert!(!run.active() || run.current().is_none());
        assert_eq!(run.next_planned().as_deref(), Some("b"));
        assert_eq!(run.next_planned().as_deref(), Some("c"));
        assert_eq!(run.next_planned().as_deref(), Some("d"));
        assert!(!run.will_run("a"));
    }

    #[test]
    fn abandon_without_a_job_drops_the_plan() {
        let mut run = RunState::default();
        run.set_plan(vec!["a".into()]);
        assert_eq!(run.abandon(), vec!["a".to_string()]);
        assert!(!run.active() && !run.will_run("a"));
        assert!(RunState::default().abandon().is_empty());
    }

    #[test]
    fn abandon_keeps_only_the_running_cell() {
        let mut run = RunState::default();
        run.set_plan(vec!["a".into(), "b".into(), "c".into()]);
        let a = run.next_planned().unwrap_or_default();
        let b = run.next_planned().unwrap_or_default();
        run.sent(1, vec![(a, src()), (b, src())]);
        run.mark_started();
        assert_eq!(run.abandon(), vec!["b".to_string(), "c".to_string()]);
        assert_eq!(run.current(), Some((1, "a")));
        assert!(run.will_run("a") && !run.will_run("b") && !run.will_run("c"));
        assert!(run.finish_current().is_some());
        assert!(!run.active());
    }

    #[test]
    fn abandon_between_two_cells_of_a_plan_drops_both_unstarted() {
        let mut run = RunState::default();
        run.set_plan(vec!["a".into(), "b".into()]);
        let a = run.next_planned().unwrap_or_default();
        let b = run.next_planned().unwrap_or_default();
        run.sent(1, vec![(a, src()), (b, src())]);
        run.mark_started();
        assert!(run.finish_current().is_some());
        assert_eq!(run.abandon(), vec!["b".to_string()]);
        assert!(!run.active() && run.current().is_none());
    }
}
