//! Runs a notebook's cells in one kernel, in dependency order, the way a room's "Run all"
//! does: a cell with a graph error (a name defined twice, a cycle) fails without running, a
//! cell downstream of a failure is blocked, Python cells run in the kernel and SQL cells on
//! the kernel's embedded DuckDB (a file carries no database connection, and the server runs
//! SQL cells of a notebook without one exactly so). Parameters are assigned right after the
//! cell that defines them, before any reader runs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use crate::kernel::{ExecResult, Kernel, KernelConfig, KernelEvent};
use crate::notebook::analysis::sql_to_positional;
use crate::notebook::graph::{Graph, GraphCell};
use crate::notebook::CellType;

use super::input::{Cell, Notebook};
use super::params::Param;
use super::progress::Progress;
use super::signals::{Stop, StopSignal};

/// How a cell's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Ran without error.
    Ok,
    /// Failed: a traceback, a graph error, a timeout or the kernel's death, as text.
    Failed(String),
    /// Not run: the cell at this index (upstream) failed.
    Blocked {
        /// Index of the failed upstream cell.
        by: usize,
    },
    /// Not run for another reason (the kernel is gone, the run was stopped).
    NotRun(String),
}

/// One executable cell's result.
#[derive(Debug, Clone)]
pub struct CellRun {
    /// How it ended.
    pub outcome: Outcome,
    /// Its stdout and stderr, in the order written (as the server keeps them).
    pub stdout: String,
    /// Its rich outputs, `{"mime_type","data","metadata"}` as the server stores them.
    pub outputs: Vec<Value>,
    /// How long it ran.
    pub elapsed: Duration,
}

impl CellRun {
    fn settled(outcome: Outcome) -> CellRun {
        CellRun {
            outcome,
            stdout: String::new(),
            outputs: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct RunResults {
    /// Per cell of the notebook, by index; `None` for markdown.
    pub cells: Vec<Option<CellRun>>,
    /// The signal that stopped the run, if one did.
    pub stopped: Option<StopSignal>,
    /// Parameters never assigned because the cell defining them did not succeed.
    pub unapplied: Vec<String>,
}

/// One run of one notebook.
pub struct Runner<'a> {
    /// The notebook.
    pub notebook: &'a Notebook,
    /// Overrides to assign.
    pub params: &'a [Param],
    /// How to start the kernel.
    pub kernel: KernelConfig,
    /// Per-cell time limit.
    pub timeout: Duration,
    /// Where progress goes.
    pub progress: &'a Progress,
}

/// Why the kernel cannot run anything more.
enum Halt {
    /// The kernel died or was killed; the text is shown for every cell not run.
    KernelGone(String),
    /// A signal asked the run to stop.
    Stopped(StopSignal),
}

impl Runner<'_> {
    /// Runs every executable cell; the kernel is shut down (or killed) before this returns.
    pub async fn run(self, stop: &mut Stop) -> RunResults {
        let cells = &self.notebook.cells;
        let nodes: Vec<GraphCell> = cells
            .iter()
            .map(|c| GraphCell::of(&c.id, &c.names))
            .collect();
        let graph = Graph::build(&nodes);
        let index: HashMap<&str, usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.as_str(), i))
            .collect();
        let roots: Vec<&str> = cells
            .iter()
            .filter(|c| c.cell_type.executes())
            .map(|c| c.id.as_str())
            .collect();
        let order: Vec<usize> = graph
            .run_order_many(&roots)
            .iter()
            .filter_map(|id| index.get(id.as_str()).copied())
            .collect();

        let mut results = RunResults {
            cells: vec![None; cells.len()],
            ..RunResults::default()
        };
        // Failed or blocked cells, each with the failed cell at the root of it.
        let mut failed: HashMap<usize, usize> = HashMap::new();
        let mut applied: HashSet<String> = HashSet::new();
        let mut kernel: Option<Kernel> = None;
        let mut halt: Option<Halt> = None;

        for i in order {
            let Some(cell) = cells.get(i) else { continue };
            if let Some(signal) = stop.received() {
                halt = Some(Halt::Stopped(signal));
            }
            if let Some(Halt::Stopped(_)) = halt {
                // Stopping reports nothing more: the user is gone, not waiting for a list.
                break;
            }
            let label = cell.label(i);
            let run = if let Some(Halt::KernelGone(why)) = &halt {
                CellRun::settled(Outcome::NotRun(why.clone()))
            } else if let Some(error) = graph.errors().get(&cell.id) {
                failed.insert(i, i);
                CellRun::settled(Outcome::Failed(error.clone()))
            } else if let Some(root) = graph
                .parents(&cell.id)
                .iter()
                .filter_map(|p| index.get(p.as_str()))
                .find_map(|p| failed.get(p).copied())
            {
                failed.insert(i, root);
                CellRun::settled(Outcome::Blocked { by: root })
            } else {
                self.progress.started(&label);
                let (run, ended) = self
                    .run_cell(&mut kernel, i, cell, &mut applied, stop)
                    .await;
                if run.outcome != Outcome::Ok {
                    failed.insert(i, i);
                }
                halt = ended;
                run
            };
            self.progress.finished(&label, &run);
            if let Some(slot) = results.cells.get_mut(i) {
                *slot = Some(run);
            }
        }

        if let Some(kernel) = kernel.take() {
            kernel.shutdown().await;
        }
        results.stopped = match halt {
            Some(Halt::Stopped(signal)) => Some(signal),
            _ => None,
        };
        results.unapplied = self
            .params
            .iter()
            .filter(|p| !applied.contains(&p.name))
            .map(|p| p.name.clone())
            .collect();
        results
    }

    /// Runs one cell (starting the kernel first if needed), then assigns the parameters it
    /// defines. Answers its result and, if the kernel cannot go on, why.
    async fn run_cell(
        &self,
        kernel: &mut Option<Kernel>,
        i: usize,
        cell: &Cell,
        applied: &mut HashSet<String>,
        stop: &mut Stop,
    ) -> (CellRun, Option<Halt>) {
        let started = Instant::now();
        if kernel.is_none() {
            let spawned = tokio::select! {
                spawned = Kernel::spawn(&self.kernel) => Ok(spawned),
                signal = stop.wait() => Err(signal),
            };
            match spawned {
                Ok(Ok(fresh)) => *kernel = Some(fresh),
                Ok(Err(e)) => {
                    let why = format!("could not start the Python kernel: {e}");
                    return kernel_gone(why, "the Python kernel could not start");
                }
                Err(signal) => return stopped(signal, started),
            }
        }
        let Some(live) = kernel.as_mut() else {
            return kernel_gone(
                "the Python kernel is gone".into(),
                "the Python kernel is gone",
            );
        };
        let (mut run, mut halt) = self.execute(live, i, cell, stop).await;
        if run.outcome == Outcome::Ok {
            for param in self.params {
                if !cell.names.writes.contains(&param.name) {
                    continue;
                }
                let (assigned, ended) = self.assign(live, param, stop).await;
                halt = ended;
                if let Err(e) = assigned {
                    run.outcome = Outcome::Failed(e);
                    break;
                }
                applied.insert(param.name.clone());
            }
        }
        run.elapsed = started.elapsed();
        if let Some(Halt::Stopped(_)) = halt {
            run.outcome = Outcome::NotRun("stopped while running".into());
        }
        if halt.is_some() {
            // Killed (or dead): reap it now, so nothing is left when the run reports.
            if let Some(dead) = kernel.take() {
                dead.shutdown().await;
            }
        }
        (run, halt)
    }

    /// Runs the cell's code under the time limit, collecting what it prints and shows.
    async fn execute(
        &self,
        kernel: &mut Kernel,
        i: usize,
        cell: &Cell,
        stop: &mut Stop,
    ) -> (CellRun, Option<Halt>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let watchdog = Watchdog::start(kernel, self.timeout);
        let result = match cell.cell_type {
            CellType::Sql => {
                let (positional, names) = sql_to_positional(&cell.code);
                let work = kernel.execute_sql(&positional, &names, cell.result_name.as_deref(), tx);
                tokio::select! {
                    result = work => Ok(result),
                    signal = stop.wait() => Err(signal),
                }
            }
            _ => {
                let work = kernel.execute(&cell.code, &[], tx);
                tokio::select! {
                    result = work => Ok(result),
                    signal = stop.wait() => Err(signal),
                }
            }
        };
        let timed_out = watchdog.stop();
        // The kernel caps a cell's outputs, so what waits here is bounded.
        let mut run = CellRun::settled(Outcome::Ok);
        while let Ok(event) = rx.try_recv() {
            match event {
                KernelEvent::Stream { text, .. } => run.stdout.push_str(&text),
                KernelEvent::Output(output) => match serde_json::to_value(output) {
                    Ok(value) => run.outputs.push(value),
                    Err(e) => log::warn!("output of cell {} dropped: {e}", i + 1),
                },
            }
        }
        let result = match result {
            Ok(result) => result,
            Err(signal) => {
                kernel.interrupter().kill();
                return (run, Some(Halt::Stopped(signal)));
            }
        };
        let secs = self.timeout.as_secs();
        let (outcome, halt) = match result {
            ExecResult::Ok => (Outcome::Ok, None),
            ExecResult::Error(traceback) => (Outcome::Failed(traceback), None),
            ExecResult::Interrupted if timed_out => {
                (Outcome::Failed(format!("timed out after {secs} s")), None)
            }
            ExecResult::Interrupted => (Outcome::Failed("KeyboardInterrupt".into()), None),
            ExecResult::Died(_) if timed_out => (
                Outcome::Failed(format!(
                    "timed out after {secs} s (--timeout); the kernel was killed"
                )),
                Some(Halt::KernelGone(format!(
                    "the kernel was killed when cell {} timed out",
                    i + 1
                ))),
            ),
            // `reason` reads "kernel died (...)" or "kernel broke the protocol (...)".
            ExecResult::Died(reason) => (
                Outcome::Failed(format!("The {reason}")),
                Some(Halt::KernelGone(format!(
                    "the kernel died running cell {}",
                    i + 1
                ))),
            ),
        };
        run.outcome = outcome;
        (run, halt)
    }

    /// Assigns one parameter in the kernel; an error says why it could not be.
    async fn assign(
        &self,
        kernel: &mut Kernel,
        param: &Param,
        stop: &mut Stop,
    ) -> (Result<(), String>, Option<Halt>) {
        // Nothing is shown for an assignment; its events have nowhere to go.
        let (tx, _rx) = mpsc::unbounded_channel();
        let watchdog = Watchdog::start(kernel, self.timeout);
        let code = param.code();
        let result = tokio::select! {
            result = kernel.execute(&code, &[], tx) => Ok(result),
            signal = stop.wait() => Err(signal),
        };
        watchdog.stop();
        let name = &param.name;
        match result {
            Ok(ExecResult::Ok) => (Ok(()), None),
            Ok(ExecResult::Error(e)) => (Err(format!("could not set parameter {name}: {e}")), None),
            Ok(ExecResult::Interrupted) => (
                Err(format!("setting parameter {name} was interrupted")),
                None,
            ),
            Ok(ExecResult::Died(reason)) => (
                Err(format!("could not set parameter {name}: the {reason}")),
                Some(Halt::KernelGone(format!(
                    "the kernel died setting parameter {name}"
                ))),
            ),
            Err(signal) => {
                kernel.interrupter().kill();
                (Err("stopped".into()), Some(Halt::Stopped(signal)))
            }
        }
    }
}

/// The kernel could not be had: this cell fails with `why`, and the rest are not run, for the
/// shorter reason `rest`.
fn kernel_gone(why: String, rest: &str) -> (CellRun, Option<Halt>) {
    let run = CellRun::settled(Outcome::Failed(why));
    (run, Some(Halt::KernelGone(rest.to_string())))
}

/// A stop signal arrived while the kernel was starting.
fn stopped(signal: StopSignal, started: Instant) -> (CellRun, Option<Halt>) {
    let mut run = CellRun::settled(Outcome::NotRun("stopped while running".into()));
    run.elapsed = started.elapsed();
    (run, Some(Halt::Stopped(signal)))
}

/// Kills the kernel when a cell outlives its time limit. A headless run has nobody to wait
/// for, so there is no interrupt-first grace as in the server: the cell fails at the limit.
struct Watchdog {
    task: tokio::task::JoinHandle<()>,
    fired: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(kernel: &Kernel, limit: Duration) -> Watchdog {
        let killer = kernel.interrupter();
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            flag.store(true, Ordering::SeqCst);
            killer.kill();
        });
        Watchdog { task, fired }
    }

    /// Disarms it; answers whether it had fired.
    fn stop(self) -> bool {
        self.task.abort();
        self.fired.load(Ordering::SeqCst)
    }
}
