//! Running a snippet of the test venv's Python (`PYTHON`, set up by scripts/setup-python.sh),
//! for checks done by a real third-party implementation (validators, parsers).
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `script` with `input` on its stdin; returns its output, whether it succeeded or not.
pub fn run(script: &str, input: &[u8]) -> Output {
    let py = std::env::var("PYTHON")
        .expect("PYTHON must name the test venv's python (scripts/setup-python.sh)");
    let mut child = Command::new(&py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {py}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to python");
    child.wait_with_output().expect("python output")
}
