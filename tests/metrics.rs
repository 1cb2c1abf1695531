//! `GET /metrics`: the exposition is read with the Prometheus Python client's own parser
//! (`prometheus_client.parser`, from the test venv at `PYTHON`); counters move with real
//! HTTP requests, WebSocket sessions (a slow one included), cell runs on a real kernel (every
//! outcome, crashes and restarts), auth failures and assistant tool calls; routes are labelled
//! by template; gauges come back down; `METRICS_TOKEN` guards the endpoint.

mod common;

use std::time::{Duration, Instant};

use common::cells::{cell, run, settle};
use common::tokens::{self, token_for, valid_claims};
use common::ws::WsClient;
use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_metrics";
const T: Duration = Duration::from_secs(60);

/// Every metric family the server exposes, with its type.
const FAMILIES: &[(&str, &str)] = &[
    ("http_request_duration_seconds", "histogram"),
    ("rooms_open", "gauge"),
    ("kernels", "gauge"),
    ("kernel_starts", "counter"),
    ("kernel_start_failures", "counter"),
    ("kernel_crashes", "counter"),
    ("kernel_restarts", "counter"),
    ("cell_runs", "counter"),
    ("cell_run_duration_seconds", "histogram"),
    ("ws_sessions", "gauge"),
    ("ws_sessions_opened", "counter"),
    ("broadcasts", "counter"),
    ("ws_messages_queued", "counter"),
    ("ws_messages_dropped", "counter"),
    ("ws_slow_client_disconnects", "counter"),
    ("auth_failures", "counter"),
    ("assistant_tool_calls", "counter"),
    ("db_pool_wait_seconds", "histogram"),
];

/// The metrics are process-wide, and `cargo test` runs this file's tests as threads of one
/// process: one at a time, so before/after differences and gauges are exact.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads an exposition with `prometheus_client.parser`: `[{family, type, name, labels, value}]`.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;

/// One scrape, as the reference parser read it.
struct Scrape {
    samples: Vec<Value>,
    text: String,
}

impl Scrape {
    /// Parses `text`; a parser error, or a Python without `prometheus_client`, fails the test.
    fn parse(text: String) -> Scrape {
        let out = common::python::run(PARSER, text.as_bytes());
        assert!(
            out.status.success(),
            "prometheus_client could not parse /metrics (scripts/setup-python.sh installs it \
             from scripts/requirements-test.txt into the venv PYTHON names): {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let samples: Vec<Value> = serde_json::from_slice(&out.stdout).expect("parser JSON");
        Scrape { samples, text }
    }

    /// Sum of the samples named `name` (full name, e.g. `..._count`) carrying every `labels`
    /// pair; 0 when there is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let full = format!("reactive_notebook_{name}");
        self.samples
            .iter()
            .filter(|s| s["name"] == full.as_str())
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .filter_map(|s| s["value"].as_f64())
            .sum()
    }

    /// The type the parser gave a family (from its `# TYPE` line).
    fn family_type(&self, family: &str) -> Option<&str> {
        let full = format!("reactive_notebook_{family}");
        self.samples
            .iter()
            .find(|s| s["family"] == full.as_str())
            .and_then(|s| s["type"].as_str())
    }

    /// Every value of label `label` on samples named `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let full = format!("reactive_notebook_{name}");
        self.samples
            .iter()
            .filter(|s| s["name"] == full.as_str())
            .filter_map(|s| s["labels"][label].as_str().map(String::from))
            .collect()
    }
}

/// GET /metrics with an optional `Authorization` header value; status, content type, body.
async fn fetch(s: &TestServer, authorization: Option<&str>) -> (u16, String, String) {
    let mut req = s.http.get(s.url("/metrics"));
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    let resp = req.send().await.expect("GET /metrics");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, content_type, resp.text().await.expect("body"))
}

/// A scrape of an open `/metrics`.
async fn scrape(s: &TestServer) -> Scrape {
    let (status, content_type, body) = fetch(s, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Scrape::parse(body)
}

/// Scrapes until `done` holds (at most 20 s), returning that scrape.
async fn scrape_until(s: &TestServer, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = scrape(s).await;
        if done(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened:\n{}",
            now.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn backend_label(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    }
}

both_backends!(
    http_requests_and_auth_failures,
    |backend: Backend| async move {
        let _serial = SERIAL.lock().await;
        let s = TestServer::start(backend).await;
        let before = scrape(&s).await;

        let nb = s.new_notebook(U, "metrics").await;
        s.notebook(U, &nb).await;
        s.notebook(U, &nb).await;
        let (status, _) = s.get("/api/notebooks/no-such-notebook", U).await;
        assert_eq!(status, 404);
        let (status, _) = s
            .call(reqwest::Method::GET, "/api/notebooks", None, None)
            .await;
        assert_eq!(status, 401);
        let forged = tokens::sign_with_other_key(valid_claims(U), None);
        let resp = s
            .http
            .get(s.url("/api/notebooks"))
            .bearer_auth(forged)
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status().as_u16(), 401);
        let resp = s
            .http
            .get(s.url("/no/such/page/12345"))
            .send()
            .await
            .expect("request sent");
        let unmatched_status = resp.status().as_u16().to_string();

        let after = scrape(&s).await;
        for (family, kind) in FAMILIES {
            assert_eq!(
                after.family_type(family),
                Some(*kind),
                "{family} is exposed as a {kind}:\n{}",
                after.text
            );
        }
        let count = |scrape: &Scrape, method: &str, route: &str, status: &str| {
            scrape.get(
                "http_request_duration_seconds_count",
                &[("method", method), ("route", route), ("status", status)],
            )
        };
        let template = "/api/notebooks/{id}";
        assert_eq!(
            count(&after, "GET", template, "200") - count(&before, "GET", template, "200"),
            2.0,
            "{}",
            after.text
        );
        assert_eq!(
            count(&after, "GET", template, "404") - count(&before, "GET", template, "404"),
            1.0
        );
        assert_eq!(
            count(&after, "POST", "/api/notebooks", "200")
                - count(&before, "POST", "/api/notebooks", "200"),
            1.0
        );
        assert_eq!(
            count(&after, "GET", "/api/notebooks", "401")
                - count(&before, "GET", "/api/notebooks", "401"),
            2.0
        );
        assert_eq!(
            count(&after, "GET", "unmatched", &unmatched_status)
                - count(&before, "GET", "unmatched", &unmatched_status),
            1.0,
            "a path no route matches is counted under the fixed label"
        );
        // Only templates (or the fixed label) as routes: never an id or a concrete path.
        let routes = after.label_values("http_request_duration_seconds_count", "route");
        assert!(routes.iter().any(|r| r == template), "{routes:?}");
        for route in &routes {
            assert!(
                route == "unmatched" || route.starts_with('/'),
                "route label {route}"
            );
            assert!(!route.contains(&nb), "a notebook id leaked into {route}");
            assert!(!route.contains("no-such-notebook"), "{route}");
            assert!(!route.contains("12345"), "{route}");
        }
        // The latency histogram has its buckets and sum for the same series.
        let labels = [("method", "GET"), ("route", template), ("status", "200")];
        assert!(after.get("http_request_duration_seconds_sum", &labels) > 0.0);
        assert_eq!(
            after.get(
                "http_request_duration_seconds_bucket",
                &[labels[0], labels[1], labels[2], ("le", "+Inf")]
            ),
            count(&after, "GET", template, "200")
        );

        let failures = |scrape: &Scrape, reason: &str| {
            scrape.get("auth_failures_total", &[("reason", reason)])
        };
        assert_eq!(
            failures(&after, "missing_header") - failures(&before, "missing_header"),
            1.0
        );
        assert_eq!(
            failures(&after, "invalid_signature") - failures(&before, "invalid_signature"),
            1.0,
            "{}",
            after.text
        );

        let backend = backend_label(backend);
        let waits =
            |scrape: &Scrape| scrape.get("db_pool_wait_seconds_count", &[("backend", backend)]);
        assert!(waits(&after) > waits(&before), "{}", after.text);
        assert!(
            after.get("rooms_open", &[]) >= 1.0,
            "reading a notebook opens its room"
        );
        s.finish().await;
    }
);

both_backends!(sessions_and_cell_runs, |backend: Backend| async move {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start(backend).await;
    // Before the notebook exists: its room and kernel start when it is created.
    let before = scrape(&s).await;
    let nb = s.new_notebook(U, "runs").await;
    let ok = s.new_cell(U, &nb, "python", "a = 1\nprint(a)").await;

    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
    let open = scrape(&s).await;
    assert_eq!(
        open.get("ws_sessions", &[]),
        before.get("ws_sessions", &[]) + 1.0
    );
    assert_eq!(
        open.get("ws_sessions_opened_total", &[]) - before.get("ws_sessions_opened_total", &[]),
        1.0
    );
    assert_eq!(
        open.get("rooms_open", &[]),
        before.get("rooms_open", &[]) + 1.0
    );
    let upgrades = |scrape: &Scrape| {
        scrape.get(
            "http_request_duration_seconds_count",
            &[("route", "/api/ws/notebooks/{id}"), ("status", "101")],
        )
    };
    assert_eq!(upgrades(&open) - upgrades(&before), 1.0, "{}", open.text);

    // A success, an error and the cell it blocks, on a real kernel.
    run(&s, U, &nb, &ok).await;
    tab.until(T, |v| {
        v["type"] == "cell_status" && v["cellId"] == ok && v["status"] == "success"
    })
    .await;
    settle(&s, U, &nb).await;
    // Added after `ok` ran, so they run only when asked: once each.
    let failing = s.new_cell(U, &nb, "python", "b = a / 0").await;
    let downstream = s.new_cell(U, &nb, "python", "c = b + 1").await;
    run(&s, U, &nb, &failing).await;
    tab.until(T, |v| {
        v["type"] == "cell_status" && v["cellId"] == downstream && v["status"] == "blocked"
    })
    .await;
    let n = settle(&s, U, &nb).await;
    assert_eq!(cell(&n, &failing)["status"], "error");

    let ran = scrape(&s).await;
    let runs =
        |scrape: &Scrape, outcome: &str| scrape.get("cell_runs_total", &[("outcome", outcome)]);
    for (outcome, times) in [("success", 1.0), ("error", 1.0), ("blocked", 1.0)] {
        assert_eq!(
            runs(&ran, outcome) - runs(&before, outcome),
            times,
            "{outcome}:\n{}",
            ran.text
        );
    }
    assert_eq!(
        ran.get("cell_run_duration_seconds_count", &[])
            - before.get("cell_run_duration_seconds_count", &[]),
        2.0,
        "the two cells that ran are timed"
    );
    assert!(ran.get("kernel_starts_total", &[]) > before.get("kernel_starts_total", &[]));
    let live = |scrape: &Scrape| scrape.get("kernels", &[]);
    assert_eq!(live(&ran), live(&before) + 1.0, "{}", ran.text);
    assert!(
        ran.get("kernels", &[("state", "idle")]) >= 1.0,
        "{}",
        ran.text
    );
    assert!(ran.get("broadcasts_total", &[]) > before.get("broadcasts_total", &[]));
    assert!(
        ran.get("ws_messages_queued_total", &[]) > before.get("ws_messages_queued_total", &[]),
        "the open tab was sent the run's events"
    );

    // A kernel that dies running a cell: a crash, and a fresh kernel in its place.
    let crash = s.new_cell(U, &nb, "python", "import os\nos._exit(3)").await;
    run(&s, U, &nb, &crash).await;
    let n = settle(&s, U, &nb).await;
    assert_eq!(cell(&n, &crash)["status"], "error");
    let crashed = scrape_until(&s, "a restart after the crash", |now| {
        now.get("kernel_restarts_total", &[("reason", "crash")])
            > before.get("kernel_restarts_total", &[("reason", "crash")])
    })
    .await;
    assert_eq!(runs(&crashed, "crashed") - runs(&before, "crashed"), 1.0);
    assert_eq!(
        crashed.get("kernel_crashes_total", &[]) - before.get("kernel_crashes_total", &[]),
        1.0
    );

    // A restart asked for over REST.
    let (status, body) = s
        .post(&format!("/api/notebooks/{nb}/restart"), U, json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    scrape_until(&s, "a requested restart", |now| {
        now.get("kernel_restarts_total", &[("reason", "requested")])
            > before.get("kernel_restarts_total", &[("reason", "requested")])
    })
    .await;

    // Everything closed: the gauges are back where they were.
    drop(tab);
    let (status, body) = s.delete(&format!("/api/notebooks/{nb}"), U).await;
    assert_eq!(status, 200, "{body}");
    scrape_until(&s, "gauges back to their values before the test", |now| {
        ["ws_sessions", "rooms_open", "kernels"]
            .iter()
            .all(|gauge| now.get(gauge, &[]) == before.get(gauge, &[]))
    })
    .await;
    s.finish().await;
});

#[actix_web::test]
async fn metrics_token_guards_the_endpoint() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.metrics_token = Some("scrape-secret-1".into());
    let s = TestServer::start_with(db, config).await;

    for authorization in [
        None,
        Some("Bearer scrape-secret-2"),
        Some("Bearer scrape-secret-1x"),
        Some("Bearer "),
        Some("Basic scrape-secret-1"),
    ] {
        let (status, _, body) = fetch(&s, authorization).await;
        assert_eq!(status, 401, "{authorization:?}: {body}");
        let body: Value = serde_json::from_str(&body).expect("JSON error body");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("METRICS_TOKEN")),
            "{body}"
        );
    }
    let user = format!("Bearer {}", token_for(U));
    let (status, _, _) = fetch(&s, Some(user.as_str())).await;
    assert_eq!(status, 401, "a user's token does not open /metrics");

    let (status, content_type, body) = fetch(&s, Some("Bearer scrape-secret-1")).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let scraped = Scrape::parse(body);
    assert_eq!(
        scraped.get("auth_failures_total", &[("reason", "metrics_token")]),
        6.0,
        "{}",
        scraped.text
    );
    s.finish().await;
}

#[actix_web::test]
async fn a_slow_client_is_counted_when_cut_off() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_notebook(U, "flood").await;
    let flood = s.new_cell(U, &nb, "python", common::ws::FLOOD_CODE).await;
    let mut stalled = WsClient::join(&s.base, &nb, &token_for(U)).await;
    let before = scrape(&s).await;
    run(&s, U, &nb, &flood).await;
    settle(&s, U, &nb).await;
    // The stalled tab, once it reads, finds a 1013 close.
    let (_, code) = stalled.until_closed(T).await;
    assert_eq!(code, 1013);
    let after = scrape_until(&s, "the cut-off session closed", |now| {
        now.get("ws_sessions", &[]) == before.get("ws_sessions", &[]) - 1.0
    })
    .await;
    let delta = |name: &str| after.get(name, &[]) - before.get(name, &[]);
    assert_eq!(
        delta("ws_slow_client_disconnects_total"),
        1.0,
        "{}",
        after.text
    );
    assert!(delta("ws_messages_dropped_total") >= 1.0, "{}", after.text);
    assert!(
        delta("broadcasts_total") >= 20000.0,
        "every output was broadcast once: {}",
        after.text
    );
    s.finish().await;
}

/// The assistant's tools, called as the chat loop calls them (the model itself is faked in
/// tests/chat.rs; here only the counting matters): a made-up tool name is counted as `unknown`.
#[actix_web::test]
async fn assistant_tool_calls_by_known_name() {
    use reactive_notebook::assistant::tools::Toolbox;
    use reactive_notebook::db::Db;

    let _serial = SERIAL.lock().await;
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_notebook(U, "assistant").await;
    let rooms = s.server.as_ref().expect("running").rooms.clone();
    let db = Db::connect(&s.config.database).expect("database");
    let toolbox = Toolbox::new(rooms, db, U, &nb);
    let before = scrape(&s).await;

    let created = toolbox
        .execute(
            "create_cell",
            Ok(json!({"type": "python", "code": "x = 1"})),
        )
        .await;
    assert!(!created.is_error, "{:?}", created.result);
    let refused = toolbox
        .execute("delete_cell", Ok(json!({"cell_id": "no-such-cell"})))
        .await;
    assert!(refused.is_error);
    let invented = toolbox.execute("drop_all_tables_now", Ok(json!({}))).await;
    assert!(invented.is_error);

    let after = scrape(&s).await;
    let calls = |scrape: &Scrape, tool: &str, outcome: &str| {
        scrape.get(
            "assistant_tool_calls_total",
            &[("tool", tool), ("outcome", outcome)],
        )
    };
    for (tool, outcome) in [
        ("create_cell", "ok"),
        ("delete_cell", "error"),
        ("unknown", "error"),
    ] {
        assert_eq!(
            calls(&after, tool, outcome) - calls(&before, tool, outcome),
            1.0,
            "{tool} {outcome}:\n{}",
            after.text
        );
    }
    let tools = after.label_values("assistant_tool_calls_total", "tool");
    assert!(
        !tools.iter().any(|t| t.contains("drop_all")),
        "a made-up name became a label: {tools:?}"
    );
    s.finish().await;
}

/// A cell stopped at `KERNEL_TIMEOUT_SECS` and one stopped by an interrupt end with different
/// outcomes, though both see a KeyboardInterrupt in the kernel.
#[actix_web::test]
async fn timeouts_and_interrupts_are_told_apart() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    // Long enough for the interrupt below to land first, even on a busy machine.
    config.kernel_timeout_secs = 3;
    let s = TestServer::start_with(db, config).await;
    let nb = s.new_notebook(U, "stops").await;
    let slow = s
        .new_cell(U, &nb, "python", "import time\ntime.sleep(30)")
        .await;
    let before = scrape(&s).await;
    run(&s, U, &nb, &slow).await;
    let n = settle(&s, U, &nb).await;
    let error = cell(&n, &slow)["error"].as_str().unwrap_or("").to_string();
    assert!(error.contains("Timed out"), "{error}");

    let spin = s
        .new_cell(U, &nb, "python", "print('spinning')\nwhile True:\n    pass")
        .await;
    run(&s, U, &nb, &spin).await;
    let deadline = Instant::now() + T;
    while cell(&s.notebook(U, &nb).await, &spin)["stdout"] != "spinning\n" {
        assert!(Instant::now() < deadline, "the cell never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = s
        .post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    settle(&s, U, &nb).await;

    let after = scrape(&s).await;
    let runs =
        |scrape: &Scrape, outcome: &str| scrape.get("cell_runs_total", &[("outcome", outcome)]);
    assert_eq!(
        runs(&after, "timeout") - runs(&before, "timeout"),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        runs(&after, "interrupted") - runs(&before, "interrupted"),
        1.0,
        "{}",
        after.text
    );
    assert_eq!(
        runs(&after, "error") - runs(&before, "error"),
        0.0,
        "{}",
        after.text
    );
    s.finish().await;
}
