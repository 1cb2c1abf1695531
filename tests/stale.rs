//! Stale cells, run all / run stale, lazy mode and the first empty cell, over REST and
//! WebSocket with real kernels, on both database backends.

mod common;

use std::time::Duration;

use common::cells::{cell, run, run_settled, settle};
use common::tokens::token_for;
use common::ws::WsClient;
use common::TestServer;
use serde_json::{json, Value};

const U: &str = "user_stale";

fn status(n: &Value, id: &str) -> String {
    cell(n, id)["status"].as_str().unwrap_or("").to_string()
}

/// The cell's `text/plain` output ("" when none).
fn text(n: &Value, id: &str) -> String {
    cell(n, id)["outputs"]
        .as_array()
        .and_then(|outs| outs.iter().find(|o| o["mime_type"] == "text/plain"))
        .and_then(|o| o["data"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn edit(s: &TestServer, nb: &str, id: &str, code: &str) {
    let (code_status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{id}"),
            U,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(code_status, 200, "{body}");
}

/// `POST /api/notebooks/{nb}/run{query}`, asserting 202, then waits until nothing runs.
async fn run_all(s: &TestServer, nb: &str, query: &str) -> Value {
    let (code, body) = s
        .post(&format!("/api/notebooks/{nb}/run{query}"), U, json!({}))
        .await;
    assert_eq!(code, 202, "{body}");
    settle(s, U, nb).await
}

async fn set_lazy(s: &TestServer, nb: &str, lazy: bool) {
    let (code, body) = s
        .put(
            &format!("/api/notebooks/{nb}/lazy"),
            U,
            json!({ "lazy": lazy }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["lazy"], lazy);
}

/// A chain a -> b -> c plus an independent cell; each shows a fresh value per run
/// (a clock reading), so a test can tell whether it ran again.
struct Chain {
    nb: String,
    a: String,
    b: String,
    c: String,
    other: String,
}

async fn chain(s: &TestServer, name: &str) -> Chain {
    let nb = s.new_notebook(U, name).await;
    let a = s
        .new_cell(U, &nb, "python", "import time\nx = time.monotonic_ns()\nx")
        .await;
    let b = s
        .new_cell(U, &nb, "python", "y = (x, time.monotonic_ns())\ny[1]")
        .await;
    let c = s
        .new_cell(U, &nb, "python", "z = y[0] + 1\n(z, time.monotonic_ns())")
        .await;
    let other = s
        .new_cell(
            U,
            &nb,
            "python",
            "import time as clock\nclock.monotonic_ns()",
        )
        .await;
    Chain { nb, a, b, c, other }
}

both_backends!(
    new_notebook_has_one_empty_python_cell,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "fresh").await;
        let n = s.notebook(U, &nb).await;
        let cells = n["cells"].as_array().expect("cells");
        assert_eq!(cells.len(), 1, "{n:#}");
        assert_eq!(cells[0]["type"], "python");
        assert_eq!(cells[0]["code"], "");
        assert_eq!(cells[0]["status"], "idle");
        assert_eq!(n["lazy"], false);
        // It is a real, persisted cell: it runs, and survives a restart of the server.
        let id = cells[0]["id"].as_str().expect("id").to_string();
        assert_eq!(run_settled(&s, U, &nb, &id).await["status"], "success");
        s.finish().await;
    }
);

both_backends!(
    edit_marks_the_cell_and_its_descendants_stale,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let ch = chain(&s, "edit").await;
        run(&s, U, &ch.nb, &ch.a).await;
        let before = settle(&s, U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c] {
            assert_eq!(status(&before, id), "success", "{before:#}");
        }
        let mut tab = WsClient::join(&s.base, &ch.nb, &token_for(U)).await;
        edit(&s, &ch.nb, &ch.b, "y = (x, 1)\ny[1]").await;
        // Both stale cells are announced like any other status.
        let mut announced = Vec::new();
        let events = tab
            .until(Duration::from_secs(10), |v| {
                v["type"] == "cell_status" && v["status"] == "stale" && v["cellId"] == ch.c
            })
            .await;
        for v in &events {
            if v["type"] == "cell_status" && v["status"] == "stale" {
                announced.push(v["cellId"].as_str().unwrap_or("").to_string());
            }
        }
        assert!(announced.contains(&ch.b), "{events:#?}");
        let n = s.notebook(U, &ch.nb).await;
        assert_eq!(status(&n, &ch.a), "success", "an ancestor is not stale");
        assert_eq!(status(&n, &ch.b), "stale");
        assert_eq!(
            status(&n, &ch.c),
            "stale",
            "a descendant of a stale cell is stale"
        );
        assert_eq!(
            status(&n, &ch.other),
            "idle",
            "a cell that never ran stays idle"
        );
        // The outputs of the last run are kept.
        assert_eq!(text(&n, &ch.c), text(&before, &ch.c));
        assert!(!text(&n, &ch.c).is_empty());
        // Saving the same code again changes nothing.
        run(&s, U, &ch.nb, &ch.b).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&n, &ch.b), "success");
        assert_eq!(status(&n, &ch.c), "success");
        edit(&s, &ch.nb, &ch.b, "y = (x, 1)\ny[1]").await;
        let n = s.notebook(U, &ch.nb).await;
        assert_eq!(status(&n, &ch.b), "success", "{n:#}");
        // Deleting a cell makes the cells that read its names stale.
        let (code, _) = s
            .delete(&format!("/api/notebooks/{}/cells/{}", ch.nb, ch.a), U)
            .await;
        assert_eq!(code, 200);
        let n = s.notebook(U, &ch.nb).await;
        assert_eq!(status(&n, &ch.b), "stale");
        assert_eq!(status(&n, &ch.c), "stale");
        s.finish().await;
    }
);

both_backends!(
    kernel_restart_makes_every_run_cell_stale,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let ch = chain(&s, "restart").await;
        let failing = s.new_cell(U, &ch.nb, "python", "1 / 0").await;
        run(&s, U, &ch.nb, &ch.a).await;
        run(&s, U, &ch.nb, &failing).await;
        let before = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&before, &failing), "error");
        let (code, _) = s
            .post(&format!("/api/notebooks/{}/restart", ch.nb), U, json!({}))
            .await;
        assert_eq!(code, 202);
        let n = settle(&s, U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c, &failing] {
            assert_eq!(status(&n, id), "stale", "{n:#}");
        }
        assert_eq!(status(&n, &ch.other), "idle", "it never ran");
        // Outputs and errors are kept for the user to see (dimmed).
        assert_eq!(text(&n, &ch.c), text(&before, &ch.c));
        assert!(cell(&n, &failing)["error"]
            .as_str()
            .unwrap_or("")
            .contains("ZeroDivisionError"));
        // Running the leaf runs its stale ancestors first, in the new kernel: no NameError.
        run(&s, U, &ch.nb, &ch.c).await;
        let n = settle(&s, U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c] {
            assert_eq!(status(&n, id), "success", "{n:#}");
        }
        assert_ne!(text(&n, &ch.a), text(&before, &ch.a), "a ran again");
        assert_eq!(
            status(&n, &failing),
            "stale",
            "unrelated cells are left alone"
        );
        s.finish().await;
    }
);

both_backends!(
    server_restart_makes_every_run_cell_stale,
    |backend| async move {
        let mut s = TestServer::start(backend).await;
        let ch = chain(&s, "server restart").await;
        run(&s, U, &ch.nb, &ch.a).await;
        let before = settle(&s, U, &ch.nb).await;
        s.restart().await;
        let n = s.notebook(U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c] {
            assert_eq!(status(&n, id), "stale", "{n:#}");
            assert_eq!(cell(&n, id)["outputs"], cell(&before, id)["outputs"]);
        }
        assert_eq!(status(&n, &ch.other), "idle");
        run(&s, U, &ch.nb, &ch.b).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&n, &ch.a), "success", "the stale ancestor ran first");
        assert_eq!(status(&n, &ch.b), "success", "{n:#}");
        assert_eq!(status(&n, &ch.c), "success", "descendants run as usual");
        s.finish().await;
    }
);

both_backends!(
    running_a_cell_runs_stale_and_missing_ancestors_first,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let ch = chain(&s, "ancestors").await;
        // Nothing ran yet: running the leaf runs the whole chain first.
        run(&s, U, &ch.nb, &ch.c).await;
        let first = settle(&s, U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c] {
            assert_eq!(status(&first, id), "success", "{first:#}");
        }
        assert_eq!(status(&first, &ch.other), "idle");
        // An edited ancestor runs before the leaf, with its new code.
        edit(&s, &ch.nb, &ch.a, "import time\nx = 41\nx").await;
        run(&s, U, &ch.nb, &ch.c).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(text(&n, &ch.a), "41");
        assert!(text(&n, &ch.c).starts_with("(42, "), "{n:#}");
        // A run whose ancestor fails blocks the cell instead of reading a missing name.
        edit(&s, &ch.nb, &ch.a, "import time\nx = 1 / 0").await;
        run(&s, U, &ch.nb, &ch.c).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&n, &ch.a), "error");
        assert_eq!(status(&n, &ch.c), "blocked", "{n:#}");
        s.finish().await;
    }
);

both_backends!(run_all_and_run_stale, |backend| async move {
    let s = TestServer::start(backend).await;
    let ch = chain(&s, "run all").await;
    let n = run_all(&s, &ch.nb, "").await;
    for c in n["cells"].as_array().expect("cells") {
        assert_eq!(c["status"], "success", "every cell ran: {n:#}");
    }
    let before = n;
    edit(&s, &ch.nb, &ch.b, "y = (x, time.monotonic_ns())\ny[1] + 0").await;
    let n = run_all(&s, &ch.nb, "?only=stale").await;
    assert_eq!(status(&n, &ch.b), "success");
    assert_eq!(status(&n, &ch.c), "success");
    assert_ne!(text(&n, &ch.b), text(&before, &ch.b), "the stale cell ran");
    assert_ne!(
        text(&n, &ch.c),
        text(&before, &ch.c),
        "with its descendants"
    );
    assert_eq!(
        text(&n, &ch.a),
        text(&before, &ch.a),
        "a fresh ancestor does not"
    );
    assert_eq!(
        text(&n, &ch.other),
        text(&before, &ch.other),
        "nor does an unrelated cell"
    );
    // Nothing stale: nothing runs.
    let again = run_all(&s, &ch.nb, "?only=stale").await;
    assert_eq!(again["cells"], n["cells"]);
    // After a kernel restart, "run stale" brings everything back.
    s.post(&format!("/api/notebooks/{}/restart", ch.nb), U, json!({}))
        .await;
    let n = run_all(&s, &ch.nb, "?only=stale").await;
    for c in n["cells"].as_array().expect("cells") {
        assert_eq!(c["status"], "success", "{n:#}");
    }
    // Bad input changes nothing; another user's notebook is missing.
    let (code, body) = s
        .post(
            &format!("/api/notebooks/{}/run?only=everything", ch.nb),
            U,
            json!({}),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(body["detail"].as_str().is_some(), "{body}");
    let (code, _) = s
        .post(
            &format!("/api/notebooks/{}/run", ch.nb),
            "intruder",
            json!({}),
        )
        .await;
    assert_eq!(code, 404);
    let (code, _) = s.post("/api/notebooks/missing/run", U, json!({})).await;
    assert_eq!(code, 404);
    s.finish().await;
});

both_backends!(
    lazy_mode_marks_descendants_stale_instead_of_running_them,
    |backend| async move {
        let mut s = TestServer::start(backend).await;
        let ch = chain(&s, "lazy").await;
        run(&s, U, &ch.nb, &ch.a).await;
        let before = settle(&s, U, &ch.nb).await;
        let mut tab = WsClient::join(&s.base, &ch.nb, &token_for(U)).await;
        set_lazy(&s, &ch.nb, true).await;
        let events = tab
            .until(Duration::from_secs(10), |v| v["type"] == "notebook_updated")
            .await;
        let update = events.last().expect("an event");
        assert_eq!(update["lazy"], true, "{update}");
        assert_eq!(s.notebook(U, &ch.nb).await["lazy"], true);
        // Running a cell runs it alone; its descendants turn stale, outputs kept.
        run(&s, U, &ch.nb, &ch.a).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&n, &ch.a), "success");
        assert_ne!(text(&n, &ch.a), text(&before, &ch.a));
        assert_eq!(status(&n, &ch.b), "stale", "{n:#}");
        assert_eq!(status(&n, &ch.c), "stale");
        assert_eq!(text(&n, &ch.b), text(&before, &ch.b), "b did not run");
        let after_a = n;
        // Running the leaf runs its stale ancestor b first, but not the fresh a.
        run(&s, U, &ch.nb, &ch.c).await;
        let n = settle(&s, U, &ch.nb).await;
        assert_eq!(status(&n, &ch.b), "success");
        assert_eq!(status(&n, &ch.c), "success");
        assert_eq!(
            text(&n, &ch.a),
            text(&after_a, &ch.a),
            "a did not run again"
        );
        // Editing marks the cell and its descendants stale, as always.
        edit(&s, &ch.nb, &ch.a, "import time\nx = 5\nx").await;
        let n = s.notebook(U, &ch.nb).await;
        for id in [&ch.a, &ch.b, &ch.c] {
            assert_eq!(status(&n, id), "stale", "{n:#}");
        }
        // "Run stale" in lazy mode runs exactly the stale cells, in order.
        let n = run_all(&s, &ch.nb, "?only=stale").await;
        assert!(text(&n, &ch.c).starts_with("(6, "), "{n:#}");
        // The setting is persisted.
        s.restart().await;
        assert_eq!(s.notebook(U, &ch.nb).await["lazy"], true);
        set_lazy(&s, &ch.nb, false).await;
        assert_eq!(s.notebook(U, &ch.nb).await["lazy"], false);
        // Bad input is refused; another user's notebook is missing.
        for body in [json!({"lazy": "yes"}), json!({}), json!({"lazy": 1})] {
            let (code, answer) = s
                .put(&format!("/api/notebooks/{}/lazy", ch.nb), U, body.clone())
                .await;
            assert_eq!(code, 422, "{body}: {answer}");
        }
        let (code, _) = s
            .put(
                &format!("/api/notebooks/{}/lazy", ch.nb),
                "intruder",
                json!({"lazy": true}),
            )
            .await;
        assert_eq!(code, 404);
        assert_eq!(s.notebook(U, &ch.nb).await["lazy"], false);
        s.finish().await;
    }
);

both_backends!(
    a_cell_edited_while_it_runs_ends_stale,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "edited mid-run").await;
        let slow = s
            .new_cell(
                U,
                &nb,
                "python",
                "import time\ntime.sleep(1.5)\nslow = 1\nslow",
            )
            .await;
        run(&s, U, &nb, &slow).await;
        // Wait until it runs, then change its code under it.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while status(&s.notebook(U, &nb).await, &slow) != "running" {
            assert!(std::time::Instant::now() < deadline, "never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        edit(
            &s,
            &nb,
            &slow,
            "import time\ntime.sleep(1.5)\nslow = 2\nslow",
        )
        .await;
        let n = settle(&s, U, &nb).await;
        // Its output came from the old code: kept, but stale.
        assert_eq!(status(&n, &slow), "stale", "{n:#}");
        assert_eq!(text(&n, &slow), "1", "{n:#}");
        let n = run_settled(&s, U, &nb, &slow).await;
        assert_eq!(n["status"], "success", "{n:#}");
        s.finish().await;
    }
);
