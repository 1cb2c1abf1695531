//! `reactive-notebook run`: the real binary on notebook files in temporary folders, with real
//! sandboxed kernels running the Python at `PYTHON`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tempdir::TempDir;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_reactive-notebook");

/// The kernels' interpreter: `PYTHON` (as the other tests), checked to run, so a missing
/// Python fails the test with a clear message instead of passing by accident.
fn python() -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let runs = Command::new(&python)
        .args(["-c", "import sys; assert sys.version_info >= (3, 9)"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        runs,
        "no runnable Python 3.9+ at PYTHON={python:?}: set PYTHON to the test venv's \
         interpreter (e.g. .venv/bin/python)"
    );
    python
}

/// A finished run of the binary.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn of(out: Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The binary with only what a user's shell would pass: `PYTHON`, a data dir and a temporary
/// directory inside the test's folder (so leftovers can be checked without racing other tests).
fn binary(dir: &Path, args: &[&str]) -> Command {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let mut cmd = Command::new(BIN);
    cmd.arg("run")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PYTHON", python())
        .env("DATA_DIR", dir.join("data"))
        .env("TMPDIR", &tmp)
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Ran {
    let ran = Ran::of(binary(dir, args).output().expect("run the binary"));
    assert_no_leftovers(dir);
    ran
}

/// The kernel's temporary working folder is gone after every exit.
fn assert_no_leftovers(dir: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(dir.join("tmp"))
        .expect("read tmp")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("reactive-notebook-run-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// An nbformat 4 notebook of these cells: `md:` starts a markdown cell, the rest are code.
fn ipynb(cells: &[&str]) -> String {
    let cells: Vec<Value> = cells
        .iter()
        .map(|c| match c.strip_prefix("md:") {
            Some(text) => json!({"cell_type": "markdown", "metadata": {}, "source": text}),
            None => json!({
                "cell_type": "code", "metadata": {}, "source": c,
                "outputs": [], "execution_count": null,
            }),
        })
        .collect();
    json!({
        "nbformat": 4, "nbformat_minor": 5, "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
    })
    .to_string()
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    std::fs::write(dir.join(name), content).expect("write the notebook");
    name.to_string()
}

/// All text of a written `.ipynb` cell's outputs (streams, `text/plain`, error values).
fn output_text(cell: &Value) -> String {
    let mut text = String::new();
    for output in cell["outputs"].as_array().into_iter().flatten() {
        let mut add = |v: &Value| match v {
            Value::String(s) => text.push_str(s),
            Value::Array(lines) => lines.iter().filter_map(Value::as_str).for_each(|l| {
                text.push_str(l);
            }),
            _ => {}
        };
        add(&output["text"]);
        add(&output["data"]["text/plain"]);
        add(&output["evalue"]);
    }
    text
}

fn read_ipynb(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the output file exists");
    let doc: Value = serde_json::from_str(&text).expect("the output is JSON");
    doc["cells"].as_array().expect("cells").clone()
}

#[test]
fn runs_in_dependency_order_and_writes_ipynb_and_html() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "order.ipynb",
        &ipynb(&[
            "md:# Report",
            "print(\"total is\", total)",
            "total = a * 2",
            "a = 21",
            "total + 0",
        ]),
    );
    let ran = run(dir.path(), &[&nb, "-o", "out.ipynb"]);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert!(ran.stderr.contains("4 cells ran ok"), "{}", ran.context());
    let cells = read_ipynb(&dir.path().join("out.ipynb"));
    assert_eq!(cells.len(), 5);
    assert_eq!(cells[0]["cell_type"], "markdown");
    assert_eq!(output_text(&cells[1]), "total is 42\n");
    assert_eq!(output_text(&cells[4]), "42");

    let ran = run(dir.path(), &[&nb, "--output", "out.html"]);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    let page = std::fs::read_to_string(dir.path().join("out.html")).expect("html written");
    assert!(page.contains("total is 42"), "{page}");
    assert!(page.contains("<h1>Report</h1>"), "{page}");
    assert!(!page.contains("<script"), "{page}");
}

#[test]
fn params_override_a_name_before_its_readers_run() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "params.ipynb",
        &ipynb(&[
            "n = 3\nname = 'x'",
            "doubled = n * 2\nprint('doubled', doubled)",
            "print('hello', repr(name))",
            "items = [0]",
            "print('items', items, type(items).__name__)",
        ]),
    );
    let ran = run(
        dir.path(),
        &[
            &nb,
            "-p",
            "n=10",
            "--param",
            "name=alice",
            "-p",
            "items=[1, 'two', {'three': 3}]",
            "-v",
            "-o",
            "out.ipynb",
        ],
    );
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("doubled 20\n"), "{}", ran.context());
    assert!(ran.stdout.contains("hello 'alice'\n"), "{}", ran.context());
    assert!(
        ran.stdout.contains("items [1, 'two', {'three': 3}] list\n"),
        "{}",
        ran.context()
    );
    let text = std::fs::read_to_string(dir.path().join("out.ipynb")).expect("written");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        doc["metadata"]["reactive_notebook"]["parameters"]["n"],
        "10"
    );
}

#[test]
fn a_param_value_is_never_run_as_code() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "inject.ipynb",
        &ipynb(&[
            "n = 1",
            "import os\nprint('value', type(n).__name__, repr(n))\nprint('pwned', os.path.exists('pwned'))",
        ]),
    );
    let attack = "__import__('pathlib').Path('pwned').write_text('x')";
    let ran = run(dir.path(), &[&nb, "-v", "-p", &format!("n={attack}")]);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert!(
        ran.stdout.contains(&format!("value str {attack:?}")),
        "{}",
        ran.context()
    );
    assert!(ran.stdout.contains("pwned False"), "{}", ran.context());

    // Quotes and newlines cannot break out of the assignment either.
    let attack = "1\"\"\")\nopen('pwned', 'w').write('x')\n(\"\"\"";
    let ran = run(dir.path(), &[&nb, "-v", "-p", &format!("n={attack}")]);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("value str"), "{}", ran.context());
    assert!(ran.stdout.contains("pwned False"), "{}", ran.context());
}

#[test]
fn a_failed_cell_is_named_and_its_dependants_are_blocked() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "fail.ipynb",
        &ipynb(&[
            "a = 1",
            "b = a + 1\nraise ValueError('boom')",
            "c = b + 1",
            "d = c + 1",
            "e = a + 5\nprint('e is', e)",
        ]),
    );
    let ran = run(dir.path(), &[&nb, "-o", "out.ipynb"]);
    assert_eq!(ran.code, Some(1), "{}", ran.context());
    let err = &ran.stderr;
    assert!(err.contains("error: cell 2 \"b = a + 1\" failed"), "{err}");
    assert!(err.contains("ValueError: boom"), "{err}");
    assert!(
        err.contains("cell 3 \"c = b + 1\": blocked (cell 2 failed)"),
        "{err}"
    );
    assert!(
        err.contains("cell 4 \"d = c + 1\": blocked (cell 2 failed)"),
        "{err}"
    );
    assert!(err.contains("cell 5 \"e = a + 5\": ok"), "{err}");
    assert!(err.contains("2 ok, 1 failed, 2 blocked"), "{err}");
    // The outputs are written all the same, the error included.
    let cells = read_ipynb(&dir.path().join("out.ipynb"));
    assert!(output_text(&cells[1]).contains("boom"), "{:?}", cells[1]);
    assert_eq!(output_text(&cells[2]), "");
    assert_eq!(output_text(&cells[4]), "e is 6\n");
}

#[test]
fn bad_usage_and_input_exit_2_before_anything_runs() {
    let dir = TempDir::new();
    let nb = write(dir.path(), "ok.ipynb", &ipynb(&["n = 1", "print(n)"]));
    write(dir.path(), "broken.ipynb", "{\"cells\": [");
    write(dir.path(), "notes.txt", "n = 1");
    let cases: &[(&[&str], &str)] = &[
        (
            &[&nb, "-p", "missing=1"],
            "no cell defines a top-level name \"missing\"",
        ),
        (&[&nb, "-p", "n"], "expected NAME=VALUE"),
        (&[&nb, "-p", "1n=2"], "not a Python identifier"),
        (&[&nb, "-p", "n=1", "-p", "n=2"], "more than once"),
        (&["nowhere.ipynb"], "cannot read nowhere.ipynb"),
        (&["broken.ipynb"], "invalid JSON"),
        (&["notes.txt"], "expected a .ipynb or a percent-format .py"),
        (&[&nb, "-o", "out.py"], "expected a .ipynb or .html file"),
        (&[&nb, "-o", "no/such/dir/out.ipynb"], "does not exist"),
        (&[&nb, "--timeout", "0"], "timeout"),
    ];
    for (args, message) in cases {
        let ran = run(dir.path(), args);
        assert_eq!(ran.code, Some(2), "{args:?}: {}", ran.context());
        assert!(ran.stderr.contains(message), "{args:?}: {}", ran.context());
        assert!(!dir.path().join("out.ipynb").exists());
    }
}

#[test]
fn a_percent_format_script_runs_with_its_sql_cells() {
    let dir = TempDir::new();
    let script = "\
# %% [markdown]
# # Sales

# %%
import pandas as pd
sales = pd.DataFrame({'amount': [5, 10, 27]})

# %% [sql]
SELECT sum(amount) AS total FROM sales

# %%
print('total', int(df_1['total'][0]))
";
    let nb = write(dir.path(), "sales.py", script);
    let ran = run(dir.path(), &[&nb, "-v", "-o", "sales.ipynb"]);
    assert_eq!(ran.code, Some(0), "{}", ran.context());
    assert!(ran.stdout.contains("total 42\n"), "{}", ran.context());
    let cells = read_ipynb(&dir.path().join("sales.ipynb"));
    assert_eq!(cells.len(), 4);
    assert_eq!(cells[2]["metadata"]["reactive_notebook"]["type"], "sql");
    assert!(
        cells[2]["outputs"][0]["data"]["text/html"].is_array(),
        "the query's table: {:?}",
        cells[2]
    );
    assert_eq!(output_text(&cells[3]), "total 42\n");
}

#[test]
fn a_cell_over_the_timeout_fails_and_the_kernel_is_killed() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "slow.ipynb",
        &ipynb(&["x = 1", "import time\ntime.sleep(60)", "y = x + 1"]),
    );
    let started = Instant::now();
    let ran = run(dir.path(), &[&nb, "--timeout", "1"]);
    assert_eq!(ran.code, Some(1), "{}", ran.context());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{}",
        ran.context()
    );
    assert!(
        ran.stderr.contains("timed out after 1 s"),
        "{}",
        ran.context()
    );
    assert!(
        ran.stderr
            .contains("not run (the kernel was killed when cell 2 timed out)"),
        "{}",
        ran.context()
    );
}

#[test]
fn ctrl_c_stops_the_kernel_and_exits_130() {
    let dir = TempDir::new();
    let nb = write(
        dir.path(),
        "long.ipynb",
        &ipynb(&["import time\ntime.sleep(60)", "print('never')"]),
    );
    let mut child = binary(dir.path(), &[&nb])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    std::thread::sleep(Duration::from_secs(2));
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: plain kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "still running 20 s after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = Ran::of(child.wait_with_output().expect("output"));
    assert_eq!(ran.code, Some(130), "{}", ran.context());
    assert!(ran.stderr.contains("interrupted"), "{}", ran.context());
    assert_no_leftovers(dir.path());
    // The kernel's processes worked in the (now removed) folder; none may outlive the run.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive = common::procs::host_pids_under(&dir.path().join("tmp"));
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kernel processes outlived the run: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
