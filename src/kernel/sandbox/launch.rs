//! The process chain that puts a kernel in its namespaces, run between fork and exec.
//!
//! ```text
//! server ── supervisor (host PID namespace; what the server waits on and signals)
//!              └─ init (PID 1 of the kernel's namespaces; builds the mount view, reaps)
//!                   └─ kernel (own user namespace, rlimits, Landlock, seccomp; execs Python)
//! ```
//!
//! Each link dies with its parent (`PR_SET_PDEATHSIG`), and everything in a PID namespace dies
//! with its init, so no process a kernel starts (`setsid`, double-forked daemons) can outlive
//! it, even when the server is killed with SIGKILL. All three run forked copies of the server
//! between fork and exec, where only async-signal-safe calls are allowed: everything is
//! prepared in the server, and this file only makes raw syscalls.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use seccompiler::BpfProgram;

use super::fs_access::LandlockPlan;
use super::mounts::{MountPlan, Step};
use super::rlimits::Limits;

/// Ids the kernel runs as, with their single-line maps for its user namespace.
#[derive(Debug)]
pub(crate) struct Identity {
    /// uid and gid outside (and inside: the maps are the identity).
    pub uid: u32,
    pub gid: u32,
    /// `"<uid> <uid> 1"`.
    pub uid_map: CString,
    /// `"<gid> <gid> 1"`.
    pub gid_map: CString,
    /// The server is root: the kernel switches to `uid` and makes its own user namespace.
    pub switch_user: bool,
}

impl Identity {
    /// The identity for a kernel running as `uid`/`gid`.
    pub(crate) fn new(uid: u32, gid: u32, switch_user: bool) -> Identity {
        let map = |id: u32| CString::new(format!("{id} {id} 1")).unwrap_or_default();
        Identity {
            uid,
            gid,
            uid_map: map(uid),
            gid_map: map(gid),
            switch_user,
        }
    }
}

/// Everything the chain needs, built before the fork.
#[derive(Debug)]
pub(crate) struct Chain {
    /// CLONE_NEW* flags the supervisor unshares.
    pub ns_flags: libc::c_int,
    pub identity: Identity,
    pub mounts: MountPlan,
    pub network_none: bool,
    pub limits: Limits,
    pub landlock: Option<LandlockPlan>,
    pub seccomp: &'static [BpfProgram],
    /// Written with the failing step's name when setup fails (read by the server).
    pub diag: OwnedFd,
    /// An open `cgroup.procs` to join before anything else.
    pub cgroup_procs: Option<OwnedFd>,
}

/// Writes a static message to the diagnostics pipe and returns the error.
fn fail(diag: RawFd, step: Step) -> std::io::Error {
    let what = step.what.as_bytes();
    // SAFETY: writing a static buffer to a pipe we own.
    unsafe {
        libc::write(diag, what.as_ptr().cast(), what.len());
    }
    std::io::Error::from_raw_os_error(step.errno)
}

fn step(rc: i64, what: &'static str) -> Result<(), Step> {
    if rc < 0 {
        Err(Step {
            what,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        })
    } else {
        Ok(())
    }
}

/// Writes `data` to a /proc file of the calling process.
unsafe fn write_file(path: &std::ffi::CStr, data: &[u8], what: &'static str) -> Result<(), Step> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    step(fd as i64, what)?;
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let err = std::io::Error::last_os_error();
    libc::close(fd);
    if n < 0 || n as usize != data.len() {
        return Err(Step {
            what,
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        });
    }
    Ok(())
}

/// Maps the caller's own uid/gid into the user namespace it just created.
pub(crate) unsafe fn map_self(id: &Identity) -> Result<(), Step> {
    write_file(c"/proc/self/setgroups", b"deny", "deny setgroups")?;
    write_file(
        c"/proc/self/uid_map",
        id.uid_map.as_bytes(),
        "write uid_map",
    )?;
    write_file(
        c"/proc/self/gid_map",
        id.gid_map.as_bytes(),
        "write gid_map",
    )
}

/// Closes every fd from `first` up.
unsafe fn close_from(first: u32) {
    if libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) != 0 {
        for fd in first..1024 {
            libc::close(fd as i32);
        }
    }
}

/// Waits for `pid`; returns its raw wait status (ignoring other children, reaping them).
unsafe fn wait_for(pid: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        let r = libc::waitpid(-1, &mut status, 0);
        if r == pid {
            return status;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 1 << 8;
        }
    }
}

/// Ends this process the way `status` ended its child: same exit code, or the same signal.
unsafe fn exit_like(status: libc::c_int, can_signal: bool) -> ! {
    let sig = if libc::WIFSIGNALED(status) {
        libc::WTERMSIG(status)
    } else {
        let code = libc::WEXITSTATUS(status);
        if code > 128 && code < 128 + 32 {
            code - 128
        } else {
            libc::_exit(code)
        }
    };
    if can_signal {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
    libc::_exit(128 + sig)
}

/// Dies when the parent does; fails if the parent is already gone (`alive` is the read end of
/// a pipe whose only write end the parent holds).
unsafe fn tie_to_parent(alive: RawFd) -> Result<(), Step> {
    step(
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) as i64,
        "set the parent-death signal",
    )?;
    let mut pfd = libc::pollfd {
        fd: alive,
        events: libc::POLLIN,
        revents: 0,
    };
    if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return Err(Step {
            what: "parent died during setup",
            errno: libc::ESRCH,
        });
    }
    libc::close(alive);
    Ok(())
}

/// A pipe with no CLOEXEC on its read end: the child polls it for its parent's death.
unsafe fn liveness_pipe() -> Result<(RawFd, RawFd), Step> {
    let mut fds = [0; 2];
    step(libc::pipe(fds.as_mut_ptr()) as i64, "create a pipe")?;
    Ok((fds[0], fds[1]))
}

/// Brings the loopback interface up in a fresh network namespace.
unsafe fn loopback_up() -> Result<(), Step> {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    step(sock as i64, "open a socket for lo")?;
    let mut req: libc::ifreq = std::mem::zeroed();
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    let rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
    if rc == 0 {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
    }
    libc::close(sock);
    Ok(())
}

impl Chain {
    /// Runs in the forked child (the supervisor). Returns only in the final kernel process,
    /// which then execs; the supervisor and init never return.
    ///
    /// # Safety
    /// Must be called between fork and exec (single-threaded child), from `pre_exec`.
    pub(crate) unsafe fn enter(&self) -> std::io::Result<()> {
        let diag = self.diag.as_raw_fd();
        if let Some(procs) = &self.cgroup_procs {
            let n = libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1);
            if n != 1 {
                return Err(fail(
                    diag,
                    Step {
                        what: "join the kernel's cgroup",
                        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    },
                ));
            }
        }
        // Signals aimed at the kernel's process group are for the kernel, not its keepers.
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        if self.ns_flags != 0 {
            if libc::unshare(self.ns_flags) != 0 {
                return Err(fail(
                    diag,
                    Step {
                        what: "unshare namespaces",
                        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    },
                ));
            }
            if self.ns_flags & libc::CLONE_NEWUSER != 0 {
                map_self(&self.identity).map_err(|s| fail(diag, s))?;
            }
            let (alive_r, alive_w) = liveness_pipe().map_err(|s| fail(diag, s))?;
            let init = libc::fork();
            if init < 0 {
                return Err(fail(
                    diag,
                    Step {
                        what: "fork the sandbox init",
                        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    },
                ));
            }
            if init > 0 {
                // Supervisor: hold the liveness pipe, drop everything else, wait, mirror.
                libc::close(alive_r);
                libc::dup2(alive_w, 3);
                close_from(4);
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
                let status = wait_for(init);
                exit_like(status, true);
            }
            libc::close(alive_w);
            tie_to_parent(alive_r).map_err(|s| fail(diag, s))?;
            return self.init();
        }
        self.kernel()
    }

    /// PID 1 of the kernel's namespaces.
    unsafe fn init(&self) -> std::io::Result<()> {
        let diag = self.diag.as_raw_fd();
        libc::sethostname(c"notebook".as_ptr(), 8);
        self.mounts.execute().map_err(|s| fail(diag, s))?;
        if self.network_none {
            loopback_up().map_err(|s| fail(diag, s))?;
        }
        let (alive_r, alive_w) = liveness_pipe().map_err(|s| fail(diag, s))?;
        let kernel = libc::fork();
        if kernel < 0 {
            return Err(fail(
                diag,
                Step {
                    what: "fork the kernel",
                    errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                },
            ));
        }
        if kernel > 0 {
            // Init: reap everything (orphaned daemons land here) until the kernel exits;
            // leaving then kills whatever is left in the namespace.
            libc::close(alive_r);
            libc::dup2(alive_w, 3);
            close_from(4);
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            let status = wait_for(kernel);
            exit_like(status, false);
        }
        libc::close(alive_w);
        tie_to_parent(alive_r).map_err(|s| fail(diag, s))?;
        self.kernel()
    }

    /// The process that becomes Python: identity, limits, Landlock, seccomp.
    unsafe fn kernel(&self) -> std::io::Result<()> {
        let diag = self.diag.as_raw_fd();
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        let id = &self.identity;
        if id.switch_user {
            let r = (|| -> Result<(), Step> {
                step(libc::setgroups(0, std::ptr::null()) as i64, "drop groups")?;
                step(
                    libc::setresgid(id.gid, id.gid, id.gid) as i64,
                    "switch to the kernel's gid",
                )?;
                step(
                    libc::setresuid(id.uid, id.uid, id.uid) as i64,
                    "switch to the kernel's uid",
                )?;
                if self.ns_flags != 0 {
                    step(
                        libc::unshare(libc::CLONE_NEWUSER) as i64,
                        "unshare the user namespace",
                    )?;
                    // setresuid cleared dumpable, which would make our /proc files root's.
                    libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
                    map_self(id)?;
                }
                Ok(())
            })();
            r.map_err(|s| fail(diag, s))?;
        }
        self.limits
            .apply(self.ns_flags != 0)
            .map_err(|s| fail(diag, s))?;
        if let Some(landlock) = &self.landlock {
            landlock.enforce().map_err(|e| {
                fail(
                    diag,
                    Step {
                        what: "enforce Landlock",
                        errno: e.raw_os_error().unwrap_or(0),
                    },
                )
            })?;
        }
        if !self.seccomp.is_empty() {
            super::syscalls::install(self.seccomp).map_err(|e| {
                fail(
                    diag,
                    Step {
                        what: "install the seccomp filter",
                        errno: e.raw_os_error().unwrap_or(0),
                    },
                )
            })?;
        }
        Ok(())
    }
}
