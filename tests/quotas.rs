//! `NOTEBOOKS_PER_USER` and `CELLS_PER_NOTEBOOK` over REST: a request over the limit answers
//! 409 naming the limit and creates nothing, also when many requests race.

mod common;

use common::{Backend, TestDb, TestServer};
use futures_util::future::join_all;
use serde_json::{json, Value};

const A: &str = "user_quota_a";
const B: &str = "user_quota_b";

async fn server(backend: Backend, notebooks: u64, cells: u64) -> TestServer {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    config.quotas.notebooks_per_user = notebooks;
    config.quotas.cells_per_notebook = cells;
    TestServer::start_with(db, config).await
}

async fn notebook_ids(s: &TestServer, user: &str) -> Vec<String> {
    let (status, body) = s.get("/api/notebooks", user).await;
    assert_eq!(status, 200, "{body}");
    body["notebooks"]
        .as_array()
        .expect("notebooks")
        .iter()
        .map(|n| n["id"].as_str().expect("id").to_string())
        .collect()
}

fn assert_limit(status: u16, body: &Value, setting: &str) {
    assert_eq!(status, 409, "{body}");
    let detail = body["detail"].as_str().unwrap_or("");
    assert!(detail.contains(setting), "detail names {setting}: {detail}");
}

both_backends!(
    notebooks_per_user_is_enforced,
    |backend: Backend| async move {
        let s = server(backend, 3, 100).await;
        let mut mine = Vec::new();
        for i in 0..3 {
            mine.push(s.new_notebook(A, &format!("n{i}")).await);
        }
        let (status, body) = s
            .post("/api/notebooks", A, json!({ "name": "one too many" }))
            .await;
        assert_limit(status, &body, "NOTEBOOKS_PER_USER");
        // Listing registers the user, but the demo notebook does not go over the limit either.
        let mut listed = notebook_ids(&s, A).await;
        listed.sort();
        mine.sort();
        assert_eq!(listed, mine);
        // The limit is per user.
        s.new_notebook(B, "someone else's").await;
        // Deleting one makes room for one.
        let (status, _) = s.delete(&format!("/api/notebooks/{}", mine[0]), A).await;
        assert_eq!(status, 200);
        s.new_notebook(A, "after delete").await;
        let (status, body) = s.post("/api/notebooks", A, json!({})).await;
        assert_limit(status, &body, "NOTEBOOKS_PER_USER");
        assert_eq!(notebook_ids(&s, A).await.len(), 3);
        s.finish().await;
    }
);

both_backends!(
    concurrent_notebook_creation_cannot_exceed_the_limit,
    |backend: Backend| async move {
        let s = server(backend, 5, 100).await;
        let attempts = (0..24).map(|i| {
            let s = &s;
            async move {
                s.post("/api/notebooks", A, json!({ "name": format!("burst {i}") }))
                    .await
            }
        });
        let answers = join_all(attempts).await;
        let created = answers.iter().filter(|(status, _)| *status == 200).count();
        for (status, body) in &answers {
            if *status != 200 {
                assert_limit(*status, body, "NOTEBOOKS_PER_USER");
            }
        }
        assert_eq!(created, 5, "{answers:?}");
        assert_eq!(notebook_ids(&s, A).await.len(), 5);
        s.finish().await;
    }
);

both_backends!(
    cells_per_notebook_is_enforced,
    |backend: Backend| async move {
        let s = server(backend, 100, 3).await;
        let nb = s.new_notebook(A, "cells").await;
        // The notebook starts with one empty cell; two more reach the limit.
        for i in 0..2 {
            s.new_cell(A, &nb, "python", &format!("v{i} = {i}")).await;
        }
        let before = s.notebook(A, &nb).await;
        let (status, body) = s
            .post(
                &format!("/api/notebooks/{nb}/cells"),
                A,
                json!({ "type": "sql", "code": "SELECT 1" }),
            )
            .await;
        assert_limit(status, &body, "CELLS_PER_NOTEBOOK");
        assert_eq!(s.notebook(A, &nb).await, before, "nothing changed");

        // Deleting a cell makes room for one.
        let first = before["cells"][0]["id"]
            .as_str()
            .expect("cell id")
            .to_string();
        let (status, _) = s
            .delete(&format!("/api/notebooks/{nb}/cells/{first}"), A)
            .await;
        assert_eq!(status, 200);
        s.new_cell(A, &nb, "python", "again = 1").await;
        let (status, body) = s
            .post(&format!("/api/notebooks/{nb}/cells"), A, json!({}))
            .await;
        assert_limit(status, &body, "CELLS_PER_NOTEBOOK");
        s.finish().await;
    }
);

both_backends!(
    concurrent_cell_creation_cannot_exceed_the_limit,
    |backend: Backend| async move {
        let s = server(backend, 100, 4).await;
        let nb = s.new_notebook(A, "burst").await;
        let path = format!("/api/notebooks/{nb}/cells");
        let attempts = (0..20).map(|i| {
            let (s, path) = (&s, &path);
            async move {
                s.post(
                    path,
                    A,
                    json!({ "type": "python", "code": format!("c{i} = {i}") }),
                )
                .await
            }
        });
        let answers = join_all(attempts).await;
        let created = answers.iter().filter(|(status, _)| *status == 200).count();
        for (status, body) in &answers {
            if *status != 200 {
                assert_limit(*status, body, "CELLS_PER_NOTEBOOK");
            }
        }
        // The notebook's first, empty cell counts too.
        assert_eq!(created, 3, "{answers:?}");
        let n = s.notebook(A, &nb).await;
        assert_eq!(n["cells"].as_array().map(Vec::len), Some(4), "{n:#}");
        s.finish().await;
    }
);
