//! Publishes provisioning progress: to the shared status (the API and kernels read it) and to
//! a terminal progress bar (drawn only when stderr is a terminal; logged lines otherwise).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use super::status::{Progress, State, Status};

/// Reports one provisioning run's steps.
pub struct Reporter {
    status: watch::Sender<Status>,
    bar: ProgressBar,
}

impl Reporter {
    /// Starts reporting a run of `total` steps that will give kernels `python`.
    pub fn start(status: watch::Sender<Status>, total: u64, python: String) -> Reporter {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "python environment [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        status.send_modify(|s| {
            s.state = State::Provisioning;
            s.python = python;
            s.error = None;
            s.progress = Progress {
                done: 0,
                total,
                current: String::new(),
            };
        });
        Reporter { status, bar }
    }

    /// A step begins.
    pub fn step(&self, current: &str) {
        log::info!("python environment: {current}");
        self.bar.set_message(current.to_string());
        self.status
            .send_modify(|s| s.progress.current = current.to_string());
    }

    /// The step under way is done.
    pub fn done_step(&self) {
        self.bar.inc(1);
        self.status.send_modify(|s| s.progress.done += 1);
    }

    /// The run succeeded: kernels use `python` from now on.
    pub fn ready(self, python: String) {
        self.bar.finish_with_message("ready");
        log::info!("python environment ready: {python}");
        self.status.send_modify(|s| {
            s.state = State::Ready;
            s.python = python;
            s.progress.done = s.progress.total;
            s.progress.current = String::new();
        });
    }

    /// The run failed: kernels fall back to `fallback`.
    pub fn failed(self, error: String, fallback: String) {
        self.bar.abandon_with_message("failed");
        log::error!("python environment failed; kernels use the bare {fallback} instead: {error}");
        self.status.send_modify(|s| {
            s.state = State::Failed;
            s.python = fallback;
            s.error = Some(error);
        });
    }
}
