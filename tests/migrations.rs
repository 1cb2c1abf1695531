//! `reactive-notebook migrate` on empty databases, twice (the second run changes nothing).

mod common;

use std::process::Command;

fn migrate(database_url: &str, data_dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .arg("migrate")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn migrate_sqlite_twice() {
    let dir = common::tempdir::TempDir::new();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let (ok, out) = migrate(&url, dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("applied"), "{out}");
    let (ok, out) = migrate(&url, dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("up to date"), "{out}");
}

#[tokio::test]
async fn migrate_postgres_twice_and_concurrently() {
    let (name, url) = common::create_pg_database().await;
    let dir = common::tempdir::TempDir::new();
    // Three instances at once: the advisory lock makes them take turns.
    let runs: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || migrate(&url, &path))
        })
        .collect();
    let mut applied = 0;
    for run in runs {
        let (ok, out) = run.join().expect("thread");
        assert!(ok, "{out}");
        if out.contains("applied") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one instance applies the migrations");
    let (ok, out) = migrate(&url, dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("up to date"), "{out}");
    common::drop_pg_database(&name).await;
}

#[test]
fn invalid_settings_stop_with_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .arg("migrate")
        .env("DATABASE_URL", "mysql://nope")
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
}

#[test]
fn an_unparsable_number_is_one_line_too() {
    let out = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .arg("migrate")
        .env("KERNEL_TIMEOUT_SECS", "soon")
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("kernel-timeout-secs") || err.contains("KERNEL_TIMEOUT_SECS"),
        "{err}"
    );
}
