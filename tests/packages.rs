//! Per-notebook packages: refused names, a sandboxed install into the notebook's layer that
//! streams pip's output to every tab, a failed install, persistence and re-provisioning on a
//! server that lacks the layer. Installs run offline from a wheels folder the test builds.

mod common;

use std::time::{Duration, Instant};

use common::cells::{cell, error_of, run_settled};
use common::tokens::token_for;
use common::wheels::build_probe_wheel;
use common::ws::WsClient;
use common::{Backend, TestDb, TestServer};
use serde_json::{json, Value};

const U: &str = "user_pkgs";
const OTHER: &str = "user_pkgs_other";

/// A server whose package installs come only from a folder holding the probe wheel.
async fn start(backend: Backend) -> TestServer {
    let db = TestDb::new(backend).await;
    let wheels = db.data_dir.join("test-wheels");
    std::fs::create_dir_all(&wheels).expect("wheels dir");
    build_probe_wheel(&wheels, "rn-probe-pkg", "rn_probe");
    let mut config = db.config();
    config.python_wheels_dir = Some(wheels);
    TestServer::start_with(db, config).await
}

fn packages_path(nb: &str) -> String {
    format!("/api/notebooks/{nb}/packages")
}

/// Polls the notebook until package `name` is no longer installing; returns its entry.
async fn settled_package(s: &TestServer, nb: &str, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n = s.notebook(U, nb).await;
        let entry = n["packages"]
            .as_array()
            .and_then(|list| list.iter().find(|p| p["name"] == name))
            .cloned();
        if let Some(entry) = entry {
            if entry["state"] != "installing" {
                return entry;
            }
        }
        assert!(Instant::now() < deadline, "{name} never settled: {n:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_backends!(refused_requirements_change_nothing, |backend| async move {
    let s = start(backend).await;
    let nb = s.new_notebook(U, "refusals").await;
    for body in [
        json!({"name": "https://evil.example/pkg.whl"}),
        json!({"name": "/etc/passwd"}),
        json!({"name": "./local-dir"}),
        json!({"name": "--index-url=https://evil.example"}),
        json!({"name": "-r"}),
        json!({"name": "requests; os_name == 'posix'"}),
        json!({"name": "pkg @ https://evil.example/pkg.zip"}),
        json!({"name": ""}),
        json!({"name": "requests", "version": "--pre"}),
        json!({"name": "requests", "version": "latest"}),
        json!({"name": "requests", "version": "==1 -i https://evil.example"}),
        json!({"name": 5}),
        json!({}),
    ] {
        let (status, answer) = s.post(&packages_path(&nb), U, body.clone()).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
    let n = s.notebook(U, &nb).await;
    assert_eq!(n["packages"], json!([]), "{n:#}");
    // Someone else's notebook answers as a missing one.
    let (status, _) = s
        .post(&packages_path(&nb), OTHER, json!({"name": "rn-probe-pkg"}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .post(
            &packages_path("00000000-0000-0000-0000-000000000000"),
            U,
            json!({"name": "rn-probe-pkg"}),
        )
        .await;
    assert_eq!(status, 404);
    s.finish().await;
});

both_backends!(
    install_streams_to_tabs_and_cells_import_it,
    |backend| async move {
        let mut s = start(backend).await;
        let nb = s.new_notebook(U, "installs").await;
        let probe = s
            .new_cell(U, &nb, "python", "import rn_probe\nprint(rn_probe.VALUE)")
            .await;
        let before = run_settled(&s, U, &nb, &probe).await;
        assert_eq!(before["status"], "error", "{before:#}");
        assert!(
            error_of(&before).contains("ModuleNotFoundError"),
            "{before:#}"
        );

        let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
        let (status, entry) = s
            .post(&packages_path(&nb), U, json!({"name": "RN_Probe.Pkg"}))
            .await;
        assert_eq!(status, 202, "{entry}");
        assert_eq!(
            entry,
            json!({"name": "rn-probe-pkg", "version": null, "state": "installing"})
        );
        // A second request while it installs is refused.
        let (status, _) = s
            .post(&packages_path(&nb), U, json!({"name": "rn-probe-pkg"}))
            .await;
        assert_eq!(status, 409);

        let events = tab
            .until(Duration::from_secs(180), |e| {
                e["type"] == "package_install" && e["state"] != "installing"
            })
            .await;
        let installs: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "package_install")
            .collect();
        let last = installs.last().expect("a final package_install event");
        assert_eq!(last["state"], "installed", "{installs:#?}");
        let lines: Vec<&str> = installs.iter().filter_map(|e| e["line"].as_str()).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("rn-probe-pkg") || l.contains("rn_probe_pkg")),
            "pip's output streams: {lines:#?}"
        );

        let n = s.notebook(U, &nb).await;
        assert_eq!(
            n["packages"],
            json!([{"name": "rn-probe-pkg", "version": null, "state": "installed"}])
        );
        // The running kernel imports it without a restart.
        let after = run_settled(&s, U, &nb, &probe).await;
        assert_eq!(after["status"], "success", "{after:#}");
        assert_eq!(after["stdout"], "42\n");
        // The layer is read-only for the kernel.
        let writer = s
            .new_cell(
                U,
                &nb,
                "python",
                "import os\n\
             target = os.path.join(os.path.dirname(rn_probe.__file__), 'planted.py')\n\
             try:\n    open(target, 'w').write('x = 1')\n    planted = 'yes'\n\
             except OSError as e:\n    planted = type(e).__name__\n\
             print(planted)",
            )
            .await;
        let wrote = run_settled(&s, U, &nb, &writer).await;
        assert_eq!(wrote["status"], "success", "{wrote:#}");
        assert_ne!(wrote["stdout"], "yes\n", "{wrote:#}");

        // A version that does not exist fails with pip's reason, and the entry says so.
        let (status, _) = s
            .post(
                &packages_path(&nb),
                U,
                json!({"name": "no-such-package-rn", "version": ">=1.0"}),
            )
            .await;
        assert_eq!(status, 202);
        let failed = settled_package(&s, &nb, "no-such-package-rn").await;
        assert_eq!(failed["state"], "failed", "{failed:#}");
        assert_eq!(failed["version"], ">=1.0");
        let error = failed["error"].as_str().unwrap_or("");
        assert!(
            error.contains("No matching distribution") || error.contains("Could not find"),
            "{error}"
        );
        drop(tab);

        // A new server without the layer (another machine, same database) installs it again.
        s.stop().await;
        std::fs::remove_dir_all(s.db.data_dir.join("packages")).expect("drop the layers");
        s.restart().await;
        let n = s.notebook(U, &nb).await;
        let listed: Vec<&str> = n["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(listed, ["rn-probe-pkg", "no-such-package-rn"], "{n:#}");
        let again = settled_package(&s, &nb, "rn-probe-pkg").await;
        assert_eq!(again["state"], "installed", "{again:#}");
        let rerun = run_settled(&s, U, &nb, &probe).await;
        assert_eq!(rerun["stdout"], "42\n", "{rerun:#}");
        let n = s.notebook(U, &nb).await;
        assert_eq!(cell(&n, &probe)["status"], "success");
        s.finish().await;
    }
);
