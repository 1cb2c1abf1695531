//! Runs pip for one requirement into a notebook's layer, inside the kernel sandbox: the
//! installer sees the system and the interpreter read-only and may write only to the layer.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::layer::Layer;
use super::requirement::Requirement;
use crate::config::{KernelLimits, KernelNetwork};
use crate::kernel::sandbox;

/// Longest an install may take.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Lines of output streamed to clients per install; the rest is counted, not sent.
const MAX_STREAMED_LINES: usize = 2000;
/// Longest line streamed.
const MAX_LINE_CHARS: usize = 500;
/// Lines of output kept for the error of a failed install.
const ERROR_TAIL_LINES: usize = 20;

/// Everything one install needs.
#[derive(Debug, Clone)]
pub struct InstallJob {
    /// The interpreter whose pip installs (the kernels' interpreter).
    pub python: String,
    /// The notebook's layer.
    pub layer: Layer,
    /// The layer's site-packages directories (on the installer's `PYTHONPATH`, so packages
    /// installed earlier count as installed).
    pub site_dirs: Vec<PathBuf>,
    /// What to install.
    pub requirement: Requirement,
    /// Install only from wheels in this directory.
    pub wheels_dir: Option<PathBuf>,
    /// Memory limit in MB.
    pub memory_mb: u64,
    /// The kernels' sandbox settings (the installer always gets the network, to reach the index).
    pub limits: KernelLimits,
}

/// Installs the job's requirement; each line of pip's output goes to `lines` as it comes.
/// On failure, the error ends with the tail of pip's output.
pub async fn install(job: &InstallJob, lines: mpsc::UnboundedSender<String>) -> Result<(), String> {
    job.layer
        .ensure(&job.site_dirs)
        .map_err(|e| format!("cannot prepare {}: {e}", job.layer.root.display()))?;
    let result = run_pip(job, lines).await;
    // Whatever happened, the layer goes back to the server and stays readable by kernels.
    let scratch = job.layer.root.join(".tmp");
    let _ = std::fs::remove_dir_all(&scratch);
    job.layer
        .release()
        .map_err(|e| format!("cannot hand {} back: {e}", job.layer.root.display()))?;
    result
}

async fn run_pip(job: &InstallJob, lines: mpsc::UnboundedSender<String>) -> Result<(), String> {
    let python = sandbox::resolve_program(&job.python)
        .ok_or_else(|| format!("cannot find {} on PATH", job.python))?;
    let layer = job
        .layer
        .root
        .canonicalize()
        .unwrap_or(job.layer.root.clone());
    // pip unpacks and builds in TMPDIR: on disk in the layer, not in the small private /tmp.
    let scratch = layer.join(".tmp");
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let mut limits = job.limits.clone();
    limits.network = KernelNetwork::Full;
    let read_only: Vec<PathBuf> = job.wheels_dir.iter().cloned().collect();
    let prepared = sandbox::prepare(&python, &layer, &read_only, job.memory_mb, &limits)
        .map_err(|e| format!("sandbox: {e}"))?;

    let mut cmd = Command::new(&python);
    cmd.args(["-m", "pip", "install"])
        .arg("--prefix")
        .arg(&layer)
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--no-cache-dir",
            "--no-warn-script-location",
            "--progress-bar",
            "off",
        ]);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &scratch)
        .env("TMPDIR", &scratch)
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PYTHONPATH", join_paths(&job.site_dirs))
        .envs(prepared.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &job.wheels_dir {
        cmd.arg("--no-index").arg("--find-links").arg(dir);
        // Offline means this directory only, whatever the host's pip configuration says.
        cmd.env("PIP_CONFIG_FILE", "/dev/null");
    }
    // Validated: a PEP 508 name and PEP 440 specifiers, never an option, path or URL.
    cmd.arg(job.requirement.pip_arg());
    cmd.current_dir(&layer)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let (mut child, _guard) = crate::kernel::spawn_sandboxed(cmd, prepared, &python)
        .await
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, tx.clone()));
    }
    drop(tx);

    let mut tail: Vec<String> = Vec::new();
    let mut streamed = 0usize;
    let collect = async {
        while let Some(line) = rx.recv().await {
            if streamed < MAX_STREAMED_LINES {
                let _ = lines.send(line.clone());
            } else if streamed == MAX_STREAMED_LINES {
                let _ = lines.send("… further output not shown".to_string());
            }
            streamed += 1;
            if tail.len() == ERROR_TAIL_LINES {
                tail.remove(0);
            }
            tail.push(line);
        }
        child.wait().await
    };
    let status = match tokio::time::timeout(INSTALL_TIMEOUT, collect).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(format!("pip failed to run: {e}")),
        Err(_) => {
            return Err(format!(
                "pip took longer than {} minutes and was stopped",
                INSTALL_TIMEOUT.as_secs() / 60
            ))
        }
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!("pip failed ({status}):\n{}", tail.join("\n")))
    }
}

/// Sends each line of `stream`, cut to a sane length, until it ends. Reads in bounded chunks:
/// a build script may print gigabytes without a newline.
async fn forward_lines(mut stream: impl AsyncRead + Unpin, tx: mpsc::UnboundedSender<String>) {
    let mut chunk = [0u8; 8192];
    let mut line: Vec<u8> = Vec::new();
    let send = |line: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(line);
        let cut: String = text.trim_end().chars().take(MAX_LINE_CHARS).collect();
        line.clear();
        cut.trim().is_empty() || tx.send(cut).is_ok()
    };
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &chunk[..n] {
            if byte == b'\n' || byte == b'\r' {
                if !send(&mut line) {
                    return;
                }
            } else if line.len() < MAX_LINE_CHARS * 4 {
                line.push(byte);
            }
        }
    }
    send(&mut line);
}

/// `PYTHONPATH` text for `dirs`.
pub fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}
