//! Kernel quotas: KERNELS_PER_USER and MAX_KERNELS with real kernels, REST and WebSocket.
//!
//! Live kernels are checked two ways: the server's ledger, and the kernel driver processes
//! descending from this test process (read from /proc).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tokens::token_for;
use common::ws::WsClient;
use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const A: &str = "user_quota_a";
const B: &str = "user_quota_b";

/// Kernels are counted process-wide, so under `cargo test` (one process, many threads) the
/// tests of this file run one at a time; under nextest each test has its own process anyway.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const QUICK: &str = "v = 1\n'ok'";
const CHECK: &str = "'v' in globals()";
const SLOW: &str = "import time\nprint('started', flush=True)\ntime.sleep(60)";

/// A notebook with a quick cell (defines `v`), a check (`v` still there?) and a slow cell.
struct Nb {
    owner: &'static str,
    id: String,
    quick: String,
    check: String,
    slow: String,
}

async fn start(backend: Backend, per_user: usize, max: usize) -> TestServer {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.quotas.kernels_per_user = per_user;
    config.quotas.max_kernels = max;
    TestServer::start_with(db, config).await
}

async fn notebook(s: &TestServer, owner: &'static str, name: &str) -> Nb {
    let id = s.new_notebook(owner, name).await;
    let quick = s.new_cell(owner, &id, "python", QUICK).await;
    let check = s.new_cell(owner, &id, "python", CHECK).await;
    let slow = s.new_cell(owner, &id, "python", SLOW).await;
    Nb {
        owner,
        id,
        quick,
        check,
        slow,
    }
}

async fn run(s: &TestServer, nb: &Nb, cell: &str) -> (u16, Value) {
    s.post(
        &format!("/api/notebooks/{}/cells/{cell}/run", nb.id),
        nb.owner,
        json!({}),
    )
    .await
}

async fn run_ok(s: &TestServer, nb: &Nb, cell: &str) {
    let (status, body) = run(s, nb, cell).await;
    assert_eq!(status, 202, "{body}");
}

async fn interrupt(s: &TestServer, nb: &Nb) {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{}/interrupt", nb.id),
            nb.owner,
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

/// Polls the notebook until `done` holds for the cell; returns the cell.
async fn wait_cell(
    s: &TestServer,
    nb: &Nb,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = s.notebook(nb.owner, &nb.id).await;
        let c = cell(&n, id);
        if done(c) {
            return c.clone();
        }
        assert!(Instant::now() < deadline, "cell never {what}: {c:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_status(s: &TestServer, nb: &Nb, id: &str, status: &str) -> Value {
    wait_cell(s, nb, id, status, |c| c["status"] == status).await
}

/// Runs the quick cell and waits for its success: the notebook now holds an idle kernel.
async fn warm(s: &TestServer, nb: &Nb) {
    run_ok(s, nb, &nb.quick).await;
    wait_status(s, nb, &nb.quick, "success").await;
}

/// Starts the slow cell and waits until its kernel really runs it.
async fn make_busy(s: &TestServer, nb: &Nb) {
    run_ok(s, nb, &nb.slow).await;
    wait_cell(s, nb, &nb.slow, "started", |c| {
        c["status"] == "running" && c["stdout"] == "started\n"
    })
    .await;
}

/// Interrupts the slow cell and waits until it stopped: the kernel is idle again.
async fn make_idle(s: &TestServer, nb: &Nb) {
    interrupt(s, nb).await;
    wait_status(s, nb, &nb.slow, "error").await;
}

fn status_of(c: &Value) -> &str {
    c["status"].as_str().unwrap_or_default()
}

async fn status(s: &TestServer, nb: &Nb, id: &str) -> String {
    let n = s.notebook(nb.owner, &nb.id).await;
    status_of(cell(&n, id)).to_string()
}

fn text_output(c: &Value) -> Option<String> {
    c["outputs"]
        .as_array()?
        .iter()
        .find(|o| o["mime_type"] == "text/plain")
        .and_then(|o| o["data"].as_str())
        .map(str::to_string)
}

fn quota(s: &TestServer) -> reactive_notebook::room::quota::KernelQuota {
    s.server
        .as_ref()
        .expect("server running")
        .rooms
        .kernel_quota()
        .clone()
}

/// Kernel driver processes among this process's descendants.
fn kernel_processes() -> usize {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let entries = std::fs::read_dir("/proc").expect("/proc is readable");
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // The process may exit while we look; skip it then.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain anything, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut stack = vec![std::process::id()];
    let mut count = 0;
    while let Some(pid) = stack.pop() {
        if let Some(kids) = children.get(&pid) {
            for &kid in kids {
                if is_kernel(kid) {
                    count += 1;
                }
                stack.push(kid);
            }
        }
    }
    count
}

/// `python -c <driver.py>`; an exited but unreaped process has an empty command line.
fn is_kernel(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    const MARK: &[u8] = b"# Notebook kernel driver";
    args.len() > 2 && args[1] == b"-c" && args[2].windows(MARK.len()).any(|w| w == MARK)
}

/// Highest kernel process count and ledger count seen while it runs.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl Sampler {
    fn start(s: &TestServer) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let quota = quota(s);
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut processes, mut ledger) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                processes = processes.max(kernel_processes());
                ledger = ledger.max(quota.live_kernels());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (processes, ledger)
        });
        Sampler { stop, task }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("sampler")
    }
}

/// Reads the socket until an `error` event arrives; returns its message.
async fn ws_error(tab: &mut WsClient) -> String {
    let seen = tab
        .until(Duration::from_secs(30), |v| v["type"] == "error")
        .await;
    seen.last()
        .and_then(|v| v["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

both_backends!(
    lru_idle_kernel_of_the_user_is_stopped,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 2, 10).await;
        let nb1 = notebook(&s, A, "one").await;
        let nb2 = notebook(&s, A, "two").await;
        let nb3 = notebook(&s, A, "three").await;
        let mut tab = WsClient::join(&s.base, &nb1.id, &token_for(A)).await;
        warm(&s, &nb1).await;
        warm(&s, &nb2).await;
        assert_eq!(kernel_processes(), 2);

        // A third notebook: nb1's kernel (least recently used, idle) makes room; the run succeeds.
        warm(&s, &nb3).await;
        tab.until(Duration::from_secs(30), |v| {
            v["type"] == "cell_status" && v["cellId"] == nb1.quick && v["status"] == "stale"
        })
        .await;
        let stopped = wait_status(&s, &nb1, &nb1.quick, "stale").await;
        assert_eq!(
            text_output(&stopped).as_deref(),
            Some("'ok'"),
            "outputs are kept"
        );
        assert_eq!(status(&s, &nb2, &nb2.quick).await, "success");
        // The new kernel only started after the stopped one exited.
        assert_eq!(kernel_processes(), 2);
        assert_eq!(quota(&s).live_kernels_of(A), 2);

        // The tab on nb1 stayed connected; running there takes nb2's kernel (now the LRU) and
        // finds a fresh kernel: nb1's values are really gone.
        tab.send(json!({"type": "run_cell", "cellId": nb1.check}))
            .await;
        let events = tab
            .until(Duration::from_secs(60), |v| {
                v["type"] == "cell_status"
                    && v["cellId"] == nb1.check
                    && matches!(v["status"].as_str(), Some("success" | "error"))
            })
            .await;
        let output = events
            .iter()
            .find(|v| v["type"] == "cell_output" && v["cellId"] == nb1.check)
            .map(|v| v["output"]["data"].clone());
        assert_eq!(output, Some(json!("False")), "{events:#?}");
        wait_status(&s, &nb2, &nb2.quick, "stale").await;
        assert_eq!(status(&s, &nb3, &nb3.quick).await, "success");
        assert_eq!(kernel_processes(), 2);
        s.finish().await;
    }
);

both_backends!(
    busy_kernels_at_the_user_limit_refuse_the_run,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 2, 10).await;
        let nb1 = notebook(&s, A, "one").await;
        let nb2 = notebook(&s, A, "two").await;
        let nb3 = notebook(&s, A, "three").await;
        make_busy(&s, &nb1).await;
        make_busy(&s, &nb2).await;

        let (code, body) = run(&s, &nb3, &nb3.quick).await;
        assert_eq!(code, 429, "{body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("KERNELS_PER_USER") && detail.contains("busy"),
            "{detail}"
        );
        assert_eq!(
            status(&s, &nb3, &nb3.quick).await,
            "idle",
            "nothing changed"
        );

        let mut tab = WsClient::join(&s.base, &nb3.id, &token_for(A)).await;
        tab.send(json!({"type": "run_cell", "cellId": nb3.quick}))
            .await;
        let message = ws_error(&mut tab).await;
        assert!(message.contains("KERNELS_PER_USER"), "{message}");
        assert_eq!(kernel_processes(), 2);
        assert_eq!(status(&s, &nb1, &nb1.slow).await, "running");
        assert_eq!(status(&s, &nb2, &nb2.slow).await, "running");

        // Once a kernel is idle again, the same socket's run takes it.
        make_idle(&s, &nb1).await;
        tab.send(json!({"type": "run_cell", "cellId": nb3.quick}))
            .await;
        tab.until(Duration::from_secs(60), |v| {
            v["type"] == "cell_status" && v["cellId"] == nb3.quick && v["status"] == "success"
        })
        .await;
        wait_status(&s, &nb1, &nb1.slow, "stale").await;
        assert_eq!(status(&s, &nb2, &nb2.slow).await, "running");
        assert_eq!(kernel_processes(), 2);
        make_idle(&s, &nb2).await;
        s.finish().await;
    }
);

both_backends!(
    another_users_kernels_are_never_stopped,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 2, 10).await;
        // B's kernels are the least recently used on the server.
        let b1 = notebook(&s, B, "b one").await;
        let b2 = notebook(&s, B, "b two").await;
        warm(&s, &b1).await;
        warm(&s, &b2).await;
        let a1 = notebook(&s, A, "a one").await;
        let a2 = notebook(&s, A, "a two").await;
        let a3 = notebook(&s, A, "a three").await;
        warm(&s, &a1).await;
        warm(&s, &a2).await;

        // A at the limit with an idle kernel: A's own goes.
        warm(&s, &a3).await;
        wait_status(&s, &a1, &a1.quick, "stale").await;
        assert_eq!(status(&s, &b1, &b1.quick).await, "success");
        assert_eq!(status(&s, &b2, &b2.quick).await, "success");
        assert_eq!(quota(&s).live_kernels_of(B), 2);
        assert_eq!(quota(&s).live_kernels_of(A), 2);
        assert_eq!(kernel_processes(), 4);

        // A at the limit with every kernel busy: refused, although B has idle kernels.
        make_busy(&s, &a2).await;
        make_busy(&s, &a3).await;
        let (code, body) = run(&s, &a1, &a1.quick).await;
        assert_eq!(code, 429, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("KERNELS_PER_USER")),
            "{body}"
        );
        assert_eq!(status(&s, &b1, &b1.quick).await, "success");
        assert_eq!(status(&s, &b2, &b2.quick).await, "success");
        assert_eq!(quota(&s).live_kernels_of(B), 2);
        assert_eq!(kernel_processes(), 4);
        // B's kernels still hold B's values.
        run_ok(&s, &b1, &b1.check).await;
        let checked = wait_status(&s, &b1, &b1.check, "success").await;
        assert_eq!(text_output(&checked).as_deref(), Some("True"));
        make_idle(&s, &a2).await;
        make_idle(&s, &a3).await;
        s.finish().await;
    }
);

both_backends!(
    max_kernels_stops_the_servers_lru_kernel_or_refuses,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 5, 2).await;
        let b = notebook(&s, B, "b").await;
        let a1 = notebook(&s, A, "a one").await;
        let a2 = notebook(&s, A, "a two").await;
        warm(&s, &b).await;
        warm(&s, &a1).await;

        // The server is full: its least recently used idle kernel goes, whoever owns it.
        warm(&s, &a2).await;
        wait_status(&s, &b, &b.quick, "stale").await;
        assert_eq!(status(&s, &a1, &a1.quick).await, "success");
        assert_eq!(quota(&s).live_kernels(), 2);
        assert_eq!(quota(&s).live_kernels_of(B), 0);
        assert_eq!(kernel_processes(), 2);

        // Full and every kernel busy: refused, naming MAX_KERNELS, over REST and WebSocket.
        make_busy(&s, &a1).await;
        make_busy(&s, &a2).await;
        let (code, body) = run(&s, &b, &b.quick).await;
        assert_eq!(code, 429, "{body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("MAX_KERNELS") && !detail.contains("KERNELS_PER_USER"),
            "{detail}"
        );
        let mut tab = WsClient::join(&s.base, &b.id, &token_for(B)).await;
        tab.send(json!({"type": "run_cell", "cellId": b.quick}))
            .await;
        let message = ws_error(&mut tab).await;
        assert!(message.contains("MAX_KERNELS"), "{message}");
        assert_eq!(status(&s, &b, &b.quick).await, "stale", "nothing changed");
        assert_eq!(kernel_processes(), 2);

        // An idle kernel again: B's run takes it.
        make_idle(&s, &a1).await;
        warm(&s, &b).await;
        wait_status(&s, &a1, &a1.slow, "stale").await;
        assert_eq!(status(&s, &a2, &a2.slow).await, "running");
        assert_eq!(kernel_processes(), 2);
        make_idle(&s, &a2).await;
        s.finish().await;
    }
);

both_backends!(
    concurrent_runs_at_the_limit_never_exceed_it,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 2, 10).await;
        let idle1 = notebook(&s, A, "idle one").await;
        let idle2 = notebook(&s, A, "idle two").await;
        warm(&s, &idle1).await;
        warm(&s, &idle2).await;
        let mut contenders = Vec::new();
        for i in 0..6 {
            contenders.push(notebook(&s, A, &format!("contender {i}")).await);
        }
        let sampler = Sampler::start(&s);

        // Six runs at once for two idle kernels: exactly two get one, the rest are refused.
        let answers =
            futures_util::future::join_all(contenders.iter().map(|nb| run(&s, nb, &nb.slow))).await;
        let mut accepted = Vec::new();
        for (nb, (code, body)) in contenders.iter().zip(&answers) {
            match code {
                202 => accepted.push(nb),
                429 => assert!(
                    body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains("KERNELS_PER_USER")),
                    "{body}"
                ),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(accepted.len(), 2, "{answers:?}");
        for nb in &accepted {
            wait_cell(&s, nb, &nb.slow, "started", |c| c["stdout"] == "started\n").await;
        }
        wait_status(&s, &idle1, &idle1.quick, "stale").await;
        wait_status(&s, &idle2, &idle2.quick, "stale").await;
        assert_eq!(kernel_processes(), 2);

        // One idle kernel, one busy: of two simultaneous runs only one gets a kernel.
        make_idle(&s, accepted[0]).await;
        let refused: Vec<&Nb> = contenders
            .iter()
            .filter(|nb| !accepted.iter().any(|a| a.id == nb.id))
            .take(2)
            .collect();
        let answers =
            futures_util::future::join_all(refused.iter().map(|nb| run(&s, nb, &nb.slow))).await;
        let codes: Vec<u16> = answers.iter().map(|(code, _)| *code).collect();
        assert!(codes == [202, 429] || codes == [429, 202], "{answers:?}");
        let winner = if codes[0] == 202 {
            refused[0]
        } else {
            refused[1]
        };
        wait_cell(&s, winner, &winner.slow, "started", |c| {
            c["stdout"] == "started\n"
        })
        .await;
        assert_eq!(kernel_processes(), 2);

        let (processes, ledger) = sampler.finish().await;
        assert!(processes >= 2, "the sampler saw the kernels ({processes})");
        assert!(processes <= 2, "{processes} kernel processes at once");
        assert!(ledger <= 2, "the ledger counted {ledger} kernels at once");
        assert_eq!(quota(&s).live_kernels_of(A), 2);
        make_idle(&s, accepted[1]).await;
        make_idle(&s, winner).await;
        s.finish().await;
    }
);

both_backends!(
    a_kernel_that_fails_to_start_gives_its_slot_back,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        config.quotas.kernels_per_user = 1;
        config.python = db
            .data_dir
            .join("no-such-python")
            .to_string_lossy()
            .into_owned();
        let s = TestServer::start_with(db, config).await;
        let nb1 = notebook(&s, A, "one").await;
        let nb2 = notebook(&s, A, "two").await;
        for nb in [&nb1, &nb2, &nb1] {
            run_ok(&s, nb, &nb.quick).await;
            let failed = wait_status(&s, nb, &nb.quick, "error").await;
            assert!(
                failed["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Could not start the Python kernel")),
                "{failed:#}"
            );
            assert_eq!(quota(&s).live_kernels_of(A), 0);
        }
        s.finish().await;
    }
);

both_backends!(
    deleting_a_notebook_gives_its_slot_back,
    |backend| async move {
        let _serial = SERIAL.lock().await;
        let s = start(backend, 1, 10).await;
        let nb1 = notebook(&s, A, "one").await;
        let nb2 = notebook(&s, A, "two").await;
        make_busy(&s, &nb1).await;
        assert_eq!(quota(&s).live_kernels_of(A), 1);
        let (code, body) = s.delete(&format!("/api/notebooks/{}", nb1.id), A).await;
        assert_eq!(code, 200, "{body}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while quota(&s).live_kernels_of(A) > 0 || kernel_processes() > 0 {
            assert!(
                Instant::now() < deadline,
                "the deleted notebook's kernel is still counted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        warm(&s, &nb2).await;
        s.finish().await;
    }
);
