//! The reactive engine end to end: REST runs, real Python kernels, the dependency graph.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_engine";

async fn server() -> TestServer {
    TestServer::start(Backend::Sqlite).await
}

async fn run(s: &TestServer, nb: &str, cell: &str) {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            U,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

async fn edit(s: &TestServer, nb: &str, cell: &str, code: &str) {
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{cell}"),
            U,
            json!({"code": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn cell<'a>(notebook: &'a Value, id: &str) -> &'a Value {
    notebook["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("cell {id} in {notebook}"))
}

fn settled(status: &Value) -> bool {
    !matches!(status.as_str(), Some("queued" | "running"))
}

/// Polls the notebook until `done` holds (or fails after `secs`).
async fn wait_for(s: &TestServer, nb: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let notebook = s.notebook(U, nb).await;
        if done(&notebook) {
            return notebook;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting; last state: {notebook:#}"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Waits until every cell has settled.
async fn wait_settled(s: &TestServer, nb: &str) -> Value {
    wait_for(s, nb, 60, |n| {
        n["cells"]
            .as_array()
            .is_some_and(|cells| cells.iter().all(|c| settled(&c["status"])))
    })
    .await
}

fn text_output(cell: &Value) -> Option<String> {
    cell["outputs"].as_array().and_then(|outs| {
        outs.iter()
            .find(|o| o["mime_type"] == "text/plain")
            .and_then(|o| o["data"].as_str().map(String::from))
    })
}

fn has_python_package(module: &str) -> bool {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    std::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[actix_web::test]
async fn chain_reruns_downstream() {
    let s = server().await;
    let nb = s.new_notebook(U, "chain").await;
    let x = s.new_cell(U, &nb, "python", "x = 1").await;
    let y = s.new_cell(U, &nb, "python", "y = x + 1").await;
    let z = s.new_cell(U, &nb, "python", "y * 10").await;
    let n = s.notebook(U, &nb).await;
    assert_eq!(cell(&n, &y)["reads"], json!(["x"]));
    assert_eq!(cell(&n, &y)["writes"], json!(["y"]));
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    for id in [&x, &y, &z] {
        assert_eq!(cell(&n, id)["status"], "success", "{n:#}");
    }
    assert_eq!(text_output(cell(&n, &z)).as_deref(), Some("20"));
    edit(&s, &nb, &x, "x = 2").await;
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &z)).as_deref(), Some("30"));
    // Same names, new value: the dependants still re-run.
    edit(&s, &nb, &x, "x = 5").await;
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &z)).as_deref(), Some("60"));
    s.finish().await;
}

#[actix_web::test]
async fn diamond_and_independent_branches() {
    let s = server().await;
    let nb = s.new_notebook(U, "diamond").await;
    let a = s.new_cell(U, &nb, "python", "a = 1\nprint('a ran')").await;
    let b = s
        .new_cell(U, &nb, "python", "b = a + 1\nprint('b ran')")
        .await;
    let c = s
        .new_cell(U, &nb, "python", "c = a + 2\nprint('c ran')")
        .await;
    let d = s
        .new_cell(U, &nb, "python", "d = b + c\nprint('d ran')\nd")
        .await;
    let other = s.new_cell(U, &nb, "python", "other = 99").await;
    run(&s, &nb, &a).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &d)).as_deref(), Some("5"));
    for (id, name) in [(&a, "a"), (&b, "b"), (&c, "c"), (&d, "d")] {
        // Each ran exactly once.
        assert_eq!(cell(&n, id)["stdout"], format!("{name} ran\n"));
    }
    assert_eq!(
        cell(&n, &other)["status"],
        "idle",
        "an independent branch does not run"
    );
    // Running a leaf runs only the leaf.
    run(&s, &nb, &c).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &a)["stdout"], "a ran\n");
    assert_eq!(cell(&n, &d)["stdout"], "d ran\n");
    s.finish().await;
}

#[actix_web::test]
async fn multiple_definitions_and_cycles_are_errors_until_fixed() {
    let s = server().await;
    let nb = s.new_notebook(U, "graph errors").await;
    let one = s.new_cell(U, &nb, "python", "x = 1").await;
    let two = s.new_cell(U, &nb, "python", "x = 2").await;
    let n = s.notebook(U, &nb).await;
    for id in [&one, &two] {
        assert_eq!(cell(&n, id)["status"], "error");
        let error = cell(&n, id)["error"].as_str().unwrap_or("");
        assert!(
            error.contains("'x' is defined in more than one cell"),
            "{error}"
        );
    }
    run(&s, &nb, &one).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &one)["status"], "error");
    // An edit that keeps the names (the graph is not rebuilt) keeps the conflict.
    edit(&s, &nb, &two, "x = 3").await;
    let n = s.notebook(U, &nb).await;
    for id in [&one, &two] {
        let error = cell(&n, id)["error"].as_str().unwrap_or("");
        assert!(error.contains("more than one cell"), "{error}");
    }
    edit(&s, &nb, &two, "w = 2").await;
    let n = s.notebook(U, &nb).await;
    assert_eq!(cell(&n, &one)["error"], Value::Null);
    assert_eq!(cell(&n, &two)["error"], Value::Null);

    // A cycle: error on each of its cells, naming it; repaired by an edit.
    let p = s.new_cell(U, &nb, "python", "p = q + 1").await;
    let q = s.new_cell(U, &nb, "python", "q = p + 1").await;
    let n = s.notebook(U, &nb).await;
    // p and q are cells 4 and 5 (after the notebook's first empty cell); each error names the
    // other by position.
    for (id, other) in [(&p, "cell 5"), (&q, "cell 4")] {
        let error = cell(&n, id)["error"].as_str().unwrap_or("");
        assert!(error.contains("cycle") && error.contains(other), "{error}");
    }
    edit(&s, &nb, &q, "q = 1").await;
    run(&s, &nb, &q).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &q)["status"], "success");
    assert_eq!(cell(&n, &p)["status"], "success");
    s.finish().await;
}

#[actix_web::test]
async fn failure_blocks_downstream_with_a_trimmed_traceback() {
    let s = server().await;
    let nb = s.new_notebook(U, "blocked").await;
    let x = s
        .new_cell(U, &nb, "python", "base = 10\nx = base / 0")
        .await;
    let y = s.new_cell(U, &nb, "python", "y = x + 1").await;
    let z = s.new_cell(U, &nb, "python", "z = y + 1").await;
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &x)["status"], "error");
    let error = cell(&n, &x)["error"].as_str().expect("error text");
    assert!(error.contains("ZeroDivisionError"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    assert!(
        !error.contains("driver"),
        "traceback shows only user code: {error}"
    );
    assert_eq!(cell(&n, &y)["status"], "blocked");
    assert_eq!(cell(&n, &z)["status"], "blocked");
    // A syntax error is reported when run.
    let bad = s.new_cell(U, &nb, "python", "def broken(:\n  pass").await;
    run(&s, &nb, &bad).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &bad)["status"], "error");
    assert!(cell(&n, &bad)["error"]
        .as_str()
        .unwrap_or("")
        .contains("SyntaxError"));
    s.finish().await;
}

#[actix_web::test]
async fn deleted_and_redefined_names_leave_the_kernel() {
    let s = server().await;
    let nb = s.new_notebook(U, "forget").await;
    let x = s.new_cell(U, &nb, "python", "x = 1").await;
    let y = s.new_cell(U, &nb, "python", "y = x + 1\ny").await;
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &y)).as_deref(), Some("2"));
    // Redefine: `x` is gone, so `y` cannot see its stale value.
    edit(&s, &nb, &x, "renamed = 1").await;
    run(&s, &nb, &y).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &y)["status"], "error");
    assert!(cell(&n, &y)["error"]
        .as_str()
        .unwrap_or("")
        .contains("NameError"));
    // Delete: the names it defined go too.
    edit(&s, &nb, &x, "x = 5").await;
    run(&s, &nb, &x).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &y)).as_deref(), Some("6"));
    let (status, _) = s.delete(&format!("/api/notebooks/{nb}/cells/{x}"), U).await;
    assert_eq!(status, 200);
    run(&s, &nb, &y).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &y)["status"], "error");
    assert!(cell(&n, &y)["error"]
        .as_str()
        .unwrap_or("")
        .contains("NameError"));
    s.finish().await;
}

#[actix_web::test]
async fn stdout_is_ordered_and_live() {
    let s = server().await;
    let nb = s.new_notebook(U, "stdout").await;
    let c = s
        .new_cell(
            U,
            &nb,
            "python",
            "import os, sys, time\nprint('one')\nsys.stderr.write('two\\n')\nos.write(1, b'three\\n')\nprint('{\"type\": \"done\"}')\ntime.sleep(1.5)\nprint('four')",
        )
        .await;
    run(&s, &nb, &c).await;
    // The first lines are visible while the cell still runs.
    let n = wait_for(&s, &nb, 10, |n| {
        cell(n, &c)["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("three")
    })
    .await;
    assert_eq!(cell(&n, &c)["status"], "running");
    let n = wait_settled(&s, &nb).await;
    assert_eq!(
        cell(&n, &c)["stdout"],
        "one\ntwo\nthree\n{\"type\": \"done\"}\nfour\n"
    );
    assert_eq!(cell(&n, &c)["status"], "success");
    s.finish().await;
}

#[actix_web::test]
async fn rich_outputs() {
    let s = server().await;
    let nb = s.new_notebook(U, "outputs").await;
    let html = s
        .new_cell(
            U,
            &nb,
            "python",
            "class Badge:\n    def _repr_html_(self):\n        return '<b>hi</b>'\ndisplay('first', 42)\nBadge()",
        )
        .await;
    run(&s, &nb, &html).await;
    let n = wait_settled(&s, &nb).await;
    let outputs = cell(&n, &html)["outputs"]
        .as_array()
        .expect("outputs")
        .clone();
    let kinds: Vec<&str> = outputs
        .iter()
        .filter_map(|o| o["mime_type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        vec!["text/plain", "text/plain", "text/html"],
        "{outputs:?}"
    );
    assert_eq!(outputs[0]["data"], "'first'");
    assert_eq!(outputs[2]["data"], "<b>hi</b>");

    assert!(
        has_python_package("pandas") && has_python_package("matplotlib"),
        "pandas and matplotlib must be installed for PYTHON (scripts/setup-python.sh)"
    );
    let df = s
        .new_cell(
            U,
            &nb,
            "python",
            "import pandas as pd\ndf = pd.DataFrame({'n': range(1500)})\ndf",
        )
        .await;
    let fig = s
        .new_cell(
            U,
            &nb,
            "python",
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\nfig",
        )
        .await;
    let plotly = s
        .new_cell(
            U,
            &nb,
            "python",
            "import plotly.express as px\npx.line(x=[1, 2], y=[3, 4])",
        )
        .await;
    let altair = s
        .new_cell(
            U,
            &nb,
            "python",
            "import altair as alt\nalt.Chart(pd.DataFrame({'a': [1]})).mark_point().encode(x='a')",
        )
        .await;
    for id in [&df, &fig, &plotly, &altair] {
        run(&s, &nb, id).await;
    }
    let n = wait_settled(&s, &nb).await;
    let first = |id: &str| cell(&n, id)["outputs"][0].clone();
    let table = first(&df);
    assert_eq!(
        table["mime_type"],
        "application/json",
        "{:#}",
        cell(&n, &df)
    );
    assert_eq!(table["data"]["type"], "table");
    assert_eq!(table["data"]["rows"].as_array().map(Vec::len), Some(1000));
    assert!(table["data"]["truncated"]
        .as_str()
        .unwrap_or("")
        .contains("1500"));
    assert_eq!(
        first(&fig)["mime_type"],
        "image/png",
        "{:#}",
        cell(&n, &fig)
    );
    assert_eq!(
        first(&plotly)["mime_type"],
        "application/vnd.plotly.v1+json"
    );
    assert_eq!(
        first(&altair)["mime_type"],
        "application/vnd.vegalite.v6+json"
    );
    s.finish().await;
}

#[actix_web::test]
async fn interrupt_stops_an_infinite_loop_and_the_rest_of_the_run() {
    let s = server().await;
    let nb = s.new_notebook(U, "interrupt").await;
    let spin = s
        .new_cell(
            U,
            &nb,
            "python",
            "n = 0\nprint('spinning')\nwhile True:\n    n += 1",
        )
        .await;
    let after = s.new_cell(U, &nb, "python", "m = n + 1").await;
    run(&s, &nb, &spin).await;
    wait_for(&s, &nb, 10, |n| cell(n, &spin)["stdout"] == "spinning\n").await;
    let started = Instant::now();
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    let n = wait_for(&s, &nb, 5, |n| settled(&cell(n, &spin)["status"])).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        started.elapsed()
    );
    assert_eq!(cell(&n, &spin)["status"], "error");
    assert!(cell(&n, &spin)["error"]
        .as_str()
        .unwrap_or("")
        .contains("Interrupted"));
    let n = wait_settled(&s, &nb).await;
    assert_eq!(
        cell(&n, &after)["status"],
        "idle",
        "the rest of the run is dropped"
    );
    // The kernel still works and kept its state.
    let check = s.new_cell(U, &nb, "python", "n > 0").await;
    run(&s, &nb, &check).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(
        text_output(cell(&n, &check)).as_deref(),
        Some("True"),
        "{n:#}"
    );
    s.finish().await;
}

#[actix_web::test]
async fn timeout_interrupts_the_cell() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.kernel_timeout_secs = 1;
    let s = TestServer::start_with(db, config).await;
    let nb = s.new_notebook(U, "timeout").await;
    let spin = s.new_cell(U, &nb, "python", "while True:\n    pass").await;
    let stubborn = s
        .new_cell(
            U,
            &nb,
            "python",
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.1)",
        )
        .await;
    run(&s, &nb, &spin).await;
    let n = wait_settled(&s, &nb).await;
    assert!(
        cell(&n, &spin)["error"]
            .as_str()
            .unwrap_or("")
            .contains("Timed out"),
        "{n:#}"
    );
    // A cell that ignores SIGINT is killed, and a fresh kernel takes over.
    run(&s, &nb, &stubborn).await;
    let n = wait_settled(&s, &nb).await;
    let error = cell(&n, &stubborn)["error"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(error.contains("killed"), "{error}");
    let ok = s.new_cell(U, &nb, "python", "1 + 1").await;
    run(&s, &nb, &ok).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &ok)).as_deref(), Some("2"));
    s.finish().await;
}

#[actix_web::test]
async fn kernel_crashes_are_contained() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.kernel_memory_mb = 300;
    let s = TestServer::start_with(db, config).await;
    let nb = s.new_notebook(U, "crashes").await;
    let other_nb = s.new_notebook(U, "bystander").await;
    let keep = s.new_cell(U, &other_nb, "python", "kept = 41").await;
    run(&s, &other_nb, &keep).await;
    wait_settled(&s, &other_nb).await;

    let base = s.new_cell(U, &nb, "python", "base = 1").await;
    run(&s, &nb, &base).await;
    wait_settled(&s, &nb).await;
    for (code, why) in [
        ("import os\nos._exit(3)", "exit"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
        ("hog = bytearray(2 * 1024 ** 3)", "emory"),
    ] {
        let crash = s.new_cell(U, &nb, "python", code).await;
        run(&s, &nb, &crash).await;
        let n = wait_settled(&s, &nb).await;
        assert_eq!(cell(&n, &crash)["status"], "error");
        let error = cell(&n, &crash)["error"].as_str().unwrap_or("");
        assert!(error.contains(why), "{code}: {error}");
        if why != "emory" {
            assert!(error.contains("kernel died"), "{error}");
            assert_eq!(
                cell(&n, &base)["status"],
                "stale",
                "values are gone after a crash"
            );
        }
        let (status, _) = s
            .delete(&format!("/api/notebooks/{nb}/cells/{crash}"), U)
            .await;
        assert_eq!(status, 200);
        run(&s, &nb, &base).await;
        let n = wait_settled(&s, &nb).await;
        assert_eq!(cell(&n, &base)["status"], "success", "a fresh kernel works");
    }
    // The other notebook's kernel never noticed.
    let check = s.new_cell(U, &other_nb, "python", "kept + 1").await;
    run(&s, &other_nb, &check).await;
    let n = wait_settled(&s, &other_nb).await;
    assert_eq!(text_output(cell(&n, &check)).as_deref(), Some("42"));
    s.finish().await;
}

#[actix_web::test]
async fn restart_clears_values() {
    let s = server().await;
    let nb = s.new_notebook(U, "restart").await;
    let x = s.new_cell(U, &nb, "python", "x = 1").await;
    let read = s
        .new_cell(U, &nb, "python", "import sys\n'x' in globals()")
        .await;
    run(&s, &nb, &x).await;
    wait_settled(&s, &nb).await;
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/restart"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &x)["status"], "stale");
    run(&s, &nb, &read).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(text_output(cell(&n, &read)).as_deref(), Some("False"));
    s.finish().await;
}

#[actix_web::test]
async fn kernel_environment_is_scrubbed() {
    // SAFETY: set before the server spawns any kernel; the variable is only read by children.
    std::env::set_var("CLERK_SECRET_KEY", "sk_test_should_not_leak");
    std::env::set_var("DATABASE_URL", "postgres://secret@nowhere/db");
    let s = server().await;
    let nb = s.new_notebook(U, "env").await;
    let c = s
        .new_cell(
            U,
            &nb,
            "python",
            "import os\nprint(sorted(os.environ.items()))\nos.getcwd()",
        )
        .await;
    run(&s, &nb, &c).await;
    let n = wait_settled(&s, &nb).await;
    let stdout = cell(&n, &c)["stdout"].as_str().unwrap_or("").to_string();
    assert!(!stdout.contains("sk_test_should_not_leak"), "{stdout}");
    assert!(
        !stdout.contains("DATABASE_URL") && !stdout.contains("CLERK"),
        "{stdout}"
    );
    let cwd = text_output(cell(&n, &c)).unwrap_or_default();
    assert!(cwd.contains(&nb), "per-notebook working directory: {cwd}");
    // Deleting the notebook removes its working directory with its kernel.
    let dir = std::path::PathBuf::from(cwd.trim_matches('\''));
    assert!(dir.is_dir(), "{}", dir.display());
    let (status, _) = s.delete(&format!("/api/notebooks/{nb}"), U).await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} still there", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.finish().await;
}

#[actix_web::test]
async fn run_requests_are_checked() {
    let s = server().await;
    let nb = s.new_notebook(U, "checks").await;
    let c = s.new_cell(U, &nb, "python", "1").await;
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/cells/nope/run"), U, json!({}))
        .await;
    assert_eq!(status, 404);
    for path in [
        format!("/api/notebooks/{nb}/cells/{c}/run"),
        format!("/api/notebooks/{nb}/interrupt"),
        format!("/api/notebooks/{nb}/restart"),
    ] {
        let (status, _) = s.post(&path, "someone_else", json!({})).await;
        assert_eq!(status, 404, "{path}");
    }
    let n = s.notebook(U, &nb).await;
    assert_eq!(cell(&n, &c)["status"], "idle");
    s.finish().await;
}

#[actix_web::test]
async fn coalesced_runs_each_cell_once_per_request() {
    let s = server().await;
    let nb = s.new_notebook(U, "coalesce").await;
    let slow = s
        .new_cell(U, &nb, "python", "import time\ntime.sleep(0.5)\nslow = 1")
        .await;
    let tally = s
        .new_cell(U, &nb, "python", "tally = slow + 1\nprint('tally ran')")
        .await;
    run(&s, &nb, &slow).await;
    // Requests arriving mid-run for cells already queued add nothing.
    run(&s, &nb, &tally).await;
    run(&s, &nb, &tally).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &tally)["stdout"], "tally ran\n");
    assert_eq!(cell(&n, &tally)["status"], "success");
    s.finish().await;
}

#[actix_web::test]
async fn outputs_persist_across_server_restart() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let mut s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "persist").await;
        let c = s.new_cell(U, &nb, "python", "print('hello')\n6 * 7").await;
        run(&s, &nb, &c).await;
        let before = wait_settled(&s, &nb).await;
        assert_eq!(text_output(cell(&before, &c)).as_deref(), Some("42"));
        s.restart().await;
        let after = s.notebook(U, &nb).await;
        let (b, a) = (cell(&before, &c), cell(&after, &c));
        assert_eq!(a["outputs"], b["outputs"]);
        assert_eq!(a["stdout"], "hello\n");
        // Values died with the old kernel: the cell is stale in this one.
        assert_eq!(a["status"], "stale");
        s.finish().await;
    }
}
