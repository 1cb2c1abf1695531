//! Low-level process plumbing: pipes, the child's fd layout, rlimits, reaping.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, OnceLock};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::oneshot;

use super::sandbox::{self, Prepared};
use super::{KernelConfig, KernelError};

/// fd on which the child reads commands.
pub(crate) const CHILD_CMD_FD: RawFd = 3;
/// fd on which the child writes messages.
pub(crate) const CHILD_MSG_FD: RawFd = 4;

/// Driver source, run with `python -c` so nothing is written to disk; `introspect.py` only
/// defines things the driver's main loop uses, so it goes first.
const DRIVER_SRC: &str = concat!(include_str!("introspect.py"), include_str!("driver.py"));

/// Last lines the child wrote to its real stderr, for error messages.
pub(crate) type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// Create a pipe whose both ends are close-on-exec, so no other child inherits them.
fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid 2-element buffer.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

type Job = Box<dyn FnOnce() + Send>;

/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process.
/// Tokio's blocking threads come and go, so every kernel is forked from one
/// long-lived thread to make "die with the server" reliable.
fn spawner() -> Option<&'static Mutex<std_mpsc::Sender<Job>>> {
    static SPAWNER: OnceLock<Option<Mutex<std_mpsc::Sender<Job>>>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = std_mpsc::channel::<Job>();
            std::thread::Builder::new()
                .name("kernel-spawner".into())
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
                .ok()
                .map(|_| Mutex::new(tx))
        })
        .as_ref()
}

/// Run `f` on the spawner thread (inline if that thread could not be started).
async fn on_spawner_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, KernelError> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(f());
    });
    let queued = match spawner() {
        Some(s) => match s.lock() {
            Ok(sender) => sender.send(job).map_err(|e| e.0),
            Err(_) => Err(job),
        },
        None => Err(job),
    };
    if let Err(job) = queued {
        log::warn!("kernel spawner thread unavailable; spawning inline");
        job();
    }
    rx.await
        .map_err(|_| KernelError::Spawn("spawner thread dropped the request".into()))
}

/// Between fork and exec: the child gets SIGKILL when the server (its parent) dies.
/// Async-signal-safe.
///
/// # Safety
/// Only call in a `pre_exec` closure.
unsafe fn die_with_server(server_pid: libc::pid_t) -> std::io::Result<()> {
    if libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    ) != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    // The server may have died between fork and prctl.
    if libc::getppid() != server_pid {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Spawns `cmd` (its environment, stdio and working directory already set) inside the sandbox
/// `prepared` describes, in its own process group and dying with the server. For helper
/// processes such as a notebook's package installer; kernels use [`spawn_child`].
pub(crate) async fn spawn_sandboxed(
    mut cmd: Command,
    prepared: Prepared,
    program: &std::path::Path,
) -> Result<(Child, sandbox::Guard), KernelError> {
    // SAFETY: getpid is always safe.
    let server_pid = unsafe { libc::getpid() };
    let chain = prepared.chain.clone();
    cmd.process_group(0).kill_on_drop(true);
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            die_with_server(server_pid)?;
            match &chain {
                Some(chain) => chain.enter(),
                None => Ok(()),
            }
        });
    }
    let handle = tokio::runtime::Handle::current();
    let spawned = on_spawner_thread(move || {
        let _guard = handle.enter();
        cmd.spawn()
    })
    .await?;
    let Prepared {
        chain, diag, guard, ..
    } = prepared;
    drop(chain);
    let child = spawned.map_err(|e| spawn_error(diag.as_ref(), program, e))?;
    Ok((child, guard))
}

/// Why a sandboxed spawn failed: the sandbox step that failed, if it reported one.
fn spawn_error(
    diag: Option<&OwnedFd>,
    program: &std::path::Path,
    e: std::io::Error,
) -> KernelError {
    let step = diag.and_then(sandbox::read_diag);
    KernelError::Spawn(match step {
        Some(step) => format!("sandbox setup failed ({step}): {e}"),
        None => format!("cannot run {}: {e}", program.display()),
    })
}

/// A freshly started child with the server's ends of its pipes.
pub(crate) struct Spawned {
    pub child: Child,
    pub pid: u32,
    pub cmd_tx: pipe::Sender,
    pub msg_rx: pipe::Receiver,
    pub stderr: Option<ChildStderr>,
    /// The kernel's uid slot and cgroup, held until it is gone.
    pub sandbox: sandbox::Guard,
}

/// Start the interpreter running the driver, with fds 3/4 as the protocol pipes.
pub(crate) async fn spawn_child(cfg: &KernelConfig) -> Result<Spawned, KernelError> {
    std::fs::create_dir_all(&cfg.work_dir).map_err(|e| {
        KernelError::Spawn(format!(
            "cannot create work dir {}: {e}",
            cfg.work_dir.display()
        ))
    })?;
    let work_dir = cfg
        .work_dir
        .canonicalize()
        .unwrap_or_else(|_| cfg.work_dir.clone());

    let (cmd_r, cmd_w) = cloexec_pipe()?;
    let (msg_r, msg_w) = cloexec_pipe()?;

    let mut path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    // A venv interpreter's bin dir first, so `pip`/`python` in shell-outs match the kernel.
    if cfg.python.contains('/') {
        if let Some(dir) = std::path::Path::new(&cfg.python).parent() {
            if !dir.as_os_str().is_empty() {
                path = format!("{}:{path}", dir.display());
            }
        }
    }

    let python = sandbox::resolve_program(&cfg.python)
        .ok_or_else(|| KernelError::Spawn(format!("cannot find {} on PATH", cfg.python)))?;
    let prepared = sandbox::prepare(
        &python,
        &work_dir,
        &cfg.read_only_dirs,
        cfg.memory_mb,
        &cfg.limits,
    )
    .map_err(|e| KernelError::Spawn(format!("sandbox: {e}")))?;

    let mut cmd = Command::new(&python);
    cmd.arg("-c")
        .arg(DRIVER_SRC)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &work_dir)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MPLBACKEND", "Agg")
        .envs(prepared.env.iter().map(|(k, v)| (k, v)))
        .envs(cfg.extra_env.iter().map(|(k, v)| (k, v)))
        .current_dir(&work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Own process group: a terminal Ctrl+C aimed at the server does not reach kernels.
        .process_group(0)
        .kill_on_drop(true);

    let cmd_r_fd = cmd_r.as_raw_fd();
    let msg_w_fd = msg_w.as_raw_fd();
    // SAFETY: getpid is always safe.
    let server_pid = unsafe { libc::getpid() };
    // With a sandbox the kernel process sets all its limits itself (after its namespaces).
    let mem_bytes = if prepared.chain.is_some() {
        0
    } else {
        cfg.memory_mb.saturating_mul(1024 * 1024)
    };
    let chain = prepared.chain.clone();
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            die_with_server(server_pid)?;
            if mem_bytes > 0 {
                // RLIMIT_DATA, not RLIMIT_AS: see the module docs in mod.rs.
                let lim = libc::rlimit {
                    rlim_cur: mem_bytes as libc::rlim_t,
                    rlim_max: mem_bytes as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Move the pipe ends out of the way first: either might already be fd 3 or 4.
            let a = libc::fcntl(cmd_r_fd, libc::F_DUPFD, 10);
            let b = libc::fcntl(msg_w_fd, libc::F_DUPFD, 10);
            if a < 0 || b < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // dup2 clears FD_CLOEXEC on the target, so 3 and 4 survive exec.
            if libc::dup2(a, CHILD_CMD_FD) < 0 || libc::dup2(b, CHILD_MSG_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(a);
            libc::close(b);
            match &chain {
                Some(chain) => chain.enter(),
                None => Ok(()),
            }
        });
    }

    let handle = tokio::runtime::Handle::current();
    let spawned = on_spawner_thread(move || {
        let _guard = handle.enter();
        cmd.spawn()
    })
    .await?;
    let Prepared {
        chain, diag, guard, ..
    } = prepared;
    drop(chain);
    let spawned = spawned.map_err(|e| spawn_error(diag.as_ref(), &python, e))?;
    // The child has its copies; drop ours so EOF means the child is gone.
    drop(cmd_r);
    drop(msg_w);

    let mut child = spawned;
    let pid = child
        .id()
        .ok_or_else(|| KernelError::Spawn("child exited immediately".into()))?;
    let stderr = child.stderr.take();
    let cmd_tx = pipe::Sender::from_owned_fd(cmd_w)?;
    let msg_rx = pipe::Receiver::from_owned_fd(msg_r)?;
    Ok(Spawned {
        child,
        pid,
        cmd_tx,
        msg_rx,
        stderr,
        sandbox: guard,
    })
}

/// Log the child's real stderr (driver diagnostics, crash dumps) and keep its tail.
pub(crate) async fn log_stderr(stderr: ChildStderr, tail: StderrTail, pid: u32) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        log::warn!("kernel {pid} stderr: {line}");
        if let Ok(mut t) = tail.lock() {
            if t.len() >= 20 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// SIGKILL the child's whole process group (the driver and anything it started).
/// Only called while the leader is unreaped, so the group id cannot have been reused.
pub(crate) fn kill_group(pid: u32) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall; a negative pid addresses the process group.
        unsafe {
            libc::kill(-p, libc::SIGKILL);
        }
    }
}

/// Human name of a signal number.
pub(crate) fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// Why the kernel died, from its exit status.
pub(crate) fn describe_exit(status: ExitStatus, memory_mb: u64) -> String {
    if let Some(code) = status.code() {
        return format!("kernel died (exit code {code})");
    }
    match status.signal() {
        Some(sig) => {
            let mut s = format!("kernel died (killed by signal {})", signal_name(sig));
            // SIGKILL is what an OOM killer sends; SIGABRT is CPython's fatal out-of-memory path.
            if memory_mb > 0 && (sig == libc::SIGKILL || sig == libc::SIGABRT) {
                s.push_str(&format!(
                    "; it may have exceeded its memory limit of {memory_mb} MB"
                ));
            }
            s
        }
        None => "kernel died".to_string(),
    }
}
