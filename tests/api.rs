//! The notebook and cell REST API over real HTTP, on SQLite and PostgreSQL.

mod common;

use common::{Backend, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const A: &str = "user_alice";
const B: &str = "user_bob";

fn cell_ids(notebook: &Value) -> Vec<String> {
    notebook["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect()
}

both_backends!(health_and_config, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let (status, body) = s.call(Method::GET, "/health", None, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = s.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = s.call(Method::GET, "/api/config", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["auth_mode"], "clerk");
    let (status, body) = s.call(Method::GET, "/api/nope", Some(A), None).await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    s.finish().await;
});

both_backends!(
    first_list_creates_demo_once,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let (status, body) = s.get("/api/notebooks", A).await;
        assert_eq!(status, 200);
        let list = body["notebooks"].as_array().expect("list").clone();
        assert_eq!(list.len(), 1, "{body}");
        let demo = s.notebook(A, list[0]["id"].as_str().expect("id")).await;
        let cells = demo["cells"].as_array().expect("cells");
        assert!(cells.len() >= 5);
        assert!(cells
            .iter()
            .any(|c| c["type"] == "sql" && c["code"].as_str().unwrap_or("").contains("{x}")));
        assert!(cells
            .iter()
            .any(|c| c["code"].as_str().unwrap_or("").contains("pandas")));
        assert!(cells
            .iter()
            .any(|c| c["code"].as_str().unwrap_or("").contains("matplotlib")));
        // Deleting it does not bring it back: the demo is for the first visit only.
        let id = list[0]["id"].as_str().expect("id");
        assert_eq!(s.delete(&format!("/api/notebooks/{id}"), A).await.0, 200);
        let (_, body) = s.get("/api/notebooks", A).await;
        assert_eq!(body["notebooks"], json!([]));
        s.finish().await;
    }
);

both_backends!(notebook_lifecycle, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let (status, body) = s.post("/api/notebooks", A, json!({})).await;
    assert_eq!(status, 200);
    let unnamed = body["notebook_id"].as_str().expect("id").to_string();
    let id = s.new_notebook(A, "Sales").await;
    let (_, list) = s.get("/api/notebooks", A).await;
    let names: Vec<&str> = list["notebooks"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|n| n["id"] == unnamed.as_str() || n["id"] == id.as_str())
        .map(|n| n["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["Untitled notebook", "Sales"]);

    let nb = s.notebook(A, &id).await;
    assert_eq!(nb["id"], id.as_str());
    assert_eq!(nb["name"], "Sales");
    assert_eq!(nb["db_conn_string"], Value::Null);
    assert_eq!(nb["revision"], 0);
    // A new notebook starts with one empty Python cell.
    let cells = nb["cells"].as_array().expect("cells");
    assert_eq!(cells.len(), 1, "{nb}");
    assert_eq!(
        (&cells[0]["type"], &cells[0]["code"]),
        (&json!("python"), &json!(""))
    );

    let (status, body) = s
        .put(
            &format!("/api/notebooks/{id}/name"),
            A,
            json!({"name": "Revenue"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "ok", "name": "Revenue"}))
    );
    let (status, body) = s
        .put(
            &format!("/api/notebooks/{id}/db"),
            A,
            json!({"connection_string": "postgresql://analyst:hunter2@db.internal:5432/sales"}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let nb = s.notebook(A, &id).await;
    assert_eq!(nb["name"], "Revenue");
    assert_eq!(
        nb["db_conn_string"],
        "postgresql://analyst:***@db.internal:5432/sales"
    );
    assert!(!nb.to_string().contains("hunter2"));
    assert_eq!(nb["revision"], 2);

    // Clearing the connection.
    let (status, _) = s
        .put(
            &format!("/api/notebooks/{id}/db"),
            A,
            json!({"connection_string": ""}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.notebook(A, &id).await["db_conn_string"], Value::Null);

    let (status, body) = s.delete(&format!("/api/notebooks/{id}"), A).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    assert_eq!(s.get(&format!("/api/notebooks/{id}"), A).await.0, 404);
    assert_eq!(s.delete(&format!("/api/notebooks/{id}"), A).await.0, 404);
    s.finish().await;
});

both_backends!(
    notebook_bad_input_changes_nothing,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let id = s.new_notebook(A, "Keep").await;
        let before = s.notebook(A, &id).await;
        let name_path = format!("/api/notebooks/{id}/name");
        let db_path = format!("/api/notebooks/{id}/db");

        for (path, body, want) in [
            (&name_path, json!({"name": ""}), 422),
            (&name_path, json!({"name": "x".repeat(201)}), 422),
            (&name_path, json!({"title": "x"}), 422),
            (&name_path, json!({"name": 5}), 422),
            (
                &db_path,
                json!({"connection_string": "mysql://u:p@h/db"}),
                400,
            ),
            (
                &db_path,
                json!({"connection_string": "host=db password=x"}),
                400,
            ),
            (&db_path, json!({"connection_string": "postgres://"}), 400),
        ] {
            let (status, resp) = s.put(path, A, body.clone()).await;
            assert_eq!(status, want, "{path} {body} -> {resp}");
            assert!(resp["detail"].is_string(), "{resp}");
        }
        // Malformed JSON.
        let resp = s
            .http
            .put(s.url(&name_path))
            .bearer_auth(common::tokens::token_for(A))
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 400);
        let body: Value = resp.json().await.expect("json");
        assert!(body["detail"].as_str().expect("detail").contains("JSON"));
        // Too large.
        let resp = s
            .http
            .put(s.url(&name_path))
            .bearer_auth(common::tokens::token_for(A))
            .header("content-type", "application/json")
            .body(format!(
                "{{\"name\": \"{}\"}}",
                "n".repeat(1024 * 1024 + 10)
            ))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 413);
        let body: Value = resp.json().await.expect("json");
        assert!(body["detail"].is_string());

        assert_eq!(s.notebook(A, &id).await, before);
        s.finish().await;
    }
);

both_backends!(cell_lifecycle, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let id = s.new_notebook(A, "Cells").await;
    let cells_path = format!("/api/notebooks/{id}/cells");
    // The empty cell every new notebook starts with.
    let starter = cell_ids(&s.notebook(A, &id).await)[0].clone();
    let first = s.new_cell(A, &id, "python", "x = 1").await;
    let third = s.new_cell(A, &id, "sql", "SELECT 1").await;
    let (status, body) = s
        .post(
            &cells_path,
            A,
            json!({"type": "python", "code": "y = x + 1", "after_cell_id": first}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let second = body["cell_id"].as_str().expect("cell_id").to_string();
    // No code: an empty cell at the end.
    let (status, body) = s.post(&cells_path, A, json!({"type": "python"})).await;
    assert_eq!(status, 200);
    let fourth = body["cell_id"].as_str().expect("cell_id").to_string();

    let nb = s.notebook(A, &id).await;
    assert_eq!(
        cell_ids(&nb),
        vec![
            starter.clone(),
            first.clone(),
            second.clone(),
            third.clone(),
            fourth.clone()
        ]
    );
    assert_eq!(nb["revision"], 4);
    let cell = &nb["cells"][2];
    assert_eq!(cell["type"], "python");
    assert_eq!(cell["code"], "y = x + 1");
    assert_eq!(cell["status"], "idle");
    assert_eq!(cell["stdout"], "");
    assert_eq!(cell["outputs"], json!([]));
    assert_eq!(cell["error"], Value::Null);
    assert!(cell["reads"].is_array() && cell["writes"].is_array());
    assert_eq!(nb["cells"][3]["type"], "sql");

    // Update with and without expected_revision.
    let (status, body) = s
        .put(
            &format!("{cells_path}/{second}"),
            A,
            json!({"code": "y = x + 2", "expected_revision": 4}),
        )
        .await;
    assert_eq!(
        (status, body.clone()),
        (200, json!({"status": "ok", "revision": 5}))
    );
    let (status, body) = s
        .put(
            &format!("{cells_path}/{third}"),
            A,
            json!({"code": "SELECT 2"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "ok", "revision": 6}))
    );
    // A stale revision for a cell someone else changed since: 409, nothing changes.
    let (status, body) = s
        .put(
            &format!("{cells_path}/{second}"),
            A,
            json!({"code": "y = 0", "expected_revision": 4}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].is_string());
    // A stale revision for a cell nobody touched since is fine: edits to other cells don't conflict.
    let (status, _) = s
        .put(
            &format!("{cells_path}/{first}"),
            A,
            json!({"code": "x = 5", "expected_revision": 4}),
        )
        .await;
    assert_eq!(status, 200);
    // A revision from the future is a conflict too.
    let (status, _) = s
        .put(
            &format!("{cells_path}/{first}"),
            A,
            json!({"code": "x = 6", "expected_revision": 99}),
        )
        .await;
    assert_eq!(status, 409);
    let nb = s.notebook(A, &id).await;
    assert_eq!(nb["cells"][1]["code"], "x = 5");
    assert_eq!(nb["cells"][2]["code"], "y = x + 2");
    assert_eq!(nb["cells"][3]["code"], "SELECT 2");
    assert_eq!(nb["revision"], 7);

    // Delete the second: order closes up; inserting after the first lands right after it.
    let (status, body) = s.delete(&format!("{cells_path}/{second}"), A).await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "ok", "revision": 8}))
    );
    let (_, body) = s
        .post(
            &cells_path,
            A,
            json!({"type": "sql", "code": "", "after_cell_id": first}),
        )
        .await;
    let inserted = body["cell_id"].as_str().expect("cell_id").to_string();
    let nb = s.notebook(A, &id).await;
    assert_eq!(
        cell_ids(&nb),
        vec![
            starter.clone(),
            first.clone(),
            inserted,
            third.clone(),
            fourth.clone()
        ]
    );
    assert_eq!(s.delete(&format!("{cells_path}/{second}"), A).await.0, 404);
    // Inserting before the first cell puts the new one at the top.
    let (status, body) = s
        .post(
            &cells_path,
            A,
            json!({"type": "python", "before_cell_id": starter}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let top = body["cell_id"].as_str().expect("cell_id").to_string();
    assert_eq!(cell_ids(&s.notebook(A, &id).await)[0], top);
    let (status, _) = s
        .post(
            &cells_path,
            A,
            json!({"type": "python", "before_cell_id": "nope"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .post(
            &cells_path,
            A,
            json!({"type": "python", "before_cell_id": first, "after_cell_id": first}),
        )
        .await;
    assert_eq!(status, 422);
    s.finish().await;
});

both_backends!(
    cell_bad_input_changes_nothing,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let id = s.new_notebook(A, "Strict").await;
        let cell = s.new_cell(A, &id, "python", "x = 1").await;
        let before = s.notebook(A, &id).await;
        let cells_path = format!("/api/notebooks/{id}/cells");

        let (status, body) = s
            .post(&cells_path, A, json!({"type": "ruby", "code": "1"}))
            .await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = s
            .post(
                &cells_path,
                A,
                json!({"type": "python", "after_cell_id": "no-such-cell"}),
            )
            .await;
        assert_eq!(status, 404, "{body}");
        let (status, _) = s
            .post(&cells_path, A, json!({"type": "python", "code": 7}))
            .await;
        assert_eq!(status, 422);
        let (status, _) = s.put(&format!("{cells_path}/{cell}"), A, json!({})).await;
        assert_eq!(status, 422);
        let (status, _) = s
            .put(
                &format!("{cells_path}/no-such-cell"),
                A,
                json!({"code": "x"}),
            )
            .await;
        assert_eq!(status, 404);
        let (status, _) = s
            .put(
                &format!("/api/notebooks/missing/cells/{cell}"),
                A,
                json!({"code": "x"}),
            )
            .await;
        assert_eq!(status, 404);
        let resp = s
            .http
            .post(s.url(&cells_path))
            .bearer_auth(common::tokens::token_for(A))
            .body("{not json")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 400);
        let resp = s
            .http
            .post(s.url(&cells_path))
            .bearer_auth(common::tokens::token_for(A))
            .body(format!(
                "{{\"type\":\"python\",\"code\":\"{}\"}}",
                "#".repeat(1024 * 1024 + 1)
            ))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 413);
        assert_eq!(s.notebook(A, &id).await, before);
        s.finish().await;
    }
);

both_backends!(
    other_users_notebook_is_missing,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let id = s.new_notebook(A, "Private").await;
        let cell = s.new_cell(A, &id, "python", "secret = 42").await;
        s.put(
            &format!("/api/notebooks/{id}/db"),
            A,
            json!({"connection_string": "postgres://a:pw@h/db"}),
        )
        .await;
        let before = s.notebook(A, &id).await;
        let (_, missing) = s.get("/api/notebooks/does-not-exist", B).await;

        let nb = format!("/api/notebooks/{id}");
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, nb.clone(), None),
            (
                Method::PUT,
                format!("{nb}/name"),
                Some(json!({"name": "mine"})),
            ),
            (
                Method::PUT,
                format!("{nb}/db"),
                Some(json!({"connection_string": "postgres://h/x"})),
            ),
            (
                Method::POST,
                format!("{nb}/cells"),
                Some(json!({"type": "python", "code": "1"})),
            ),
            (
                Method::PUT,
                format!("{nb}/cells/{cell}"),
                Some(json!({"code": "stolen"})),
            ),
            (Method::DELETE, format!("{nb}/cells/{cell}"), None),
            (Method::DELETE, nb.clone(), None),
        ];
        for (method, path, body) in attempts {
            let (status, resp) = s.call(method.clone(), &path, Some(B), body).await;
            assert_eq!(status, 404, "{method} {path}: {resp}");
            assert_eq!(
                resp, missing,
                "{method} {path} must answer like a missing notebook"
            );
        }
        let (_, list) = s.get("/api/notebooks", B).await;
        assert!(!list.to_string().contains(&id));
        assert_eq!(s.notebook(A, &id).await, before);
        s.finish().await;
    }
);

both_backends!(
    everything_survives_a_restart,
    |backend: Backend| async move {
        let mut s = TestServer::start(backend).await;
        let id = s.new_notebook(A, "Durable").await;
        s.new_cell(A, &id, "python", "a = 1").await;
        s.new_cell(A, &id, "sql", "SELECT {a}").await;
        s.put(
            &format!("/api/notebooks/{id}/db"),
            A,
            json!({"connection_string": "postgres://u:pw@db.example/x"}),
        )
        .await;
        let mut before = s.notebook(A, &id).await;
        let (_, list_before) = s.get("/api/notebooks", A).await;
        s.restart().await;
        let mut after = s.notebook(A, &id).await;
        // `seq` numbers the live broadcasts of one room; a new process starts a new sequence.
        before["seq"] = Value::Null;
        after["seq"] = Value::Null;
        assert_eq!(after, before);
        assert_eq!(s.get("/api/notebooks", A).await.1, list_before);
        s.finish().await;
    }
);
