//! The commands that create a virtualenv and install into it: `uv` when it is on PATH,
//! `python -m venv` and pip otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// Lines of a failed command's output kept for the error (pip's error is at the end).
const ERROR_TAIL_LINES: usize = 25;

/// Which tool does the work.
#[derive(Debug, Clone)]
pub enum Installer {
    /// `uv venv` and `uv pip install`, at this path.
    Uv(PathBuf),
    /// `python -m venv` and the virtualenv's own pip.
    Pip,
}

/// Where packages come from.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// Install only from wheels in this directory (`--no-index --find-links`).
    pub wheels_dir: Option<PathBuf>,
}

impl Installer {
    /// `uv` if it is on PATH, pip otherwise.
    pub fn detect() -> Installer {
        match crate::kernel::sandbox::resolve_program("uv") {
            Some(uv) => Installer::Uv(uv),
            None => Installer::Pip,
        }
    }

    /// Its name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Installer::Uv(_) => "uv",
            Installer::Pip => "pip",
        }
    }

    /// Creates a virtualenv at `venv` from `base_python`.
    pub async fn create_venv(&self, base_python: &str, venv: &Path) -> Result<(), String> {
        let mut cmd = match self {
            Installer::Uv(uv) => {
                let mut cmd = Command::new(uv);
                // `--seed` puts pip in the virtualenv: notebooks install their own packages with it.
                cmd.arg("venv")
                    .arg("--seed")
                    .arg("--python")
                    .arg(base_python)
                    .arg(venv);
                cmd
            }
            Installer::Pip => {
                let mut cmd = Command::new(base_python);
                cmd.args(["-m", "venv"]).arg(venv);
                cmd
            }
        };
        run(&mut cmd).await
    }

    /// Installs one requirement into `venv`, every version held to `constraints`.
    pub async fn install(
        &self,
        venv: &Path,
        requirement: &str,
        constraints: &Path,
        source: &Source,
    ) -> Result<(), String> {
        let python = venv_python(venv);
        let mut cmd = match self {
            Installer::Uv(uv) => {
                let mut cmd = Command::new(uv);
                cmd.args(["pip", "install", "--python"]).arg(&python);
                cmd
            }
            Installer::Pip => {
                let mut cmd = Command::new(&python);
                cmd.args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                ]);
                cmd
            }
        };
        if let Some(dir) = &source.wheels_dir {
            cmd.arg("--no-index").arg("--find-links").arg(dir);
            // Offline means this directory only: no extra links or indexes from the host's
            // pip/uv configuration or environment.
            cmd.env("PIP_CONFIG_FILE", "/dev/null");
            for var in [
                "PIP_FIND_LINKS",
                "PIP_INDEX_URL",
                "PIP_EXTRA_INDEX_URL",
                "UV_FIND_LINKS",
                "UV_INDEX_URL",
                "UV_EXTRA_INDEX_URL",
                "UV_INDEX",
            ] {
                cmd.env_remove(var);
            }
        }
        cmd.arg("-c").arg(constraints).arg(requirement);
        run(&mut cmd).await
    }
}

/// The interpreter of a virtualenv.
pub fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// Whether the virtualenv's interpreter starts.
pub async fn works(venv: &Path) -> bool {
    let mut cmd = Command::new(venv_python(venv));
    cmd.args(["-c", "import sys"]);
    run(&mut cmd).await.is_ok()
}

/// Runs a command to completion; on failure, the tail of its output says why.
async fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A server stopped mid-install must not leave pip running.
        .kill_on_drop(true)
        .env("PIP_NO_INPUT", "1");
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(ERROR_TAIL_LINES)..].join("\n");
    Err(format!("{program} failed ({}):\n{tail}", out.status))
}
