//! Several instances on one PostgreSQL: one owner per open notebook (a lease), REST forwarded
//! and WebSockets bridged to it, fenced writes, failover after kill -9, handover on SIGTERM.
//! Real processes of the binary, each test on its own database.

mod common;

use std::time::{Duration, Instant};

use common::instances::{start_many, Instance, InstanceSettings, SECRET};
use common::tokens::token_for;
use common::ws::{Frame, WsClient};
use common::{create_pg_database, drop_pg_database, Backend, TestDb, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const U: &str = "user_cluster";

/// A fresh database and the settings of instances on it.
async fn cluster(lease_secs: u64) -> (String, InstanceSettings) {
    let (name, url) = create_pg_database().await;
    let settings = InstanceSettings {
        database_url: url,
        lease_secs,
        secret: Some(SECRET.into()),
    };
    (name, settings)
}

/// The address of the instance holding a live lease of `notebook`, read from the database.
async fn owner_url(database_url: &str, notebook: &str) -> Option<String> {
    query_text(
        database_url,
        "SELECT instance_url FROM notebook_leases WHERE notebook_id = $1 \
         AND expires_at > (now() AT TIME ZONE 'UTC')",
        notebook,
    )
    .await
}

/// Runs one SQL statement on the test database.
async fn execute(database_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// The first column of the first row `sql` (with `param` as `$1`) returns, if any.
async fn query_text(database_url: &str, sql: &str, param: &str) -> Option<String> {
    let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    let task = tokio::spawn(conn);
    let row = client.query_opt(sql, &[&param]).await.expect(sql);
    drop(client);
    let _ = task.await;
    row.map(|r| r.get::<_, String>(0))
}

/// A cell's stored code, read from the database.
async fn stored_code(database_url: &str, cell: &str) -> String {
    query_text(database_url, "SELECT code FROM cells WHERE id = $1", cell)
        .await
        .expect("the cell's row")
}

/// A cell's stored stdout, read from the database.
async fn stored_stdout(database_url: &str, cell: &str) -> String {
    query_text(database_url, "SELECT stdout FROM cells WHERE id = $1", cell)
        .await
        .expect("the cell's row")
}

/// Creates a notebook through `instance` and makes sure that instance owns it.
async fn owned_notebook(instance: &Instance, settings: &InstanceSettings) -> String {
    let (status, body) = instance
        .call(
            Method::POST,
            "/api/notebooks",
            U,
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let nb = body["notebook_id"]
        .as_str()
        .expect("notebook_id")
        .to_string();
    let (status, body) = instance
        .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        owner_url(&settings.database_url, &nb).await.as_deref(),
        Some(instance.base.as_str()),
        "the creating instance owns the notebook"
    );
    nb
}

async fn new_cell(instance: &Instance, nb: &str, code: &str) -> String {
    let (status, body) = instance
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells"),
            U,
            Some(json!({"type": "python", "code": code})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["cell_id"].as_str().expect("cell_id").to_string()
}

async fn notebook(instance: &Instance, nb: &str) -> Value {
    let (status, body) = instance
        .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn cell<'a>(n: &'a Value, id: &str) -> &'a Value {
    common::cells::cell(n, id)
}

/// Reads frames until the socket closes; answers the close code.
async fn until_closed(tab: &mut WsClient, within: Duration) -> u16 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Frame::Closed(code) = tab.next(left).await {
            return code;
        }
    }
}

/// The events of a tab that every tab of the notebook must see alike.
fn shared_events(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|v| v.get("seq").is_some())
        .cloned()
        .collect()
}

#[actix_web::test]
async fn every_tab_on_every_instance_sees_the_same_seq_stream() {
    let (db, settings) = cluster(10).await;
    let instances = start_many(&settings, 3).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let token = token_for(U);
    // One tab per instance: the owner's is local, the other two are bridged.
    let mut tabs = Vec::new();
    for instance in &instances {
        tabs.push(WsClient::join(&instance.base, &nb, &token).await);
    }
    // Requests round-robin over the instances; two of three are forwarded.
    let a = new_cell(&instances[1], &nb, "a = 20").await;
    let b = new_cell(&instances[2], &nb, "b = a + 1").await;
    let c = new_cell(&instances[0], &nb, "print(b * 2)").await;
    let (status, body) = instances[1]
        .call(
            Method::PUT,
            &format!("/api/notebooks/{nb}/cells/{a}"),
            U,
            Some(json!({"code": "a = 21"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = instances[2]
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{a}/run"),
            U,
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let mut streams = Vec::new();
    for tab in &mut tabs {
        let events = tab
            .until(Duration::from_secs(60), |v| {
                v["type"] == "cell_status" && v["cellId"] == c.as_str() && v["status"] == "success"
            })
            .await;
        streams.push(shared_events(&events));
    }
    let streamed: String = streams[0]
        .iter()
        .filter(|v| v["type"] == "cell_stdout" && v["cellId"] == c.as_str())
        .filter_map(|v| v["data"].as_str())
        .collect();
    assert_eq!(streamed, "44\n", "the run's output streamed to every tab");
    let seqs: Vec<u64> = streams[0]
        .iter()
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq increases: {seqs:?}"
    );
    assert_eq!(
        streams[0], streams[1],
        "the bridged tab on instance 1 saw the same stream"
    );
    assert_eq!(
        streams[0], streams[2],
        "the bridged tab on instance 2 saw the same stream"
    );
    // Every instance answers the same notebook.
    let n0 = notebook(&instances[0], &nb).await;
    for instance in &instances[1..] {
        assert_eq!(notebook(instance, &nb).await["cells"], n0["cells"]);
    }
    assert_eq!(cell(&n0, &b)["status"], "success");
    assert_eq!(cell(&n0, &c)["stdout"], "44\n");
    // A bridging instance that stops closes its tabs as it would close local ones.
    instances[1].terminate();
    assert_eq!(
        until_closed(&mut tabs[1], Duration::from_secs(10)).await,
        1001
    );
    drop(tabs);
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn the_internal_channel_needs_the_cluster_secret() {
    let (db, settings) = cluster(10).await;
    let instances = start_many(&settings, 2).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let http = reqwest::Client::new();
    // The owner's bridged socket endpoint, without a proof and with a forged one.
    let internal = instances[0].url(&format!("/internal/cluster/ws/notebooks/{nb}"));
    let missing = http.get(&internal).send().await.expect("sent");
    assert_eq!(missing.status().as_u16(), 401);
    let forged = http
        .get(&internal)
        .header("x-cluster-identity", "eyJhbGciOiJIUzI1NiJ9.e30.forged")
        .send()
        .await
        .expect("sent");
    assert_eq!(forged.status().as_u16(), 401);
    // A REST request claiming a forwarded identity is never taken on the bearer token instead.
    let claimed = http
        .get(instances[0].url(&format!("/api/notebooks/{nb}")))
        .bearer_auth(token_for(U))
        .header("x-cluster-identity", "not-a-proof")
        .send()
        .await
        .expect("sent");
    assert_eq!(claimed.status().as_u16(), 401);
    // A proof signed with another secret is refused too.
    let other = InstanceSettings {
        secret: Some("another-secret".into()),
        ..settings.clone()
    };
    let stranger = Instance::start(&other).await;
    let (status, body) = stranger
        .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
        .await;
    assert_eq!(
        status, 401,
        "the owner refuses a wrongly signed identity: {body}"
    );
    drop(stranger);
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn without_a_cluster_secret_forwarding_is_refused_clearly() {
    let (db, mut settings) = cluster(10).await;
    settings.secret = None;
    let instances = start_many(&settings, 2).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let (status, body) = instances[1]
        .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("CLUSTER_SECRET"),
        "{body}"
    );
    let mut tab = WsClient::connect(&instances[1].base, &nb).await;
    tab.send(json!({"type": "authenticate", "token": token_for(U)}))
        .await;
    let message = tab.expect_error_then_close(1013).await;
    assert!(message.contains("another server instance"), "{message}");
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn concurrent_mutations_over_three_instances_land_exactly_once() {
    let (db, settings) = cluster(10).await;
    let instances = start_many(&settings, 3).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let before = notebook(&instances[0], &nb).await["cells"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let creates = (0..100).map(|i| {
        let instance = &instances[i % 3];
        let nb = nb.clone();
        async move {
            let code = format!("v{i} = {i}");
            let (status, body) = instance
                .call(
                    Method::POST,
                    &format!("/api/notebooks/{nb}/cells"),
                    U,
                    Some(json!({"type": "python", "code": code})),
                )
                .await;
            (status, body, code)
        }
    });
    let results = futures_util::future::join_all(creates).await;
    let mut ids = Vec::new();
    for (status, body, code) in &results {
        assert_eq!(*status, 200, "{code}: {body}");
        ids.push(body["cell_id"].as_str().expect("cell_id").to_string());
    }
    let n0 = notebook(&instances[0], &nb).await;
    let cells = n0["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), before + 100, "every creation landed once");
    for (id, (_, _, code)) in ids.iter().zip(&results) {
        let matching: Vec<&Value> = cells.iter().filter(|c| c["id"] == id.as_str()).collect();
        assert_eq!(matching.len(), 1, "cell {id} exactly once");
        assert_eq!(matching[0]["code"], code.as_str());
    }
    for instance in &instances[1..] {
        assert_eq!(notebook(instance, &nb).await["cells"], n0["cells"]);
    }
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn kill9_of_the_owner_fails_over_without_losing_committed_edits() {
    const LEASE: u64 = 3;
    let (db, settings) = cluster(LEASE).await;
    let mut instances = start_many(&settings, 3).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let token = token_for(U);
    // Tabs on the two other instances (bridged to the owner).
    let mut tab_b = WsClient::join(&instances[1].base, &nb, &token).await;
    let mut tab_c = WsClient::join(&instances[2].base, &nb, &token).await;
    let x = new_cell(&instances[1], &nb, "x = 41").await;
    let y = new_cell(&instances[2], &nb, "print(x + 1)").await;
    let (status, _) = instances[1]
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{x}/run"),
            U,
            None,
        )
        .await;
    assert_eq!(status, 202);
    tab_b
        .until(Duration::from_secs(60), |v| {
            v["type"] == "cell_status" && v["cellId"] == y.as_str() && v["status"] == "success"
        })
        .await;
    // Run results are committed in batches; wait until this one is.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_stdout(&settings.database_url, &y).await != "42\n" {
        assert!(
            Instant::now() < deadline,
            "the run's result was never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow = new_cell(
        &instances[2],
        &nb,
        "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)",
    )
    .await;
    let (status, _) = instances[2]
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{slow}/run"),
            U,
            None,
        )
        .await;
    assert_eq!(status, 202);
    tab_b
        .until(Duration::from_secs(60), |v| {
            v["type"] == "cell_stdout" && v["cellId"] == slow.as_str()
        })
        .await;
    // Mid-run, the owner dies.
    let killed = Instant::now();
    instances[0].kill9();
    assert_eq!(
        until_closed(&mut tab_b, Duration::from_secs(10)).await,
        1012
    );
    assert_eq!(
        until_closed(&mut tab_c, Duration::from_secs(10)).await,
        1012
    );
    // The next request makes another instance the owner once the lease has expired.
    let taken_over = loop {
        let (status, body) = instances[1]
            .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
            .await;
        if status == 200 {
            break body;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(LEASE + 2),
            "no takeover within LEASE_SECS + 2 s (last answer {status}: {body})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = killed.elapsed();
    println!("takeover {took:?} after kill -9 (LEASE_SECS={LEASE})");
    let owner = owner_url(&settings.database_url, &nb).await;
    assert!(
        owner.as_deref() == Some(instances[1].base.as_str()),
        "instance 1 owns the notebook now: {owner:?}"
    );
    // Nothing committed is lost; outputs from the dead kernel show as stale.
    assert_eq!(cell(&taken_over, &x)["code"], "x = 41");
    assert_eq!(cell(&taken_over, &y)["stdout"], "42\n");
    assert_eq!(cell(&taken_over, &y)["status"], "stale");
    assert!(cell(&taken_over, &slow)["code"]
        .as_str()
        .unwrap_or("")
        .contains("range(600)"));
    // Tabs reconnect (to the new owner and through a bridge) and converge.
    let mut tab_b = WsClient::join(&instances[1].base, &nb, &token).await;
    let mut tab_c = WsClient::join(&instances[2].base, &nb, &token).await;
    let (status, body) = instances[2]
        .call(
            Method::PUT,
            &format!("/api/notebooks/{nb}/cells/{x}"),
            U,
            Some(json!({"code": "x = 1"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let is_edit = |v: &Value| v["type"] == "cell_updated" && v["cellId"] == x.as_str();
    let seen_b = tab_b.until(Duration::from_secs(20), is_edit).await;
    let seen_c = tab_c.until(Duration::from_secs(20), is_edit).await;
    assert_eq!(
        seen_b.last(),
        seen_c.last(),
        "both tabs saw the same edit, same seq"
    );
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn a_paused_owner_cannot_overwrite_the_new_owner() {
    const LEASE: u64 = 2;
    let (db, settings) = cluster(LEASE).await;
    let instances = start_many(&settings, 2).await;
    let (a, b) = (&instances[0], &instances[1]);
    let nb = owned_notebook(a, &settings).await;
    let token = token_for(U);
    let ticker = new_cell(
        a,
        &nb,
        "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.05)",
    )
    .await;
    let mut tab_a = WsClient::join(&a.base, &nb, &token).await;
    tab_a
        .send(json!({"type": "run_cell", "cellId": ticker}))
        .await;
    tab_a
        .until(Duration::from_secs(60), |v| {
            v["type"] == "cell_stdout" && v["cellId"] == ticker.as_str()
        })
        .await;
    let mut tab_b = WsClient::join(&b.base, &nb, &token).await;
    // Frozen past its lease while its kernel keeps printing.
    a.pause();
    tokio::time::sleep(Duration::from_secs(LEASE + 1)).await;
    // The tab bridged to the frozen owner hears nothing from it; the lease tells it to go.
    assert_eq!(until_closed(&mut tab_b, Duration::from_secs(5)).await, 1012);
    let n = notebook(b, &nb).await;
    assert!(cell(&n, &ticker)["code"]
        .as_str()
        .unwrap_or("")
        .contains("range(600)"));
    assert_eq!(
        owner_url(&settings.database_url, &nb).await.as_deref(),
        Some(b.base.as_str()),
        "the running instance took the notebook over"
    );
    let (status, body) = b
        .call(
            Method::PUT,
            &format!("/api/notebooks/{nb}/cells/{ticker}"),
            U,
            Some(json!({"code": "print('B wins')"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = b
        .call(
            Method::POST,
            &format!("/api/notebooks/{nb}/cells/{ticker}/run"),
            U,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = notebook(b, &nb).await;
        if cell(&n, &ticker)["status"] == "success" {
            break;
        }
        assert!(Instant::now() < deadline, "B's run never finished: {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The old owner wakes up with a room, a run's buffered output and a stale lease.
    a.resume();
    assert_eq!(
        until_closed(&mut tab_a, Duration::from_secs(15)).await,
        1012
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = notebook(b, &nb).await;
    let after = cell(&n, &ticker);
    assert_eq!(after["code"], "print('B wins')");
    assert_eq!(
        after["stdout"], "B wins\n",
        "the old owner overwrote nothing: {after}"
    );
    assert_eq!(
        stored_code(&settings.database_url, &ticker).await,
        "print('B wins')"
    );
    // Asking the old owner now lands on the new one.
    assert_eq!(notebook(a, &nb).await["cells"], n["cells"]);
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn a_write_under_a_lease_taken_over_is_refused() {
    let db = TestDb::new(Backend::Postgres).await;
    let mut config = db.config();
    // Long enough that no renewal notices the takeover first: the write's own check must.
    config.cluster.lease_secs = 120;
    let s = TestServer::start_with(db, config).await;
    let reactive_notebook::config::DatabaseTarget::Postgres(url) = s.db.target.clone() else {
        panic!("a PostgreSQL test database");
    };
    let nb = s.new_notebook(U, "fenced").await;
    let c = s.new_cell(U, &nb, "python", "x = 1").await;
    let mut tab = WsClient::join(&s.base, &nb, &token_for(U)).await;
    // Another instance takes the notebook over behind this one's back.
    execute(
        &url,
        &format!(
            "UPDATE notebook_leases SET instance_id = 'another-instance', \
             instance_url = 'http://127.0.0.1:9', epoch = epoch + 1, \
             expires_at = (now() AT TIME ZONE 'UTC') + interval '1 hour' \
             WHERE notebook_id = '{nb}'"
        ),
    )
    .await;
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{nb}/cells/{c}"),
            U,
            json!({"code": "x = 2"}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        stored_code(&url, &c).await,
        "x = 1",
        "the fenced write changed nothing"
    );
    assert_eq!(until_closed(&mut tab, Duration::from_secs(10)).await, 1012);
    s.finish().await;
}

#[actix_web::test]
async fn sigterm_hands_the_notebook_over_at_once() {
    // A long lease: only the handover, not an expiry, can explain a quick takeover.
    let (db, settings) = cluster(30).await;
    let mut instances = start_many(&settings, 2).await;
    let nb = owned_notebook(&instances[0], &settings).await;
    let c = new_cell(&instances[1], &nb, "y = 7").await;
    let mut bridged = WsClient::join(&instances[1].base, &nb, &token_for(U)).await;
    let started = Instant::now();
    instances[0].terminate();
    // The owner's tabs, bridged ones included, are told it is going away.
    assert_eq!(
        until_closed(&mut bridged, Duration::from_secs(10)).await,
        1001
    );
    loop {
        let (status, body) = instances[1]
            .call(Method::GET, &format!("/api/notebooks/{nb}"), U, None)
            .await;
        let owner = owner_url(&settings.database_url, &nb).await;
        if status == 200 && owner.as_deref() == Some(instances[1].base.as_str()) {
            assert_eq!(cell(&body, &c)["code"], "y = 7");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no handover within 1 s (last answer {status}: {body}, owner {owner:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("handover {:?} after SIGTERM", started.elapsed());
    instances[0].wait_exit(Duration::from_secs(15));
    drop(instances);
    drop_pg_database(&db).await;
}

#[actix_web::test]
async fn an_instance_url_other_than_http_is_refused_at_start() {
    let dir = common::tempdir::TempDir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reactive-notebook"))
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("BIND", "127.0.0.1:0")
        .env("INSTANCE_URL", "https://notebook1.internal:8000")
        .env_remove("DATABASE_URL")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "serve refused to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INSTANCE_URL"), "{stderr}");
}
