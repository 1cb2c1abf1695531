//! Jupyter notebooks (nbformat 4.5): export with outputs as MIME bundles, import of cells.
//!
//! SQL cells are code cells whose source starts with `%%sql` (the ipython-sql cell magic) and
//! whose metadata says `{"reactive_notebook": {"type": "sql", "result_name": ...}}`, so a round
//! trip restores them and Jupyter with ipython-sql can still run the query.

use serde_json::{json, Map, Value};

use super::html::{image_data_uri, is_table, table_html, table_text, TABLE_MIME};
use super::MARKDOWN;
use super::{lines_of, multiline, CellKind, ExportCell, ExportNotebook, ImportError, ParsedCell};

/// Key of this application's metadata in notebook and cell metadata.
pub const METADATA_KEY: &str = "reactive_notebook";

/// The first source line of a SQL cell in Jupyter.
pub const SQL_MAGIC: &str = "%%sql";

/// Largest accepted source of one imported cell (the same bound as a cell edit's body).
const MAX_CELL_BYTES: usize = crate::api::body::MAX_BODY_BYTES;

/// A Jupyter cell id: 1-64 of `[A-Za-z0-9_-]` (ours are UUIDs, so this only guards the rule).
fn cell_id(id: &str, index: usize) -> String {
    let clean: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        format!("cell-{index}")
    } else {
        clean
    }
}

/// A text MIME value as Jupyter stores it (a list of lines); other values as they are.
fn text_value(data: &Value) -> Value {
    match data {
        Value::String(s) => json!(lines_of(s)),
        other => Value::String(other.to_string()),
    }
}

/// Whether Jupyter stores this MIME type's data as JSON (any value) rather than text.
fn is_json_mime(mime: &str) -> bool {
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// One of our outputs as a `display_data` output with a MIME bundle.
fn rich_output(output: &Value) -> Option<Value> {
    let mime = output.get("mime_type")?.as_str()?;
    let data = output.get("data").unwrap_or(&Value::Null);
    let metadata = match output.get("metadata") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => json!({}),
    };
    let mut bundle = Map::new();
    if mime == "application/json" && is_table(data) {
        bundle.insert("text/html".into(), json!(lines_of(&table_html(data))));
        bundle.insert("text/plain".into(), json!(lines_of(&table_text(data))));
        bundle.insert(TABLE_MIME.into(), data.clone());
    } else if is_json_mime(mime) {
        bundle.insert(mime.into(), data.clone());
        bundle.insert("text/plain".into(), json!(format!("<{mime} output>")));
    } else if mime.starts_with("image/") && mime != "image/svg+xml" {
        // Base64 text; Jupyter keeps it as one string.
        bundle.insert(mime.into(), Value::String(data.as_str()?.to_string()));
        bundle.insert("text/plain".into(), json!("<image>"));
    } else {
        bundle.insert(mime.into(), text_value(data));
        if mime != "text/plain" {
            bundle.insert("text/plain".into(), json!(format!("<{mime} output>")));
        }
    }
    Some(json!({ "output_type": "display_data", "data": bundle, "metadata": metadata }))
}

/// An error text (a Python traceback or a SQL error) as an `error` output.
fn error_output(error: &str) -> Value {
    let last = error
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("Error")
        .trim();
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
    };
    let (ename, evalue) = match last.split_once(": ") {
        Some((name, value)) if is_name(name) => (name, value),
        _ if is_name(last) => (last, ""),
        _ => ("Error", last),
    };
    json!({
        "output_type": "error",
        "ename": ename,
        "evalue": evalue,
        "traceback": error.lines().collect::<Vec<_>>(),
    })
}

fn outputs(cell: &ExportCell) -> Vec<Value> {
    let mut out = Vec::new();
    if !cell.stdout.is_empty() {
        out.push(
            json!({ "output_type": "stream", "name": "stdout", "text": lines_of(&cell.stdout) }),
        );
    }
    out.extend(cell.outputs.iter().filter_map(rich_output));
    if let Some(error) = &cell.error {
        out.push(error_output(error));
    }
    out
}

fn export_cell(index: usize, cell: &ExportCell) -> Value {
    let id = cell_id(&cell.id, index);
    match cell.cell_type.as_str() {
        MARKDOWN => json!({
            "id": id,
            "cell_type": "markdown",
            "metadata": {},
            "source": lines_of(&cell.code),
        }),
        "sql" => json!({
            "id": id,
            "cell_type": "code",
            "execution_count": null,
            "metadata": { METADATA_KEY: { "type": "sql", "result_name": cell.result_name } },
            "source": lines_of(&format!("{SQL_MAGIC}\n{}", cell.code)),
            "outputs": outputs(cell),
        }),
        _ => json!({
            "id": id,
            "cell_type": "code",
            "execution_count": null,
            "metadata": {},
            "source": lines_of(&cell.code),
            "outputs": outputs(cell),
        }),
    }
}

/// The notebook as an nbformat 4.5 document.
pub fn export(notebook: &ExportNotebook) -> Value {
    let cells: Vec<Value> = notebook
        .cells
        .iter()
        .enumerate()
        .map(|(i, c)| export_cell(i, c))
        .collect();
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": { "name": "python3", "display_name": "Python 3", "language": "python" },
            "language_info": {
                "name": "python",
                "file_extension": ".py",
                "mimetype": "text/x-python",
            },
            METADATA_KEY: { "name": notebook.name },
        },
        "cells": cells,
    })
}

/// An nbformat document as file text: indented JSON ending with a newline, as Jupyter saves it.
pub fn to_text(doc: &Value) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    Ok(text)
}

fn bad(msg: impl Into<String>) -> ImportError {
    ImportError(msg.into())
}

/// Refuses notebooks of another language (an R or Julia notebook would not run here).
fn check_language(metadata: Option<&Value>) -> Result<(), ImportError> {
    let Some(metadata) = metadata else {
        return Ok(());
    };
    let declared = [
        metadata.pointer("/kernelspec/language"),
        metadata.pointer("/language_info/name"),
    ];
    for lang in declared.into_iter().flatten().filter_map(Value::as_str) {
        if !lang.eq_ignore_ascii_case("python") {
            return Err(bad(format!(
                "this is a {lang} notebook; only Python notebooks can be imported"
            )));
        }
    }
    Ok(())
}

/// Replaces `attachment:NAME` image references in markdown with inline data URIs, so pasted
/// images survive (a markdown cell here has no attachment store).
fn inline_attachments(source: &str, attachments: Option<&Value>) -> String {
    let Some(Value::Object(attachments)) = attachments else {
        return source.to_string();
    };
    let mut text = source.to_string();
    for (name, bundle) in attachments {
        let Some(bundle) = bundle.as_object() else {
            continue;
        };
        let image = bundle.iter().find_map(|(mime, data)| {
            let raster = matches!(
                mime.as_str(),
                "image/png" | "image/jpeg" | "image/gif" | "image/webp"
            );
            raster
                .then(|| multiline(data))
                .flatten()
                .and_then(|d| image_data_uri(mime, &d))
        });
        if let Some(uri) = image {
            text = text.replace(&format!("attachment:{name}"), &uri);
        }
    }
    text
}

/// A raw cell becomes a markdown cell showing its text verbatim in a code fence.
pub(crate) fn raw_as_markdown(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}\n{text}\n{fence}")
}

/// A code cell: SQL when its metadata says so or its first line is `%%sql` alone.
fn code_cell(source: String, metadata: Option<&Value>) -> ParsedCell {
    let ours = metadata.and_then(|m| m.get(METADATA_KEY));
    let marked_sql = ours.and_then(|m| m.get("type")).and_then(Value::as_str) == Some("sql");
    let (first, rest) = source.split_once('\n').unwrap_or((&source, ""));
    let magic_sql = first.trim() == SQL_MAGIC;
    if !(marked_sql || magic_sql) {
        return ParsedCell::new(CellKind::Python, source);
    }
    let code = if magic_sql {
        rest.to_string()
    } else {
        source.clone()
    };
    ParsedCell {
        kind: CellKind::Sql,
        code,
        result_name: ours
            .and_then(|m| m.get("result_name"))
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Reads the cells of an `.ipynb` file; outputs are not imported. A malformed file is an error
/// that names the problem (and the cell, counted from 1).
pub fn import(content: &str) -> Result<Vec<ParsedCell>, ImportError> {
    let doc: Value = serde_json::from_str(content)
        .map_err(|e| bad(format!("not a Jupyter notebook: invalid JSON ({e})")))?;
    let doc = doc
        .as_object()
        .ok_or_else(|| bad("not a Jupyter notebook: the document is not a JSON object"))?;
    match doc.get("nbformat") {
        Some(v) if v.as_u64() == Some(4) => {}
        Some(v) => {
            return Err(bad(format!(
                "unsupported nbformat {v}: only nbformat 4 notebooks can be imported \
                 (convert it with `jupyter nbconvert --to notebook`)"
            )))
        }
        None => return Err(bad("not a Jupyter notebook: no \"nbformat\" field")),
    }
    check_language(doc.get("metadata"))?;
    let cells = doc
        .get("cells")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("not a Jupyter notebook: no \"cells\" list"))?;
    let mut parsed = Vec::with_capacity(cells.len());
    for (i, cell) in cells.iter().enumerate() {
        let n = i + 1;
        let cell = cell
            .as_object()
            .ok_or_else(|| bad(format!("cell {n} is not a JSON object")))?;
        let cell_type = cell
            .get("cell_type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("cell {n} has no cell_type")))?;
        let source = cell.get("source").and_then(multiline).ok_or_else(|| {
            bad(format!(
                "cell {n} has no source (it must be a string or a list of strings)"
            ))
        })?;
        if source.len() > MAX_CELL_BYTES {
            return Err(bad(format!(
                "cell {n} is larger than {MAX_CELL_BYTES} bytes"
            )));
        }
        let source = source.replace("\r\n", "\n");
        parsed.push(match cell_type {
            "code" => code_cell(source, cell.get("metadata")),
            "markdown" => ParsedCell::new(
                CellKind::Markdown,
                inline_attachments(&source, cell.get("attachments")),
            ),
            "raw" => ParsedCell::new(CellKind::Markdown, raw_as_markdown(&source)),
            other => {
                return Err(bad(format!(
                    "cell {n} has an unknown cell_type {other:?} (expected code, markdown or raw)"
                )))
            }
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_output_splits_the_last_line() {
        let e =
            error_output("Traceback (most recent call last):\n  File x\nValueError: bad: worse");
        assert_eq!(e["ename"], "ValueError");
        assert_eq!(e["evalue"], "bad: worse");
        let e = error_output("syntax error at line 1");
        assert_eq!(e["ename"], "Error");
    }

    #[test]
    fn raw_fence_is_longer_than_any_backtick_run() {
        assert_eq!(raw_as_markdown("a ```` b"), "`````\na ```` b\n`````");
        assert_eq!(raw_as_markdown("plain"), "```\nplain\n```");
    }
}
