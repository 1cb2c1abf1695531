//! Percent-format Python scripts (`# %%` cells), the format jupytext, VS Code and Spyder read.
//!
//! Written the way jupytext writes it: markdown cells as `# %% [markdown]` with every line
//! commented, IPython magics commented out (`# %time`), SQL cells as
//! `# %% reactive_notebook={...} language="sql"` with the query commented (jupytext reads that
//! back as a `%%sql` cell), so the script stays valid Python. Reading also accepts `#%%`,
//! `[md]`, `[raw]` (as a fenced markdown cell) and `[sql]` with an uncommented query.

use serde_json::{json, Map, Value};

use super::ipynb::{raw_as_markdown, METADATA_KEY, SQL_MAGIC};
use super::magics::{comment_out, escape_for_script, uncomment, unescape_from_script};
use super::{CellKind, ExportNotebook, ParsedCell, MARKDOWN};

const HEADER: &str = "\
# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
";

/// The notebook as a percent-format script.
pub fn export(notebook: &ExportNotebook) -> String {
    let mut out = String::from(HEADER);
    for cell in &notebook.cells {
        out.push('\n');
        match cell.cell_type.as_str() {
            MARKDOWN => {
                out.push_str("# %% [markdown]\n");
                push_body(&mut out, &comment_out(&cell.code));
            }
            "sql" => {
                let meta = json!({ "type": "sql", "result_name": cell.result_name });
                out.push_str(&format!(
                    "# %% {METADATA_KEY}={} language=\"sql\"\n",
                    jupytext_json(&meta)
                ));
                push_body(&mut out, &comment_out(&cell.code));
            }
            _ => {
                out.push_str("# %%\n");
                push_body(&mut out, &escape_for_script(&cell.code));
            }
        }
    }
    out
}

/// JSON as Python's `json.dumps` writes it (`", "` and `": "`), like jupytext's headers.
fn jupytext_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), jupytext_json(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(jupytext_json).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn push_body(out: &mut String, body: &str) {
    let body = body.trim_end_matches('\n');
    if !body.is_empty() {
        out.push_str(body);
        out.push('\n');
    }
}

/// A cell marker's options: `[type]` and `key=json` metadata (a title is ignored).
#[derive(Default)]
struct Marker {
    kind: Option<String>,
    metadata: Map<String, Value>,
}

/// The text after `%%` if `line` is a cell marker (`# %%`, `#%%`, then a space or the end).
fn marker_rest(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("# %%")
        .or_else(|| line.strip_prefix("#%%"))?;
    (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some(rest)
}

fn parse_marker(rest: &str) -> Marker {
    let mut marker = Marker::default();
    let mut s = rest.trim_start();
    while !s.is_empty() {
        if let Some(after) = s.strip_prefix('[') {
            if let Some(end) = after.find(']') {
                marker.kind = Some(after[..end].trim().to_ascii_lowercase());
                s = after[end + 1..].trim_start();
                continue;
            }
        }
        let word_end = s.find(char::is_whitespace).unwrap_or(s.len());
        let key_end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(s.len());
        if key_end > 0 && s[key_end..].starts_with('=') {
            let value_text = &s[key_end + 1..];
            let mut values = serde_json::Deserializer::from_str(value_text).into_iter::<Value>();
            if let Some(Ok(value)) = values.next() {
                marker.metadata.insert(s[..key_end].to_string(), value);
                s = value_text[values.byte_offset()..].trim_start();
                continue;
            }
        }
        // Part of a title.
        s = s[word_end..].trim_start();
    }
    marker
}

/// Drops leading and trailing blank lines.
fn trim_blank_lines(lines: &[&str]) -> String {
    let start = lines.iter().position(|l| !l.trim().is_empty());
    let end = lines.iter().rposition(|l| !l.trim().is_empty());
    match (start, end) {
        (Some(s), Some(e)) => lines[s..=e].join("\n"),
        _ => String::new(),
    }
}

fn all_commented(body: &str) -> bool {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| l.trim_start().starts_with('#'))
}

fn make_cell(marker: &Marker, body: &str) -> ParsedCell {
    let ours = marker.metadata.get(METADATA_KEY);
    let result_name = ours
        .and_then(|m| m.get("result_name"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let marked_sql = ours.and_then(|m| m.get("type")).and_then(Value::as_str) == Some("sql");
    let language_sql = marker.metadata.get("language").and_then(Value::as_str) == Some("sql");
    match marker.kind.as_deref() {
        Some("markdown" | "md") => ParsedCell::new(CellKind::Markdown, uncomment(body)),
        Some("raw") => ParsedCell::new(CellKind::Markdown, raw_as_markdown(&uncomment(body))),
        Some("sql") => {
            let code = if all_commented(body) {
                uncomment(body)
            } else {
                body.to_string()
            };
            ParsedCell {
                kind: CellKind::Sql,
                code,
                result_name,
            }
        }
        _ if language_sql || marked_sql => ParsedCell {
            kind: CellKind::Sql,
            code: if all_commented(body) {
                uncomment(body)
            } else {
                body.to_string()
            },
            result_name,
        },
        _ => {
            let code = unescape_from_script(body);
            match code.split_once('\n') {
                Some((first, rest)) if first.trim() == SQL_MAGIC => ParsedCell {
                    kind: CellKind::Sql,
                    code: rest.to_string(),
                    result_name,
                },
                None if code.trim() == SQL_MAGIC => ParsedCell {
                    kind: CellKind::Sql,
                    code: String::new(),
                    result_name,
                },
                _ => ParsedCell::new(CellKind::Python, code),
            }
        }
    }
}

/// Reads the cells of a percent-format script. Any text is a valid script: code before the
/// first marker becomes a Python cell; a leading jupytext YAML header is skipped.
pub fn import(content: &str) -> Vec<ParsedCell> {
    let content = content.replace("\r\n", "\n");
    let mut lines: Vec<&str> = content.lines().collect();
    // The YAML header: `# ---` first (after blank lines) up to the next `# ---`.
    if let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) {
        if lines[first].trim_end() == "# ---" {
            if let Some(end) = lines[first + 1..]
                .iter()
                .position(|l| l.trim_end() == "# ---")
            {
                lines.drain(..first + end + 2);
            }
        }
    }
    let mut cells = Vec::new();
    let mut marker: Option<Marker> = None;
    let mut body: Vec<&str> = Vec::new();
    for line in lines {
        if let Some(rest) = marker_rest(line) {
            flush(&mut cells, marker.take(), &body);
            body.clear();
            marker = Some(parse_marker(rest));
        } else {
            body.push(line);
        }
    }
    flush(&mut cells, marker, &body);
    cells
}

fn flush(cells: &mut Vec<ParsedCell>, marker: Option<Marker>, body: &[&str]) {
    let text = trim_blank_lines(body);
    match marker {
        Some(marker) => cells.push(make_cell(&marker, &text)),
        // Text before the first marker: a cell only if there is any.
        None if !text.is_empty() => cells.push(make_cell(&Marker::default(), &text)),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_options() {
        let m = parse_marker(r#" Some title [markdown] tags=["a", "b"] x={"k": 1}"#);
        assert_eq!(m.kind.as_deref(), Some("markdown"));
        assert_eq!(m.metadata["tags"], json!(["a", "b"]));
        assert_eq!(m.metadata["x"], json!({"k": 1}));
        assert!(marker_rest("# %%time").is_none());
        assert_eq!(marker_rest("#%%"), Some(""));
    }

    #[test]
    fn reads_cells_in_order() {
        let text = "import os\n\n# %% [markdown]\n# # Title\n#\n# text\n\n# %% [sql]\nSELECT 1\n\
                    # %%\n# %matplotlib inline\nx = 1\n";
        let cells = import(text);
        let kinds: Vec<CellKind> = cells.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                CellKind::Python,
                CellKind::Markdown,
                CellKind::Sql,
                CellKind::Python
            ]
        );
        assert_eq!(cells[1].code, "# Title\n\ntext");
        assert_eq!(cells[2].code, "SELECT 1");
        assert_eq!(cells[3].code, "%matplotlib inline\nx = 1");
    }
}
