//! A recorded run's snapshot: the notebook with the outputs that run produced, in the shape
//! the exporters take, bounded in size before it is stored.
//!
//! Each cell's outputs are already capped by the kernel reader (`kernel::caps`); the whole
//! snapshot is held to the same budget as one cell ([`MAX_CELL_OUTPUT_BYTES`]), so a hundred
//! stored runs stay a bounded amount of data. Cells past the budget keep their code and error
//! but their outputs are replaced by one line saying so.

use serde_json::{json, Value};

use crate::kernel::MAX_CELL_OUTPUT_BYTES;
use crate::notebook::io::{ExportCell, ExportNotebook};

/// Most bytes of outputs and printed text one snapshot keeps, all cells together.
pub const MAX_SNAPSHOT_OUTPUT_BYTES: usize = MAX_CELL_OUTPUT_BYTES;

/// Drops the outputs of cells once the snapshot is over `budget` bytes of outputs, leaving a
/// `text/plain` note in their place.
pub fn bound(mut notebook: ExportNotebook, budget: usize) -> ExportNotebook {
    let mut used = 0usize;
    for cell in &mut notebook.cells {
        let size = cell_size(cell);
        if used.saturating_add(size) <= budget {
            used += size;
            continue;
        }
        cell.stdout.clear();
        cell.outputs = vec![json!({
            "mime_type": "text/plain",
            "data": format!(
                "[this cell's {size} bytes of output are not kept: a run's snapshot keeps at \
                 most {budget} bytes of output]"
            ),
            "metadata": {},
        })];
    }
    notebook
}

/// Bytes a cell's printed text and outputs take once stored.
fn cell_size(cell: &ExportCell) -> usize {
    let outputs: usize = cell
        .outputs
        .iter()
        .map(|o| {
            serde_json::to_string(o)
                .map(|t| t.len())
                .unwrap_or(usize::MAX)
        })
        .fold(0, usize::saturating_add);
    cell.stdout.len().saturating_add(outputs)
}

/// The stored text of a snapshot.
pub fn to_text(notebook: &ExportNotebook) -> Result<String, serde_json::Error> {
    serde_json::to_string(notebook)
}

/// A stored snapshot read back.
pub fn from_text(text: &str) -> Result<ExportNotebook, serde_json::Error> {
    serde_json::from_str::<Value>(text).and_then(serde_json::from_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(id: &str, text: &str) -> ExportCell {
        ExportCell {
            id: id.into(),
            cell_type: "python".into(),
            code: "x".into(),
            stdout: text.into(),
            outputs: Vec::new(),
            error: None,
            result_name: None,
        }
    }

    #[test]
    fn cells_past_the_budget_lose_their_outputs_only() {
        let notebook = ExportNotebook {
            name: "n".into(),
            cells: vec![cell("a", "12345"), cell("b", "67890"), cell("c", "1")],
        };
        let bounded = bound(notebook, 7);
        assert_eq!(bounded.cells[0].stdout, "12345");
        assert_eq!(bounded.cells[1].stdout, "");
        assert!(bounded.cells[1].outputs[0]["data"]
            .as_str()
            .is_some_and(|t| t.contains("not kept")));
        assert_eq!(bounded.cells[1].code, "x");
        // A later, smaller cell still fits.
        assert_eq!(bounded.cells[2].stdout, "1");
        let text = to_text(&bounded).expect("serializes");
        assert_eq!(from_text(&text).expect("reads").cells.len(), 3);
    }
}
