//! Scheduled and recorded runs of whole notebooks.
//!
//! A schedule is a cron expression in a time zone. Each fire (or a `POST .../runs`) runs the
//! whole notebook once in a fresh sandboxed kernel, never the kernel of an open notebook,
//! charged to the notebook's owner, and records the run with a snapshot of its outputs.
//!
//! One job a file: `cron` parses expressions and finds the next fire, `store` holds schedules
//! and runs (and the claim that makes a fire happen once across instances), `runner` carries
//! out one run with the headless runner, `snapshot` bounds what a run stores, `ticker` is the
//! loop that fires due schedules.

pub mod cron;
pub mod runner;
pub mod snapshot;
pub mod store;
pub mod ticker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use crate::config::Config;
use crate::db::Db;
use crate::headless::StopSignal;
use crate::pyenv::Environment;
use crate::room::quota::KernelQuota;

pub use cron::{CronSchedule, ScheduleError};
pub use runner::Runs;

/// How long shutdown waits for killed runs to record themselves before recording them itself.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The scheduler of one server instance: its loop and its runs.
pub struct Scheduler {
    runs: Runs,
    stop: watch::Sender<Option<StopSignal>>,
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    /// Starts the loop (call within the actix system the server runs in).
    pub fn start(
        db: Db,
        config: Arc<Config>,
        environment: Environment,
        quota: KernelQuota,
    ) -> Scheduler {
        let (stop, watching) = watch::channel(None);
        let runs = Runs::new(db, config, environment, quota, watching.clone());
        let task = actix::spawn(ticker::run(runs.clone(), watching));
        Scheduler { runs, stop, task }
    }

    /// The handle request handlers start runs with.
    pub fn runs(&self) -> Runs {
        self.runs.clone()
    }

    /// Stops firing, kills the runs going on this instance and records them as failed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(Some(StopSignal::Terminate));
        let _ = self.task.await;
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.runs.active().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.runs.active();
        if left.is_empty() {
            return;
        }
        let end = store::RunEnd {
            status: store::RunStatus::Failed,
            failed_cell: None,
            detail: Some(runner::SHUTDOWN_DETAIL.into()),
            snapshot: None,
        };
        for run_id in left {
            let now = Utc::now().naive_utc();
            if let Err(e) = store::finish_run(self.runs.db(), &run_id, &end, now).await {
                log::error!("run {run_id} could not be recorded as failed at shutdown: {e}");
            }
        }
    }
}
