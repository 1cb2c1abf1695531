//! Progress on the terminal: an `indicatif` bar on stderr when stderr is a terminal (with a
//! line above it for each cell that did not succeed), else one plain line per cell, so logs
//! and CI output stay readable. With `-v` each cell's captured text goes to stdout.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::runner::{CellRun, Outcome};

/// How often the bar redraws while a long cell runs (its clock keeps moving).
const TICK: Duration = Duration::from_millis(200);

/// The run's terminal display.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    done: AtomicUsize,
    verbose: bool,
    /// Nothing is drawn or printed (a server's run has no terminal).
    silent: bool,
}

impl Progress {
    /// A display for a run of `total` cells.
    pub fn new(total: usize, verbose: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(u64::try_from(total).unwrap_or(u64::MAX)),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(TICK);
            bar
        });
        Progress {
            bar,
            total,
            done: AtomicUsize::new(0),
            verbose,
            silent: false,
        }
    }

    /// A display that shows nothing, for runs the server records instead.
    pub fn silent() -> Progress {
        Progress {
            bar: None,
            total: 0,
            done: AtomicUsize::new(0),
            verbose: false,
            silent: true,
        }
    }

    /// A line for the user (a warning), above the bar if there is one.
    pub fn note(&self, line: &str) {
        if self.silent {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// A cell starts running.
    pub fn started(&self, label: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("running {label}"));
        }
    }

    /// A cell is settled (ran, failed, or was not run).
    pub fn finished(&self, label: &str, run: &CellRun) {
        if self.silent {
            return;
        }
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!("[{done}/{}] {label}: {}", self.total, describe(run));
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if run.outcome != Outcome::Ok {
                    bar.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
        if self.verbose && !run.stdout.is_empty() {
            self.print_stdout(&run.stdout);
        }
    }

    /// The run is over: the bar goes, the lines above it stay.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn print_stdout(&self, text: &str) {
        let write = || {
            let mut out = std::io::stdout().lock();
            let newline = if text.ends_with('\n') { "" } else { "\n" };
            // A closed stdout (`| head`) must not end the run; the report still matters.
            let _ = write!(out, "{text}{newline}").and_then(|()| out.flush());
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

/// `ok in 0.12 s`, `failed in 1.00 s`, `blocked (cell 2 failed)`, `not run (...)`.
fn describe(run: &CellRun) -> String {
    let secs = run.elapsed.as_secs_f64();
    match &run.outcome {
        Outcome::Ok => format!("ok in {secs:.2} s"),
        Outcome::Failed(_) => format!("failed in {secs:.2} s"),
        Outcome::Blocked { by } => format!("blocked (cell {} failed)", by + 1),
        Outcome::NotRun(why) => format!("not run ({why})"),
    }
}
