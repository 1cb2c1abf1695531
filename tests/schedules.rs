//! Scheduled and recorded runs over real HTTP, real kernels and real databases: schedules
//! and their roles, cron and time zone validation, fires seen happening (every minute, and
//! faster with a seconds field), errors, overlap skips, the kernel quota, shutdown, and
//! exactly-once firing with two server instances on one PostgreSQL database.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use reactive_notebook::config::{Config, DatabaseTarget};
use reactive_notebook::server;
use serde_json::{json, Value};

const OWNER: &str = "sched_owner";
const EDITOR: &str = "sched_editor";
const VIEWER: &str = "sched_viewer";
const STRANGER: &str = "sched_stranger";

/// Settings for these tests: the scheduler looks every second, and 6-field (seconds) cron
/// expressions are allowed so fires need not wait for a minute boundary.
fn fast(db: &TestDb) -> Config {
    let mut config = db.config();
    config.schedule_tick_secs = 1;
    config.schedule_allow_seconds = true;
    config
}

async fn start_fast(backend: Backend) -> TestServer {
    let db = TestDb::new(backend).await;
    let config = fast(&db);
    TestServer::start_with(db, config).await
}

/// A notebook of OWNER with these Python cells; answers its id and the cell ids.
async fn notebook_with(s: &TestServer, cells: &[&str]) -> (String, Vec<String>) {
    let nb = s.new_empty_notebook(OWNER, "scheduled").await;
    let mut ids = Vec::new();
    for code in cells {
        ids.push(s.new_cell(OWNER, &nb, "python", code).await);
    }
    (nb, ids)
}

/// Shares `nb` with EDITOR and VIEWER through invites.
async fn share(s: &TestServer, nb: &str) {
    for (user, role) in [(EDITOR, "editor"), (VIEWER, "viewer")] {
        let (status, body) = s
            .post(
                &format!("/api/notebooks/{nb}/invites"),
                OWNER,
                json!({ "role": role }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let code = body["code"].as_str().expect("code");
        let (status, body) = s
            .post(&format!("/api/invites/{code}/accept"), user, json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn schedule(s: &TestServer, nb: &str, user: &str, body: Value) -> (u16, Value) {
    s.post(&format!("/api/notebooks/{nb}/schedules"), user, body)
        .await
}

/// Deletes the schedule `made` (as created) of `nb`, as the owner.
async fn unschedule(s: &TestServer, nb: &str, made: &Value) {
    let id = made["id"].as_str().expect("id");
    let (status, body) = s
        .delete(&format!("/api/notebooks/{nb}/schedules/{id}"), OWNER)
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn runs(s: &TestServer, nb: &str) -> Vec<Value> {
    let (status, body) = s.get(&format!("/api/notebooks/{nb}/runs"), OWNER).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list of runs").clone()
}

/// Polls the run history until `done` holds for it (fails after `limit`).
async fn wait_runs(
    s: &TestServer,
    nb: &str,
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let list = runs(s, nb).await;
        if done(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "runs never got there: {list:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn finished(run: &Value) -> bool {
    run["status"] != "running"
}

/// Starts a run over the API; answers its id.
async fn start_run(s: &TestServer, nb: &str, body: Value) -> String {
    let (status, body) = s
        .post(&format!("/api/notebooks/{nb}/runs"), OWNER, body)
        .await;
    assert_eq!(status, 202, "{body}");
    body["run_id"].as_str().expect("run_id").to_string()
}

/// Waits for one run to end; answers its history entry.
async fn wait_run(s: &TestServer, nb: &str, run_id: &str) -> Value {
    let list = wait_runs(s, nb, Duration::from_secs(120), |list| {
        list.iter().any(|r| r["id"] == run_id && finished(r))
    })
    .await;
    list.into_iter()
        .find(|r| r["id"] == run_id)
        .expect("the run is listed")
}

/// The text of every output of every code cell of an ipynb snapshot.
fn snapshot_text(doc: &Value) -> String {
    doc["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .flat_map(|c| c["outputs"].as_array().cloned().unwrap_or_default())
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn snapshot(s: &TestServer, nb: &str, run_id: &str) -> Value {
    let (status, body) = s
        .get(&format!("/api/notebooks/{nb}/runs/{run_id}"), OWNER)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nbformat"], 4, "{body}");
    body
}

both_backends!(
    simultaneous_creates_stop_at_the_limit,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let (nb, _) = notebook_with(&s, &["x = 1"]).await;
        let answers = futures_util::future::join_all(
            (0..30).map(|i| schedule(&s, &nb, OWNER, json!({ "cron": format!("{i} 3 * * *") }))),
        )
        .await;
        let created = answers.iter().filter(|(status, _)| *status == 201).count();
        let refused: Vec<&Value> = answers
            .iter()
            .filter(|(status, _)| *status == 409)
            .map(|(_, body)| body)
            .collect();
        let statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
        assert_eq!((created, refused.len()), (20, 10), "{statuses:?}");
        assert!(
            refused.iter().all(|body| body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("at most 20"))),
            "{refused:?}"
        );
        let (status, listed) = s
            .get(&format!("/api/notebooks/{nb}/schedules"), OWNER)
            .await;
        assert_eq!(status, 200, "{listed}");
        assert_eq!(listed.as_array().map(Vec::len), Some(20), "{listed}");
        s.finish().await;
    }
);

both_backends!(schedules_and_roles, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let (nb, _) = notebook_with(&s, &["x = 1"]).await;
    share(&s, &nb).await;

    let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "0 9 * * 1-5" })).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["cron"], "0 9 * * 1-5");
    assert_eq!(made["timezone"], "UTC");
    assert_eq!(made["created_by"], OWNER);
    let next = made["next_fire_at"].as_str().expect("next_fire_at");
    let next = chrono::DateTime::parse_from_rfc3339(next).expect("an RFC 3339 time");
    assert!(next > chrono::Utc::now(), "{next}");
    assert!(
        made["created_at"].is_string() && made["id"].is_string(),
        "{made}"
    );

    let (status, by_editor) = schedule(
        &s,
        &nb,
        EDITOR,
        json!({ "cron": "30 7 * * *", "timezone": "Europe/Paris" }),
    )
    .await;
    assert_eq!(status, 201, "{by_editor}");
    assert_eq!(by_editor["timezone"], "Europe/Paris");
    assert_eq!(by_editor["created_by"], EDITOR);

    let (status, body) = schedule(&s, &nb, VIEWER, json!({ "cron": "* * * * *" })).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = schedule(&s, &nb, STRANGER, json!({ "cron": "* * * * *" })).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["detail"], "Notebook not found");
    let (status, body) = schedule(
        &s,
        "no-such-notebook",
        OWNER,
        json!({ "cron": "* * * * *" }),
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let path = format!("/api/notebooks/{nb}/schedules");
    let (status, listed) = s.get(&path, VIEWER).await;
    assert_eq!(status, 200, "{listed}");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [made["id"].as_str(), by_editor["id"].as_str()].map(Option::unwrap)
    );
    let (status, body) = s.get(&path, STRANGER).await;
    assert_eq!(status, 404, "{body}");

    let one = format!("{path}/{}", made["id"].as_str().expect("id"));
    let (status, body) = s.delete(&one, VIEWER).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = s.delete(&one, STRANGER).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.delete(&one, EDITOR).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
    let (status, body) = s.delete(&one, OWNER).await;
    assert_eq!(status, 404, "{body}");
    let (_, listed) = s.get(&path, OWNER).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The run routes check roles the same way.
    let runs_path = format!("/api/notebooks/{nb}/runs");
    let (status, body) = s.get(&runs_path, VIEWER).await;
    assert_eq!((status, body), (200, json!([])));
    let (status, body) = s.get(&runs_path, STRANGER).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.post(&runs_path, VIEWER, json!({})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = s.post(&runs_path, STRANGER, json!({})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.get(&format!("{runs_path}/no-such-run"), OWNER).await;
    assert_eq!(status, 404, "{body}");
    s.finish().await;
});

both_backends!(
    bad_cron_or_timezone_stores_nothing,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let (nb, _) = notebook_with(&s, &["x = 1"]).await;
        let cases = [
            (json!({ "cron": "* * *" }), "3 fields"),
            (json!({ "cron": "" }), "empty"),
            (json!({ "cron": "61 * * * *" }), "invalid cron expression"),
            (json!({ "cron": "* * * * * *" }), "SCHEDULE_ALLOW_SECONDS"),
            (json!({ "cron": "0 0 30 2 *" }), "0 0 30 2 *"),
            (
                json!({ "cron": "* * * * *", "timezone": "Mars/Olympus" }),
                "unknown timezone \"Mars/Olympus\"",
            ),
            (
                json!({ "cron": "* * * * *", "timezone": "" }),
                "unknown timezone",
            ),
        ];
        for (body, expected) in cases {
            let (status, answer) = schedule(&s, &nb, OWNER, body.clone()).await;
            assert_eq!(status, 422, "{body} -> {answer}");
            let detail = answer["detail"].as_str().expect("detail");
            assert!(detail.contains(expected), "{body}: {detail}");
        }
        // Not even a cron field: the body has the wrong shape.
        let (status, answer) = schedule(&s, &nb, OWNER, json!({ "timezone": "UTC" })).await;
        assert_eq!(status, 422, "{answer}");
        let (status, listed) = s
            .get(&format!("/api/notebooks/{nb}/schedules"), OWNER)
            .await;
        assert_eq!((status, listed), (200, json!([])));
        s.finish().await;
    }
);

both_backends!(every_minute_schedule_fires, |backend: Backend| async move {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.schedule_tick_secs = 1;
    let s = TestServer::start_with(db, config).await;
    let (nb, cells) = notebook_with(&s, &["x = 6 * 7", "print('answer', x)"]).await;
    let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "* * * * *" })).await;
    assert_eq!(status, 201, "{made}");
    let first_fire = made["next_fire_at"]
        .as_str()
        .expect("next_fire_at")
        .to_string();

    // The first fire is at most a minute away; allow for the run itself.
    let list = wait_runs(&s, &nb, Duration::from_secs(150), |list| {
        list.iter().any(finished)
    })
    .await;
    let run = list.iter().find(|r| finished(r)).expect("a finished run");
    assert_eq!(run["trigger"], "schedule", "{run}");
    assert_eq!(run["schedule_id"], made["id"], "{run}");
    assert_eq!(run["scheduled_for"], first_fire.as_str(), "{run}");
    assert_eq!(run["status"], "success", "{run}");
    assert!(run["finished_at"].is_string(), "{run}");
    assert!(run.get("failed_cell").is_none(), "{run}");

    let doc = snapshot(&s, &nb, run["id"].as_str().expect("id")).await;
    let ids: Vec<&str> = doc["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, cells.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(snapshot_text(&doc).contains("answer 42"), "{doc:#}");

    // The schedule moved on to a later minute.
    let (_, listed) = s
        .get(&format!("/api/notebooks/{nb}/schedules"), OWNER)
        .await;
    let next = listed[0]["next_fire_at"].as_str().expect("next_fire_at");
    assert!(next > first_fire.as_str(), "{next} after {first_fire}");
    // A live room is not involved: the notebook's own cells never ran.
    let n = s.notebook(OWNER, &nb).await;
    assert!(
        n["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .all(|c| c["status"] != "success"),
        "{n:#}"
    );
    s.finish().await;
});

both_backends!(
    a_failing_cell_is_an_error_run,
    |backend: Backend| async move {
        let s = start_fast(backend).await;
        let (nb, cells) = notebook_with(&s, &["x = 1", "y = x / 0", "print('after', y)"]).await;
        let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "*/2 * * * * *" })).await;
        assert_eq!(status, 201, "{made}");
        let list = wait_runs(&s, &nb, Duration::from_secs(120), |list| {
            list.iter().any(|r| r["status"] == "error")
        })
        .await;
        unschedule(&s, &nb, &made).await;
        let run = list
            .iter()
            .find(|r| r["status"] == "error")
            .expect("an error run");
        assert_eq!(run["failed_cell"], cells[1].as_str(), "{run}");
        let detail = run["detail"].as_str().expect("detail");
        assert!(detail.contains("ZeroDivisionError"), "{detail}");
        let doc = snapshot(&s, &nb, run["id"].as_str().expect("id")).await;
        let text = snapshot_text(&doc);
        assert!(text.contains("ZeroDivisionError"), "{doc:#}");
        assert!(
            !text.contains("after"),
            "the blocked cell did not run: {doc:#}"
        );
        s.finish().await;
    }
);

both_backends!(
    api_and_manual_runs_are_recorded,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let (nb, _) = notebook_with(&s, &["import time\ntime.sleep(3)\nprint('slept')"]).await;
        let run_id = start_run(&s, &nb, json!({})).await;
        // One run of a notebook at a time.
        let (status, body) = s
            .post(&format!("/api/notebooks/{nb}/runs"), OWNER, json!({}))
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(&run_id)),
            "{body}"
        );
        let (status, body) = s
            .get(&format!("/api/notebooks/{nb}/runs/{run_id}"), OWNER)
            .await;
        assert_eq!(status, 409, "a running run has no snapshot yet: {body}");

        let run = wait_run(&s, &nb, &run_id).await;
        assert_eq!(run["trigger"], "api", "{run}");
        assert_eq!(run["status"], "success", "{run}");
        assert!(run.get("schedule_id").is_none(), "{run}");
        let doc = snapshot(&s, &nb, &run_id).await;
        assert!(snapshot_text(&doc).contains("slept"), "{doc:#}");
        let (status, page) = s
            .get(
                &format!("/api/notebooks/{nb}/runs/{run_id}?format=html"),
                OWNER,
            )
            .await;
        assert_eq!(status, 200);
        assert!(page.as_str().is_some_and(|p| p.contains("slept")), "{page}");

        let manual = start_run(&s, &nb, json!({ "trigger": "manual" })).await;
        let run = wait_run(&s, &nb, &manual).await;
        assert_eq!(run["trigger"], "manual", "{run}");
        let list = runs(&s, &nb).await;
        let order: Vec<&str> = list.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(order, [manual.as_str(), run_id.as_str()], "newest first");
        let (status, body) = s
            .post(
                &format!("/api/notebooks/{nb}/runs"),
                OWNER,
                json!({ "trigger": "schedule" }),
            )
            .await;
        assert_eq!(status, 422, "{body}");

        // Another notebook's run answers like a missing one, even to its owner.
        let other = s.new_empty_notebook(OWNER, "other").await;
        let (status, body) = s
            .get(&format!("/api/notebooks/{other}/runs/{run_id}"), OWNER)
            .await;
        assert_eq!(status, 404, "{body}");
        s.finish().await;
    }
);

both_backends!(
    an_overlapping_fire_is_recorded_as_skipped,
    |backend: Backend| async move {
        let s = start_fast(backend).await;
        let (nb, _) = notebook_with(&s, &["import time\ntime.sleep(4)"]).await;
        let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "* * * * * *" })).await;
        assert_eq!(status, 201, "{made}");
        let list = wait_runs(&s, &nb, Duration::from_secs(120), |list| {
            list.iter().any(|r| r["status"] == "skipped")
                && list.iter().any(|r| r["status"] == "success")
        })
        .await;
        unschedule(&s, &nb, &made).await;
        let skipped = list
            .iter()
            .find(|r| r["status"] == "skipped")
            .expect("a skip");
        assert_eq!(skipped["trigger"], "schedule", "{skipped}");
        let detail = skipped["detail"].as_str().expect("detail");
        assert!(detail.contains("still running"), "{detail}");
        assert!(skipped["finished_at"].is_string(), "{skipped}");
        let id = skipped["id"].as_str().expect("id");
        let (status, body) = s
            .get(&format!("/api/notebooks/{nb}/runs/{id}"), OWNER)
            .await;
        assert_eq!(status, 404, "a skip has no snapshot: {body}");
        // Never two runs at once: every running/success run overlaps no other.
        let ran = list.iter().filter(|r| r["status"] != "skipped").count();
        assert!(ran >= 1 && ran < list.len(), "{list:#?}");
        s.finish().await;
    }
);

both_backends!(
    a_run_over_the_kernel_quota_is_skipped,
    |backend: Backend| async move {
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        config.quotas.kernels_per_user = 1;
        let s = TestServer::start_with(db, config).await;
        let (nb, cells) = notebook_with(&s, &["x = 1"]).await;
        // The owner's one kernel: the notebook's live room runs a cell and keeps it.
        let cell = common::cells::run_settled(&s, OWNER, &nb, &cells[0]).await;
        assert_eq!(cell["status"], "success", "{cell}");
        let run_id = start_run(&s, &nb, json!({})).await;
        let run = wait_run(&s, &nb, &run_id).await;
        assert_eq!(run["status"], "skipped", "{run}");
        let detail = run["detail"].as_str().expect("detail");
        assert!(detail.contains("KERNELS_PER_USER=1"), "{detail}");
        // The open notebook's kernel was left alone: its value is still there.
        let check = s.new_cell(OWNER, &nb, "python", "print('x is', x)").await;
        let cell = common::cells::run_settled(&s, OWNER, &nb, &check).await;
        assert_eq!(cell["status"], "success", "{cell}");
        assert!(
            cell["stdout"]
                .as_str()
                .is_some_and(|t| t.contains("x is 1")),
            "{cell}"
        );
        s.finish().await;
    }
);

both_backends!(
    shutdown_fails_the_running_run,
    |backend: Backend| async move {
        let mut s = TestServer::start(backend).await;
        let (nb, _) = notebook_with(&s, &["import time\ntime.sleep(120)"]).await;
        let run_id = start_run(&s, &nb, json!({})).await;
        // Let the kernel start and the cell begin.
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.restart().await;
        let list = runs(&s, &nb).await;
        let run = list
            .iter()
            .find(|r| r["id"] == run_id.as_str())
            .expect("listed");
        assert_eq!(run["status"], "failed", "{run}");
        let detail = run["detail"].as_str().expect("detail");
        assert!(detail.contains("shut down"), "{detail}");
        s.finish().await;
    }
);

both_backends!(
    deleting_the_notebook_deletes_its_schedules_and_runs,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let (nb, _) = notebook_with(&s, &["x = 1"]).await;
        let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "0 0 1 1 *" })).await;
        assert_eq!(status, 201, "{made}");
        let run_id = start_run(&s, &nb, json!({})).await;
        wait_run(&s, &nb, &run_id).await;
        assert_eq!(rows(&s.db, "schedules", &nb).await, 1);
        assert_eq!(rows(&s.db, "runs", &nb).await, 1);
        let (status, body) = s.delete(&format!("/api/notebooks/{nb}"), OWNER).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(rows(&s.db, "schedules", &nb).await, 0);
        assert_eq!(rows(&s.db, "runs", &nb).await, 0);
        s.finish().await;
    }
);

both_backends!(
    a_run_left_by_a_dead_server_is_failed,
    |backend: Backend| async move {
        let s = start_fast(backend).await;
        let (nb, _) = notebook_with(&s, &["x = 1"]).await;
        // What a server that died mid-run leaves behind: a running row nobody beats for.
        let insert = format!(
            "INSERT INTO runs (id, notebook_id, trigger_kind, status, started_at, heartbeat_at) \
         VALUES ('orphan', '{nb}', 'api', 'running', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        );
        execute(&s.db, &insert).await;
        let list = wait_runs(&s, &nb, Duration::from_secs(30), |list| {
            list.iter().any(|r| r["id"] == "orphan" && finished(r))
        })
        .await;
        let run = list.iter().find(|r| r["id"] == "orphan").expect("listed");
        assert_eq!(run["status"], "failed", "{run}");
        let detail = run["detail"].as_str().expect("detail");
        assert!(detail.contains("no heartbeat"), "{detail}");
        // The notebook is free again for a new run.
        let run_id = start_run(&s, &nb, json!({})).await;
        let run = wait_run(&s, &nb, &run_id).await;
        assert_eq!(run["status"], "success", "{run}");
        s.finish().await;
    }
);

/// Runs one statement on the test database itself.
async fn execute(db: &TestDb, sql: &str) {
    match &db.target {
        DatabaseTarget::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let task = tokio::spawn(conn);
            client.batch_execute(sql).await.expect(sql);
            drop(client);
            let _ = task.await;
        }
        DatabaseTarget::Sqlite(path) => {
            use diesel::connection::SimpleConnection;
            use diesel::Connection;
            let mut conn =
                diesel::SqliteConnection::establish(&path.to_string_lossy()).expect("open");
            conn.batch_execute(&format!("PRAGMA busy_timeout = 10000; {sql}"))
                .expect(sql);
        }
    }
}

/// Rows of `table` for a notebook, read from the database itself.
async fn rows(db: &TestDb, table: &str, notebook_id: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE notebook_id = '{notebook_id}'");
    match &db.target {
        DatabaseTarget::Postgres(url) => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            let task = tokio::spawn(conn);
            let row = client.query_one(&sql, &[]).await.expect(&sql);
            drop(client);
            let _ = task.await;
            row.get::<_, i64>(0)
        }
        DatabaseTarget::Sqlite(path) => {
            use diesel::{Connection, RunQueryDsl};
            #[derive(diesel::QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let mut conn =
                diesel::SqliteConnection::establish(&path.to_string_lossy()).expect("open");
            diesel::sql_query(&sql)
                .get_result::<Count>(&mut conn)
                .expect(&sql)
                .n
        }
    }
}

/// Two server instances on one PostgreSQL database, both ticking every second on a schedule
/// firing every second: every fire is claimed by exactly one of them.
#[actix_web::test]
async fn two_instances_fire_each_time_exactly_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let config = fast(&db);
    let second_dir = common::tempdir::TempDir::new();
    let mut second_config = config.clone();
    second_config.data_dir = second_dir.path().to_path_buf();
    let s = TestServer::start_with(db, config).await;
    let second = server::start(second_config)
        .await
        .expect("second instance starts");
    let (nb, _) = notebook_with(&s, &["x = 1"]).await;

    let (status, made) = schedule(&s, &nb, OWNER, json!({ "cron": "* * * * * *" })).await;
    assert_eq!(status, 201, "{made}");
    wait_runs(&s, &nb, Duration::from_secs(120), |list| list.len() >= 8).await;

    // The second instance fires too: with the first one gone, fires go on being recorded.
    let mut s = s;
    s.stop().await;
    s.base = format!("http://{}", second.addr);
    let before = runs(&s, &nb).await.len();
    wait_runs(&s, &nb, Duration::from_secs(120), |list| {
        list.len() >= before + 3
    })
    .await;
    unschedule(&s, &nb, &made).await;
    // Let the last runs end, then read the whole history.
    let list = wait_runs(&s, &nb, Duration::from_secs(120), |list| {
        list.iter().all(finished)
    })
    .await;
    assert!(list.len() >= 11, "{list:#?}");
    let mut fires = HashSet::new();
    for run in &list {
        assert_eq!(run["trigger"], "schedule", "{run}");
        let fire = run["scheduled_for"].as_str().expect("scheduled_for");
        assert!(
            fires.insert(fire.to_string()),
            "fire {fire} recorded twice: {list:#?}"
        );
    }
    assert!(list.iter().any(|r| r["status"] == "success"), "{list:#?}");
    second.stop().await;
    s.finish().await;
}
