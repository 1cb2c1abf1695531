//! The stamp file that makes provisioning idempotent: it records the requirements and the base
//! interpreter a virtualenv was completed with, and is written only after every step succeeded.

use std::path::{Path, PathBuf};

/// Name of the stamp file inside the virtualenv.
const STAMP_FILE: &str = ".provisioned";

fn path(venv: &Path) -> PathBuf {
    venv.join(STAMP_FILE)
}

/// The stamp's content for these requirements and base interpreter.
pub fn content(requirements: &str, base_python: &str) -> String {
    format!("base-python: {base_python}\n{requirements}")
}

/// Whether the virtualenv was completed with exactly this content.
pub fn matches(venv: &Path, expected: &str) -> bool {
    std::fs::read_to_string(path(venv)).is_ok_and(|found| found == expected)
}

/// Records a completed virtualenv.
pub fn write(venv: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path(venv), content)
}
