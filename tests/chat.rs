//! The AI assistant end to end, against a fake Anthropic server that speaks the Messages API's
//! streaming protocol byte for byte (chunked HTTP, `event:`/`data:` frames, pings, partial
//! tool-input JSON), with real rooms, kernels, WebSocket tabs and databases.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{tokens, Backend, TestDb, TestServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "sk-ant-api03-TEST-SECRET-KEY-7f3a9c";
const U: &str = "user_chat";
const OTHER: &str = "user_chat_other";

// ---------------------------------------------------------------------------------------------
// The fake Anthropic server
// ---------------------------------------------------------------------------------------------

/// One request the fake server received.
#[derive(Debug, Clone)]
struct Call {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Call {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request's messages.
    fn messages(&self) -> &Vec<Value> {
        self.body["messages"].as_array().expect("messages")
    }

    /// The tool_result blocks of the last message.
    fn tool_results(&self) -> Vec<Value> {
        let last = self.messages().last().expect("a message");
        assert_eq!(last["role"], "user");
        last["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// How the fake server answers one request.
enum Reply {
    /// A complete `text/event-stream` body, written chunk by chunk.
    Sse(Vec<String>),
    /// An error status with a JSON body.
    Status(u16, Value),
    /// These chunks, then the socket closes (no terminating chunk).
    Cut(Vec<String>),
    /// These chunks, then the connection stays open until the client closes it.
    Hang(Vec<String>),
}

type Script = dyn Fn(usize, &Call) -> Reply + Send + Sync;

struct Fake {
    url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    client_closed: Arc<AtomicBool>,
}

impl Fake {
    async fn start(script: impl Fn(usize, &Call) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind fake");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
        let client_closed = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (calls2, closed2) = (calls.clone(), client_closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (calls, closed, script) = (calls2.clone(), closed2.clone(), script.clone());
                tokio::spawn(async move {
                    serve(socket, calls, closed, script).await;
                });
            }
        });
        Fake {
            url,
            calls,
            client_closed,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<Call> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let path = request_line.split(' ').nth(1)?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Some(Call {
        path,
        headers,
        body,
    })
}

async fn write_chunks(socket: &mut TcpStream, chunks: &[String]) -> std::io::Result<()> {
    socket
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
              cache-control: no-cache\r\nrequest-id: req_fake\r\n\
              transfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        )
        .await?;
    for chunk in chunks {
        socket
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await?;
        socket.flush().await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn serve(
    mut socket: TcpStream,
    calls: Arc<Mutex<Vec<Call>>>,
    closed: Arc<AtomicBool>,
    script: Arc<Script>,
) {
    let Some(call) = read_request(&mut socket).await else {
        return;
    };
    let index = {
        let mut calls = calls.lock().expect("calls");
        calls.push(call.clone());
        calls.len() - 1
    };
    match script(index, &call) {
        Reply::Sse(chunks) => {
            if write_chunks(&mut socket, &chunks).await.is_ok() {
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
        }
        Reply::Status(status, body) => {
            let body = body.to_string();
            let head = format!(
                "HTTP/1.1 {status} Error\r\ncontent-type: application/json\r\n\
                 retry-after: 20\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
        }
        Reply::Cut(chunks) => {
            let _ = write_chunks(&mut socket, &chunks).await;
            // Drop the socket without the terminating chunk.
        }
        Reply::Hang(chunks) => {
            if write_chunks(&mut socket, &chunks).await.is_err() {
                closed.store(true, Ordering::SeqCst);
                return;
            }
            let mut buf = [0u8; 256];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await
                {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        closed.store(true, Ordering::SeqCst);
                        return;
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = socket.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The Messages API stream, as Anthropic sends it
// ---------------------------------------------------------------------------------------------

fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

fn message_start() -> Vec<String> {
    vec![
        sse(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
                "content": [], "model": "claude-sonnet-4-5", "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": 472, "output_tokens": 2}}}),
        ),
        // Anthropic writes this one with a space after the colon.
        "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_string(),
    ]
}

fn text_block(index: usize, text: &str) -> Vec<String> {
    let mut out = vec![sse(
        "content_block_start",
        json!({"type": "content_block_start", "index": index,
               "content_block": {"type": "text", "text": ""}}),
    )];
    let mid = text
        .char_indices()
        .nth(text.chars().count() / 2)
        .map_or(0, |(i, _)| i);
    for piece in [&text[..mid], &text[mid..]] {
        out.push(sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "text_delta", "text": piece}}),
        ));
    }
    out.push(sse(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    out
}

/// A tool_use block whose input JSON arrives in several `input_json_delta` pieces.
fn tool_block_raw(index: usize, id: &str, name: &str, input_json: &str) -> Vec<String> {
    let mut out = vec![
        sse(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                   "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        ),
        sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ),
    ];
    let chars: Vec<char> = input_json.chars().collect();
    for piece in chars.chunks(chars.len().div_ceil(3).max(1)) {
        out.push(sse(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": index,
                   "delta": {"type": "input_json_delta",
                             "partial_json": piece.iter().collect::<String>()}}),
        ));
    }
    out.push(sse(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    ));
    out
}

fn tool_block(index: usize, id: &str, name: &str, input: Value) -> Vec<String> {
    tool_block_raw(index, id, name, &input.to_string())
}

fn message_end(stop_reason: &str) -> Vec<String> {
    vec![
        sse(
            "message_delta",
            json!({"type": "message_delta",
                   "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": 89}}),
        ),
        sse("message_stop", json!({"type": "message_stop"})),
    ]
}

/// A whole answer: text and/or tool calls.
fn answer(text: Option<&str>, tools: Vec<Vec<String>>, stop_reason: &str) -> Vec<String> {
    let mut out = message_start();
    if let Some(text) = text {
        out.extend(text_block(0, text));
    }
    for tool in tools {
        out.extend(tool);
    }
    out.extend(message_end(stop_reason));
    out
}

/// Re-splits a stream into small pieces that ignore event boundaries.
fn rechunk(chunks: Vec<String>, size: usize) -> Vec<String> {
    let all: Vec<char> = chunks.concat().chars().collect();
    all.chunks(size).map(|c| c.iter().collect()).collect()
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

async fn server_with(fake: Option<&Fake>, backend: Backend) -> TestServer {
    let db = TestDb::new(backend).await;
    let mut config = db.config();
    if let Some(fake) = fake {
        config.anthropic_api_key = Some(KEY.into());
        config.anthropic_base_url = fake.url.clone();
    }
    TestServer::start_with(db, config).await
}

/// Posts a chat and reads the whole event stream; asserts the key appears nowhere in it.
async fn chat(s: &TestServer, user: &str, nb: &str, text: &str) -> Vec<Value> {
    let resp = s
        .http
        .post(s.url(&format!("/api/chat/{nb}")))
        .bearer_auth(tokens::token_for(user))
        .json(&json!({"messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .expect("chat request");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let raw = tokio::time::timeout(Duration::from_secs(90), resp.text())
        .await
        .expect("the stream ends")
        .expect("stream read");
    assert!(
        !raw.contains(KEY),
        "the API key leaked into the stream: {raw}"
    );
    parse_events(&raw)
}

fn parse_events(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        // SSE comments (`: keep-alive`) carry no event.
        .filter(|frame| !frame.trim().is_empty() && !frame.starts_with(':'))
        .map(|frame| {
            let data = frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("frame without data: {frame:?}"));
            serde_json::from_str(data).unwrap_or_else(|e| panic!("bad frame {data}: {e}"))
        })
        .collect()
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect()
}

fn of<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == name)
        .map(|e| &e["data"])
        .collect()
}

fn check_request(call: &Call) {
    assert_eq!(call.path, "/v1/messages");
    assert_eq!(call.header("x-api-key"), Some(KEY));
    assert_eq!(call.header("anthropic-version"), Some("2023-06-01"));
    assert!(call
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/json")));
    assert_eq!(call.body["stream"], true);
    assert!(call.body["model"].is_string());
    assert!(call.body["max_tokens"].as_u64().is_some_and(|n| n > 0));
    let tools: Vec<&str> = call.body["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in [
        "get_notebook_state",
        "create_cell",
        "update_cell",
        "delete_cell",
        "run_cell",
    ] {
        assert!(tools.contains(&tool), "{tools:?}");
    }
    for tool in call.body["tools"].as_array().into_iter().flatten() {
        assert_eq!(tool["input_schema"]["type"], "object");
    }
    assert!(call.body["system"].is_string());
}

async fn audit(s: &TestServer, user: &str, nb: &str) -> (u16, Value) {
    s.get(&format!("/api/notebooks/{nb}/audit"), user).await
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[actix_web::test]
async fn plain_text_answer() {
    let fake = Fake::start(|_, _| {
        Reply::Sse(rechunk(
            answer(Some("Hello! Your notebook is empty."), vec![], "end_turn"),
            37,
        ))
    })
    .await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Greetings").await;
    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(
        names(&events),
        [
            "turn_start",
            "text_start",
            "text_delta",
            "text_delta",
            "content_block_stop",
            "done"
        ]
    );
    assert_eq!(events[0]["data"], json!({"turn": 1, "max_turns": 10}));
    let text: String = of(&events, "text_delta")
        .iter()
        .filter_map(|d| d["text"].as_str())
        .collect();
    assert_eq!(text, "Hello! Your notebook is empty.");
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    check_request(&calls[0]);
    assert_eq!(
        calls[0].body["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
    let system = calls[0].body["system"].as_str().unwrap_or_default();
    assert!(system.contains("Greetings"), "{system}");
    assert!(!system.contains(KEY));
    s.finish().await;
}

/// Waits for a WebSocket message matching `want`; returns every message seen until then.
async fn ws_until(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    want: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; saw {seen:#?}"))
            .expect("socket open")
            .expect("frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            let value: Value = serde_json::from_str(&text).expect("json message");
            let done = want(&value);
            seen.push(value);
            if done {
                return seen;
            }
        }
    }
}

both_backends!(
    tool_loop_changes_the_notebook,
    |backend: Backend| async move {
        let fake = Fake::start(|i, call: &Call| match i {
            0 => Reply::Sse(answer(
                Some("I'll add a cell."),
                vec![tool_block(
                    1,
                    "toolu_01A",
                    "create_cell",
                    json!({"type": "python", "code": "x = 6 * 7\nx"}),
                )],
                "tool_use",
            )),
            1 => {
                let results = call.tool_results();
                let cell_id = serde_json::from_str::<Value>(
                    results[0]["content"].as_str().unwrap_or_default(),
                )
                .ok()
                .and_then(|v| v["cell_id"].as_str().map(String::from))
                .unwrap_or_default();
                Reply::Sse(answer(
                    None,
                    vec![tool_block(
                        0,
                        "toolu_01B",
                        "run_cell",
                        json!({ "cell_id": cell_id }),
                    )],
                    "tool_use",
                ))
            }
            _ => Reply::Sse(answer(Some("x is 42."), vec![], "end_turn")),
        })
        .await;
        let s = server_with(Some(&fake), backend).await;
        let nb = s.new_notebook(U, "Answers").await;

        // A second tab watches over the WebSocket.
        let ws_url = format!("{}/api/ws/notebooks/{nb}", s.base.replacen("http", "ws", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("websocket connects");
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "authenticate", "token": tokens::token_for(U)}).to_string(),
        ))
        .await
        .expect("send auth");
        ws_until(&mut ws, |m| m["type"] == "authenticated").await;

        let events = chat(&s, U, &nb, "What is 6 * 7? Use the notebook.").await;
        assert_eq!(
            names(&events),
            [
                "turn_start",
                "text_start",
                "text_delta",
                "text_delta",
                "content_block_stop",
                "tool_start",
                "content_block_stop",
                "tool_execute",
                "tool_result",
                "turn_start",
                "tool_start",
                "content_block_stop",
                "tool_execute",
                "tool_result",
                "turn_start",
                "text_start",
                "text_delta",
                "text_delta",
                "content_block_stop",
                "done"
            ],
            "{events:#?}"
        );
        let starts = of(&events, "tool_start");
        assert_eq!(starts[0]["tool_id"], "toolu_01A");
        assert_eq!(starts[0]["tool_name"], "create_cell");
        let executes = of(&events, "tool_execute");
        assert_eq!(executes[0]["tool_name"], "create_cell");
        assert_eq!(
            executes[0]["tool_input"],
            json!({"type": "python", "code": "x = 6 * 7\nx"})
        );
        let results = of(&events, "tool_result");
        assert_eq!(results[0]["tool_name"], "create_cell");
        assert_eq!(results[0]["is_error"], false);
        let cell_id = results[0]["result"]["cell_id"]
            .as_str()
            .expect("cell_id in the create_cell result")
            .to_string();
        assert_eq!(results[1]["tool_name"], "run_cell");
        assert_eq!(
            results[1]["result"]["status"], "success",
            "{:#}",
            results[1]
        );
        assert!(
            results[1]["result"]["output"]
                .as_str()
                .is_some_and(|o| o.contains("42")),
            "{:#}",
            results[1]
        );
        let turns: Vec<u64> = of(&events, "turn_start")
            .iter()
            .filter_map(|d| d["turn"].as_u64())
            .collect();
        assert_eq!(turns, [1, 2, 3]);

        // What the model was sent back.
        let calls = fake.calls();
        assert_eq!(calls.len(), 3);
        for call in &calls {
            check_request(call);
        }
        let second = calls[1].messages();
        assert_eq!(second.len(), 3);
        assert_eq!(second[1]["role"], "assistant");
        assert_eq!(
            second[1]["content"],
            json!([
                {"type": "text", "text": "I'll add a cell."},
                {"type": "tool_use", "id": "toolu_01A", "name": "create_cell",
                 "input": {"type": "python", "code": "x = 6 * 7\nx"}}
            ])
        );
        let tool_results = calls[1].tool_results();
        assert_eq!(tool_results.len(), 1);
        assert_eq!(tool_results[0]["tool_use_id"], "toolu_01A");
        assert_eq!(tool_results[0]["is_error"], false);
        let third = calls[2].tool_results();
        assert_eq!(third[0]["tool_use_id"], "toolu_01B");
        assert!(third[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("42") && c.contains("success")));

        // The notebook really changed.
        let notebook = s.notebook(U, &nb).await;
        // After the empty cell every new notebook starts with.
        let cell = &notebook["cells"][1];
        assert_eq!(cell["id"], cell_id.as_str());
        assert_eq!(cell["code"], "x = 6 * 7\nx");
        assert_eq!(cell["status"], "success");
        assert!(
            cell["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["mime_type"] == "text/plain" && o["data"] == "42"),
            "{cell:#}"
        );

        // ... and the other tab saw it happen live.
        let seen = ws_until(&mut ws, |m| {
            m["type"] == "cell_output" && m["cellId"] == cell_id.as_str()
        })
        .await;
        let created = seen
            .iter()
            .find(|m| m["type"] == "cell_created")
            .expect("a cell_created broadcast");
        assert_eq!(created["cellId"], cell_id.as_str());
        assert_eq!(created["cell"]["code"], "x = 6 * 7\nx");
        let _ = ws.close(None).await;

        // Each tool call is in the audit log, newest first.
        let (status, body) = audit(&s, U, &nb).await;
        assert_eq!(status, 200, "{body}");
        let entries = body["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 2, "{body:#}");
        assert_eq!(entries[0]["tool"], "run_cell");
        assert_eq!(entries[1]["tool"], "create_cell");
        for entry in entries {
            assert_eq!(entry["ok"], true);
            assert_eq!(entry["user_id"], U);
            assert_eq!(entry["notebook_id"], nb.as_str());
            assert!(entry["id"].is_string() && entry["created_at"].is_string());
        }
        assert_eq!(entries[1]["input"]["code"], "x = 6 * 7\nx");
        assert_eq!(entries[1]["outcome"]["cell_id"], cell_id.as_str());
        assert_eq!(entries[0]["input"]["cell_id"], cell_id.as_str());
        assert!(!body.to_string().contains(KEY));

        // Another user sees neither the audit log nor the chat.
        let (status, _) = audit(&s, OTHER, &nb).await;
        assert_eq!(status, 404);

        // Deleting the notebook deletes its audit rows.
        let (status, _) = s.delete(&format!("/api/notebooks/{nb}"), U).await;
        assert_eq!(status, 200);
        let (status, _) = audit(&s, U, &nb).await;
        assert_eq!(status, 404);
        s.finish().await;
    }
);

#[actix_web::test]
async fn malformed_tool_input_is_a_readable_tool_error() {
    let fake = Fake::start(|i, _| match i {
        0 => Reply::Sse(answer(
            None,
            vec![
                tool_block(
                    0,
                    "toolu_ruby",
                    "create_cell",
                    json!({"type": "ruby", "code": "puts 1"}),
                ),
                tool_block(1, "toolu_nocode", "create_cell", json!({"type": "python"})),
                tool_block(
                    2,
                    "toolu_nocell",
                    "run_cell",
                    json!({"cell_id": "no-such-cell"}),
                ),
                tool_block(3, "toolu_unknown", "format_disk", json!({})),
                tool_block_raw(
                    4,
                    "toolu_badjson",
                    "update_cell",
                    "{\"cell_id\": \"c\", \"co",
                ),
                tool_block(
                    5,
                    "toolu_numcode",
                    "update_cell",
                    json!({"cell_id": "c", "code": 5}),
                ),
            ],
            "tool_use",
        )),
        _ => Reply::Sse(answer(Some("Sorry, let me fix that."), vec![], "end_turn")),
    })
    .await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Oops").await;
    let events = chat(&s, U, &nb, "break things").await;
    assert_eq!(names(&events).last(), Some(&"done"));
    assert!(of(&events, "error").is_empty(), "{events:#?}");
    let results = of(&events, "tool_result");
    assert_eq!(results.len(), 6, "{events:#?}");
    for result in &results {
        assert_eq!(result["is_error"], true, "{result:#}");
        assert!(result["result"]["error"].is_string(), "{result:#}");
    }
    let error_of = |i: usize| results[i]["result"]["error"].as_str().unwrap_or_default();
    assert!(error_of(0).contains("ruby"), "{}", error_of(0));
    assert!(error_of(1).contains("code"), "{}", error_of(1));
    assert!(
        error_of(2).to_lowercase().contains("not found"),
        "{}",
        error_of(2)
    );
    assert!(error_of(3).contains("format_disk"), "{}", error_of(3));
    assert!(error_of(4).contains("JSON"), "{}", error_of(4));
    assert!(error_of(5).contains("code"), "{}", error_of(5));

    // The model got every error back as an is_error tool_result, and carried on.
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let tool_results = calls[1].tool_results();
    let ids: Vec<&str> = tool_results
        .iter()
        .filter_map(|r| r["tool_use_id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "toolu_ruby",
            "toolu_nocode",
            "toolu_nocell",
            "toolu_unknown",
            "toolu_badjson",
            "toolu_numcode"
        ]
    );
    for r in &tool_results {
        assert_eq!(r["is_error"], true);
        assert!(r["content"].as_str().is_some_and(|c| !c.is_empty()));
    }
    // The unparseable input went back to the API as a valid (empty) object.
    let assistant = &calls[1].messages()[1];
    assert_eq!(assistant["content"][4]["input"], json!({}));
    let text: String = of(&events, "text_delta")
        .iter()
        .filter_map(|d| d["text"].as_str())
        .collect();
    assert_eq!(text, "Sorry, let me fix that.");

    // Nothing changed, and the audit log shows six failed calls.
    // Nothing changed: only the empty cell every new notebook starts with.
    let cells = s.notebook(U, &nb).await["cells"].clone();
    assert_eq!(cells.as_array().map(Vec::len), Some(1), "{cells}");
    assert_eq!(cells[0]["code"], "", "{cells}");
    let (status, body) = audit(&s, U, &nb).await;
    assert_eq!(status, 200);
    let entries = body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 6);
    assert!(entries.iter().all(|e| e["ok"] == false), "{body:#}");
    s.finish().await;
}

#[actix_web::test]
async fn upstream_errors_end_the_stream_cleanly() {
    let fake = Fake::start(|i, _| match i {
        0 => Reply::Status(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error",
                   "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        ),
        // An upstream that echoes the key back must not leak it.
        1 => Reply::Status(
            401,
            json!({"type": "error", "error": {"type": "authentication_error",
                   "message": format!("invalid x-api-key {KEY}")}}),
        ),
        2 => Reply::Status(500, json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})),
        // An error event in the middle of a stream.
        3 => Reply::Sse({
            let mut out = message_start();
            out.push(sse(
                "error",
                json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            ));
            out
        }),
        // The connection is cut in the middle of a data line.
        _ => Reply::Cut({
            let mut out = message_start();
            out.extend(text_block(0, "Half an ans").into_iter().take(2));
            out.push("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_".into());
            out
        }),
    })
    .await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Flaky").await;

    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(names(&events), ["turn_start", "error", "done"]);
    let error = of(&events, "error")[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("429") && error.contains("rate limit"),
        "{error}"
    );

    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(names(&events), ["turn_start", "error", "done"]);
    let error = of(&events, "error")[0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("401") && error.contains("[redacted]"),
        "{error}"
    );

    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(names(&events), ["turn_start", "error", "done"]);
    assert!(of(&events, "error")[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("500")));

    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(names(&events), ["turn_start", "error", "done"]);
    assert!(of(&events, "error")[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("Overloaded")));

    let events = chat(&s, U, &nb, "hi").await;
    assert_eq!(
        names(&events),
        ["turn_start", "text_start", "text_delta", "error", "done"],
        "{events:#?}"
    );
    assert!(of(&events, "error")[0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("broke off")));
    assert_eq!(fake.calls().len(), 5);
    s.finish().await;
}

#[actix_web::test]
async fn the_loop_stops_after_ten_turns() {
    let fake = Fake::start(|i, _| {
        Reply::Sse(answer(
            None,
            vec![tool_block(
                0,
                &format!("toolu_{i:02}"),
                "get_notebook_state",
                json!({}),
            )],
            "tool_use",
        ))
    })
    .await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Loop").await;
    let events = chat(&s, U, &nb, "loop forever").await;
    assert_eq!(fake.calls().len(), 10, "exactly ten model calls");
    let turns: Vec<u64> = of(&events, "turn_start")
        .iter()
        .filter_map(|d| d["turn"].as_u64())
        .collect();
    assert_eq!(turns, (1..=10).collect::<Vec<u64>>());
    assert_eq!(of(&events, "tool_execute").len(), 9);
    let n = names(&events);
    assert_eq!(&n[n.len() - 2..], ["error", "done"]);
    let error = of(&events, "error")[0]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("limit") && error.contains("10"), "{error}");
    // The tenth turn's call is closed with an error result, not run.
    let results = of(&events, "tool_result");
    assert_eq!(results.len(), 10);
    assert_eq!(results[9]["is_error"], true);
    assert_eq!(results[8]["is_error"], false);
    assert!(results[8]["result"]["cells"].is_array());
    // The tenth request carries nine rounds of tool results.
    assert_eq!(fake.calls()[9].messages().len(), 1 + 2 * 9);
    let (_, body) = audit(&s, U, &nb).await;
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(9));
    s.finish().await;
}

#[actix_web::test]
async fn client_disconnect_stops_the_upstream_request() {
    let fake = Fake::start(|_, _| {
        let mut out = message_start();
        out.extend(text_block(0, "Thinking about it").into_iter().take(2));
        Reply::Hang(out)
    })
    .await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Bye").await;
    let mut resp = s
        .http
        .post(s.url(&format!("/api/chat/{nb}")))
        .bearer_auth(tokens::token_for(U))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("chat request");
    assert_eq!(resp.status().as_u16(), 200);
    let mut raw = String::new();
    while !raw.contains("text_delta") {
        let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
            .await
            .expect("an event in time")
            .expect("read")
            .expect("more data");
        raw.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!fake.client_closed.load(Ordering::SeqCst));
    drop(resp);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !fake.client_closed.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the upstream request outlived the client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.finish().await;
}

#[actix_web::test]
async fn access_validation_and_configuration() {
    let fake = Fake::start(|_, _| Reply::Sse(answer(Some("hi"), vec![], "end_turn"))).await;
    let s = server_with(Some(&fake), Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Mine").await;
    let ok = json!({"messages": [{"role": "user", "content": "hi"}]});

    // Another user's notebook (and a missing one) answer 404, without calling the model.
    let (status, body) = s.post(&format!("/api/chat/{nb}"), OTHER, ok.clone()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body, json!({"detail": "Notebook not found"}));
    let (status, _) = s.post("/api/chat/no-such-notebook", U, ok.clone()).await;
    assert_eq!(status, 404);
    let (status, _) = audit(&s, OTHER, &nb).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/api/chat/{nb}"),
            None,
            Some(ok.clone()),
        )
        .await;
    assert_eq!(status, 401);
    assert!(fake.calls().is_empty());

    // Invalid bodies are 422.
    for bad in [
        json!({}),
        json!({"messages": []}),
        json!({"messages": [{"role": "system", "content": "x"}]}),
        json!({"messages": [{"role": "user", "content": ["x"]}]}),
        json!({"messages": [{"role": "user"}]}),
    ] {
        let (status, body) = s.post(&format!("/api/chat/{nb}"), U, bad.clone()).await;
        assert_eq!(status, 422, "{bad} -> {body}");
        assert!(body["detail"].is_string());
    }
    assert!(fake.calls().is_empty());
    let (status, body) = audit(&s, U, &nb).await;
    assert_eq!((status, body), (200, json!({"entries": []})));
    s.finish().await;

    // No key configured: 503 with a clear detail.
    let s = server_with(None, Backend::Sqlite).await;
    let nb = s.new_notebook(U, "Unconfigured").await;
    let (status, body) = s.post(&format!("/api/chat/{nb}"), U, ok).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"detail": "The assistant is not configured (set ANTHROPIC_API_KEY)"})
    );
    s.finish().await;
}
