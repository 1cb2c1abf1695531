//! Running cells over REST and waiting for them to finish.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::TestServer;

/// GETs the notebook until no cell is queued or running (fails after two minutes).
pub async fn settle(s: &TestServer, user: &str, nb: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = s.notebook(user, nb).await;
        let busy = n["cells"].as_array().is_some_and(|cells| {
            cells
                .iter()
                .any(|c| matches!(c["status"].as_str(), Some("queued" | "running")))
        });
        if !busy {
            return n;
        }
        assert!(Instant::now() < deadline, "never settled: {n:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cell `id` of a notebook document.
pub fn cell<'a>(n: &'a Value, id: &str) -> &'a Value {
    n["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no cell {id} in {n:#}"))
}

/// Starts a run of `cell` (asserting 202).
pub async fn run(s: &TestServer, user: &str, nb: &str, cell: &str) {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            user,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Runs `cell` and returns it once the notebook settled.
pub async fn run_settled(s: &TestServer, user: &str, nb: &str, id: &str) -> Value {
    run(s, user, nb, id).await;
    let n = settle(s, user, nb).await;
    cell(&n, id).clone()
}

/// The cell's error text ("" when none).
pub fn error_of(cell: &Value) -> String {
    cell["error"].as_str().unwrap_or("").to_string()
}
