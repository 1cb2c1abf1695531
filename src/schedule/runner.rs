//! One recorded run: the notebook read from the store, a kernel slot charged to its owner,
//! a fresh sandboxed kernel on a private folder (never a live room's kernel), the headless
//! runner over every cell in dependency order, then the outcome and a bounded snapshot
//! written to the run's row.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient};
use chrono::Utc;
use tokio::sync::watch;

use super::snapshot;
use super::store::{self, RunEnd, RunStatus};
use crate::config::Config;
use crate::db::Db;
use crate::headless::{self, CellRun, Outcome, RunResults, Stop, StopSignal, WorkDir};
use crate::kernel::KernelConfig;
use crate::notebook::CellType;
use crate::pyenv::packages::Layer;
use crate::pyenv::Environment;
use crate::room::messages::StopKernelForQuota;
use crate::room::quota::{KernelQuota, KernelSlot, SlotRequest};

/// Longest `detail` kept for a failed cell (the last line of its error).
const MAX_DETAIL_CHARS: usize = 500;

/// What a run records when the server stops under it.
pub const SHUTDOWN_DETAIL: &str = "failed: the server shut down during the run";

/// Holds the quota slots of recorded runs. Their slots are busy from the start, so the ledger
/// never picks them to be stopped; should it ever ask, the run simply carries on.
struct SlotHolder;

impl Actor for SlotHolder {
    type Context = Context<Self>;
}

impl Handler<StopKernelForQuota> for SlotHolder {
    type Result = ();

    fn handle(&mut self, msg: StopKernelForQuota, _: &mut Self::Context) {
        log::debug!(
            "quota asked to stop recorded run slot {}; it is busy",
            msg.ticket
        );
    }
}

/// Runs recorded runs on this instance; cheap to clone (handlers hold one to start runs).
#[derive(Clone)]
pub struct Runs {
    db: Db,
    config: Arc<Config>,
    environment: Environment,
    quota: KernelQuota,
    holder: Recipient<StopKernelForQuota>,
    stop: watch::Receiver<Option<StopSignal>>,
    active: Arc<Mutex<HashSet<String>>>,
}

/// Removes a run from the active set however its task ends.
struct ActiveGuard {
    active: Arc<Mutex<HashSet<String>>>,
    run_id: String,
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        lock(&self.active).remove(&self.run_id);
    }
}

fn lock(active: &Mutex<HashSet<String>>) -> std::sync::MutexGuard<'_, HashSet<String>> {
    // The set is updated in single statements, so a panic elsewhere cannot corrupt it.
    active.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runs {
    /// A runner over the server's store, settings, Python environment and kernel quota;
    /// `stop` ends every run (server shutdown). Call within the actix system.
    pub fn new(
        db: Db,
        config: Arc<Config>,
        environment: Environment,
        quota: KernelQuota,
        stop: watch::Receiver<Option<StopSignal>>,
    ) -> Runs {
        Runs {
            db,
            config,
            environment,
            quota,
            holder: SlotHolder.start().recipient(),
            stop,
            active: Arc::default(),
        }
    }

    /// The store the runs are recorded in.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The server's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Ids of the runs going on this instance.
    pub fn active(&self) -> Vec<String> {
        lock(&self.active).iter().cloned().collect()
    }

    /// Whether the server is shutting down.
    pub fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// Runs the recorded run `run_id` (already stored as running) in the background.
    pub fn spawn(&self, run_id: String, notebook_id: String) {
        lock(&self.active).insert(run_id.clone());
        let guard = ActiveGuard {
            active: self.active.clone(),
            run_id: run_id.clone(),
        };
        let runs = self.clone();
        actix::spawn(async move {
            let end = if runs.stopping() {
                RunEnd::failed(SHUTDOWN_DETAIL.into())
            } else {
                runs.perform(&notebook_id).await
            };
            let status = end.status.as_str();
            match store::finish_run(&runs.db, &run_id, &end, Utc::now().naive_utc()).await {
                Ok(()) => log::info!("run {run_id} of notebook {notebook_id} ended: {status}"),
                Err(e) => log::error!("run {run_id} of notebook {notebook_id} ended ({status}) but could not be recorded: {e}"),
            }
            drop(guard);
        });
    }

    /// Runs the notebook once; answers how it ended.
    async fn perform(&self, notebook_id: &str) -> RunEnd {
        let notebook = match store::runnable_notebook(&self.db, notebook_id).await {
            Ok(Some(notebook)) => notebook,
            Ok(None) => return RunEnd::failed("failed: the notebook no longer exists".into()),
            Err(e) => {
                return RunEnd::failed(format!("failed: the notebook could not be read: {e}"))
            }
        };
        let slot = match self.take_slot(&notebook.owner, notebook_id) {
            Ok(slot) => slot,
            Err(why) => {
                log::info!("run of notebook {notebook_id} skipped: {why}");
                return RunEnd::skipped(why);
            }
        };
        let mut stop = Stop::watching(self.stop.clone());
        let python = tokio::select! {
            python = self.environment.python() => python,
            _ = stop.wait() => return RunEnd::failed(SHUTDOWN_DETAIL.into()),
        };
        let layer = Layer::for_notebook(&self.config.data_dir, notebook_id);
        let (extra_env, read_only_dirs) = crate::room::executor::layer_env(&layer, &python).await;
        let work_dir = match WorkDir::create() {
            Ok(dir) => dir,
            Err(e) => {
                return RunEnd::failed(format!(
                    "failed: no working directory could be made for the kernel: {e}"
                ))
            }
        };
        let kernel = KernelConfig {
            python,
            work_dir: work_dir.path().to_path_buf(),
            memory_mb: self.config.kernel_memory_mb,
            extra_env,
            limits: self.config.kernel_limits.clone(),
            read_only_dirs,
        };
        let cells = notebook
            .cells
            .into_iter()
            .map(|row| {
                // Stored types are ones `CellType` knows; Python is the safe reading anyway.
                let cell_type = CellType::parse(&row.cell_type).unwrap_or(CellType::Python);
                headless::Cell::new(row.id, cell_type, row.code, row.result_name)
            })
            .collect();
        let notebook = headless::Notebook {
            name: notebook.name,
            cells,
            warnings: Vec::new(),
        };
        let timeout = Duration::from_secs(self.config.kernel_timeout_secs);
        let results = headless::run_silently(&notebook, kernel, timeout, &mut stop).await;
        // The kernel is gone: give its folder and its slot back.
        drop(work_dir);
        drop(slot);
        conclude(&notebook, &results)
    }

    /// A kernel slot for the owner, only if one is free: a recorded run never stops another
    /// kernel (not an open notebook's, not a spare), it is skipped instead.
    fn take_slot(&self, owner: &str, notebook_id: &str) -> Result<KernelSlot, String> {
        let request = SlotRequest {
            owner,
            notebook_id,
            replacing: None,
            room: self.holder.clone(),
        };
        let quotas = &self.config.quotas;
        match self.quota.acquire_free(request) {
            Some(slot) if self.quota.begin(slot.ticket()) => Ok(slot),
            Some(_) => Err("skipped: its kernel slot was taken by another run".into()),
            None if self.quota.live_kernels_of(owner) >= quotas.kernels_per_user => Err(format!(
                "skipped: the notebook's owner is at their kernel limit \
                 (KERNELS_PER_USER={}); a recorded run never stops another kernel",
                quotas.kernels_per_user
            )),
            None => Err(format!(
                "skipped: the server is at its kernel limit (MAX_KERNELS={}); a recorded run \
                 never stops another kernel",
                quotas.max_kernels
            )),
        }
    }
}

impl RunEnd {
    fn failed(detail: String) -> RunEnd {
        RunEnd {
            status: RunStatus::Failed,
            failed_cell: None,
            detail: Some(detail),
            snapshot: None,
        }
    }

    fn skipped(detail: String) -> RunEnd {
        RunEnd {
            status: RunStatus::Skipped,
            failed_cell: None,
            detail: Some(detail),
            snapshot: None,
        }
    }
}

/// The run's status, first failed cell (in notebook order) and bounded snapshot.
fn conclude(notebook: &headless::Notebook, results: &RunResults) -> RunEnd {
    let failed = results
        .cells
        .iter()
        .enumerate()
        .find_map(|(i, run)| match run {
            Some(CellRun {
                outcome: Outcome::Failed(error),
                ..
            }) => notebook
                .cells
                .get(i)
                .map(|cell| (cell.id.clone(), error.clone())),
            _ => None,
        });
    let exported = snapshot::bound(
        headless::export_notebook(notebook, results),
        snapshot::MAX_SNAPSHOT_OUTPUT_BYTES,
    );
    let snapshot = match snapshot::to_text(&exported) {
        Ok(text) => Some(text),
        Err(e) => {
            log::error!("a run's snapshot could not be serialized: {e}");
            None
        }
    };
    let (status, failed_cell, detail) = if results.stopped.is_some() {
        (RunStatus::Failed, None, Some(SHUTDOWN_DETAIL.to_string()))
    } else if let Some((cell, error)) = failed {
        (RunStatus::Error, Some(cell), Some(last_line(&error)))
    } else {
        (RunStatus::Success, None, None)
    };
    RunEnd {
        status,
        failed_cell,
        detail,
        snapshot,
    }
}

/// The last non-empty line of an error (`ZeroDivisionError: division by zero`), bounded.
fn last_line(error: &str) -> String {
    let line = error
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the cell failed");
    line.chars().take(MAX_DETAIL_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_is_the_errors_last_line() {
        let traceback = "Traceback (most recent call last):\n  File \"<cell>\", line 1\nZeroDivisionError: division by zero\n\n";
        assert_eq!(last_line(traceback), "ZeroDivisionError: division by zero");
        assert_eq!(last_line(""), "the cell failed");
    }
}
