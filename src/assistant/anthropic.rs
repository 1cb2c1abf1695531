//! A streaming client for Anthropic's Messages API: builds the request and parses the
//! Server-Sent Events it answers (`message_start`, `content_block_start/delta/stop`,
//! `message_delta`, `message_stop`, `ping`, `error`).

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

/// The API version header value this client speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Most output tokens asked for per model call.
pub const MAX_TOKENS: u32 = 4096;

/// Longest SSE line accepted before the stream is treated as broken.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Most bytes of an error body kept for the message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The request could not be sent (DNS, TCP, TLS, timeout).
    #[error("could not reach the model API: {0}")]
    Connect(String),
    /// The API answered with an HTTP error status.
    #[error("the model API answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The API's explanation.
        message: String,
    },
    /// The stream stopped before the message was complete.
    #[error("the model API stream broke off: {0}")]
    Broken(String),
    /// The stream carried an `error` event.
    #[error("the model API reported an error ({kind}): {message}")]
    Api {
        /// The error type (e.g. `overloaded_error`).
        kind: String,
        /// The explanation.
        message: String,
    },
    /// The stream carried something that is not the Messages API's event format.
    #[error("the model API sent an unreadable event: {0}")]
    Protocol(String),
}

/// One raw Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

/// An incremental parser of the `text/event-stream` format.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RawEvent>, UpstreamError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if let Some(stripped) = line.strip_suffix(b"\r") {
                line = stripped;
            }
            let line = std::str::from_utf8(line)
                .map_err(|_| UpstreamError::Protocol("a line is not UTF-8".into()))?
                .to_string();
            start = end + 1;
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(UpstreamError::Protocol("a line is too long".into()));
        }
        Ok(events)
    }

    /// True when bytes or fields of an unfinished event are pending.
    pub fn mid_event(&self) -> bool {
        !self.buf.is_empty() || self.event.is_some() || !self.data.is_empty()
    }

    fn line(&mut self, line: &str) -> Option<RawEvent> {
        if line.is_empty() {
            if self.data.is_empty() {
                self.event = None;
                return None;
            }
            return Some(RawEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
        None
    }
}

/// The start of a content block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// Text.
    Text,
    /// A tool call.
    ToolUse {
        /// The call's id.
        id: String,
        /// The tool.
        name: String,
    },
    /// Another kind (thinking, server tools, ...), ignored.
    Other(String),
}

/// A typed event of the Messages API stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// `message_start`.
    MessageStart,
    /// `content_block_start`.
    BlockStart {
        /// The block's index.
        index: usize,
        /// Its kind.
        kind: BlockKind,
    },
    /// `content_block_delta` with `text_delta`.
    TextDelta {
        /// The block's index.
        index: usize,
        /// The text.
        text: String,
    },
    /// `content_block_delta` with `input_json_delta`.
    InputJsonDelta {
        /// The block's index.
        index: usize,
        /// A piece of the tool input's JSON.
        partial_json: String,
    },
    /// Another delta kind, ignored.
    OtherDelta,
    /// `content_block_stop`.
    BlockStop {
        /// The block's index.
        index: usize,
    },
    /// `message_delta`.
    MessageDelta {
        /// Why the model stopped, when given.
        stop_reason: Option<String>,
    },
    /// `message_stop`.
    MessageStop,
    /// `ping`.
    Ping,
    /// An unknown event type (ignored, as the API's versioning policy asks).
    Unknown(String),
}

fn index_of(data: &Value) -> Result<usize, UpstreamError> {
    data.get("index")
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| UpstreamError::Protocol("a content block event has no index".into()))
}

fn str_field(value: &Value, field: &str) -> String {
    value
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Types a raw event (an `error` event becomes `Err`).
pub fn parse_event(raw: &RawEvent) -> Result<StreamEvent, UpstreamError> {
    let data: Value = serde_json::from_str(&raw.data)
        .map_err(|e| UpstreamError::Protocol(format!("event data is not JSON ({e})")))?;
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| raw.event.clone())
        .unwrap_or_default();
    Ok(match kind.as_str() {
        "message_start" => StreamEvent::MessageStart,
        "content_block_start" => {
            let index = index_of(&data)?;
            let block = data.get("content_block").cloned().unwrap_or(Value::Null);
            let kind = match block.get("type").and_then(Value::as_str) {
                Some("text") => BlockKind::Text,
                Some("tool_use") => BlockKind::ToolUse {
                    id: str_field(&block, "id"),
                    name: str_field(&block, "name"),
                },
                other => BlockKind::Other(other.unwrap_or_default().to_string()),
            };
            StreamEvent::BlockStart { index, kind }
        }
        "content_block_delta" => {
            let index = index_of(&data)?;
            let delta = data.get("delta").cloned().unwrap_or(Value::Null);
            match delta.get("type").and_then(Value::as_str) {
                Some("text_delta") => StreamEvent::TextDelta {
                    index,
                    text: str_field(&delta, "text"),
                },
                Some("input_json_delta") => StreamEvent::InputJsonDelta {
                    index,
                    partial_json: str_field(&delta, "partial_json"),
                },
                _ => StreamEvent::OtherDelta,
            }
        }
        "content_block_stop" => StreamEvent::BlockStop {
            index: index_of(&data)?,
        },
        "message_delta" => StreamEvent::MessageDelta {
            stop_reason: data
                .pointer("/delta/stop_reason")
                .and_then(Value::as_str)
                .map(String::from),
        },
        "message_stop" => StreamEvent::MessageStop,
        "ping" => StreamEvent::Ping,
        "error" => {
            let error = data.get("error").cloned().unwrap_or(Value::Null);
            return Err(UpstreamError::Api {
                kind: str_field(&error, "type"),
                message: str_field(&error, "message"),
            });
        }
        other => StreamEvent::Unknown(other.to_string()),
    })
}

/// The event stream of one model call.
pub struct MessageStream {
    response: reqwest::Response,
    parser: SseParser,
    pending: VecDeque<RawEvent>,
    stopped: bool,
}

impl MessageStream {
    /// The next event; `Ok(None)` after `message_stop`. A stream that ends before
    /// `message_stop` (or in the middle of an event) is [`UpstreamError::Broken`].
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, UpstreamError> {
        loop {
            if self.stopped {
                return Ok(None);
            }
            if let Some(raw) = self.pending.pop_front() {
                let event = parse_event(&raw)?;
                if event == StreamEvent::MessageStop {
                    self.stopped = true;
                }
                return Ok(Some(event));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.pending.extend(self.parser.push(&chunk)?),
                Ok(None) if self.parser.mid_event() => {
                    return Err(UpstreamError::Broken(
                        "the connection closed in the middle of an event".into(),
                    ))
                }
                Ok(None) => {
                    return Err(UpstreamError::Broken(
                        "the connection closed before the message was complete".into(),
                    ))
                }
                Err(e) => return Err(UpstreamError::Broken(describe(&e))),
            }
        }
    }
}

/// A reqwest error without its URL (the base URL is configuration, not for clients).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the response body was cut off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({detail})")
    }
}

/// The process-wide HTTP client for model calls (no overall timeout: streams can be long).
fn http_client() -> Result<reqwest::Client, UpstreamError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| UpstreamError::Connect(describe(&e)))?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// Settings for calling the Messages API.
#[derive(Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    model: String,
}

impl std::fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl AnthropicClient {
    /// A client for `base_url` (e.g. `https://api.anthropic.com`).
    pub fn new(
        base_url: &str,
        api_key: &str,
        model: &str,
    ) -> Result<AnthropicClient, UpstreamError> {
        Ok(AnthropicClient {
            http: http_client()?,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            model: model.to_string(),
        })
    }

    /// The API key (only to redact it from text that came from upstream).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The body of a streaming Messages API request.
    pub fn request_body(&self, system: &str, messages: &[Value], tools: &Value) -> Value {
        json!({
            "model": self.model,
            "max_tokens": MAX_TOKENS,
            "system": system,
            "messages": messages,
            "tools": tools,
            "stream": true,
        })
    }

    /// Sends a request built by [`AnthropicClient::request_body`]; answers the event stream,
    /// or the API's error for a non-success status.
    pub async fn stream(&self, body: &Value) -> Result<MessageStream, UpstreamError> {
        let mut key = reqwest::header::HeaderValue::from_str(&self.api_key).map_err(|_| {
            UpstreamError::Connect("the API key contains characters not allowed in a header".into())
        })?;
        // Sensitive values are redacted from reqwest's Debug output and never HPACK-indexed.
        key.set_sensitive(true);
        let response = self
            .http
            .post(format!("{}/v1/messages", self.base_url))
            .header("x-api-key", key)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("accept", "text/event-stream")
            .json(body)
            .send()
            .await
            .map_err(|e| UpstreamError::Connect(describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let message = error_message(response).await;
            return Err(UpstreamError::Status {
                status: status.as_u16(),
                message,
            });
        }
        Ok(MessageStream {
            response,
            parser: SseParser::default(),
            pending: VecDeque::new(),
            stopped: false,
        })
    }
}

/// The explanation in an error response (`{"error": {"message"}}`), or its status text.
async fn error_message(mut response: reqwest::Response) -> String {
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(String::from);
    let fallback = match status.as_u16() {
        401 => "the API key was rejected",
        403 => "the API key may not use this model",
        429 => "rate limited; try again later",
        529 => "the model API is overloaded; try again later",
        _ => status.canonical_reason().unwrap_or("request failed"),
    };
    match message {
        Some(m) if !m.is_empty() => m,
        _ => fallback.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"run_cell\",\"input\":{}}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"cell_id\\\": \"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";

    #[test]
    fn parses_byte_by_byte() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for b in STREAM.as_bytes() {
            for raw in parser.push(std::slice::from_ref(b)).unwrap_or_default() {
                events.push(parse_event(&raw).map_err(|e| e.to_string()));
            }
        }
        assert!(!parser.mid_event());
        assert_eq!(events.len(), 7);
        assert_eq!(
            events[1],
            Ok(StreamEvent::BlockStart {
                index: 0,
                kind: BlockKind::ToolUse {
                    id: "toolu_1".into(),
                    name: "run_cell".into()
                }
            })
        );
        assert_eq!(events[2], Ok(StreamEvent::Ping));
        assert_eq!(
            events[3],
            Ok(StreamEvent::InputJsonDelta {
                index: 0,
                partial_json: "{\"cell_id\": ".into()
            })
        );
        assert_eq!(
            events[5],
            Ok(StreamEvent::MessageDelta {
                stop_reason: Some("tool_use".into())
            })
        );
        assert_eq!(events[6], Ok(StreamEvent::MessageStop));
    }

    #[test]
    fn handles_crlf_comments_and_cuts() {
        let mut parser = SseParser::default();
        let events = parser
            .push(b": hello\r\nevent: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\ndata: {\"ty")
            .unwrap_or_default();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.as_deref(), Some("ping"));
        assert!(parser.mid_event());
    }

    #[test]
    fn error_events_are_errors() {
        let raw = RawEvent {
            event: Some("error".into()),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
        };
        assert_eq!(
            parse_event(&raw),
            Err(UpstreamError::Api {
                kind: "overloaded_error".into(),
                message: "Overloaded".into()
            })
        );
    }
}
