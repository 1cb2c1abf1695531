//! Shared test harness: a real server on a fresh database (SQLite or PostgreSQL).
#![allow(dead_code)]

pub mod cells;
pub mod instances;
pub mod procs;
pub mod python;
pub mod tokens;
pub mod wheels;
pub mod ws;

use std::path::PathBuf;

use reactive_notebook::config::{Config, DatabaseTarget};
use reactive_notebook::server::{self, RunningServer};
use serde_json::Value;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Admin URL of the PostgreSQL server used for tests.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, db: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("TEST_DATABASE_URL is a URL");
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

async fn admin_exec(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL (TEST_DATABASE_URL)");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// A fresh, empty PostgreSQL database; returns its URL.
pub async fn create_pg_database() -> (String, String) {
    let name = format!("rn_test_{}", uuid::Uuid::new_v4().simple());
    admin_exec(&format!("CREATE DATABASE {name}")).await;
    (name.clone(), with_database(&admin_url(), &name))
}

/// Drops a database made by [`create_pg_database`].
pub async fn drop_pg_database(name: &str) {
    admin_exec(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// A fresh storage location for one test.
pub struct TestDb {
    pub target: DatabaseTarget,
    pub data_dir: PathBuf,
    pg_name: Option<String>,
    _dir: tempdir::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        let dir = tempdir::TempDir::new();
        let data_dir = dir.path().to_path_buf();
        let (target, pg_name) = match backend {
            Backend::Sqlite => (DatabaseTarget::Sqlite(data_dir.join("notebooks.db")), None),
            Backend::Postgres => {
                let (name, url) = create_pg_database().await;
                (DatabaseTarget::Postgres(url), Some(name))
            }
        };
        TestDb {
            target,
            data_dir,
            pg_name,
            _dir: dir,
        }
    }

    /// Test settings on this database: PEM-key auth with the test key.
    pub fn config(&self) -> Config {
        let mut config = Config::with_data_dir(&self.data_dir);
        config.bind = "127.0.0.1:0".into();
        config.database = self.target.clone();
        config.auth.jwt_key = Some(tokens::public_pem());
        config.python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        config
    }

    /// [`TestDb::config`] letting SQL cells reach the test PostgreSQL on the loopback
    /// (`SQL_ALLOWED_HOSTS=127.0.0.1`), which the server refuses by default.
    pub fn config_with_local_sql(&self) -> Config {
        let mut config = self.config();
        allow_local_sql(&mut config);
        config
    }

    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_name {
            drop_pg_database(name).await;
        }
    }
}

/// Lets SQL cells reach 127.0.0.1, where the test PostgreSQL listens.
pub fn allow_local_sql(config: &mut Config) {
    config.sql_hosts.allowed = vec!["127.0.0.1".into()];
}

/// A running server plus an HTTP client.
pub struct TestServer {
    pub db: TestDb,
    /// The settings it was started with (a restart uses them again).
    pub config: Config,
    pub server: Option<RunningServer>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let db = TestDb::new(backend).await;
        let config = db.config();
        Self::start_with(db, config).await
    }

    /// A server whose SQL cells may reach the test PostgreSQL on 127.0.0.1.
    pub async fn start_local_sql(backend: Backend) -> TestServer {
        let db = TestDb::new(backend).await;
        let config = db.config_with_local_sql();
        Self::start_with(db, config).await
    }

    pub async fn start_with(db: TestDb, config: Config) -> TestServer {
        let server = server::start(config.clone()).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        TestServer {
            db,
            config,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server (the database stays).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }

    /// Starts a new server on the same database with the same settings.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
    }

    pub async fn finish(mut self) {
        self.stop().await;
        self.db.cleanup().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request as `user` (None = no Authorization header); returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(user) = user {
            req = req.bearer_auth(tokens::token_for(user));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body read");
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str, user: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(user), None)
            .await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(user), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, user: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(user), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, user: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, Some(user), None)
            .await
    }

    /// Creates a notebook and returns its id.
    pub async fn new_notebook(&self, user: &str, name: &str) -> String {
        let (status, body) = self
            .post("/api/notebooks", user, serde_json::json!({ "name": name }))
            .await;
        assert_eq!(status, 200, "{body}");
        body["notebook_id"]
            .as_str()
            .expect("notebook_id")
            .to_string()
    }

    /// Creates a notebook without the empty first cell every new notebook gets, for tests that
    /// count positions from their own cells.
    pub async fn new_empty_notebook(&self, user: &str, name: &str) -> String {
        let id = self.new_notebook(user, name).await;
        let n = self.notebook(user, &id).await;
        for cell in n["cells"].as_array().into_iter().flatten() {
            let cell_id = cell["id"].as_str().expect("cell id");
            let (status, body) = self
                .delete(&format!("/api/notebooks/{id}/cells/{cell_id}"), user)
                .await;
            assert_eq!(status, 200, "{body}");
        }
        id
    }

    /// Adds a cell and returns its id.
    pub async fn new_cell(&self, user: &str, notebook: &str, kind: &str, code: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/api/notebooks/{notebook}/cells"),
                user,
                serde_json::json!({ "type": kind, "code": code }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["cell_id"].as_str().expect("cell_id").to_string()
    }

    /// GET /api/notebooks/{id} as `user`, asserting 200.
    pub async fn notebook(&self, user: &str, notebook: &str) -> Value {
        let (status, body) = self.get(&format!("/api/notebooks/{notebook}"), user).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Declares one test per backend: `both_backends!(name, |backend| async move { ... });`
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[actix_web::test]
            async fn sqlite() {
                ($body)($crate::common::Backend::Sqlite).await
            }

            #[actix_web::test]
            async fn postgres() {
                ($body)($crate::common::Backend::Postgres).await
            }
        }
    };
}

/// A temporary directory removed on drop (kept tiny to avoid another dependency).
pub mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            let path = std::env::temp_dir().join(format!("rn-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
