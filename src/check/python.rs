//! The kernels' Python: `PYTHON`'s interpreter, or the managed virtualenv and its base.

use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

use super::Item;
use crate::config::Config;
use crate::pyenv::{installer, provision, stamp};

const NAME: &str = "python";
/// An interpreter that does not answer `--version` in this time is broken.
const WAIT: Duration = Duration::from_secs(15);

/// Which interpreter kernels will run, and whether it starts.
pub async fn check(config: &Config) -> Item {
    if !config.managed_python {
        return match version(Path::new(&config.python)).await {
            Ok(v) => Item::ok(NAME, format!("PYTHON={} ({v})", config.python)),
            Err(e) => Item::fail(
                NAME,
                format!("PYTHON={} does not run: {e}", config.python),
                "point PYTHON at a working interpreter, or unset it to let the server provision one",
            ),
        };
    }
    let venv = config.data_dir.join("python");
    let expected = stamp::content(provision::REQUIREMENTS, &config.python);
    let venv_python = installer::venv_python(&venv);
    if stamp::matches(&venv, &expected) {
        return match version(&venv_python).await {
            Ok(v) => Item::ok(
                NAME,
                format!("managed virtualenv {} ready ({v})", venv.display()),
            ),
            Err(e) => Item::warn(
                NAME,
                format!("managed virtualenv {} is broken: {e}", venv.display()),
                "serve rebuilds it at start; or delete it",
            ),
        };
    }
    let base = match version(Path::new(&config.python)).await {
        Ok(v) => v,
        Err(e) => {
            return Item::fail(
                NAME,
                format!(
                    "no managed virtualenv yet, and the host's {} does not run: {e}",
                    config.python
                ),
                "install python3 (with venv, or uv on PATH), or set PYTHON to an interpreter",
            )
        }
    };
    if let Some(wheels) = &config.python_wheels_dir {
        if !wheels.is_dir() {
            return Item::fail(
                NAME,
                format!("PYTHON_WHEELS_DIR {} is not a directory", wheels.display()),
                "fill it with scripts/fetch-wheels.sh, or unset it to install from the package index",
            );
        }
    }
    let state = if venv.exists() {
        "is incomplete or outdated"
    } else {
        "does not exist yet"
    };
    Item::warn(
        NAME,
        format!(
            "managed virtualenv {} {state}; base interpreter {} ({base})",
            venv.display(),
            config.python
        ),
        "serve builds it in the background at start (about 70 s on 2 cores, needs the package index or PYTHON_WHEELS_DIR)",
    )
}

/// `python --version`, e.g. `Python 3.11.2`.
async fn version(python: &Path) -> Result<String, String> {
    let mut cmd = Command::new(python);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .map_err(|_| format!("no answer within {WAIT:?}"))?
        .map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.trim().to_string();
    if out.status.success() && text.starts_with("Python ") {
        Ok(text)
    } else {
        Err(format!("exit {}: {text}", out.status))
    }
}
