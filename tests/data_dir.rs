//! The data directory is private: created 0700 (tightened if looser), and every file the server
//! writes in it (SQLite database and its -wal/-shm files, the local signing key) is 0600.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use reactive_notebook::auth::LOCAL_KEY_FILE;
use reactive_notebook::config::DatabaseTarget;
use serde_json::{json, Value};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Every file below `dir` except the kernels' working directories (the sandbox's business).
fn server_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read data dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path != dir.join("kernels") {
                    todo.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A server in local sign-in mode (it creates its own signing key) on `data_dir`, and a token.
async fn local_server(backend: Backend, data_dir: Option<PathBuf>) -> (TestServer, String) {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    if let Some(dir) = data_dir {
        if backend == Backend::Sqlite {
            config.database = DatabaseTarget::Sqlite(dir.join("notebooks.db"));
        }
        config.data_dir = dir;
    }
    config.auth.jwt_key = None;
    let s = TestServer::start_with(db, config).await;
    let token = s
        .server
        .as_ref()
        .expect("running")
        .verifier
        .mint("owner", 3600)
        .expect("local token");
    (s, token)
}

async fn call(
    s: &TestServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let resp = s
        .http
        .request(method, s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request sent");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// Writes to the store and starts a kernel: a notebook with a Python cell that ran.
async fn use_the_server(s: &TestServer, token: &str) {
    let nb = call(
        s,
        token,
        reqwest::Method::POST,
        "/api/notebooks",
        json!({"name": "x"}),
    )
    .await["notebook_id"]
        .as_str()
        .expect("notebook_id")
        .to_string();
    let cell = call(
        s,
        token,
        reqwest::Method::POST,
        &format!("/api/notebooks/{nb}/cells"),
        json!({"type": "python", "code": "print(6 * 7)"}),
    )
    .await["cell_id"]
        .as_str()
        .expect("cell_id")
        .to_string();
    call(
        s,
        token,
        reqwest::Method::POST,
        &format!("/api/notebooks/{nb}/cells/{cell}/run"),
        json!({}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = call(
            s,
            token,
            reqwest::Method::GET,
            &format!("/api/notebooks/{nb}"),
            Value::Null,
        )
        .await;
        let ran = common::cells::cell(&n, &cell);
        let status = ran["status"].as_str().unwrap_or("").to_string();
        if !matches!(status.as_str(), "queued" | "running" | "idle") {
            // The kernel's working directory under DATA_DIR/kernels could be created.
            assert_eq!(status, "success", "{n:#}");
            assert_eq!(ran["stdout"], "42\n");
            return;
        }
        assert!(Instant::now() < deadline, "never finished: {n:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_private(data_dir: &Path, backend: Backend) {
    assert_eq!(mode(data_dir), 0o700, "{}", data_dir.display());
    assert_eq!(mode(&data_dir.join(LOCAL_KEY_FILE)), 0o600);
    if backend == Backend::Sqlite {
        for name in ["notebooks.db", "notebooks.db-wal", "notebooks.db-shm"] {
            assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
        }
    }
    let files = server_files(data_dir);
    assert!(!files.is_empty());
    for file in files {
        assert_eq!(mode(&file) & 0o077, 0, "{} is private", file.display());
    }
}

both_backends!(a_fresh_data_dir_is_private, |backend: Backend| async move {
    let parent = common::tempdir::TempDir::new();
    let data_dir = parent.path().join("nested").join("data");
    let (s, token) = local_server(backend, Some(data_dir.clone())).await;
    use_the_server(&s, &token).await;
    assert_private(&data_dir, backend);
    s.finish().await;
});

#[actix_web::test]
async fn a_loose_data_dir_is_tightened_at_start() {
    let (mut s, token) = local_server(Backend::Sqlite, None).await;
    use_the_server(&s, &token).await;
    let data_dir = s.config.data_dir.clone();
    s.stop().await;
    // As a careless copy or an older version might have left it.
    set_mode(&data_dir, 0o755);
    for file in server_files(&data_dir) {
        set_mode(&file, 0o644);
    }
    assert_eq!(mode(&data_dir.join("notebooks.db")), 0o644);
    s.restart().await;
    let token = s
        .server
        .as_ref()
        .expect("running")
        .verifier
        .mint("owner", 3600)
        .expect("local token");
    use_the_server(&s, &token).await;
    assert_private(&data_dir, Backend::Sqlite);
    s.finish().await;
}
