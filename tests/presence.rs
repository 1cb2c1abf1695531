//! Presence over the WebSocket (join, focus, leave, names from token claims) and the
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
