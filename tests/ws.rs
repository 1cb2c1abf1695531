//! Live collaboration over WebSockets: the session state machine, ordered broadcast to every
//! tab, isolation, slow clients, many sessions, reconnects.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::tokens::{self, sign, token_for, valid_claims};
use common::ws::{Frame, WsClient};
use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const A: &str = "user_ws_a";
const B: &str = "user_ws_b";
const T: Duration = Duration::from_secs(20);

async fn server_with(setup: impl FnOnce(&mut reactive_notebook::config::Config)) -> TestServer {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    setup(&mut config);
    TestServer::start_with(db, config).await
}

fn is_final_status(v: &Value, cell: &str) -> bool {
    v["type"] == "cell_status"
        && v["cellId"] == cell
        && matches!(v["status"].as_str(), Some("success" | "error" | "blocked"))
}

#[actix_web::test]
async fn session_state_machine() {
    let s = server_with(|c| c.ws_auth_timeout_secs = 1).await;
    let nb = s.new_notebook(A, "ws").await;
    let cell = s.new_cell(A, &nb, "python", "x = 1").await;

    // run_cell before authenticate.
    let mut c = WsClient::connect(&s.base, &nb).await;
    c.send(json!({"type": "run_cell", "cellId": cell})).await;
    let message = c.expect_error_then_close(1008).await;
    assert!(message.contains("authenticate"), "{message}");
    // Garbage before authenticate.
    let mut c = WsClient::connect(&s.base, &nb).await;
    c.send_text("{not json".into()).await;
    c.expect_error_then_close(1008).await;
    // Missing token, invalid token, expired token.
    for bad in [
        json!({"type": "authenticate"}),
        json!({"type": "authenticate", "token": "garbage"}),
        json!({"type": "authenticate", "token": tokens::sign_with_other_key(valid_claims(A), None)}),
    ] {
        let mut c = WsClient::connect(&s.base, &nb).await;
        c.send(bad.clone()).await;
        let message = c.expect_error_then_close(1008).await;
        assert!(
            message.contains("authentication failed"),
            "{bad}: {message}"
        );
    }
    // Silence: closed after the (test-configured) 1 s deadline.
    let mut c = WsClient::connect(&s.base, &nb).await;
    let started = Instant::now();
    let message = c.expect_error_then_close(1008).await;
    assert!(message.contains("timed out"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Someone else's notebook and a missing one: the same answer.
    let mut c = WsClient::connect(&s.base, &nb).await;
    c.send(json!({"type": "authenticate", "token": token_for(B)}))
        .await;
    assert_eq!(c.json(T).await["type"], "authenticated");
    let other = c.expect_error_then_close(1008).await;
    let mut c = WsClient::connect(&s.base, "no-such-notebook").await;
    c.send(json!({"type": "authenticate", "token": token_for(B)}))
        .await;
    assert_eq!(c.json(T).await["type"], "authenticated");
    assert_eq!(c.expect_error_then_close(1008).await, other);

    // Joined: bad frames are answered with `error` and the session stays.
    let mut c = WsClient::join(&s.base, &nb, &token_for(A)).await;
    c.send_text("{oops".into()).await;
    assert_eq!(c.json(T).await["type"], "error");
    c.send(json!({"type": "dance"})).await;
    assert!(c.json(T).await["message"]
        .as_str()
        .unwrap_or("")
        .contains("unknown message type"));
    c.send(json!({"type": "run_cell", "cellId": "missing"}))
        .await;
    assert_eq!(c.json(T).await["type"], "error");
    // refresh_auth: same user -> auth_refreshed; another user -> error, identity kept.
    c.send(json!({"type": "refresh_auth", "token": token_for(A)}))
        .await;
    assert_eq!(c.json(T).await["type"], "auth_refreshed");
    c.send(json!({"type": "refresh_auth", "token": token_for(B)}))
        .await;
    let refused = c.json(T).await;
    assert_eq!(refused["type"], "error");
    assert!(refused["message"]
        .as_str()
        .unwrap_or("")
        .contains("another user"));
    c.send(json!({"type": "refresh_auth", "token": "junk"}))
        .await;
    assert_eq!(c.json(T).await["type"], "error");
    // Still A's session: running works and events arrive.
    c.send(json!({"type": "run_cell", "cellId": cell})).await;
    let events = c.until(T, |v| is_final_status(v, &cell)).await;
    assert_eq!(
        events.last().map(|v| v["status"].clone()),
        Some(json!("success"))
    );
    // Over 1 MiB: refused, connection closed with 1009.
    c.send_text(format!(
        "{{\"type\":\"interrupt\",\"pad\":\"{}\"}}",
        "x".repeat(1024 * 1024 + 16)
    ))
    .await;
    loop {
        match c.next(T).await {
            Frame::Closed(code) => {
                assert_eq!(code, 1009);
                break;
            }
            Frame::Json(_) => continue,
        }
    }
    s.finish().await;
}

#[actix_web::test]
async fn expired_session_is_closed_with_4001() {
    let s = server_with(|c| c.ws_auth_grace_secs = 1).await;
    let nb = s.new_notebook(A, "expiry").await;
    let mut claims = valid_claims(A);
    claims["exp"] = json!(tokens::now() + 2);
    let mut c = WsClient::join(&s.base, &nb, &sign(claims, None)).await;
    let started = Instant::now();
    let message = c.expect_error_then_close(4001).await;
    assert!(message.contains("expired"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
    s.finish().await;
}

#[actix_web::test]
async fn three_tabs_see_the_same_ordered_stream() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(A, "tabs").await;
    let x = s.new_cell(A, &nb, "python", "x = 1").await;
    let y = s
        .new_cell(
            A,
            &nb,
            "python",
            "import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.1)\ny = x + 1",
        )
        .await;
    let z = s.new_cell(A, &nb, "python", "y * 10").await;
    let token = token_for(A);
    let mut tabs = Vec::new();
    for _ in 0..3 {
        tabs.push(WsClient::join(&s.base, &nb, &token).await);
    }
    // A REST edit reaches every tab.
    let (status, _) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{x}"),
            A,
            json!({"code": "x = 2"}),
        )
        .await;
    assert_eq!(status, 200);
    for tab in tabs.iter_mut() {
        let update = tab.json(T).await;
        assert_eq!(update["type"], "cell_updated");
        assert_eq!(update["cell"]["code"], "x = 2");
    }
    // A run from tab 1: identical, gap-free, same-order streams everywhere.
    tabs[0].send(json!({"type": "run_cell", "cellId": x})).await;
    let mut streams = Vec::new();
    for (i, tab) in tabs.iter_mut().enumerate() {
        let events = tab.until(T, |v| is_final_status(v, &z)).await;
        if i == 0 {
            // A fourth tab joining mid-run sees the rest.
        }
        streams.push(events);
    }
    assert_eq!(streams[0], streams[1]);
    assert_eq!(streams[0], streams[2]);
    let seqs: Vec<u64> = streams[0]
        .iter()
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert_eq!(seqs.len(), streams[0].len(), "every broadcast carries seq");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gap-free: {seqs:?}"
    );
    let output = streams[0]
        .iter()
        .find(|v| v["type"] == "cell_output" && v["cellId"] == z)
        .expect("z's output");
    assert_eq!(output["output"]["data"], "30");
    // GET agrees with the last seq. The variables summary is refreshed after each cell,
    // answered by the kernel while the run goes on, so it may land after the final status.
    let n = s.notebook(A, &nb).await;
    let get_seq = n["seq"].as_u64().unwrap_or(0);
    let mut last = seqs.last().copied().unwrap_or(0);
    while last < get_seq {
        let later = tabs[0].json(T).await;
        assert_eq!(later["type"], "variables", "{later}");
        last = later["seq"].as_u64().unwrap_or(u64::MAX);
    }
    assert_eq!(last, get_seq);
    let _ = y;
    s.finish().await;
}

#[actix_web::test]
async fn a_tab_joining_mid_run_sees_the_rest() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(A, "late").await;
    let slow = s
        .new_cell(
            A,
            &nb,
            "python",
            "import time\nfor i in range(10):\n    print(i)\n    time.sleep(0.1)",
        )
        .await;
    let mut first = WsClient::join(&s.base, &nb, &token_for(A)).await;
    first
        .send(json!({"type": "run_cell", "cellId": slow}))
        .await;
    first
        .until(T, |v| {
            v["type"] == "cell_stdout" && v["data"].as_str().unwrap_or("").contains('2')
        })
        .await;
    let mut late = WsClient::join(&s.base, &nb, &token_for(A)).await;
    let late_events = late.until(T, |v| is_final_status(v, &slow)).await;
    let first_rest = first.until(T, |v| is_final_status(v, &slow)).await;
    // The late tab's events are exactly the tail of the first tab's.
    assert!(!late_events.is_empty());
    assert!(first_rest.ends_with(
        &late_events
            [late_events.len().min(first_rest.len()) - late_events.len().min(first_rest.len())..]
    ));
    assert_eq!(first_rest.last(), late_events.last());
    s.finish().await;
}

#[actix_web::test]
async fn users_are_isolated() {
    let s = server_with(|_| {}).await;
    let a_nb = s.new_notebook(A, "a").await;
    let b_nb = s.new_notebook(B, "b").await;
    let a_cell = s
        .new_cell(A, &a_nb, "python", "secret = 'A-only'\nprint(secret)")
        .await;
    let mut b_tab = WsClient::join(&s.base, &b_nb, &token_for(B)).await;
    let mut b_intruder = WsClient::connect(&s.base, &a_nb).await;
    b_intruder
        .send(json!({"type": "authenticate", "token": token_for(B)}))
        .await;
    assert_eq!(b_intruder.json(T).await["type"], "authenticated");
    b_intruder.expect_error_then_close(1008).await;
    let mut a_tab = WsClient::join(&s.base, &a_nb, &token_for(A)).await;
    a_tab
        .send(json!({"type": "run_cell", "cellId": a_cell}))
        .await;
    a_tab.until(T, |v| is_final_status(v, &a_cell)).await;
    // B's own tab heard nothing of it.
    let quiet = tokio::time::timeout(Duration::from_millis(500), b_tab.next(T)).await;
    assert!(quiet.is_err(), "B received {quiet:?}");
    s.finish().await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_stalled_client_is_cut_off_without_hurting_others() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(A, "flood").await;
    let flood = s.new_cell(A, &nb, "python", common::ws::FLOOD_CODE).await;
    let token = token_for(A);
    let mut stalled = WsClient::join(&s.base, &nb, &token).await;
    let mut readers = vec![
        WsClient::join(&s.base, &nb, &token).await,
        WsClient::join(&s.base, &nb, &token).await,
    ];
    let before = rss_kib();
    readers[0]
        .send(json!({"type": "run_cell", "cellId": flood}))
        .await;
    let started = Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let tasks = readers.into_iter().map(|mut reader| {
        let flood = flood.clone();
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut outputs = 0usize;
            loop {
                let v = reader.json(Duration::from_secs(120)).await;
                if v["type"] == "cell_output" {
                    outputs += 1;
                    if outputs.is_multiple_of(1000) {
                        peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if is_final_status(&v, &flood) {
                    return outputs;
                }
            }
        })
    });
    let counts: Vec<usize> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("reader task"))
        .collect();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let elapsed = started.elapsed();
    assert_eq!(
        counts,
        vec![20000, 20000],
        "the reading tabs get everything"
    );
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("20000 events to 2 readers in {elapsed:?}; RSS growth {growth_mib} MiB");
    assert!(growth_mib < 64, "RSS grew by {growth_mib} MiB");
    // The stalled one, when it finally reads, finds far fewer events and a 1013 close.
    let (seen, code) = stalled.until_closed(Duration::from_secs(30)).await;
    assert_eq!(code, 1013);
    assert!(seen < 20000, "stalled client got {seen}");
    s.finish().await;
}

#[actix_web::test]
async fn five_hundred_sessions_all_see_the_final_status() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(A, "crowd").await;
    let cell = s.new_cell(A, &nb, "python", "print('hello crowd')").await;
    let token = token_for(A);
    let mut clients = Vec::new();
    for _ in 0..500 {
        clients.push(WsClient::join(&s.base, &nb, &token).await);
    }
    let (status, _) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            A,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let waits = clients.into_iter().map(|mut c| {
        let cell = cell.clone();
        tokio::spawn(async move {
            let events = c
                .until(Duration::from_secs(60), |v| is_final_status(v, &cell))
                .await;
            events.last().map(|v| v["status"].clone())
        })
    });
    let results = futures_util::future::join_all(waits).await;
    let successes = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(v)) if v == "success"))
        .count();
    assert_eq!(successes, 500);
    s.finish().await;
}

/// A client-side model of the notebook, kept up to date from events.
fn apply(model: &mut Value, event: &Value) {
    let cells = model["cells"].as_array_mut().expect("cells");
    let id = event["cellId"].as_str().unwrap_or("");
    let find = |cells: &mut Vec<Value>| cells.iter().position(|c| c["id"] == id);
    match event["type"].as_str().unwrap_or("") {
        "cell_status" => {
            if let Some(i) = find(cells) {
                cells[i]["status"] = event["status"].clone();
            }
        }
        "cell_stdout" => {
            if let Some(i) = find(cells) {
                let text = format!(
                    "{}{}",
                    cells[i]["stdout"].as_str().unwrap_or(""),
                    event["data"].as_str().unwrap_or("")
                );
                cells[i]["stdout"] = json!(text);
            }
        }
        "cell_output" => {
            if let Some(i) = find(cells) {
                if let Some(outputs) = cells[i]["outputs"].as_array_mut() {
                    outputs.push(event["output"].clone());
                }
            }
        }
        "cell_error" => {
            if let Some(i) = find(cells) {
                cells[i]["error"] = event["error"].clone();
            }
        }
        "cell_updated" => {
            if let Some(i) = find(cells) {
                cells[i] = event["cell"].clone();
            }
        }
        "cell_created" => {
            let index = event["index"].as_u64().unwrap_or(0) as usize;
            cells.insert(index.min(cells.len()), event["cell"].clone());
        }
        "cell_deleted" => {
            if let Some(i) = find(cells) {
                cells.remove(i);
            }
        }
        "notebook_updated" => model["name"] = event["name"].clone(),
        _ => {}
    }
    if let Some(seq) = event["seq"].as_u64() {
        model["seq"] = json!(seq);
    }
}

#[actix_web::test]
async fn reconnect_and_refetch_converges() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(A, "reconnect").await;
    let a = s.new_cell(A, &nb, "python", "a = 1").await;
    let b = s
        .new_cell(
            A,
            &nb,
            "python",
            "import time\nfor i in range(6):\n    print(i)\n    time.sleep(0.1)\nb = a * 2\nb",
        )
        .await;
    let token = token_for(A);
    let mut steady = WsClient::join(&s.base, &nb, &token).await;
    let mut model = s.notebook(A, &nb).await;
    let mut flaky = WsClient::join(&s.base, &nb, &token).await;
    steady.send(json!({"type": "run_cell", "cellId": a})).await;
    flaky.until(T, |v| v["type"] == "cell_stdout").await;
    drop(flaky);
    // Meanwhile more happens: a new cell and an edit.
    let c = s.new_cell(A, &nb, "python", "c = b + 1").await;
    s.put(
        &format!("/api/notebooks/{nb}/name"),
        A,
        json!({"name": "renamed"}),
    )
    .await;
    let mut flaky = WsClient::join(&s.base, &nb, &token).await;
    let mut flaky_model = s.notebook(A, &nb).await;
    steady.send(json!({"type": "run_cell", "cellId": c})).await;
    // The run's last broadcast: the variables table with the name `c` defines, sent after its
    // final status once the kernel summarized it.
    let last = |v: &Value| {
        v["type"] == "variables"
            && v["variables"]
                .as_array()
                .is_some_and(|vars| vars.iter().any(|x| x["name"] == "c"))
    };
    for event in steady.until(T, last).await {
        apply(&mut model, &event);
    }
    for event in flaky.until(T, last).await {
        if event["seq"].as_u64() > flaky_model["seq"].as_u64() {
            apply(&mut flaky_model, &event);
        }
    }
    let server = s.notebook(A, &nb).await;
    let strip = |mut v: Value| {
        v["revision"] = Value::Null;
        v
    };
    assert_eq!(
        strip(model.clone()),
        strip(server.clone()),
        "the steady tab's model matches the server"
    );
    assert_eq!(
        strip(flaky_model),
        strip(server),
        "the reconnected tab converges too"
    );
    let _ = (b, HashMap::<(), ()>::new());
    s.finish().await;
}
