//! Co-editing cell text with Yjs: concurrent random edits from two and three clients converge
//! and are stored; REST edits reach Yjs clients; a run uses the text as of the run request;
//! malformed updates are refused without harm; a third-party client (JS `yjs`) co-edits.

mod common;
#[path = "common/yjs.rs"]
mod yclient;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use common::cells::cell;
use common::tokens::token_for;
use common::{Backend, TestServer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use yclient::YClient;
use yrs::Text;

const A: &str = "user_yjs_a";
const B: &str = "user_yjs_b";
const T: Duration = Duration::from_secs(20);
const SEEDS: u64 = 24;
const PIECES: [&str; 8] = ["a", "bc", "x = 1\n", "é", "λμ", "😀", " ", "\n"];

/// One random edit at a char boundary: an insertion, or a deletion of a few chars.
fn random_edit(rng: &mut StdRng, text: &yrs::TextRef, txn: &mut yrs::TransactionMut) {
    use yrs::GetString;
    let current = text.get_string(txn);
    let bounds: Vec<usize> = current
        .char_indices()
        .map(|(i, _)| i)
        .chain([current.len()])
        .collect();
    let from = bounds[rng.gen_range(0..bounds.len())];
    if current.is_empty() || rng.gen_bool(0.6) {
        let piece = PIECES[rng.gen_range(0..PIECES.len())];
        text.insert(txn, from as u32, piece);
    } else {
        let after: Vec<usize> = bounds.iter().copied().filter(|b| *b > from).collect();
        if let Some(&to) = after.get(rng.gen_range(0..3).min(after.len().saturating_sub(1))) {
            text.remove_range(txn, from as u32, (to - from) as u32);
        }
    }
}

async fn converge_on(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    let nb = s.new_empty_notebook(A, "co-edit").await;
    let token = token_for(A);
    let mut merged = Vec::new();
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let cell_id = s.new_cell(A, &nb, "python", "start = 0\n").await;
        let cells = usize::try_from(seed).unwrap() + 1;
        let n_clients = if seed % 2 == 0 { 2 } else { 3 };
        let mut clients = Vec::new();
        for _ in 0..n_clients {
            clients.push(YClient::join(&s.base, &nb, &token, cells).await);
        }
        // Everyone edits at once: updates are sent without waiting for the others' relays,
        // in a random interleaving, so edits cross on the wire.
        let edits = rng.gen_range(5..25);
        let mut sent = 0;
        for _ in 0..edits * n_clients {
            let who = rng.gen_range(0..n_clients);
            let update =
                clients[who].local_edit(&cell_id, |text, txn| random_edit(&mut rng, text, txn));
            clients[who].send_update(&cell_id, &update).await;
            sent += 1;
            // Now and then a client catches up with what arrived so far.
            if rng.gen_bool(0.2) {
                let target = clients[who].relayed + 1;
                clients[who].until_relayed(target).await;
            }
        }
        for c in clients.iter_mut() {
            c.until_relayed(sent).await;
        }
        let text = clients[0].text(&cell_id);
        for c in &clients {
            assert_eq!(c.text(&cell_id), text, "seed {seed}: clients diverged");
        }
        for c in &clients {
            for other in &c.others {
                assert_ne!(other["type"], "error", "seed {seed}: {other}");
            }
        }
        let n = s.notebook(A, &nb).await;
        assert_eq!(cell(&n, &cell_id)["code"], text, "seed {seed}: live code");
        merged.push((cell_id, text));
    }
    // Durable: a restarted server serves the merged text of every cell from the database.
    tokio::time::sleep(Duration::from_millis(600)).await;
    s.restart().await;
    let n = s.notebook(A, &nb).await;
    for (id, text) in &merged {
        assert_eq!(&cell(&n, id)["code"], text, "stored code of {id}");
    }
    s.finish().await;
}

#[actix_web::test]
async fn concurrent_random_edits_converge_sqlite() {
    converge_on(Backend::Sqlite).await;
}

#[actix_web::test]
async fn concurrent_random_edits_converge_postgres() {
    converge_on(Backend::Postgres).await;
}

async fn rest_edits_on(backend: Backend) {
    let s = TestServer::start(backend).await;
    let nb = s.new_empty_notebook(A, "rest").await;
    let cell_id = s.new_cell(A, &nb, "python", "x = 1\ny = 2\n").await;
    let rev0 = s.notebook(A, &nb).await["revision"].as_i64().unwrap();
    let mut c = YClient::join(&s.base, &nb, &token_for(A), 1).await;
    assert_eq!(c.text(&cell_id), "x = 1\ny = 2\n");

    // A REST edit reaches the Yjs client as an update.
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{cell_id}"),
            A,
            json!({"code": "x = 10\ny = 2\n", "expected_revision": rev0}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    c.until_relayed(1).await;
    assert_eq!(c.text(&cell_id), "x = 10\ny = 2\n");
    let rev1 = body["revision"].as_i64().unwrap();

    // Co-edits (even unsaved ones) make a REST edit against the older revision a conflict.
    c.edit(&cell_id, |t, txn| t.insert(txn, 0, "# hi\n")).await;
    c.until_relayed(2).await;
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{cell_id}"),
            A,
            json!({"code": "lost", "expected_revision": rev1}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let n = s.notebook(A, &nb).await;
    assert_eq!(cell(&n, &cell_id)["code"], "# hi\nx = 10\ny = 2\n");
    // With the current revision it goes through, as a minimal change merged with the text.
    let rev = n["revision"].as_i64().unwrap();
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{cell_id}"),
            A,
            json!({"code": "# hi\nx = 10\ny = 3\n", "expected_revision": rev}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    c.until_relayed(3).await;
    assert_eq!(c.text(&cell_id), "# hi\nx = 10\ny = 3\n");
    s.finish().await;
}

#[actix_web::test]
async fn rest_edits_reach_yjs_clients_sqlite() {
    rest_edits_on(Backend::Sqlite).await;
}

#[actix_web::test]
async fn rest_edits_reach_yjs_clients_postgres() {
    rest_edits_on(Backend::Postgres).await;
}

#[actix_web::test]
async fn malformed_updates_are_refused_and_harmless() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(A, "bad").await;
    let cell_id = s.new_cell(A, &nb, "python", "keep = 1").await;
    let mut c = YClient::join(&s.base, &nb, &token_for(A), 1).await;
    let mut rng = StdRng::seed_from_u64(42);
    let mut bad = vec![
        json!({"type": "yjs", "cellId": cell_id, "update": "%%% not base64"}),
        json!({"type": "yjs", "cellId": cell_id}),
        json!({"type": "yjs", "update": "AAA="}),
        json!({"type": "yjs", "cellId": "no-such-cell", "update": "AAA="}),
        json!({"type": "yjs", "cellId": cell_id, "update": BASE64.encode(vec![7u8; 300 * 1024])}),
    ];
    let certainly_bad = bad.len();
    for len in [1, 3, 8, 40, 200] {
        let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        bad.push(json!({"type": "yjs", "cellId": cell_id, "update": BASE64.encode(garbage)}));
    }
    for (i, message) in bad.iter().enumerate() {
        c.ws.send(message.clone()).await;
        // A marker answered by the room after `message`: everything before it answers that.
        c.ws.send(json!({"type": "focus", "cellId": "marker"}))
            .await;
        let seen =
            c.ws.until(T, |v| {
                v["type"] == "error"
                    && v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("focus"))
            })
            .await;
        let message: String = message.to_string().chars().take(200).collect();
        // A random byte string may happen to be a harmless valid update; otherwise an error.
        assert!(seen.len() <= 2, "{message}: {seen:?}");
        if i < certainly_bad {
            assert!(
                seen.len() == 2 && seen[0]["type"] == "error",
                "{message}: {seen:?}"
            );
        }
        if let [answer, _] = seen.as_slice() {
            assert!(
                answer["type"] == "error" || answer["type"] == "yjs",
                "{message}: {answer}"
            );
        }
    }
    // The socket and the document are fine: an ordinary edit goes through.
    c.edit(&cell_id, |t, txn| t.insert(txn, 8, "\nmore = 2"))
        .await;
    let v = c.next_yjs().await;
    assert!(v["seq"].is_u64());
    let n = s.notebook(A, &nb).await;
    assert_eq!(cell(&n, &cell_id)["code"], "keep = 1\nmore = 2");
    assert_eq!(c.text(&cell_id), "keep = 1\nmore = 2");
    s.finish().await;
}

#[actix_web::test]
async fn a_run_uses_the_text_as_of_the_run_request() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(A, "run").await;
    let cell_id = s.new_cell(A, &nb, "python", "print(1)").await;
    let mut c = YClient::join(&s.base, &nb, &token_for(A), 1).await;
    c.set_text(&cell_id, "print('typed just now')").await;
    c.ws.send(json!({"type": "run_cell", "cellId": cell_id}))
        .await;
    let seen =
        c.ws.until(Duration::from_secs(120), |v| {
            v["type"] == "cell_status" && matches!(v["status"].as_str(), Some("success" | "error"))
        })
        .await;
    let stdout: String = seen
        .iter()
        .filter(|v| v["type"] == "cell_stdout")
        .filter_map(|v| v["data"].as_str())
        .collect();
    assert_eq!(stdout, "typed just now\n", "{seen:#?}");
    s.finish().await;
}

#[actix_web::test]
async fn other_users_cannot_co_edit() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(A, "mine").await;
    s.new_cell(A, &nb, "python", "secret = 1").await;
    // Someone else's notebook: refused at join, never a document.
    let mut c = common::ws::WsClient::join(&s.base, &nb, &token_for(B)).await;
    let message = c.expect_error_then_close(1008).await;
    assert_eq!(message, "Notebook not found");
    s.finish().await;
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The JS `yjs` package (tests/browser/node_modules, installed by scripts/setup-browser.sh)
/// joins under node, sees the text, types, and the room merges it with a Rust client's edit.
#[actix_web::test]
async fn a_third_party_js_yjs_client_co_edits() {
    let script = repo().join("tests/browser/yjs_client.mjs");
    let yjs = repo().join("tests/browser/node_modules/yjs/package.json");
    assert!(
        yjs.exists(),
        "the JS yjs package is missing: run scripts/setup-browser.sh"
    );
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(A, "js").await;
    let cell_id = s.new_cell(A, &nb, "python", "a = 1\n").await;
    let mut rust = YClient::join(&s.base, &nb, &token_for(A), 1).await;
    rust.edit(&cell_id, |t, txn| t.insert(txn, 6, "b = 2\n"))
        .await;
    rust.until_relayed(1).await;

    let ws_url = format!("{}/api/ws/notebooks/{nb}", s.base.replacen("http", "ws", 1));
    let token = token_for(A);
    let (target, append) = (cell_id.clone(), "c = 3  # from yjs\n".to_string());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            // Node 20 has WebSocket behind this flag (22 has it by default and accepts it).
            .arg("--experimental-websocket")
            .arg(script)
            .args([&ws_url, &token, &target, &append])
            .output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The JS client saw the text as merged so far, then its own edit appended.
    assert!(stdout.contains("saw: \"a = 1\\nb = 2\\n\""), "{stdout}");
    rust.until_relayed(2).await;
    let expected = "a = 1\nb = 2\nc = 3  # from yjs\n";
    assert_eq!(rust.text(&cell_id), expected);
    let n = s.notebook(A, &nb).await;
    assert_eq!(cell(&n, &cell_id)["code"], expected);
    s.finish().await;
}

#[actix_web::test]
async fn typing_announces_cell_updated_per_pause_not_per_keystroke() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(A, "typing").await;
    let cell_id = s.new_cell(A, &nb, "python", "").await;
    let mut typist = YClient::join(&s.base, &nb, &token_for(A), 1).await;
    // A plain client: sees `cell_updated`, not the Yjs updates.
    let mut watcher = common::ws::WsClient::join(&s.base, &nb, &token_for(A)).await;
    let typed = "value = 12345 + 678";
    for (i, ch) in typed.chars().enumerate() {
        let piece = ch.to_string();
        typist
            .edit(&cell_id, move |t, txn| t.insert(txn, i as u32, &piece))
            .await;
    }
    // A run right after typing: its statuses come after the edit's announcement.
    typist
        .ws
        .send(json!({"type": "run_cell", "cellId": cell_id}))
        .await;
    let seen = watcher
        .until(Duration::from_secs(120), |v| {
            v["type"] == "cell_status" && matches!(v["status"].as_str(), Some("success" | "error"))
        })
        .await;
    let updates: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|v| v["type"] == "cell_updated")
        .collect();
    assert!(
        !updates.is_empty() && updates.len() < typed.len() / 2,
        "{} cell_updated for {} keystrokes",
        updates.len(),
        typed.len()
    );
    let last_update = seen
        .iter()
        .rposition(|v| v["type"] == "cell_updated")
        .expect("an update");
    assert_eq!(seen[last_update]["cell"]["code"], typed);
    let running = seen
        .iter()
        .position(|v| v["type"] == "cell_status" && v["status"] == "running")
        .expect("running");
    assert!(
        last_update < running,
        "the edit is announced before the run: {seen:#?}"
    );
    let seqs: Vec<u64> = seen.iter().filter_map(|v| v["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    s.finish().await;
}

async fn offline_edits_merge_on(backend: Backend) {
    let s = TestServer::start(backend).await;
    let nb = s.new_empty_notebook(A, "offline").await;
    let cell_id = s.new_cell(A, &nb, "python", "x = 1\n").await;
    let token = token_for(A);
    let mut away = YClient::join(&s.base, &nb, &token, 1).await;
    let mut stay = YClient::join(&s.base, &nb, &token, 1).await;
    // `away` loses its connection, then types; `stay` types meanwhile.
    away.ws.stream.close(None).await.expect("close");
    away.local_edit(&cell_id, |t, txn| t.insert(txn, 0, "# offline\n"));
    stay.edit(&cell_id, |t, txn| t.insert(txn, 6, "y = 2\n"))
        .await;
    stay.until_relayed(1).await;
    away.rejoin(&s.base, &nb, &token, 1).await;
    // Both edits survive, everywhere, and are stored.
    let want = "# offline\nx = 1\ny = 2\n";
    stay.until_relayed(2).await;
    assert_eq!(stay.text(&cell_id), want);
    assert_eq!(away.text(&cell_id), want);
    for _ in 0..100 {
        if cell(&s.notebook(A, &nb).await, &cell_id)["code"] == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cell(&s.notebook(A, &nb).await, &cell_id)["code"], want);
    s.finish().await;
}

#[actix_web::test]
async fn offline_edits_merge_on_rejoin_sqlite() {
    offline_edits_merge_on(Backend::Sqlite).await;
}

#[actix_web::test]
async fn offline_edits_merge_on_rejoin_postgres() {
    offline_edits_merge_on(Backend::Postgres).await;
}
