//! SQL cells without a database (DuckDB in the kernel) and SQL results bound to Python names.

mod common;

use std::time::{Duration, Instant};

use common::cells::{cell, run, settle};
use common::TestServer;
use serde_json::{json, Value};

const U: &str = "user_duck";

async fn edit(s: &TestServer, nb: &str, cell: &str, body: Value) -> (u16, Value) {
    s.put(&format!("/api/notebooks/{nb}/cells/{cell}"), U, body)
        .await
}

/// The last stdout line of a cell.
fn printed(n: &Value, id: &str) -> String {
    cell(n, id)["stdout"]
        .as_str()
        .unwrap_or("")
        .trim_end()
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

both_backends!(
    embedded_sql_queries_dataframes_with_bound_parameters,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "duck").await;
        let data = s
        .new_cell(
            U,
            &nb,
            "python",
            "import pandas as pd\n\
             df = pd.DataFrame({'city': ['Oslo', 'Oslo', 'Rome', \"x' OR '1'='1\"], 'temp': [1.0, 3.0, 20.0, 99.0]})\n\
             who = 'Oslo'\n\
             evil = \"Rome' OR '1'='1\"",
        )
        .await;
        let query = s
            .new_cell(
                U,
                &nb,
                "sql",
                "SELECT city, avg(temp) AS mean FROM df WHERE city = {who} GROUP BY city",
            )
            .await;
        let injected = s
            .new_cell(
                U,
                &nb,
                "sql",
                "SELECT count(*) AS n FROM df WHERE city = {evil}",
            )
            .await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &query)["reads"], json!(["df", "who"]), "{n:#}");
        assert_eq!(cell(&n, &query)["writes"], json!(["df_1"]));
        assert_eq!(cell(&n, &query)["result_name"], "df_1");
        assert_eq!(cell(&n, &injected)["result_name"], "df_2");
        assert_eq!(cell(&n, &data)["result_name"], Value::Null);

        run(&s, U, &nb, &data).await;
        let n = settle(&s, U, &nb).await;
        let q = cell(&n, &query);
        assert_eq!(q["status"], "success", "{n:#}");
        assert_eq!(q["outputs"][0]["mime_type"], "application/json");
        assert_eq!(q["outputs"][0]["data"]["type"], "table");
        assert_eq!(q["outputs"][0]["data"]["columns"], json!(["city", "mean"]));
        assert_eq!(q["outputs"][0]["data"]["rows"], json!([["Oslo", 2.0]]));
        // The injection attempt is compared as data: no row has that city.
        let i = cell(&n, &injected);
        assert_eq!(i["status"], "success", "{n:#}");
        assert_eq!(i["outputs"][0]["data"]["rows"], json!([[0]]), "{n:#}");

        // The SQL error of the engine is the cell's error.
        let broken = s
            .new_cell(U, &nb, "sql", "SELECT * FROM no_such_frame")
            .await;
        run(&s, U, &nb, &broken).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(cell(&n, &broken)["status"], "error", "{n:#}");
        assert!(
            cell(&n, &broken)["error"]
                .as_str()
                .unwrap_or("")
                .contains("no_such_frame"),
            "{n:#}"
        );

        // Interrupt stops a long embedded query; the kernel and its values survive.
        let slow = s
            .new_cell(
                U,
                &nb,
                "sql",
                "SELECT count(*) FROM range(1000000000000) a, range(1000) b",
            )
            .await;
        run(&s, U, &nb, &slow).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = s.notebook(U, &nb).await;
            if cell(&n, &slow)["status"] == "running" {
                break;
            }
            assert!(Instant::now() < deadline, "the query never started: {n:#}");
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.post(&format!("/api/notebooks/{nb}/interrupt"), U, json!({}))
            .await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(cell(&n, &slow)["status"], "error", "{n:#}");
        assert!(
            cell(&n, &slow)["error"]
                .as_str()
                .unwrap_or("")
                .contains("Interrupted"),
            "{n:#}"
        );
        run(&s, U, &nb, &query).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(cell(&n, &query)["status"], "success", "{n:#}");
        s.finish().await;
    }
);

both_backends!(
    editing_a_dataframe_reruns_the_query_and_its_readers,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "reactive").await;
        let data = s
            .new_cell(
                U,
                &nb,
                "python",
                "import pandas as pd\ndf = pd.DataFrame({'v': [1, 2, 3]})",
            )
            .await;
        let query = s
            .new_cell(
                U,
                &nb,
                "sql",
                "SELECT CAST(sum(v) AS BIGINT) AS total FROM df",
            )
            .await;
        let reader = s
            .new_cell(
                U,
                &nb,
                "python",
                "print(type(df_1).__name__, int(df_1['total'][0]))",
            )
            .await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &reader)["reads"], json!(["df_1"]), "{n:#}");
        run(&s, U, &nb, &data).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(
            cell(&n, &query)["outputs"][0]["data"]["rows"],
            json!([[6]]),
            "{n:#}"
        );
        assert_eq!(printed(&n, &reader), "DataFrame 6", "{n:#}");

        // Editing the cell defining df re-runs the query, which re-runs its reader.
        let (status, body) = edit(
            &s,
            &nb,
            &data,
            json!({"code": "import pandas as pd\ndf = pd.DataFrame({'v': [10, 20]})"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        run(&s, U, &nb, &data).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(
            cell(&n, &query)["outputs"][0]["data"]["rows"],
            json!([[30]]),
            "{n:#}"
        );
        assert_eq!(printed(&n, &reader), "DataFrame 30", "{n:#}");

        // Running the SQL cell alone re-runs the Python cell reading its result.
        let (status, body) = edit(
            &s,
            &nb,
            &query,
            json!({"code": "SELECT max(v) AS total FROM df"}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        run(&s, U, &nb, &query).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(cell(&n, &query)["status"], "success", "{n:#}");
        assert_eq!(printed(&n, &reader), "DataFrame 20", "{n:#}");
        s.finish().await;
    }
);

both_backends!(
    result_name_is_settable_validated_and_unique,
    |backend| async move {
        let s = TestServer::start(backend).await;
        let nb = s.new_notebook(U, "names").await;
        let first = s.new_cell(U, &nb, "sql", "SELECT 1 AS one").await;
        let second = s.new_cell(U, &nb, "sql", "SELECT 2 AS two").await;
        let py = s.new_cell(U, &nb, "python", "x = 1").await;

        // Renaming frees df_1; the next new cell takes the smallest unused number.
        let (status, body) = edit(&s, &nb, &first, json!({"result_name": "totals"})).await;
        assert_eq!(status, 200, "{body}");
        let third = s.new_cell(U, &nb, "sql", "SELECT 3").await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &first)["result_name"], "totals");
        assert_eq!(cell(&n, &first)["writes"], json!(["totals"]));
        assert_eq!(cell(&n, &first)["code"], "SELECT 1 AS one");
        assert_eq!(cell(&n, &second)["result_name"], "df_2");
        assert_eq!(cell(&n, &third)["result_name"], "df_1");

        // Invalid names: 422 with a detail, and nothing changes.
        let before = s.notebook(U, &nb).await["revision"].clone();
        for bad in ["1abc", "class", "a-b", "", "x y", "None"] {
            let (status, body) = edit(&s, &nb, &second, json!({"result_name": bad})).await;
            assert_eq!(status, 422, "{bad}: {body}");
            assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{body}"
            );
        }
        let (status, body) = edit(&s, &nb, &py, json!({"result_name": "frame"})).await;
        assert_eq!(status, 422, "{body}");
        let n = s.notebook(U, &nb).await;
        assert_eq!(n["revision"], before);
        assert_eq!(cell(&n, &second)["result_name"], "df_2");
        assert_eq!(cell(&n, &py)["result_name"], Value::Null);

        // The result is bound under the chosen name; a reader picks it up.
        let reader = s
            .new_cell(U, &nb, "python", "print(int(totals['one'][0]) + 41)")
            .await;
        run(&s, U, &nb, &first).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(printed(&n, &reader), "42", "{n:#}");

        // Two SQL cells with one result name: the graph's "defined by two cells" error.
        let (status, body) = edit(&s, &nb, &second, json!({"result_name": "totals"})).await;
        assert_eq!(status, 200, "{body}");
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &second)["status"], "error", "{n:#}");
        assert!(
            cell(&n, &second)["error"]
                .as_str()
                .unwrap_or("")
                .contains("totals"),
            "{n:#}"
        );

        // Survives a restart of the server (persisted).
        let mut s = s;
        s.restart().await;
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &first)["result_name"], "totals");
        assert_eq!(cell(&n, &third)["result_name"], "df_1");
        s.finish().await;
    }
);

both_backends!(
    postgres_query_results_are_bound_in_python,
    |backend| async move {
        let s = TestServer::start_local_sql(backend).await;
        assert_eq!(s.config.sql_hosts.allowed, vec!["127.0.0.1".to_string()]);
        let (db_name, db_url) = common::create_pg_database().await;
        let nb = s.new_notebook(U, "pg").await;
        let (status, body) = s
            .put(
                &format!("/api/notebooks/{nb}/db"),
                U,
                json!({"connection_string": db_url}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let limit = s.new_cell(U, &nb, "python", "top = 3").await;
        let query = s
            .new_cell(
                U,
                &nb,
                "sql",
                "SELECT g AS n, g * g AS square FROM generate_series(1, {top}) AS g",
            )
            .await;
        let reader = s
            .new_cell(
                U,
                &nb,
                "python",
                "print(type(df_1).__name__, list(df_1.columns), int(df_1['square'].sum()))",
            )
            .await;
        run(&s, U, &nb, &limit).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(cell(&n, &query)["status"], "success", "{n:#}");
        assert_eq!(
            cell(&n, &query)["outputs"][0]["data"]["rows"],
            json!([[1, 1], [2, 4], [3, 9]])
        );
        assert_eq!(
            printed(&n, &reader),
            "DataFrame ['n', 'square'] 14",
            "{n:#}"
        );

        // Changing the parameter re-runs the query and then the reader.
        let (status, body) = edit(&s, &nb, &limit, json!({"code": "top = 4"})).await;
        assert_eq!(status, 200, "{body}");
        run(&s, U, &nb, &limit).await;
        let n = settle(&s, U, &nb).await;
        assert_eq!(
            printed(&n, &reader),
            "DataFrame ['n', 'square'] 30",
            "{n:#}"
        );
        s.finish().await;
        common::drop_pg_database(&db_name).await;
    }
);

#[actix_web::test]
async fn embedded_sql_without_duckdb_is_a_clear_error() {
    let s = TestServer::start(common::Backend::Sqlite).await;
    let nb = s.new_notebook(U, "no duck").await;
    // A None entry in sys.modules makes `import duckdb` fail, as in a Python without it.
    let hide = s
        .new_cell(U, &nb, "python", "import sys\nsys.modules['duckdb'] = None")
        .await;
    let query = s.new_cell(U, &nb, "sql", "SELECT 1").await;
    run(&s, U, &nb, &hide).await;
    let n = settle(&s, U, &nb).await;
    assert_eq!(cell(&n, &hide)["status"], "success", "{n:#}");
    run(&s, U, &nb, &query).await;
    let n = settle(&s, U, &nb).await;
    assert_eq!(cell(&n, &query)["status"], "error", "{n:#}");
    let error = cell(&n, &query)["error"].as_str().unwrap_or("");
    assert!(error.contains("duckdb"), "{n:#}");
    assert!(error.contains("no database connection"), "{n:#}");
    s.finish().await;
}
