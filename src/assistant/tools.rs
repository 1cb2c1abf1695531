//! The assistant's tools: their JSON schemas, and their execution through the notebook's
//! room (so every open tab sees the changes live), each call recorded in the audit log.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::ask;
use crate::db::audit::{self, AuditRow};
use crate::db::Db;
use crate::error::ApiError;
use crate::notebook::CellType;
use crate::room::messages::{CreateCell, DeleteCell, RunCell, Snapshot, UpdateCell};
use crate::room::RoomRegistry;

/// How long `run_cell` waits for the cell to settle.
pub const RUN_WAIT: Duration = Duration::from_secs(30);

/// How often `run_cell` looks at the cell while waiting.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Characters of output shown per cell.
pub const PREVIEW_CHARS: usize = 400;

/// The tools' names, as [`definitions`] lists them.
pub const TOOL_NAMES: [&str; 5] = [
    "get_notebook_state",
    "create_cell",
    "update_cell",
    "delete_cell",
    "run_cell",
];

/// `name` as a label of the `assistant_tool_calls_total` metric: one of [`TOOL_NAMES`], or
/// `unknown` for whatever else a model asks for (so it cannot mint new series).
fn metric_label(name: &str) -> &'static str {
    TOOL_NAMES
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or("unknown")
}

/// The tool definitions sent to the model.
pub fn definitions() -> Value {
    json!([
        {
            "name": "get_notebook_state",
            "description": "Read the notebook as it is now: every cell in order with its id, type, code, status, a short output preview and its error.",
            "input_schema": {"type": "object", "properties": {}}
        },
        {
            "name": "create_cell",
            "description": "Add a cell (it does not run until you call run_cell). Returns the new cell_id.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["python", "sql"], "description": "The cell's language."},
                    "code": {"type": "string", "description": "The cell's code."},
                    "after_cell_id": {"type": "string", "description": "Insert after this cell; omit to append at the end."}
                },
                "required": ["type", "code"]
            }
        },
        {
            "name": "update_cell",
            "description": "Replace a cell's code (it does not run until you call run_cell).",
            "input_schema": {
                "type": "object",
                "properties": {
                    "cell_id": {"type": "string"},
                    "code": {"type": "string"}
                },
                "required": ["cell_id", "code"]
            }
        },
        {
            "name": "delete_cell",
            "description": "Delete a cell; the names it defined disappear from the kernel.",
            "input_schema": {
                "type": "object",
                "properties": {"cell_id": {"type": "string"}},
                "required": ["cell_id"]
            }
        },
        {
            "name": "run_cell",
            "description": "Run a cell and every cell downstream of it; waits up to 30 s for the cell to finish and returns its status, a short output preview and its error.",
            "input_schema": {
                "type": "object",
                "properties": {"cell_id": {"type": "string"}},
                "required": ["cell_id"]
            }
        }
    ])
}

/// Why a tool call failed; the text is shown to the model, which can correct itself.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The model asked for a tool that does not exist.
    #[error("unknown tool '{0}'; the tools are get_notebook_state, create_cell, update_cell, delete_cell, run_cell")]
    UnknownTool(String),
    /// The input does not match the tool's schema.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The notebook refused (missing cell, notebook closing, ...).
    #[error("{0}")]
    Notebook(String),
}

impl From<ApiError> for ToolError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Internal(_) => ToolError::Notebook("internal error".into()),
            other => ToolError::Notebook(other.to_string()),
        }
    }
}

/// The outcome of one tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    /// The result, or `{"error": ...}`.
    pub result: Value,
    /// Whether the call failed.
    pub is_error: bool,
}

/// Runs tools on one notebook on behalf of one user.
#[derive(Clone)]
pub struct Toolbox {
    rooms: RoomRegistry,
    db: Db,
    user_id: String,
    notebook_id: String,
}

impl Toolbox {
    /// Tools acting on `notebook_id` as `user_id`.
    pub fn new(rooms: RoomRegistry, db: Db, user_id: &str, notebook_id: &str) -> Toolbox {
        Toolbox {
            rooms,
            db,
            user_id: user_id.to_string(),
            notebook_id: notebook_id.to_string(),
        }
    }

    /// Runs a tool (`input` is `Err` when the model's input was not valid JSON) and records
    /// the call in the audit log.
    pub async fn execute(&self, name: &str, input: Result<Value, String>) -> ToolOutcome {
        let recorded_input = match &input {
            Ok(v) => v.clone(),
            Err(raw) => json!({ "unparsed": raw }),
        };
        let result = match input {
            Ok(input) => self.dispatch(name, &input).await,
            Err(_) => Err(ToolError::InvalidInput(
                "the tool input is not valid JSON".into(),
            )),
        };
        let outcome = match result {
            Ok(result) => ToolOutcome {
                result,
                is_error: false,
            },
            Err(e) => ToolOutcome {
                result: json!({ "error": e.to_string() }),
                is_error: true,
            },
        };
        crate::metrics::assistant_tool_call(metric_label(name), !outcome.is_error);
        let row = AuditRow::new(
            &self.user_id,
            &self.notebook_id,
            name,
            &recorded_input,
            &outcome.result,
            !outcome.is_error,
        );
        if let Err(e) = audit::record(&self.db, &row).await {
            log::warn!(
                "could not record the {name} call on notebook {} in the audit log: {e}",
                self.notebook_id
            );
        }
        outcome
    }

    async fn room(&self) -> Result<actix::Addr<crate::room::actor::NotebookRoom>, ToolError> {
        Ok(self
            .rooms
            .open(
                &self.user_id,
                &self.notebook_id,
                crate::collab::Role::Editor,
            )
            .await?)
    }

    async fn dispatch(&self, name: &str, input: &Value) -> Result<Value, ToolError> {
        if !input.is_object() {
            return Err(ToolError::InvalidInput(
                "the input must be a JSON object".into(),
            ));
        }
        match name {
            "get_notebook_state" => {
                let snapshot = ask(&self.room().await?, Snapshot).await?;
                Ok(notebook_state(&snapshot))
            }
            "create_cell" => {
                let kind = required_str(input, "type")?;
                let cell_type = CellType::parse(kind).ok_or_else(|| {
                    ToolError::InvalidInput(format!(
                        "unknown cell type '{kind}': expected 'python' or 'sql'"
                    ))
                })?;
                let code = required_str(input, "code")?.to_string();
                let after_cell_id = optional_str(input, "after_cell_id")?;
                let cell_id = ask(
                    &self.room().await?,
                    CreateCell {
                        cell_type,
                        code,
                        after_cell_id,
                        before_cell_id: None,
                    },
                )
                .await?;
                Ok(json!({ "cell_id": cell_id, "status": "created" }))
            }
            "update_cell" => {
                let cell_id = required_str(input, "cell_id")?.to_string();
                let code = required_str(input, "code")?.to_string();
                ask(
                    &self.room().await?,
                    UpdateCell {
                        cell_id: cell_id.clone(),
                        code: Some(code),
                        result_name: None,
                        expected_revision: None,
                    },
                )
                .await?;
                Ok(json!({ "cell_id": cell_id, "status": "updated" }))
            }
            "delete_cell" => {
                let cell_id = required_str(input, "cell_id")?.to_string();
                ask(
                    &self.room().await?,
                    DeleteCell {
                        cell_id: cell_id.clone(),
                    },
                )
                .await?;
                Ok(json!({ "cell_id": cell_id, "status": "deleted" }))
            }
            "run_cell" => {
                let cell_id = required_str(input, "cell_id")?.to_string();
                self.run_cell(cell_id).await
            }
            other => Err(ToolError::UnknownTool(other.to_string())),
        }
    }

    /// Starts the run, then polls the room until the cell settles (or [`RUN_WAIT`] passes).
    async fn run_cell(&self, cell_id: String) -> Result<Value, ToolError> {
        let room = self.room().await?;
        ask(
            &room,
            RunCell {
                cell_id: cell_id.clone(),
            },
        )
        .await?;
        let deadline = Instant::now() + RUN_WAIT;
        loop {
            let snapshot = ask(&room, Snapshot).await?;
            let cell = find_cell(&snapshot, &cell_id)
                .ok_or_else(|| ToolError::Notebook("the cell was deleted while running".into()))?;
            let status = cell.get("status").and_then(Value::as_str).unwrap_or("idle");
            let settled = !matches!(status, "queued" | "running");
            if settled || Instant::now() >= deadline {
                let mut result = json!({
                    "cell_id": cell_id,
                    "status": status,
                    "output": output_preview(cell, PREVIEW_CHARS),
                    "error": cell.get("error").cloned().unwrap_or(Value::Null),
                });
                if !settled {
                    result["note"] = json!(format!(
                        "still {status} after {} s; check again later with get_notebook_state",
                        RUN_WAIT.as_secs()
                    ));
                }
                return Ok(result);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

fn required_str<'a>(input: &'a Value, field: &str) -> Result<&'a str, ToolError> {
    match input.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ToolError::InvalidInput(format!(
            "'{field}' must be a string"
        ))),
        None => Err(ToolError::InvalidInput(format!("'{field}' is required"))),
    }
}

fn optional_str(input: &Value, field: &str) -> Result<Option<String>, ToolError> {
    match input.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ToolError::InvalidInput(format!(
            "'{field}' must be a string"
        ))),
    }
}

fn find_cell<'a>(snapshot: &'a Value, cell_id: &str) -> Option<&'a Value> {
    snapshot
        .get("cells")
        .and_then(Value::as_array)
        .and_then(|cells| cells.iter().find(|c| c["id"] == cell_id))
}

/// The notebook as the model sees it: cells with id, type, code, status, output preview, error.
pub fn notebook_state(snapshot: &Value) -> Value {
    let cells: Vec<Value> = snapshot
        .get("cells")
        .and_then(Value::as_array)
        .map(|cells| {
            cells
                .iter()
                .map(|c| {
                    json!({
                        "id": c["id"],
                        "type": c["type"],
                        "code": c["code"],
                        "status": c["status"],
                        "output": output_preview(c, PREVIEW_CHARS),
                        "error": c.get("error").map(|e| truncate_tail(e.as_str().unwrap_or_default(), PREVIEW_CHARS)),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "name": snapshot.get("name").cloned().unwrap_or(Value::Null),
        "has_database": snapshot.get("db_conn_string").is_some_and(|v| !v.is_null()),
        "cells": cells,
    })
}

/// A short text preview of a cell's outputs: the tail of its stdout, then each output
/// (`text/plain` as is, a table as its shape and columns, other kinds by name).
pub fn output_preview(cell: &Value, max_chars: usize) -> String {
    let mut parts = Vec::new();
    let stdout = cell.get("stdout").and_then(Value::as_str).unwrap_or("");
    if !stdout.trim().is_empty() {
        parts.push(truncate_tail(stdout.trim_end(), max_chars / 2));
    }
    let outputs = cell.get("outputs").and_then(Value::as_array);
    for output in outputs.into_iter().flatten() {
        let mime = output
            .get("mime_type")
            .and_then(Value::as_str)
            .unwrap_or("");
        let data = output.get("data").unwrap_or(&Value::Null);
        let text = match mime {
            "text/plain" => data.as_str().unwrap_or("").to_string(),
            "application/json" if data.get("type").and_then(Value::as_str) == Some("table") => {
                table_summary(data)
            }
            "text/html" => "[HTML output]".to_string(),
            "image/png" => "[image]".to_string(),
            m if m.contains("plotly") || m.contains("vegalite") => "[chart]".to_string(),
            other => format!("[{other} output]"),
        };
        parts.push(text);
    }
    truncate_head(&parts.join("\n"), max_chars)
}

fn table_summary(data: &Value) -> String {
    let columns: Vec<&str> = data
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows = data.get("rows").and_then(Value::as_array);
    let count = rows.map_or(0, Vec::len);
    let truncated = data.get("truncated").and_then(Value::as_bool) == Some(true);
    let mut text = format!(
        "table: {count}{} rows x {} columns ({})",
        if truncated { "+" } else { "" },
        columns.len(),
        columns.join(", ")
    );
    for row in rows.into_iter().flatten().take(3) {
        text.push_str(&format!("\n  {row}"));
    }
    text
}

/// The first `max` characters (with an ellipsis when cut).
pub fn truncate_head(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The last `max` characters (with an ellipsis when cut).
pub fn truncate_tail(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let skip = count - max;
    let cut = text.char_indices().nth(skip).map_or(0, |(i, _)| i);
    format!("…{}", &text[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews() {
        let cell = json!({
            "stdout": "hello\n",
            "outputs": [
                {"mime_type": "text/plain", "data": "42"},
                {"mime_type": "application/json", "data": {"type": "table", "columns": ["a", "b"], "rows": [[1, 2]]}},
                {"mime_type": "image/png", "data": "AAAA"}
            ]
        });
        let p = output_preview(&cell, 400);
        assert!(
            p.starts_with("hello\n42\ntable: 1 rows x 2 columns (a, b)"),
            "{p}"
        );
        assert!(p.ends_with("[image]"), "{p}");
        assert_eq!(truncate_head("héllo", 2), "hé…");
        assert_eq!(truncate_tail("héllo", 3), "…llo");
    }

    #[test]
    fn tool_names_match_the_definitions() {
        let defined: Vec<String> = definitions()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tool| tool["name"].as_str().map(String::from))
            .collect();
        assert_eq!(defined, TOOL_NAMES);
        assert_eq!(metric_label("run_cell"), "run_cell");
        assert_eq!(metric_label("rm -rf /"), "unknown");
    }

    #[test]
    fn definitions_are_well_formed() {
        let defs = definitions();
        let names: Vec<&str> = defs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "get_notebook_state",
                "create_cell",
                "update_cell",
                "delete_cell",
                "run_cell"
            ]
        );
    }
}
