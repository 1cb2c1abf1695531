//! Completion, inspection and the variables table: answered by the notebook's real kernel
//! (jedi against its live namespace), also while a cell runs; variables over REST and WS.

mod common;

use std::time::{Duration, Instant};

use common::cells::{cell, run, run_settled, settle};
use common::tokens::token_for;
use common::ws::WsClient;
use common::TestServer;
use serde_json::{json, Value};

const U: &str = "user_introspect";
const OTHER: &str = "user_introspect_other";
const T: Duration = Duration::from_secs(30);

/// POSTs `complete` or `inspect` until the kernel is not busy (its first jedi call parses
/// pandas' sources, which can take longer than one answer's time limit on a loaded machine).
async fn ask(s: &TestServer, nb: &str, what: &str, code: &str, cursor: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = s
            .post(
                &format!("/api/notebooks/{nb}/{what}"),
                U,
                json!({"code": code, "cursor": cursor}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        if body["busy"] != true {
            return body;
        }
        assert!(Instant::now() < deadline, "kernel stayed busy: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn texts(answer: &Value) -> Vec<String> {
    answer["matches"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|x| x["text"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// GETs the variables until `done` holds for them (they arrive shortly after a run).
async fn variables_when(s: &TestServer, nb: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let (status, body) = s.get(&format!("/api/notebooks/{nb}/variables"), U).await;
        assert_eq!(status, 200, "{body}");
        if done(&body["variables"]) {
            return body["variables"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "variables never matched: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn var<'a>(vars: &'a Value, name: &str) -> Option<&'a Value> {
    vars.as_array()?.iter().find(|v| v["name"] == name)
}

both_backends!(completes_and_inspects_live_values, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "complete").await;
    let data = s
        .new_cell(
            U,
            &nb,
            "python",
            "import pandas as pd\n\
             df = pd.DataFrame({'a': [1, 2, 3], 'b': [4, 5, 6]})\n\
             def add(x, y=2):\n    \"\"\"Adds two numbers.\"\"\"\n    return x + y",
        )
        .await;
    assert_eq!(run_settled(&s, U, &nb, &data).await["status"], "success");

    // An attribute of a live DataFrame.
    let answer = ask(&s, &nb, "complete", "df.he", 5).await;
    assert!(texts(&answer).contains(&"head".to_string()), "{answer:#}");
    assert_eq!(answer["cursor_start"], 3, "{answer:#}");
    assert_eq!(answer["cursor_end"], 5);
    // A name defined by a cell, from the kernel's namespace (not from this code).
    let answer = ask(&s, &nb, "complete", "x = ad", 6).await;
    assert!(texts(&answer).contains(&"add".to_string()), "{answer:#}");
    // Private names only once an underscore is typed.
    let answer = ask(&s, &nb, "complete", "df.", 3).await;
    assert!(
        !texts(&answer).iter().any(|t| t.starts_with('_')),
        "{answer:#}"
    );
    // A cursor in the middle of the code, counted in code points (not UTF-8 bytes).
    let code = "s = 'é'\ndf.sh + 1";
    let at = code.chars().count() - 4;
    let answer = ask(&s, &nb, "complete", code, at).await;
    assert!(texts(&answer).contains(&"shape".to_string()), "{answer:#}");

    // Inspection: a cell's function, with its signature and docstring.
    let answer = ask(&s, &nb, "inspect", "add(1, 2)", 1).await;
    assert_eq!(answer["found"], true, "{answer:#}");
    assert_eq!(answer["name"], "add");
    assert!(
        answer["signature"]
            .as_str()
            .unwrap_or("")
            .contains("add(x, y=2)"),
        "{answer:#}"
    );
    assert_eq!(answer["docstring"], "Adds two numbers.");
    // Inside a call's parentheses: the function being called.
    let answer = ask(&s, &nb, "inspect", "df.head(", 8).await;
    assert_eq!(answer["found"], true, "{answer:#}");
    assert!(answer["signature"].as_str().unwrap_or("").contains("head("));
    assert!(!answer["docstring"].as_str().unwrap_or("").is_empty());
    // Nothing there.
    let answer = ask(&s, &nb, "inspect", "   ", 1).await;
    assert_eq!(answer["found"], false, "{answer:#}");
    s.finish().await;
});

both_backends!(completion_answers_while_a_cell_runs, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "busy").await;
    let first = s.new_cell(U, &nb, "python", "numbers = [3, 1, 2]").await;
    assert_eq!(run_settled(&s, U, &nb, &first).await["status"], "success");
    let slow = s
        .new_cell(U, &nb, "python", "import time\ntime.sleep(120)")
        .await;
    run(&s, U, &nb, &slow).await;
    let deadline = Instant::now() + T;
    while cell(&s.notebook(U, &nb).await, &slow)["status"] != "running" {
        assert!(Instant::now() < deadline, "the slow cell never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = ask(&s, &nb, "complete", "numbers.ap", 10).await;
    assert!(texts(&answer).contains(&"append".to_string()), "{answer:#}");
    let answer = ask(&s, &nb, "inspect", "numbers.sort", 10).await;
    assert_eq!(answer["found"], true, "{answer:#}");
    // Answered before the cell ended, not after it.
    assert_eq!(cell(&s.notebook(U, &nb).await, &slow)["status"], "running");
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    let n = settle(&s, U, &nb).await;
    assert_eq!(cell(&n, &slow)["status"], "error", "{n:#}");
    s.finish().await;
});

both_backends!(bad_input_and_other_users, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "bad").await;
    // No kernel yet: one is started for the request, and builtins complete.
    let answer = ask(&s, &nb, "complete", "pri", 3).await;
    assert!(texts(&answer).contains(&"print".to_string()), "{answer:#}");

    let huge = "x".repeat(300 * 1024);
    for what in ["complete", "inspect"] {
        let path = format!("/api/notebooks/{nb}/{what}");
        for bad in [
            json!({"code": "abc", "cursor": 4}),
            json!({"code": "é", "cursor": 2}),
            json!({"code": "abc", "cursor": -1}),
            json!({"code": 12, "cursor": 0}),
            json!({"code": "abc"}),
            json!({"cursor": 0}),
            json!({"code": huge, "cursor": 0}),
        ] {
            let (status, body) = s.post(&path, U, bad.clone()).await;
            assert_eq!(status, 422, "{what} {:?}: {body}", bad.get("cursor"));
            assert!(body["detail"].is_string(), "{body}");
        }
        // Another user's notebook answers exactly like a missing one.
        let body = json!({"code": "pri", "cursor": 3});
        let theirs = s.post(&path, OTHER, body.clone()).await;
        let missing = s
            .post(&format!("/api/notebooks/no-such/{what}"), OTHER, body)
            .await;
        assert_eq!(theirs.0, 404, "{}", theirs.1);
        assert_eq!(theirs, missing);
    }
    let theirs = s
        .get(&format!("/api/notebooks/{nb}/variables"), OTHER)
        .await;
    let missing = s.get("/api/notebooks/no-such/variables", OTHER).await;
    assert_eq!(theirs.0, 404, "{}", theirs.1);
    assert_eq!(theirs, missing);
    s.finish().await;
});

both_backends!(variables_after_a_run, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "vars").await;
    let (status, body) = s.get(&format!("/api/notebooks/{nb}/variables"), U).await;
    assert_eq!((status, body), (200, json!({"variables": []})));
    let data = s
        .new_cell(
            U,
            &nb,
            "python",
            "import pandas as pd\n\
             df = pd.DataFrame({'city': ['Oslo', 'Rome'], 'temp': [3.5, 20.0]})\n\
             big = 'x' * 1_000_000\n\
             n = 42\n\
             def f(a, b=1):\n    return a",
        )
        .await;
    let reader = s.new_cell(U, &nb, "python", "m = n + 1").await;
    let sql = s
        .new_cell(U, &nb, "sql", "SELECT city FROM df WHERE temp > 10")
        .await;
    assert_eq!(run_settled(&s, U, &nb, &data).await["status"], "success");
    let vars = variables_when(&s, &nb, |v| {
        ["df", "big", "n", "f", "pd", "m", "df_1"]
            .iter()
            .all(|name| var(v, name).is_some())
    })
    .await;
    let df = var(&vars, "df").cloned().unwrap_or_default();
    assert_eq!(df["type"], "DataFrame", "{vars:#}");
    assert_eq!(df["cell_id"], data.as_str());
    assert_eq!(df["summary"], "2 rows × 2 columns: city, temp", "{vars:#}");
    let big = var(&vars, "big").cloned().unwrap_or_default();
    assert_eq!(big["type"], "str");
    let summary = big["summary"].as_str().unwrap_or("");
    assert!(summary.chars().count() <= 120, "{summary}");
    assert!(summary.starts_with("'xxx"), "{summary}");
    assert_eq!(
        var(&vars, "n").map(|v| v["summary"].clone()),
        Some(json!("42"))
    );
    assert_eq!(
        var(&vars, "f").map(|v| v["type"].clone()),
        Some(json!("function"))
    );
    assert_eq!(
        var(&vars, "pd").map(|v| v["type"].clone()),
        Some(json!("module"))
    );
    let m = var(&vars, "m").cloned().unwrap_or_default();
    assert_eq!(
        (m["summary"].clone(), m["cell_id"].clone()),
        (json!("43"), json!(reader))
    );
    // The SQL cell's result, bound to its result name.
    let df_1 = var(&vars, "df_1").cloned().unwrap_or_default();
    assert_eq!(df_1["cell_id"], sql.as_str(), "{vars:#}");
    assert_eq!(df_1["summary"], "1 rows × 1 columns: city", "{vars:#}");
    // Sorted by name.
    let names: Vec<&str> = vars
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    s.finish().await;
});

both_backends!(variables_are_broadcast, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "vars-ws").await;
    let c1 = s.new_cell(U, &nb, "python", "x = 5").await;
    let mut ws = WsClient::join(&s.base, &nb, &token_for(U)).await;
    run(&s, U, &nb, &c1).await;
    let lists_x = |v: &Value| v["type"] == "variables" && var(&v["variables"], "x").is_some();
    let seen = ws.until(T, lists_x).await;
    let event = seen.last().cloned().unwrap_or_default();
    assert!(event["seq"].is_u64(), "{event}");
    let x = var(&event["variables"], "x").cloned().unwrap_or_default();
    assert_eq!(
        x,
        json!({"name": "x", "type": "int", "summary": "5", "cell_id": c1})
    );

    // Redefining the cell removes its old name at once, and the run brings the new one.
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{c1}"),
            U,
            json!({"code": "y = [1, 2]"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = ws
        .until(T, |v| {
            v["type"] == "variables" && v["variables"] == json!([])
        })
        .await;
    assert!(!seen.is_empty());
    run(&s, U, &nb, &c1).await;
    let seen = ws
        .until(T, |v| {
            v["type"] == "variables" && var(&v["variables"], "y").is_some()
        })
        .await;
    let y = var(&seen[seen.len() - 1]["variables"], "y")
        .cloned()
        .unwrap_or_default();
    assert_eq!(y["summary"], "2 items: [1, 2]", "{y}");

    // A restart loses every value: the table empties.
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/restart"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    ws.until(T, |v| {
        v["type"] == "variables" && v["variables"] == json!([])
    })
    .await;
    let (_, body) = s.get(&format!("/api/notebooks/{nb}/variables"), U).await;
    assert_eq!(body, json!({"variables": []}));
    s.finish().await;
});

both_backends!(a_run_of_many_cells_lists_every_name, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "chain").await;
    let root = s.new_cell(U, &nb, "python", "v0 = 0").await;
    for i in 1..12 {
        s.new_cell(U, &nb, "python", &format!("v{i} = v{} + 1", i - 1))
            .await;
    }
    run(&s, U, &nb, &root).await;
    let n = settle(&s, U, &nb).await;
    assert!(
        n["cells"]
            .as_array()
            // The notebook's first, empty cell never runs.
            .is_some_and(|c| c
                .iter()
                .all(|c| c["code"] == "" || c["status"] == "success")),
        "{n:#}"
    );
    // Refreshes coalesce while one is answered; none of the cells' names is lost.
    let vars = variables_when(&s, &nb, |v| {
        (0..12).all(|i| var(v, &format!("v{i}")).is_some())
    })
    .await;
    assert_eq!(
        var(&vars, "v11").map(|v| v["summary"].clone()),
        Some(json!("11"))
    );
    s.finish().await;
});

both_backends!(a_repr_that_never_returns_is_cut_off, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "slow-repr").await;
    let c = s
        .new_cell(
            U,
            &nb,
            "python",
            "class Slow:\n    def __repr__(self):\n        while True:\n            try:\n                pass\n            except Exception:\n                pass\n\
             slow = Slow()\nok = 1",
        )
        .await;
    assert_eq!(run_settled(&s, U, &nb, &c).await["status"], "success");
    let vars = variables_when(&s, &nb, |v| {
        var(v, "slow").is_some() && var(v, "ok").is_some()
    })
    .await;
    let slow = var(&vars, "slow").cloned().unwrap_or_default();
    assert_eq!(slow["type"], "Slow");
    assert_eq!(slow["summary"], "(no summary: its repr took too long)");
    assert_eq!(
        var(&vars, "ok").map(|v| v["summary"].clone()),
        Some(json!("1"))
    );
    // The kernel still answers, and later runs still update the table.
    let answer = ask(&s, &nb, "complete", "sl", 2).await;
    assert!(texts(&answer).contains(&"slow".to_string()), "{answer:#}");
    let later = s.new_cell(U, &nb, "python", "after = ok + 1").await;
    assert_eq!(run_settled(&s, U, &nb, &later).await["status"], "success");
    variables_when(&s, &nb, |v| var(v, "after").is_some()).await;
    s.finish().await;
});

both_backends!(a_kernel_that_cannot_answer_is_busy, |backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(U, "stuck").await;
    // Catastrophic backtracking: the regex engine runs in C holding the GIL, so no helper
    // thread of the kernel gets to answer until the cell is interrupted.
    let stuck = s
        .new_cell(
            U,
            &nb,
            "python",
            "import re\nwords = ['x']\nre.match(r'(a*)*b', 'a' * 40)",
        )
        .await;
    run(&s, U, &nb, &stuck).await;
    let deadline = Instant::now() + T;
    while cell(&s.notebook(U, &nb).await, &stuck)["status"] != "running" {
        assert!(Instant::now() < deadline, "the cell never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the cell time to reach the regex (its first two lines are quick).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for what in ["complete", "inspect"] {
        let (status, body) = s
            .post(
                &format!("/api/notebooks/{nb}/{what}"),
                U,
                json!({"code": "wor", "cursor": 3}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["busy"], true, "{what}: {body}");
    }
    assert_eq!(cell(&s.notebook(U, &nb).await, &stuck)["status"], "running");
    let (status, _) = s
        .post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    assert_eq!(status, 202);
    settle(&s, U, &nb).await;
    // Free again: the same kernel answers.
    let answer = ask(&s, &nb, "complete", "wor", 3).await;
    assert!(texts(&answer).contains(&"words".to_string()), "{answer:#}");
    s.finish().await;
});
