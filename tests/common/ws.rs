//! A WebSocket test client speaking the notebook protocol.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

/// A cell emitting about 7 MB of events: more than socket buffers hold, so a tab that does
/// not read overflows its outbox.
pub const FLOOD_CODE: &str = "pad = 'x' * 300\nfor i in range(20000):\n    display(f'{i} {pad}')";

/// What arrived next.
#[derive(Debug)]
pub enum Frame {
    /// A JSON text message.
    Json(Value),
    /// The server closed with this code.
    Closed(u16),
}

/// One client connection.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Whether `presence` broadcasts are returned; off by default, so tests about other
    /// events are not disturbed by tabs joining and leaving.
    pub presence: bool,
    /// Whether `cursor` messages (others' selections) are returned; off by default.
    pub cursors: bool,
    /// Whether `yjs` messages are returned (Yjs clients) or skipped (everyone else).
    pub keep_yjs: bool,
}

impl WsClient {
    /// Connects to a notebook's socket (not yet authenticated).
    pub async fn connect(base: &str, notebook: &str) -> WsClient {
        let url = format!(
            "{}/api/ws/notebooks/{notebook}",
            base.replacen("http", "ws", 1)
        );
        let (stream, _) = connect_async(url).await.expect("websocket connects");
        WsClient {
            stream,
            presence: false,
            cursors: false,
            keep_yjs: false,
        }
    }

    /// Connects and authenticates; asserts the `authenticated` answer.
    pub async fn join(base: &str, notebook: &str, token: &str) -> WsClient {
        let mut client = WsClient::connect(base, notebook).await;
        client
            .send(json!({"type": "authenticate", "token": token}))
            .await;
        match client.next(Duration::from_secs(10)).await {
            Frame::Json(v) if v["type"] == "authenticated" => client,
            other => panic!("expected authenticated, got {other:?}"),
        }
    }

    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream
            .send(Message::Text(text))
            .await
            .expect("websocket send");
    }

    /// The next JSON message or close (pings are answered by the library and skipped).
    pub async fn next(&mut self, within: Duration) -> Frame {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let item = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("nothing received within {within:?}"));
            match item {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    let skipped = (value["type"] == "presence" && !self.presence)
                        || (value["type"] == "cursor" && !self.cursors)
                        || (value["type"] == "yjs" && !self.keep_yjs);
                    if skipped {
                        continue;
                    }
                    return Frame::Json(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Frame::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
                None => return Frame::Closed(1006),
            }
        }
    }

    /// The next JSON message; panics on a close.
    pub async fn json(&mut self, within: Duration) -> Value {
        match self.next(within).await {
            Frame::Json(v) => v,
            Frame::Closed(code) => panic!("closed with {code} while expecting a message"),
        }
    }

    /// Reads messages until one matches, returning everything read (including the match).
    pub async fn until(&mut self, within: Duration, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self.json(left).await;
            let stop = done(&v);
            seen.push(v);
            if stop {
                return seen;
            }
        }
    }

    /// Reads until the server closes the socket: (messages read, close code). Each read
    /// waits at most `within`.
    pub async fn until_closed(&mut self, within: Duration) -> (usize, u16) {
        let mut seen = 0;
        loop {
            match self.next(within).await {
                Frame::Json(_) => seen += 1,
                Frame::Closed(code) => return (seen, code),
            }
        }
    }

    /// Expects `error {message}` followed by a close with `code`; returns the message.
    pub async fn expect_error_then_close(&mut self, code: u16) -> String {
        let message = match self.next(Duration::from_secs(15)).await {
            Frame::Json(v) if v["type"] == "error" => {
                v["message"].as_str().unwrap_or("").to_string()
            }
            other => panic!("expected an error message, got {other:?}"),
        };
        match self.next(Duration::from_secs(15)).await {
            Frame::Closed(c) => assert_eq!(c, code, "close code (message was {message})"),
            other => panic!("expected close {code}, got {other:?}"),
        }
        message
    }
}
