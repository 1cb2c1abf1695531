//! One provisioning run: reuse a completed virtualenv, or build it afresh from the shipped
//! requirements (create, install each requirement, stamp).

use std::path::PathBuf;

use super::installer::{self, Installer, Source};
use super::progress::Reporter;
use super::stamp;

/// The default data stack, shipped in the binary.
pub const REQUIREMENTS: &str = include_str!("requirements.txt");

/// What to build and from what.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The host interpreter the virtualenv is created from (and the fallback).
    pub base_python: String,
    /// The virtualenv's directory.
    pub venv: PathBuf,
    /// Requirements text, one pinned requirement a line.
    pub requirements: String,
    /// Where packages come from.
    pub source: Source,
}

/// The requirement lines of a requirements text (comments and blanks dropped).
pub fn requirement_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Steps a run reports: create, one per requirement, finish.
pub fn step_count(plan: &Plan) -> u64 {
    requirement_lines(&plan.requirements).len() as u64 + 2
}

/// Runs the plan; on success, the virtualenv's interpreter.
pub async fn run(plan: &Plan, reporter: &Reporter) -> Result<PathBuf, String> {
    let python = installer::venv_python(&plan.venv);
    let stamp_content = stamp::content(&plan.requirements, &plan.base_python);
    if stamp::matches(&plan.venv, &stamp_content) && installer::works(&plan.venv).await {
        log::info!("python environment {} is up to date", plan.venv.display());
        return Ok(python);
    }
    let tool = Installer::detect();
    reporter.step(&format!("creating the virtualenv with {}", tool.name()));
    // A half-built or outdated environment is rebuilt from scratch, so nothing stale stays.
    if plan.venv.exists() {
        tokio::fs::remove_dir_all(&plan.venv)
            .await
            .map_err(|e| format!("cannot remove the old {}: {e}", plan.venv.display()))?;
    }
    if let Some(parent) = plan.venv.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    tool.create_venv(&plan.base_python, &plan.venv).await?;
    reporter.done_step();
    let constraints = plan.venv.join("requirements.txt");
    tokio::fs::write(&constraints, &plan.requirements)
        .await
        .map_err(|e| format!("cannot write {}: {e}", constraints.display()))?;
    for requirement in requirement_lines(&plan.requirements) {
        reporter.step(&format!("installing {requirement}"));
        tool.install(&plan.venv, &requirement, &constraints, &plan.source)
            .await?;
        reporter.done_step();
    }
    reporter.step("checking the environment");
    if !installer::works(&plan.venv).await {
        return Err(format!("{} does not start", python.display()));
    }
    stamp::write(&plan.venv, &stamp_content)
        .map_err(|e| format!("cannot write the stamp file: {e}"))?;
    reporter.done_step();
    Ok(python)
}
