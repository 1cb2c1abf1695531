//! The managed Python environment (`PYTHON` unset): provisioned in the background from an empty
//! DATA_DIR, offline from the wheel directory `scripts/fetch-wheels.sh` fills (`.wheels/`, or
//! `PYTHON_WHEELS_DIR`); runs requested meanwhile wait as `queued`; a failure falls back to the
//! bare interpreter.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_pyenv";

/// Provisioning the whole stack on a 2-core machine takes minutes; this only bounds a hang.
const PROVISION_LIMIT: Duration = Duration::from_secs(900);

/// The wheel directory `scripts/fetch-wheels.sh` fills; the test fails if it is missing.
fn wheels_dir() -> PathBuf {
    let dir = std::env::var_os("PYTHON_WHEELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".wheels"));
    let has_wheels = std::fs::read_dir(&dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "whl"))
    });
    assert!(
        has_wheels,
        "no wheels in {}: run scripts/fetch-wheels.sh (scripts/test.sh does) first",
        dir.display()
    );
    dir
}

async fn managed_server(backend: Backend, wheels: PathBuf) -> TestServer {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.managed_python = true;
    config.python_wheels_dir = Some(wheels);
    TestServer::start_with(db, config).await
}

async fn environment(s: &TestServer) -> Value {
    let (status, body) = s.get("/api/environment", U).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the environment until it leaves `provisioning`, checking every snapshot's shape and
/// that progress never goes back; `each` sees every snapshot on the way.
async fn wait_provisioned(s: &TestServer, mut each: impl FnMut(&Value)) -> Value {
    let deadline = Instant::now() + PROVISION_LIMIT;
    let mut last_done = 0;
    loop {
        let env = environment(s).await;
        let progress = &env["progress"];
        let (done, total) = (progress["done"].as_u64(), progress["total"].as_u64());
        let (Some(done), Some(total)) = (done, total) else {
            panic!("progress has done and total: {env}");
        };
        assert!(progress["current"].is_string(), "{env}");
        assert!(env["python"].is_string(), "{env}");
        assert!(done <= total || total == 0, "{env}");
        assert!(done >= last_done, "progress went back: {env}");
        last_done = done;
        each(&env);
        match env["state"].as_str() {
            Some("provisioning") => {}
            Some("ready" | "failed") => return env,
            other => panic!("unexpected state {other:?}: {env}"),
        }
        assert!(Instant::now() < deadline, "still provisioning: {env}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn cell<'a>(notebook: &'a Value, id: &str) -> &'a Value {
    notebook["cells"]
        .as_array()
        .and_then(|cells| cells.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("cell {id} in {notebook}"))
}

async fn run(s: &TestServer, nb: &str, cell: &str) {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            U,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Waits until the cell is neither queued nor running; returns it.
async fn wait_settled(s: &TestServer, nb: &str, id: &str) -> Value {
    let deadline = Instant::now() + PROVISION_LIMIT;
    loop {
        let notebook = s.notebook(U, nb).await;
        let c = cell(&notebook, id).clone();
        if !matches!(c["status"].as_str(), Some("queued" | "running")) {
            return c;
        }
        assert!(Instant::now() < deadline, "cell never settled: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the interpreter's prefix, pandas' version if it imports, and whether the prefix
/// is writable from the kernel.
const PROBE: &str = r#"
import sys
print("PREFIX=" + sys.prefix)
try:
    import pandas
    print("PANDAS=" + pandas.__version__)
except ImportError:
    print("PANDAS=missing")
try:
    open(sys.prefix + "/pyvenv.cfg", "a").close()
    print("PREFIX_WRITABLE")
except OSError as e:
    print("PREFIX_READONLY " + type(e).__name__)
"#;

fn line_value(stdout: &str, key: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {stdout}"))
        .to_string()
}

#[actix_web::test]
async fn provisions_from_an_empty_data_dir_while_runs_wait() {
    let wheels = wheels_dir();
    let started = Instant::now();
    let mut s = managed_server(Backend::Sqlite, wheels).await;
    let venv = s.db.data_dir.join("python");

    let (status, _) = s
        .call(reqwest::Method::GET, "/api/environment", None, None)
        .await;
    assert_eq!(status, 401, "the environment needs a signed-in user");
    let first = environment(&s).await;
    assert_eq!(first["state"], "provisioning", "{first}");
    assert_eq!(first["managed"], true, "{first}");
    assert!(first.get("error").is_none(), "{first}");

    // A run requested now waits for the environment, shown as queued.
    let nb = s.new_notebook(U, "pyenv").await;
    let id = s.new_cell(U, &nb, "python", PROBE).await;
    run(&s, &nb, &id).await;
    let mut seen_installing = false;
    let ready = wait_provisioned(&s, |env| {
        seen_installing |= env["progress"]["current"]
            .as_str()
            .is_some_and(|c| c.starts_with("installing "));
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!("managed environment ready after {elapsed:?} (cold, offline wheels)");
    assert_eq!(ready["state"], "ready", "{ready}");
    assert!(ready.get("error").is_none(), "{ready}");
    assert_eq!(
        ready["python"],
        venv.join("bin/python").display().to_string(),
        "{ready}"
    );
    assert_eq!(
        ready["progress"]["done"], ready["progress"]["total"],
        "{ready}"
    );
    // create + 8 requirements + check
    assert_eq!(ready["progress"]["total"], 10, "{ready}");
    assert!(
        seen_installing,
        "progress named the package being installed"
    );

    let c = wait_settled(&s, &nb, &id).await;
    assert_eq!(c["status"], "success", "{c}");
    let stdout = c["stdout"].as_str().unwrap_or_default().to_string();
    let prefix = PathBuf::from(line_value(&stdout, "PREFIX="));
    let venv_real = venv.canonicalize().unwrap_or(venv.clone());
    assert!(
        prefix.starts_with(&venv) || prefix.starts_with(&venv_real),
        "kernel runs the managed env: {stdout}"
    );
    assert_eq!(line_value(&stdout, "PANDAS="), "2.3.3", "{stdout}");
    assert!(
        stdout.contains("PREFIX_READONLY"),
        "the environment is read-only to kernels: {stdout}"
    );

    // Ready: a retry has nothing to do.
    let (status, body) = s.post("/api/environment/retry", U, json!({})).await;
    assert_eq!(status, 409, "{body}");

    // A restart on the same DATA_DIR reuses the environment (the stamp is not rewritten).
    let stamp = venv.join(".provisioned");
    let before = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .expect("stamp written");
    let restarted = Instant::now();
    s.restart().await;
    let again = wait_provisioned(&s, |_| {}).await;
    eprintln!(
        "managed environment ready after {:?} on restart (stamp reused)",
        restarted.elapsed()
    );
    assert_eq!(again["state"], "ready", "{again}");
    let after = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .expect("stamp kept");
    assert_eq!(before, after, "the environment was not rebuilt");
    s.finish().await;
}

#[actix_web::test]
async fn a_run_requested_during_provisioning_shows_queued_then_runs() {
    let wheels = wheels_dir();
    let s = managed_server(Backend::Postgres, wheels).await;
    let nb = s.new_notebook(U, "queued").await;
    let id = s
        .new_cell(
            U,
            &nb,
            "python",
            "import pandas\nprint('ok', pandas.__name__)",
        )
        .await;
    assert_eq!(environment(&s).await["state"], "provisioning");
    run(&s, &nb, &id).await;
    // While provisioning runs, the cell settles into `queued` (not an error, not idle).
    let deadline = Instant::now() + PROVISION_LIMIT;
    let mut seen_queued = false;
    loop {
        let env = environment(&s).await;
        let notebook = s.notebook(U, &nb).await;
        let status = cell(&notebook, &id)["status"].clone();
        if env["state"] != "provisioning" {
            break;
        }
        assert!(
            matches!(status.as_str(), Some("queued" | "running")),
            "a cell waits while provisioning: {status}"
        );
        // `environment` was read first: the env was still provisioning when the cell was read
        // only if it still is now; confirm before counting.
        if status == "queued" && environment(&s).await["state"] == "provisioning" {
            seen_queued = true;
        }
        assert!(Instant::now() < deadline, "still provisioning: {env}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_queued, "the cell was shown queued while provisioning");
    let c = wait_settled(&s, &nb, &id).await;
    assert_eq!(c["status"], "success", "{c}");
    assert!(
        c["stdout"]
            .as_str()
            .unwrap_or_default()
            .contains("ok pandas"),
        "{c}"
    );
    s.finish().await;
}

both_backends!(
    a_failed_provisioning_reports_pips_error_and_kernels_use_the_bare_interpreter,
    |backend| async move {
        // An empty wheel directory with --no-index: no requirement can resolve.
        let empty = common::tempdir::TempDir::new();
        let s = managed_server(backend, empty.path().to_path_buf()).await;
        let nb = s.new_notebook(U, "failed").await;
        let id = s.new_cell(U, &nb, "python", PROBE).await;
        run(&s, &nb, &id).await;
        let failed = wait_provisioned(&s, |_| {}).await;
        assert_eq!(failed["state"], "failed", "{failed}");
        let error = failed["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("ERROR:") && error.contains("numpy==2.3.5"),
            "pip's error is reported: {failed}"
        );
        assert_eq!(failed["python"], s.config.python, "{failed}");

        let c = wait_settled(&s, &nb, &id).await;
        assert_eq!(c["status"], "success", "{c}");
        let stdout = c["stdout"].as_str().unwrap_or_default();
        let prefix = PathBuf::from(line_value(stdout, "PREFIX="));
        assert!(
            !prefix.starts_with(s.db.data_dir.join("python")),
            "the kernel runs the bare interpreter: {stdout}"
        );

        // Retry: accepted, provisions again, fails the same way.
        let (status, body) = s.post("/api/environment/retry", U, json!({})).await;
        assert_eq!(status, 202, "{body}");
        let again = wait_provisioned(&s, |_| {}).await;
        assert_eq!(again["state"], "failed", "{again}");
        let (status, _) = s
            .call(reqwest::Method::POST, "/api/environment/retry", None, None)
            .await;
        assert_eq!(status, 401);
        s.finish().await;
    }
);
