//! The cell as clients see it, and the names it defines and reads.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The two kinds of cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellType {
    /// Python code run in the notebook's kernel.
    Python,
    /// SQL run against the notebook's PostgreSQL connection.
    Sql,
}

impl CellType {
    /// Parses `python` / `sql`.
    pub fn parse(s: &str) -> Option<CellType> {
        match s {
            "python" => Some(CellType::Python),
            "sql" => Some(CellType::Sql),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CellType::Python => "python",
            CellType::Sql => "sql",
        }
    }
}

/// Lifecycle state of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Cell id.
    pub id: String,
    /// `python` or `sql`.
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
