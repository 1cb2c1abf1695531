//! Stale cells and run plans: which cells a run must include so it never reads a name from a
//! stale or missing definition, and which cells lazy mode marks stale instead of running.
//! Pure logic over the notebook state; the room applies the results.

use std::collections::HashSet;

use super::state::{LiveCell, NotebookState};
use crate::notebook::{CellStatus, CellType};

/// Whether cells of this type execute (only executed cells can be stale).
pub fn executable(cell_type: CellType) -> bool {
    match cell_type {
        CellType::Python | CellType::Sql => true,
        CellType::Markdown => false,
    }
}

/// Whether a cell's values are missing or out of date in the kernel, so a run that reads
/// them must run it first: it is stale, never ran (idle), was blocked, or waits in a queue
/// for a run that has not started. A cell that failed is not run again for its readers (it
/// may be slow or never end, like an interrupted loop); they see what it left.
pub fn needs_run(cell: &LiveCell) -> bool {
    executable(cell.cell_type)
        && matches!(
            cell.status,
            CellStatus::Stale | CellStatus::Idle | CellStatus::Blocked | CellStatus::Queued
        )
}

/// Whether a cell should now show as stale: it took part in a run and is not already stale
/// or about to run again.
pub fn can_go_stale(cell: &LiveCell) -> bool {
    executable(cell.cell_type)
        && cell.has_run
        && !matches!(
            cell.status,
            CellStatus::Stale | CellStatus::Queued | CellStatus::Running
        )
}

/// What a run request turns into.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunPlan {
    /// Cells to run, in topological order.
    pub order: Vec<String>,
    /// Cells to mark stale instead (lazy mode's descendants).
    pub stale: Vec<String>,
}

/// Every ancestor of `targets` (not the targets themselves unless one is an ancestor of
/// another).
pub fn ancestors(state: &NotebookState, targets: &[String]) -> HashSet<String> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut stack: Vec<String> = targets.to_vec();
    while let Some(id) = stack.pop() {
        for parent in state.graph.parents(&id) {
            if seen.insert(parent.clone()) {
                stack.push(parent);
            }
        }
    }
    seen
}

/// The descendants of `ids` (excluding `ids` unless reachable from another of them).
pub fn descendants(state: &NotebookState, ids: &[String]) -> Vec<String> {
    let roots: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut order = state.graph.run_order_many(&roots);
    let own: HashSet<&String> = ids.iter().collect();
    // A cell in a cycle with another root reaches itself; it still only counts once.
    order.retain(|id| !own.contains(id));
    order
}

/// The run for a request to run `targets`: their ancestors whose values are stale or missing
/// (and that the run in progress will not compute, `running_anyway`) run first, in
/// topological order. Without lazy mode every descendant of what runs runs too; in lazy mode
/// only the targets and the ancestors between them run, and the descendants left out are
/// returned to be marked stale.
pub fn plan(
    state: &NotebookState,
    targets: &[String],
    running_anyway: impl Fn(&str) -> bool,
) -> RunPlan {
    let upstream = ancestors(state, targets);
    let mut roots: Vec<&str> = targets.iter().map(String::as_str).collect();
    roots.extend(
        state
            .cells
            .iter()
            .filter(|c| upstream.contains(&c.id) && needs_run(c) && !running_anyway(&c.id))
            .map(|c| c.id.as_str()),
    );
    let full = state.graph.run_order_many(&roots);
    if !state.lazy {
        return RunPlan {
            order: full,
            stale: Vec::new(),
        };
    }
    let wanted: HashSet<&str> = targets.iter().map(String::as_str).collect();
    let (order, stale) = full
        .into_iter()
        .partition(|id| wanted.contains(id.as_str()) || upstream.contains(id));
    RunPlan { order, stale }
}

/// The cells `POST /run?only=stale` asks for: every stale cell.
pub fn stale_cells(state: &NotebookState) -> Vec<String> {
    state
        .cells
        .iter()
        .filter(|c| c.status == CellStatus::Stale)
        .map(|c| c.id.clone())
        .collect()
}
