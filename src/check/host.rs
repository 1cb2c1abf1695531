//! Host checks: `DATA_DIR`, the kernel sandbox layers, free disk.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Item;
use crate::config::{KernelLimits, SandboxMode};
use crate::kernel::sandbox;

/// Below this much free space in `DATA_DIR`'s file system the check fails.
const DISK_FAIL_BYTES: u64 = 512 * 1024 * 1024;
/// Below this much it warns: the managed Python environment and packages need room.
const DISK_WARN_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// The closest existing ancestor of `path` (itself included).
fn existing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// Whether this process may create files in `dir` (no file is created to find out).
fn writable(dir: &Path) -> bool {
    // SAFETY: access only reads the NUL-terminated path.
    c_path(dir).is_some_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0)
}

/// `DATA_DIR` exists (or can be created), is writable, private (0700) and ours.
pub fn data_dir(dir: &Path) -> Item {
    const NAME: &str = "data_dir";
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match existing_ancestor(dir) {
                Some(parent) if writable(&parent) => Item::warn(
                    NAME,
                    format!("{} does not exist yet", dir.display()),
                    "serve creates it with mode 0700",
                ),
                Some(parent) => Item::fail(
                    NAME,
                    format!(
                        "{} does not exist and {} is not writable",
                        dir.display(),
                        parent.display()
                    ),
                    "create DATA_DIR for the server's user (mode 0700) or point DATA_DIR elsewhere",
                ),
                None => Item::fail(
                    NAME,
                    format!("{} cannot be resolved", dir.display()),
                    "set DATA_DIR to a usable path",
                ),
            };
        }
        Err(e) => {
            return Item::fail(
                NAME,
                format!("cannot read {}: {e}", dir.display()),
                "check DATA_DIR and its parents' permissions",
            )
        }
    };
    if !meta.is_dir() {
        return Item::fail(
            NAME,
            format!("{} is not a directory", dir.display()),
            "point DATA_DIR at a directory",
        );
    }
    let mode = meta.mode() & 0o777;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let found = format!(
        "{} mode {mode:04o}, owner uid {}",
        dir.display(),
        meta.uid()
    );
    if !writable(dir) {
        return Item::fail(
            NAME,
            format!("{found}: not writable by uid {euid}"),
            "chown DATA_DIR to the server's user (or run the server as its owner)",
        );
    }
    if meta.uid() != euid {
        return Item::warn(
            NAME,
            format!("{found}: writable, but the server runs as uid {euid}"),
            "chown DATA_DIR to the server's user so its files stay private",
        );
    }
    if mode & 0o077 != 0 {
        return Item::warn(
            NAME,
            format!("{found}: writable, but readable by others"),
            "serve tightens it to 0700 at start; or run `chmod 700` on it",
        );
    }
    Item::ok(NAME, format!("{found}: writable and private"))
}

/// The sandbox layers kernels would get, as `serve` logs them.
pub fn sandbox(limits: &KernelLimits) -> Item {
    const NAME: &str = "sandbox";
    let report = sandbox::report(limits);
    let active = report.active.join(", ");
    let missing = report.missing.join("; ");
    if limits.sandbox == SandboxMode::Off {
        return Item::warn(
            NAME,
            "KERNEL_SANDBOX=off: kernels run unsandboxed with the server's privileges".into(),
            "use KERNEL_SANDBOX=auto unless this host runs only trusted notebooks",
        );
    }
    if report.missing.is_empty() {
        return Item::ok(NAME, format!("{} mode; active: {active}", report.mode));
    }
    let required_missing = report.missing.iter().any(|m| {
        ["namespaces", "landlock", "seccomp"]
            .iter()
            .any(|layer| m.starts_with(layer))
    });
    let hint = sandbox_hint(&report.missing);
    let detail = format!("{} mode; active: {active}; missing: {missing}", report.mode);
    if limits.sandbox == SandboxMode::Strict && required_missing {
        Item::fail(
            NAME,
            format!("{detail} (strict mode refuses to start kernels)"),
            &hint,
        )
    } else {
        Item::warn(NAME, detail, &hint)
    }
}

/// What to do about each missing layer.
fn sandbox_hint(missing: &[String]) -> String {
    let mut hints = Vec::new();
    for m in missing {
        if m.starts_with("namespaces") {
            hints.push("namespaces need unprivileged user namespaces (kernel.unprivileged_userns_clone=1, no AppArmor restriction) or running as root");
        } else if m.starts_with("landlock") {
            hints.push("Landlock needs Linux 5.13+ with landlock in the lsm= list");
        } else if m.starts_with("seccomp") {
            hints.push("seccomp needs a kernel built with CONFIG_SECCOMP_FILTER");
        } else if m.starts_with("cgroup") {
            hints.push("per-kernel cgroups need a writable cgroup v2 subtree with the memory and pids controllers (KERNEL_CGROUP, or a systemd unit with Delegate=yes)");
        }
    }
    if hints.is_empty() {
        "see the README's Security model".into()
    } else {
        hints.join("; ")
    }
}

/// Free space in the file system holding `DATA_DIR`.
pub fn free_disk(dir: &Path) -> Item {
    const NAME: &str = "disk";
    let Some(path) = existing_ancestor(dir) else {
        return Item::fail(
            NAME,
            format!("{} cannot be resolved", dir.display()),
            "set DATA_DIR to a usable path",
        );
    };
    let Some(c) = c_path(&path) else {
        return Item::fail(
            NAME,
            "path contains NUL".into(),
            "set DATA_DIR to a usable path",
        );
    };
    // SAFETY: statvfs writes into the zeroed struct we own and reads the NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        let err = std::io::Error::last_os_error();
        return Item::fail(
            NAME,
            format!("statvfs {}: {err}", path.display()),
            "check DATA_DIR",
        );
    }
    let free = (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64);
    let detail = format!(
        "{} free on the file system of {}",
        human(free),
        path.display()
    );
    if free < DISK_FAIL_BYTES {
        Item::fail(
            NAME,
            detail,
            "free some space: kernels, packages and the database write to DATA_DIR",
        )
    } else if free < DISK_WARN_BYTES {
        Item::warn(
            NAME,
            detail,
            "the managed Python environment takes about 0.5 GiB, each notebook's packages more",
        )
    } else {
        Item::ok(NAME, detail)
    }
}

fn human(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    if bytes as f64 >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB)
    } else {
        format!("{} MiB", bytes / (1024 * 1024))
    }
}
