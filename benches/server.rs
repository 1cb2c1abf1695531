//! `cargo bench`: figures for the closing notes, measured against the real release binary.
//!
//! - HTTP: authenticated `GET /api/notebooks/{id}`, 32 connections for 10 s (SQLite, PostgreSQL).
//! - Engine: a 500-cell chain, run request to the last cell's success; the same statements in a
//!   bare `python3`; kernel cold start.
//! - Sandbox: kernel cold start with `KERNEL_SANDBOX=off` and `auto`.
//! - WebSocket: K sessions, `run_cell` to every session's final status; edit-to-other-tab
//!   latency; server RSS idle and per idle session.
//!
//! Client and server share the machine's two cores, so the figures are conservative.

#[path = "../tests/common/tokens.rs"]
mod tokens;
#[path = "../tests/common/ws.rs"]
mod ws;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use ws::WsClient;

const USER: &str = "bench_user";

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
    token: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start(database_url: Option<&str>) -> Server {
    start_with_env(database_url, &[]).await
}

async fn start_with_env(database_url: Option<&str>, extra_env: &[(&str, &str)]) -> Server {
    let dir = std::env::temp_dir().join(format!("rn-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", &dir)
        .env("CLERK_JWT_KEY", tokens::public_pem())
        .env(
            "PYTHON",
            std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        )
        // BENCH_SERVER_LOG shows the server's own log, e.g. to see where a figure's time goes.
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.envs(extra_env.iter().copied());
    let child = cmd.spawn().expect("server binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        base,
        http,
        token: tokens::token_for(USER),
        _dir: TempDir(dir),
    }
}

impl Server {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("request")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn notebook(&self, name: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/api/notebooks",
                json!({"name": name}),
            )
            .await;
        v["notebook_id"].as_str().expect("id").to_string()
    }

    async fn cell(&self, nb: &str, code: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                &format!("/api/notebooks/{nb}/cells"),
                json!({"type": "python", "code": code}),
            )
            .await;
        v["cell_id"].as_str().expect("cell id").to_string()
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(f64::NAN),
        ms.len()
    )
}

async fn http_bench(label: &str, database_url: Option<&str>) {
    let server = Arc::new(start(database_url).await);
    let nb = server.notebook("bench").await;
    for i in 0..5 {
        server.cell(&nb, &format!("v{i} = {i}")).await;
    }
    let path = format!("{}/api/notebooks/{nb}", server.base);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (server, path, stop) = (server.clone(), path.clone(), stop.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = server
                        .http
                        .get(&path)
                        .bearer_auth(&server.token)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                lat
            })
        })
        .collect();
    let secs = 10.0;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    println!(
        "http GET /api/notebooks/{{id}} [{label}] 32 conns 10 s: {:.0} req/s, {}",
        all.len() as f64 / secs,
        summary(all)
    );
}

async fn wait_status(client: &mut WsClient, cell: &str, within: Duration) -> String {
    let events = client
        .until(within, |v| {
            v["type"] == "cell_status"
                && v["cellId"] == cell
                && matches!(v["status"].as_str(), Some("success" | "error" | "blocked"))
        })
        .await;
    events
        .last()
        .and_then(|v| v["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The same chain of `n` statements in a bare `python3`, in ms: `exec` of each statement's
/// text (compiling included), and `exec` of code compiled beforehand.
fn bare_python_ms(n: usize) -> (f64, f64) {
    let script = format!(
        "import time\nsrc = [('x0 = 0' if i == 0 else 'x%d = x%d + 1' % (i, i - 1)) for i in range({n})]\ng = {{}}\nt = time.perf_counter()\nfor s in src:\n    exec(s, g)\nprint((time.perf_counter() - t) * 1000)\ncode = [compile(l, '<cell>', 'exec') for l in src]\ng = {{}}\nt = time.perf_counter()\nfor c in code:\n    exec(c, g)\nprint((time.perf_counter() - t) * 1000)"
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines().map(|l| l.trim().parse().unwrap_or(f64::NAN));
    let source = lines.next().unwrap_or(f64::NAN);
    let compiled = lines.next().unwrap_or(f64::NAN);
    (source, compiled)
}

/// A chain of `n` cells (`x_i = x_{i-1} + 1`): run request on the first to the last cell's
/// `success`, warm kernel, best of `runs`.
async fn chain_run(server: &Server, n: usize, runs: usize) -> (f64, Vec<f64>) {
    let nb = server.notebook(&format!("chain{n}")).await;
    let first = server.cell(&nb, "x0 = 0").await;
    let mut last = first.clone();
    let mut tail = Vec::new();
    for i in 1..n {
        let t = Instant::now();
        last = server.cell(&nb, &format!("x{i} = x{} + 1", i - 1)).await;
        if i + 100 >= n {
            tail.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // What an agent building a big notebook cell by cell waits per cell near the end.
    println!(
        "chain of {n}: POST of each of the last 100 cells: {}",
        summary(tail)
    );
    let mut tab = WsClient::join(&server.base, &nb, &server.token).await;
    // Warm the kernel so the figure is the chain, not the spawn.
    let warm = server.cell(&nb, "warm = 1").await;
    tab.send(json!({"type": "run_cell", "cellId": warm})).await;
    wait_status(&mut tab, &warm, Duration::from_secs(60)).await;
    // BENCH_PAUSE=SECS: time to attach a profiler to the server before the measured runs.
    if let Some(secs) = std::env::var("BENCH_PAUSE")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        println!(
            "chain of {n}: runs start in {secs} s (server pid {})",
            server.child.id()
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        tab.send(json!({"type": "run_cell", "cellId": first})).await;
        let status = wait_status(&mut tab, &last, Duration::from_secs(600)).await;
        assert_eq!(status, "success");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    (best, times)
}

async fn chain_bench() {
    let server = start(None).await;
    let sizes: Vec<usize> = std::env::var("CHAIN_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![500, 1000, 5000, 10000]);
    // CHAIN_RUNS: timed runs per chain (more give a profiler more samples).
    let runs_wanted: Option<usize> = std::env::var("CHAIN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok());
    for n in sizes {
        let runs = runs_wanted.unwrap_or(if n <= 1000 { 5 } else { 3 });
        let (best, runs) = chain_run(&server, n, runs).await;
        let (bare, precompiled) = bare_python_ms(n);
        println!(
            "chain of {n} cells, run request -> last success: first run {:.1} ms, best re-run {best:.1} ms ({:.1} us/cell; runs {runs:.1?}); bare python3 exec of the same {n} statements: {bare:.2} ms from source (ratio {:.1}x), {precompiled:.2} ms precompiled (ratio {:.0}x)",
            runs.first().copied().unwrap_or(f64::NAN),
            best * 1000.0 / n as f64,
            best / bare,
            best / precompiled
        );
    }
}

/// The first run right after opening a notebook, and a run right after a kernel restart.
async fn first_run_bench() {
    // The first run right after creating a notebook, on a fresh server (so the user holds no
    // kernels): a spare from KERNEL_POOL (default 1) is adopted. One notebook a second, so the
    // pool has refilled in between.
    let server = start(None).await;
    let mut first = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let nb = server.notebook(&format!("first{i}")).await;
        let mut tab = WsClient::join(&server.base, &nb, &server.token).await;
        let cell = server.cell(&nb, "x = 1").await;
        let t = Instant::now();
        tab.send(json!({"type": "run_cell", "cellId": cell})).await;
        wait_status(&mut tab, &cell, Duration::from_secs(60)).await;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "first run of `x = 1` right after creating a notebook (create, join, add the cell, run): {}",
        summary(first)
    );
    // Kernel cold start, for comparison: the same, once the room's kernel was stopped.
    let mut cold = Vec::new();
    for i in 0..5 {
        let nb = server.notebook(&format!("cold{i}")).await;
        let cell = server.cell(&nb, "1").await;
        let mut tab = WsClient::join(&server.base, &nb, &server.token).await;
        server
            .call(
                reqwest::Method::POST,
                &format!("/api/notebooks/{nb}/restart"),
                json!({}),
            )
            .await;
        let t = Instant::now();
        tab.send(json!({"type": "run_cell", "cellId": cell})).await;
        wait_status(&mut tab, &cell, Duration::from_secs(60)).await;
        cold.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "run right after a kernel restart (request -> success, kernel starting): {}",
        summary(cold)
    );
}

/// Kernel cold start, request -> success on a fresh notebook, without and with the sandbox.
async fn sandbox_bench() {
    for mode in ["off", "auto"] {
        let server = start_with_env(None, &[("KERNEL_SANDBOX", mode)]).await;
        let mut cold = Vec::new();
        for i in 0..10 {
            let nb = server.notebook(&format!("cold{i}")).await;
            let cell = server.cell(&nb, "1").await;
            let mut tab = WsClient::join(&server.base, &nb, &server.token).await;
            let t = Instant::now();
            tab.send(json!({"type": "run_cell", "cellId": cell})).await;
            let status = wait_status(&mut tab, &cell, Duration::from_secs(60)).await;
            assert_eq!(status, "success");
            cold.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "kernel cold start with KERNEL_SANDBOX={mode} (run request on a fresh notebook -> success): {}",
            summary(cold)
        );
    }
}

async fn fanout_bench(k: usize) {
    let server = start(None).await;
    let idle = server.rss_kib();
    let nb = server.notebook("fanout").await;
    let cell = server.cell(&nb, "print('hello')").await;
    let mut clients = Vec::with_capacity(k);
    for _ in 0..k {
        clients.push(WsClient::join(&server.base, &nb, &server.token).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_sessions = server.rss_kib();
    println!(
        "server RSS idle {:.1} MiB; with {k} idle sessions {:.1} MiB ({:.1} KiB per session)",
        idle as f64 / 1024.0,
        with_sessions as f64 / 1024.0,
        with_sessions.saturating_sub(idle) as f64 / k as f64
    );
    let mut trigger = clients.pop().expect("a client");
    let mut all = Vec::new();
    for round in 0..5 {
        let start = Instant::now();
        let waits: Vec<_> = clients
            .drain(..)
            .map(|mut c| {
                let cell = cell.clone();
                tokio::spawn(async move {
                    wait_status(&mut c, &cell, Duration::from_secs(120)).await;
                    (c, start.elapsed().as_secs_f64() * 1000.0)
                })
            })
            .collect();
        trigger
            .send(json!({"type": "run_cell", "cellId": cell}))
            .await;
        wait_status(&mut trigger, &cell, Duration::from_secs(120)).await;
        for w in waits {
            if let Ok((c, ms)) = w.await {
                if round > 0 {
                    all.push(ms);
                }
                clients.push(c);
            }
        }
    }
    println!(
        "K={k}: run_cell -> every session has the final cell_status: {}",
        summary(all)
    );
    if k == 200 {
        let mut editor = trigger;
        let mut watcher = clients.pop().expect("a watcher");
        let mut lat = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            server
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/notebooks/{nb}/cells/{cell}"),
                    json!({"code": format!("print('hello {i}')")}),
                )
                .await;
            watcher
                .until(Duration::from_secs(30), |v| {
                    v["type"] == "cell_updated"
                        && v["cell"]["code"] == format!("print('hello {i}')")
                })
                .await;
            lat.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let _ = editor.send(json!({"type": "interrupt"})).await;
        println!(
            "edit (REST PUT) -> other tab receives cell_updated, 200 edits, {k} tabs open: {}",
            summary(lat)
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("BENCH").unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    if want("http") {
        http_bench("sqlite", None).await;
        let admin = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("rn_bench_{}", uuid::Uuid::new_v4().simple());
        if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            if client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .is_ok()
            {
                let mut url = url::Url::parse(&admin).expect("url");
                url.set_path(&format!("/{name}"));
                http_bench("postgresql", Some(url.as_str())).await;
                let _ = client
                    .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
                    .await;
            }
        } else {
            println!("http [postgresql]: skipped, no PostgreSQL at {admin}");
        }
    }
    if want("chain") {
        chain_bench().await;
    }
    if want("first") {
        first_run_bench().await;
    }
    if want("sandbox") {
        sandbox_bench().await;
    }
    if want("ws") {
        fanout_bench(200).await;
        fanout_bench(1000).await;
    }
}
