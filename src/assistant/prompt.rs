//! The system prompt: what the notebook is, what is in it, and how it behaves.

use serde_json::Value;

use super::tools::{output_preview, truncate_head, truncate_tail};

/// Characters of code shown per cell in the prompt.
const CODE_CHARS: usize = 2000;

/// Characters of output shown per cell in the prompt.
const OUTPUT_CHARS: usize = 300;

const RULES: &str = "\
You are the assistant of a reactive notebook. You work on the notebook the way its user would, \
through tools; everyone who has the notebook open sees your edits live.

How the notebook works:
- Cells are Python or SQL. Python cells share one kernel; a cell's top-level names \
(assignments, imports, def, class) are visible to every other cell.
- It is reactive: a cell that reads a name depends on the cell that defines it. Running a cell \
re-runs all of its descendants, in dependency order. A cell whose upstream failed is `blocked`.
- Each name must be defined by exactly one cell; defining it in two cells is an error on both. \
Cycles are errors too. To change a definition, update the cell that owns it instead of adding \
another.
- The value of a Python cell's last expression is shown as its output.
- SQL cells run against the notebook's PostgreSQL database when one is configured, otherwise \
on DuckDB in the kernel, where the notebook's DataFrames are tables by name \
(`SELECT city, avg(temp) FROM df GROUP BY city`). \
`{name}` in SQL binds the Python value `name` as a query parameter (never string \
interpolation), e.g. `SELECT * FROM t WHERE id = {user_id}`; the SQL cell then depends on the \
cell defining `user_id`. A SQL cell's result is bound to its `result_name` (shown in the \
notebook state, e.g. `df_1`) as a pandas DataFrame that Python cells can read.

How to work:
- Creating or updating a cell does not run it; call run_cell and read its result.
- Use get_notebook_state to see the current cells when unsure; ids below may be stale after edits.
- Keep cells small and focused; fix errors you cause. Explain briefly what you did.";

/// The system prompt for a notebook snapshot (as `GET /api/notebooks/{id}` returns it).
pub fn system_prompt(snapshot: &Value) -> String {
    let name = snapshot
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("Untitled");
    let has_db = snapshot.get("db_conn_string").is_some_and(|v| !v.is_null());
    let mut text = String::from(RULES);
    text.push_str(&format!(
        "\n\nThe notebook is called \"{name}\". SQL database: {}.\n",
        if has_db {
            "configured"
        } else {
            "not configured (SQL cells run on the embedded DuckDB engine)"
        }
    ));
    let cells = snapshot
        .get("cells")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if cells.is_empty() {
        text.push_str("It has no cells yet.\n");
        return text;
    }
    text.push_str(&format!("Its {} cells, in order:\n", cells.len()));
    for (i, cell) in cells.iter().enumerate() {
        let field = |k: &str| cell.get(k).and_then(Value::as_str).unwrap_or("");
        text.push_str(&format!(
            "\n<cell index=\"{i}\" id=\"{}\" type=\"{}\" status=\"{}\">\n<code>\n{}\n</code>\n",
            field("id"),
            field("type"),
            field("status"),
            truncate_head(field("code"), CODE_CHARS),
        ));
        let output = output_preview(cell, OUTPUT_CHARS);
        if !output.is_empty() {
            text.push_str(&format!("<output>\n{output}\n</output>\n"));
        }
        let error = field("error");
        if !error.is_empty() {
            text.push_str(&format!(
                "<error>\n{}\n</error>\n",
                truncate_tail(error, OUTPUT_CHARS)
            ));
        }
        text.push_str("</cell>\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn describes_cells() {
        let snapshot = json!({
            "name": "Sales",
            "db_conn_string": null,
            "cells": [{"id": "c1", "type": "python", "code": "x = 1\nx", "status": "success",
                       "stdout": "", "outputs": [{"mime_type": "text/plain", "data": "1"}], "error": null}]
        });
        let p = system_prompt(&snapshot);
        assert!(p.contains("\"Sales\""));
        assert!(p.contains("id=\"c1\" type=\"python\" status=\"success\""));
        assert!(p.contains("<output>\n1\n</output>"));
        assert!(p.contains("{name}"));
    }
}
