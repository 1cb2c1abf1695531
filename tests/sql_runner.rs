//! SQL cell runner against a real PostgreSQL (`TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test works in its own schema.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reactive_notebook::config::SqlHostPolicy;
use reactive_notebook::sql::host_policy::HostPolicy;
use reactive_notebook::sql::runner::{
    run_sql, scrub_password, values_order, SqlCanceller, SqlError, SqlOutcome, SqlRequest,
};
use serde_json::{json, Value};

fn db_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The test PostgreSQL runs on the loopback, which SQL cells may only reach when allowed.
fn local_pg_policy() -> HostPolicy {
    HostPolicy::from_settings(&SqlHostPolicy {
        allowed: vec!["127.0.0.1".into()],
        denied: Vec::new(),
    })
    .expect("valid policy")
}

/// Byte ranges and names of `{ident}` placeholders (test stand-in for the analysis module).
fn placeholders(code: &str) -> Vec<(Range<usize>, String)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            let start = i;
            let mut j = i + 1;
            while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                j += 1;
            }
            if j > i + 1 && j < bytes.len() && bytes[j] == b'}' && !bytes[i + 1].is_ascii_digit() {
                out.push((start..j + 1, code[i + 1..j].to_string()));
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// A schema of its own for one test, dropped by `cleanup`.
struct Scratch {
    schema: String,
    client: tokio_postgres::Client,
}

impl Scratch {
    async fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let schema = format!(
            "sqlrun_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let (client, conn) = tokio_postgres::connect(&db_url(), tokio_postgres::NoTls)
            .await
            .expect("connect to TEST_DATABASE_URL");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .await
            .unwrap();
        Scratch { schema, client }
    }

    /// `code` with `S.` replaced by this test's schema.
    fn sql(&self, code: &str) -> String {
        code.replace("S.", &format!("{}.", self.schema))
    }

    async fn cleanup(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}

/// Runs `code` with values given per distinct name (in any order; reordered here).
async fn run_with(
    conn: &str,
    code: &str,
    values: &[(&str, Value)],
    timeout: Duration,
    max_rows: usize,
    canceller: &SqlCanceller,
) -> Result<SqlOutcome, SqlError> {
    let ph = placeholders(code);
    let ordered: Vec<Value> = values_order(&ph)
        .iter()
        .map(|n| {
            values
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no value for {n}"))
        })
        .collect();
    let hosts = local_pg_policy();
    let req = SqlRequest {
        conn_string: conn,
        code,
        placeholders: &ph,
        values: &ordered,
        timeout,
        max_rows,
        hosts: &hosts,
    };
    run_sql(req, canceller).await
}

async fn run(code: &str, values: &[(&str, Value)]) -> Result<SqlOutcome, SqlError> {
    run_with(
        &db_url(),
        code,
        values,
        Duration::from_secs(30),
        1000,
        &SqlCanceller::new(),
    )
    .await
}

/// The table data object of a successful query.
async fn table(code: &str, values: &[(&str, Value)]) -> Value {
    match run(code, values).await {
        Ok(SqlOutcome::Table(out)) => {
            assert_eq!(out["mime_type"], "application/json");
            assert_eq!(out["metadata"], json!({}));
            assert_eq!(out["data"]["type"], "table");
            out["data"].clone()
        }
        other => panic!("expected a table for {code}: {other:?}"),
    }
}

fn int(v: i64) -> Value {
    json!({"type": "int", "value": v})
}
fn s(v: &str) -> Value {
    json!({"type": "str", "value": v})
}
fn none() -> Value {
    json!({"type": "none"})
}

#[tokio::test]
async fn converts_each_parameter_type_and_renders_it_back() {
    let db = Scratch::new().await;
    db.client
        .batch_execute(&db.sql(
            "CREATE TABLE S.t (i int4, sm int2, b int8, f float8, r real, n numeric(10,4), \
             tx text, v varchar(20), ok bool, d date, ts timestamp, tz timestamptz, u uuid, \
             j jsonb, js json)",
        ))
        .await
        .unwrap();
    let insert = db.sql(
        "INSERT INTO S.t VALUES ({i}, {sm}, {b}, {f}, {r}, {n}, {tx}, {v}, {ok}, {d}, {ts}, {tz}, \
         {u}, {j}, {js})",
    );
    let values = [
        ("i", int(5)),
        ("sm", int(-7)),
        ("b", int(9_007_199_254_740_993)),
        ("f", json!({"type":"float","value":1.5})),
        ("r", json!({"type":"float","value":0.1})),
        ("n", json!({"type":"decimal","value":"12345.67"})),
        ("tx", s("héllo")),
        ("v", s("short")),
        ("ok", json!({"type":"bool","value":true})),
        ("d", json!({"type":"date","value":"2024-01-31"})),
        (
            "ts",
            json!({"type":"datetime","value":"2024-01-31T10:00:00"}),
        ),
        (
            "tz",
            json!({"type":"datetime","value":"2024-01-31T10:00:00+02:00"}),
        ),
        ("u", s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        ("j", s(r#"{"a": [1, 2]}"#)),
        ("js", int(42)),
    ];
    let out = run(&insert, &values).await.unwrap();
    assert_eq!(
        out,
        SqlOutcome::Affected {
            command: "INSERT".into(),
            rows: 1
        }
    );
    let data = table(&db.sql("SELECT * FROM S.t"), &[]).await;
    assert_eq!(
        data["columns"],
        json!(["i", "sm", "b", "f", "r", "n", "tx", "v", "ok", "d", "ts", "tz", "u", "j", "js"])
    );
    assert_eq!(
        data["rows"],
        json!([[
            5,
            -7,
            9_007_199_254_740_993_i64,
            1.5,
            0.1,
            "12345.6700",
            "héllo",
            "short",
            true,
            "2024-01-31",
            "2024-01-31T10:00:00",
            "2024-01-31T08:00:00+00:00",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            {"a": [1, 2]},
            42
        ]])
    );
    assert!(data.get("truncated").is_none());

    // None is NULL for every type.
    let nulls: Vec<(&str, Value)> = values.iter().map(|(k, _)| (*k, none())).collect();
    run(&insert, &nulls).await.unwrap();
    let data = table(&db.sql("SELECT * FROM S.t WHERE i IS NULL"), &[]).await;
    assert_eq!(data["rows"], json!([vec![Value::Null; 15]]));
    db.cleanup().await;
}

#[tokio::test]
async fn lenient_conversions_follow_the_parameter_type() {
    let data = table(
        "SELECT {a}::int8 AS a, {b}::numeric AS b, {c}::float8 AS c, {d}::date AS d, \
         {e}::timestamptz AS e, {f}::text AS f, {g}::bool AS g, {h}::numeric AS h",
        &[
            ("a", s(" 42 ")),
            ("b", int(7)),
            ("c", json!({"type":"decimal","value":"2.5"})),
            (
                "d",
                json!({"type":"datetime","value":"2024-02-29T23:00:00"}),
            ),
            (
                "e",
                json!({"type":"datetime","value":"2024-01-31T10:00:00"}),
            ),
            ("f", json!({"type":"float","value":2.0})),
            ("g", s("yes")),
            ("h", json!({"type":"float","value":0.25})),
        ],
    )
    .await;
    assert_eq!(
        data["rows"],
        json!([[
            42,
            "7",
            2.5,
            "2024-02-29",
            "2024-01-31T10:00:00+00:00",
            "2.0",
            true,
            "0.25"
        ]])
    );
    // A parameter whose type PostgreSQL cannot infer gets one from the Python value.
    let data = table("SELECT {x} IS NULL AS n", &[("x", int(1))]).await;
    assert_eq!(data["rows"], json!([[false]]));
    // A bare parameter is text.
    let data = table("SELECT {x} AS x", &[("x", int(5))]).await;
    assert_eq!(data["rows"], json!([["5"]]));
}

#[tokio::test]
async fn failing_conversions_name_the_placeholder_and_reason() {
    let cases = [
        (
            "SELECT {n}::int4",
            s("abc"),
            "cannot use str 'abc' as integer",
        ),
        (
            "SELECT {n}::int2",
            int(70000),
            "int 70000 is out of range for smallint",
        ),
        (
            "SELECT {n}::numeric",
            s("12abc"),
            "cannot use str '12abc' as numeric",
        ),
        (
            "SELECT {n}::uuid",
            s("not-a-uuid"),
            "cannot use str 'not-a-uuid' as uuid",
        ),
        (
            "SELECT {n}::date",
            s("31/01/2024"),
            "cannot use str '31/01/2024' as date",
        ),
        (
            "SELECT {n}::text",
            json!({"type":"unsupported","python_type":"list"}),
            "cannot pass a Python list as a SQL parameter",
        ),
    ];
    for (code, value, expected) in cases {
        match run(code, &[("n", value)]).await {
            Err(SqlError::Param { name, reason }) => {
                assert_eq!(name, "n");
                assert!(reason.contains(expected), "{reason:?} vs {expected:?}");
                let shown = SqlError::Param { name, reason }.to_string();
                assert!(shown.contains("{n}"), "{shown}");
            }
            other => panic!("{code}: expected a Param error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn injection_string_is_just_a_value() {
    let db = Scratch::new().await;
    db.client
        .batch_execute(&db.sql("CREATE TABLE S.t (name text)"))
        .await
        .unwrap();
    let evil = "'; DROP TABLE t; --";
    let evil_qualified = db.sql("'; DROP TABLE S.t; --");
    for v in [evil, evil_qualified.as_str()] {
        run(
            &db.sql("INSERT INTO S.t (name) VALUES ({name})"),
            &[("name", s(v))],
        )
        .await
        .unwrap();
    }
    let data = table(
        &db.sql("SELECT name FROM S.t WHERE name = {name}"),
        &[("name", s(evil))],
    )
    .await;
    assert_eq!(data["rows"], json!([[evil]]));
    let data = table(&db.sql("SELECT count(*) AS n FROM S.t"), &[]).await;
    assert_eq!(data["rows"], json!([[2]]));
    db.cleanup().await;
}

#[tokio::test]
async fn the_same_name_twice_is_one_parameter() {
    let code = "SELECT {x} + 1 AS a, {x} * 2 AS b, {y} AS c, {y} || {x}::text AS d";
    assert_eq!(values_order(&placeholders(code)), vec!["x", "y"]);
    let data = table(code, &[("x", int(10)), ("y", s("3"))]).await;
    assert_eq!(data["columns"], json!(["a", "b", "c", "d"]));
    assert_eq!(data["rows"], json!([[11, 20, "3", "310"]]));
}

#[tokio::test]
async fn renders_common_result_types() {
    let data = table(
        "SELECT 12345.67::numeric(10,4) AS n, -0.001::numeric AS small, 'NaN'::numeric AS nan_n, \
         DATE '2024-01-31' AS d, TIME '10:11:12.5' AS tm, \
         TIMESTAMP '2024-01-31 10:00:00' AS ts, TIMESTAMPTZ '2024-01-31 10:00:00+02' AS tz, \
         INTERVAL '1 year 2 months 3 days 04:05:06' AS iv, '{\"a\": [1, null]}'::jsonb AS j, \
         '[1, 2]'::json AS js, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, \
         ARRAY[1, NULL, 3] AS arr, ARRAY[['a','b'],['c','d']] AS arr2, '{}'::int[] AS empty, \
         NULL AS nothing, NULL::int AS null_int, '\\xdeadbeef'::bytea AS bin, \
         'NaN'::float8 AS nan_f, 'Infinity'::float4 AS inf_f, true AS yes, 'x'::char(3) AS ch, \
         '192.168.0.1'::inet AS ip, '10.0.0.0/8'::cidr AS net, 1 AS n, 2 AS n, \
         ARRAY[DATE '2024-01-01'] AS dates, 'infinity'::timestamp AS forever",
        &[],
    )
    .await;
    assert_eq!(
        data["columns"],
        json!([
            "n", "small", "nan_n", "d", "tm", "ts", "tz", "iv", "j", "js", "u", "arr", "arr2",
            "empty", "nothing", "null_int", "bin", "nan_f", "inf_f", "yes", "ch", "ip", "net", "n",
            "n", "dates", "forever"
        ])
    );
    assert_eq!(
        data["rows"],
        json!([[
            "12345.6700",
            "-0.001",
            "NaN",
            "2024-01-31",
            "10:11:12.5",
            "2024-01-31T10:00:00",
            "2024-01-31T08:00:00+00:00",
            "1 year 2 mons 3 days 04:05:06",
            {"a": [1, null]},
            [1, 2],
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            [1, null, 3],
            [["a", "b"], ["c", "d"]],
            [],
            null,
            null,
            "\\xdeadbeef",
            "NaN",
            "Infinity",
            true,
            "x  ",
            "192.168.0.1",
            "10.0.0.0/8",
            1,
            2,
            ["2024-01-01"],
            "infinity"
        ]])
    );
}

#[tokio::test]
async fn unknown_types_get_a_marker() {
    let data = table("SELECT point(1, 2) AS p", &[]).await;
    assert_eq!(data["rows"], json!([["<point>"]]));
}

#[tokio::test]
async fn truncates_at_max_rows_and_counts_the_total() {
    let data = table("SELECT g FROM generate_series(1, 5234) g", &[]).await;
    let rows = data["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[0], json!([1]));
    assert_eq!(rows[999], json!([1000]));
    assert_eq!(data["truncated"], "Showing 1000 of 5234 rows");

    let out = run_with(
        &db_url(),
        "SELECT g FROM generate_series(1, {n}) g",
        &[("n", int(3))],
        Duration::from_secs(10),
        3,
        &SqlCanceller::new(),
    )
    .await
    .unwrap();
    let SqlOutcome::Table(out) = out else {
        panic!("expected a table")
    };
    assert_eq!(out["data"]["rows"], json!([[1], [2], [3]]));
    assert!(out["data"].get("truncated").is_none());
}

#[tokio::test]
async fn statements_without_rows_report_rows_affected() {
    let db = Scratch::new().await;
    let out = run(&db.sql("CREATE TABLE S.t (a int)"), &[]).await.unwrap();
    assert_eq!(
        out,
        SqlOutcome::Affected {
            command: "CREATE".into(),
            rows: 0
        }
    );
    let out = run(
        &db.sql("-- load\nINSERT INTO S.t SELECT generate_series(1, {n});  \n"),
        &[("n", int(3))],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        SqlOutcome::Affected {
            command: "INSERT".into(),
            rows: 3
        }
    );
    let out = run(
        &db.sql("UPDATE S.t SET a = a * 10 WHERE a > {m}"),
        &[("m", int(1))],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        SqlOutcome::Affected {
            command: "UPDATE".into(),
            rows: 2
        }
    );
    let out = run(
        &db.sql("WITH gone AS (SELECT 1) DELETE FROM S.t WHERE a = 1"),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        SqlOutcome::Affected {
            command: "DELETE".into(),
            rows: 1
        }
    );
    // RETURNING gives rows; a SELECT with no rows is still a table with columns.
    let data = table(&db.sql("UPDATE S.t SET a = a + 1 RETURNING a"), &[]).await;
    assert_eq!(data["rows"], json!([[21], [31]]));
    let data = table(&db.sql("SELECT a, a AS b FROM S.t WHERE false"), &[]).await;
    assert_eq!(data["columns"], json!(["a", "b"]));
    assert_eq!(data["rows"], json!([]));
    db.cleanup().await;
}

#[tokio::test]
async fn sql_errors_show_postgres_message_and_position() {
    match run("SELECT *\nFROM nope_does_not_exist", &[]).await {
        Err(SqlError::Postgres(msg)) => {
            assert!(
                msg.starts_with("relation \"nope_does_not_exist\" does not exist"),
                "{msg}"
            );
            let caret = format!("LINE 2: FROM nope_does_not_exist\n{}^", " ".repeat(13));
            assert!(msg.contains(&caret), "{msg}");
        }
        other => panic!("expected a Postgres error, got {other:?}"),
    }
    // The position is reported against the cell's code, placeholders included.
    match run("SELECT {long_name}::int + nope", &[("long_name", int(1))]).await {
        Err(SqlError::Postgres(msg)) => {
            assert!(msg.contains("column \"nope\" does not exist"), "{msg}");
            let line = "SELECT {long_name}::int + nope";
            let caret = format!(
                "LINE 1: {line}\n{}^",
                " ".repeat(8 + line.find("nope").unwrap())
            );
            assert!(msg.contains(&caret), "{msg}");
        }
        other => panic!("expected a Postgres error, got {other:?}"),
    }
    match run("SELECT 1; SELECT 2", &[]).await {
        Err(SqlError::Postgres(msg)) => {
            assert!(msg.contains("multiple commands"), "{msg}");
            assert!(msg.contains("single statement"), "{msg}");
        }
        other => panic!("expected a Postgres error, got {other:?}"),
    }
    match run("-- nothing here\n;", &[]).await {
        Err(SqlError::Postgres(msg)) => assert!(msg.contains("no statement"), "{msg}"),
        other => panic!("expected a Postgres error, got {other:?}"),
    }
}

#[tokio::test]
async fn times_out() {
    let start = Instant::now();
    let result = run_with(
        &db_url(),
        "SELECT pg_sleep(5)",
        &[],
        Duration::from_secs(1),
        1000,
        &SqlCanceller::new(),
    )
    .await;
    assert_eq!(result, Err(SqlError::Timeout(1)));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        SqlError::Timeout(1).to_string(),
        "Query timed out after 1 s"
    );
}

/// Whether some backend still runs a query containing `needle`.
async fn still_running(needle: &str) -> bool {
    let (client, conn) = tokio_postgres::connect(&db_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' \
             AND pid <> pg_backend_pid()",
            &[&needle],
        )
        .await
        .unwrap();
    !rows.is_empty()
}

#[tokio::test]
async fn cancel_stops_the_running_query() {
    let canceller = SqlCanceller::new();
    // Cancelling while idle is harmless and does not affect the next run.
    canceller.cancel();
    let marker = format!("cancel_me_{}", std::process::id());
    let code = format!("SELECT pg_sleep(10) AS {marker}");
    let task = {
        let canceller = canceller.clone();
        let code = code.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let r = run_with(
                &db_url(),
                &code,
                &[],
                Duration::from_secs(30),
                1000,
                &canceller,
            )
            .await;
            (r, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    canceller.cancel();
    let (result, elapsed) = task.await.unwrap();
    assert_eq!(result, Err(SqlError::Cancelled));
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // The server stopped the query too.
    let deadline = Instant::now() + Duration::from_secs(3);
    while still_running(&marker).await {
        assert!(
            Instant::now() < deadline,
            "query still running on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The canceller works for the next run.
    let out = run_with(
        &db_url(),
        "SELECT 1 AS one",
        &[],
        Duration::from_secs(10),
        1000,
        &canceller,
    )
    .await;
    assert!(matches!(out, Ok(SqlOutcome::Table(_))), "{out:?}");
}

#[tokio::test]
async fn connection_errors_never_show_the_password() {
    let conn = "postgres://bob:Sup3rS3cretPw@127.0.0.1:1/db";
    let err = run_with(
        conn,
        "SELECT 1",
        &[],
        Duration::from_secs(5),
        10,
        &SqlCanceller::new(),
    )
    .await
    .unwrap_err();
    let SqlError::Connect(msg) = &err else {
        panic!("expected a Connect error, got {err:?}")
    };
    assert!(!err.to_string().contains("Sup3rS3cretPw"), "{err}");
    assert!(msg.contains("bob:***@127.0.0.1:1"), "{msg}");

    let err = run_with(
        &format!("{}?sslmode=require", db_url()),
        "SELECT 1",
        &[],
        Duration::from_secs(5),
        10,
        &SqlCanceller::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SqlError::Connect(m) if m.contains("TLS")),
        "{err:?}"
    );

    let scrubbed = scrub_password(
        "postgresql://u:p%40ss!word@h/db",
        "failed: postgresql://u:p%40ss!word@h/db rejected password p@ss!word",
    );
    assert_eq!(
        scrubbed,
        "failed: postgresql://u:***@h/db rejected password ***"
    );
    let scrubbed = scrub_password(
        "postgres://h/db?user=u&password=qwerty123",
        "auth for qwerty123 failed",
    );
    assert_eq!(scrubbed, "auth for *** failed");
}

#[tokio::test]
async fn no_connection_string() {
    let err = run_with(
        "",
        "SELECT 1",
        &[],
        Duration::from_secs(5),
        10,
        &SqlCanceller::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(err, SqlError::NoConnection);
    assert_eq!(
        err.to_string(),
        "No database connection configured for this notebook"
    );
}
