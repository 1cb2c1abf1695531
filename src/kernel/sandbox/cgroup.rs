//! cgroup v2 layer: one cgroup per kernel with `memory.max`, `pids.max` and `cpu.max`, where
//! the host gives the server a writable cgroup v2 subtree with those controllers.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Finds a usable parent cgroup: `explicit` (KERNEL_CGROUP) or, when the server sits in the
/// root of a cgroup v2 hierarchy (a container with its own cgroup namespace), a
/// `reactive-notebook` child of it. `Err` says why none is usable.
pub(crate) fn detect(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let parent = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let mount = v2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
            let own = fs::read_to_string("/proc/self/cgroup")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
                })
                .ok_or("the server is not in a cgroup v2 hierarchy")?;
            if own != "/" {
                return Err(format!(
                    "the server's cgroup {own} is not delegated; set KERNEL_CGROUP to a writable cgroup v2 directory"
                ));
            }
            // Check before creating anything, so an unusable host is left untouched.
            let root_controllers =
                fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
            for needed in ["memory", "pids"] {
                if !root_controllers.split_whitespace().any(|c| c == needed) {
                    return Err(format!(
                        "the {needed} controller is not available in {}",
                        mount.display()
                    ));
                }
            }
            mount.join("reactive-notebook")
        }
    };
    prepare_parent(&parent)?;
    Ok(parent)
}

fn v2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Creates `parent` if needed and enables the memory and pids (and cpu) controllers for its
/// children.
fn prepare_parent(parent: &Path) -> Result<(), String> {
    if !parent.exists() {
        fs::create_dir(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let available = fs::read_to_string(parent.join("cgroup.controllers"))
        .map_err(|e| format!("{} is not a cgroup v2 directory: {e}", parent.display()))?;
    for needed in ["memory", "pids"] {
        if !available.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "the {needed} controller is not available in {}",
                parent.display()
            ));
        }
    }
    let mut enable = String::from("+memory +pids");
    if available.split_whitespace().any(|c| c == "cpu") {
        enable.push_str(" +cpu");
    }
    fs::write(parent.join("cgroup.subtree_control"), enable).map_err(|e| {
        format!(
            "cannot enable controllers in {}: {e}",
            parent.join("cgroup.subtree_control").display()
        )
    })
}

/// One kernel's cgroup; removed (after killing what is left in it) on drop.
#[derive(Debug)]
pub(crate) struct KernelCgroup {
    dir: PathBuf,
}

impl KernelCgroup {
    /// Creates `parent/name` with the limits; returns it and its open `cgroup.procs`.
    pub(crate) fn create(
        parent: &Path,
        name: &str,
        memory_mb: u64,
        max_procs: u64,
        cpus: Option<f64>,
    ) -> Result<(KernelCgroup, OwnedFd), String> {
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cg = KernelCgroup { dir };
        let write = |file: &str, value: String| {
            fs::write(cg.dir.join(file), value)
                .map_err(|e| format!("cannot set {file} in {}: {e}", cg.dir.display()))
        };
        if memory_mb > 0 {
            write("memory.max", (memory_mb * 1024 * 1024).to_string())?;
            // No swap: the limit is on memory the kernel really holds.
            let _ = write("memory.swap.max", "0".into());
        }
        write("pids.max", max_procs.to_string())?;
        if let Some(cpus) = cpus {
            let period = 100_000u64;
            let quota = ((cpus * period as f64) as u64).max(1000);
            write("cpu.max", format!("{quota} {period}"))?;
        }
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(cg.dir.join("cgroup.procs"))
            .map_err(|e| format!("cannot open cgroup.procs: {e}"))?;
        Ok((cg, procs.into()))
    }
}

impl Drop for KernelCgroup {
    fn drop(&mut self) {
        // cgroup.kill (Linux 5.14+) takes everything still in it; rmdir needs it empty, which
        // takes a moment, so it is retried off the async runtime.
        let dir = self.dir.clone();
        let _ = fs::write(dir.join("cgroup.kill"), "1");
        std::thread::spawn(move || {
            for _ in 0..100 {
                if fs::remove_dir(&dir).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            log::warn!("could not remove cgroup {}", dir.display());
        });
    }
}
