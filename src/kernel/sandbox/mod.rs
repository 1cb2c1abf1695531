//! The kernel sandbox: what stands between a notebook's code and everything else on the host.
//!
//! One layer per file:
//! - `launch.rs`: the process chain (supervisor → init → kernel) and its namespaces
//!   (user, mount, PID, IPC, UTS, cgroup, and network with `KERNEL_NETWORK=none`);
//! - `mounts.rs`: the file-system view inside the mount namespace;
//! - `fs_access.rs`: Landlock, an independent allow-list of the same paths, plus scoping;
//! - `syscalls.rs`: the seccomp deny-list;
//! - `rlimits.rs`: memory, processes, file size, open files, no core dumps;
//! - `cgroup.rs`: per-kernel cgroup v2 limits where the host delegates a subtree.
//!
//! `KERNEL_SANDBOX=auto` uses every layer the host supports, `strict` refuses to start kernels
//! without namespaces, Landlock and seccomp, `off` keeps only the memory rlimit.

mod cgroup;
mod fs_access;
mod launch;
mod mounts;
mod rlimits;
mod syscalls;

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::config::{KernelLimits, KernelNetwork, SandboxMode};

pub(crate) use launch::Chain;

use fs_access::{LandlockPlan, PathAccess};
use launch::Identity;
use mounts::MountPlan;
use rlimits::Limits;

/// What this host supports, probed once.
#[derive(Debug, Clone)]
struct HostSupport {
    namespaces: Result<(), String>,
    landlock_abi: i32,
    seccomp: bool,
}

fn host_support() -> &'static HostSupport {
    static SUPPORT: OnceLock<HostSupport> = OnceLock::new();
    SUPPORT.get_or_init(|| HostSupport {
        namespaces: probe_namespaces(),
        landlock_abi: fs_access::host_abi(),
        seccomp: syscalls::available() && !syscalls::programs().is_empty(),
    })
}

fn running_as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Namespace flags for the supervisor's unshare.
fn namespace_flags(network: KernelNetwork) -> libc::c_int {
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    if network == KernelNetwork::None {
        flags |= libc::CLONE_NEWNET;
    }
    if !running_as_root() {
        // Unprivileged: the user namespace comes first and grants the rest.
        flags |= libc::CLONE_NEWUSER;
    }
    flags
}

/// Tries the namespace setup on a throwaway `true`: unshare, map ids, become PID 1 of a new
/// PID namespace, mount a tmpfs and a fresh /proc, and (as root) make an unprivileged user
/// namespace the way kernels do.
fn probe_namespaces() -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let flags = namespace_flags(KernelNetwork::Full);
    let root = running_as_root();
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let identity = if root {
        Identity::new(65534, 65534, true)
    } else {
        Identity::new(uid, gid, false)
    };
    let mut cmd = std::process::Command::new("true");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: the closure makes raw syscalls only.
    unsafe {
        cmd.pre_exec(move || probe_child(flags, &identity));
    }
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("namespace setup failed ({s})")),
        Err(e) => Err(format!("namespace setup failed: {e}")),
    }
}

/// Between fork and exec of the probe.
unsafe fn probe_child(flags: libc::c_int, id: &Identity) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    if libc::unshare(flags) != 0 {
        return Err(err());
    }
    if flags & libc::CLONE_NEWUSER != 0 {
        launch::map_self(id).map_err(|step| std::io::Error::from_raw_os_error(step.errno))?;
    }
    let pid = libc::fork();
    if pid < 0 {
        return Err(err());
    }
    if pid == 0 {
        let ok = libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) == 0
            && libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            ) == 0
            && libc::mount(
                c"proc".as_ptr(),
                c"/tmp".as_ptr(),
                c"proc".as_ptr(),
                0,
                std::ptr::null(),
            ) == 0
            && (!id.switch_user
                || (libc::setgroups(0, std::ptr::null()) == 0
                    && libc::setresgid(id.gid, id.gid, id.gid) == 0
                    && libc::setresuid(id.uid, id.uid, id.uid) == 0
                    && libc::unshare(libc::CLONE_NEWUSER) == 0));
        libc::_exit(if ok { 0 } else { 1 });
    }
    let mut status = 0;
    libc::waitpid(pid, &mut status, 0);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(libc::EPERM))
    }
}

/// The sandbox layers in force for kernels, as `/api/config` and the start-up log report them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SandboxReport {
    /// `auto`, `strict` or `off`.
    pub mode: String,
    /// Layers in force.
    pub active: Vec<String>,
    /// Layers missing on this host, each with the reason.
    pub missing: Vec<String>,
}

/// Which layers a kernel started with `limits` gets on this host.
pub fn report(limits: &KernelLimits) -> SandboxReport {
    let mode = match limits.sandbox {
        SandboxMode::Auto => "auto",
        SandboxMode::Strict => "strict",
        SandboxMode::Off => "off",
    }
    .to_string();
    let mut active = vec!["rlimits".to_string()];
    let mut missing = Vec::new();
    if limits.sandbox == SandboxMode::Off {
        return SandboxReport {
            mode,
            active: vec!["rlimit-memory".into()],
            missing: vec!["everything else (KERNEL_SANDBOX=off)".into()],
        };
    }
    let host = host_support();
    match &host.namespaces {
        Ok(()) => {
            active.push("namespaces".into());
            active.push("mount-view".into());
            if limits.network == KernelNetwork::None {
                active.push("network-none".into());
            }
        }
        Err(e) => missing.push(format!("namespaces: {e}")),
    }
    if running_as_root() {
        active.push("unprivileged-uid".into());
    }
    if host.landlock_abi > 0 {
        active.push(format!(
            "landlock-abi-{}",
            fs_access::effective_abi_version()
        ));
    } else {
        missing.push("landlock: not supported by this kernel".into());
    }
    if host.seccomp {
        active.push("seccomp".into());
    } else {
        missing.push("seccomp: not supported by this kernel".into());
    }
    match cgroup_parent(limits) {
        Ok(_) => active.push("cgroup".into()),
        Err(e) => missing.push(format!("cgroup: {e}")),
    }
    SandboxReport {
        mode,
        active,
        missing,
    }
}

/// Logs one line naming the active and missing layers.
pub fn log_report(limits: &KernelLimits) {
    let r = report(limits);
    if limits.sandbox == SandboxMode::Off {
        log::warn!("KERNEL_SANDBOX=off: kernels run unsandboxed with the server's privileges");
        return;
    }
    log::info!(
        "kernel sandbox ({}): active {}; missing {}",
        r.mode,
        r.active.join(", "),
        if r.missing.is_empty() {
            "none".to_string()
        } else {
            r.missing.join("; ")
        }
    );
}

fn cgroup_parent(limits: &KernelLimits) -> Result<PathBuf, String> {
    type Detected = HashMap<Option<PathBuf>, Result<PathBuf, String>>;
    static DETECTED: OnceLock<Mutex<Detected>> = OnceLock::new();
    let cache = DETECTED.get_or_init(Mutex::default);
    let mut cache = cache
        .lock()
        .map_err(|_| "cgroup detection failed".to_string())?;
    cache
        .entry(limits.cgroup.clone())
        .or_insert_with(|| cgroup::detect(limits.cgroup.as_deref()))
        .clone()
}

/// Host directories holding the interpreter's installation, probed once per interpreter.
fn python_roots(python: &Path) -> Result<Vec<PathBuf>, String> {
    static ROOTS: OnceLock<Mutex<HashMap<PathBuf, Vec<PathBuf>>>> = OnceLock::new();
    let cache = ROOTS.get_or_init(Mutex::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(python).cloned()) {
        return Ok(found);
    }
    let roots = mounts::python_roots(python)?;
    if let Ok(mut c) = cache.lock() {
        c.insert(python.to_path_buf(), roots.clone());
    }
    Ok(roots)
}

/// Finds `program` on PATH the way a shell would, so the sandbox can mount its installation.
pub(crate) fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return std::path::absolute(&p).ok();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// uids handed to live kernels when the server runs as root (one per kernel, so their
/// process counts and files never mix).
fn uid_slots() -> &'static Mutex<BTreeSet<u32>> {
    static SLOTS: OnceLock<Mutex<BTreeSet<u32>>> = OnceLock::new();
    SLOTS.get_or_init(Mutex::default)
}

/// Holds a kernel's uid and cgroup until the kernel is gone.
#[derive(Debug, Default)]
pub(crate) struct Guard {
    uid_slot: Option<u32>,
    _cgroup: Option<cgroup::KernelCgroup>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(slot) = self.uid_slot {
            if let Ok(mut slots) = uid_slots().lock() {
                slots.remove(&slot);
            }
        }
    }
}

/// A kernel's sandbox, prepared in the server before the fork.
pub(crate) struct Prepared {
    /// The chain to run between fork and exec (`None` with `KERNEL_SANDBOX=off`).
    pub chain: Option<Arc<Chain>>,
    /// Read end of the setup diagnostics pipe.
    pub diag: Option<OwnedFd>,
    /// Released when the kernel is gone.
    pub guard: Guard,
    /// Extra environment for the kernel.
    pub env: Vec<(String, String)>,
}

fn cloexec_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid 2-element buffer.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Gives `dir` (and, on first use by this uid, everything in it) to the kernel's uid.
fn hand_over(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    if meta.uid() != uid {
        chown_tree(dir, uid, gid)?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Prepares the sandbox of a kernel running `python` in `work_dir`, which may also read (and
/// execute from) the directories in `read_only`.
pub(crate) fn prepare(
    python: &Path,
    work_dir: &Path,
    read_only: &[PathBuf],
    memory_mb: u64,
    limits: &KernelLimits,
) -> Result<Prepared, String> {
    if limits.sandbox == SandboxMode::Off {
        return Ok(Prepared {
            chain: None,
            diag: None,
            guard: Guard::default(),
            env: Vec::new(),
        });
    }
    let host = host_support();
    if limits.sandbox == SandboxMode::Strict {
        let mut lacking = Vec::new();
        if let Err(e) = &host.namespaces {
            lacking.push(format!("namespaces ({e})"));
        }
        if host.landlock_abi == 0 {
            lacking.push("Landlock".to_string());
        }
        if !host.seccomp {
            lacking.push("seccomp".to_string());
        }
        if !lacking.is_empty() {
            return Err(format!(
                "KERNEL_SANDBOX=strict and this host lacks {}",
                lacking.join(", ")
            ));
        }
    }
    let namespaces = host.namespaces.is_ok();
    let root = running_as_root();
    let mut guard = Guard::default();

    // SAFETY: getuid/getgid cannot fail.
    let (mut uid, mut gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if root {
        let mut slots = uid_slots()
            .lock()
            .map_err(|_| "uid allocator poisoned".to_string())?;
        let slot = (0u32..).find(|s| !slots.contains(s)).unwrap_or(0);
        slots.insert(slot);
        guard.uid_slot = Some(slot);
        uid = limits.uid.saturating_add(slot);
        gid = uid;
        hand_over(work_dir, uid, gid)
            .map_err(|e| format!("cannot give {} to uid {uid}: {e}", work_dir.display()))?;
    }
    let identity = Identity::new(uid, gid, root);

    let mut roots = python_roots(python)?;
    roots.extend(read_only.iter().filter(|dir| dir.is_dir()).cloned());
    let mounts = MountPlan::new(work_dir, &roots, limits.tmp_mb)?;

    let landlock = if host.landlock_abi > 0 {
        let mut host_rules: Vec<(&Path, PathAccess)> = mounts
            .read_paths
            .iter()
            .map(|p| (p.as_path(), PathAccess::ReadExec))
            .collect();
        if !namespaces {
            // Without a mount view the kernel reads the host's own trees.
            for root in &roots {
                host_rules.push((root.as_path(), PathAccess::ReadExec));
            }
        }
        for dev in &mounts.device_paths {
            host_rules.push((dev.as_path(), PathAccess::Device));
        }
        host_rules.push((work_dir, PathAccess::Full));
        let inner: &[(&str, PathAccess)] = if namespaces {
            &[
                ("/tmp", PathAccess::Full),
                ("/dev/shm", PathAccess::Full),
                ("/proc", PathAccess::Read),
            ]
        } else {
            &[("/proc", PathAccess::Read)]
        };
        Some(LandlockPlan::build(
            &host_rules,
            inner,
            limits.network == KernelNetwork::None,
        )?)
    } else {
        None
    };

    let cgroup_procs = match cgroup_parent(limits) {
        Ok(parent) => {
            let name = format!("kernel-{}-{}", std::process::id(), next_cgroup_id());
            let (cg, procs) = cgroup::KernelCgroup::create(
                &parent,
                &name,
                memory_mb,
                limits.max_procs,
                limits.cpus,
            )?;
            guard._cgroup = Some(cg);
            Some(procs)
        }
        Err(_) => None,
    };

    let (diag_r, diag_w) = cloexec_pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    let chain = Chain {
        ns_flags: if namespaces {
            namespace_flags(limits.network)
        } else {
            0
        },
        identity,
        mounts,
        network_none: limits.network == KernelNetwork::None,
        limits: Limits::new(
            memory_mb,
            limits.max_procs,
            limits.max_file_mb,
            limits.max_open_files,
        ),
        landlock,
        seccomp: if host.seccomp {
            syscalls::programs()
        } else {
            &[]
        },
        diag: diag_w,
        cgroup_procs,
    };
    let mut env = vec![
        ("USER".to_string(), "notebook".to_string()),
        ("LOGNAME".to_string(), "notebook".to_string()),
        // Fewer malloc arenas: less reserved address space under RLIMIT_AS.
        ("MALLOC_ARENA_MAX".to_string(), "2".to_string()),
    ];
    if !namespaces {
        env.push(("TMPDIR".to_string(), work_dir.display().to_string()));
    }
    Ok(Prepared {
        chain: Some(Arc::new(chain)),
        diag: Some(diag_r),
        guard,
        env,
    })
}

fn next_cgroup_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What the setup wrote before failing (the step's name), if anything.
pub(crate) fn read_diag(diag: &OwnedFd) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::from(diag.try_clone().ok()?);
    let mut buf = [0u8; 256];
    let n = file.read(&mut buf).ok()?;
    (n > 0).then(|| String::from_utf8_lossy(&buf[..n]).into_owned())
}
