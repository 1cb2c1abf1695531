//! Limits the server enforces on what a cell sends back, with real kernels through the real
//! server on SQLite and PostgreSQL: output caps (8 MiB per output, 32 MiB per cell, one
//! truncation marker), the 1 MiB stdout cap, and kernels that break the pipe protocol.

mod common;

use std::time::{Duration, Instant};

use common::tokens::token_for;
use common::ws::WsClient;
use common::{Backend, TestServer};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const U: &str = "user_limits";
const MIB: usize = 1024 * 1024;

/// A test server whose client opens a new connection per request: these tests often wait
/// longer than the server's keep-alive between two requests, and a pooled connection the
/// server is closing just then fails the request that reuses it.
async fn server(backend: Backend) -> TestServer {
    let mut s = TestServer::start(backend).await;
    s.http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    s
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

fn cell<'a>(notebook: &'a Value, id: &str) -> &'a Value {
    notebook["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("cell {id} in notebook"))
}

/// Polls the notebook until every cell has settled (light cells only: each poll is a GET).
async fn wait_settled(s: &TestServer, nb: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = s.notebook(U, nb).await;
        let settled = n["cells"].as_array().is_some_and(|cells| {
            cells
                .iter()
                .all(|c| !matches!(c["status"].as_str(), Some("queued" | "running")))
        });
        if settled {
            return n;
        }
        assert!(Instant::now() < deadline, "cells did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An output with a big payload shortened to its length and head, so a test can compare
/// outputs without holding tens of MiB (the server's memory is measured in this process).
fn fingerprint(output: &Value) -> Value {
    let data = &output["data"];
    let len = data
        .as_str()
        .map(str::len)
        .unwrap_or_else(|| data.to_string().len());
    let data = if len <= 4096 {
        data.clone()
    } else {
        let head: String = data.as_str().unwrap_or("").chars().take(32).collect();
        json!(format!("{head}..."))
    };
    json!({
        "mime_type": output["mime_type"],
        "len": len,
        "data": data,
        "metadata": output["metadata"],
    })
}

/// What the sessions saw of one cell's run (outputs as fingerprints).
#[derive(Default)]
struct Seen {
    status: String,
    outputs: Vec<Value>,
    stdout: String,
}

/// Runs `cell` and follows it over the WebSocket until it settles (no polling of a notebook
/// that may hold tens of MiB of outputs).
///
/// While the cell runs, frames are only stored, and only small ones parsed (to spot the end),
/// so this debug-build client reads a burst of 32 MiB faster than the server sends it; a
/// session that falls 16 MiB behind is rightly cut off (1013).
async fn run_and_watch(ws: &mut WsClient, cell: &str) -> Seen {
    ws.send(json!({"type": "run_cell", "cellId": cell})).await;
    let mut frames = Vec::new();
    let mut status = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while status.is_empty() {
        let message = tokio::time::timeout_at(deadline, ws.stream.next())
            .await
            .expect("the cell settles within 120 s")
            .expect("the socket stays open")
            .expect("no websocket error");
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => panic!("the server closed the socket: {frame:?}"),
            _ => continue,
        };
        if text.len() < 4096 {
            let event: Value = serde_json::from_str(&text).expect("JSON message");
            let settled = matches!(event["status"].as_str(), Some("success" | "error"));
            if event["type"] == "cell_status" && event["cellId"] == cell && settled {
                status = event["status"].as_str().unwrap_or("").to_string();
            }
        }
        frames.push(text);
    }
    let mut seen = Seen {
        status,
        ..Seen::default()
    };
    for text in frames {
        let event: Value = serde_json::from_str(&text).expect("JSON message");
        if event["cellId"] != cell {
            continue;
        }
        match event["type"].as_str() {
            Some("cell_output") => seen.outputs.push(fingerprint(&event["output"])),
            Some("cell_stdout") => seen.stdout.push_str(event["data"].as_str().unwrap_or("")),
            _ => {}
        }
    }
    seen
}

fn is_marker(output: &Value) -> bool {
    output["metadata"].get("output_truncated").is_some()
}

fn markers(outputs: &[Value]) -> Vec<&Value> {
    outputs.iter().filter(|o| is_marker(o)).collect()
}

/// A cell's stored outputs, as fingerprints.
fn outputs_of(cell: &Value) -> Vec<Value> {
    cell["outputs"]
        .as_array()
        .map(|outputs| outputs.iter().map(fingerprint).collect())
        .unwrap_or_default()
}

fn len(output: &Value) -> usize {
    output["len"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX)
}

fn text(output: &Value) -> &str {
    output["data"].as_str().unwrap_or("")
}

/// The test process's resident memory (the server runs in it), in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib / 1024.0
}

/// The cell ran on a fresh kernel: a value set behind the analyser's back is gone, and the
/// kernel computes.
async fn assert_fresh_kernel(ws: &mut WsClient, probe: &str) {
    let seen = run_and_watch(ws, probe).await;
    assert_eq!(seen.status, "success");
    assert_eq!(
        seen.outputs.iter().map(text).collect::<Vec<_>>(),
        vec!["(False, 2)"],
        "the probe ran on the old kernel"
    );
}

both_backends!(display_flood_keeps_32_mib, |backend: Backend| async move {
    let s = server(backend).await;
    let nb = s.new_notebook(U, "flood").await;
    let full = s
        .new_cell(
            U,
            &nb,
            "python",
            "for j in range(31):\n    display('w' * (1024 * 1024))",
        )
        .await;
    let flood = s
        .new_cell(
            U,
            &nb,
            "python",
            "for i in range(300):\n    display('x' * (1024 * 1024))",
        )
        .await;
    let mut ws = WsClient::join(&s.base, &nb, &token_for(U)).await;
    // The baseline already holds one full cell's worth of outputs, kept, stored and sent
    // (twice, so buffers and allocator caches have their steady size): what is measured is
    // one more full cell plus whatever the 270 MiB past the cap cost.
    for _ in 0..2 {
        let seen = run_and_watch(&mut ws, &full).await;
        assert_eq!((seen.status.as_str(), seen.outputs.len()), ("success", 31));
    }
    let before = rss_mib();

    let seen = run_and_watch(&mut ws, &flood).await;
    assert_eq!(seen.status, "success");
    let broadcast_bytes: usize = seen.outputs.iter().map(len).sum();
    assert_eq!(markers(&seen.outputs).len(), 1, "one marker broadcast");
    assert!(
        broadcast_bytes <= 32 * MIB + 4096,
        "{broadcast_bytes} bytes broadcast"
    );

    let other_nb = s.new_notebook(U, "bystander").await;
    let other = s.new_cell(U, &other_nb, "python", "6 * 7").await;
    run(&s, &other_nb, &other).await;
    let n = wait_settled(&s, &other_nb).await;
    assert_eq!(cell(&n, &other)["status"], "success");
    assert_eq!(text(&outputs_of(cell(&n, &other))[0]), "42");
    let (status, body) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let grown = rss_mib() - before;
    println!("RSS grew by {grown:.0} MiB for 300 MiB of outputs");
    // One more full cell is 32 MiB kept, stored and sent, plus allocator slack; what must
    // never show is the 270 MiB past the cap (measured 150-185 MiB on 2 cores).
    assert!(grown < 220.0, "server memory grew by {grown:.0} MiB");

    let outputs = outputs_of(cell(&s.notebook(U, &nb).await, &flood));
    let marks = markers(&outputs);
    assert_eq!(marks.len(), 1, "exactly one truncation marker");
    let marker = text(marks[0]);
    assert!(
        marker.starts_with("[output truncated: dropped 269 outputs") && marker.contains("32 MiB"),
        "{marker}"
    );
    assert!(
        is_marker(outputs.last().expect("outputs")),
        "marker comes last"
    );
    let kept: Vec<&Value> = outputs.iter().filter(|o| !is_marker(o)).collect();
    // Each line carries 1 MiB + 2 quote characters plus its envelope.
    assert_eq!(kept.len(), 31, "31 outputs of 1 MiB fit in 32 MiB");
    assert!(kept.iter().all(|o| len(o) == 1024 * 1024 + 2), "{kept:?}");
    let kept_bytes: usize = kept.iter().map(|o| len(o)).sum();
    assert!(kept_bytes <= 32 * MIB, "{kept_bytes}");
    assert_eq!(seen.outputs, outputs, "sessions saw exactly what is kept");

    // What is stored is what was kept: a new server loads it from the database.
    let mut s = s;
    s.restart().await;
    let n = s.notebook(U, &nb).await;
    assert_eq!(outputs_of(cell(&n, &flood)), outputs, "persisted outputs");
    s.finish().await;
});

both_backends!(oversized_output_is_dropped, |backend: Backend| async move {
    let s = server(backend).await;
    let nb = s.new_notebook(U, "big").await;
    // Through display(): the driver's own cap drops it and reports the drop.
    let big = s
        .new_cell(
            U,
            &nb,
            "python",
            "display('x' * (20 * 1024 * 1024))\ndisplay('after')",
        )
        .await;
    // With the driver's cap switched off from the cell, the server's cap still holds.
    let sneaky = s
        .new_cell(
            U,
            &nb,
            "python",
            "display.__globals__['MAX_OUTPUT_BYTES'] = 1 << 40\n\
             display('y' * (8 * 1024 * 1024 + 1000))\n\
             display('kept')",
        )
        .await;
    let mut ws = WsClient::join(&s.base, &nb, &token_for(U)).await;
    for (id, dropped, kept) in [
        (&big, "20.0 MiB", "'after'"),
        (&sneaky, "8.0 MiB", "'kept'"),
    ] {
        let seen = run_and_watch(&mut ws, id).await;
        assert_eq!(seen.status, "success");
        let n = s.notebook(U, &nb).await;
        let outputs = outputs_of(cell(&n, id));
        assert_eq!(outputs.len(), 2, "{outputs:?}");
        assert_eq!(text(&outputs[0]), kept);
        assert!(is_marker(&outputs[1]));
        let marker = text(&outputs[1]);
        assert!(
            marker.contains(&format!("dropped 1 output of {dropped}"))
                && marker.contains("the limit is 8 MiB per output"),
            "{marker}"
        );
        assert_eq!(outputs[1]["mime_type"], "text/plain");
        assert_eq!(
            seen.outputs, outputs,
            "the dropped output was not broadcast"
        );
    }
    s.finish().await;
});

/// Runs `code`, which breaks the protocol on fd 4, and checks the cell names the violation
/// and the next run gets a fresh, working kernel.
async fn expect_protocol_violation(backend: Backend, code: &str, needle: &str) {
    let s = server(backend).await;
    let nb = s.new_notebook(U, "protocol").await;
    let setup = s
        .new_cell(U, &nb, "python", "globals()['planted'] = 1")
        .await;
    let bad = s.new_cell(U, &nb, "python", code).await;
    let probe = s
        .new_cell(U, &nb, "python", "('planted' in globals(), 1 + 1)")
        .await;
    let mut ws = WsClient::join(&s.base, &nb, &token_for(U)).await;
    assert_eq!(run_and_watch(&mut ws, &setup).await.status, "success");
    let seen = run_and_watch(&mut ws, &probe).await;
    assert_eq!(
        seen.outputs.iter().map(text).collect::<Vec<_>>(),
        vec!["(True, 2)"]
    );

    let seen = run_and_watch(&mut ws, &bad).await;
    assert_eq!(seen.status, "error");
    let n = s.notebook(U, &nb).await;
    let error = cell(&n, &bad)["error"].as_str().unwrap_or("").to_string();
    assert!(
        error.starts_with("The kernel broke the protocol (") && error.contains(needle),
        "{error}"
    );
    assert!(error.contains("a fresh kernel was started"), "{error}");
    assert!(outputs_of(cell(&n, &bad)).is_empty());
    assert_fresh_kernel(&mut ws, &probe).await;
    s.finish().await;
}

both_backends!(
    huge_line_on_fd4_kills_kernel,
    |backend: Backend| async move {
        let code = "import os\n\
        line = b'{\"type\":\"output\",\"id\":1,\"output\":{\"mime_type\":\"text/plain\",\"data\":\"' \
        + b'x' * (20 * 1024 * 1024) + b'\"}}\\n'\n\
        os.write(4, line)\n\
        import time\n\
        time.sleep(60)";
        expect_protocol_violation(
            backend,
            code,
            "a protocol message longer than 8 MiB + 64 KiB",
        )
        .await;
    }
);

both_backends!(garbage_on_fd4_kills_kernel, |backend: Backend| async move {
    expect_protocol_violation(
        backend,
        "import os, time\nos.write(4, b'not json\\n')\ntime.sleep(60)",
        "malformed protocol message",
    )
    .await;
});

both_backends!(
    unknown_type_on_fd4_kills_kernel,
    |backend: Backend| async move {
        expect_protocol_violation(
            backend,
            "import os, time\nos.write(4, b'{\"type\":\"bogus\",\"id\":1}\\n')\ntime.sleep(60)",
            "unknown protocol message type \"bogus\"",
        )
        .await;
    }
);

both_backends!(stdout_flood_is_capped, |backend: Backend| async move {
    let s = server(backend).await;
    let nb = s.new_notebook(U, "print").await;
    let flood = s
        .new_cell(
            U,
            &nb,
            "python",
            "import sys\nfor _ in range(50):\n    sys.stdout.write('y' * (1024 * 1024))\nprint('end')",
        )
        .await;
    let mut ws = WsClient::join(&s.base, &nb, &token_for(U)).await;
    let seen = run_and_watch(&mut ws, &flood).await;
    assert_eq!(seen.status, "success");
    let n = s.notebook(U, &nb).await;
    let stdout = cell(&n, &flood)["stdout"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let notice = "\n[output truncated: more than 1 MiB]\n";
    assert_eq!(stdout.len(), MIB + notice.len());
    assert!(stdout.ends_with(notice));
    assert_eq!(stdout.matches("[output truncated").count(), 1);
    assert!(stdout[..MIB].bytes().all(|b| b == b'y'));
    assert_eq!(seen.stdout, stdout, "sessions saw exactly the kept text");
    s.finish().await;
});
