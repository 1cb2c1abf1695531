//! Finding a kernel's processes on the host: inside its PID namespace they have other pids.
#![allow(dead_code)]

use std::path::Path;

/// Live (non-zombie) host processes, as (pid, its /proc directory).
fn live_processes() -> impl Iterator<Item = (u32, std::path::PathBuf)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            (!stat.is_empty() && !stat.contains(") Z ")).then(|| (pid, entry.path()))
        })
}

/// Host pids of live processes with `arg` on their command line.
pub fn host_pids_with_arg(arg: &str) -> Vec<u32> {
    live_processes()
        .filter(|(_, dir)| {
            std::fs::read(dir.join("cmdline"))
                .unwrap_or_default()
                .split(|b| *b == 0)
                .any(|a| a == arg.as_bytes())
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Host pids of live processes working in `dir` (a kernel and its keepers).
pub fn host_pids_in(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    live_processes()
        .filter(|(_, proc_dir)| {
            std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd == dir)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Host pids of live processes working in `dir` or anywhere below it.
pub fn host_pids_under(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    live_processes()
        .filter(|(_, proc_dir)| {
            std::fs::read_link(proc_dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .map(|(pid, _)| pid)
        .collect()
}
