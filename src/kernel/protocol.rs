//! Wire format between the server and `driver.py`: one JSON object per line.

use serde::{Deserialize, Serialize};
use tokio::sync::OwnedSemaphorePermit;

use super::Output;

/// A command sent to the driver on its fd 3.
#[derive(Serialize, Debug)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Command<'a> {
    Execute {
        id: u64,
        code: &'a str,
        forget: &'a [String],
    },
    /// Run several cells back to back; each step reports `started`, streams and `done`.
    Plan {
        id: u64,
        steps: &'a [PlanStepWire<'a>],
    },
    /// Skip the steps of plan `id` that have not started (taken by the driver's reader at once).
    CancelPlan {
        id: u64,
    },
    Forget {
        id: u64,
        names: &'a [String],
    },
    GetValues {
        id: u64,
        names: &'a [String],
    },
    /// Run SQL on the kernel's embedded DuckDB; `names` are the values of `$1..$n`.
    Sql {
        id: u64,
        code: &'a str,
        names: &'a [String],
        result_name: Option<&'a str>,
    },
    /// Bind a query result (columns, rows) to a name as a DataFrame (or list of dicts).
    BindTable {
        id: u64,
        name: &'a str,
        columns: &'a serde_json::Value,
        rows: &'a serde_json::Value,
    },
    /// Completions at `cursor` (a code point offset); answered by `introspected`, on a helper
    /// thread of the driver, so also while a cell runs.
    Complete {
        id: u64,
        code: &'a str,
        cursor: usize,
    },
    /// Signature and docstring of the name at `cursor`; answered like `Complete`.
    Inspect {
        id: u64,
        code: &'a str,
        cursor: usize,
    },
    /// Type and short summary of each of `names` that is defined; answered like `Complete`.
    Variables {
        id: u64,
        names: &'a [String],
    },
    Shutdown,
}

/// One step of a [`Command::Plan`]: its command id, code, and the step ids it depends on.
#[derive(Serialize, Debug)]
pub(crate) struct PlanStepWire<'a> {
    pub id: u64,
    pub code: &'a str,
    pub parents: Vec<u64>,
}

impl Command<'_> {
    /// Serialized command line, newline-terminated.
    pub(crate) fn to_line(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut line = serde_json::to_vec(self)?;
        line.push(b'\n');
        Ok(line)
    }
}

/// Final status of a cell as reported by the driver.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DoneStatus {
    Ok,
    Error,
    Interrupted,
    /// A plan step not run because a parent failed in the same plan.
    Blocked,
    /// A plan step not run because the plan was interrupted or cancelled.
    Cancelled,
}

/// A message from the driver on its fd 4.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum DriverMsg {
    Ready {
        pid: Option<u32>,
        version: Option<String>,
    },
    Stream {
        id: Option<u64>,
        name: String,
        text: String,
    },
    Output {
        id: Option<u64>,
        output: Output,
    },
    /// The driver dropped an output over its own size cap instead of sending it.
    Dropped {
        id: Option<u64>,
        bytes: Option<u64>,
    },
    /// A plan step begins.
    Started {
        id: Option<u64>,
    },
    Done {
        id: Option<u64>,
        status: DoneStatus,
        error: Option<String>,
    },
    Values {
        id: Option<u64>,
        values: Option<Vec<serde_json::Value>>,
        missing: Option<String>,
        /// The conversion was stopped by SIGINT.
        #[serde(default)]
        interrupted: bool,
    },
    Forgot {
        id: Option<u64>,
    },
    /// The answer to an introspection command (`complete`, `inspect`, `variables`); its shape
    /// is checked by whoever asked (see `api/introspect.rs`).
    Introspected {
        id: Option<u64>,
        result: serde_json::Value,
    },
}

/// What the reader task hands to the kernel: a message, or why the stream ended.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A message and the length of the line that carried it, holding its share of the
    /// reader's byte budget until it is taken.
    Msg(DriverMsg, usize, OwnedSemaphorePermit),
    /// The pipe closed (`None`) or broke the protocol (`Some(reason)`).
    Closed(Option<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages() {
        let m: DriverMsg =
            serde_json::from_str(r#"{"type":"done","id":3,"status":"error","error":"x"}"#).unwrap();
        assert!(matches!(
            m,
            DriverMsg::Done {
                id: Some(3),
                status: DoneStatus::Error,
                ..
            }
        ));
        assert!(serde_json::from_str::<DriverMsg>(r#"{"type":"bogus"}"#).is_err());
    }

    #[test]
    fn serializes_commands() {
        let names = vec!["a".to_string()];
        let line = Command::GetValues {
            id: 1,
            names: &names,
        }
        .to_line()
        .unwrap();
        assert_eq!(
            line,
            b"{\"op\":\"get_values\",\"id\":1,\"names\":[\"a\"]}\n"
        );
    }
}
