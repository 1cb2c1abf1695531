//! Reading the notebook file: the same import code as `POST /api/notebooks/import`, then the
//! same per-cell analysis the server's rooms use.

use std::collections::BTreeSet;
use std::path::Path;

use crate::notebook::analysis::{analyze_cell, CellNames};
use crate::notebook::io::{self, Format};
use crate::notebook::CellType;

use super::HeadlessError;

/// Longest first line shown to name a cell.
const LABEL_CHARS: usize = 60;

/// One cell of the notebook being run.
#[derive(Debug, Clone)]
pub struct Cell {
    /// A stable id for the output file (`cell-N`, N counted from 1).
    pub id: String,
    /// Python, SQL or markdown.
    pub cell_type: CellType,
    /// Its source.
    pub code: String,
    /// A SQL cell's result name.
    pub result_name: Option<String>,
    /// What it defines and reads.
    pub names: CellNames,
}

impl Cell {
    /// A cell with its names analysed, as rooms analyse them.
    pub fn new(id: String, cell_type: CellType, code: String, result_name: Option<String>) -> Cell {
        Cell {
            names: analyze_cell(cell_type, &code, result_name.as_deref()),
            id,
            cell_type,
            code,
            result_name,
        }
    }

    /// `cell N "first line"`, how people are told which cell this is (N counted from 1).
    pub fn label(&self, index: usize) -> String {
        let first = self
            .code
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let mut shown: String = first.chars().take(LABEL_CHARS).collect();
        if first.chars().count() > LABEL_CHARS {
            shown.push('…');
        }
        format!("cell {} {shown:?}", index + 1)
    }
}

/// A notebook read from a file.
#[derive(Debug, Clone)]
pub struct Notebook {
    /// Its name (the file's stem).
    pub name: String,
    /// Cells in file order.
    pub cells: Vec<Cell>,
    /// What the import noticed (IPython magics that will not run, ...), one line each.
    pub warnings: Vec<String>,
}

impl Notebook {
    /// Every top-level name some cell defines.
    pub fn defined_names(&self) -> BTreeSet<String> {
        self.cells
            .iter()
            .flat_map(|c| c.names.writes.iter().cloned())
            .collect()
    }

    /// How many cells execute (markdown does not).
    pub fn executable_count(&self) -> usize {
        self.cells.iter().filter(|c| c.cell_type.executes()).count()
    }
}

/// The file format its extension names, if any.
pub fn format_of(path: &Path) -> Option<Format> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Format::parse(&ext)
}

/// Reads and analyses a `.ipynb` or percent-format `.py` notebook.
pub fn load(path: &Path) -> Result<Notebook, HeadlessError> {
    let format = match format_of(path) {
        Some(format @ (Format::Ipynb | Format::Py)) => format,
        _ => {
            return Err(HeadlessError::InputFormat {
                path: path.to_path_buf(),
            })
        }
    };
    let bytes = std::fs::read(path).map_err(|source| HeadlessError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| HeadlessError::Parse {
        path: path.to_path_buf(),
        message: "not UTF-8 text".into(),
    })?;
    let parsed = io::parse(format, &text).map_err(|e| HeadlessError::Parse {
        path: path.to_path_buf(),
        message: e.0,
    })?;
    // Markdown cells are kept as they are (the output file shows them).
    let imported = io::prepare(parsed, true);
    let cells = imported
        .cells
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            // `prepare` only makes kinds `CellType` knows; Python is the safe reading anyway.
            let cell_type = CellType::parse(c.kind.as_str()).unwrap_or(CellType::Python);
            Cell::new(format!("cell-{}", i + 1), cell_type, c.code, c.result_name)
        })
        .collect();
    let warnings = imported
        .warnings
        .into_iter()
        .map(|w| format!("cell {}: {}", w.cell + 1, w.message))
        .collect();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook".into());
    Ok(Notebook {
        name,
        cells,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_cell_by_position_and_first_line() {
        let cell = Cell {
            id: "cell-3".into(),
            cell_type: CellType::Python,
            code: "\n  x = 1\ny = 2".into(),
            result_name: None,
            names: CellNames::default(),
        };
        assert_eq!(cell.label(2), "cell 3 \"x = 1\"");
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(format_of(Path::new("a/b.IPYNB")), Some(Format::Ipynb));
        assert_eq!(format_of(Path::new("b.py")), Some(Format::Py));
        assert_eq!(format_of(Path::new("b.txt")), None);
        assert_eq!(format_of(Path::new("b")), None);
    }
}
