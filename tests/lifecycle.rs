//! Server lifecycle: readiness, idle rooms stopping their kernels, graceful shutdown.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::host_pids_in;
use common::tokens::token_for;
use common::ws::{Frame, WsClient};
use common::{Backend, TestDb, TestServer};
use serde_json::json;

const U: &str = "user_life";

#[actix_web::test]
async fn readiness_reports_a_lost_database() {
    let db = TestDb::new(Backend::Postgres).await;
    let config = db.config();
    let s = TestServer::start_with(db, config).await;
    let ready = s
        .http
        .get(s.url("/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status().as_u16(), 200);
    // Take the database away under the running server.
    if let reactive_notebook::config::DatabaseTarget::Postgres(url) = &s.db.target {
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        common::drop_pg_database(&name).await;
    }
    let ready = s
        .http
        .get(s.url("/health/ready"))
        .send()
        .await
        .expect("sent");
    assert_eq!(ready.status().as_u16(), 503);
    let health = s.http.get(s.url("/health")).send().await.expect("sent");
    assert_eq!(
        health.status().as_u16(),
        200,
        "liveness does not depend on the database"
    );
    s.finish().await;
}

#[actix_web::test]
async fn idle_rooms_stop_with_their_kernels() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.room_idle_secs = 1;
    let s = TestServer::start_with(db, config).await;
    let nb = s.new_notebook(U, "idle").await;
    let cell = s.new_cell(U, &nb, "python", "import os\nos.getpid()").await;
    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
    tab.send(json!({"type": "run_cell", "cellId": cell})).await;
    let events = tab
        .until(Duration::from_secs(30), |v| {
            v["type"] == "cell_status" && v["status"] == "success"
        })
        .await;
    let pid: i32 = events
        .iter()
        .find(|v| v["type"] == "cell_output")
        .and_then(|v| v["output"]["data"].as_str())
        .and_then(|d| d.parse().ok())
        .expect("the kernel's pid");
    // That pid is the kernel's inside its PID namespace; on the host, find its processes by
    // their working directory.
    let work_dir = s.db.data_dir.join("kernels").join(&nb);
    let host_pids = host_pids_in(&work_dir);
    assert!(!host_pids.is_empty(), "kernel processes in {work_dir:?}");
    let rooms = &s.server.as_ref().expect("running").rooms;
    assert_eq!(rooms.len().await, 1);
    // An open tab keeps the room (and kernel) alive.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(rooms.len().await, 1);
    drop(tab);
    let deadline = Instant::now() + Duration::from_secs(15);
    while rooms.len().await > 0 {
        assert!(Instant::now() < deadline, "the idle room never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The kernel's processes are gone too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_pids_in(&work_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "kernel {host_pids:?} still alive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Opening the notebook again starts a fresh room; outputs are still there, stale (the
    // values died with the kernel).
    let n = s.notebook(U, &nb).await;
    let reopened = common::cells::cell(&n, &cell);
    assert_eq!(reopened["outputs"][0]["data"], pid.to_string());
    assert_eq!(reopened["status"], "stale");
    s.finish().await;
}

#[actix_web::test]
async fn sigterm_closes_sessions_with_1001_and_commits() {
    let dir = common::tempdir::TempDir::new();
    let port = free_port();
    let mut child = sqlite_instance(dir.path(), port, Stdio::null());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let token = token_for(U);
    assert!(
        answers_health(&http, port, &mut child).await,
        "server answered"
    );
    let nb: serde_json::Value = http
        .post(format!("{base}/api/notebooks"))
        .bearer_auth(&token)
        .json(&json!({"name": "shutdown"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let nb = nb["notebook_id"].as_str().expect("id").to_string();
    let cell: serde_json::Value = http
        .post(format!("{base}/api/notebooks/{nb}/cells"))
        .bearer_auth(&token)
        .json(&json!({"type": "python", "code": "print('kept')"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let cell = cell["cell_id"].as_str().expect("cell").to_string();
    let mut tab = WsClient::join(&base, &nb, &token).await;
    tab.send(json!({"type": "run_cell", "cellId": cell})).await;
    tab.until(Duration::from_secs(30), |v| {
        v["type"] == "cell_status" && v["status"] == "success"
    })
    .await;
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let code = loop {
        match tab.next(Duration::from_secs(15)).await {
            Frame::Closed(code) => break code,
            Frame::Json(_) => continue,
        }
    };
    assert_eq!(code, 1001);
    let status = child.wait().expect("server exits");
    assert!(status.success(), "{status}");
    // The run's results were committed: a new server on the same data sees them.
    let mut child = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", dir.path())
        .env("CLERK_JWT_KEY", common::tokens::public_pem())
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server restarts");
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        if let Ok(resp) = http
            .get(format!("{base}/api/notebooks/{nb}"))
            .bearer_auth(&token)
            .send()
            .await
        {
            body = resp.json().await.unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let kept = common::cells::cell(&body, &cell);
    assert_eq!(kept["stdout"], "kept\n", "{body}");
    assert_eq!(
        kept["status"], "stale",
        "its values died with the old server"
    );
}

/// Starts the binary on `dir`'s SQLite file at `port`, its stderr going to `stderr`.
fn sqlite_instance(dir: &std::path::Path, port: u16, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", dir)
        .env("CLERK_JWT_KEY", common::tokens::public_pem())
        .env(
            "PYTHON",
            std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        )
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("server starts")
}

/// Polls the instance's `/health` for up to 10 s: whether it answered. Panics if the process
/// exits meanwhile, with its exit status.
async fn answers_health(http: &reqwest::Client, port: u16, child: &mut Child) -> bool {
    for _ in 0..100 {
        if let Some(status) = child.try_wait().expect("poll") {
            panic!("instance on port {port} exited: {status}");
        }
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[actix_web::test]
async fn a_second_instance_on_one_sqlite_file_refuses_to_start() {
    let dir = common::tempdir::TempDir::new();
    let http = reqwest::Client::new();
    let first_port = free_port();
    let mut first = sqlite_instance(dir.path(), first_port, Stdio::null());
    assert!(
        answers_health(&http, first_port, &mut first).await,
        "first instance answered"
    );

    // Another port, same data: it must stop before touching the file, with a clear message.
    let second = sqlite_instance(dir.path(), free_port(), Stdio::piped());
    let out = second.wait_with_output().expect("second instance exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "second instance kept running: {stderr}"
    );
    assert!(
        stderr.contains("already serving the SQLite database")
            && stderr.contains(&format!("pid {}", first.id()))
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    // The first one is unharmed.
    let health = http
        .get(format!("http://127.0.0.1:{first_port}/health"))
        .send()
        .await
        .expect("first instance still answers");
    assert!(health.status().is_success());

    // The lock dies with its process, however it dies: kill -9 frees the file at once.
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let third_port = free_port();
    let mut third = sqlite_instance(dir.path(), third_port, Stdio::null());
    let up = answers_health(&http, third_port, &mut third).await;
    third.kill().expect("stop");
    let _ = third.wait();
    assert!(up, "an instance starts once the holder is gone");
}
