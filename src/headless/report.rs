//! The end of a run: what failed and why on stderr, a one-line summary, the output file (with
//! the project's own exporters), and the exit code.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::notebook::io::{self, ipynb, ExportCell, ExportNotebook, Format};

use super::input::Notebook;
use super::params::Param;
use super::runner::{CellRun, Outcome, RunResults};
use super::{HeadlessError, EXIT_FAILED, EXIT_OK};

/// Reports the run, writes the output file if one was asked for, and answers the exit code.
/// A stopped run writes nothing: its outputs are partial and nobody waits for them.
pub fn conclude(
    notebook: &Notebook,
    params: &[Param],
    results: &RunResults,
    output: Option<&(PathBuf, Format)>,
) -> Result<i32, HeadlessError> {
    if let Some(signal) = results.stopped {
        eprintln!("{}", signal.message());
        return Ok(signal.exit_code());
    }
    for (i, run) in results.cells.iter().enumerate() {
        if let (
            Some(cell),
            Some(CellRun {
                outcome: Outcome::Failed(error),
                ..
            }),
        ) = (notebook.cells.get(i), run)
        {
            eprintln!("error: {} failed:\n{}", cell.label(i), indent(error));
        }
    }
    for name in &results.unapplied {
        eprintln!(
            "warning: --param {name} was not applied: the cell defining it did not run \
             successfully"
        );
    }
    let counts = Counts::of(results);
    eprintln!("{}", counts.summary());
    if let Some((path, format)) = output {
        write_output(notebook, params, results, path, *format)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(if counts.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Each line of a traceback indented, so it reads as belonging to the line above.
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many cells ended each way.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    ok: usize,
    failed: usize,
    blocked: usize,
    not_run: usize,
}

impl Counts {
    fn of(results: &RunResults) -> Counts {
        let mut counts = Counts::default();
        for run in results.cells.iter().flatten() {
            match run.outcome {
                Outcome::Ok => counts.ok += 1,
                Outcome::Failed(_) => counts.failed += 1,
                Outcome::Blocked { .. } => counts.blocked += 1,
                Outcome::NotRun(_) => counts.not_run += 1,
            }
        }
        counts
    }

    fn all_ok(&self) -> bool {
        self.failed == 0 && self.blocked == 0 && self.not_run == 0
    }

    fn summary(&self) -> String {
        let total = self.ok + self.failed + self.blocked + self.not_run;
        if self.all_ok() {
            return format!("{total} cell{} ran ok", if total == 1 { "" } else { "s" });
        }
        let mut parts = vec![format!("{} ok", self.ok), format!("{} failed", self.failed)];
        if self.blocked > 0 {
            parts.push(format!("{} blocked", self.blocked));
        }
        if self.not_run > 0 {
            parts.push(format!("{} not run", self.not_run));
        }
        format!("run failed: {total} cells, {}", parts.join(", "))
    }
}

/// The notebook with its results, in the shape the exporters take (the server's snapshot).
pub fn export_notebook(notebook: &Notebook, results: &RunResults) -> ExportNotebook {
    let cells = notebook
        .cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let run = results.cells.get(i).and_then(Option::as_ref);
            ExportCell {
                id: cell.id.clone(),
                cell_type: cell.cell_type.as_str().to_string(),
                code: cell.code.clone(),
                stdout: run.map(|r| r.stdout.clone()).unwrap_or_default(),
                outputs: run.map(|r| r.outputs.clone()).unwrap_or_default(),
                // Blocked and not-run cells show nothing, as the server's blocked cells do.
                error: run.and_then(|r| match &r.outcome {
                    Outcome::Failed(error) => Some(error.clone()),
                    _ => None,
                }),
                result_name: cell.result_name.clone(),
            }
        })
        .collect();
    ExportNotebook {
        name: notebook.name.clone(),
        cells,
    }
}

/// Writes the run's notebook as `.ipynb` (recording the parameters in its metadata, as
/// papermill does) or `.html`.
fn write_output(
    notebook: &Notebook,
    params: &[Param],
    results: &RunResults,
    path: &Path,
    format: Format,
) -> Result<(), HeadlessError> {
    let exported = export_notebook(notebook, results);
    let text = match format {
        Format::Ipynb => {
            let mut doc = ipynb::export(&exported);
            record_params(&mut doc, params);
            ipynb::to_text(&doc)
        }
        other => io::render(other, &exported),
    };
    let write_error = |message: String| HeadlessError::Write {
        path: path.to_path_buf(),
        message,
    };
    let text = text.map_err(|e| write_error(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| write_error(e.to_string()))
}

/// `metadata.reactive_notebook.parameters`: the overrides this run used, as given.
fn record_params(doc: &mut Value, params: &[Param]) {
    if params.is_empty() {
        return;
    }
    let given: Map<String, Value> = params
        .iter()
        .map(|p| (p.name.clone(), json!(p.value)))
        .collect();
    if let Some(ours) = doc
        .pointer_mut(&format!("/metadata/{}", ipynb::METADATA_KEY))
        .and_then(Value::as_object_mut)
    {
        ours.insert("parameters".into(), Value::Object(given));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(outcome: Outcome) -> Option<CellRun> {
        Some(CellRun {
            outcome,
            stdout: String::new(),
            outputs: Vec::new(),
            elapsed: Duration::ZERO,
        })
    }

    #[test]
    fn the_summary_counts_every_ending() {
        let results = RunResults {
            cells: vec![
                run(Outcome::Ok),
                None,
                run(Outcome::Failed("x".into())),
                run(Outcome::Blocked { by: 2 }),
            ],
            ..RunResults::default()
        };
        let counts = Counts::of(&results);
        assert!(!counts.all_ok());
        assert_eq!(
            counts.summary(),
            "run failed: 3 cells, 1 ok, 1 failed, 1 blocked"
        );
        let fine = RunResults {
            cells: vec![run(Outcome::Ok), None],
            ..RunResults::default()
        };
        assert_eq!(Counts::of(&fine).summary(), "1 cell ran ok");
    }

    #[test]
    fn parameters_are_recorded_in_the_notebook_metadata() {
        let mut doc = ipynb::export(&ExportNotebook {
            name: "n".into(),
            cells: Vec::new(),
        });
        let params = [Param {
            name: "n".into(),
            value: "3".into(),
        }];
        record_params(&mut doc, &params);
        assert_eq!(doc["metadata"]["reactive_notebook"]["parameters"]["n"], "3");
    }
}
