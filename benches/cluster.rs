//! `cargo bench --bench cluster`: what forwarding to a notebook's owner adds, measured with
//! three real instances on one PostgreSQL (`TEST_DATABASE_URL`, a fresh database).
//!
//! - REST: `GET /api/notebooks/{id}` sent to the owner, and to another instance (proxied).
//! - WebSocket: a cell edit's `cell_updated` event, as seen by a tab on the owner and by a tab
//!   on another instance (bridged), each timed from the edit request.
//!
//! Client, instances and PostgreSQL share the machine, so the figures are conservative.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::instances::{start_many, InstanceSettings, SECRET};
use common::tokens::token_for;
use common::ws::WsClient;
use reqwest::Method;
use serde_json::json;

const USER: &str = "bench_cluster";
const ROUNDS: usize = 200;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at.min(samples.len() - 1)]
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    let median = percentile(samples, 0.5);
    let p95 = percentile(samples, 0.95);
    println!(
        "{name:<34} median {median:>10.3?}  p95 {p95:>10.3?}  (n={})",
        samples.len()
    );
    median
}

#[actix_web::main]
async fn main() {
    let (db, url) = common::create_pg_database().await;
    let settings = InstanceSettings {
        database_url: url,
        lease_secs: 10,
        secret: Some(SECRET.into()),
    };
    let instances = start_many(&settings, 3).await;
    let (owner, other) = (&instances[0], &instances[1]);
    let (status, body) = owner
        .call(
            Method::POST,
            "/api/notebooks",
            USER,
            Some(json!({"name": "bench"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let nb = body["notebook_id"].as_str().expect("id").to_string();
    let (status, body) = owner
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells"),
            USER,
            Some(json!({"type": "python", "code": "x = 0"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cell = body["cell_id"].as_str().expect("cell").to_string();

    let http = reqwest::Client::new();
    let token = token_for(USER);
    let timed_get = |base: String| {
        let http = http.clone();
        let token = token.clone();
        let path = format!("{base}/api/notebooks/{nb}");
        async move {
            let started = Instant::now();
            let resp = http
                .get(&path)
                .bearer_auth(&token)
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status().as_u16(), 200);
            resp.bytes().await.expect("body");
            started.elapsed()
        }
    };
    // Warm both paths (connections, the owner's room) before measuring.
    for _ in 0..20 {
        timed_get(owner.base.clone()).await;
        timed_get(other.base.clone()).await;
    }
    let (mut direct, mut forwarded) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        direct.push(timed_get(owner.base.clone()).await);
        forwarded.push(timed_get(other.base.clone()).await);
    }
    println!("REST GET /api/notebooks/{{id}}");
    let d = report("  on the owner", &mut direct);
    let f = report("  forwarded by another instance", &mut forwarded);
    println!(
        "  added by forwarding (medians)     {:?}",
        f.saturating_sub(d)
    );

    let mut local_tab = WsClient::join(&owner.base, &nb, &token).await;
    let mut bridged_tab = WsClient::join(&other.base, &nb, &token).await;
    let (mut local, mut bridged) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let started = Instant::now();
        let (status, body) = owner
            .call(
                Method::PUT,
                &format!("/api/notebooks/{nb}/cells/{cell}"),
                USER,
                Some(json!({"code": format!("x = {i}")})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let is_edit = |v: &serde_json::Value| v["type"] == "cell_updated";
        // Both tabs are read at once, so each is timed when its own event arrives.
        let (on_owner, through_bridge) = tokio::join!(
            async {
                local_tab.until(Duration::from_secs(10), is_edit).await;
                started.elapsed()
            },
            async {
                bridged_tab.until(Duration::from_secs(10), is_edit).await;
                started.elapsed()
            }
        );
        local.push(on_owner);
        bridged.push(through_bridge);
    }
    println!("WebSocket cell_updated, from the edit request");
    let l = report("  tab on the owner", &mut local);
    let b = report("  tab bridged from another instance", &mut bridged);
    println!(
        "  added by the bridge (medians)     {:?}",
        b.saturating_sub(l)
    );

    drop(local_tab);
    drop(bridged_tab);
    drop(instances);
    common::drop_pg_database(&db).await;
}
