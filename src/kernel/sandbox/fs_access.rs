//! Landlock layer: a file-system allow-list independent of the mount view, plus scoping that
//! fences off every process outside the kernel (ptrace-style `/proc` access always; signals
//! and abstract Unix sockets from ABI 6).
//!
//! The ruleset is built in the server with the `landlock` crate, with rules on the host paths the
//! kernel's view is bind-mounted from (a bind mount shares inodes, so the rules hold inside).
//! Mounts that exist only inside the sandbox (`/tmp`, `/dev/shm`, `/proc`) get their rules in
//! the child with two raw syscalls, then the child restricts itself.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};

/// The newest Landlock ABI whose rights this server knows how to use.
const TARGET_ABI: ABI = ABI::V6;

/// Landlock ABI version of the running kernel (0 = unavailable).
pub(crate) fn host_abi() -> i32 {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with a null attribute only queries the version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    i32::try_from(v).unwrap_or(0).max(0)
}

/// The Landlock ABI the sandbox uses: the host's, capped at the newest this server knows.
pub(crate) fn effective_abi_version() -> i32 {
    host_abi().min(TARGET_ABI as i32)
}

fn effective_abi() -> ABI {
    ABI::from(host_abi().min(TARGET_ABI as i32))
}

/// What the kernel may do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathAccess {
    /// Read files, list directories, execute.
    ReadExec,
    /// Read only (no execute): `/proc`.
    Read,
    /// Everything: its own folder and private temporaries.
    Full,
    /// Read, write and ioctl on a device node.
    Device,
}

impl PathAccess {
    fn flags(self, abi: ABI) -> BitFlags<AccessFs> {
        match self {
            PathAccess::ReadExec => AccessFs::from_read(abi),
            PathAccess::Read => AccessFs::ReadFile | AccessFs::ReadDir,
            PathAccess::Full => AccessFs::from_all(abi),
            PathAccess::Device => {
                let mut f = AccessFs::ReadFile | AccessFs::WriteFile;
                if abi as i32 >= ABI::V5 as i32 {
                    f |= AccessFs::IoctlDev;
                }
                if abi as i32 >= ABI::V3 as i32 {
                    f |= AccessFs::Truncate;
                }
                f
            }
        }
    }
}

/// A rule the child adds itself, for a mount that exists only inside the sandbox.
#[derive(Debug)]
struct InnerRule {
    path: CString,
    access: u64,
}

/// A created ruleset plus the rules left for the child.
#[derive(Debug)]
pub(crate) struct LandlockPlan {
    ruleset: OwnedFd,
    inner: Vec<InnerRule>,
}

/// `struct landlock_path_beneath_attr` (packed, as in the kernel's uapi header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

impl LandlockPlan {
    /// Builds the ruleset: `host` paths get rules now, `inner` paths (inside the sandbox) later.
    /// `deny_network` handles TCP bind/connect with no rule, refusing both (ABI 4+).
    pub(crate) fn build(
        host: &[(&Path, PathAccess)],
        inner: &[(&str, PathAccess)],
        deny_network: bool,
    ) -> Result<LandlockPlan, String> {
        let abi = effective_abi();
        if abi == ABI::Unsupported {
            return Err("Landlock is not available".into());
        }
        let mut ruleset = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(|e| e.to_string())?;
        if abi as i32 >= ABI::V6 as i32 {
            ruleset = ruleset
                .scope(Scope::Signal | Scope::AbstractUnixSocket)
                .map_err(|e| e.to_string())?;
        }
        if deny_network && abi as i32 >= ABI::V4 as i32 {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(abi))
                .map_err(|e| e.to_string())?;
        }
        let mut created = ruleset.create().map_err(|e| e.to_string())?;
        for (path, access) in host {
            let fd = PathFd::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut flags = access.flags(abi);
            if !path.is_dir() {
                // Directory-only rights on a file rule are refused by the kernel.
                flags &= AccessFs::from_file(abi);
            }
            created = created
                .add_rule(PathBeneath::new(fd, flags))
                .map_err(|e| e.to_string())?;
        }
        let inner = inner
            .iter()
            .map(|(path, access)| {
                Ok(InnerRule {
                    path: CString::new(*path).map_err(|e| e.to_string())?,
                    access: access.flags(abi).bits(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let fd: Option<OwnedFd> = created.into();
        let ruleset = fd.ok_or("Landlock ruleset was not created")?;
        Ok(LandlockPlan { ruleset, inner })
    }

    /// In the child, inside the final mount view: add the inner rules and restrict the
    /// process. Needs `PR_SET_NO_NEW_PRIVS` (set here). Async-signal-safe.
    pub(crate) fn enforce(&self) -> std::io::Result<()> {
        let rfd = self.ruleset.as_raw_fd();
        for rule in &self.inner {
            // SAFETY: a valid C string; O_PATH opens without reading.
            let fd = unsafe { libc::open(rule.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            if fd < 0 {
                continue; // a mount that does not exist in this view grants nothing
            }
            let attr = PathBeneathAttr {
                allowed_access: rule.access,
                parent_fd: fd,
            };
            // SAFETY: attr is a valid landlock_path_beneath_attr for LANDLOCK_RULE_PATH_BENEATH.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    rfd,
                    1u32,
                    &attr as *const PathBeneathAttr,
                    0u32,
                )
            };
            let err = std::io::Error::last_os_error();
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
            if rc != 0 {
                return Err(err);
            }
        }
        // SAFETY: plain prctl/syscalls on the calling process.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, rfd, 0u32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}
