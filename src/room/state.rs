//! The live state of one notebook, as its room holds it.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::db::models::{CellRow, NotebookRow};
use crate::notebook::analysis::{analyze_cell as analyze, CellNames};
use crate::notebook::cell::SyntaxError;
use crate::notebook::graph::{Graph, GraphCell};
use crate::notebook::{Cell, CellStatus, CellType};
use crate::sql::conn_string;

/// Most stdout/stderr kept per cell; a cell printing forever must not exhaust memory.
/// The kernel side already drops stream text past this cap (plus one byte, so the cut
/// shows); here the text is cut exactly and marked.
pub const MAX_STDOUT_BYTES: usize = crate::kernel::MAX_STREAM_BYTES;

/// Appended once to a cell's stdout when it is cut at [`MAX_STDOUT_BYTES`].
pub const STDOUT_TRUNCATED: &str = "\n[output truncated: more than 1 MiB]\n";

/// One cell with its last run's results and its analysed names.
#[derive(Debug, Clone)]
pub struct LiveCell {
    /// Cell id.
    pub id: String,
    /// Python or SQL.
    pub cell_type: CellType,
    /// Source code.
    pub code: String,
    /// Run status.
    pub status: CellStatus,
    /// Captured output text (capped at [`MAX_STDOUT_BYTES`]).
    pub stdout: String,
    /// Rich outputs.
    pub outputs: Vec<Value>,
    /// The last run's error.
    pub error: Option<String>,
    /// The Python name a SQL cell's result is bound to.
    pub result_name: Option<String>,
    /// Analysed names.
    pub names: CellNames,
    /// Whether it took part in a run (ran, failed or was blocked; in this kernel or an earlier
    /// one), so that when that run goes out of date the cell is stale rather than idle. Kept
    /// while it is queued.
    pub has_run: bool,
}

impl LiveCell {
    /// A cell from its stored row. A new room has a new kernel, so no cell's values exist
    /// yet: a cell that had run (or kept results) is stale, any other is idle.
    pub fn from_row(row: &CellRow) -> LiveCell {
        let cell_type = CellType::parse(&row.cell_type).unwrap_or(CellType::Python);
        let outputs = match serde_json::from_str::<Value>(&row.outputs) {
            Ok(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let had_run = matches!(
            row.status.as_str(),
            "success" | "error" | "running" | "blocked" | "stale"
        ) || !outputs.is_empty()
            || !row.stdout.is_empty()
            || row.error.is_some();
        let has_run = had_run && super::staleness::executable(cell_type);
        LiveCell {
            id: row.id.clone(),
            cell_type,
            names: analyze(cell_type, &row.code, row.result_name.as_deref()),
            result_name: row.result_name.clone(),
            code: row.code.clone(),
            status: if has_run {
                CellStatus::Stale
            } else {
                CellStatus::Idle
            },
            stdout: row.stdout.clone(),
            outputs,
            error: row.error.clone(),
            has_run,
        }
    }

    /// Sets the status; a queued cell keeps whether it had run, so an abandoned run can put
    /// it back as stale or idle.
    pub fn set_status(&mut self, status: CellStatus) {
        self.status = status;
        match status {
            CellStatus::Queued => {}
            CellStatus::Idle => self.has_run = false,
            CellStatus::Running
            | CellStatus::Success
            | CellStatus::Error
            | CellStatus::Blocked
            | CellStatus::Stale => self.has_run = true,
        }
    }

    /// Replaces the code and result name and re-analyses them; answers whether the names the
    /// cell writes or reads changed (only then can the dependency graph change).
    pub fn set_code(&mut self, code: String, result_name: Option<String>) -> bool {
        let names = analyze(self.cell_type, &code, result_name.as_deref());
        let changed = names.writes != self.names.writes || names.reads != self.names.reads;
        self.names = names;
        self.code = code;
        self.result_name = result_name;
        changed
    }

    /// Appends output text, keeping at most [`MAX_STDOUT_BYTES`] (then a truncation notice).
    /// Returns what was appended, for the broadcast, or `None` once the cell is past the cap.
    pub fn append_stdout(&mut self, text: &str) -> Option<String> {
        // Past the cap means cut and marked already (the notice is longer than a char).
        if self.stdout.len() > MAX_STDOUT_BYTES || text.is_empty() {
            return None;
        }
        let room = MAX_STDOUT_BYTES - self.stdout.len();
        if text.len() <= room {
            self.stdout.push_str(text);
            return Some(text.to_string());
        }
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let appended = format!("{}{STDOUT_TRUNCATED}", &text[..cut]);
        self.stdout.push_str(&appended);
        Some(appended)
    }

    /// Clears the results of the previous run.
    pub fn reset_results(&mut self) {
        self.stdout.clear();
        self.outputs.clear();
        self.error = None;
    }
}

/// The whole notebook: metadata, cells in order, and the dependency graph.
pub struct NotebookState {
    /// Notebook id.
    pub id: String,
    /// Owner's user id.
    pub owner_id: String,
    /// Display name.
    pub name: String,
    /// Full connection string (never sent to clients unmasked).
    pub db_conn_string: Option<String>,
    /// Revision, bumped by every mutation.
    pub revision: i64,
    /// Cells in notebook order (change their order only through the methods below, which
    /// keep [`Self::positions`] right).
    pub cells: Vec<LiveCell>,
    /// Each cell's index in `cells`, so lookups by id do not scan the notebook.
    positions: HashMap<String, usize>,
    /// Dependency graph over `cells`.
    pub graph: Graph,
    /// Lazy mode: running or editing a cell marks its descendants stale instead of running them.
    pub lazy: bool,
}

impl NotebookState {
    /// Builds the state from stored rows and the notebook's lazy setting.
    pub fn load(notebook: NotebookRow, rows: &[CellRow], lazy: bool) -> NotebookState {
        let mut state = NotebookState {
            id: notebook.id,
            owner_id: notebook.owner_id,
            name: notebook.name,
            db_conn_string: notebook.db_conn_string,
            revision: notebook.revision,
            cells: rows.iter().map(LiveCell::from_row).collect(),
            positions: HashMap::new(),
            graph: Graph::build(&[]),
            lazy,
        };
        state.reindex();
        state.rebuild_graph();
        state
    }

    /// Recomputes the graph; returns the ids whose graph error changed.
    pub fn rebuild_graph(&mut self) -> Vec<String> {
        let before: HashMap<String, String> = self.graph.errors().clone();
        let nodes: Vec<GraphCell> = self
            .cells
            .iter()
            .map(|c| GraphCell::of(&c.id, &c.names))
            .collect();
        self.graph = Graph::build(&nodes);
        let after = self.graph.errors();
        let mut changed: HashSet<String> = HashSet::new();
        for (id, msg) in after {
            if before.get(id) != Some(msg) {
                changed.insert(id.clone());
            }
        }
        for id in before.keys() {
            if !after.contains_key(id) {
                changed.insert(id.clone());
            }
        }
        self.cells
            .iter()
            .filter(|c| changed.contains(&c.id))
            .map(|c| c.id.clone())
            .collect()
    }

    fn reindex(&mut self) {
        self.positions = self
            .cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
    }

    /// Re-reads the positions of the cells in `range` (after cells moved within it); cells
    /// appended at the end touch only themselves.
    fn reindex_range(&mut self, range: std::ops::Range<usize>) {
        for i in range {
            if let Some(cell) = self.cells.get(i) {
                match self.positions.get_mut(&cell.id) {
                    Some(at) => *at = i,
                    None => {
                        self.positions.insert(cell.id.clone(), i);
                    }
                }
            }
        }
    }

    /// Index of a cell.
    pub fn index_of(&self, cell_id: &str) -> Option<usize> {
        let known = self.positions.get(cell_id).copied();
        // The map is kept in step with `cells`; checking the hit costs nothing and keeps a
        // lookup right even if it were not.
        known
            .filter(|&i| self.cells.get(i).is_some_and(|c| c.id == cell_id))
            .or_else(|| self.cells.iter().position(|c| c.id == cell_id))
    }

    /// Puts a cell at `index` (clamped), as the store just did.
    pub fn move_cell(&mut self, cell_id: &str, index: usize) {
        if let Some(from) = self.index_of(cell_id) {
            let cell = self.cells.remove(from);
            let index = index.min(self.cells.len());
            self.cells.insert(index, cell);
            self.reindex_range(from.min(index)..from.max(index) + 1);
        }
    }

    /// Inserts a cell at `index` (clamped).
    pub fn insert_cell(&mut self, index: usize, cell: LiveCell) {
        let index = index.min(self.cells.len());
        self.cells.insert(index, cell);
        self.reindex_range(index..self.cells.len());
    }

    /// Removes a cell.
    pub fn remove_cell(&mut self, cell_id: &str) {
        if let Some(at) = self.index_of(cell_id) {
            self.cells.remove(at);
            self.positions.remove(cell_id);
            self.reindex_range(at..self.cells.len());
        }
    }

    /// A cell by id.
    pub fn cell(&self, cell_id: &str) -> Option<&LiveCell> {
        self.index_of(cell_id).and_then(|i| self.cells.get(i))
    }

    /// A mutable cell by id.
    pub fn cell_mut(&mut self, cell_id: &str) -> Option<&mut LiveCell> {
        self.index_of(cell_id).and_then(|i| self.cells.get_mut(i))
    }

    /// The cell as clients see it: a graph problem (duplicate definition, cycle) or a syntax
    /// error shows as the cell's error until the code is fixed.
    pub fn wire_cell(&self, cell: &LiveCell) -> Cell {
        let graph_error = self.graph.errors().get(&cell.id);
        let (status, error) = match graph_error {
            Some(msg) => (CellStatus::Error, Some(msg.clone())),
            None => (cell.status, cell.error.clone()),
        };
        Cell {
            id: cell.id.clone(),
            cell_type: cell.cell_type,
            code: cell.code.clone(),
            status,
            stdout: cell.stdout.clone(),
            outputs: cell.outputs.clone(),
            error,
            reads: cell.names.reads.clone(),
            writes: cell.names.writes.clone(),
            result_name: cell.result_name.clone(),
            syntax_error: cell
                .names
                .syntax_error
                .as_deref()
                .map(SyntaxError::from_message),
        }
    }

    /// A wire cell by id.
    pub fn wire_cell_by_id(&self, cell_id: &str) -> Option<Cell> {
        self.cell(cell_id).map(|c| self.wire_cell(c))
    }

    /// The notebook as `GET /api/notebooks/{id}` returns it.
    pub fn snapshot(&self, seq: u64) -> Value {
        let cells: Vec<Cell> = self.cells.iter().map(|c| self.wire_cell(c)).collect();
        json!({
            "id": self.id,
            "name": self.name,
            "db_conn_string": self.db_conn_string.as_deref().map(conn_string::mask_password),
            "revision": self.revision,
            "lazy": self.lazy,
            "seq": seq,
            "cells": cells,
        })
    }

    /// Names `cell_id` defines that no other cell defines (safe to remove from the kernel).
    pub fn names_only_defined_by(&self, cell_id: &str, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|name| {
                !self
                    .cells
                    .iter()
                    .any(|c| c.id != cell_id && c.names.writes.contains(name))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> CellRow {
        let now = chrono::Utc::now().naive_utc();
        CellRow {
            id: id.into(),
            notebook_id: "nb".into(),
            position: 0,
            cell_type: "python".into(),
            code: String::new(),
            code_revision: 0,
            status: "idle".into(),
            stdout: String::new(),
            error: None,
            outputs: "[]".into(),
            created_at: now,
            updated_at: now,
            result_name: None,
        }
    }

    fn state(ids: &[&str]) -> NotebookState {
        let now = chrono::Utc::now().naive_utc();
        let notebook = NotebookRow {
            id: "nb".into(),
            owner_id: "u".into(),
            name: "n".into(),
            db_conn_string: None,
            revision: 0,
            created_at: now,
            updated_at: now,
        };
        let rows: Vec<CellRow> = ids.iter().map(|id| row(id)).collect();
        NotebookState::load(notebook, &rows, false)
    }

    /// The position map agrees with the cell order (checked without `index_of`'s fallback).
    fn assert_indexed(state: &NotebookState, order: &[&str]) {
        let ids: Vec<&str> = state.cells.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, order);
        assert_eq!(state.positions.len(), order.len());
        for (i, id) in order.iter().enumerate() {
            assert_eq!(state.positions.get(*id), Some(&i), "{id} in {order:?}");
        }
    }

    #[test]
    fn positions_follow_inserts_moves_and_removals() {
        let mut s = state(&["a", "b", "c", "d"]);
        assert_indexed(&s, &["a", "b", "c", "d"]);
        s.insert_cell(4, LiveCell::from_row(&row("e")));
        assert_indexed(&s, &["a", "b", "c", "d", "e"]);
        s.insert_cell(1, LiveCell::from_row(&row("f")));
        assert_indexed(&s, &["a", "f", "b", "c", "d", "e"]);
        s.move_cell("a", 4);
        assert_indexed(&s, &["f", "b", "c", "d", "a", "e"]);
        s.move_cell("e", 0);
        assert_indexed(&s, &["e", "f", "b", "c", "d", "a"]);
        s.remove_cell("c");
        assert_indexed(&s, &["e", "f", "b", "d", "a"]);
        s.remove_cell("e");
        assert_indexed(&s, &["f", "b", "d", "a"]);
        s.insert_cell(99, LiveCell::from_row(&row("g")));
        assert_indexed(&s, &["f", "b", "d", "a", "g"]);
    }
}
