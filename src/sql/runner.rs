//! TEMPORARY compile stub (replaced by the real runner).
use std::ops::Range;
pub struct SqlRequest<'a> {
    pub conn_string: &'a str,
    pub code: &'a str,
    pub placeholders: &'a [(Range<usize>, String)],
    pub values: &'a [serde_json::Value],
    pub timeout: std::time::Duration,
    pub max_rows: usize,
}
pub enum SqlOutcome {
    Table(serde_json::Value),
    Affected { command: String, rows: u64 },
}
#[derive(thiserror::Error, Debug)]
pub enum SqlError {
    #[error("no connection")]
    NoConnection,
    #[error("cancelled")]
    Cancelled,
}
#[derive(Clone, Default)]
pub struct SqlCanceller;
impl SqlCanceller {
    pub fn cancel(&self) {}
}
pub async fn run_sql(_r: SqlRequest<'_>, _c: &SqlCanceller) -> Result<SqlOutcome, SqlError> {
    Err(SqlError::NoConnection)
}
pub fn values_order(p: &[(Range<usize>, String)]) -> Vec<String> {
    p.iter().map(|x| x.1.clone()).collect()
}
