//! `cargo bench --bench yjs`: edit-to-other-tab latency of Yjs co-editing with 50 co-editors.
//!
//! One in-process server (SQLite), one cell, 50 WebSocket clients each holding the cell's
//! `yrs` document. Each round one client types a character; we time until another client has
//! the relayed update (edit-to-other-tab) and until all 50 have it. Then a burst: all 50 type
//! at once, timed until everyone has all 50 edits. Client and server share the machine.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/yjs.rs"]
mod yclient;

use std::time::{Duration, Instant};

use common::tokens::token_for;
use common::{Backend, TestServer};
use yclient::YClient;
use yrs::Text;

const EDITORS: usize = 50;
const ROUNDS: usize = 200;
const USER: &str = "bench_yjs";

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} median={:.2?} p95={:.2?} max={:.2?}",
        samples.len(),
        pick(0.5),
        pick(0.95),
        pick(1.0)
    );
}

#[actix_web::main]
async fn main() {
    let s = TestServer::start(Backend::Sqlite).await;
    let nb = s.new_notebook(USER, "bench").await;
    let cell = s.new_cell(USER, &nb, "python", "").await;
    let token = token_for(USER);
    let mut clients = Vec::new();
    for _ in 0..EDITORS {
        clients.push(YClient::join(&s.base, &nb, &token, 1).await);
    }
    let (mut other_tab, mut everyone) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let writer = round % EDITORS;
        let observer = (writer + 1) % EDITORS;
        let started = Instant::now();
        clients[writer]
            .edit(&cell, |t, txn| {
                let len = t.len(txn);
                t.insert(txn, len, "x");
            })
            .await;
        clients[observer].until_relayed(round + 1).await;
        other_tab.push(started.elapsed());
        for c in clients.iter_mut() {
            c.until_relayed(round + 1).await;
            c.others.clear();
        }
        everyone.push(started.elapsed());
    }
    summary("edit -> other tab (50 co-editors)", other_tab);
    summary("edit -> all 50 tabs", everyone);

    let mut bursts = Vec::new();
    let mut relayed = ROUNDS;
    for _ in 0..20 {
        let started = Instant::now();
        for c in clients.iter_mut() {
            c.edit(&cell, |t, txn| t.insert(txn, 0, "y")).await;
        }
        relayed += EDITORS;
        for c in clients.iter_mut() {
            c.until_relayed(relayed).await;
            c.others.clear();
        }
        bursts.push(started.elapsed());
    }
    summary(
        "burst: 50 simultaneous edits -> every tab has all 50",
        bursts,
    );
    let text = clients[0].text(&cell);
    assert!(
        clients.iter().all(|c| c.text(&cell) == text),
        "clients diverged"
    );
    s.finish().await;
}
