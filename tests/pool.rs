//! `KERNEL_POOL`: spare kernels started ahead of time; a brand-new notebook adopts one, its
//! folders become the notebook's, and spares never count against a user's quota.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_pool";

fn spares(data_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("kernels"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".spare-"))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// A spare's folder, once it is there and its kernel had time to start.
async fn wait_for_spare(data_dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(spare) = spares(data_dir).into_iter().next() {
            // The folder appears as the kernel starts, which takes well under this.
            tokio::time::sleep(Duration::from_secs(3)).await;
            return spare;
        }
        assert!(Instant::now() < deadline, "no spare kernel was started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_and_settle(s: &TestServer, nb: &str, cell: &str) -> Value {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            U,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = s.notebook(U, nb).await;
        let c = n["cells"]
            .as_array()
            .and_then(|cells| cells.iter().find(|c| c["id"] == cell))
            .cloned()
            .unwrap_or_default();
        if !matches!(c["status"].as_str(), Some("queued" | "running")) {
            return c;
        }
        assert!(Instant::now() < deadline, "cell did not settle: {n:#}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn server(pool: usize, per_user: usize, max: usize) -> TestServer {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.kernel_pool = pool;
    config.quotas.kernels_per_user = per_user;
    config.quotas.max_kernels = max;
    TestServer::start_with(db, config).await
}

#[actix_web::test]
async fn a_new_notebook_adopts_a_spare_and_its_folder() {
    let s = server(1, 4, 8).await;
    let data_dir = s.db.data_dir.clone();
    let spare = wait_for_spare(&data_dir).await;
    let nb = s.new_empty_notebook(U, "adopts").await;
    let cell = s
        .new_cell(
            U,
            &nb,
            "python",
            "import os\nopen('hello.txt', 'w').write('hi')\nos.getpid() > 0",
        )
        .await;
    let c = run_and_settle(&s, &nb, &cell).await;
    assert_eq!(c["status"], "success", "{c}");
    // The spare's folder became the notebook's: what the cell wrote is there.
    assert!(!spare.exists(), "the spare's folder was moved");
    let written = data_dir.join("kernels").join(&nb).join("hello.txt");
    assert_eq!(
        std::fs::read_to_string(&written).ok().as_deref(),
        Some("hi")
    );
    assert!(
        data_dir.join("packages").join(&nb).is_dir(),
        "its package layer too"
    );
    // The pool starts another spare.
    let next = wait_for_spare(&data_dir).await;
    assert_ne!(next, spare);
    s.finish().await;
}

#[actix_web::test]
async fn spares_never_count_against_a_users_quota() {
    // One kernel per user, two on the server: the spare takes the second.
    let s = server(1, 1, 2).await;
    let data_dir = s.db.data_dir.clone();
    wait_for_spare(&data_dir).await;
    let a = s.new_empty_notebook(U, "a").await;
    let cell = s.new_cell(U, &a, "python", "x = 1\nx").await;
    let c = run_and_settle(&s, &a, &cell).await;
    assert_eq!(c["status"], "success", "{c}");
    s.finish().await;
}

#[actix_web::test]
async fn a_spare_gives_way_when_the_server_is_full() {
    // The spare holds the server's only kernel slot; a notebook that is not new (its
    // folder exists) cannot adopt it, so the spare is stopped to make room.
    let s = server(1, 4, 1).await;
    let data_dir = s.db.data_dir.clone();
    let nb = s.new_empty_notebook(U, "old").await;
    std::fs::create_dir_all(data_dir.join("kernels").join(&nb)).expect("work dir");
    wait_for_spare(&data_dir).await;
    let cell = s.new_cell(U, &nb, "python", "y = 2\ny").await;
    let c = run_and_settle(&s, &nb, &cell).await;
    assert_eq!(c["status"], "success", "{c}");
    s.finish().await;
}
