//! The kernel sandbox, attacked from ordinary cells through the real server: each attack must
//! fail inside the kernel while the server, and every other notebook, stays healthy.
//!
//! These tests need user namespaces, Landlock and seccomp (CI has all three); on a host
//! without them they fail, naming the missing layer, instead of passing vacuously.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::procs::{host_pids_in, host_pids_with_arg};
use common::{Backend, TestDb, TestServer};
use reactive_notebook::config::{Config, KernelNetwork};
use serde_json::{json, Value};

const U: &str = "user_attacker";
const V: &str = "user_victim";

async fn server_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    adjust(&mut config);
    TestServer::start_with(db, config).await
}

fn settled(status: &Value) -> bool {
    !matches!(status.as_str(), Some("queued" | "running"))
}

/// Runs `code` as the only cell of a fresh notebook of `user`; returns the settled cell.
async fn run_cell_as(s: &TestServer, user: &str, code: &str) -> (String, Value) {
    let nb = s.new_notebook(user, "attack").await;
    let cell = run_in(s, user, &nb, code).await;
    (nb, cell)
}

/// Adds a cell running `code` to `nb`, runs it and waits until it settles.
async fn run_in(s: &TestServer, user: &str, nb: &str, code: &str) -> Value {
    let cell = s.new_cell(user, nb, "python", code).await;
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/cells/{cell}/run"),
            user,
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let notebook = s.notebook(user, nb).await;
        let found = notebook["cells"]
            .as_array()
            .and_then(|cells| cells.iter().find(|c| c["id"] == cell.as_str()))
            .cloned()
            .expect("the cell exists");
        if settled(&found["status"]) {
            return found;
        }
        assert!(Instant::now() < deadline, "cell never settled: {found:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the attack cell ran to completion and reported only blocked attempts.
fn assert_blocked(cell: &Value) {
    let out = cell["stdout"].as_str().unwrap_or_default();
    // The verdicts, for the log: which attempt failed, and how.
    eprintln!("{out}");
    assert_eq!(cell["status"], "success", "attack cell failed: {cell:#}");
    assert!(out.contains("BLOCKED"), "no attempt reported: {out}");
    assert!(
        !out.contains("BREACH"),
        "the sandbox let an attack through:\n{out}"
    );
}

async fn assert_healthy(s: &TestServer) {
    let (status, body) = s.call(reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(status, 200, "{body}");
    // Another user's notebook still runs code.
    let (_, cell) = run_cell_as(s, V, "print(6 * 7)").await;
    assert_eq!(cell["status"], "success", "{cell:#}");
    assert_eq!(cell["stdout"], "42\n");
}

/// Python that tries `attempts` (each a (label, code) pair run with exec) and prints
/// BLOCKED or BREACH per attempt.
fn attempts(list: &[(&str, String)]) -> String {
    let mut code = String::from("def _try(label, src):\n    try:\n        exec(src, {})\n        print('BREACH', label)\n    except BaseException as e:\n        print('BLOCKED', label, type(e).__name__, e)\n");
    for (label, src) in list {
        code.push_str(&format!("_try({label:?}, {src:?})\n"));
    }
    code
}

async fn wait_gone(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host_pids_with_arg(marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes with {marker} outlived their kernel: {:?}",
            host_pids_with_arg(marker)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A number `sleep` accepts that no other process on the machine has on its command line.
fn marker() -> String {
    format!("4242.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

/// Python that leaves a `setsid` child and a double-forked daemon behind, both `sleep MARK`.
fn daemons(marker: &str) -> String {
    [
        "import os, subprocess",
        "subprocess.Popen(['sleep', 'MARK'], start_new_session=True)",
        "pid = os.fork()",
        "if pid == 0:",
        "    os.setsid()",
        "    if os.fork() == 0:",
        "        os.execvp('sleep', ['sleep', 'MARK'])",
        "    os._exit(0)",
        "os.waitpid(pid, 0)",
        "print('started')",
    ]
    .join("\n")
    .replace("MARK", marker)
}

async fn start_daemons(s: &TestServer, marker: &str) -> String {
    let (nb, cell) = run_cell_as(s, U, &daemons(marker)).await;
    assert_eq!(cell["status"], "success", "{cell:#}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_pids_with_arg(marker).len() < 2 {
        assert!(Instant::now() < deadline, "daemons did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nb
}

#[actix_web::test]
async fn config_reports_every_layer_active() {
    let s = server_with(|_| {}).await;
    let (status, body) = s
        .call(reqwest::Method::GET, "/api/config", None, None)
        .await;
    assert_eq!(status, 200);
    let sandbox = &body["sandbox"];
    assert_eq!(sandbox["mode"], "auto");
    let active: Vec<&str> = sandbox["active"]
        .as_array()
        .expect("active layers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for layer in ["namespaces", "mount-view", "seccomp", "rlimits"] {
        assert!(
            active.contains(&layer),
            "layer {layer} is not active on this host: {sandbox:#}"
        );
    }
    assert!(
        active.iter().any(|l| l.starts_with("landlock-abi-")),
        "Landlock is not active on this host: {sandbox:#}"
    );
    s.finish().await;
}

#[actix_web::test]
async fn server_files_and_other_users_are_out_of_reach() {
    let s = server_with(|_| {}).await;
    let data_dir = s.db.data_dir.canonicalize().expect("data dir");
    let db_file = data_dir.join("notebooks.db");
    assert!(
        db_file.exists(),
        "the server's database is where the test expects it"
    );
    let server_cwd = std::env::current_dir().expect("cwd");

    // The victim's kernel is up, so its folder and process exist.
    let (victim_nb, victim) = run_cell_as(
        &s,
        V,
        "open('secret.txt', 'w').write('victim data'); print('ok')",
    )
    .await;
    assert_eq!(victim["status"], "success", "{victim:#}");
    let victim_dir = data_dir.join("kernels").join(&victim_nb);
    let victim_pids = host_pids_in(&victim_dir);
    assert!(
        !victim_pids.is_empty(),
        "the victim's kernel runs in {victim_dir:?}"
    );
    let server_pid = std::process::id();

    let mut list = vec![
        ("read the database", format!("open({:?}, 'rb').read(1)", db_file.display().to_string())),
        // The kernel's view of DATA_DIR holds its own folder and its own package layer only.
        ("list DATA_DIR beyond kernels/ and packages/", format!("import os\nassert set(os.listdir({d:?})) - {{'kernels', 'packages'}}, os.listdir({d:?})", d = data_dir.display().to_string())),
        ("see the victim's package layer", format!("import os\nassert {victim:?} in os.listdir({p:?}), os.listdir({p:?})", p = data_dir.join("packages").display().to_string(), victim = victim_nb)),
        ("read the victim's file", format!("open({:?}).read()", victim_dir.join("secret.txt").display().to_string())),
        // Listing may work when the test interpreter's venv lives in the checkout (the view
        // then holds that one folder); the checkout's own files must not show.
        ("list the server's working directory", format!("import os\nseen = set(os.listdir({:?})) - {{'.venv'}}\nassert seen, 'only the Python installation is visible'", server_cwd.display().to_string())),
        ("read the server's .env", format!("open({:?}).read()", server_cwd.join(".env").display().to_string())),
        ("read the server's environment", format!("open('/proc/{server_pid}/environ').read()")),
        ("signal the server", format!("import os, signal\nos.kill({server_pid}, signal.SIGTERM)")),
        ("see the server in /proc", format!("import os\nassert '{server_pid}' in os.listdir('/proc')")),
        ("see any host process in /proc", "import os\npids = [int(p) for p in os.listdir('/proc') if p.isdigit()]\nassert max(pids) > 100, pids".to_string()),
        ("write to the system", "open('/usr/lib/evil', 'w')".to_string()),
        ("append to /etc/passwd", "open('/etc/passwd', 'a')".to_string()),
        ("ptrace", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.ptrace(16, 1, 0, 0) == 0, ctypes.get_errno()".to_string()),
        ("unshare a user namespace", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.unshare(0x10000000) == 0, ctypes.get_errno()".to_string()),
        ("mount", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0, ctypes.get_errno()".to_string()),
        ("keyctl", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.syscall(250, 0, 0, 0, 0, 0) >= 0, ctypes.get_errno()".to_string()),
        ("bpf", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.syscall(321, 0, 0, 0) >= 0, ctypes.get_errno()".to_string()),
        ("userfaultfd", "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.syscall(323, 0) >= 0, ctypes.get_errno()".to_string()),
    ];
    for pid in &victim_pids {
        list.push((
            "write into the victim kernel's pipe",
            format!("open('/proc/{pid}/fd/3', 'w').write('x')"),
        ));
        list.push((
            "read the victim kernel's memory",
            format!("open('/proc/{pid}/mem', 'rb')"),
        ));
    }
    let (_, cell) = run_cell_as(&s, U, &attempts(&list)).await;
    assert_blocked(&cell);
    assert_eq!(
        cell["stdout"]
            .as_str()
            .unwrap_or_default()
            .matches("BLOCKED")
            .count(),
        list.len(),
        "{cell:#}"
    );
    // The victim's data is untouched, and its kernel still has its state.
    let victim_again = run_in(&s, V, &victim_nb, "print(open('secret.txt').read())").await;
    assert_eq!(victim_again["stdout"], "victim data\n", "{victim_again:#}");
    assert_healthy(&s).await;
    s.finish().await;
}

#[actix_web::test]
async fn kernels_run_unprivileged_in_their_own_folder() {
    let s = server_with(|_| {}).await;
    let code = "import os, subprocess\n\
print(os.getpid(), os.getppid())\n\
print(os.getcwd() == os.environ['HOME'])\n\
open('mine.txt', 'w').write('x')\n\
print(sorted(os.listdir('.')))\n\
print(subprocess.run(['echo', 'sub'], capture_output=True, text=True).stdout.strip())\n\
print(open('/proc/self/uid_map').read().split())\n";
    let (nb, cell) = run_cell_as(&s, U, code).await;
    assert_eq!(cell["status"], "success", "{cell:#}");
    let out: Vec<&str> = cell["stdout"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(
        out[0], "2 1",
        "the kernel is PID 2 under the sandbox's init"
    );
    assert_eq!(out[1], "True");
    assert_eq!(out[2], "['mine.txt']");
    assert_eq!(out[3], "sub", "subprocesses work");
    // The kernel's uid is not root on the host, whoever runs the server.
    let work_dir = s.db.data_dir.join("kernels").join(&nb);
    let pids = host_pids_in(&work_dir);
    let kernel_uids: Vec<String> = pids
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter(|st| st.contains("Name:\tpython"))
        .filter_map(|st| {
            st.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
        })
        .collect();
    assert!(
        !kernel_uids.is_empty(),
        "found the kernel process among {pids:?}"
    );
    assert!(
        kernel_uids.iter().all(|u| u != "0"),
        "kernel runs as root: {kernel_uids:?}"
    );
    assert_healthy(&s).await;
    s.finish().await;
}

#[actix_web::test]
async fn data_science_stack_works_inside() {
    let s = server_with(|_| {}).await;
    let code = "import pandas as pd, numpy as np, matplotlib\n\
import matplotlib.pyplot as plt\n\
df = pd.DataFrame({'a': np.arange(3)})\n\
fig = plt.figure(); plt.plot(df['a']); fig.savefig('/tmp/plot.png')\n\
import os; print(os.path.getsize('/tmp/plot.png') > 0, int(df['a'].sum()))\n";
    let (_, cell) = run_cell_as(&s, U, code).await;
    assert_eq!(
        cell["status"], "success",
        "pandas/matplotlib must import in the sandbox: {cell:#}"
    );
    assert_eq!(cell["stdout"], "True 3\n");
    s.finish().await;
}

#[actix_web::test]
async fn resource_limits_hold() {
    let s = server_with(|c| {
        c.kernel_memory_mb = 512;
        c.kernel_limits.max_procs = 64;
        c.kernel_limits.tmp_mb = 16;
    })
    .await;
    let list = vec![
        ("2000 processes", "import os, time\nkids = []\ntry:\n    for _ in range(2000):\n        pid = os.fork()\n        if pid == 0:\n            time.sleep(20)\n            os._exit(0)\n        kids.append(pid)\nfinally:\n    n = len(kids)\n    for k in kids:\n        os.kill(k, 9)\n        os.waitpid(k, 0)\nassert n >= 2000, n".to_string()),
        ("1.5 GiB shared mmap under 512 MiB", "import mmap\nm = mmap.mmap(-1, 1536 * 1024 * 1024)\nfor i in range(0, len(m), 4096):\n    m[i] = 1".to_string()),
        ("1.5 GiB private memory under 512 MiB", "b = bytearray(1536 * 1024 * 1024)".to_string()),
        ("4 GiB file", "f = open('big.bin', 'wb')\nf.seek(4 * 1024 ** 3)\nf.write(b'x')\nf.close()".to_string()),
        ("fill /tmp past its size", "f = open('/tmp/fill', 'wb')\nfor _ in range(64):\n    f.write(b'x' * 1024 * 1024)\nf.close()".to_string()),
        ("core dump", "import resource\nassert resource.getrlimit(resource.RLIMIT_CORE) != (0, 0)".to_string()),
    ];
    let (nb, cell) = run_cell_as(&s, U, &attempts(&list)).await;
    assert_blocked(&cell);
    // The notebook's kernel is still usable afterwards.
    let after = run_in(&s, U, &nb, "print('alive')").await;
    assert_eq!(after["stdout"], "alive\n", "{after:#}");
    assert_healthy(&s).await;
    s.finish().await;
}

#[actix_web::test]
async fn nothing_outlives_a_restart_or_a_delete() {
    let s = server_with(|_| {}).await;
    let m1 = marker();
    let nb = start_daemons(&s, &m1).await;
    let (status, body) = s
        .post(&format!("/api/notebooks/{nb}/restart"), U, json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    wait_gone(&m1).await;

    let m2 = marker();
    let nb = start_daemons(&s, &m2).await;
    let (status, body) = s.delete(&format!("/api/notebooks/{nb}"), U).await;
    assert_eq!(status, 200, "{body}");
    wait_gone(&m2).await;

    // A cell that kills everything it can see only hits its own namespace.
    let (_, cell) = run_cell_as(&s, U, "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\nprint('still here')").await;
    assert_eq!(cell["stdout"], "still here\n", "{cell:#}");
    assert_healthy(&s).await;
    s.finish().await;
}

#[actix_web::test]
async fn no_network_means_not_even_the_server() {
    let s = server_with(|c| c.kernel_limits.network = KernelNetwork::None).await;
    let port = s
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("server port");
    let list = vec![
        (
            "connect to the server's port",
            format!("import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"),
        ),
        (
            "reach the database port",
            "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=3)".to_string(),
        ),
    ];
    let (_, cell) = run_cell_as(&s, U, &attempts(&list)).await;
    assert_blocked(&cell);
    s.finish().await;
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[actix_web::test]
async fn nothing_outlives_a_killed_server() {
    let dir = common::tempdir::TempDir::new();
    let data_dir: PathBuf = dir.path().to_path_buf();
    let bin = env!("CARGO_BIN_EXE_reactive-notebook");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let token = std::process::Command::new(bin)
        .args(["token", "--user", U])
        .env("DATA_DIR", &data_dir)
        .output()
        .expect("token command runs");
    assert!(token.status.success(), "{token:?}");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    let port = free_port();
    let mut server = std::process::Command::new(bin)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", &data_dir)
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("PYTHON", &python)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("server starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let post = |path: String, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let nb: Value = post("/api/notebooks".into(), json!({"name": "k"}))
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let nb = nb["notebook_id"].as_str().expect("id").to_string();
    let m = marker();
    let cell: Value = post(
        format!("/api/notebooks/{nb}/cells"),
        json!({"type": "python", "code": daemons(&m)}),
    )
    .await
    .expect("cell")
    .json()
    .await
    .expect("json");
    let cell = cell["cell_id"].as_str().expect("cell id").to_string();
    let run = post(format!("/api/notebooks/{nb}/cells/{cell}/run"), json!({}))
        .await
        .expect("run");
    assert_eq!(run.status().as_u16(), 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    while host_pids_with_arg(&m).len() < 2 {
        assert!(Instant::now() < deadline, "daemons did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().expect("kill -9 the server");
    let _ = server.wait();
    wait_gone(&m).await;
}

#[actix_web::test]
async fn strict_mode_runs_here_and_off_mode_says_so() {
    let s =
        server_with(|c| c.kernel_limits.sandbox = reactive_notebook::config::SandboxMode::Strict)
            .await;
    let (_, cell) = run_cell_as(&s, U, "import os\nprint(os.getpid())").await;
    assert_eq!(
        cell["stdout"], "2\n",
        "strict mode starts sandboxed kernels here: {cell:#}"
    );
    s.finish().await;

    let s = server_with(|c| c.kernel_limits.sandbox = reactive_notebook::config::SandboxMode::Off)
        .await;
    let (_, body) = s
        .call(reqwest::Method::GET, "/api/config", None, None)
        .await;
    assert_eq!(body["sandbox"]["mode"], "off", "{body:#}");
    assert_eq!(
        body["sandbox"]["active"],
        json!(["rlimit-memory"]),
        "{body:#}"
    );
    let (_, cell) = run_cell_as(&s, U, "import os\nprint(os.getpid() > 2)").await;
    assert_eq!(
        cell["stdout"], "True\n",
        "off mode runs kernels in the host's namespaces: {cell:#}"
    );
    s.finish().await;
}
