//! seccomp layer: a deny-list of syscalls a notebook never needs and an attacker would love.
//!
//! Built once with `seccompiler` (no hand-assembled BPF) in the server; the kernel's process
//! installs the compiled programs right before `exec`, after `PR_SET_NO_NEW_PRIVS`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Syscalls refused with EPERM: debugging other processes, mounting, namespaces, keyrings,
/// BPF, perf, kexec, kernel modules, userfaultfd, file handles and the like.
const DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_personality,
];

/// `clone` flags that would create a namespace (the `unshare` equivalent of `clone`).
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

/// The compiled filters, in installation order (empty if compiling failed).
pub(crate) fn programs() -> &'static [BpfProgram] {
    static PROGRAMS: OnceLock<Vec<BpfProgram>> = OnceLock::new();
    PROGRAMS.get_or_init(|| match build() {
        Ok(p) => p,
        Err(e) => {
            log::error!("cannot build the seccomp filter: {e}");
            Vec::new()
        }
    })
}

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("{e:?}"))
}

fn build() -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in DENIED {
        rules.insert(nr, Vec::new());
    }
    let mut clone_rules = Vec::new();
    for &flag in NAMESPACE_FLAGS {
        let cond = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .map_err(|e| e.to_string())?;
        clone_rules.push(SeccompRule::new(vec![cond]).map_err(|e| e.to_string())?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    // clone3 passes its flags in memory, out of a filter's reach; ENOSYS makes libc fall back
    // to clone, whose flags the first filter checks.
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let no_clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![
        BpfProgram::try_from(deny).map_err(|e| e.to_string())?,
        BpfProgram::try_from(no_clone3).map_err(|e| e.to_string())?,
    ])
}

/// Whether this host can install seccomp filters.
pub(crate) fn available() -> bool {
    // SAFETY: PR_GET_SECCOMP only reads the caller's mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    mode >= 0 && std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

/// Installs the filters on the calling process (in the forked child, before exec).
/// Async-signal-safe: no allocation.
pub(crate) fn install(programs: &[BpfProgram]) -> std::io::Result<()> {
    for prog in programs {
        seccompiler::apply_filter(prog).map_err(|_| std::io::Error::last_os_error())?;
    }
    Ok(())
}
