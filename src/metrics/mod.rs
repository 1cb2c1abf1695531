//! Prometheus metrics: every definition lives here; call sites elsewhere are one-liners.
//!
//! One registry per process (as the `prometheus` crate's default registry is): rooms, kernels
//! and sessions update it from wherever they run without a handle threaded through them.
//! Every update is an atomic operation (a label lookup at most takes a read lock for a moment,
//! never across an await), so recording never blocks or fails a request. Label values come
//! only from fixed sets in the code (route templates, status codes, enums below), never from
//! paths, ids or user input, so the number of series stays bounded.

pub mod http;
mod kernel;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub use kernel::{KernelBusy, KernelGauge, KernelState};

/// `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Prefix of every metric name.
const PREFIX: &str = "reactive_notebook";

/// How a cell run ended, as the `outcome` label of `cell_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellOutcome {
    /// Ran without error.
    Success,
    /// Raised an error (traceback, SQL error).
    Error,
    /// Stopped by an interrupt.
    Interrupted,
    /// Stopped at `KERNEL_TIMEOUT_SECS`.
    Timeout,
    /// The kernel died running it.
    Crashed,
    /// Not run because a cell upstream failed.
    Blocked,
}

impl CellOutcome {
    const ALL: [CellOutcome; 6] = [
        CellOutcome::Success,
        CellOutcome::Error,
        CellOutcome::Interrupted,
        CellOutcome::Timeout,
        CellOutcome::Crashed,
        CellOutcome::Blocked,
    ];

    fn label(self) -> &'static str {
        match self {
            CellOutcome::Success => "success",
            CellOutcome::Error => "error",
            CellOutcome::Interrupted => "interrupted",
            CellOutcome::Timeout => "timeout",
            CellOutcome::Crashed => "crashed",
            CellOutcome::Blocked => "blocked",
        }
    }
}

/// Why a kernel was replaced, as the `reason` label of `kernel_restarts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// Someone asked for it (REST `restart`).
    Requested,
    /// The previous kernel died.
    Crash,
}

impl RestartReason {
    fn label(self) -> &'static str {
        match self {
            RestartReason::Requested => "requested",
            RestartReason::Crash => "crash",
        }
    }
}

/// Why `/metrics` could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("metrics could not be encoded: {0}")]
pub struct MetricsError(String);

impl From<MetricsError> for crate::error::ApiError {
    fn from(e: MetricsError) -> Self {
        crate::error::ApiError::Internal(e.to_string())
    }
}

/// Every metric of the server.
struct Metrics {
    registry: Registry,
    /// HTTP requests by method, route template and status, with their latency.
    http_requests: HistogramVec,
    /// Notebook rooms open on this server.
    rooms_open: IntGauge,
    /// Live kernels by state.
    kernels: IntGaugeVec,
    /// Kernels that started and reported ready.
    kernel_starts: IntCounter,
    /// Kernels that failed to start.
    kernel_start_failures: IntCounter,
    /// Kernels that died while in use.
    kernel_crashes: IntCounter,
    /// Kernels replaced by a fresh one, by reason.
    kernel_restarts: IntCounterVec,
    /// Cell runs by outcome.
    cell_runs: IntCounterVec,
    /// How long cells ran.
    cell_run_seconds: Histogram,
    /// Open WebSocket connections.
    ws_sessions: IntGauge,
    /// WebSocket connections opened.
    ws_sessions_opened: IntCounter,
    /// Events rooms broadcast (each once, whatever the number of tabs).
    broadcasts: IntCounter,
    /// Messages queued for WebSocket sessions (one per session and message).
    ws_messages_queued: IntCounter,
    /// Messages discarded because a session's client read too slowly.
    ws_messages_dropped: IntCounter,
    /// Sessions closed with 1013 because their client read too slowly.
    ws_slow_clients: IntCounter,
    /// Rejected credentials by reason.
    auth_failures: IntCounterVec,
    /// Assistant tool calls by tool and outcome.
    assistant_tool_calls: IntCounterVec,
    /// Time spent waiting for a pooled database connection, by backend.
    db_pool_wait: HistogramVec,
}

/// Latency buckets for HTTP requests (seconds).
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Cell run buckets (seconds), up to the default `KERNEL_TIMEOUT_SECS`.
const CELL_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Pool wait buckets (seconds), up to the pool's 10 s wait timeout.
const POOL_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Builds a metric from a definition fixed in this file: only a malformed name could fail, and
/// the unit tests build every one.
fn build<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    made: prometheus::Result<M>,
) -> M {
    let metric = made.expect("metric definitions in this file are valid");
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        log::error!("metric not registered: {e}");
    }
    metric
}

fn name(short: &str) -> String {
    format!("{PREFIX}_{short}")
}

fn counter(r: &Registry, short: &str, help: &str) -> IntCounter {
    build(r, IntCounter::with_opts(Opts::new(name(short), help)))
}

fn counter_vec(r: &Registry, short: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    build(r, IntCounterVec::new(Opts::new(name(short), help), labels))
}

fn gauge(r: &Registry, short: &str, help: &str) -> IntGauge {
    build(r, IntGauge::with_opts(Opts::new(name(short), help)))
}

fn gauge_vec(r: &Registry, short: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    build(r, IntGaugeVec::new(Opts::new(name(short), help), labels))
}

fn histogram(r: &Registry, short: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name(short), help).buckets(buckets.to_vec());
    build(r, Histogram::with_opts(opts))
}

fn histogram_vec(
    r: &Registry,
    short: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let opts = HistogramOpts::new(name(short), help).buckets(buckets.to_vec());
    build(r, HistogramVec::new(opts, labels))
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let metrics = Metrics {
            http_requests: histogram_vec(
                &r,
                "http_request_duration_seconds",
                "HTTP requests by method, route template and status: time to the response head",
                HTTP_BUCKETS,
                &["method", "route", "status"],
            ),
            rooms_open: gauge(&r, "rooms_open", "Notebook rooms open on this server"),
            kernels: gauge_vec(
                &r,
                "kernels",
                "Live kernels by state (starting, idle, busy, spare)",
                &["state"],
            ),
            kernel_starts: counter(
                &r,
                "kernel_starts_total",
                "Kernels that started and reported ready",
            ),
            kernel_start_failures: counter(
                &r,
                "kernel_start_failures_total",
                "Kernels that failed to start",
            ),
            kernel_crashes: counter(
                &r,
                "kernel_crashes_total",
                "Kernels that died while in use (crash, protocol violation, killed at a timeout)",
            ),
            kernel_restarts: counter_vec(
                &r,
                "kernel_restarts_total",
                "Kernels replaced by a fresh one, by reason (requested, crash)",
                &["reason"],
            ),
            cell_runs: counter_vec(&r, "cell_runs_total", "Cell runs by outcome", &["outcome"]),
            cell_run_seconds: histogram(
                &r,
                "cell_run_duration_seconds",
                "How long cells ran in their kernel or database",
                CELL_BUCKETS,
            ),
            ws_sessions: gauge(&r, "ws_sessions", "Open WebSocket connections"),
            ws_sessions_opened: counter(
                &r,
                "ws_sessions_opened_total",
                "WebSocket connections opened",
            ),
            broadcasts: counter(
                &r,
                "broadcasts_total",
                "Events rooms broadcast to their sessions (each counted once)",
            ),
            ws_messages_queued: counter(
                &r,
                "ws_messages_queued_total",
                "Messages queued for WebSocket sessions (one per session and message)",
            ),
            ws_messages_dropped: counter(
                &r,
                "ws_messages_dropped_total",
                "Messages discarded because a session's client read too slowly",
            ),
            ws_slow_clients: counter(
                &r,
                "ws_slow_client_disconnects_total",
                "WebSocket sessions closed with 1013 because their client read too slowly",
            ),
            auth_failures: counter_vec(
                &r,
                "auth_failures_total",
                "Rejected credentials by reason",
                &["reason"],
            ),
            assistant_tool_calls: counter_vec(
                &r,
                "assistant_tool_calls_total",
                "Assistant tool calls by tool and outcome (ok, error)",
                &["tool", "outcome"],
            ),
            db_pool_wait: histogram_vec(
                &r,
                "db_pool_wait_seconds",
                "Time spent waiting for a pooled database connection, by backend",
                POOL_BUCKETS,
                &["backend"],
            ),
            registry: r,
        };
        metrics.preset();
        metrics
    }

    /// Creates the series of the fixed label sets at zero, so a dashboard sees them before the
    /// first event (an absent series and a zero one read differently in PromQL).
    fn preset(&self) {
        for state in KernelState::ALL {
            let _ = self.kernels.get_metric_with_label_values(&[state.label()]);
        }
        for reason in [RestartReason::Requested, RestartReason::Crash] {
            let _ = self
                .kernel_restarts
                .get_metric_with_label_values(&[reason.label()]);
        }
        for outcome in CellOutcome::ALL {
            let _ = self
                .cell_runs
                .get_metric_with_label_values(&[outcome.label()]);
        }
        for tool in crate::assistant::tools::TOOL_NAMES {
            for outcome in ["ok", "error"] {
                let _ = self
                    .assistant_tool_calls
                    .get_metric_with_label_values(&[tool, outcome]);
            }
        }
    }
}

/// Creates every metric now, so the first scrape lists every family without labels and the
/// series of the fixed label sets.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// The text exposition of every metric.
pub fn render() -> Result<String, MetricsError> {
    let families = METRICS.registry.gather();
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut buffer)
        .map_err(|e| MetricsError(e.to_string()))?;
    String::from_utf8(buffer).map_err(|e| MetricsError(e.to_string()))
}

/// Counts one HTTP request.
pub fn http_request(method: &str, route: &str, status: &str, took: Duration) {
    if let Ok(h) = METRICS
        .http_requests
        .get_metric_with_label_values(&[method, route, status])
    {
        h.observe(took.as_secs_f64());
    }
}

/// Counts something live (a room, a session) for as long as the guard exists.
#[must_use = "the gauge goes back down when the guard is dropped"]
pub struct GaugeGuard(&'static IntGauge);

impl GaugeGuard {
    fn new(gauge: &'static IntGauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl std::fmt::Debug for GaugeGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GaugeGuard")
    }
}

/// A room opened; it counts as open until the guard (kept in the room) is dropped.
pub fn room_opened() -> GaugeGuard {
    GaugeGuard::new(&METRICS.rooms_open)
}

/// A WebSocket connection opened; it counts as open until the guard is dropped.
pub fn ws_session_opened() -> GaugeGuard {
    METRICS.ws_sessions_opened.inc();
    GaugeGuard::new(&METRICS.ws_sessions)
}

/// A kernel started (`ok`) or failed to.
pub fn kernel_start(ok: bool) {
    if ok {
        METRICS.kernel_starts.inc();
    } else {
        METRICS.kernel_start_failures.inc();
    }
}

/// A kernel in use died.
pub fn kernel_crashed() {
    METRICS.kernel_crashes.inc();
}

/// A kernel was replaced by a fresh one.
pub fn kernel_restarted(reason: RestartReason) {
    if let Ok(c) = METRICS
        .kernel_restarts
        .get_metric_with_label_values(&[reason.label()])
    {
        c.inc();
    }
}

/// A cell run ended; `ran_for` is how long it ran (None when it never started).
pub fn cell_run(outcome: CellOutcome, ran_for: Option<Duration>) {
    if let Ok(c) = METRICS
        .cell_runs
        .get_metric_with_label_values(&[outcome.label()])
    {
        c.inc();
    }
    if let Some(ran_for) = ran_for {
        METRICS.cell_run_seconds.observe(ran_for.as_secs_f64());
    }
}

/// A room broadcast an event.
pub fn broadcast() {
    METRICS.broadcasts.inc();
}

/// A message was queued for a session.
pub fn ws_message_queued() {
    METRICS.ws_messages_queued.inc();
}

/// A session's client read too slowly: `dropped` messages were discarded and it is closed.
pub fn ws_slow_client(dropped: usize) {
    METRICS
        .ws_messages_dropped
        .inc_by(u64::try_from(dropped).unwrap_or(u64::MAX));
    METRICS.ws_slow_clients.inc();
}

/// A credential was rejected; `reason` is one of a fixed set of words chosen in the code.
pub fn auth_failure(reason: &'static str) {
    if let Ok(c) = METRICS
        .auth_failures
        .get_metric_with_label_values(&[reason])
    {
        c.inc();
    }
}

/// The assistant called `tool` (a name from the fixed tool list, or `unknown`).
pub fn assistant_tool_call(tool: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    if let Ok(c) = METRICS
        .assistant_tool_calls
        .get_metric_with_label_values(&[tool, outcome])
    {
        c.inc();
    }
}

/// Time spent waiting for a pooled connection of `backend`.
pub fn db_pool_wait(backend: &'static str, waited: Duration) {
    if let Ok(h) = METRICS
        .db_pool_wait
        .get_metric_with_label_values(&[backend])
    {
        h.observe(waited.as_secs_f64());
    }
}

fn kernel_state_gauge(state: KernelState) -> Option<IntGauge> {
    METRICS
        .kernels
        .get_metric_with_label_values(&[state.label()])
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_defined_and_rendered() {
        init();
        http_request(
            "GET",
            "/api/notebooks/{id}",
            "200",
            Duration::from_millis(3),
        );
        cell_run(CellOutcome::Timeout, Some(Duration::from_secs(1)));
        auth_failure("expired");
        assistant_tool_call("run_cell", true);
        db_pool_wait("sqlite", Duration::from_micros(50));
        let text = render().expect("renders");
        for family in [
            "http_request_duration_seconds",
            "rooms_open",
            "kernels",
            "kernel_starts_total",
            "kernel_start_failures_total",
            "kernel_crashes_total",
            "kernel_restarts_total",
            "cell_runs_total",
            "cell_run_duration_seconds",
            "ws_sessions",
            "ws_sessions_opened_total",
            "broadcasts_total",
            "ws_messages_queued_total",
            "ws_messages_dropped_total",
            "ws_slow_client_disconnects_total",
            "auth_failures_total",
            "assistant_tool_calls_total",
            "db_pool_wait_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {PREFIX}_{family} ")),
                "{family} missing from:\n{text}"
            );
        }
        assert!(text.contains(r#"route="/api/notebooks/{id}""#), "{text}");
        assert!(text.contains(r#"outcome="timeout""#), "{text}");
    }

    #[test]
    fn a_guard_counts_while_it_lives() {
        // A gauge of its own: the shared ones move with whatever else runs in this process.
        let gauge: &'static IntGauge = Box::leak(Box::new(
            IntGauge::new("guard_test", "test").expect("valid"),
        ));
        let guard = GaugeGuard::new(gauge);
        assert_eq!(gauge.get(), 1);
        drop(guard);
        assert_eq!(gauge.get(), 0);
    }
}
