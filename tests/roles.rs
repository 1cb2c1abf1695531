//! Sharing: roles on every REST route and WebSocket message, invites (expiry, revocation),
//! members (removal closes sockets), viewers never see the database.

mod common;

use std::time::Duration;

use common::tokens::token_for;
use common::ws::{Frame, WsClient};
use common::{Backend, TestDb, TestServer};
use reqwest::Method;
use serde_json::{json, Value};

const OWNER: &str = "role_owner";
const EDITOR: &str = "role_editor";
const VIEWER: &str = "role_viewer";
const STRANGER: &str = "role_stranger";
const SPARE: &str = "role_spare";
const T: Duration = Duration::from_secs(20);

/// Role levels as the matrix compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Needs {
    Viewer,
    Editor,
    Owner,
}

/// Who calls, and the level they hold (None: not a member).
const CALLERS: [(&str, Option<Needs>); 4] = [
    (STRANGER, None),
    (VIEWER, Some(Needs::Viewer)),
    (EDITOR, Some(Needs::Editor)),
    (OWNER, Some(Needs::Owner)),
];

/// Creates an invite as the owner; answers its code.
async fn invite(s: &TestServer, nb: &str, role: &str) -> Value {
    let (status, body) = s
        .post(
            &format!("/api/notebooks/{nb}/invites"),
            OWNER,
            json!({ "role": role }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn accept(s: &TestServer, user: &str, code: &str) -> (u16, Value) {
    s.post(&format!("/api/invites/{code}/accept"), user, json!({}))
        .await
}

/// A notebook of OWNER shared with EDITOR and VIEWER.
async fn shared_notebook(s: &TestServer) -> String {
    let nb = s.new_notebook(OWNER, "shared").await;
    for (user, role) in [(EDITOR, "editor"), (VIEWER, "viewer")] {
        let code = invite(s, &nb, role).await["code"]
            .as_str()
            .expect("code")
            .to_string();
        let (status, body) = accept(s, user, &code).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "notebook_id": nb, "role": role }));
    }
    nb
}

/// One REST route of the matrix: method, path and body templates, and the role it needs.
struct Route {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    needs: Needs,
}

fn route(method: Method, path: &'static str, body: Option<Value>, needs: Needs) -> Route {
    Route {
        method,
        path,
        body,
        needs,
    }
}

/// Fills `{nb}`, `{cell}`, `{cell2}`, `{member}` and `{invite}` with fresh things made by
/// the owner, so destructive routes have something to act on for every caller.
async fn fill(s: &TestServer, nb: &str, template: &str) -> String {
    let mut path = template.replace("{nb}", nb);
    if path.contains("{cell}") {
        let cell = s.new_cell(OWNER, nb, "markdown", "# note").await;
        path = path.replace("{cell}", &cell);
    }
    if path.contains("{member}") {
        let code = invite(s, nb, "viewer").await["code"]
            .as_str()
            .expect("code")
            .to_string();
        let (status, body) = accept(s, SPARE, &code).await;
        assert_eq!(status, 200, "{body}");
        path = path.replace("{member}", SPARE);
    }
    if path.contains("{invite}") {
        let id = invite(s, nb, "viewer").await["id"]
            .as_str()
            .expect("id")
            .to_string();
        path = path.replace("{invite}", &id);
    }
    path
}

both_backends!(rest_role_matrix, |backend: Backend| async move {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    // The assistant is configured (against a port nobody listens on) so chat reaches its
    // role check; the model is never reached.
    config.anthropic_api_key = Some("test-key".into());
    config.anthropic_base_url = "http://127.0.0.1:9".into();
    let s = TestServer::start_with(db, config).await;
    let nb = shared_notebook(&s).await;
    let target = s.new_cell(OWNER, &nb, "markdown", "target").await;
    let code_at = json!({ "code": "import os\nos.pa", "cursor": 15 });
    let routes = vec![
        route(Method::GET, "/api/notebooks/{nb}", None, Needs::Viewer),
        route(
            Method::GET,
            "/api/notebooks/{nb}/members",
            None,
            Needs::Viewer,
        ),
        route(
            Method::GET,
            "/api/notebooks/{nb}/variables",
            None,
            Needs::Viewer,
        ),
        route(
            Method::GET,
            "/api/notebooks/{nb}/export?format=ipynb",
            None,
            Needs::Viewer,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/complete",
            Some(code_at.clone()),
            Needs::Viewer,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/inspect",
            Some(code_at),
            Needs::Viewer,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/cells",
            Some(json!({ "type": "markdown", "code": "new" })),
            Needs::Editor,
        ),
        route(
            Method::PUT,
            "/api/notebooks/{nb}/cells/{cell}",
            Some(json!({ "code": "changed" })),
            Needs::Editor,
        ),
        route(
            Method::DELETE,
            "/api/notebooks/{nb}/cells/{cell}",
            None,
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/cells/{cell}/move",
            Some(json!({ "before_cell_id": target })),
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/cells/{cell}/run",
            None,
            Needs::Editor,
        ),
        route(Method::POST, "/api/notebooks/{nb}/run", None, Needs::Editor),
        route(
            Method::PUT,
            "/api/notebooks/{nb}/lazy",
            Some(json!({ "lazy": false })),
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/interrupt",
            None,
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/restart",
            None,
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/notebooks/{nb}/packages",
            Some(json!({ "name": "rn-role-matrix-no-such-package" })),
            Needs::Editor,
        ),
        route(
            Method::POST,
            "/api/chat/{nb}",
            Some(json!({ "messages": [{ "role": "user", "content": "hi" }] })),
            Needs::Editor,
        ),
        route(
            Method::PUT,
            "/api/notebooks/{nb}/name",
            Some(json!({ "name": "renamed" })),
            Needs::Owner,
        ),
        route(
            Method::PUT,
            "/api/notebooks/{nb}/db",
            Some(json!({ "connection_string": "" })),
            Needs::Owner,
        ),
        route(Method::GET, "/api/notebooks/{nb}/audit", None, Needs::Owner),
        route(
            Method::POST,
            "/api/notebooks/{nb}/invites",
            Some(json!({ "role": "viewer" })),
            Needs::Owner,
        ),
        route(
            Method::GET,
            "/api/notebooks/{nb}/invites",
            None,
            Needs::Owner,
        ),
        route(
            Method::DELETE,
            "/api/notebooks/{nb}/invites/{invite}",
            None,
            Needs::Owner,
        ),
        route(
            Method::PUT,
            "/api/notebooks/{nb}/members/{member}",
            Some(json!({ "role": "editor" })),
            Needs::Owner,
        ),
        route(
            Method::DELETE,
            "/api/notebooks/{nb}/members/{member}",
            None,
            Needs::Owner,
        ),
        // Last: it deletes the notebook.
        route(Method::DELETE, "/api/notebooks/{nb}", None, Needs::Owner),
    ];
    for r in &routes {
        for (user, held) in CALLERS {
            let path = fill(&s, &nb, r.path).await;
            let mut request = r.body.clone();
            if r.path.ends_with("/packages") {
                // One install at a time per package: each caller asks for its own.
                request =
                    Some(json!({ "name": format!("rn-role-probe-{}", user.replace('_', "-")) }));
            }
            let (status, body) = s.call(r.method.clone(), &path, Some(user), request).await;
            let what = format!("{} {} as {user}: {status} {body}", r.method, r.path);
            match held {
                None => {
                    assert_eq!(status, 404, "{what}");
                    assert_eq!(body["detail"], "Notebook not found", "{what}");
                }
                Some(level) if level < r.needs => {
                    assert_eq!(status, 403, "{what}");
                    assert!(
                        body["detail"].as_str().is_some_and(|d| d.contains("role")),
                        "{what}"
                    );
                }
                Some(_) => assert!((200..300).contains(&status), "{what}"),
            }
        }
    }
    s.finish().await;
});

/// Reads until a `presence` broadcast; fails on any `error` before it.
async fn until_presence_no_error(ws: &mut WsClient, what: &str) {
    let seen = ws.until(T, |v| v["type"] == "presence").await;
    assert!(
        !seen.iter().any(|v| v["type"] == "error"),
        "{what}: {seen:?}"
    );
}

both_backends!(ws_role_matrix, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = shared_notebook(&s).await;
    let cell = s.new_cell(OWNER, &nb, "python", "x = 1").await;

    // A non-member cannot join, exactly as for a missing notebook.
    let mut stranger = connect_seeing_presence(&s.base, &nb).await;
    stranger
        .send(json!({"type": "authenticate", "token": token_for(STRANGER)}))
        .await;
    assert!(matches!(stranger.next(T).await, Frame::Json(v) if v["type"] == "authenticated"));
    assert_eq!(
        stranger.expect_error_then_close(1008).await,
        "Notebook not found"
    );

    // (message, needs editor)
    let messages = [
        (json!({"type": "run_cell", "cellId": cell}), true),
        (json!({"type": "interrupt"}), true),
        (json!({"type": "focus", "cellId": cell}), false),
        (
            json!({"type": "refresh_auth", "token": token_for("placeholder")}),
            false,
        ),
    ];
    let mut toggle = false;
    for (user, held) in &CALLERS[1..] {
        let mut ws = join_seeing_presence(&s.base, &nb, &token_for(user)).await;
        until_presence_no_error(&mut ws, "join").await;
        for (message, needs_editor) in &messages {
            let mut message = message.clone();
            if message["type"] == "refresh_auth" {
                message["token"] = json!(token_for(user));
            }
            let what = format!("{} as {user}", message["type"]);
            ws.send(message.clone()).await;
            let allowed = !needs_editor || *held >= Some(Needs::Editor);
            if allowed {
                if message["type"] == "refresh_auth" {
                    let seen = ws.until(T, |v| v["type"] == "auth_refreshed").await;
                    assert!(!seen.iter().any(|v| v["type"] == "error"), "{what}");
                    continue;
                }
                if message["type"] != "focus" {
                    // A focus change is the marker: everything before it answered the message.
                    toggle = !toggle;
                    let focus = if toggle { json!(cell) } else { Value::Null };
                    ws.send(json!({"type": "focus", "cellId": focus})).await;
                }
                until_presence_no_error(&mut ws, &what).await;
            } else {
                let v = ws.json(T).await;
                assert_eq!(v["type"], "error", "{what}: {v}");
                assert!(
                    v["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("editor role")),
                    "{what}: {v}"
                );
            }
        }
        // Leave no focus behind, so the next user's focus on the cell is a change.
        ws.send(json!({"type": "focus", "cellId": null})).await;
        until_presence_no_error(&mut ws, "unfocus").await;
    }
    // The viewer's run_cell did not run anything: only the editor's and owner's did.
    s.finish().await;
});

both_backends!(
    viewers_never_see_the_database,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = shared_notebook(&s).await;
        let (status, body) = s
            .put(
                &format!("/api/notebooks/{nb}/db"),
                OWNER,
                json!({ "connection_string": "postgresql://u:secret@db.example.com:5432/app" }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let viewer = s.notebook(VIEWER, &nb).await;
        assert!(viewer.get("db_conn_string").is_none(), "{viewer}");
        assert_eq!(viewer["role"], "viewer");
        assert!(!viewer.to_string().contains("db.example.com"));
        let editor = s.notebook(EDITOR, &nb).await;
        assert_eq!(editor["role"], "editor");
        let shown = editor["db_conn_string"].as_str().expect("editor sees it");
        assert!(shown.contains("db.example.com") && !shown.contains("secret"));
        s.finish().await;
    }
);

both_backends!(listing_and_members, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = shared_notebook(&s).await;
    let (_, list) = s.get("/api/notebooks", EDITOR).await;
    let entry = list["notebooks"]
        .as_array()
        .expect("notebooks")
        .iter()
        .find(|n| n["id"] == nb)
        .expect("shared notebook listed")
        .clone();
    assert_eq!(entry["role"], "editor");
    assert_eq!(entry["name"], "shared");
    let (_, list) = s.get("/api/notebooks", OWNER).await;
    assert!(list["notebooks"]
        .as_array()
        .expect("notebooks")
        .iter()
        .any(|n| n["id"] == nb && n["role"] == "owner"));
    let (_, list) = s.get("/api/notebooks", STRANGER).await;
    assert!(!list.to_string().contains(&nb));

    let (status, members) = s.get(&format!("/api/notebooks/{nb}/members"), VIEWER).await;
    assert_eq!(status, 200);
    assert_eq!(
        members["members"],
        json!([
            {"user_id": OWNER, "role": "owner"},
            {"user_id": EDITOR, "role": "editor"},
            {"user_id": VIEWER, "role": "viewer"},
        ])
    );
    // The owner can be neither removed nor demoted; owner is not a grantable role.
    let owner_path = format!("/api/notebooks/{nb}/members/{OWNER}");
    assert_eq!(s.delete(&owner_path, OWNER).await.0, 422);
    assert_eq!(
        s.put(&owner_path, OWNER, json!({"role": "viewer"})).await.0,
        422
    );
    let viewer_path = format!("/api/notebooks/{nb}/members/{VIEWER}");
    assert_eq!(
        s.put(&viewer_path, OWNER, json!({"role": "owner"})).await.0,
        422
    );
    let stranger_path = format!("/api/notebooks/{nb}/members/{STRANGER}");
    assert_eq!(s.delete(&stranger_path, OWNER).await.0, 404);

    // Promotion takes effect on the next request; accepting a lower invite keeps it.
    let (status, _) = s.put(&viewer_path, OWNER, json!({"role": "editor"})).await;
    assert_eq!(status, 200);
    let cells = format!("/api/notebooks/{nb}/cells");
    assert_eq!(
        s.post(&cells, VIEWER, json!({"type": "markdown"})).await.0,
        200
    );
    let code = invite(&s, &nb, "viewer").await["code"]
        .as_str()
        .expect("code")
        .to_string();
    assert_eq!(accept(&s, VIEWER, &code).await.1["role"], "editor");
    assert_eq!(accept(&s, OWNER, &code).await.1["role"], "owner");

    // Every change is in the audit log.
    let (_, audit) = s.get(&format!("/api/notebooks/{nb}/audit"), OWNER).await;
    let tools: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["tool"].as_str())
        .collect();
    for action in ["invite_created", "member_joined", "member_role_changed"] {
        assert!(tools.contains(&action), "{action} missing from {tools:?}");
    }
    s.finish().await;
});

both_backends!(
    invite_expiry_and_revocation,
    |backend: Backend| async move {
        let db = TestDb::new(backend).await;
        let mut config = db.config();
        config.invite_ttl_secs = 2;
        let s = TestServer::start_with(db, config).await;
        let nb = s.new_notebook(OWNER, "invites").await;

        let created = invite(&s, &nb, "editor").await;
        let code = created["code"].as_str().expect("code").to_string();
        // ≥ 128 bits: 43 base64url characters carry 256.
        assert!(code.len() >= 22, "{code}");
        assert!(created["url"].as_str().is_some_and(|u| u.ends_with(&code)));
        assert_eq!(created["role"], "editor");

        // Revoked: the code stops working, and the list no longer shows it.
        let revoked = invite(&s, &nb, "viewer").await;
        let (status, _) = s
            .delete(
                &format!(
                    "/api/notebooks/{nb}/invites/{}",
                    revoked["id"].as_str().expect("id")
                ),
                OWNER,
            )
            .await;
        assert_eq!(status, 200);
        let (status, body) = accept(&s, VIEWER, revoked["code"].as_str().expect("code")).await;
        assert_eq!(status, 404, "{body}");
        let (_, list) = s.get(&format!("/api/notebooks/{nb}/invites"), OWNER).await;
        let ids: Vec<&Value> = list["invites"]
            .as_array()
            .expect("invites")
            .iter()
            .map(|i| &i["id"])
            .collect();
        assert_eq!(ids, vec![&created["id"]]);
        assert!(!list.to_string().contains(&code), "codes are never listed");
        assert_eq!(s.get(&format!("/api/notebooks/{nb}"), VIEWER).await.0, 404);

        // Unknown codes and a code of the wrong shape: 404.
        assert_eq!(
            accept(&s, VIEWER, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
                .await
                .0,
            404
        );
        assert_eq!(accept(&s, VIEWER, "not%20a%20code").await.0, 404);

        // Expired: after INVITE_TTL_SECS the code is refused.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (status, body) = accept(&s, EDITOR, &code).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(s.get(&format!("/api/notebooks/{nb}"), EDITOR).await.0, 404);
        s.finish().await;
    }
);

both_backends!(
    removal_closes_sockets_within_a_second,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = shared_notebook(&s).await;
        let mut editor = join_seeing_presence(&s.base, &nb, &token_for(EDITOR)).await;
        let mut editor2 = join_seeing_presence(&s.base, &nb, &token_for(EDITOR)).await;
        let mut owner = join_seeing_presence(&s.base, &nb, &token_for(OWNER)).await;
        for ws in [&mut editor, &mut editor2] {
            ws.until(T, |v| {
                v["type"] == "presence" && v["users"].as_array().map(Vec::len) == Some(2)
            })
            .await;
        }
        let (status, _) = s
            .delete(&format!("/api/notebooks/{nb}/members/{EDITOR}"), OWNER)
            .await;
        assert_eq!(status, 200);
        for ws in [&mut editor, &mut editor2] {
            let closed = loop {
                match ws.next(Duration::from_secs(1)).await {
                    Frame::Closed(code) => break code,
                    Frame::Json(_) => continue,
                }
            };
            assert_eq!(closed, 1008);
        }
        // The owner sees them gone, and they are out for REST and new sockets too.
        owner
            .until(T, |v| {
                v["type"] == "presence"
                    && v["users"] == json!([{"user_id": OWNER, "color": v["users"][0]["color"]}])
            })
            .await;
        assert_eq!(s.get(&format!("/api/notebooks/{nb}"), EDITOR).await.0, 404);
        let mut again = connect_seeing_presence(&s.base, &nb).await;
        again
            .send(json!({"type": "authenticate", "token": token_for(EDITOR)}))
            .await;
        assert!(matches!(again.next(T).await, Frame::Json(v) if v["type"] == "authenticated"));
        again.expect_error_then_close(1008).await;
        let (_, audit) = s.get(&format!("/api/notebooks/{nb}/audit"), OWNER).await;
        assert!(audit.to_string().contains("member_removed"));
        s.finish().await;
    }
);

both_backends!(
    demotion_applies_to_open_sockets,
    |backend: Backend| async move {
        let s = TestServer::start(backend).await;
        let nb = shared_notebook(&s).await;
        let cell = s.new_cell(OWNER, &nb, "markdown", "# hi").await;
        let mut editor = join_seeing_presence(&s.base, &nb, &token_for(EDITOR)).await;
        editor.until(T, |v| v["type"] == "presence").await;
        let (status, _) = s
            .put(
                &format!("/api/notebooks/{nb}/members/{EDITOR}"),
                OWNER,
                json!({"role": "viewer"}),
            )
            .await;
        assert_eq!(status, 200);
        editor
            .send(json!({"type": "run_cell", "cellId": cell}))
            .await;
        let v = editor.json(T).await;
        assert_eq!(v["type"], "error", "{v}");
        assert!(v["message"]
            .as_str()
            .is_some_and(|m| m.contains("editor role")));
        s.finish().await;
    }
);

/// Joins and returns `presence` broadcasts too (the shared client skips them by default).
async fn join_seeing_presence(base: &str, nb: &str, token: &str) -> WsClient {
    let mut client = WsClient::join(base, nb, token).await;
    client.presence = true;
    client
}

/// Connects (unauthenticated) and returns `presence` broadcasts too.
async fn connect_seeing_presence(base: &str, nb: &str) -> WsClient {
    let mut client = WsClient::connect(base, nb).await;
    client.presence = true;
    client
}

/// Status of a notebook's first cell as `user` sees it.
async fn first_status(s: &TestServer, user: &str, nb: &str, cell: &str) -> String {
    let n = s.notebook(user, nb).await;
    common::cells::cell(&n, cell)["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The kernel of a shared notebook counts against its owner's quota, whoever runs it: with
/// KERNELS_PER_USER=1, the owner's next run elsewhere stops it (its cells turn stale), while the
/// editor's own notebook keeps its kernel.
#[actix_web::test]
async fn shared_kernels_count_against_the_owner() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = db.config();
    config.quotas.kernels_per_user = 1;
    let s = TestServer::start_with(db, config).await;
    let nb = shared_notebook(&s).await;
    let shared_cell = s.new_cell(OWNER, &nb, "python", "shared = 1").await;
    let ran = common::cells::run_settled(&s, EDITOR, &nb, &shared_cell).await;
    assert_eq!(ran["status"], "success", "{ran:#}");

    // The editor's own notebook has its own kernel: nothing of the owner's is stopped.
    let mine = s.new_notebook(EDITOR, "editor's own").await;
    let mine_cell = s.new_cell(EDITOR, &mine, "python", "mine = 1").await;
    let ran = common::cells::run_settled(&s, EDITOR, &mine, &mine_cell).await;
    assert_eq!(ran["status"], "success", "{ran:#}");
    assert_eq!(
        first_status(&s, OWNER, &nb, &shared_cell).await,
        "success",
        "the editor's own kernel does not count against the owner"
    );

    // The owner's second notebook needs the owner's only kernel: the shared one is stopped.
    let other = s.new_notebook(OWNER, "owner's other").await;
    let other_cell = s.new_cell(OWNER, &other, "python", "other = 1").await;
    let ran = common::cells::run_settled(&s, OWNER, &other, &other_cell).await;
    assert_eq!(ran["status"], "success", "{ran:#}");
    let deadline = std::time::Instant::now() + T;
    while first_status(&s, OWNER, &nb, &shared_cell).await != "stale" {
        assert!(
            std::time::Instant::now() < deadline,
            "the shared notebook's kernel was not stopped for the owner's quota"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first_status(&s, EDITOR, &mine, &mine_cell).await, "success");
    s.finish().await;
}
