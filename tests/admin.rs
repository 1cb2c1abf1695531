//! The admin's path, as the README prints it: its command lines run verbatim (diesel CLI on
//! PostgreSQL included, which must leave the checkout untouched), setting flags work after the
//! subcommand, and `check` reports what works and what does not.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_reactive-notebook");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The command lines of the first `sh` block after a README heading, comments stripped.
fn readme_block(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).expect("README.md");
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a '## {heading}' section"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("the section has an sh block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the sh block closes") + open;
    rest[open..close]
        .lines()
        .map(|line| match line.find(" #") {
            Some(i) => line[..i].trim().to_string(),
            None => line.trim().to_string(),
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// Arguments after the program name of a README line.
fn args_of(line: &str) -> Vec<String> {
    line.split_whitespace().skip(1).map(String::from).collect()
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The binary with a clean environment: only what the README's admin would have set.
fn binary(args: &[String], data_dir: &Path, database_url: Option<&str>) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("PYTHON", python())
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .current_dir(data_dir);
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

/// Runs a short command; returns success and its stdout and stderr together.
fn run(mut cmd: Command) -> (bool, String, String) {
    let out = cmd.output().expect("run the command");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `serve` process, up once it logged its local sign-in URL.
struct Served {
    child: Child,
    base: String,
    token: String,
}

impl Served {
    fn start(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Keeps draining after the URL so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(i) = line.find("open http://") {
                        let url = line[i + "open ".len()..].trim();
                        let (base, token) = url.split_once("/#token=").expect("URL has a token");
                        return Served {
                            child,
                            base: base.to_string(),
                            token: token.to_string(),
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not come up; its log:\n{}", seen.join("\n"));
                }
            }
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The server stores and reads notebooks; `earlier` must still be listed.
    async fn assert_works(&self, earlier: Option<&str>) -> String {
        let (status, _) = self.call(reqwest::Method::GET, "/health/ready", None).await;
        assert_eq!(status, 200, "ready");
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/api/notebooks",
                Some(json!({"name": "admin path"})),
            )
            .await;
        assert_eq!(status, 200, "{created}");
        let id = created["notebook_id"]
            .as_str()
            .expect("notebook_id")
            .to_string();
        let (status, cell) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/notebooks/{id}/cells"),
                Some(json!({"type": "markdown", "code": "# stored"})),
            )
            .await;
        assert_eq!(status, 200, "{cell}");
        let (status, notebook) = self
            .call(reqwest::Method::GET, &format!("/api/notebooks/{id}"), None)
            .await;
        assert_eq!(status, 200, "{notebook}");
        assert!(
            notebook["cells"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["code"] == "# stored")),
            "{notebook}"
        );
        if let Some(earlier) = earlier {
            let (status, list) = self
                .call(reqwest::Method::GET, "/api/notebooks", None)
                .await;
            assert_eq!(status, 200);
            assert!(
                list["notebooks"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|n| n["id"] == earlier)),
                "notebook {earlier} survives: {list}"
            );
        }
        id
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `git` says about the checkout, plus schema.rs itself (a rewrite of an already modified
/// file would not change the porcelain line). On a clean clone this is "clean" before and after.
fn checkout_state() -> String {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(REPO)
            .output()
            .expect("git runs (the test needs the project's git checkout)");
        assert!(out.status.success(), "git {args:?} fails: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let schema =
        std::fs::read_to_string(Path::new(REPO).join("src/db/schema.rs")).expect("schema.rs");
    format!(
        "{}\n{}\n{schema}",
        git(&["status", "--porcelain"]),
        git(&["diff", "HEAD"])
    )
}

/// The diesel CLI installed by scripts/install-diesel.sh (scripts/test.sh runs it first).
fn diesel_cli() -> PathBuf {
    let path = std::env::var_os("DIESEL_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // Where scripts/install-diesel.sh puts it by default.
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_default();
            cache.join("reactive-notebook/diesel/bin/diesel")
        });
    assert!(
        path.is_file(),
        "diesel CLI not found at {}: run scripts/install-diesel.sh (scripts/test.sh does) or set DIESEL_CLI",
        path.display()
    );
    path
}

fn migration_count() -> usize {
    std::fs::read_dir(Path::new(REPO).join("migrations/postgres"))
        .expect("migrations/postgres")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().join("up.sql").is_file()))
        .count()
}

fn check_json(
    data_dir: &Path,
    database_url: Option<&str>,
    extra: &[(&str, &str)],
) -> (bool, Value) {
    let mut cmd = binary(&["check".into(), "--json".into()], data_dir, database_url);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let (ok, out, err) = run(cmd);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (ok, report)
}

fn item<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {name} item in {report}"))
}

/// "Deploying on PostgreSQL" line by line on a fresh database, then `migrate` and
/// `diesel migration redo`; the server works after each step and the checkout never changes.
#[tokio::test]
async fn readme_postgres_deployment_runs_verbatim_and_leaves_the_checkout_clean() {
    let diesel = diesel_cli();
    let (db_name, url) = common::create_pg_database().await;
    let dir = common::tempdir::TempDir::new();
    let before = checkout_state();
    let mut database_url = None;
    let mut notebook = None;
    let lines = readme_block("Deploying on PostgreSQL");
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        if line.starts_with("cargo install diesel_cli") {
            // Installed once, cached, by the script; it must run the README's command.
            let script = std::fs::read_to_string(Path::new(REPO).join("scripts/install-diesel.sh"))
                .expect("scripts/install-diesel.sh");
            let flags = line.trim_start_matches("cargo install diesel_cli");
            assert!(script.contains("cargo install diesel_cli"), "{script}");
            for flag in flags.split_whitespace() {
                assert!(script.contains(flag), "install script lacks {flag}");
            }
        } else if let Some(value) = line.strip_prefix("export DATABASE_URL=") {
            assert!(value.starts_with("postgres"), "{line}");
            database_url = Some(url.clone());
        } else if line.starts_with("diesel ") {
            let url = database_url
                .as_deref()
                .expect("DATABASE_URL exported before diesel");
            let out = Command::new(&diesel)
                .args(args_of(line))
                .current_dir(REPO)
                .env("DATABASE_URL", url)
                .output()
                .expect("run diesel");
            assert!(out.status.success(), "`{line}` failed: {out:?}");
            assert_eq!(checkout_state(), before, "`{line}` changed the checkout");
        } else if line.starts_with("reactive-notebook ") {
            let served = Served::start(binary(&args_of(line), dir.path(), database_url.as_deref()));
            notebook = Some(served.assert_works(None).await);
        } else {
            panic!("the test does not know how to run README line `{line}`");
        }
    }
    let notebook = notebook.expect("the section starts the server");

    let migrate_line = readme_block("Commands")
        .into_iter()
        .find(|l| l.starts_with("reactive-notebook migrate"))
        .expect("Commands lists migrate");
    let (ok, out, err) = run(binary(&args_of(&migrate_line), dir.path(), Some(&url)));
    assert!(ok, "{out}{err}");
    assert!(out.contains("database is up to date"), "{out}{err}");

    let out = Command::new(&diesel)
        .args(["migration", "redo"])
        .current_dir(REPO)
        .env("DATABASE_URL", &url)
        .output()
        .expect("run diesel");
    assert!(out.status.success(), "diesel migration redo: {out:?}");
    assert_eq!(
        checkout_state(),
        before,
        "`diesel migration redo` changed the checkout"
    );
    let served = Served::start(binary(
        &["serve".into(), "--no-migrate".into()],
        dir.path(),
        Some(&url),
    ));
    served.assert_works(Some(&notebook)).await;
    drop(served);
    let (ok, report) = check_json(dir.path(), Some(&url), &[]);
    assert!(ok, "{report}");
    assert_eq!(item(&report, "database")["level"], "ok", "{report}");
    common::drop_pg_database(&db_name).await;
}

/// Every line of "Commands" on the default SQLite store; the printed token signs in.
#[tokio::test]
async fn readme_commands_run_verbatim() {
    let dir = common::tempdir::TempDir::new();
    let mut token = None;
    let lines = readme_block("Commands");
    assert!(lines.len() >= 4, "{lines:?}");
    for line in &lines {
        let args = args_of(line);
        match args.first().map(String::as_str) {
            None | Some("serve") => {
                let served = Served::start(binary(&args, dir.path(), None));
                served.assert_works(None).await;
            }
            Some("migrate") => {
                let (ok, out, err) = run(binary(&args, dir.path(), None));
                assert!(ok, "`{line}`: {out}{err}");
                assert!(
                    out.contains("up to date") || out.contains("applied"),
                    "{out}"
                );
            }
            Some("token") => {
                let (ok, out, err) = run(binary(&args, dir.path(), None));
                assert!(ok, "`{line}`: {out}{err}");
                token = Some(out.trim().to_string());
            }
            Some("check") => {
                let (_, out, err) = run(binary(&args, dir.path(), None));
                assert!(out.lines().count() >= 8, "`{line}`: {out}{err}");
            }
            _ => panic!("the test does not know how to run README line `{line}`"),
        }
    }
    let token = token.expect("Commands prints a token");
    let mut served = Served::start(binary(&["serve".into()], dir.path(), None));
    served.token = token;
    let (status, body) = served
        .call(reqwest::Method::GET, "/api/notebooks", None)
        .await;
    assert_eq!(status, 200, "the printed token signs in: {body}");
}

/// `serve --no-migrate` and `--database-url` after the subcommand take effect: the database
/// stays unmigrated (check reports every migration pending) until `migrate` runs.
#[tokio::test]
async fn setting_flags_work_after_the_subcommand() {
    let (db_name, url) = common::create_pg_database().await;
    let dir = common::tempdir::TempDir::new();
    let flags = |sub: &str| -> Vec<String> {
        vec![
            sub.into(),
            "--database-url".into(),
            url.clone(),
            "--data-dir".into(),
        ]
    };
    let mut serve = flags("serve");
    serve.push(dir.path().join("d").display().to_string());
    serve.push("--no-migrate".into());
    // DATABASE_URL in the environment points nowhere: the flag must win.
    let mut cmd = binary(
        &serve,
        dir.path(),
        Some("postgres://nobody@127.0.0.1:1/none"),
    );
    cmd.env("DATA_DIR", dir.path().join("elsewhere"));
    let served = Served::start(cmd);
    drop(served);
    assert!(
        dir.path().join("d").is_dir(),
        "--data-dir after serve is used"
    );

    let mut check = flags("check");
    check.push(dir.path().join("d").display().to_string());
    check.push("--json".into());
    let (ok, out, err) = run(binary(&check, dir.path(), None));
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert!(ok, "{report}");
    let database = item(&report, "database");
    assert_eq!(database["level"], "warn", "{report}");
    let pending = format!("{} pending", migration_count());
    assert!(
        database["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&pending)),
        "{report}"
    );

    let mut migrate = flags("migrate");
    migrate.push(dir.path().join("d").display().to_string());
    let (ok, out, err) = run(binary(&migrate, dir.path(), None));
    assert!(ok && out.contains("applied"), "{out}{err}");
    let (ok, out, err) = run(binary(&check, dir.path(), None));
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert!(ok, "{report}");
    assert_eq!(item(&report, "database")["level"], "ok", "{report}");
    common::drop_pg_database(&db_name).await;
}

const ITEMS: [&str; 8] = [
    "config",
    "database",
    "auth",
    "data_dir",
    "sandbox",
    "python",
    "assistant",
    "disk",
];

/// A working setup: every item is reported, nothing fails, exit 0; text is one line per item.
#[tokio::test]
async fn check_on_a_working_setup() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let db = common::TestDb::new(backend).await;
        let url = match &db.target {
            reactive_notebook::config::DatabaseTarget::Postgres(url) => url.clone(),
            reactive_notebook::config::DatabaseTarget::Sqlite(path) => {
                format!("sqlite://{}", path.display())
            }
        };
        let data_dir = db.data_dir.join("data");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let (ok, out, err) = run(binary(&["migrate".into()], &data_dir, Some(&url)));
        assert!(ok, "{out}{err}");

        let (ok, report) = check_json(&data_dir, Some(&url), &[("ANTHROPIC_API_KEY", "sk-test")]);
        assert!(ok, "{report}");
        assert_eq!(report["ok"], true, "{report}");
        let names: Vec<&str> = report["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|i| i["name"].as_str())
            .collect();
        assert_eq!(names, ITEMS, "{report}");
        for name in [
            "config",
            "database",
            "auth",
            "data_dir",
            "python",
            "assistant",
        ] {
            assert_eq!(item(&report, name)["level"], "ok", "{name}: {report}");
        }
        assert!(item(&report, "python")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Python 3")));
        assert!(item(&report, "sandbox")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("active:")));
        assert!(item(&report, "disk")["detail"]
            .as_str()
            .is_some_and(|d| d.contains("free")));
        for i in report["items"].as_array().expect("items") {
            assert!(i["level"] != "fail", "{i}");
            assert!(
                i["level"] == "ok" || i["hint"].is_string(),
                "a warning has a hint: {i}"
            );
        }

        let (ok, out, err) = run(binary(&["check".into()], &data_dir, Some(&url)));
        assert!(ok, "{out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), ITEMS.len(), "{out}");
        for (line, name) in lines.iter().zip(ITEMS) {
            let mut words = line.split_whitespace();
            let level = words.next().unwrap_or("");
            assert!(["ok", "warn", "fail"].contains(&level), "{line}");
            assert_eq!(words.next(), Some(name), "{line}");
        }
        db.cleanup().await;
    }
}

/// Each broken part fails (or warns) on its own line with a hint, and the exit code is 1.
#[tokio::test]
async fn check_names_what_is_broken() {
    let dir = common::tempdir::TempDir::new();
    let data_dir = dir.path().join("open");
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (ok, report) = check_json(
        &data_dir,
        Some("postgres://postgres@127.0.0.1:1/nothing_listens_here"),
        &[
            (
                "CLERK_JWT_KEY",
                "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----",
            ),
            ("PYTHON", "/nonexistent/bin/python"),
        ],
    );
    assert!(!ok, "exit code is non-zero: {report}");
    assert_eq!(report["ok"], false);
    assert_eq!(item(&report, "config")["level"], "ok", "{report}");
    for name in ["database", "auth", "python"] {
        let i = item(&report, name);
        assert_eq!(i["level"], "fail", "{name}: {report}");
        assert!(i["hint"].as_str().is_some_and(|h| !h.is_empty()), "{i}");
    }
    let data = item(&report, "data_dir");
    assert_eq!(data["level"], "warn", "{report}");
    assert!(
        data["detail"].as_str().is_some_and(|d| d.contains("0755")),
        "{data}"
    );
    assert_eq!(item(&report, "assistant")["level"], "warn", "{report}");
    // check writes nothing: the unreachable database and missing key leave DATA_DIR empty.
    assert_eq!(std::fs::read_dir(&data_dir).expect("read").count(), 0);
}

/// An invalid setting is the one failed item (JSON stays parseable), exit code 1.
#[tokio::test]
async fn check_reports_an_invalid_setting() {
    let dir = common::tempdir::TempDir::new();
    let (ok, report) = check_json(dir.path(), Some("mysql://nope"), &[]);
    assert!(!ok);
    let items = report["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{report}");
    assert_eq!(items[0]["name"], "config");
    assert_eq!(items[0]["level"], "fail");
    assert!(
        items[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("DATABASE_URL")),
        "{report}"
    );
}

/// A JWKS endpoint answering every request with the test key set; records each request line
/// and Authorization header.
fn jwks_endpoint() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut sock in listener.incoming().map_while(Result::ok) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let head = String::from_utf8_lossy(&buf).to_string();
            let wanted: Vec<&str> = head
                .lines()
                .filter(|l| {
                    l.starts_with("GET ") || l.to_ascii_lowercase().starts_with("authorization:")
                })
                .collect();
            log.lock().expect("log").push(wanted.join(" | "));
            let body = common::tokens::jwks_json("k1").to_string();
            let _ = write!(
                sock,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (base, seen)
}

/// The key source item fetches a JWKS (by URL, or from the Backend API with the secret key),
/// and fails when it cannot.
#[tokio::test]
async fn check_fetches_the_jwks() {
    let dir = common::tempdir::TempDir::new();
    let (base, seen) = jwks_endpoint();
    let url = format!("{base}/.well-known/jwks.json");
    let (_, report) = check_json(dir.path(), None, &[("CLERK_JWKS_URL", &url)]);
    let auth = item(&report, "auth");
    assert_eq!(auth["level"], "ok", "{report}");
    assert!(
        auth["detail"]
            .as_str()
            .is_some_and(|d| d.contains("JWKS fetched")),
        "{auth}"
    );

    let (_, report) = check_json(
        dir.path(),
        None,
        &[
            ("CLERK_SECRET_KEY", "sk_test_admin"),
            ("CLERK_API_URL", &base),
        ],
    );
    assert_eq!(item(&report, "auth")["level"], "ok", "{report}");
    let requests = seen.lock().expect("log").clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /.well-known/jwks.json"),
        "{requests:?}"
    );
    assert!(requests[1].starts_with("GET /v1/jwks"), "{requests:?}");
    assert!(requests[1].contains("Bearer sk_test_admin"), "{requests:?}");

    let (ok, report) = check_json(
        dir.path(),
        None,
        &[("CLERK_JWKS_URL", "http://127.0.0.1:1/jwks.json")],
    );
    assert!(!ok);
    assert_eq!(item(&report, "auth")["level"], "fail", "{report}");
}
