//! Moving cells: `POST .../cells/{id}/move`, its errors, the `cell_moved` broadcast, the
//! persisted order, and that order never changes what runs.

mod common;

use std::time::Duration;

use common::cells::{cell, run, settle};
use common::tokens::token_for;
use common::ws::WsClient;
use common::{Backend, TestServer};
use serde_json::{json, Value};

const U: &str = "user_move";
const OTHER: &str = "user_move_other";

/// Owned ids, so `order(..) == ids(&[&a, &b])` reads as the expected order.
fn ids(list: &[&String]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The notebook's cell ids in order.
fn order(n: &Value) -> Vec<String> {
    n["cells"]
        .as_array()
        .map(|cells| {
            cells
                .iter()
                .filter_map(|c| c["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn move_cell(s: &TestServer, user: &str, nb: &str, id: &str, body: Value) -> (u16, Value) {
    s.post(&format!("/api/notebooks/{nb}/cells/{id}/move"), user, body)
        .await
}

both_backends!(move_reorders_and_persists, |backend: Backend| async move {
    let mut s = TestServer::start(backend).await;
    let nb = s.new_empty_notebook(U, "move").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let b = s.new_cell(U, &nb, "python", "b = 2").await;
    let c = s.new_cell(U, &nb, "markdown", "# c").await;
    let d = s.new_cell(U, &nb, "sql", "SELECT 1").await;
    let before = s.notebook(U, &nb).await;
    let rev0 = before["revision"].as_i64().unwrap_or(0);

    // Down past two cells.
    let (status, body) = move_cell(&s, U, &nb, &a, json!({"after_cell_id": c})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    let rev1 = body["revision"].as_i64().unwrap_or(0);
    assert!(rev1 > rev0, "{body}");
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&b, &c, &a, &d]));

    // Up to the top, and to the very end.
    let (status, _) = move_cell(&s, U, &nb, &d, json!({"before_cell_id": b})).await;
    assert_eq!(status, 200);
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&d, &b, &c, &a]));
    let (status, _) = move_cell(&s, U, &nb, &b, json!({"after_cell_id": a})).await;
    assert_eq!(status, 200);
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&d, &c, &a, &b]));
    // Where it already is: fine, nothing moves.
    let (status, _) = move_cell(&s, U, &nb, &a, json!({"before_cell_id": b})).await;
    assert_eq!(status, 200);
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&d, &c, &a, &b]));

    // A new cell after a moved one lands where the dense positions say.
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells"),
            U,
            json!({"type": "python", "after_cell_id": c, "code": "e = 5"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let e = body["cell_id"].as_str().unwrap_or_default().to_string();
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&d, &c, &e, &a, &b]));

    // The order survives a server restart (it was stored, not just held by the room).
    s.restart().await;
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&d, &c, &e, &a, &b]));
    s.finish().await;
});

both_backends!(move_errors_change_nothing, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_empty_notebook(U, "move errors").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let b = s.new_cell(U, &nb, "python", "b = 2").await;
    let other_nb = s.new_empty_notebook(U, "another").await;
    let foreign = s.new_cell(U, &other_nb, "python", "z = 0").await;
    let rev = s.notebook(U, &nb).await["revision"].clone();

    let cases: Vec<(&str, Value, u16)> = vec![
        (&a, json!({}), 422),
        (&a, json!({"before_cell_id": b, "after_cell_id": b}), 422),
        (&a, json!({"after_cell_id": a}), 422),
        (&a, json!({"after_cell_id": "no-such-cell"}), 404),
        (&a, json!({"before_cell_id": "no-such-cell"}), 404),
        // A cell of another notebook is no target here.
        (&a, json!({"before_cell_id": foreign}), 404),
        ("no-such-cell", json!({"after_cell_id": b}), 404),
        (&a, json!({"after_cell_id": 7}), 400),
    ];
    for (id, body, want) in cases {
        let (status, answer) = move_cell(&s, U, &nb, id, body.clone()).await;
        // A body of the wrong shape is refused before anything else, as 400 or 422.
        if want == 400 {
            assert!(matches!(status, 400 | 422), "{body}: {status} {answer}");
        } else {
            assert_eq!(status, want, "{body}: {answer}");
        }
        assert!(answer["detail"].is_string(), "{body}: {answer}");
    }
    let n = s.notebook(U, &nb).await;
    assert_eq!(order(&n), ids(&[&a, &b]));
    assert_eq!(n["revision"], rev, "a refused move bumps nothing");

    // Someone else's notebook answers like a missing one.
    let (status, _) = move_cell(&s, OTHER, &nb, &a, json!({"after_cell_id": b})).await;
    assert_eq!(status, 404);
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&a, &b]));
    s.finish().await;
});

#[actix_web::test]
async fn move_is_broadcast_with_the_new_index() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "move broadcast").await;
    let a = s.new_cell(U, &nb, "python", "a = 1").await;
    let b = s.new_cell(U, &nb, "python", "b = 2").await;
    let c = s.new_cell(U, &nb, "python", "c = 3").await;
    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;

    let (status, _) = move_cell(&s, U, &nb, &c, json!({"before_cell_id": a})).await;
    assert_eq!(status, 200);
    let events = tab
        .until(Duration::from_secs(10), |v| v["type"] == "cell_moved")
        .await;
    let moved = events.last().cloned().unwrap_or_default();
    assert_eq!(moved["cellId"], c.as_str(), "{moved}");
    assert_eq!(moved["index"], 0, "{moved}");
    assert!(moved["seq"].is_u64(), "{moved}");

    let (status, _) = move_cell(&s, U, &nb, &a, json!({"after_cell_id": b})).await;
    assert_eq!(status, 200);
    let events = tab
        .until(Duration::from_secs(10), |v| v["type"] == "cell_moved")
        .await;
    let moved = events.last().cloned().unwrap_or_default();
    assert_eq!(moved["cellId"], a.as_str(), "{moved}");
    assert_eq!(moved["index"], 2, "{moved}");
    assert_eq!(order(&s.notebook(U, &nb).await), ids(&[&c, &b, &a]));
    s.finish().await;
}

#[actix_web::test]
async fn order_never_changes_what_runs() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "move runs").await;
    let def = s.new_cell(U, &nb, "python", "x = 20").await;
    let use_ = s.new_cell(U, &nb, "python", "y = x + 1\nprint(y)").await;
    // The reader goes above its definition: the graph, not the order, decides.
    let (status, _) = move_cell(&s, U, &nb, &use_, json!({"before_cell_id": def})).await;
    assert_eq!(status, 200);
    run(&s, U, &nb, &def).await;
    let n = settle(&s, U, &nb).await;
    assert_eq!(order(&n), ids(&[&use_, &def]));
    assert_eq!(cell(&n, &def)["status"], "success", "{n:#}");
    assert_eq!(cell(&n, &use_)["status"], "success", "{n:#}");
    assert_eq!(cell(&n, &use_)["stdout"], "21\n");
    s.finish().await;
}

#[actix_web::test]
async fn graph_errors_follow_the_new_positions() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_empty_notebook(U, "move errors named").await;
    let one = s.new_cell(U, &nb, "python", "x = 1").await;
    let _mid = s.new_cell(U, &nb, "python", "m = 0").await;
    let three = s.new_cell(U, &nb, "python", "x = 2").await;
    let n = s.notebook(U, &nb).await;
    let err = cell(&n, &one)["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("also in cell 3"), "{err}");
    let (status, _) = move_cell(&s, U, &nb, &three, json!({"before_cell_id": one})).await;
    assert_eq!(status, 200);
    let n = s.notebook(U, &nb).await;
    let err = cell(&n, &one)["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("also in cell 1"), "{err}");
    let err = cell(&n, &three)["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("also in cell 2"), "{err}");
    s.finish().await;
}
