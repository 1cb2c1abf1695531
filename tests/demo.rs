//! The demo notebook a first-time user gets runs end to end: Python, pandas, matplotlib and an
//! embedded SQL cell over the DataFrame.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{json, Value};

const U: &str = "user_demo";

fn settled(status: &Value) -> bool {
    !matches!(status.as_str(), Some("queued" | "running"))
}

both_backends!(demo_runs_end_to_end, |backend| async move {
    let s = TestServer::start(backend).await;
    let (status, list) = s.get("/api/notebooks", U).await;
    assert_eq!(status, 200, "{list}");
    let nb = list["notebooks"][0]["id"]
        .as_str()
        .expect("the demo")
        .to_string();
    let demo = s.notebook(U, &nb).await;
    // Nobody presses run: the demo runs itself when first opened.
    assert!(demo["cells"][0]["id"].is_string(), "{demo:#}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let notebook = loop {
        let n = s.notebook(U, &nb).await;
        let cells = n["cells"].as_array().expect("cells").clone();
        if cells.iter().all(|c| c["status"] == "success") {
            break n;
        }
        let stuck = cells
            .iter()
            .all(|c| settled(&c["status"]) && c["status"] != "idle");
        assert!(!stuck, "a demo cell failed: {n:#}");
        assert!(Instant::now() < deadline, "the demo never finished: {n:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cells = notebook["cells"].as_array().expect("cells");
    let mimes: Vec<&str> = cells
        .iter()
        .flat_map(|c| c["outputs"].as_array().into_iter().flatten())
        .filter_map(|o| o["mime_type"].as_str())
        .collect();
    assert!(mimes.contains(&"image/png"), "a chart: {mimes:?}");
    let sql = cells
        .iter()
        .find(|c| c["type"] == "sql")
        .expect("a SQL cell");
    let table = &sql["outputs"][0]["data"];
    assert_eq!(table["columns"], json!(["n", "value", "scaled"]), "{sql:#}");
    // df has n = 1..5 and value = n * 15; the query keeps n >= 2 and scales by x = 10.
    assert_eq!(table["rows"][0], json!([2, 30, 300]), "{sql:#}");
    assert_eq!(table["rows"].as_array().map(Vec::len), Some(4));
    s.finish().await;
});
