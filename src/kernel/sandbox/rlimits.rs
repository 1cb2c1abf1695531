//! Resource-limit layer: rlimits set on the kernel process right before exec.

use super::mounts::Step;

/// The rlimits of one kernel, in bytes or counts (0 = leave as is).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// `RLIMIT_DATA`: private writable memory (heap, anonymous mmap).
    pub data_bytes: u64,
    /// `RLIMIT_AS`: all mapped memory, which also bounds shared anonymous mappings, memfd and
    /// SysV segments that `RLIMIT_DATA` does not count.
    pub address_space_bytes: u64,
    /// `RLIMIT_NPROC`: processes and threads.
    pub procs: u64,
    /// `RLIMIT_FSIZE`: largest file written.
    pub file_bytes: u64,
    /// `RLIMIT_NOFILE`: open files.
    pub open_files: u64,
}

impl Limits {
    /// Limits for a kernel with `memory_mb` of memory (0 = unlimited).
    ///
    /// The address-space cap leaves the larger of `memory_mb` and 1 GiB on top of the data
    /// cap: shared libraries and reserved-but-unused arenas count there, and numpy/pandas
    /// reserve a few hundred MB of address space they never touch.
    pub(crate) fn new(memory_mb: u64, procs: u64, file_mb: u64, open_files: u64) -> Limits {
        const MIB: u64 = 1024 * 1024;
        let data = memory_mb.saturating_mul(MIB);
        let headroom = memory_mb.max(1024).saturating_mul(MIB);
        Limits {
            data_bytes: data,
            address_space_bytes: if memory_mb == 0 {
                0
            } else {
                data.saturating_add(headroom)
            },
            procs,
            file_bytes: file_mb.saturating_mul(MIB),
            open_files,
        }
    }

    /// Applies the limits to the calling process. `own_user_ns`: the process is alone in a
    /// user namespace, so `RLIMIT_NPROC` counts only its own processes (outside one it would
    /// count every process of the uid, the server's included). Async-signal-safe.
    pub(crate) fn apply(&self, own_user_ns: bool) -> Result<(), Step> {
        set(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
        if self.data_bytes > 0 {
            set(libc::RLIMIT_DATA, self.data_bytes, "RLIMIT_DATA")?;
        }
        if self.address_space_bytes > 0 {
            set(libc::RLIMIT_AS, self.address_space_bytes, "RLIMIT_AS")?;
        }
        if self.file_bytes > 0 {
            set(libc::RLIMIT_FSIZE, self.file_bytes, "RLIMIT_FSIZE")?;
        }
        if self.open_files > 0 {
            set(libc::RLIMIT_NOFILE, self.open_files, "RLIMIT_NOFILE")?;
        }
        if own_user_ns && self.procs > 0 {
            set(libc::RLIMIT_NPROC, self.procs, "RLIMIT_NPROC")?;
        }
        Ok(())
    }
}

fn set(resource: libc::__rlimit_resource_t, value: u64, what: &'static str) -> Result<(), Step> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid out-struct.
    unsafe { libc::getrlimit(resource, &mut old) };
    // Only ever lower a limit: raising a hard limit needs privileges the kernel lacks.
    let value = (value as libc::rlim_t).min(old.rlim_max);
    let lim = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(Step {
            what,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    Ok(())
}
