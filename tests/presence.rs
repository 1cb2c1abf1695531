//! Presence over the WebSocket (join, focus, leave, names from token claims), remote cursors
//! (relayed with the sender's identity, checked, hidden when the sender leaves), and the
//! protocol-hygiene closes (invalid UTF-8 text: 1007; binary before authenticate: 1008).

mod common;

use std::time::Duration;

use common::tokens::{sign, token_for, valid_claims};
use common::ws::{Frame, WsClient};
use common::{Backend, TestServer};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as RawFrame;
use tokio_tungstenite::tungstenite::Message;

const OWNER: &str = "presence_owner";
const GUEST: &str = "presence_guest";
const T: Duration = Duration::from_secs(20);

fn users(v: &Value) -> Vec<Value> {
    v["users"].as_array().cloned().unwrap_or_default()
}

fn ids(v: &Value) -> Vec<String> {
    users(v)
        .iter()
        .filter_map(|u| u["user_id"].as_str().map(str::to_string))
        .collect()
}

async fn next_presence(ws: &mut WsClient) -> Value {
    ws.until(T, |v| v["type"] == "presence")
        .await
        .pop()
        .expect("a presence message")
}

both_backends!(join_focus_leave, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(OWNER, "presence").await;
    let cell = s.new_cell(OWNER, &nb, "python", "x = 1").await;
    let (_, invite) = s
        .post(
            &format!("/api/notebooks/{nb}/invites"),
            OWNER,
            json!({"role": "viewer"}),
        )
        .await;
    let code = invite["code"].as_str().expect("code");
    let (status, _) = s
        .post(&format!("/api/invites/{code}/accept"), GUEST, json!({}))
        .await;
    assert_eq!(status, 200);

    let mut owner = join_seeing_presence(&s.base, &nb, &token_for(OWNER)).await;
    let first = next_presence(&mut owner).await;
    assert_eq!(ids(&first), vec![OWNER]);
    assert!(first["seq"].is_u64(), "presence is a numbered broadcast");
    let color = users(&first)[0]["color"]
        .as_str()
        .expect("color")
        .to_string();
    assert!(color.starts_with('#'));
    assert!(
        users(&first)[0].get("name").is_none(),
        "no name claim, no name"
    );

    // The guest's token carries a display name.
    let mut claims = valid_claims(GUEST);
    claims["name"] = json!("Grace Guest");
    let mut guest = join_seeing_presence(&s.base, &nb, &sign(claims, None)).await;
    let both = next_presence(&mut owner).await;
    assert_eq!(ids(&both), vec![OWNER, GUEST]);
    assert_eq!(users(&both)[1]["name"], "Grace Guest");
    assert_eq!(next_presence(&mut guest).await["users"], both["users"]);

    // Focus moves show who is in which cell.
    guest.send(json!({"type": "focus", "cellId": cell})).await;
    let focused = next_presence(&mut owner).await;
    assert_eq!(users(&focused)[1]["cell_id"], json!(cell));
    assert!(users(&focused)[0].get("cell_id").is_none());
    guest.send(json!({"type": "focus", "cellId": null})).await;
    let left_cell = next_presence(&mut owner).await;
    assert!(users(&left_cell)[1].get("cell_id").is_none());

    // An unknown cell is an error and changes nothing.
    guest
        .send(json!({"type": "focus", "cellId": "no-such-cell"}))
        .await;
    let err = guest
        .until(T, |v| v["type"] == "error")
        .await
        .pop()
        .expect("error");
    assert!(err["message"]
        .as_str()
        .is_some_and(|m| m.contains("Cell not found")));

    // Leaving is broadcast too.
    drop(guest);
    let after = next_presence(&mut owner).await;
    assert_eq!(ids(&after), vec![OWNER]);
    assert_eq!(
        users(&after)[0]["color"],
        json!(color),
        "colours are stable"
    );
    s.finish().await;
});

/// Joins an invite of `role` to `nb` as `user` (the owner creates it).
async fn accept_invite(s: &TestServer, nb: &str, user: &str, role: &str) {
    let (_, invite) = s
        .post(
            &format!("/api/notebooks/{nb}/invites"),
            OWNER,
            json!({"role": role}),
        )
        .await;
    let code = invite["code"].as_str().expect("code");
    let (status, _) = s
        .post(&format!("/api/invites/{code}/accept"), user, json!({}))
        .await;
    assert_eq!(status, 200);
}

/// Joins and returns `cursor` events too.
async fn join_seeing_cursors(base: &str, nb: &str, token: &str) -> WsClient {
    let mut client = WsClient::join(base, nb, token).await;
    client.cursors = true;
    client
}

/// Sends an invalid message and reads up to its error: proves nothing else was queued before.
async fn nothing_pending(ws: &mut WsClient) {
    ws.send(json!({"type": "run_cell"})).await;
    let seen = ws.until(T, |v| v["type"] == "error").await;
    assert_eq!(seen.len(), 1, "unexpected events: {seen:?}");
}

async fn next_error(ws: &mut WsClient) -> String {
    let err = ws
        .until(T, |v| v["type"] == "error")
        .await
        .pop()
        .expect("error");
    err["message"].as_str().unwrap_or_default().to_string()
}

both_backends!(remote_cursors, |backend: Backend| async move {
    const EDITOR: &str = "cursor_editor";
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(OWNER, "cursors").await;
    let cell = s.new_cell(OWNER, &nb, "python", "x = 1").await;
    let other = s.new_cell(OWNER, &nb, "python", "y = 2").await;
    accept_invite(&s, &nb, EDITOR, "editor").await;
    accept_invite(&s, &nb, GUEST, "viewer").await;

    let mut owner = join_seeing_cursors(&s.base, &nb, &token_for(OWNER)).await;
    let mut claims = valid_claims(EDITOR);
    claims["name"] = json!("Eve Editor");
    let mut editor = join_seeing_cursors(&s.base, &nb, &sign(claims, None)).await;
    let mut viewer = join_seeing_cursors(&s.base, &nb, &token_for(GUEST)).await;

    // What `Y.relativePositionToJSON` produces: relayed rebuilt, with who and colour added.
    let anchor = json!({"item": {"client": 4242, "clock": 3}, "assoc": 0});
    let head = json!({"tname": "code", "assoc": -1});
    editor.send(json!({"type": "focus", "cellId": cell})).await;
    editor
        .send(json!({"type": "cursor", "cellId": cell, "anchor": anchor, "head": head}))
        .await;
    for ws in [&mut owner, &mut viewer] {
        let seen = ws.until(T, |v| v["type"] == "cursor").await;
        let c = seen.last().expect("cursor");
        assert_eq!(c["cellId"], json!(cell));
        assert_eq!(c["user_id"], EDITOR);
        assert_eq!(c["name"], "Eve Editor");
        assert!(c["color"].as_str().is_some_and(|c| c.starts_with('#')));
        assert!(c["session"].is_u64());
        assert!(
            c.get("seq").is_none(),
            "cursors are not numbered broadcasts"
        );
        assert_eq!((&c["anchor"], &c["head"]), (&anchor, &head));
    }
    // The sender does not get its own cursor back.
    nothing_pending(&mut editor).await;

    // Viewers cannot send cursors; bad positions and unknown cells are refused.
    viewer
        .send(json!({"type": "cursor", "cellId": cell, "anchor": anchor, "head": head}))
        .await;
    assert!(next_error(&mut viewer).await.contains("viewers"));
    for bad in [
        json!({"type": "cursor", "cellId": cell, "anchor": {"tname": "secret"}, "head": head}),
        json!({"type": "cursor", "cellId": cell, "anchor": anchor, "head": {"item": {"client": 1u64 << 60, "clock": 0}}}),
        json!({"type": "cursor", "cellId": cell, "anchor": anchor}),
        json!({"type": "cursor", "cellId": cell, "anchor": anchor, "head": {"type": {"client": 1, "clock": 1}}}),
    ] {
        editor.send(bad.clone()).await;
        assert!(next_error(&mut editor).await.contains("cursor"), "{bad}");
    }
    editor
        .send(json!({"type": "cursor", "cellId": "no-such-cell", "anchor": anchor, "head": head}))
        .await;
    assert!(next_error(&mut editor).await.contains("Cell not found"));
    nothing_pending(&mut owner).await;

    // Moving to another cell hides the cursor; so does leaving.
    editor.send(json!({"type": "focus", "cellId": other})).await;
    let hidden = owner
        .until(T, |v| v["type"] == "cursor")
        .await
        .pop()
        .expect("cursor");
    assert_eq!(hidden["cellId"], Value::Null);
    assert_eq!(hidden["user_id"], EDITOR);
    editor
        .send(json!({"type": "cursor", "cellId": other, "anchor": head, "head": head}))
        .await;
    let shown = owner
        .until(T, |v| v["type"] == "cursor")
        .await
        .pop()
        .expect("cursor");
    assert_eq!(shown["cellId"], json!(other));
    drop(editor);
    let gone = owner
        .until(T, |v| v["type"] == "cursor")
        .await
        .pop()
        .expect("cursor");
    assert_eq!(gone["cellId"], Value::Null);
    assert_eq!(gone["session"], shown["session"]);
    s.finish().await;
});

/// Sends a raw text frame whose payload is not UTF-8.
async fn send_invalid_utf8(ws: &mut WsClient) {
    let frame = RawFrame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
    ws.stream
        .send(Message::Frame(frame))
        .await
        .expect("raw frame sent");
}

async fn expect_close(ws: &mut WsClient, code: u16) {
    loop {
        match ws.next(T).await {
            Frame::Closed(c) => {
                assert_eq!(c, code);
                return;
            }
            Frame::Json(_) => continue,
        }
    }
}

both_backends!(protocol_hygiene_closes, |backend: Backend| async move {
    let s = TestServer::start(backend).await;
    let nb = s.new_notebook(OWNER, "hygiene").await;

    // Invalid UTF-8 in a text frame: 1007, before and after authentication.
    let mut before = connect_seeing_presence(&s.base, &nb).await;
    send_invalid_utf8(&mut before).await;
    expect_close(&mut before, 1007).await;
    let mut joined = join_seeing_presence(&s.base, &nb, &token_for(OWNER)).await;
    send_invalid_utf8(&mut joined).await;
    expect_close(&mut joined, 1007).await;

    // A binary frame before authentication: error then 1008, like any other first frame.
    let mut binary = connect_seeing_presence(&s.base, &nb).await;
    binary
        .stream
        .send(Message::Binary(vec![1, 2, 3]))
        .await
        .expect("binary sent");
    let message = binary.expect_error_then_close(1008).await;
    assert!(message.contains("not authenticated"), "{message}");

    // After authentication a binary frame is refused without closing.
    let mut ok = join_seeing_presence(&s.base, &nb, &token_for(OWNER)).await;
    ok.stream
        .send(Message::Binary(vec![1, 2, 3]))
        .await
        .expect("binary sent");
    let err = ok
        .until(T, |v| v["type"] == "error")
        .await
        .pop()
        .expect("error");
    assert!(err["message"]
        .as_str()
        .is_some_and(|m| m.contains("binary")));
    ok.send(json!({"type": "focus", "cellId": null})).await;
    ok.send(json!({"type": "interrupt"})).await;
    ok.send(json!({"type": "refresh_auth", "token": token_for(OWNER)}))
        .await;
    ok.until(T, |v| v["type"] == "auth_refreshed").await;
    s.finish().await;
});

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
