//! Import and export of whole notebooks: Jupyter `.ipynb`, percent-format `.py`, standalone HTML.
//!
//! Export works on the notebook as `GET /api/notebooks/{id}` shows it (the room's snapshot), so
//! it sees exactly what the user sees. Import turns a file into cells to insert; outputs in the
//! file are not imported (they came from another kernel; running the notebook recomputes them).

pub mod html;
pub mod ipynb;
pub mod magics;
pub mod percent;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::notebook::cell::{default_result_name, validate_result_name};

/// Stored cell type of markdown cells.
pub const MARKDOWN: &str = "markdown";

/// A file format notebooks are exported to (and, except HTML, imported from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Jupyter notebook, nbformat 4.5.
    Ipynb,
    /// Percent-format Python script (`# %%` cells), as jupytext, VS Code and Spyder read it.
    Py,
    /// A standalone HTML page.
    Html,
}

impl Format {
    /// Parses `ipynb` / `py` / `html`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "ipynb" => Some(Format::Ipynb),
            "py" => Some(Format::Py),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    /// File extension (without the dot).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Ipynb => "ipynb",
            Format::Py => "py",
            Format::Html => "html",
        }
    }

    /// The `Content-Type` of an exported file.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ipynb => "application/x-ipynb+json",
            Format::Py => "text/x-python; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// A notebook to export, read from the room's snapshot (and stored as a recorded run's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportNotebook {
    /// Display name.
    pub name: String,
    /// Cells in order.
    pub cells: Vec<ExportCell>,
}

/// One cell of a notebook to export (the wire cell's fields that a file keeps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportCell {
    /// Cell id.
    pub id: String,
    /// `python`, `sql` or `markdown`.
    #[serde(rename = "type")]
    pub cell_type: String,
    /// Source.
    pub code: String,
    /// Captured stdout/stderr of the last run.
    #[serde(default)]
    pub stdout: String,
    /// Rich outputs of the last run (`{"mime_type","data","metadata"}`).
    #[serde(default)]
    pub outputs: Vec<Value>,
    /// Error of the last run.
    #[serde(default)]
    pub error: Option<String>,
    /// A SQL cell's result name.
    #[serde(default)]
    pub result_name: Option<String>,
}

impl ExportNotebook {
    /// Reads the notebook out of a `GET /api/notebooks/{id}` snapshot.
    pub fn from_snapshot(snapshot: Value) -> Result<ExportNotebook, serde_json::Error> {
        serde_json::from_value(snapshot)
    }
}

/// The notebook as the text of a file of `format` (what an export download holds).
pub fn render(format: Format, notebook: &ExportNotebook) -> Result<String, serde_json::Error> {
    match format {
        Format::Ipynb => ipynb::to_text(&ipynb::export(notebook)),
        Format::Py => Ok(percent::export(notebook)),
        Format::Html => Ok(html::export(notebook)),
    }
}

/// The kind of an imported cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// Python code.
    Python,
    /// A SQL query.
    Sql,
    /// Markdown text, never executed.
    Markdown,
}

impl CellKind {
    /// The stored cell type.
    pub fn as_str(self) -> &'static str {
        match self {
            CellKind::Python => "python",
            CellKind::Sql => "sql",
            CellKind::Markdown => MARKDOWN,
        }
    }
}

/// A cell read from a file, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCell {
    /// Its kind.
    pub kind: CellKind,
    /// Its source.
    pub code: String,
    /// For SQL cells, the result name the file asked for (checked later).
    pub result_name: Option<String>,
}

impl ParsedCell {
    /// A cell without a result name.
    pub fn new(kind: CellKind, code: impl Into<String>) -> ParsedCell {
        ParsedCell {
            kind,
            code: code.into(),
            result_name: None,
        }
    }
}

/// A file that cannot be imported; the message says what is wrong (answered as 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Something the user should know about an imported cell (it stays, but needs attention).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportWarning {
    /// 0-based index of the cell.
    pub cell: usize,
    /// What is wrong.
    pub message: String,
}

/// Cells ready to store, plus warnings for the user.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Cells in order.
    pub cells: Vec<ParsedCell>,
    /// Per-cell warnings.
    pub warnings: Vec<ImportWarning>,
}

/// Parses a file of the given format into cells (HTML cannot be imported).
pub fn parse(format: Format, content: &str) -> Result<Vec<ParsedCell>, ImportError> {
    match format {
        Format::Ipynb => ipynb::import(content),
        Format::Py => Ok(percent::import(content)),
        Format::Html => Err(ImportError(
            "HTML exports cannot be imported; import the .ipynb or .py export instead".into(),
        )),
    }
}

/// Final touches on parsed cells: SQL cells get valid, unique result names; Python cells using
/// IPython-only syntax (magics, `!shell`) get a flag comment and a warning. `markdown_supported`
/// says whether the store knows markdown cells; without them markdown becomes a comment-only
/// Python cell, so no text is lost.
pub fn prepare(mut cells: Vec<ParsedCell>, markdown_supported: bool) -> Imported {
    let mut warnings = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for (index, cell) in cells.iter_mut().enumerate() {
        match cell.kind {
            CellKind::Sql => {
                let wanted = cell
                    .result_name
                    .take()
                    .filter(|n| validate_result_name(n).is_ok() && !taken.contains(n));
                let name =
                    wanted.unwrap_or_else(|| default_result_name(taken.iter().map(String::as_str)));
                taken.push(name.clone());
                cell.result_name = Some(name);
            }
            CellKind::Python => {
                cell.result_name = None;
                if let Some(message) = magics::flag_cell(&mut cell.code) {
                    warnings.push(ImportWarning {
                        cell: index,
                        message,
                    });
                }
            }
            CellKind::Markdown => {
                cell.result_name = None;
                if !markdown_supported {
                    cell.kind = CellKind::Python;
                    cell.code = magics::comment_out(&cell.code);
                }
            }
        }
    }
    Imported { cells, warnings }
}

/// Joins Jupyter's "multiline string" (a string or a list of strings).
pub(crate) fn multiline(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| p.as_str())
            .collect::<Option<Vec<&str>>>()
            .map(|parts| parts.concat()),
        _ => None,
    }
}

/// Splits text into Jupyter's list-of-lines form (each line keeps its `\n`).
pub(crate) fn lines_of(text: &str) -> Vec<String> {
    text.split_inclusive('\n').map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notebook() -> ExportNotebook {
        ExportNotebook::from_snapshot(json!({
            "name": "n",
            "cells": [
                {"id": "m", "type": "markdown", "code": "# Title\n\n<script>x()</script>"},
                {"id": "p", "type": "python", "code": "%time x = 1", "stdout": "", "outputs": []},
                {"id": "s", "type": "sql", "code": "SELECT 1", "result_name": "df_1"},
            ],
        }))
        .expect("snapshot")
    }

    #[test]
    fn markdown_cells_export_as_markdown() {
        let nb = notebook();
        let doc = ipynb::export(&nb);
        assert_eq!(doc["cells"][0]["cell_type"], "markdown");
        assert_eq!(
            doc["cells"][0]["source"],
            json!(["# Title\n", "\n", "<script>x()</script>"])
        );
        let script = percent::export(&nb);
        assert!(
            script.contains("# %% [markdown]\n# # Title\n#\n# <script>x()</script>\n"),
            "{script}"
        );
        let page = html::export(&nb);
        assert!(page.contains("<h1>Title</h1>"), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn exports_read_back_to_the_same_cells() {
        let nb = notebook();
        let text = serde_json::to_string(&ipynb::export(&nb)).expect("json");
        for cells in [
            ipynb::import(&text).expect("ipynb"),
            percent::import(&percent::export(&nb)),
        ] {
            let shape: Vec<(CellKind, &str, Option<&str>)> = cells
                .iter()
                .map(|c| (c.kind, c.code.as_str(), c.result_name.as_deref()))
                .collect();
            assert_eq!(
                shape,
                vec![
                    (CellKind::Markdown, "# Title\n\n<script>x()</script>", None),
                    (CellKind::Python, "%time x = 1", None),
                    (CellKind::Sql, "SELECT 1", Some("df_1")),
                ]
            );
        }
    }

    #[test]
    fn prepare_flags_magics_and_names_sql_results() {
        let cells = vec![
            ParsedCell::new(CellKind::Sql, "SELECT 1"),
            ParsedCell {
                kind: CellKind::Sql,
                code: "SELECT 2".into(),
                result_name: Some("class".into()),
            },
            ParsedCell::new(CellKind::Python, "!ls"),
            ParsedCell::new(CellKind::Markdown, "hi\n\nthere"),
        ];
        let out = prepare(cells.clone(), true);
        assert_eq!(out.cells[0].result_name.as_deref(), Some("df_1"));
        assert_eq!(
            out.cells[1].result_name.as_deref(),
            Some("df_2"),
            "a keyword is refused"
        );
        assert!(out.cells[2].code.starts_with(magics::FLAG_PREFIX));
        assert_eq!(out.warnings.len(), 1);
        assert_eq!(out.warnings[0].cell, 2);
        assert_eq!(out.cells[3].kind, CellKind::Markdown);
        let without = prepare(cells, false);
        assert_eq!(without.cells[3].kind, CellKind::Python);
        assert_eq!(without.cells[3].code, "# hi\n#\n# there");
    }
}
