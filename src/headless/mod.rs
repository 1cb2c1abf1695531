//! Headless runs: `reactive-notebook run FILE` executes a notebook file (`.ipynb` or
//! percent-format `.py`) in one sandboxed kernel, in dependency order, without the server or
//! its database, reports each cell on the terminal and can write the outputs to a file.
//!
//! One job a file: `input` reads the notebook, `params` turns `--param` into assignments,
//! `runner` drives the kernel, `progress` draws the terminal, `report` sums up and writes the
//! output file, `signals` and `workdir` make every exit path leave nothing behind.
//!
//! The server's recorded runs (`src/schedule/`) reuse the same runner through
//! [`run_silently`]: one notebook, one fresh kernel, dependency order, no terminal.

mod input;
mod params;
mod progress;
mod report;
mod runner;
mod signals;
mod workdir;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::kernel::KernelConfig;
use crate::notebook::io::Format;
use crate::pyenv::Environment;

pub use input::{Cell, Notebook};
pub use params::{Param, ParamError};
pub use report::export_notebook;
pub use runner::{CellRun, Outcome, RunResults};
pub use signals::{Stop, StopSignal};
pub use workdir::WorkDir;

/// Exit code: every cell ran without error.
pub const EXIT_OK: i32 = 0;
/// Exit code: a cell failed (or the kernel could not run it).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage or input (unreadable file, bad format, bad `--param`, unwritable output).
pub const EXIT_USAGE: i32 = 2;

/// Arguments of `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The notebook to run: a Jupyter `.ipynb` or a percent-format `.py` file.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Write the notebook with its outputs to this `.ipynb` or `.html` file.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Override a top-level name after the cell that defines it: NAME=VALUE, where VALUE is a
    /// Python literal (`3`, `'a'`, `[1, 2]`); anything else is taken as a string.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Per-cell time limit in seconds; a cell over it fails and the kernel is killed
    /// (default: KERNEL_TIMEOUT_SECS).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
    /// Also print each cell's stdout/stderr (on stdout) once it finishes.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Why a run could not start or finish; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum HeadlessError {
    /// The notebook file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a format `run` reads.
    #[error("{path}: unsupported input: expected a .ipynb or a percent-format .py file")]
    InputFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file does not parse as a notebook.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--output` names a format that cannot hold outputs.
    #[error("--output {path}: expected a .ipynb or .html file")]
    OutputFormat {
        /// The requested file.
        path: PathBuf,
    },
    /// `--output` is in a folder that does not exist.
    #[error("--output {path}: the folder {folder} does not exist")]
    OutputFolder {
        /// The requested file.
        path: PathBuf,
        /// Its missing folder.
        folder: PathBuf,
    },
    /// A `--param` is malformed or names nothing the notebook defines.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The output file could not be rendered or written.
    #[error("cannot write {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The kernel's temporary working directory could not be made.
    #[error("cannot create a temporary working directory for the kernel: {0}")]
    WorkDir(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl HeadlessError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            HeadlessError::WorkDir(_) | HeadlessError::Runtime(_) => EXIT_FAILED,
            _ => EXIT_USAGE,
        }
    }
}

/// Runs `run` to completion and answers the exit code. Everything the run made (the kernel,
/// its temporary folder) is gone when this returns, so the caller may `exit` at once.
pub fn main(args: RunArgs, config: &Config) -> i32 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HeadlessError::Runtime);
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(args, config)),
        Err(e) => Err(e),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// What `run` checked before starting anything: the notebook, its parameters, the output.
struct Job {
    notebook: input::Notebook,
    params: Vec<Param>,
    output: Option<(PathBuf, Format)>,
    timeout: Duration,
}

impl Job {
    /// Reads and checks everything the command line names; any problem is a usage error.
    fn prepare(args: &RunArgs, config: &Config) -> Result<Job, HeadlessError> {
        let output = args.output.as_deref().map(output_target).transpose()?;
        let notebook = input::load(&args.path)?;
        let params = params::parse_all(&args.params, &notebook.defined_names())?;
        Ok(Job {
            notebook,
            params,
            output,
            timeout: Duration::from_secs(args.timeout.unwrap_or(config.kernel_timeout_secs)),
        })
    }
}

/// The output file's format, checked before the run so a typo does not waste it.
fn output_target(path: &Path) -> Result<(PathBuf, Format), HeadlessError> {
    let format = match input::format_of(path) {
        Some(format @ (Format::Ipynb | Format::Html)) => format,
        _ => {
            return Err(HeadlessError::OutputFormat {
                path: path.to_path_buf(),
            })
        }
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !folder.is_dir() {
            return Err(HeadlessError::OutputFolder {
                path: path.to_path_buf(),
                folder: folder.to_path_buf(),
            });
        }
    }
    Ok((path.to_path_buf(), format))
}

/// Runs every cell of `notebook` once in a fresh kernel started from `kernel`, each under
/// `timeout`, drawing nothing; the kernel is gone when this returns. `stop` ends the run early
/// (the kernel is killed and [`RunResults::stopped`] says why).
pub async fn run_silently(
    notebook: &Notebook,
    kernel: KernelConfig,
    timeout: Duration,
    stop: &mut Stop,
) -> RunResults {
    let progress = progress::Progress::silent();
    let runner = runner::Runner {
        notebook,
        params: &[],
        kernel,
        timeout,
        progress: &progress,
    };
    runner.run(stop).await
}

async fn run(args: RunArgs, config: &Config) -> Result<i32, HeadlessError> {
    let job = Job::prepare(&args, config)?;
    // Listen before anything slow starts, so an early Ctrl+C is not lost.
    let mut stop = signals::Stop::listen();
    // The same interpreter the server would give kernels: PYTHON, or the managed environment
    // (whose provisioning draws its own bar, so ours starts after it).
    let environment = Environment::start(config);
    let python = tokio::select! {
        python = environment.python() => python,
        signal = stop.wait() => {
            eprintln!("{}", signal.message());
            return Ok(signal.exit_code());
        }
    };
    let progress = progress::Progress::new(job.notebook.executable_count(), args.verbose);
    for warning in &job.notebook.warnings {
        progress.note(&format!("warning: {warning}"));
    }
    let work_dir = workdir::WorkDir::create().map_err(HeadlessError::WorkDir)?;
    let kernel = KernelConfig {
        python,
        work_dir: work_dir.path().to_path_buf(),
        memory_mb: config.kernel_memory_mb,
        extra_env: Vec::new(),
        limits: config.kernel_limits.clone(),
        read_only_dirs: Vec::new(),
    };
    let runner = runner::Runner {
        notebook: &job.notebook,
        params: &job.params,
        kernel,
        timeout: job.timeout,
        progress: &progress,
    };
    let results = runner.run(&mut stop).await;
    progress.finish();
    let code = report::conclude(&job.notebook, &job.params, &results, job.output.as_ref());
    // Explicit, so the folder is gone before the caller exits the process.
    drop(work_dir);
    code
}
