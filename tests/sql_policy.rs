//! The SQL connection policy over REST: local hosts and sockets are refused unless
//! `SQL_ALLOWED_HOSTS` allows them, `SQL_DENIED_HOSTS` wins, both when a connection string is
//! saved and (after DNS resolution) whenever a cell connects.

mod common;

use common::cells::{error_of, run_settled};
use common::{admin_url, Backend, TestDb, TestServer};
use reactive_notebook::config::Config;
use reactive_notebook::server::{self, StartError};
use serde_json::{json, Value};

const U: &str = "user_policy";

/// The test PostgreSQL's URL with its host replaced by `host` (as written in a URL).
fn pg_url_with_host(host: &str) -> String {
    let url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    let port = url.port().unwrap_or(5432);
    let user = if url.username().is_empty() {
        "postgres"
    } else {
        url.username()
    };
    format!("postgres://{user}@{host}:{port}{}", url.path())
}

async fn set_db(s: &TestServer, nb: &str, conn: &str) -> (u16, Value) {
    s.put(
        &format!("/api/notebooks/{nb}/db"),
        U,
        json!({ "connection_string": conn }),
    )
    .await
}

async fn server_with(setup: impl FnOnce(&mut Config)) -> TestServer {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    setup(&mut config);
    TestServer::start_with(db, config).await
}

fn assert_refused(cell: &Value, setting: &str) {
    assert_eq!(cell["status"], "error", "{cell:#}");
    let error = error_of(cell);
    assert!(error.contains(setting), "error names {setting}: {error}");
    assert_eq!(cell["outputs"], json!([]), "{cell:#}");
}

#[actix_web::test]
async fn local_hosts_and_sockets_are_refused_when_saved() {
    let s = server_with(|_| {}).await;
    let nb = s.new_notebook(U, "policy").await;
    for conn in [
        pg_url_with_host("127.0.0.1"),
        pg_url_with_host("localhost"),
        pg_url_with_host("[::1]"),
        pg_url_with_host("0.0.0.0"),
        pg_url_with_host("169.254.169.254"),
        pg_url_with_host("[::ffff:127.0.0.1]"),
        pg_url_with_host("127.1"),
        pg_url_with_host("db.example,127.0.0.1"),
        "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".to_string(),
        "postgres://postgres@db.example/postgres?host=%2Fvar%2Frun%2Fpostgresql".to_string(),
        "postgres://postgres@db.example/postgres?hostaddr=127.0.0.1".to_string(),
    ] {
        let (status, body) = set_db(&s, &nb, &conn).await;
        assert_eq!(status, 400, "{conn} -> {body}");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains("SQL_ALLOWED_HOSTS"), "{conn} -> {detail}");
        assert_eq!(s.notebook(U, &nb).await["db_conn_string"], Value::Null);
    }
    // A host name is only judged when a cell connects (after DNS).
    let (status, body) = set_db(&s, &nb, "postgres://u:pw@db.example/x").await;
    assert_eq!(status, 200, "{body}");
    s.finish().await;
}

#[actix_web::test]
async fn resolved_local_addresses_are_refused_when_a_cell_connects() {
    // Saved while an administrator allowed them, so only the connect-time check stands between
    // the cells and the local addresses once the allowance is gone.
    let mut s = server_with(|c| {
        c.sql_hosts.allowed = [
            "localhost",
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "169.254.169.254",
            "/var/run/postgresql",
        ]
        .map(String::from)
        .to_vec();
    })
    .await;
    let targets = [
        // `localhost` is a name: the server resolves it and refuses its address.
        (pg_url_with_host("localhost"), "localhost ("),
        (pg_url_with_host("127.0.0.1"), "127.0.0.1"),
        (pg_url_with_host("[::1]"), "::1"),
        (pg_url_with_host("0.0.0.0"), "0.0.0.0"),
        (pg_url_with_host("169.254.169.254"), "169.254.169.254"),
        (
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres".to_string(),
            "/var/run/postgresql",
        ),
    ];
    let mut cells = Vec::new();
    for (conn, _) in &targets {
        let nb = s.new_notebook(U, conn).await;
        let (status, body) = set_db(&s, &nb, conn).await;
        assert_eq!(status, 200, "{conn} -> {body}");
        let q = s.new_cell(U, &nb, "sql", "SELECT 1 AS one").await;
        cells.push((nb, q));
    }
    // While allowed by name, the resolved and pinned address works.
    let (nb, q) = &cells[0];
    let ok = run_settled(&s, U, nb, q).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["outputs"][0]["data"]["rows"], json!([[1]]));

    s.config.sql_hosts.allowed.clear();
    s.restart().await;
    for ((conn, shown), (nb, q)) in targets.iter().zip(&cells) {
        let refused = run_settled(&s, U, nb, q).await;
        assert_refused(&refused, "SQL_ALLOWED_HOSTS");
        assert!(
            error_of(&refused).contains(shown),
            "{conn}: the error names the target {shown}: {refused:#}"
        );
    }
    // The notebook is not stuck: the next run answers the same way, at once.
    let (nb, q) = &cells[1];
    assert_refused(&run_settled(&s, U, nb, q).await, "SQL_ALLOWED_HOSTS");
    s.finish().await;
}

#[actix_web::test]
async fn an_allowed_entry_works_and_a_denied_entry_beats_it() {
    let mut s = TestServer::start_local_sql(Backend::Sqlite).await;
    let nb = s.new_notebook(U, "allowed").await;
    let conn = pg_url_with_host("127.0.0.1");
    let (status, body) = set_db(&s, &nb, &conn).await;
    assert_eq!(status, 200, "{body}");
    let q = s.new_cell(U, &nb, "sql", "SELECT 41 + 1 AS answer").await;
    let ok = run_settled(&s, U, &nb, &q).await;
    assert_eq!(ok["status"], "success", "{ok:#}");
    assert_eq!(ok["outputs"][0]["data"]["rows"], json!([[42]]));

    // Still allowed, now also denied (as a CIDR): denied wins, at connect time and when saved.
    s.config.sql_hosts.denied = vec!["127.0.0.0/8".into()];
    s.restart().await;
    assert_refused(&run_settled(&s, U, &nb, &q).await, "SQL_DENIED_HOSTS");
    let (status, body) = set_db(&s, &nb, &conn).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("SQL_DENIED_HOSTS"),
        "{body}"
    );

    // Denied by name although allowed by address: a name is refused before it is resolved.
    s.config.sql_hosts.allowed = vec!["127.0.0.1".into(), "localhost".into()];
    s.config.sql_hosts.denied = vec!["localhost".into()];
    s.restart().await;
    let (status, body) = set_db(&s, &nb, &pg_url_with_host("localhost")).await;
    assert_eq!(status, 400, "{body}");
    let ok = run_settled(&s, U, &nb, &q).await;
    assert_eq!(
        ok["status"], "success",
        "127.0.0.1 itself is still allowed: {ok:#}"
    );
    s.finish().await;
}

#[actix_web::test]
async fn an_invalid_host_list_stops_the_server() {
    for (allowed, denied, name) in [
        (vec!["10.0.0.0/40".to_string()], vec![], "SQL_ALLOWED_HOSTS"),
        (vec![], vec!["db:notaport".to_string()], "SQL_DENIED_HOSTS"),
    ] {
        let db = TestDb::new(Backend::Sqlite).await;
        let mut config = db.config();
        config.sql_hosts.allowed = allowed;
        config.sql_hosts.denied = denied;
        match server::start(config).await {
            Err(e @ StartError::Setting(_)) => {
                assert!(e.to_string().contains(name), "{e}")
            }
            Err(e) => panic!("expected a setting error naming {name}, got {e}"),
            Ok(running) => {
                running.stop().await;
                panic!("the server started with an invalid {name}");
            }
        }
        db.cleanup().await;
    }
}
