//! Mount layer: the file-system view inside a kernel's mount namespace.
//!
//! The view is a read-only tmpfs root holding: the system directories and the Python
//! installation (read-only binds), the kernel's own folder (read-write bind), a private
//! size-limited `/tmp` and `/dev/shm`, a minimal `/dev` and a fresh `/proc` for its PID
//! namespace. Nothing else of the host exists in it: not `DATA_DIR`, not the server's working
//! directory, not another kernel's folder. The plan (all paths as C strings) is computed in the
//! server; the sandbox's init process executes it with raw syscalls only (it runs between fork
//! and exec of a multi-threaded server, where allocating is not allowed).

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Host directories every kernel sees read-only (when they exist).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
];

/// Device nodes bound from the host into the kernel's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

/// Where the old root is parked while the view is assembled.
const OLD_ROOT: &CStr = c"/.oldroot";

/// One step of assembling the view, relative to the new root.
#[derive(Debug)]
enum Op {
    Dir(CString),
    Symlink {
        target: CString,
        link: CString,
    },
    File(CString),
    Bind {
        src: CString,
        dst: CString,
        writable: bool,
        device: bool,
    },
    Tmpfs {
        dst: CString,
        opts: CString,
    },
    Proc(CString),
    ReadOnlyBindSelf(CString),
}

/// The whole view, ready to execute in the sandbox's init.
#[derive(Debug)]
pub(crate) struct MountPlan {
    ops: Vec<Op>,
    work_dir: CString,
    /// Host paths the kernel may read (and execute), for the Landlock layer.
    pub read_paths: Vec<PathBuf>,
    /// Host device nodes the kernel may use, for the Landlock layer.
    pub device_paths: Vec<PathBuf>,
}

fn cstr(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains NUL", p.display()))
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s} contains NUL"))
}

/// Whether `path` lies under (or is) one of `roots`.
fn covered(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|r| path.starts_with(r))
}

impl MountPlan {
    /// The view for a kernel working in `work_dir`, running Python from `python_roots`.
    pub(crate) fn new(
        work_dir: &Path,
        python_roots: &[PathBuf],
        tmp_mb: u64,
    ) -> Result<MountPlan, String> {
        let mut ops = Vec::new();
        let mut made: Vec<PathBuf> = Vec::new();
        let mut mkdirs = |ops: &mut Vec<Op>, dir: &Path| -> Result<(), String> {
            let mut acc = PathBuf::from("/");
            for part in dir.components().skip(1) {
                acc.push(part);
                if !made.contains(&acc) {
                    made.push(acc.clone());
                    ops.push(Op::Dir(cstr(&acc)?));
                }
            }
            Ok(())
        };
        // The private /tmp first: a folder under the host's /tmp (a test's data dir) is then
        // bound on top of it instead of being hidden by it.
        let tmp_opts = cstring(&format!("size={tmp_mb}m,mode=1777"))?;
        mkdirs(&mut ops, Path::new("/tmp"))?;
        ops.push(Op::Tmpfs {
            dst: cstring("/tmp")?,
            opts: tmp_opts.clone(),
        });

        let mut read_paths = Vec::new();
        let mut bound: Vec<PathBuf> = Vec::new();
        for dir in SYSTEM_DIRS {
            let p = Path::new(dir);
            let Ok(meta) = std::fs::symlink_metadata(p) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                // Merged /usr: /bin -> usr/bin stays a symlink inside too.
                let target = std::fs::read_link(p).map_err(|e| format!("{dir}: {e}"))?;
                ops.push(Op::Symlink {
                    target: cstr(&target)?,
                    link: cstring(dir)?,
                });
            } else if meta.is_dir() {
                mkdirs(&mut ops, p)?;
                ops.push(bind(p, p, false)?);
                read_paths.push(p.to_path_buf());
                bound.push(p.to_path_buf());
            }
        }
        for root in python_roots {
            if covered(root, &bound) || !root.is_dir() {
                continue;
            }
            mkdirs(&mut ops, root)?;
            ops.push(bind(root, root, false)?);
            read_paths.push(root.clone());
            bound.push(root.clone());
        }
        mkdirs(&mut ops, work_dir)?;
        ops.push(bind(work_dir, work_dir, true)?);

        mkdirs(&mut ops, Path::new("/dev"))?;
        ops.push(Op::Tmpfs {
            dst: cstring("/dev")?,
            opts: cstring("size=64k,mode=0755")?,
        });
        let mut device_paths = Vec::new();
        for dev in DEVICES {
            let host = Path::new("/dev").join(dev);
            if !host.exists() {
                continue;
            }
            ops.push(Op::File(cstr(&host)?));
            ops.push(Op::Bind {
                src: old_root_path(&host)?,
                dst: cstr(&host)?,
                writable: true,
                device: true,
            });
            device_paths.push(host);
        }
        ops.push(Op::Dir(cstring("/dev/shm")?));
        ops.push(Op::Tmpfs {
            dst: cstring("/dev/shm")?,
            opts: tmp_opts,
        });
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ] {
            ops.push(Op::Symlink {
                target: cstring(target)?,
                link: cstring(link)?,
            });
        }
        mkdirs(&mut ops, Path::new("/proc"))?;
        ops.push(Op::Proc(cstring("/proc")?));
        // Kernel tunables stay visible but read-only, whatever the kernel's credentials.
        ops.push(Op::ReadOnlyBindSelf(cstring("/proc/sys")?));

        Ok(MountPlan {
            ops,
            work_dir: cstr(work_dir)?,
            read_paths,
            device_paths,
        })
    }

    /// Executes the plan in the sandbox's init (own mount namespace, privileged in it):
    /// pivot into a fresh tmpfs, assemble the view from the parked old root, drop the old root
    /// and make the new root read-only. Async-signal-safe.
    pub(crate) fn execute(&self) -> Result<(), Step> {
        // SAFETY: raw syscalls on C strings owned by the plan; no allocation.
        unsafe {
            check(
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ),
                "make / private",
            )?;
            check(
                libc::mount(
                    c"tmpfs".as_ptr(),
                    c"/tmp".as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=1m,mode=0755".as_ptr().cast(),
                ),
                "mount the root tmpfs",
            )?;
            check(libc::chdir(c"/tmp".as_ptr()), "enter the root tmpfs")?;
            check(libc::mkdir(c".oldroot".as_ptr(), 0o700), "mkdir .oldroot")?;
            check(
                libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".oldroot".as_ptr()) as i32,
                "pivot_root",
            )?;
            check(libc::chdir(c"/".as_ptr()), "chdir /")?;
            for op in &self.ops {
                run_op(op)?;
            }
            check(
                libc::umount2(OLD_ROOT.as_ptr(), libc::MNT_DETACH),
                "detach the old root",
            )?;
            check(libc::rmdir(OLD_ROOT.as_ptr()), "remove .oldroot")?;
            check(
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                    std::ptr::null(),
                ),
                "make the root read-only",
            )?;
            check(libc::chdir(self.work_dir.as_ptr()), "enter the work dir")?;
        }
        Ok(())
    }
}

/// Which step of the sandbox setup failed, and the OS error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// A static description of the step.
    pub what: &'static str,
    /// errno.
    pub errno: i32,
}

fn check(rc: i32, what: &'static str) -> Result<(), Step> {
    if rc < 0 {
        Err(Step {
            what,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        })
    } else {
        Ok(())
    }
}

fn old_root_path(host: &Path) -> Result<CString, String> {
    let mut s = OLD_ROOT.to_bytes().to_vec();
    s.extend_from_slice(host.as_os_str().as_bytes());
    CString::new(s).map_err(|_| format!("{} contains NUL", host.display()))
}

fn bind(host: &Path, inside: &Path, writable: bool) -> Result<Op, String> {
    Ok(Op::Bind {
        src: old_root_path(host)?,
        dst: cstr(inside)?,
        writable,
        device: false,
    })
}

/// `struct mount_attr` for mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const AT_RECURSIVE: u32 = 0x8000;

/// Sets flags on a mount and every mount below it.
unsafe fn set_attr(path: &CStr, set: u64, what: &'static str) -> Result<(), Step> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let rc = libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path.as_ptr(),
        AT_RECURSIVE,
        &attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    );
    check(rc as i32, what)
}

unsafe fn run_op(op: &Op) -> Result<(), Step> {
    match op {
        Op::Dir(p) => {
            if libc::mkdir(p.as_ptr(), 0o755) < 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST)
            {
                return check(-1, "mkdir in the new root");
            }
            Ok(())
        }
        Op::Symlink { target, link } => {
            check(libc::symlink(target.as_ptr(), link.as_ptr()), "symlink")
        }
        Op::File(p) => {
            let fd = libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            check(fd, "create a device mount point")?;
            libc::close(fd);
            Ok(())
        }
        Op::Bind {
            src,
            dst,
            writable,
            device,
        } => {
            check(
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ),
                "bind mount",
            )?;
            let mut set = MOUNT_ATTR_NOSUID;
            if !device {
                set |= MOUNT_ATTR_NODEV;
            }
            if !writable {
                set |= MOUNT_ATTR_RDONLY;
            }
            set_attr(dst, set, "restrict a bind mount")
        }
        Op::Tmpfs { dst, opts } => check(
            libc::mount(
                c"tmpfs".as_ptr(),
                dst.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            ),
            "mount a tmpfs",
        ),
        Op::Proc(dst) => check(
            libc::mount(
                c"proc".as_ptr(),
                dst.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ),
            "mount /proc",
        ),
        Op::ReadOnlyBindSelf(p) => {
            check(
                libc::mount(
                    p.as_ptr(),
                    p.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ),
                "bind /proc/sys",
            )?;
            set_attr(
                p,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                "make /proc/sys read-only",
            )
        }
    }
}

/// Directories holding a Python interpreter's installation: prefixes and the real executable.
pub(crate) fn python_roots(python: &Path) -> Result<Vec<PathBuf>, String> {
    let out = std::process::Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys, os; print('\\0'.join([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))]))",
        ])
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut roots: Vec<PathBuf> = Vec::new();
    for part in text.trim_end().split('\0') {
        let p = PathBuf::from(part);
        let p = p.canonicalize().unwrap_or(p);
        if p.is_absolute() && p != Path::new("/") && !roots.contains(&p) {
            roots.push(p);
        }
    }
    // The interpreter path itself may be a symlink into yet another tree (a venv's bin/python).
    if let Ok(real) = python.canonicalize() {
        if let Some(dir) = real.parent().and_then(Path::parent) {
            if dir != Path::new("/") && !roots.iter().any(|r| dir.starts_with(r)) {
                roots.push(dir.to_path_buf());
            }
        }
    }
    if let Some(dir) = python.parent().and_then(Path::parent) {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        if dir != Path::new("/") && !roots.iter().any(|r| dir.starts_with(r)) {
            roots.push(dir);
        }
    }
    Ok(roots)
}
