//! SQL cells through the engine: parameters from Python, tables, errors, cancel.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use serde_json::{json, Value};

const U: &str = "user_sql";

async fn settle(s: &TestServer, nb: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = s.notebook(U, nb).await;
        let busy = n["cells"].as_array().is_some_and(|cells| {
            cells
                .iter()
                .any(|c| matches!(c["status"].as_str(), Some("queued" | "running")))
        });
        if !busy {
            return n;
        }
        assert!(Instant::now() < deadline, "never settled: {n:#}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn cell<'a>(n: &'a Value, id: &str) -> &'a Value {
    n["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("cell {id}"))
}

async fn run(s: &TestServer, nb: &str, cell: &str) {
    let (status, _) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            U,
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
}

#[actix_web::test]
async fn sql_cells_bind_python_values_and_render_tables() {
    let s = TestServer::start_local_sql(Backend::Sqlite).await;
    let (db_name, db_url) = common::create_pg_database().await;
    let nb = s.new_notebook(U, "sql").await;
    let (status, _) = s
        .put(
            &format!("/api/notebooks/{nb}/db"),
            U,
            json!({"connection_string": db_url}),
        )
        .await;
    assert_eq!(status, 200);

    let setup = s
        .new_cell(U, &nb, "python", "import datetime\nn = 3\nlabel = \"'; DROP TABLE t; --\"\nday = datetime.date(2024, 1, 31)")
        .await;
    let create = s
        .new_cell(
            U,
            &nb,
            "sql",
            "CREATE TABLE t (id int, label text, day date, price numeric(8,2))",
        )
        .await;
    run(&s, &nb, &create).await;
    let n = settle(&s, &nb).await;
    assert_eq!(cell(&n, &create)["status"], "success", "{n:#}");

    let insert = s
        .new_cell(
            U,
            &nb,
            "sql",
            "INSERT INTO t SELECT g, {label}, {day}, g * 1.5 FROM generate_series(1, {n}) AS g",
        )
        .await;
    let select = s
        .new_cell(
            U,
            &nb,
            "sql",
            "SELECT id, label, day, price, NULL AS nothing FROM t ORDER BY id",
        )
        .await;
    let n = s.notebook(U, &nb).await;
    assert_eq!(cell(&n, &insert)["reads"], json!(["day", "label", "n"]));
    run(&s, &nb, &setup).await;
    let n = settle(&s, &nb).await;
    assert_eq!(cell(&n, &insert)["status"], "success", "{n:#}");
    assert_eq!(
        cell(&n, &insert)["outputs"][0]["data"],
        "INSERT: 3 rows affected"
    );
    run(&s, &nb, &select).await;
    let n = settle(&s, &nb).await;
    let table = &cell(&n, &select)["outputs"][0];
    assert_eq!(table["mime_type"], "application/json", "{n:#}");
    assert_eq!(table["data"]["type"], "table");
    assert_eq!(
        table["data"]["columns"],
        json!(["id", "label", "day", "price", "nothing"])
    );
    assert_eq!(
        table["data"]["rows"][2],
        json!([3, "'; DROP TABLE t; --", "2024-01-31", "4.50", null])
    );

    // Errors: PostgreSQL's message, and a name nobody defined.
    let broken = s
        .new_cell(U, &nb, "sql", "SELECT * FROM no_such_table")
        .await;
    let unbound = s.new_cell(U, &nb, "sql", "SELECT {nobody}").await;
    run(&s, &nb, &broken).await;
    run(&s, &nb, &unbound).await;
    let n = settle(&s, &nb).await;
    assert!(cell(&n, &broken)["error"]
        .as_str()
        .unwrap_or("")
        .contains("does not exist"));
    assert!(cell(&n, &unbound)["error"]
        .as_str()
        .unwrap_or("")
        .contains("nobody"));

    // A value that cannot convert is a clear cell error.
    let text_n = s.new_cell(U, &nb, "python", "word = 'abc'").await;
    let typed = s.new_cell(U, &nb, "sql", "SELECT 1 + {word}::int").await;
    run(&s, &nb, &text_n).await;
    let n = settle(&s, &nb).await;
    assert_eq!(cell(&n, &typed)["status"], "error", "{n:#}");

    // Interrupt cancels a running query.
    let sleepy = s.new_cell(U, &nb, "sql", "SELECT pg_sleep(20)").await;
    run(&s, &nb, &sleepy).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    s.post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
        .await;
    let n = settle(&s, &nb).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(cell(&n, &sleepy)["status"], "error");
    assert!(cell(&n, &sleepy)["error"]
        .as_str()
        .unwrap_or("")
        .contains("Interrupted"));

    s.finish().await;
    common::drop_pg_database(&db_name).await;
}

#[actix_web::test]
async fn sql_without_connection_and_password_never_shown() {
    let s = TestServer::start_local_sql(Backend::Sqlite).await;
    let nb = s.new_notebook(U, "no db").await;
    // Without a connection SQL runs on the kernel's embedded DuckDB.
    let q = s.new_cell(U, &nb, "sql", "SELECT 1 AS one").await;
    run(&s, &nb, &q).await;
    let n = settle(&s, &nb).await;
    assert_eq!(cell(&n, &q)["status"], "success", "{n:#}");
    assert_eq!(
        cell(&n, &q)["outputs"][0]["data"]["rows"],
        json!([[1]]),
        "{n:#}"
    );
    // Nothing listens on port 9: the error names the failure, never the password.
    s.put(
        &format!("/api/notebooks/{nb}/db"),
        U,
        json!({"connection_string": "postgres://u:SuperSecret99@127.0.0.1:9/x"}),
    )
    .await;
    run(&s, &nb, &q).await;
    let n = settle(&s, &nb).await;
    assert_eq!(cell(&n, &q)["status"], "error");
    assert!(!n.to_string().contains("SuperSecret99"), "{n:#}");
    s.finish().await;
}
