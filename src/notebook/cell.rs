//! The cell as clients see it, and the names it defines and reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The kinds of cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// Python code run in the notebook's kernel.
    Python,
    /// SQL run against the notebook's PostgreSQL connection.
    Sql,
    /// Markdown text: rendered by the UI, never executed, never part of the graph.
    Markdown,
}

impl CellType {
    /// Parses `python` / `sql` / `markdown`.
    pub fn parse(s: &str) -> Option<CellType> {
        match s {
            "python" => Some(CellType::Python),
            "sql" => Some(CellType::Sql),
            "markdown" => Some(CellType::Markdown),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CellType::Python => "python",
            CellType::Sql => "sql",
            CellType::Markdown => "markdown",
        }
    }

    /// Whether cells of this type run (markdown is only text).
    pub fn executes(self) -> bool {
        self != CellType::Markdown
    }
}

/// A parse error of a cell's code, with where it is (1-based), so an editor can mark it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SyntaxError {
    /// The whole message, e.g. `syntax error at line 2, column 5: missing )`.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based character column (1 when the analysis only knows the line).
    pub col: usize,
}

impl SyntaxError {
    /// Reads the position out of the analysis' message (`... at line L[, column C] ...`).
    pub fn from_message(message: &str) -> SyntaxError {
        let number_after = |key: &str| -> Option<usize> {
            let rest = &message[message.find(key)? + key.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        SyntaxError {
            message: message.to_string(),
            line: number_after("line ").unwrap_or(1).max(1),
            col: number_after("column ").unwrap_or(1).max(1),
        }
    }
}

/// Lifecycle state of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellStatus {
    /// Not run (or its values are gone).
    Idle,
    /// Waiting for its turn in a run.
    Queued,
    /// Executing now.
    Running,
    /// Finished without error.
    Success,
    /// Finished with an error.
    Error,
    /// Not run because something upstream failed.
    Blocked,
    /// Its outputs are out of date: its code changed since it ran, an ancestor is stale, or
    /// its values died with a kernel. The outputs are kept and shown dimmed.
    Stale,
}

impl CellStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CellStatus::Idle => "idle",
            CellStatus::Queued => "queued",
            CellStatus::Running => "running",
            CellStatus::Success => "success",
            CellStatus::Error => "error",
            CellStatus::Blocked => "blocked",
            CellStatus::Stale => "stale",
        }
    }
}

/// A cell in the wire format of the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Cell {
    /// Cell id.
    pub id: String,
    /// `python`, `sql` or `markdown`.
    #[serde(rename = "type")]
    pub cell_type: CellType,
    /// Source code.
    pub code: String,
    /// Last status.
    pub status: CellStatus,
    /// Captured stdout/stderr of the last run.
    pub stdout: String,
    /// Rich outputs of the last run (`{"mime_type","data","metadata"}`).
    pub outputs: Vec<Value>,
    /// Error of the last run (or a graph error).
    pub error: Option<String>,
    /// Names the cell reads.
    pub reads: Vec<String>,
    /// Names the cell defines.
    pub writes: Vec<String>,
    /// The Python name a SQL cell's result is bound to (None for Python cells).
    pub result_name: Option<String>,
    /// The code's parse error, found while typing (before any run); None when it parses.
    #[serde(default)]
    pub syntax_error: Option<SyntaxError>,
}

/// Checks a SQL cell's result name: a Python identifier that is not a keyword; the error
/// says what is wrong.
pub fn validate_result_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid_start = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_alphanumeric() || c == '_') {
        return Err(format!(
            "result_name '{name}' is not a valid Python identifier (letters, digits and '_', \
             not starting with a digit)"
        ));
    }
    if crate::notebook::analysis::is_keyword(name) {
        return Err(format!("result_name '{name}' is a Python keyword"));
    }
    Ok(())
}

/// The default result name for a new SQL cell: `df_<n>` with the smallest positive `n` that
/// no name in `taken` uses.
pub fn default_result_name<'a>(taken: impl Iterator<Item = &'a str> + Clone) -> String {
    (1u64..)
        .map(|n| format!("df_{n}"))
        .find(|candidate| !taken.clone().any(|t| t == candidate))
        .unwrap_or_else(|| "df".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_error_position_is_read_from_the_message() {
        let e = SyntaxError::from_message("syntax error at line 3, column 7: missing )");
        assert_eq!((e.line, e.col), (3, 7));
        let e = SyntaxError::from_message("syntax error at line 2: unexpected indent");
        assert_eq!((e.line, e.col), (2, 1));
        let e = SyntaxError::from_message("python parser failed");
        assert_eq!((e.line, e.col), (1, 1));
    }
}
