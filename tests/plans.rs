//! A run's Python cells go to the kernel as one plan: per-cell ordering, blocking,
//! interrupts, time limits and edits in the middle of a plan keep their meaning.

mod common;

use std::time::{Duration, Instant};

use common::tokens::token_for;
use common::ws::WsClient;
use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_plans";
const T: Duration = Duration::from_secs(30);

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
        .unwrap_or_else(|| panic!("cell {id} in {notebook}"))
}

fn settled(status: &Value) -> bool {
    !matches!(status.as_str(), Some("queued" | "running"))
}

async fn wait_for(s: &TestServer, nb: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let notebook = s.notebook(U, nb).await;
        if done(&notebook) {
            return notebook;
        }
        assert!(Instant::now() < deadline, "timed out: {notebook:#}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn wait_settled(s: &TestServer, nb: &str) -> Value {
    wait_for(s, nb, |n| {
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

#[actix_web::test]
async fn each_cell_streams_in_order_start_output_end() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "order").await;
    let mut ids = vec![s.new_cell(U, &nb, "python", "v0 = 0\nprint('c0')").await];
    for i in 1..40 {
        let code = format!("v{i} = v{} + 1\nprint('c{i}')\nv{i}", i - 1);
        ids.push(s.new_cell(U, &nb, "python", &code).await);
    }
    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
    let last = ids.last().cloned().unwrap_or_default();
    tab.send(json!({"type": "run_cell", "cellId": ids[0]}))
        .await;
    let events = tab
        .until(T, |v| {
            v["type"] == "cell_status" && v["cellId"] == last && v["status"] == "success"
        })
        .await;
    // After the queued marks, each cell's events form one uninterrupted group:
    // running, its stdout, its output, success, and the groups follow the chain.
    let run_events: Vec<&Value> = events
        .iter()
        .filter(|v| !(v["type"] == "cell_status" && v["status"] == "queued"))
        .filter(|v| v["type"] != "variables")
        .collect();
    let mut at = 0;
    for (i, id) in ids.iter().enumerate() {
        let group: Vec<&Value> = run_events[at..]
            .iter()
            .take_while(|v| v["cellId"] == id.as_str())
            .copied()
            .collect();
        at += group.len();
        let mut kinds: Vec<String> = group
            .iter()
            .map(|v| match v["type"].as_str() {
                Some("cell_status") => format!("status:{}", v["status"].as_str().unwrap_or("")),
                other => other.unwrap_or("").to_string(),
            })
            .collect();
        // Text may arrive in several chunks.
        kinds.dedup();
        let stdout: String = group
            .iter()
            .filter(|v| v["type"] == "cell_stdout")
            .filter_map(|v| v["data"].as_str())
            .collect();
        let mut want = vec!["status:running".to_string(), "cell_stdout".to_string()];
        if i > 0 {
            want.push("cell_output".to_string());
        }
        want.push("status:success".to_string());
        assert_eq!(kinds, want, "cell {i}: {group:?}");
        assert_eq!(stdout, format!("c{i}\n"), "cell {i}");
    }
    assert_eq!(at, run_events.len(), "nothing after the last cell");
    let n = s.notebook(U, &nb).await;
    assert_eq!(text_output(cell(&n, &last)).as_deref(), Some("39"));
    s.finish().await;
}

#[actix_web::test]
async fn a_failed_cell_blocks_its_descendants_not_its_siblings() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "blocking").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let bad = s.new_cell(U, &nb, "python", "b = a / 0").await;
    let child = s.new_cell(U, &nb, "python", "c = b + 1").await;
    let grandchild = s.new_cell(U, &nb, "python", "d = c + 1").await;
    let sibling = s.new_cell(U, &nb, "python", "e = a + 1\ne").await;
    run(&s, &nb, &a).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &a)["status"], "success");
    assert_eq!(cell(&n, &bad)["status"], "error");
    assert!(cell(&n, &bad)["error"]
        .as_str()
        .unwrap_or("")
        .contains("ZeroDivisionError"));
    assert_eq!(cell(&n, &child)["status"], "blocked", "{n:#}");
    assert_eq!(cell(&n, &grandchild)["status"], "blocked", "{n:#}");
    assert_eq!(cell(&n, &sibling)["status"], "success", "{n:#}");
    assert_eq!(text_output(cell(&n, &sibling)).as_deref(), Some("2"));
    // Fixed, the blocked cells run again with the fix.
    let (status, _) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{bad}"),
            U,
            json!({"code": "b = a * 10"}),
        )
        .await;
    assert_eq!(status, 200);
    run(&s, &nb, &bad).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &child)["status"], "success", "{n:#}");
    assert_eq!(cell(&n, &grandchild)["status"], "success", "{n:#}");
    s.finish().await;
}

#[actix_web::test]
async fn interrupt_mid_plan_stops_the_cell_and_drops_the_rest() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "interrupt").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let slow = s
        .new_cell(
            U,
            &nb,
            "python",
            "import time\nb = a\nprint('sleeping')\ntime.sleep(60)",
        )
        .await;
    let after = s.new_cell(U, &nb, "python", "c = b + 1").await;
    let other = s.new_cell(U, &nb, "python", "d = a + 1").await;
    run(&s, &nb, &a).await;
    wait_for(&s, &nb, |n| cell(n, &slow)["stdout"] == "sleeping\n").await;
    let started = Instant::now();
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    let n = wait_settled(&s, &nb).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(cell(&n, &a)["status"], "success");
    assert_eq!(cell(&n, &slow)["status"], "error");
    assert!(cell(&n, &slow)["error"]
        .as_str()
        .unwrap_or("")
        .contains("Interrupted"));
    // Neither the dependent cell nor the independent one after it ran.
    for id in [&after, &other] {
        assert!(
            matches!(cell(&n, id)["status"].as_str(), Some("idle" | "stale")),
            "{n:#}"
        );
    }
    // The kernel is fine and kept `a`.
    run(&s, &nb, &other).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &other)["status"], "success", "{n:#}");
    s.finish().await;
}

#[actix_web::test]
async fn a_time_limit_mid_plan_fails_that_cell_only() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.kernel_timeout_secs = 1;
    let s = TestServer::start_with(db, config).await;
    let nb = s.new_empty_notebook(U, "time limit").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let spin = s
        .new_cell(U, &nb, "python", "b = a\nwhile True:\n    pass")
        .await;
    let child = s.new_cell(U, &nb, "python", "c = b + 1").await;
    let sibling = s.new_cell(U, &nb, "python", "d = a + 1\nd").await;
    run(&s, &nb, &a).await;
    let n = wait_settled(&s, &nb).await;
    assert!(cell(&n, &spin)["error"]
        .as_str()
        .unwrap_or("")
        .contains("Timed out"));
    assert_eq!(cell(&n, &child)["status"], "blocked", "{n:#}");
    // Each cell has a time limit of its own: the one after the slow cell still ran.
    assert_eq!(cell(&n, &sibling)["status"], "success", "{n:#}");
    assert_eq!(text_output(cell(&n, &sibling)).as_deref(), Some("2"));
    s.finish().await;
}

#[actix_web::test]
async fn an_edit_mid_plan_runs_the_new_code() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "edit mid plan").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let slow = s
        .new_cell(
            U,
            &nb,
            "python",
            "import time\nprint('sleeping')\ntime.sleep(1.5)\nb = a",
        )
        .await;
    let later = s.new_cell(U, &nb, "python", "c = b + 1\nc").await;
    run(&s, &nb, &a).await;
    wait_for(&s, &nb, |n| cell(n, &slow)["stdout"] == "sleeping\n").await;
    // The kernel already holds `later`'s old code in its plan; the edit replaces it.
    let (status, _) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{later}"),
            U,
            json!({"code": "c = b + 100\nc"}),
        )
        .await;
    assert_eq!(status, 200);
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &slow)["status"], "success", "{n:#}");
    assert_eq!(cell(&n, &later)["status"], "success", "{n:#}");
    assert_eq!(text_output(cell(&n, &later)).as_deref(), Some("101"));
    s.finish().await;
}

#[actix_web::test]
async fn a_cell_deleted_mid_plan_never_runs() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "delete mid plan").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let slow = s
        .new_cell(
            U,
            &nb,
            "python",
            "import time\nprint('sleeping')\ntime.sleep(1.5)\nb = a",
        )
        .await;
    let doomed = s
        .new_cell(U, &nb, "python", "b2 = b\nopen('ran.txt', 'w').write('x')")
        .await;
    let check = s.new_cell(U, &nb, "python", "x = a + 1").await;
    run(&s, &nb, &a).await;
    wait_for(&s, &nb, |n| cell(n, &slow)["stdout"] == "sleeping\n").await;
    let (status, _) = s
        .delete(&format!("/api/notebooks/{nb}/cells/{doomed}"), U)
        .await;
    assert_eq!(status, 200);
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &check)["status"], "success", "{n:#}");
    let probe = s
        .new_cell(
            U,
            &nb,
            "python",
            "import os\nprint(os.path.exists('ran.txt'))",
        )
        .await;
    run(&s, &nb, &probe).await;
    let n = wait_settled(&s, &nb).await;
    assert_eq!(cell(&n, &probe)["stdout"], "False\n", "{n:#}");
    s.finish().await;
}
