//! The web UI in a real browser: Debian's chromium driven by playwright-core
//! (tests/browser/ui.test.mjs) against this server, started in-process in local sign-in mode.
//! Needs `scripts/setup-browser.sh` to have run; fails (never skips) when it has not.
//! Screenshots of every step land in test-output/browser/ — look at them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::wheels::build_probe_wheel;
use common::{admin_url, Backend, TestDb, TestServer};

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Everything the browser test needs, or a message saying how to get it.
fn check_prerequisites(repo: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!("{CHROMIUM} (Debian's chromium)"));
    }
    if !repo
        .join("tests/browser/node_modules/playwright-core/package.json")
        .exists()
    {
        missing.push("tests/browser/node_modules/playwright-core".to_string());
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (Node.js 20 or newer)".to_string());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the browser test cannot run: missing {}. Run scripts/setup-browser.sh first.",
            missing.join(", ")
        ))
    }
}

#[actix_web::test]
async fn ui_works_in_a_real_browser() {
    let repo = repo();
    if let Err(message) = check_prerequisites(&repo) {
        panic!("{message}");
    }

    // Local sign-in mode: the server's own key in its data directory signs the token.
    let db = TestDb::new(Backend::Sqlite).await;
    // The page points a SQL cell at the test PostgreSQL on 127.0.0.1.
    let mut config = db.config_with_local_sql();
    config.auth.jwt_key = None;
    // Packages install offline from a folder holding one small wheel, `rn-probe` (module rn_probe).
    let wheels = db.data_dir.join("test-wheels");
    std::fs::create_dir_all(&wheels).expect("create the wheels folder");
    build_probe_wheel(&wheels, "rn-probe", "rn_probe");
    config.python_wheels_dir = Some(wheels);
    let token = reactive_notebook::auth::mint_local_token(&db.data_dir, "local", 3600)
        .expect("mint a local token");
    // Two more people the owner shares the notebook with: an editor and a viewer.
    let editor_token = reactive_notebook::auth::mint_local_token(&db.data_dir, "bob", 3600)
        .expect("mint a local token");
    let viewer_token = reactive_notebook::auth::mint_local_token(&db.data_dir, "carol", 3600)
        .expect("mint a local token");
    let server = TestServer::start_with(db, config).await;

    // A second server owning its Python environment, provisioned from an empty wheels folder:
    // provisioning fails at once, which the page must show with pip's error and a Retry button.
    let env_db = TestDb::new(Backend::Sqlite).await;
    let mut env_config = env_db.config();
    env_config.auth.jwt_key = None;
    env_config.managed_python = true;
    env_config.python = "python3".into();
    let empty = env_db.data_dir.join("no-wheels");
    std::fs::create_dir_all(&empty).expect("create the empty wheels folder");
    env_config.python_wheels_dir = Some(empty);
    let env_token = reactive_notebook::auth::mint_local_token(&env_db.data_dir, "local", 3600)
        .expect("mint a local token");
    let env_server = TestServer::start_with(env_db, env_config).await;

    let out_dir = repo.join("test-output/browser");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("create test-output/browser");

    // The server runs on this thread's runtime: wait for node on a blocking thread.
    let script = repo.join("tests/browser/ui.test.mjs");
    let args = vec![
        script.display().to_string(),
        server.base.clone(),
        token,
        out_dir.display().to_string(),
        admin_url(),
        env_server.base.clone(),
        env_token,
        editor_token,
        viewer_token,
    ];
    let output = tokio::task::spawn_blocking(move || Command::new("node").args(&args).output())
        .await
        .expect("join the node runner")
        .expect("start node");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    server.finish().await;
    env_server.finish().await;
    assert!(
        output.status.success(),
        "browser test failed ({}); screenshots in {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        out_dir.display()
    );
}
