//! The executor: a task that owns a notebook's kernel and runs one job at a time.
//!
//! The room sends jobs and receives events; interrupts go around the queue (a SIGINT to the
//! kernel, a cancel to the running SQL query), so they work while a job runs.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Recipient;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::kernel::{
    ExecResult, Interrupter, Introspector, Kernel, KernelConfig, KernelError, KernelEvent, Output,
    PlanCanceller, PlanCell, PlanEvent, StepResult, GET_VALUES_TIMEOUT,
};
use crate::metrics::{self, CellOutcome, RestartReason};
use crate::notebook::analysis::sql_to_positional;
use crate::sql::host_policy::HostPolicy;
use crate::sql::runner::{run_sql, values_order, SqlCanceller, SqlError, SqlOutcome, SqlRequest};

use super::messages::{ExecEvent, ExecEventKind, ExecEvents, Finished, Outcome};
use super::pool::{KernelPool, TakeSpare};
use super::quota::KernelSlot;

/// What a cell asks the executor to do.
#[derive(Debug, Clone)]
pub enum Work {
    /// Run Python code in the kernel.
    Python {
        /// The code.
        code: String,
    },
    /// Run SQL against the notebook's database.
    Sql {
        /// The SQL text.
        code: String,
        /// Connection string, if set.
        conn_string: Option<String>,
        /// `{name}` placeholders (byte range, name).
        placeholders: Vec<(Range<usize>, String)>,
        /// The Python name the result is bound to.
        result_name: Option<String>,
    },
}

/// What runs in the kernel under the cell's time limit and interrupts.
enum KernelWork<'a> {
    Python(&'a str),
    /// Embedded SQL: `$n` text, the names bound to `$1..$n`, the result's name.
    Sql {
        code: &'a str,
        names: &'a [String],
        result_name: Option<&'a str>,
    },
}

/// A Python cell of a plan: the kernel runs a plan's cells back to back.
#[derive(Debug, Clone)]
pub struct PlannedCell {
    /// The cell.
    pub cell_id: String,
    /// Its code.
    pub code: String,
    /// Indices of the plan's earlier cells it reads from (blocked if one fails).
    pub parents: Vec<usize>,
}

/// A job for the executor.
#[derive(Debug)]
pub enum Job {
    /// Run Python cells as one plan in the kernel; every cell gets a `Finished` (blocked or
    /// cancelled ones included), in order; `token` identifies the plan.
    ExecutePlan {
        /// The room's token for this plan, echoed in events.
        token: u64,
        /// The cells, in run order.
        cells: Vec<PlannedCell>,
    },
    /// Run one cell; `token` identifies the run step.
    Execute {
        /// The room's step token, echoed in events.
        token: u64,
        /// The cell.
        cell_id: String,
        /// What to run.
        work: Work,
    },
    /// Remove names from the kernel's namespace.
    Forget(Vec<String>),
    /// The quota slot a kernel may be started in (replacing any previous one and its kernel).
    Grant(KernelSlot),
    /// Stop the kernel and give back the slot with this ticket (stopped for quota).
    Release(u64),
    /// Replace the kernel with a fresh one (if the executor holds a slot).
    Restart,
    /// Stop the kernel and answer.
    Shutdown(tokio::sync::oneshot::Sender<()>),
    /// Start a kernel now if a slot was granted and none runs, so the first run does not
    /// wait for Python to start.
    Warm,
    /// Start a kernel if none runs (in the granted slot) and answer its introspector; `None`
    /// when none can start now (no slot, or the Python environment is still provisioned).
    StartForIntrospection(tokio::sync::oneshot::Sender<Option<Introspector>>),
}

/// Limits and settings for a notebook's executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// The Python environment kernels run (awaited while it is provisioned).
    pub environment: crate::pyenv::Environment,
    /// The notebook's package layer (read-only for the kernel, on its `PYTHONPATH`).
    pub layer: crate::pyenv::packages::Layer,
    /// Kernel working directory.
    pub work_dir: PathBuf,
    /// Kernel memory limit (MiB, 0 = none).
    pub memory_mb: u64,
    /// Per-cell time limit.
    pub timeout: Duration,
    /// Sandbox and resource limits of the kernel.
    pub limits: crate::config::KernelLimits,
    /// Which hosts SQL cells may connect to.
    pub sql_hosts: Arc<HostPolicy>,
    /// Spare kernels a brand-new notebook may take (`KERNEL_POOL`).
    pub pool: Option<actix::Addr<KernelPool>>,
}

/// Why a cell is `queued` while the managed Python environment is provisioned.
const WAITING_FOR_ENVIRONMENT: &str =
    "waiting for the Python environment to finish provisioning (see GET /api/environment)";

/// How often an unanswered interrupt is repeated.
const INTERRUPT_RETRY: Duration = Duration::from_millis(100);

/// Seconds a cell gets to stop after the timeout's SIGINT before the kernel is killed.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// How long a new kernel waits for the kernel stopped to make room for it to exit.
const SLOT_WAIT: Duration = Duration::from_secs(90);

#[derive(Default)]
struct InterruptTargets {
    kernel: Option<Interrupter>,
    pid: Option<u32>,
    /// The run step an interrupt was requested for; the worker re-sends SIGINT until that
    /// step ends, because a signal landing while the kernel starts or between two
    /// statements of the driver would otherwise be lost.
    interrupted_token: Option<u64>,
    sql: Option<SqlCanceller>,
    /// The plan running now, by token, and its canceller.
    plan: Option<(u64, PlanCanceller)>,
    /// Completion and inspection go straight to the kernel, also while a job runs.
    introspector: Option<Introspector>,
}

/// The room's handle on its executor.
pub struct ExecutorHandle {
    jobs: mpsc::UnboundedSender<Job>,
    targets: Arc<Mutex<InterruptTargets>>,
}

impl ExecutorHandle {
    /// Starts the executor task; events go to `events`, a plan's small ones in `batches`.
    pub fn start(
        config: ExecutorConfig,
        events: Recipient<ExecEvent>,
        batches: Recipient<ExecEvents>,
    ) -> ExecutorHandle {
        let (jobs, rx) = mpsc::unbounded_channel();
        let targets = Arc::new(Mutex::new(InterruptTargets::default()));
        let worker = Worker {
            config,
            kernel: None,
            slot: None,
            events,
            batches,
            targets: targets.clone(),
        };
        tokio::spawn(worker.run(rx));
        ExecutorHandle { jobs, targets }
    }

    /// Queues a job (ignored if the executor is gone).
    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Stops the kernel (killing a running cell) and waits until it is gone.
    pub async fn shutdown(self) {
        self.kill();
        let (done, stopped) = tokio::sync::oneshot::channel();
        self.send(Job::Shutdown(done));
        let _ = tokio::time::timeout(Duration::from_secs(10), stopped).await;
    }

    /// Kills the kernel process at once (restart while a cell runs); the executor notices the
    /// death and starts a fresh kernel.
    pub fn kill(&self) {
        kill_kernel(self.targets.lock().ok().and_then(|t| t.pid));
    }

    /// The live kernel's introspector, if a kernel runs.
    pub fn introspector(&self) -> Option<Introspector> {
        self.targets
            .lock()
            .ok()
            .and_then(|t| t.introspector.clone())
    }

    /// Interrupts whatever runs now: SIGINT to the kernel, cancel to a running query.
    pub fn interrupt(&self, token: u64) {
        if let Ok(mut targets) = self.targets.lock() {
            targets.interrupted_token = Some(token);
            if let Some(kernel) = &targets.kernel {
                kernel.interrupt();
            }
            if let Some(sql) = &targets.sql {
                sql.cancel();
            }
            if let Some((_, plan)) = targets.plan.as_ref().filter(|(t, _)| *t == token) {
                plan.cancel();
            }
        }
    }

    /// Skips the cells of plan `token` that have not started yet (they end `Cancelled`).
    pub fn cancel_plan(&self, token: u64) {
        if let Ok(targets) = self.targets.lock() {
            if let Some((_, plan)) = targets.plan.as_ref().filter(|(t, _)| *t == token) {
                plan.cancel();
            }
        }
    }
}

struct Worker {
    config: ExecutorConfig,
    kernel: Option<Kernel>,
    /// The quota slot the kernel lives in; released only once the kernel is gone.
    slot: Option<KernelSlot>,
    events: Recipient<ExecEvent>,
    batches: Recipient<ExecEvents>,
    targets: Arc<Mutex<InterruptTargets>>,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            match job {
                Job::ExecutePlan { token, cells } => self.run_plan(token, cells).await,
                Job::Execute {
                    token,
                    cell_id,
                    work,
                } => {
                    let finished = match work {
                        Work::Python { code } => {
                            self.run_in_kernel(token, &cell_id, KernelWork::Python(&code))
                                .await
                        }
                        Work::Sql {
                            code,
                            conn_string: None,
                            result_name,
                            ..
                        } => {
                            let (positional, names) = sql_to_positional(&code);
                            let work = KernelWork::Sql {
                                code: &positional,
                                names: &names,
                                result_name: result_name.as_deref(),
                            };
                            self.run_in_kernel(token, &cell_id, work).await
                        }
                        Work::Sql {
                            code,
                            conn_string: Some(conn_string),
                            placeholders,
                            result_name,
                        } => {
                            let started = std::time::Instant::now();
                            let finished = self
                                .run_sql(
                                    token,
                                    &cell_id,
                                    &code,
                                    conn_string,
                                    &placeholders,
                                    result_name.as_deref(),
                                )
                                .await;
                            if let Some(outcome) = cell_outcome(&finished.outcome) {
                                metrics::cell_run(outcome, Some(started.elapsed()));
                            }
                            finished
                        }
                    };
                    self.emit(token, &cell_id, ExecEventKind::Finished(finished));
                }
                Job::Forget(names) => {
                    if let Some(kernel) = self.kernel.as_mut() {
                        if let Err(e) = kernel.forget(&names).await {
                            log::warn!("kernel forget failed: {e}");
                            self.drop_kernel().await;
                        }
                    }
                }
                Job::Grant(slot) => {
                    if self.slot.as_ref().map(KernelSlot::ticket) != Some(slot.ticket()) {
                        self.release().await;
                    }
                    self.slot = Some(slot);
                }
                Job::Release(ticket) => {
                    if self.slot.as_ref().map(KernelSlot::ticket) == Some(ticket) {
                        self.release().await;
                    }
                }
                Job::Shutdown(done) => {
                    self.release().await;
                    let _ = done.send(());
                    return;
                }
                Job::Warm => {
                    if self.slot.is_some() && self.kernel.is_none() {
                        if let Err(e) = self.ensure_kernel().await {
                            log::warn!("kernel warm-up failed: {e}");
                        }
                    }
                }
                Job::StartForIntrospection(reply) => {
                    let startable =
                        self.kernel.is_some() || self.config.environment.python_now().is_some();
                    let introspector = if startable {
                        match self.ensure_kernel().await {
                            Ok(kernel) => Some(kernel.introspector()),
                            Err(e) => {
                                log::warn!("kernel for introspection did not start: {e}");
                                None
                            }
                        }
                    } else {
                        None
                    };
                    let _ = reply.send(introspector);
                }
                Job::Restart => {
                    metrics::kernel_restarted(RestartReason::Requested);
                    self.drop_kernel().await;
                    if self.slot.is_some() {
                        if let Err(e) = self.ensure_kernel().await {
                            log::error!("kernel restart failed: {e}");
                        }
                    }
                }
            }
        }
        // The room is gone: stop the kernel.
        self.release().await;
    }

    fn emit(&self, token: u64, cell_id: &str, kind: ExecEventKind) {
        self.events.do_send(ExecEvent {
            token,
            cell_id: cell_id.to_string(),
            kind,
        });
    }

    async fn drop_kernel(&mut self) {
        if let Ok(mut targets) = self.targets.lock() {
            targets.kernel = None;
            targets.pid = None;
            targets.introspector = None;
        }
        if let Some(kernel) = self.kernel.take() {
            kernel.shutdown().await;
        }
    }

    /// Stops the kernel, then gives its quota slot back.
    async fn release(&mut self) {
        self.drop_kernel().await;
        self.slot = None;
    }

    async fn ensure_kernel(&mut self) -> Result<&mut Kernel, KernelError> {
        if self.kernel.is_none() {
            let Some(slot) = &self.slot else {
                return Err(KernelError::Spawn(
                    "no kernel slot was granted to this notebook".into(),
                ));
            };
            if tokio::time::timeout(SLOT_WAIT, slot.ready()).await.is_err() {
                self.slot = None;
                return Err(KernelError::Spawn(
                    "timed out waiting for a kernel stopped for quota to exit".into(),
                ));
            }
            let python = self.config.environment.python().await;
            if let Some(kernel) = self.adopt_spare(&python).await {
                self.install_kernel(kernel);
                return self.kernel.as_mut().ok_or(KernelError::Dead);
            }
            let (extra_env, read_only_dirs) = layer_env(&self.config.layer, &python).await;
            let config = KernelConfig {
                python,
                work_dir: self.config.work_dir.clone(),
                memory_mb: self.config.memory_mb,
                extra_env,
                limits: self.config.limits.clone(),
                read_only_dirs,
            };
            let kernel = match Kernel::spawn(&config).await {
                Ok(kernel) => kernel,
                Err(e) => {
                    // No kernel, no slot: the next run asks the quota again.
                    self.slot = None;
                    return Err(e);
                }
            };
            self.install_kernel(kernel);
        }
        self.kernel.as_mut().ok_or(KernelError::Dead)
    }

    fn install_kernel(&mut self, kernel: Kernel) {
        if let Ok(mut targets) = self.targets.lock() {
            targets.kernel = Some(kernel.interrupter());
            targets.pid = kernel.pid();
            targets.introspector = Some(kernel.introspector());
        }
        self.kernel = Some(kernel);
    }

    /// A spare kernel from the pool, for a brand-new notebook (no work dir, no package layer
    /// yet) whose kernel would run `python`.
    async fn adopt_spare(&self, python: &str) -> Option<Kernel> {
        let pool = self.config.pool.as_ref()?;
        let (work_dir, layer_root) = (&self.config.work_dir, &self.config.layer.root);
        if work_dir.exists() || layer_root.exists() {
            return None;
        }
        let take = TakeSpare {
            python: python.to_string(),
        };
        let spare = pool.send(take).await.ok().flatten()?;
        debug_assert_eq!(spare.python(), python);
        match spare.adopt(work_dir, layer_root).await {
            Ok(kernel) => {
                log::info!("kernel {} taken from the pool", kernel.pid().unwrap_or(0));
                Some(kernel)
            }
            Err(e) => {
                log::warn!("spare kernel not adopted: {e}");
                None
            }
        }
    }

    /// Waits, shown as `queued` with the reason, while the Python environment is provisioned
    /// and this cell would need a new kernel; false if the run was interrupted meanwhile.
    async fn wait_for_python(&mut self, token: u64, cell_id: &str) -> bool {
        if self.kernel.is_some() || self.config.environment.python_now().is_some() {
            return true;
        }
        self.emit(
            token,
            cell_id,
            ExecEventKind::Waiting(Some(WAITING_FOR_ENVIRONMENT.into())),
        );
        let ready = self.config.environment.python();
        tokio::pin!(ready);
        loop {
            tokio::select! {
                _ = &mut ready => break,
                _ = tokio::time::sleep(INTERRUPT_RETRY) => {
                    let interrupted = self
                        .targets
                        .lock()
                        .is_ok_and(|t| t.interrupted_token == Some(token));
                    if interrupted {
                        return false;
                    }
                }
            }
        }
        self.emit(token, cell_id, ExecEventKind::Waiting(None));
        true
    }

    /// Runs Python code or embedded SQL in the kernel, with the cell's time limit, interrupts
    /// and crash recovery.
    async fn run_in_kernel(&mut self, token: u64, cell_id: &str, work: KernelWork<'_>) -> Finished {
        let timeout = self.config.timeout;
        let events = self.events.clone();
        let targets_check = self.targets.clone();
        if !self.wait_for_python(token, cell_id).await {
            return Finished::interrupted();
        }
        let kernel = match self.ensure_kernel().await {
            Ok(kernel) => kernel,
            Err(e) => return Finished::error(format!("Could not start the Python kernel: {e}")),
        };
        // The kernel already dropped whatever is past the output caps, so at most one cell's
        // worth of events can wait here.
        let (tx, mut rx) = mpsc::unbounded_channel::<KernelEvent>();
        let forward_cell = cell_id.to_string();
        let forwarder = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let kind = match event {
                    KernelEvent::Stream { name, text } => ExecEventKind::Stream { name, text },
                    KernelEvent::Output(output) => ExecEventKind::Output(output_json(output)),
                };
                let event = ExecEvent {
                    token,
                    cell_id: forward_cell.clone(),
                    kind,
                };
                // One at a time, each handled before the next is sent: the room handles every
                // message waiting in its mailbox in one poll, so a burst of up to 32 MiB of
                // outputs queued with `do_send` would land in the sessions' outboxes (16 MiB)
                // before any session could write a byte, and cut them all off (1013).
                if events.send(event).await.is_err() {
                    break;
                }
            }
        });
        // Timeout: SIGINT first; if the cell ignores it, kill the process.
        let interrupter = kernel.interrupter();
        let pid = kernel.pid();
        let targets = targets_check.clone();
        let watchdog = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                tokio::time::sleep(INTERRUPT_RETRY).await;
                let requested = targets
                    .lock()
                    .is_ok_and(|t| t.interrupted_token == Some(token));
                if requested {
                    interrupter.interrupt();
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
            interrupter.interrupt();
            tokio::time::sleep(KILL_GRACE).await;
            kill_kernel(pid);
        });
        let started = std::time::Instant::now();
        let already_interrupted = targets_check
            .lock()
            .is_ok_and(|t| t.interrupted_token == Some(token));
        let result = if already_interrupted {
            drop(tx);
            ExecResult::Interrupted
        } else {
            match work {
                KernelWork::Python(code) => kernel.execute(code, &[], tx).await,
                KernelWork::Sql {
                    code,
                    names,
                    result_name,
                } => kernel.execute_sql(code, names, result_name, tx).await,
            }
        };
        let ran_for = started.elapsed();
        watchdog.abort();
        let _ = forwarder.await;
        let died = matches!(result, ExecResult::Died(_));
        let finished = finish_kernel_result(result, ran_for, timeout);
        if died {
            metrics::kernel_restarted(RestartReason::Crash);
            self.drop_kernel().await;
            if let Err(e) = self.ensure_kernel().await {
                log::error!("kernel restart after crash failed: {e}");
            }
        }
        finished
    }

    /// The kernel's values for a SQL cell's parameters, or how the cell ends instead. The read
    /// has a time limit, since converting a value can run user code that never returns; a kernel
    /// that had to be killed for it is replaced at once so the next run works.
    async fn read_values(&mut self, names: &[String]) -> Result<Vec<Value>, Finished> {
        let limit = GET_VALUES_TIMEOUT.min(self.config.timeout);
        let kernel = self
            .ensure_kernel()
            .await
            .map_err(|e| Finished::error(format!("Could not start the Python kernel: {e}")))?;
        let result = kernel.get_values_within(names, limit).await;
        let lost = match result {
            Ok(values) => return Ok(values),
            Err(KernelError::NameNotDefined(name)) => {
                return Err(Finished::error(format!(
                    "NameError: name '{name}' is not defined (run the cell that defines it first)"
                )))
            }
            Err(KernelError::Interrupted) => return Err(Finished::interrupted()),
            Err(KernelError::ValuesTimedOut {
                secs,
                killed: false,
            }) => {
                return Err(Finished::error(format!(
                    "Reading the parameters' Python values took longer than {secs} s (converting a \
                     value ran code that did not return, e.g. a __str__ or __int__ that loops); it \
                     was interrupted and the query was not run"
                )))
            }
            Err(KernelError::ValuesTimedOut { secs, killed: true }) => format!(
                "Reading the parameters' Python values took longer than {secs} s and the kernel \
                 did not stop when interrupted; it was killed and restarted, so all values are gone"
            ),
            Err(e) => format!(
                "The kernel died while reading the parameters' values ({e}); a fresh kernel was \
                 started and all values are gone"
            ),
        };
        log::warn!("SQL parameters: {lost}");
        metrics::kernel_restarted(RestartReason::Crash);
        self.drop_kernel().await;
        if let Err(e) = self.ensure_kernel().await {
            log::error!("kernel restart failed: {e}");
        }
        Err(Finished::died(lost))
    }

    async fn run_sql(
        &mut self,
        token: u64,
        cell_id: &str,
        code: &str,
        conn_string: String,
        placeholders: &[(Range<usize>, String)],
        result_name: Option<&str>,
    ) -> Finished {
        let names = values_order(placeholders);
        let values: Vec<Value> = if names.is_empty() {
            Vec::new()
        } else {
            if !self.wait_for_python(token, cell_id).await {
                return Finished::interrupted();
            }
            match self.read_values(&names).await {
                Ok(values) => values,
                Err(finished) => return finished,
            }
        };
        let canceller = SqlCanceller::default();
        if let Ok(mut targets) = self.targets.lock() {
            targets.sql = Some(canceller.clone());
        }
        let request = SqlRequest {
            conn_string: &conn_string,
            code,
            placeholders,
            values: &values,
            timeout: self.config.timeout,
            max_rows: 1000,
            hosts: &self.config.sql_hosts,
        };
        let outcome = run_sql(request, &canceller).await;
        if let Ok(mut targets) = self.targets.lock() {
            targets.sql = None;
        }
        match outcome {
            Ok(SqlOutcome::Table(output)) => match result_name {
                Some(name) => self.bind_result(name, output).await,
                None => Finished::with_outputs(vec![output]),
            },
            Ok(SqlOutcome::Affected { command, rows }) => Finished::with_outputs(vec![json!({
                "mime_type": "text/plain",
                "data": format!("{command}: {rows} row{} affected", if rows == 1 { "" } else { "s" }),
                "metadata": {},
            })]),
            Err(SqlError::Cancelled) => Finished::interrupted(),
            Err(e) => Finished::error(e.to_string()),
        }
    }
}

impl Worker {
    /// Binds a database query's result table to `name` in the kernel, then shows it. Only the
    /// rows the query returned (at most `max_rows`) are bound.
    async fn bind_result(&mut self, name: &str, output: Value) -> Finished {
        let null = Value::Null;
        let data = output.get("data").unwrap_or(&null);
        let columns = data.get("columns").unwrap_or(&null);
        let rows = data.get("rows").unwrap_or(&null);
        let kernel = match self.ensure_kernel().await {
            Ok(kernel) => kernel,
            Err(e) => {
                return Finished::error(format!(
                    "The query ran, but its result could not be bound to '{name}': could not \
                     start the Python kernel: {e}"
                ))
            }
        };
        match kernel.bind_table(name, columns, rows).await {
            ExecResult::Ok => Finished::with_outputs(vec![output]),
            ExecResult::Error(e) => Finished::error(format!(
                "The query ran, but its result could not be bound to '{name}': {e}"
            )),
            ExecResult::Died(reason) => {
                log::warn!("kernel died binding a SQL result: {reason}");
                metrics::kernel_restarted(RestartReason::Crash);
                self.drop_kernel().await;
                if let Err(e) = self.ensure_kernel().await {
                    log::error!("kernel restart failed: {e}");
                }
                Finished::died(format!(
                    "The query ran, but the kernel died binding its result to '{name}' \
                     ({reason}); a fresh kernel was started and all values are gone"
                ))
            }
            ExecResult::Interrupted => Finished::interrupted(),
        }
    }
}

impl Worker {
    /// Runs a plan of Python cells in the kernel in one message. Each cell has the time
    /// limit of its own; an interrupt stops the running cell and drops the rest.
    async fn run_plan(&mut self, token: u64, cells: Vec<PlannedCell>) {
        let Some(first) = cells.first().map(|c| c.cell_id.clone()) else {
            return;
        };
        let not_run = |worker: &Worker, head: Finished| {
            for (i, cell) in cells.iter().enumerate() {
                let finished = if i == 0 {
                    head.clone()
                } else {
                    Finished::not_run(Outcome::Cancelled)
                };
                worker.emit(token, &cell.cell_id, ExecEventKind::Finished(finished));
            }
        };
        if !self.wait_for_python(token, &first).await {
            return not_run(self, Finished::interrupted());
        }
        let timeout = self.config.timeout;
        let targets = self.targets.clone();
        let events = self.batches.clone();
        let kernel = match self.ensure_kernel().await {
            Ok(kernel) => kernel,
            Err(e) => {
                let head = Finished::error(format!("Could not start the Python kernel: {e}"));
                return not_run(self, head);
            }
        };
        let canceller = kernel.plan_canceller();
        let interrupter = kernel.interrupter();
        let pid = kernel.pid();
        if let Ok(mut targets) = targets.lock() {
            targets.plan = Some((token, canceller.clone()));
            if targets.interrupted_token == Some(token) {
                canceller.cancel();
            }
        }
        let clock = Arc::new(Mutex::new(StepClock::default()));
        let watchdog = tokio::spawn(plan_watchdog(
            token,
            targets.clone(),
            clock.clone(),
            interrupter,
            pid,
            timeout,
        ));
        let (tx, rx) = mpsc::unbounded_channel::<PlanEvent>();
        let ids: Vec<String> = cells.iter().map(|c| c.cell_id.clone()).collect();
        let forwarder = tokio::spawn(forward_plan_events(token, ids, rx, events, clock, timeout));
        let plan: Vec<PlanCell<'_>> = cells
            .iter()
            .map(|c| PlanCell {
                code: &c.code,
                parents: c.parents.clone(),
            })
            .collect();
        kernel.execute_plan(&canceller, &plan, tx).await;
        watchdog.abort();
        if let Ok(mut targets) = targets.lock() {
            targets.plan = None;
        }
        let died = forwarder.await.unwrap_or(false);
        if died {
            metrics::kernel_restarted(RestartReason::Crash);
            self.drop_kernel().await;
            if let Err(e) = self.ensure_kernel().await {
                log::error!("kernel restart after crash failed: {e}");
            }
        }
    }
}

/// The plan step running now, for its time limit.
#[derive(Default)]
struct StepClock {
    /// Step index and when it started.
    running: Option<(usize, tokio::time::Instant)>,
}

/// Interrupts a plan on request, and the running step at its time limit (then kills the
/// kernel if the step ignores the interrupt).
async fn plan_watchdog(
    token: u64,
    targets: Arc<Mutex<InterruptTargets>>,
    clock: Arc<Mutex<StepClock>>,
    interrupter: Interrupter,
    pid: Option<u32>,
    timeout: Duration,
) {
    let mut fired: Option<(usize, tokio::time::Instant)> = None;
    loop {
        tokio::time::sleep(INTERRUPT_RETRY).await;
        let requested = targets
            .lock()
            .is_ok_and(|t| t.interrupted_token == Some(token));
        if requested {
            interrupter.interrupt();
        }
        let running = clock.lock().ok().and_then(|c| c.running);
        let Some((step, started)) = running else {
            continue;
        };
        let now = tokio::time::Instant::now();
        match fired {
            Some((at_step, kill_at)) if at_step == step && now >= kill_at => {
                kill_kernel(pid);
                return;
            }
            Some((at_step, _)) if at_step == step => {}
            _ if now >= started + timeout => {
                interrupter.interrupt();
                fired = Some((step, now + KILL_GRACE));
            }
            _ => {}
        }
    }
}

/// Most stream text handed to the room in one batch.
const BATCH_TEXT_BYTES: usize = 64 * 1024;
/// Most events handed to the room in one batch.
const BATCH_EVENTS: usize = 512;

/// Hands a plan's events to the room in order, in batches of what has arrived, and waits
/// for each batch to be handled before the next: a burst of large outputs must reach the
/// sessions a bit at a time (see `run_in_kernel`), so an output always ends its batch.
/// Returns whether the kernel died.
async fn forward_plan_events(
    token: u64,
    ids: Vec<String>,
    mut rx: mpsc::UnboundedReceiver<PlanEvent>,
    events: Recipient<ExecEvents>,
    clock: Arc<Mutex<StepClock>>,
    timeout: Duration,
) -> bool {
    let mut died = false;
    let mut started_at: Option<std::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut text_bytes = 0;
        let mut next = Some(first);
        while let Some(event) = next.take() {
            let ends_batch = matches!(event, PlanEvent::Output { .. });
            if let PlanEvent::Stream { text, .. } = &event {
                text_bytes += text.len();
            }
            let (step, kind) = match event {
                PlanEvent::Started(step) => {
                    started_at = Some(std::time::Instant::now());
                    if let Ok(mut c) = clock.lock() {
                        c.running = Some((step, tokio::time::Instant::now()));
                    }
                    (step, ExecEventKind::Started)
                }
                PlanEvent::Stream { step, name, text } => {
                    (step, ExecEventKind::Stream { name, text })
                }
                PlanEvent::Output { step, output } => {
                    (step, ExecEventKind::Output(output_json(output)))
                }
                PlanEvent::Done { step, result } => {
                    if let Ok(mut c) = clock.lock() {
                        c.running = None;
                    }
                    let ran_for = started_at.take().map(|at| at.elapsed()).unwrap_or_default();
                    let finished = match result {
                        StepResult::Ran(result) => {
                            died |= matches!(result, ExecResult::Died(_));
                            finish_kernel_result(result, ran_for, timeout)
                        }
                        StepResult::Blocked => Finished::not_run(Outcome::Blocked),
                        StepResult::Cancelled => Finished::not_run(Outcome::Cancelled),
                    };
                    (step, ExecEventKind::Finished(finished))
                }
            };
            if let Some(cell_id) = ids.get(step) {
                batch.push(ExecEvent {
                    token,
                    cell_id: cell_id.clone(),
                    kind,
                });
            }
            if ends_batch || text_bytes >= BATCH_TEXT_BYTES || batch.len() >= BATCH_EVENTS {
                break;
            }
            next = rx.try_recv().ok();
        }
        if events.send(ExecEvents(batch)).await.is_err() {
            break;
        }
    }
    died
}

/// How a cell that ran in the kernel for `ran_for` ends, as the room sees it (and as the
/// `cell_runs_total` metric counts it).
fn finish_kernel_result(result: ExecResult, ran_for: Duration, timeout: Duration) -> Finished {
    let timed_out = ran_for >= timeout;
    let outcome = match &result {
        ExecResult::Ok => CellOutcome::Success,
        ExecResult::Error(_) => CellOutcome::Error,
        ExecResult::Interrupted | ExecResult::Died(_) if timed_out => CellOutcome::Timeout,
        ExecResult::Interrupted => CellOutcome::Interrupted,
        ExecResult::Died(_) => CellOutcome::Crashed,
    };
    metrics::cell_run(outcome, Some(ran_for));
    match result {
        ExecResult::Ok => Finished::success(),
        ExecResult::Error(traceback) => Finished::error(traceback),
        ExecResult::Interrupted if timed_out => Finished::error(format!(
            "Timed out after {} s (KERNEL_TIMEOUT_SECS); the cell was interrupted",
            timeout.as_secs()
        )),
        ExecResult::Interrupted => Finished::interrupted(),
        ExecResult::Died(reason) => {
            log::warn!("kernel crashed: {reason}");
            Finished::died(if timed_out {
                format!(
                    "Timed out after {} s and did not stop when interrupted; the kernel was killed and restarted",
                    timeout.as_secs()
                )
            } else {
                // `reason` reads "kernel died (...)" or "kernel broke the protocol (...)".
                format!("The {reason}; a fresh kernel was started and all values are gone")
            })
        }
    }
}

/// The `cell_runs_total` outcome of a cell that ran outside the kernel (SQL on a database);
/// None for a cell that did not run.
fn cell_outcome(outcome: &Outcome) -> Option<CellOutcome> {
    match outcome {
        Outcome::Success => Some(CellOutcome::Success),
        Outcome::Error(_) => Some(CellOutcome::Error),
        Outcome::Interrupted => Some(CellOutcome::Interrupted),
        Outcome::Died(_) => Some(CellOutcome::Crashed),
        // Counted where the room blocks it; a cancelled cell runs again later.
        Outcome::Blocked | Outcome::Cancelled => None,
    }
}

/// A kernel's view of a package layer: `PYTHONPATH` and the directory to mount read-only.
/// Without a usable layer the kernel simply starts without it.
pub(crate) async fn layer_env(
    layer: &crate::pyenv::packages::Layer,
    python: &str,
) -> (Vec<(String, String)>, Vec<PathBuf>) {
    let prepared = match layer.site_dirs(python).await {
        Ok(dirs) => layer.ensure(&dirs).map(|_| dirs).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match prepared {
        Ok(dirs) => (
            vec![
                (
                    "PYTHONPATH".to_string(),
                    crate::pyenv::packages::install::join_paths(&dirs),
                ),
                (
                    "PACKAGE_LAYER_MANIFEST".to_string(),
                    layer.manifest().display().to_string(),
                ),
            ],
            vec![layer.root.clone()],
        ),
        Err(e) => {
            log::warn!("package layer {} unusable: {e}", layer.root.display());
            (Vec::new(), Vec::new())
        }
    }
}

/// SIGKILLs the kernel process we spawned, if it has a pid.
fn kill_kernel(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid we spawned; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn output_json(output: Output) -> Value {
    json!({
        "mime_type": output.mime_type,
        "data": output.data,
        "metadata": output.metadata,
    })
}
