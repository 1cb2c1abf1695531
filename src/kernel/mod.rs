//! Python kernels: one subprocess per open notebook; user code never runs in the server.
//!
//! Design:
//! - The driver (`driver.py`, embedded and run with `python -c`) talks line-delimited JSON
//!   over dedicated pipes: the child reads commands on fd 3 and writes messages on fd 4.
//!   Its fds 1 and 2 are redirected by the driver into internal pipes that are forwarded
//!   as stream messages, so anything user code, C extensions or subprocesses write can
//!   never corrupt the protocol. The child's original stderr goes to the server log.
//! - EOF on fd 4 means the kernel died; it is then reaped and the exit status reported.
//! - fd 4 is reachable by cell code, so the server trusts nothing on it: `reader.rs` kills a
//!   kernel that breaks the protocol, and `caps.rs` limits what one cell's outputs and
//!   stream text may amount to, dropping the rest as it arrives.
//! - `memory_mb` is applied as `RLIMIT_DATA`, not `RLIMIT_AS`: `RLIMIT_AS` counts address
//!   space that is only reserved (glibc's 64 MB per-thread malloc arenas, OpenBLAS buffers,
//!   mapped shared libraries), so numpy/pandas imports can fail even at 2 GB on many-core
//!   machines. Since Linux 4.7 `RLIMIT_DATA` counts private writable mappings (heap and
//!   anonymous mmap), which tracks what user data actually consumes.
//! - The child runs in its own process group (terminal Ctrl+C on the server does not reach
//!   it; interrupts and kills address the group, including user subprocesses) and gets
//!   `PR_SET_PDEATHSIG(SIGKILL)` so it dies with the server.

mod caps;
pub mod introspect;
mod plan;
mod process;
mod protocol;
mod reader;
pub mod sandbox;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::KernelLimits;
use crate::metrics::{KernelBusy, KernelGauge, KernelState};
pub use caps::{MAX_CELL_OUTPUT_BYTES, MAX_OUTPUT_BYTES, MAX_STREAM_BYTES};

use caps::CellBudget;
pub use introspect::{IntrospectError, IntrospectRequest, Introspector};
pub use plan::{PlanCanceller, PlanCell, PlanEvent, StepResult};
pub(crate) use process::spawn_sandboxed;
use process::StderrTail;
use protocol::{Command, DoneStatus, DriverMsg, Incoming};

/// How long a fresh kernel may take to report ready (cold disk caches can be slow).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a kernel that closed its pipe / was asked to stop gets to exit on its own.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Longest time reading SQL parameter values may take: converting a value can run user code
/// (`__str__`, `isoformat`, a `__class__` property, ...) that never returns.
pub const GET_VALUES_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a value read that timed out gets to stop after SIGINT before the kernel is killed.
const GET_VALUES_GRACE: Duration = Duration::from_secs(3);

/// How to start a kernel.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// Python interpreter, e.g. `python3` or `/repo/.venv/bin/python`.
    pub python: String,
    /// Working directory (and HOME) of the kernel; created if missing.
    pub work_dir: PathBuf,
    /// Memory limit in MB (RLIMIT_DATA); 0 = no limit.
    pub memory_mb: u64,
    /// Extra environment variables for the kernel (its environment is otherwise cleared).
    pub extra_env: Vec<(String, String)>,
    /// Sandbox and resource limits.
    pub limits: KernelLimits,
    /// Host directories the kernel may read (not write), e.g. its notebook's package layer.
    pub read_only_dirs: Vec<PathBuf>,
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            python: "python3".to_string(),
            work_dir: std::env::temp_dir().join("reactive-notebook-kernel"),
            memory_mb: 0,
            extra_env: Vec::new(),
            limits: KernelLimits::default(),
            read_only_dirs: Vec::new(),
        }
    }
}

/// Something a running cell produced.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelEvent {
    /// A live chunk of `"stdout"` or `"stderr"` text.
    Stream {
        /// `"stdout"` or `"stderr"`.
        name: String,
        /// The text written.
        text: String,
    },
    /// A rich output (last expression value, `display()`, an open matplotlib figure).
    Output(Output),
}

/// A rich output: MIME type, payload and metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Output {
    /// e.g. `text/plain`, `text/html`, `image/png`, `application/json`.
    pub mime_type: String,
    /// The payload (a string, or a JSON document for JSON types).
    pub data: serde_json::Value,
    /// Extra information about the payload.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// How a cell ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecResult {
    /// Ran to completion.
    Ok,
    /// Raised; the traceback is trimmed to the user's frames.
    Error(String),
    /// Stopped by an interrupt (KeyboardInterrupt).
    Interrupted,
    /// The kernel process died or was killed; the reason, a phrase starting with "kernel",
    /// names the exit code, the signal or the protocol violation.
    Died(String),
}

/// Kernel failures.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel could not be started.
    #[error("failed to start kernel: {0}")]
    Spawn(String),
    /// The kernel has died; spawn a new one.
    #[error("kernel is dead")]
    Dead,
    /// A requested name does not exist in the kernel namespace.
    #[error("name '{0}' is not defined")]
    NameNotDefined(String),
    /// Reading values took longer than the limit; with `killed` the kernel did not stop when
    /// interrupted and was killed (start a new one), otherwise it is free again.
    #[error("reading the values took longer than {secs} s")]
    ValuesTimedOut {
        /// The limit in seconds.
        secs: u64,
        /// Whether the kernel had to be killed.
        killed: bool,
    },
    /// Reading values was stopped by an interrupt; the kernel is free again.
    #[error("reading the values was interrupted")]
    Interrupted,
    /// I/O error setting up the kernel.
    #[error("kernel i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Sends SIGINT to a kernel; usable while `execute` is running.
#[derive(Clone, Debug)]
pub struct Interrupter {
    pid: u32,
    /// False once the kernel is being reaped, so a recycled pid is never signalled.
    alive: Arc<Mutex<bool>>,
}

impl Interrupter {
    /// Interrupt the running cell (KeyboardInterrupt). Returns false if the kernel is gone.
    pub fn interrupt(&self) -> bool {
        let Ok(alive) = self.alive.lock() else {
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        if !*alive {
            return false;
        }
        // The whole group, so a blocking `os.system("sleep 10")` child is interrupted too.
        // SAFETY: plain syscall on our own unreaped child's process group.
        unsafe { libc::kill(-pid, libc::SIGINT) == 0 }
    }

    /// SIGKILL the kernel's whole process group, unless it is already being reaped.
    pub(crate) fn kill(&self) -> bool {
        let Ok(alive) = self.alive.lock() else {
            return false;
        };
        if !*alive {
            return false;
        }
        // Holding the lock keeps the kernel unreaped, so its pgid cannot have been reused.
        process::kill_group(self.pid);
        true
    }
}

/// A running Python kernel process.
pub struct Kernel {
    child: Option<Child>,
    pid: u32,
    cmd_tx: Option<introspect::SharedWriter>,
    introspector: Introspector,
    msgs: mpsc::Receiver<Incoming>,
    next_id: u64,
    dead: Option<String>,
    alive: Arc<Mutex<bool>>,
    memory_mb: u64,
    stderr_tail: StderrTail,
    stderr_task: Option<JoinHandle<()>>,
    /// Released (uid slot, cgroup) only when the kernel struct goes, after its processes.
    _sandbox: sandbox::Guard,
    /// The kernel's place in the `kernels{state}` gauge; it leaves the gauge with the struct.
    gauge: Arc<KernelGauge>,
}

impl Kernel {
    /// Start a kernel and wait until its driver reports ready.
    pub async fn spawn(cfg: &KernelConfig) -> Result<Kernel, KernelError> {
        let gauge = KernelGauge::new(KernelState::Starting);
        let started = Self::start(cfg, gauge).await;
        crate::metrics::kernel_start(started.is_ok());
        started
    }

    /// [`Kernel::spawn`] without the counting; the kernel is `starting` in `gauge` meanwhile.
    async fn start(cfg: &KernelConfig, gauge: Arc<KernelGauge>) -> Result<Kernel, KernelError> {
        let sp = process::spawn_child(cfg).await?;
        let pid = sp.pid;
        log::info!(
            "kernel {pid} spawned ({}, work dir {}, memory limit {} MB)",
            cfg.python,
            cfg.work_dir.display(),
            cfg.memory_mb
        );
        let alive = Arc::new(Mutex::new(true));
        let killer = Interrupter {
            pid,
            alive: alive.clone(),
        };
        let (tx, rx) = reader::queue();
        let replies = introspect::Replies::default();
        let cmd_tx = Arc::new(tokio::sync::Mutex::new(sp.cmd_tx));
        let introspector = Introspector::new(&cmd_tx, &replies);
        tokio::spawn(reader::read_messages(sp.msg_rx, tx, pid, killer, replies));
        let stderr_tail: StderrTail = Arc::default();
        let stderr_task = sp
            .stderr
            .map(|s| tokio::spawn(process::log_stderr(s, stderr_tail.clone(), pid)));
        let mut kernel = Kernel {
            child: Some(sp.child),
            pid,
            cmd_tx: Some(cmd_tx),
            introspector,
            msgs: rx,
            next_id: 0,
            dead: None,
            alive,
            memory_mb: cfg.memory_mb,
            stderr_tail,
            stderr_task,
            _sandbox: sp.sandbox,
            gauge,
        };
        let why = match tokio::time::timeout(READY_TIMEOUT, kernel.next()).await {
            Ok(Ok(DriverMsg::Ready {
                version,
                pid: driver_pid,
            })) => {
                // Inside its PID namespace the driver has its own numbering.
                log::debug!("kernel {pid}: driver pid {driver_pid:?}");
                log::info!(
                    "kernel {pid} ready (Python {})",
                    version.as_deref().unwrap_or("?")
                );
                kernel.gauge.set(Some(KernelState::Idle));
                return Ok(kernel);
            }
            Ok(Ok(other)) => {
                log::debug!("kernel {pid}: first message {other:?}");
                let r =
                    "kernel broke the protocol (its first message was not `ready`) and was killed";
                kernel.die(Some(r.into())).await
            }
            Ok(Err(reason)) => reason,
            Err(_) => {
                let r = format!(
                    "kernel did not report ready within {} s",
                    READY_TIMEOUT.as_secs()
                );
                kernel.die(Some(r)).await
            }
        };
        // Let the stderr logger catch the interpreter's last words for the error message.
        if let Some(task) = kernel.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_millis(500), task).await;
        }
        let tail = kernel
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Err(KernelError::Spawn(if tail.is_empty() {
            why
        } else {
            format!("{why}: {tail}")
        }))
    }

    /// Run one cell. Before running, delete `forget` names from the kernel namespace.
    /// Events stream to `events` as they happen; returns when the cell finished.
    ///
    /// Outputs and stream text past the caps in [`caps`] are dropped as they arrive; if any
    /// were, one `text/plain` marker output saying what was dropped is the last event.
    pub async fn execute(
        &mut self,
        code: &str,
        forget: &[String],
        events: mpsc::UnboundedSender<KernelEvent>,
    ) -> ExecResult {
        if let Some(reason) = &self.dead {
            return ExecResult::Died(reason.clone());
        }
        let _busy = KernelBusy::new(&self.gauge);
        let id = self.new_id();
        if let Err(reason) = self.send(&Command::Execute { id, code, forget }).await {
            return ExecResult::Died(reason);
        }
        self.until_done(id, events).await
    }

    /// Run a SQL cell on the kernel's embedded DuckDB. `code` uses `$1..$n` placeholders whose
    /// values are the kernel's values of `names` (bound, never spliced into the text); the
    /// query sees the kernel's globals (DataFrames) as tables. The result table streams as an
    /// output and is bound to `result_name`. A missing `duckdb` module is an error result.
    pub async fn execute_sql(
        &mut self,
        code: &str,
        names: &[String],
        result_name: Option<&str>,
        events: mpsc::UnboundedSender<KernelEvent>,
    ) -> ExecResult {
        if let Some(reason) = &self.dead {
            return ExecResult::Died(reason.clone());
        }
        let _busy = KernelBusy::new(&self.gauge);
        let id = self.new_id();
        let cmd = Command::Sql {
            id,
            code,
            names,
            result_name,
        };
        if let Err(reason) = self.send(&cmd).await {
            return ExecResult::Died(reason);
        }
        self.until_done(id, events).await
    }

    /// Binds a query result to `name` in the kernel: a pandas DataFrame with these columns and
    /// rows when pandas is importable, else a list of dicts.
    pub async fn bind_table(
        &mut self,
        name: &str,
        columns: &serde_json::Value,
        rows: &serde_json::Value,
    ) -> ExecResult {
        if let Some(reason) = &self.dead {
            return ExecResult::Died(reason.clone());
        }
        let id = self.new_id();
        let cmd = Command::BindTable {
            id,
            name,
            columns,
            rows,
        };
        if let Err(reason) = self.send(&cmd).await {
            return ExecResult::Died(reason);
        }
        // Building a DataFrame prints nothing; any stray event has nowhere to go.
        let (events, _) = mpsc::unbounded_channel();
        self.until_done(id, events).await
    }

    /// Forwards the streams and outputs of command `id` until its `done`.
    async fn until_done(
        &mut self,
        id: u64,
        events: mpsc::UnboundedSender<KernelEvent>,
    ) -> ExecResult {
        let mut budget = CellBudget::default();
        // A dropped receiver just means nobody is watching; keep running.
        let result = loop {
            let (msg, line_bytes) = match self.next_sized().await {
                Ok(sized) => sized,
                Err(reason) => break ExecResult::Died(reason),
            };
            match msg {
                DriverMsg::Stream {
                    id: Some(i),
                    name,
                    text,
                } if i == id => {
                    if let Some(text) = budget.admit_stream(text) {
                        let _ = events.send(KernelEvent::Stream { name, text });
                    }
                }
                DriverMsg::Output {
                    id: Some(i),
                    output,
                } if i == id => {
                    if let Some(output) = budget.admit_output(output, line_bytes) {
                        let _ = events.send(KernelEvent::Output(output));
                    }
                }
                DriverMsg::Dropped { id: Some(i), bytes } if i == id => {
                    budget.note_dropped_by_kernel(bytes.unwrap_or(0))
                }
                DriverMsg::Done {
                    id: Some(i),
                    status,
                    error,
                } if i == id => {
                    break match status {
                        DoneStatus::Ok => ExecResult::Ok,
                        DoneStatus::Interrupted => ExecResult::Interrupted,
                        DoneStatus::Error => ExecResult::Error(self.annotate_error(error)),
                        // Only plan steps end so; a single command never does.
                        DoneStatus::Blocked | DoneStatus::Cancelled => ExecResult::Interrupted,
                    };
                }
                other => log::debug!("kernel {}: ignoring stale message {other:?}", self.pid),
            }
        };
        if let Some(marker) = budget.marker() {
            let _ = events.send(KernelEvent::Output(marker));
        }
        result
    }

    /// Delete names from the kernel's globals, ignoring missing ones.
    pub async fn forget(&mut self, names: &[String]) -> Result<(), KernelError> {
        self.ensure_alive()?;
        let id = self.new_id();
        self.send(&Command::Forget { id, names })
            .await
            .map_err(|_| KernelError::Dead)?;
        loop {
            match self.next().await {
                Ok(DriverMsg::Forgot { id: Some(i) }) if i == id => return Ok(()),
                Ok(other) => log::debug!("kernel {}: ignoring stale message {other:?}", self.pid),
                Err(_) => return Err(KernelError::Dead),
            }
        }
    }

    /// Values of names for SQL parameters, as JSON: `{"type":"int","value":..}`, `"float"`,
    /// `"str"`, `"bool"`, `"none"`, `"date"`/`"datetime"` (ISO), `"decimal"` (string), or
    /// `{"type":"unsupported","python_type":..}`. Non-finite floats are the strings
    /// `"NaN"`/`"Infinity"`/`"-Infinity"`; ints beyond i64 come back as `"decimal"`.
    /// Gives up after [`GET_VALUES_TIMEOUT`] (see [`Kernel::get_values_within`]).
    pub async fn get_values(
        &mut self,
        names: &[String],
    ) -> Result<Vec<serde_json::Value>, KernelError> {
        self.get_values_within(names, GET_VALUES_TIMEOUT).await
    }

    /// [`Kernel::get_values`] with a time limit: when it passes, the read is interrupted
    /// (SIGINT); if the kernel does not answer within a short grace it is killed. Either way the
    /// call returns [`KernelError::ValuesTimedOut`] and the kernel is not left busy.
    pub async fn get_values_within(
        &mut self,
        names: &[String],
        limit: Duration,
    ) -> Result<Vec<serde_json::Value>, KernelError> {
        self.ensure_alive()?;
        let id = self.new_id();
        self.send(&Command::GetValues { id, names })
            .await
            .map_err(|_| KernelError::Dead)?;
        if let Ok(answer) = tokio::time::timeout(limit, self.values_answer(id)).await {
            return answer;
        }
        let secs = limit.as_secs() + u64::from(limit.subsec_nanos() > 0);
        log::warn!(
            "kernel {}: reading values took longer than {secs} s; interrupting",
            self.pid
        );
        // One SIGINT: the driver answers `interrupted`. Repeating it could hit the driver's
        // own handler and take the kernel down, which the kill below covers anyway.
        self.interrupter().interrupt();
        match tokio::time::timeout(GET_VALUES_GRACE, self.values_answer(id)).await {
            Ok(Err(KernelError::Dead)) => Err(KernelError::ValuesTimedOut { secs, killed: true }),
            Ok(_) => Err(KernelError::ValuesTimedOut {
                secs,
                killed: false,
            }),
            Err(_) => {
                self.die(Some("did not stop reading values when interrupted".into()))
                    .await;
                Err(KernelError::ValuesTimedOut { secs, killed: true })
            }
        }
    }

    /// Waits for the answer to the `get_values` command `id`.
    async fn values_answer(&mut self, id: u64) -> Result<Vec<serde_json::Value>, KernelError> {
        loop {
            match self.next().await {
                Ok(DriverMsg::Values {
                    id: Some(i),
                    values,
                    missing,
                    interrupted,
                }) if i == id => {
                    if interrupted {
                        return Err(KernelError::Interrupted);
                    }
                    if let Some(name) = missing {
                        return Err(KernelError::NameNotDefined(name));
                    }
                    return Ok(values.unwrap_or_default());
                }
                Ok(other) => log::debug!("kernel {}: ignoring stale message {other:?}", self.pid),
                Err(_) => return Err(KernelError::Dead),
            }
        }
    }

    /// A handle that can interrupt this kernel from another task.
    pub fn interrupter(&self) -> Interrupter {
        Interrupter {
            pid: self.pid,
            alive: self.alive.clone(),
        }
    }

    /// Stop the kernel: ask the driver to exit, then SIGTERM, then SIGKILL; always reaps.
    pub async fn shutdown(mut self) {
        let pid = self.pid;
        // Asked to stop: it no longer counts as live, and its exit is no crash.
        self.gauge.set(None);
        self.mark_dead();
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(tx) = self.cmd_tx.take() {
            if let Ok(line) = Command::Shutdown.to_line() {
                let write = async { tx.lock().await.write_all(&line).await };
                let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
            }
            // Dropping our end also gives the driver EOF, which makes it exit.
        }
        if !wait_exited(pid, EXIT_GRACE).await {
            log::warn!("kernel {pid} did not exit on request; sending SIGTERM");
            if let Ok(p) = libc::pid_t::try_from(pid) {
                // SAFETY: plain syscall on our own unreaped child.
                unsafe {
                    libc::kill(p, libc::SIGTERM);
                }
            }
            wait_exited(pid, Duration::from_secs(1)).await;
        }
        // Sweep anything the user started in the background; the leader is still unreaped.
        process::kill_group(pid);
        match child.wait().await {
            Ok(status) => log::info!("kernel {pid} shut down ({status})"),
            Err(e) => log::error!("kernel {pid}: wait failed: {e}"),
        }
        self.dead = Some("kernel was shut down".into());
    }

    /// Counts the kernel as a pool spare (`spare`) or as a notebook's kernel (idle).
    pub fn set_spare(&self, spare: bool) {
        let (from, to) = if spare {
            (KernelState::Idle, KernelState::Spare)
        } else {
            (KernelState::Spare, KernelState::Idle)
        };
        self.gauge.shift(from, to);
    }

    /// A handle for completion, inspection and variable summaries, usable while a cell runs.
    pub fn introspector(&self) -> Introspector {
        self.introspector.clone()
    }

    /// OS process id, while the kernel is alive.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|_| self.pid)
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn ensure_alive(&self) -> Result<(), KernelError> {
        if self.dead.is_some() || self.child.is_none() {
            Err(KernelError::Dead)
        } else {
            Ok(())
        }
    }

    fn annotate_error(&self, error: Option<String>) -> String {
        let mut e = error.unwrap_or_else(|| "unknown error".to_string());
        if self.memory_mb > 0 && e.contains("MemoryError") {
            e.push_str(&format!(
                "\n(the kernel's memory limit is {} MB)",
                self.memory_mb
            ));
        }
        e
    }

    /// Send one command; on failure the kernel is reaped and the death reason returned.
    async fn send(&mut self, cmd: &Command<'_>) -> Result<(), String> {
        let line = match cmd.to_line() {
            Ok(l) => l,
            Err(e) => return Err(format!("kernel command could not be encoded: {e}")),
        };
        let res = match self.cmd_tx.as_ref() {
            Some(tx) => tx.lock().await.write_all(&line).await,
            None => return Err(self.dead.clone().unwrap_or_else(|| "kernel is dead".into())),
        };
        match res {
            Ok(()) => Ok(()),
            Err(e) => {
                log::warn!("kernel {}: write failed: {e}", self.pid);
                Err(self.die(None).await)
            }
        }
    }

    /// Next driver message; on EOF or a protocol violation the kernel is reaped and the
    /// reason returned.
    async fn next(&mut self) -> Result<DriverMsg, String> {
        self.next_sized().await.map(|(msg, _)| msg)
    }

    /// [`Kernel::next`], with the length of the line that carried the message.
    async fn next_sized(&mut self) -> Result<(DriverMsg, usize), String> {
        if let Some(reason) = &self.dead {
            return Err(reason.clone());
        }
        match self.msgs.recv().await {
            // Dropping the permit gives the message's bytes back to the reader's budget.
            Some(Incoming::Msg(m, line_bytes, _permit)) => Ok((m, line_bytes)),
            Some(Incoming::Closed(proto)) => {
                let why = proto.map(|p| format!("kernel broke the protocol ({p}) and was killed"));
                Err(self.die(why).await)
            }
            None => Err(self.die(None).await),
        }
    }

    fn mark_dead(&self) {
        if let Ok(mut a) = self.alive.lock() {
            *a = false;
        }
    }

    /// Reap a kernel whose pipe closed and describe why it died; with `killed_because`, kill
    /// it without waiting (it misbehaved) and report that reason.
    async fn die(&mut self, killed_because: Option<String>) -> String {
        if let Some(reason) = &self.dead {
            return reason.clone();
        }
        // A kernel that had reported ready died on us; one still starting failed to start.
        if self
            .gauge
            .set(None)
            .is_some_and(|state| state != KernelState::Starting)
        {
            crate::metrics::kernel_crashed();
        }
        self.mark_dead();
        self.cmd_tx = None;
        let pid = self.pid;
        let reason = match self.child.take() {
            None => "kernel is dead".to_string(),
            Some(mut child) => {
                let exited = killed_because.is_none() && wait_exited(pid, EXIT_GRACE).await;
                process::kill_group(pid);
                let status = child.wait().await;
                match (killed_because, status) {
                    (Some(why), _) => why,
                    (None, Ok(st)) if exited => process::describe_exit(st, self.memory_mb),
                    (None, Ok(_)) => "kernel died (closed its protocol pipe)".to_string(),
                    (None, Err(e)) => format!("kernel died (wait failed: {e})"),
                }
            }
        };
        log::warn!("kernel {pid}: {reason}");
        self.dead = Some(reason.clone());
        reason
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.mark_dead();
            // kill_on_drop SIGKILLs the leader and tokio reaps it; this also sweeps its group.
            process::kill_group(self.pid);
            log::info!("kernel {} dropped; killed", self.pid);
        }
    }
}

/// Whether our child `pid` has exited, without reaping it (so its pid/pgid stay reserved).
fn has_exited(pid: u32) -> bool {
    let p: libc::id_t = pid;
    // SAFETY: zeroed siginfo_t is a valid out-buffer for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall; WNOWAIT leaves the child waitable for tokio.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            p,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    };
    // SAFETY: si_pid is valid to read after waitid filled (or zeroed) the struct.
    rc != 0 || unsafe { info.si_pid() } != 0
}

/// Poll until the child exits or `limit` passes; true if it exited.
async fn wait_exited(pid: u32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if has_exited(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
