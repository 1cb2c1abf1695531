//! Several real server processes on one PostgreSQL database, for the scale-out tests.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::tokens::{public_pem, token_for};

/// The shared secret the test instances forward with.
pub const SECRET: &str = "test-cluster-secret";

/// One running `reactive-notebook serve` process.
pub struct Instance {
    pub child: Child,
    pub base: String,
    pub dir: super::tempdir::TempDir,
}

/// How to start an instance.
#[derive(Clone)]
pub struct InstanceSettings {
    pub database_url: String,
    pub lease_secs: u64,
    pub secret: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Instance {
    /// Starts an instance and waits until it answers `/health`.
    pub async fn start(settings: &InstanceSettings) -> Instance {
        let dir = super::tempdir::TempDir::new();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_reactive-notebook"));
        command
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("DATA_DIR", dir.path())
            .env("DATABASE_URL", &settings.database_url)
            .env("CLERK_JWT_KEY", public_pem())
            .env(
                "PYTHON",
                std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
            )
            .env("KERNEL_POOL", "0")
            .env("LEASE_SECS", settings.lease_secs.to_string())
            .env("RUST_LOG", "info")
            .env_remove("INSTANCE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        match &settings.secret {
            Some(secret) => command.env("CLUSTER_SECRET", secret),
            None => command.env_remove("CLUSTER_SECRET"),
        };
        let child = command.spawn().expect("server starts");
        let instance = Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(format!("{}/health", instance.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return instance;
            }
            assert!(
                Instant::now() < deadline,
                "instance never answered; log:\n{}",
                instance.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What the instance logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: sending a signal to our own child process.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} sent");
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Freezes the process.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws the process.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGTERM (graceful shutdown); does not wait for the exit.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the process to exit (after [`Instance::terminate`]).
    pub fn wait_exit(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "instance did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request as `user`; returns status and JSON.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut req = http
            .request(method, self.url(path))
            .bearer_auth(token_for(user));
        if let Some(body) = body {
            req = req.json(&body);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (status, json)
            }
            // The instance is down or frozen: reported like an unavailable server.
            Err(e) => (599, Value::String(e.to_string())),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SIGKILL ends a frozen (SIGSTOP) process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` instances on one database, one after the other (the first applies migrations).
pub async fn start_many(settings: &InstanceSettings, n: usize) -> Vec<Instance> {
    let mut instances = Vec::with_capacity(n);
    for _ in 0..n {
        instances.push(Instance::start(settings).await);
    }
    instances
}
