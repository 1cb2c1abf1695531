//! Black-box tests of the Python kernel over real interpreter processes.
//!
//! Uses `$PYTHON` (e.g. the repo's `.venv/bin/python`) or `python3`. Tests that need
//! pandas/matplotlib/plotly/altair fail, naming the package, if it does not import.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reactive_notebook::kernel::{
    ExecResult, Kernel, KernelConfig, KernelError, KernelEvent, Output,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[path = "common/procs.rs"]
mod procs;
use procs::host_pids_with_arg;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn work_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "kernel-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

fn config() -> KernelConfig {
    KernelConfig {
        python: python(),
        work_dir: work_dir(),
        memory_mb: 0,
        extra_env: vec![],
        ..KernelConfig::default()
    }
}

async fn spawn() -> Kernel {
    Kernel::spawn(&config()).await.expect("kernel spawns")
}

/// Fails the test, naming the modules, unless they all import under the test interpreter
/// (`scripts/setup-python.sh` installs them; `scripts/test.sh` points `PYTHON` at it).
fn require(modules: &[&str]) {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = std::process::Command::new(python())
        .args(["-c", &code])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{modules:?} must be importable by {} (run scripts/setup-python.sh and set PYTHON)",
        python()
    );
}

async fn run(k: &mut Kernel, code: &str) -> (ExecResult, Vec<KernelEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let r = k.execute(code, &[], tx).await;
    let mut events = vec![];
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (r, events)
}

fn outputs(events: &[KernelEvent]) -> Vec<Output> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Output(o) => Some(o.clone()),
            _ => None,
        })
        .collect()
}

fn stream(events: &[KernelEvent], which: &str) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Stream { name, text } if name == which => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Run a cell that must succeed and produce exactly one output.
async fn one_output(k: &mut Kernel, code: &str) -> Output {
    let (r, ev) = run(k, code).await;
    assert_eq!(r, ExecResult::Ok, "cell failed: {code}");
    let outs = outputs(&ev);
    assert_eq!(outs.len(), 1, "expected one output from {code}: {outs:?}");
    outs.into_iter().next().unwrap()
}

async fn text_of(k: &mut Kernel, code: &str) -> String {
    let o = one_output(k, code).await;
    assert_eq!(o.mime_type, "text/plain");
    o.data.as_str().unwrap().to_string()
}

#[tokio::test]
async fn simple_value_output() {
    let mut k = spawn().await;
    assert_eq!(text_of(&mut k, "1 + 1").await, "2");
    assert_eq!(text_of(&mut k, "'abc'").await, "'abc'");
    let (r, ev) = run(&mut k, "x = 5").await;
    assert_eq!(r, ExecResult::Ok);
    assert!(ev.is_empty());
    let (r, ev) = run(&mut k, "None").await;
    assert_eq!(r, ExecResult::Ok);
    assert!(ev.is_empty());
    assert_eq!(text_of(&mut k, "__name__").await, "'__main__'");
    k.shutdown().await;
}

#[tokio::test]
async fn state_persists_and_forget() {
    let mut k = spawn().await;
    run(&mut k, "x = 41\ndef f(): return x + 1").await;
    assert_eq!(text_of(&mut k, "f()").await, "42");

    k.forget(&["x".to_string(), "never_defined".to_string()])
        .await
        .unwrap();
    let (r, _) = run(&mut k, "x").await;
    match r {
        ExecResult::Error(e) => assert!(e.contains("NameError"), "{e}"),
        other => panic!("expected NameError, got {other:?}"),
    }

    // forget passed to execute runs before the cell.
    run(&mut k, "z = 1").await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let r = k.execute("z", &["z".to_string()], tx).await;
    assert!(
        matches!(r, ExecResult::Error(ref e) if e.contains("NameError")),
        "{r:?}"
    );
    k.shutdown().await;
}

#[tokio::test]
async fn stdout_stderr_ordering() {
    let mut k = spawn().await;
    let code = "import os, sys\nprint('one')\nsys.stderr.write('two\\n')\nos.write(1, b'three\\n')\nos.system('echo four')\nprint('five')";
    let (r, ev) = run(&mut k, code).await;
    assert_eq!(r, ExecResult::Ok);
    // Coalesce adjacent chunks of the same stream, then compare the interleaving.
    let mut merged: Vec<(String, String)> = vec![];
    for e in &ev {
        if let KernelEvent::Stream { name, text } = e {
            match merged.last_mut() {
                Some((n, t)) if n == name => t.push_str(text),
                _ => merged.push((name.clone(), text.clone())),
            }
        }
    }
    let expect = vec![
        ("stdout".to_string(), "one\n".to_string()),
        ("stderr".to_string(), "two\n".to_string()),
        ("stdout".to_string(), "three\nfour\nfive\n".to_string()),
    ];
    assert_eq!(merged, expect);

    // C-level stdio that never flushes on its own is flushed at the end of the cell.
    let (r, ev) = run(
        &mut k,
        "import ctypes\nctypes.CDLL(None).printf(b'from C\\n')",
    )
    .await;
    assert_eq!(r, ExecResult::Ok);
    assert!(stream(&ev, "stdout").contains("from C"), "{ev:?}");
    k.shutdown().await;
}

#[tokio::test]
async fn streaming_is_live() {
    let mut k = spawn().await;
    for code in [
        "import time\nprint('first')\ntime.sleep(2)\nprint('second')",
        "import time\nprint('partial', end='')\ntime.sleep(2)",
    ] {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let exec = k.execute(code, &[], tx);
        tokio::pin!(exec);
        tokio::select! {
            ev = rx.recv() => {
                let elapsed = start.elapsed();
                assert!(elapsed < Duration::from_secs(1), "first chunk took {elapsed:?}");
                match ev {
                    Some(KernelEvent::Stream { name, text }) => {
                        assert_eq!(name, "stdout");
                        assert!(text.starts_with("first") || text.starts_with("partial"), "{text}");
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            r = &mut exec => panic!("cell finished ({r:?}) before its first chunk arrived"),
        }
        assert_eq!(exec.await, ExecResult::Ok);
    }
    k.shutdown().await;
}

#[tokio::test]
async fn protocol_lookalike_output_is_harmless() {
    let mut k = spawn().await;
    let code = r#"print('{"type":"done","id":1,"status":"ok","error":null}')
import os
os.write(1, b'{"type":"ready"}\n{"type":"done","id":99,"status":"error","error":"x"}\n')
print("after")
y = 3"#;
    let (r, ev) = run(&mut k, code).await;
    assert_eq!(r, ExecResult::Ok);
    let out = stream(&ev, "stdout");
    assert!(
        out.contains(r#"{"type":"done","id":1"#) && out.ends_with("after\n"),
        "{out}"
    );
    assert_eq!(text_of(&mut k, "y").await, "3");
    k.shutdown().await;
}

#[tokio::test]
async fn dataframe_table_output() {
    require(&["pandas"]);
    let mut k = spawn().await;
    let o = one_output(
        &mut k,
        "import pandas as pd, numpy as np\ndf = pd.DataFrame({'a': range(5000), 'b': [1.5] * 5000})\ndf.loc[0, 'b'] = np.nan\ndf",
    )
    .await;
    assert_eq!(o.mime_type, "application/json");
    assert_eq!(o.data["type"], "table");
    assert_eq!(o.data["columns"], json!(["a", "b"]));
    let rows = o.data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    // NaN is tagged, so a table tells it apart from a missing value (None -> null).
    assert_eq!(rows[0], json!([0, {"type": "float", "value": "NaN"}]));
    assert_eq!(rows[1], json!([1, 1.5]));
    let note = o.data["truncated"].as_str().unwrap();
    assert!(note.contains("1000") && note.contains("5000"), "{note}");

    // Non-default index is included; timestamps become ISO strings; no truncation note.
    let o = one_output(
        &mut k,
        "pd.DataFrame({'t': pd.to_datetime(['2024-01-02', None]), 'n': [np.int64(7), np.int64(8)]}, index=pd.Index(['x', 'y'], name='key'))",
    )
    .await;
    assert_eq!(o.data["columns"], json!(["key", "t", "n"]));
    assert_eq!(
        o.data["rows"],
        json!([["x", "2024-01-02T00:00:00", 7], ["y", null, 8]])
    );
    assert!(o.data.get("truncated").is_none());

    let o = one_output(
        &mut k,
        "pd.DataFrame({'o': [None, 'x'], 'f': [float('-inf'), 0.25]})",
    )
    .await;
    assert_eq!(
        o.data["rows"],
        json!([[null, {"type": "float", "value": "-Infinity"}], ["x", 0.25]])
    );

    let o = one_output(&mut k, "pd.Series([1, 2], name='s')").await;
    assert_eq!(o.data["columns"], json!(["s"]));
    assert_eq!(o.data["rows"], json!([[1], [2]]));
    k.shutdown().await;
}

#[tokio::test]
async fn matplotlib_png_output() {
    require(&["matplotlib"]);
    let mut k = spawn().await;
    // A list of artists as the last value: one image, not duplicated by the open-figure sweep.
    let o = one_output(
        &mut k,
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])",
    )
    .await;
    assert_eq!(o.mime_type, "image/png");
    assert!(o.data.as_str().unwrap().starts_with("iVBORw0KGgo"));
    // A figure left open by pyplot is shown and closed.
    let o = one_output(&mut k, "fig, ax = plt.subplots()\nax.bar([1], [2])\nx = 1").await;
    assert_eq!(o.mime_type, "image/png");
    assert_eq!(text_of(&mut k, "len(plt.get_fignums())").await, "0");
    // A Figure value.
    let o = one_output(&mut k, "fig").await;
    assert_eq!(o.mime_type, "image/png");
    k.shutdown().await;
}

#[tokio::test]
async fn plotly_and_altair_outputs() {
    let mut k = spawn().await;
    require(&["plotly"]);
    {
        let o = one_output(
            &mut k,
            "import plotly.graph_objects as go\ngo.Figure(data=[go.Bar(y=[1, 2])])",
        )
        .await;
        assert_eq!(o.mime_type, "application/vnd.plotly.v1+json");
        assert_eq!(o.data["data"][0]["type"], "bar");
        assert_eq!(o.data["data"][0]["y"], json!([1, 2]));
    }
    require(&["altair", "pandas"]);
    {
        let o = one_output(
            &mut k,
            "import altair as alt, pandas as pd\nalt.Chart(pd.DataFrame({'a': [1, 2]})).mark_bar().encode(x='a')",
        )
        .await;
        assert_eq!(o.mime_type, "application/vnd.vegalite.v6+json");
        assert!(o.data["$schema"].as_str().unwrap().contains("v6"));
        assert_eq!(o.data["mark"]["type"], "bar");
    }
    k.shutdown().await;
}

#[tokio::test]
async fn html_repr_display_and_size_limit() {
    let mut k = spawn().await;
    let o = one_output(
        &mut k,
        "class H:\n    def _repr_html_(self): return '<b>hi</b>'\nH()",
    )
    .await;
    assert_eq!(o.mime_type, "text/html");
    assert_eq!(o.data, json!("<b>hi</b>"));
    // A class (not an instance) with _repr_html_ falls back to repr.
    let r = text_of(&mut k, "[1, 'a', H]").await;
    assert!(r.starts_with("[1, 'a', <class '__main__.H'>]"), "{r}");

    // display() outputs are ordered with prints.
    let (r, ev) = run(&mut k, "print('a')\ndisplay(1, 'b')\nprint('c')").await;
    assert_eq!(r, ExecResult::Ok);
    // Stream chunks are coalesced (print writes "a" and "\n" separately).
    let mut seq: Vec<String> = vec![];
    let mut in_stream = false;
    for e in &ev {
        match e {
            KernelEvent::Stream { text, .. } if in_stream => seq.last_mut().unwrap().push_str(text),
            KernelEvent::Stream { text, .. } => {
                seq.push(text.clone());
                in_stream = true;
            }
            KernelEvent::Output(o) => {
                seq.push(o.data.as_str().unwrap_or("?").to_string());
                in_stream = false;
            }
        }
    }
    assert_eq!(seq, vec!["a\n", "1", "'b'", "c\n"]);

    let o = one_output(&mut k, "'x' * (9 * 1024 * 1024)").await;
    assert_eq!(o.mime_type, "text/plain");
    let notice = o.data.as_str().unwrap();
    assert!(
        notice.contains("too large") && notice.contains("8 MiB per output"),
        "{notice}"
    );
    k.shutdown().await;
}

#[tokio::test]
async fn traceback_is_trimmed_to_user_code() {
    let mut k = spawn().await;
    let (r, _) = run(&mut k, "x = 1\n1/0").await;
    let ExecResult::Error(e) = r else {
        panic!("{r:?}")
    };
    // The offending source line follows its frame (CPython may add a caret line under it).
    assert!(
        e.starts_with(
            "Traceback (most recent call last):\n  File \"<cell>\", line 2, in <module>\n    1/0\n"
        ),
        "{e}"
    );
    assert!(e.ends_with("\nZeroDivisionError: division by zero"), "{e}");
    assert_eq!(e.matches("File ").count(), 1, "{e}");
    // A function defined by an earlier run shows its own source line, not the caller's.
    let (r, _) = run(&mut k, "def g():\n    return {}['missing']").await;
    assert_eq!(r, ExecResult::Ok);
    let (r, _) = run(&mut k, "y = 2\ng()").await;
    let ExecResult::Error(e) = r else {
        panic!("{r:?}")
    };
    assert!(
        e.contains("line 2, in <module>\n    g()") && e.contains("in g\n    return {}['missing']"),
        "{e}"
    );
    let (r, _) = run(&mut k, "def f():\n    raise ValueError('bad')\nf()").await;
    let ExecResult::Error(e) = r else {
        panic!("{r:?}")
    };
    assert!(
        e.contains("line 3, in <module>") && e.contains("line 2, in f"),
        "{e}"
    );
    assert!(e.ends_with("ValueError: bad"), "{e}");
    assert!(!e.contains("<string>") && !e.contains("driver"), "{e}");

    let (r, _) = run(&mut k, "x = 1\ny = (").await;
    let ExecResult::Error(e) = r else {
        panic!("{r:?}")
    };
    assert!(e.contains("SyntaxError") && e.contains("line 2"), "{e}");
    assert!(!e.contains("<string>"), "{e}");
    k.shutdown().await;
}

#[tokio::test]
async fn interrupt_stops_busy_loop() {
    let mut k = spawn().await;
    let intr = k.interrupter();
    // Idle SIGINT must not kill the driver.
    assert!(intr.interrupt());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(text_of(&mut k, "1").await, "1");

    for code in [
        "while True: pass",
        "import time\ntime.sleep(100)",
        "import os\nos.system('sleep 100')",
    ] {
        let intr = k.interrupter();
        let (r, took) = {
            let (tx, _rx) = mpsc::unbounded_channel();
            let exec = k.execute(code, &[], tx);
            tokio::pin!(exec);
            let early = tokio::time::timeout(Duration::from_millis(300), &mut exec).await;
            assert!(early.is_err(), "{code} should still be running");
            let sent = Instant::now();
            assert!(intr.interrupt());
            let r = tokio::time::timeout(Duration::from_secs(5), exec)
                .await
                .expect("interrupted cell returns");
            (r, sent.elapsed())
        };
        if code.contains("os.system") {
            // The shell child dies of SIGINT; Python may or may not raise afterwards.
            assert!(
                matches!(r, ExecResult::Interrupted | ExecResult::Ok),
                "{r:?}"
            );
        } else {
            assert_eq!(r, ExecResult::Interrupted, "{code}");
        }
        assert!(
            took < Duration::from_secs(1),
            "{code}: interrupt took {took:?}"
        );
        assert_eq!(text_of(&mut k, "2 + 2").await, "4");
    }
    k.shutdown().await;
}

async fn expect_death(code: &str, memory_mb: u64, needle: &str) {
    let mut cfg = config();
    cfg.memory_mb = memory_mb;
    let mut k = Kernel::spawn(&cfg).await.unwrap();
    let pid = k.pid().unwrap();
    let (r, _) = run(&mut k, code).await;
    match r {
        ExecResult::Died(reason) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected death from {code}, got {other:?}"),
    }
    assert!(k.pid().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "zombie left"
    );
    assert!(matches!(run(&mut k, "1").await.0, ExecResult::Died(_)));
    assert!(matches!(
        k.get_values(&["x".into()]).await,
        Err(KernelError::Dead)
    ));
    assert!(matches!(
        k.forget(&["x".into()]).await,
        Err(KernelError::Dead)
    ));
    assert!(!k.interrupter().interrupt());
    k.shutdown().await;
}

#[tokio::test]
async fn exit_is_reported_as_death() {
    expect_death("import os\nos._exit(1)", 0, "exit code 1").await;
}

#[tokio::test]
async fn segfault_is_reported_as_death() {
    expect_death("import ctypes\nctypes.string_at(0)", 0, "SIGSEGV").await;
}

#[tokio::test]
async fn oom_kill_is_reported_with_memory_limit() {
    // What an OOM killer (or cgroup limit) does: SIGKILL mid-cell.
    expect_death(
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        512,
        "memory limit of 512 MB",
    )
    .await;
}

#[tokio::test]
async fn memory_limit_applies() {
    let mut cfg = config();
    cfg.memory_mb = 512;
    let mut k = Kernel::spawn(&cfg).await.unwrap();
    require(&["numpy", "pandas"]);
    {
        // The limit must not break heavy imports (the reason for RLIMIT_DATA).
        let (r, _) = run(&mut k, "import numpy, pandas\nnumpy.ones(1000).sum()").await;
        assert_eq!(r, ExecResult::Ok);
    }
    for code in [
        "x = bytearray(4 * 1024**3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024**2))",
    ] {
        let (r, _) = run(&mut k, code).await;
        match r {
            ExecResult::Error(e) => {
                assert!(e.contains("MemoryError") && e.contains("512 MB"), "{e}");
                run(&mut k, "chunks = None").await;
                assert_eq!(text_of(&mut k, "'alive'").await, "'alive'");
            }
            ExecResult::Died(reason) => {
                println!("kernel died from memory exhaustion: {reason}");
                k = Kernel::spawn(&cfg).await.unwrap();
            }
            other => panic!("expected a memory error, got {other:?}"),
        }
    }
    k.shutdown().await;
}

#[tokio::test]
async fn environment_is_scrubbed() {
    std::env::set_var("CLERK_SECRET_KEY", "sk_test_should_not_leak");
    let mut cfg = config();
    cfg.extra_env = vec![("NOTEBOOK_ID".into(), "nb1".into())];
    let mut k = Kernel::spawn(&cfg).await.unwrap();
    let env = text_of(&mut k, "import os\nsorted(os.environ)").await;
    assert!(!env.contains("CLERK"), "{env}");
    assert!(
        env.contains("NOTEBOOK_ID") && env.contains("MPLBACKEND"),
        "{env}"
    );
    let wd = cfg.work_dir.canonicalize().unwrap();
    let expect = format!("{:?}", (wd.display().to_string(), wd.display().to_string()));
    let got = text_of(&mut k, "(os.getcwd(), os.environ['HOME'])").await;
    assert_eq!(got.replace('\'', "\""), expect);
    // Its own PID namespace, under the sandbox's init; stdin is /dev/null.
    assert_eq!(
        text_of(&mut k, "(os.getpid(), os.getppid())").await,
        "(2, 1)"
    );
    assert_eq!(text_of(&mut k, "import sys\nsys.stdin.read()").await, "''");
    k.shutdown().await;
}

#[tokio::test]
async fn get_values_for_sql_parameters() {
    let mut k = spawn().await;
    let code = r#"import datetime, decimal
i = 42; f = 1.5; s = "x'; DROP TABLE t; --"; b = True; n = None
d = datetime.date(2024, 1, 2)
dt = datetime.datetime(2024, 1, 2, 3, 4, 5)
dtz = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
dec = decimal.Decimal("1.10")
l = [1]
nan = float('nan')"#;
    assert_eq!(run(&mut k, code).await.0, ExecResult::Ok);
    let names: Vec<String> = ["i", "f", "s", "b", "n", "d", "dt", "dtz", "dec", "l", "nan"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = k.get_values(&names).await.unwrap();
    let expect: Vec<Value> = vec![
        json!({"type": "int", "value": 42}),
        json!({"type": "float", "value": 1.5}),
        json!({"type": "str", "value": "x'; DROP TABLE t; --"}),
        json!({"type": "bool", "value": true}),
        json!({"type": "none"}),
        json!({"type": "date", "value": "2024-01-02"}),
        json!({"type": "datetime", "value": "2024-01-02T03:04:05"}),
        json!({"type": "datetime", "value": "2024-01-02T03:04:05+00:00"}),
        json!({"type": "decimal", "value": "1.10"}),
        json!({"type": "unsupported", "python_type": "list"}),
        json!({"type": "float", "value": "NaN"}),
    ];
    assert_eq!(v, expect);
    match k.get_values(&["i".into(), "nope".into()]).await {
        Err(KernelError::NameNotDefined(n)) => assert_eq!(n, "nope"),
        other => panic!("{other:?}"),
    }
    require(&["numpy"]);
    {
        run(
            &mut k,
            "import numpy as np\nni = np.int64(5)\nnf = np.float32(0.5)",
        )
        .await;
        let v = k.get_values(&["ni".into(), "nf".into()]).await.unwrap();
        assert_eq!(
            v,
            vec![
                json!({"type": "int", "value": 5}),
                json!({"type": "float", "value": 0.5})
            ]
        );
    }
    k.shutdown().await;
}

#[tokio::test]
async fn shutdown_reaps_and_bad_python_fails() {
    let mut k = spawn().await;
    let pid = k.pid().unwrap();
    // A unique argument finds the child on the host: inside its PID namespace it has other pids.
    let marker = format!("{}.{}", 1000 + std::process::id() % 1000, pid);
    run(
        &mut k,
        &format!("import subprocess\np = subprocess.Popen(['sleep', '{marker}'])"),
    )
    .await;
    assert_eq!(host_pids_with_arg(&marker).len(), 1, "the child runs");
    k.shutdown().await;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Background processes of the kernel are swept too (allow reaping by init).
    let mut gone = false;
    for _ in 0..100 {
        if host_pids_with_arg(&marker).is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "background child survived shutdown");

    let mut cfg = config();
    cfg.python = "/nonexistent/python".into();
    assert!(matches!(
        Kernel::spawn(&cfg).await,
        Err(KernelError::Spawn(_))
    ));
    // An interpreter that exits before "ready" is a spawn error, not a hang.
    cfg.python = "false".into();
    assert!(matches!(
        Kernel::spawn(&cfg).await,
        Err(KernelError::Spawn(_))
    ));
}

#[tokio::test]
async fn measure_cold_start_and_chained_executes() {
    let start = Instant::now();
    let mut k = spawn().await;
    let (tx, _rx) = mpsc::unbounded_channel();
    assert_eq!(k.execute("x0 = 0", &[], tx.clone()).await, ExecResult::Ok);
    let cold = start.elapsed();

    let start = Instant::now();
    for i in 1..=500 {
        let code = format!("x{i} = x{} + 1", i - 1);
        assert_eq!(k.execute(&code, &[], tx.clone()).await, ExecResult::Ok);
    }
    let chained = start.elapsed();
    assert_eq!(text_of(&mut k, "x500").await, "500");
    println!(
        "MEASURE kernel cold start (spawn -> first result): {} ms",
        cold.as_millis()
    );
    println!(
        "MEASURE 500 chained executes: {} ms total ({:.2} ms each)",
        chained.as_millis(),
        chained.as_secs_f64() * 1000.0 / 500.0
    );
    k.shutdown().await;
}

#[tokio::test]
async fn protocol_garbage_or_closed_pipe_means_dead() {
    // User code can reach the driver's own fds; garbage there kills the kernel cleanly.
    expect_death(
        "import os\nos.write(4, b'not json\\n')\nimport time\ntime.sleep(5)",
        0,
        "malformed protocol message",
    )
    .await;
    expect_death(
        "import os\nos.close(4)\nimport time\ntime.sleep(30)",
        0,
        "closed its protocol pipe",
    )
    .await;
}
