//! Reading a SQL cell's parameter values from the kernel has a time limit: a value whose
//! conversion never returns errors the cell and frees the kernel (interrupted, or killed and
//! restarted when it ignores the interrupt), and the notebook keeps working.

mod common;

use common::cells::{error_of, run_settled};
use common::{admin_url, Backend, TestDb, TestServer};
use serde_json::json;

const U: &str = "user_params";

/// A server whose SQL cells reach the test PostgreSQL, with a short cell time limit (the
/// parameter read is limited to the smaller of 10 s and the cell limit).
async fn server(backend: Backend) -> TestServer {
    let db = TestDb::new(backend).await;
    let mut config = db.config_with_local_sql();
    config.kernel_timeout_secs = 4;
    TestServer::start_with(db, config).await
}

async fn notebook_on_pg(s: &TestServer, name: &str) -> String {
    let nb = s.new_notebook(U, name).await;
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/db"),
            U,
            json!({ "connection_string": admin_url() }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    nb
}

#[actix_web::test]
async fn a_conversion_that_never_returns_is_interrupted() {
    let s = server(Backend::Sqlite).await;
    let nb = notebook_on_pg(&s, "slow str").await;
    // An int beyond 64 bits is sent as its decimal text, so the driver calls its __str__.
    let define = s
        .new_cell(
            U,
            &nb,
            "python",
            "import time\n\nclass Slow(int):\n    def __str__(self):\n        time.sleep(10**6)\n        return 'never'\n\nx = Slow(2**70)\nmarker = 41",
        )
        .await;
    let defined = run_settled(&s, U, &nb, &define).await;
    assert_eq!(defined["status"], "success", "{defined:#}");

    let bound = s.new_cell(U, &nb, "sql", "SELECT {x} AS v").await;
    let failed = run_settled(&s, U, &nb, &bound).await;
    assert_eq!(failed["status"], "error", "{failed:#}");
    let error = error_of(&failed);
    assert!(error.contains("took longer than 4 s"), "{error}");
    assert!(error.contains("interrupted"), "{error}");

    // The kernel is free and kept its values: the next cells run.
    let next = s.new_cell(U, &nb, "sql", "SELECT {marker} + 1 AS v").await;
    let ok = run_settled(&s, U, &nb, &next).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["outputs"][0]["data"]["rows"], json!([[42]]));
    let py = s.new_cell(U, &nb, "python", "print(marker + 2)").await;
    let ok = run_settled(&s, U, &nb, &py).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["stdout"], "43\n");
    s.finish().await;
}

#[actix_web::test]
async fn a_conversion_that_ignores_the_interrupt_gets_the_kernel_restarted() {
    let s = server(Backend::Postgres).await;
    let nb = notebook_on_pg(&s, "stubborn str").await;
    let define = s
        .new_cell(
            U,
            &nb,
            "python",
            "class Stubborn(int):\n    def __str__(self):\n        while True:\n            try:\n                while True:\n                    pass\n            except KeyboardInterrupt:\n                pass\n\ny = Stubborn(2**70)",
        )
        .await;
    let defined = run_settled(&s, U, &nb, &define).await;
    assert_eq!(defined["status"], "success", "{defined:#}");

    let bound = s.new_cell(U, &nb, "sql", "SELECT {y} AS v").await;
    let failed = run_settled(&s, U, &nb, &bound).await;
    assert_eq!(failed["status"], "error", "{failed:#}");
    let error = error_of(&failed);
    assert!(error.contains("took longer than 4 s"), "{error}");
    assert!(error.contains("killed and restarted"), "{error}");

    // A fresh kernel: the next cells run, and the old values are gone.
    let py = s
        .new_cell(U, &nb, "python", "z = 5\nprint('y' in globals(), z)")
        .await;
    let ok = run_settled(&s, U, &nb, &py).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["stdout"], "False 5\n");
    let sql = s.new_cell(U, &nb, "sql", "SELECT {z} * 2 AS v").await;
    let ok = run_settled(&s, U, &nb, &sql).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["outputs"][0]["data"]["rows"], json!([[10]]));
    s.finish().await;
}
