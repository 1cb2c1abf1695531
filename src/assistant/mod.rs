//! The AI assistant: a chat about one notebook, streamed as Server-Sent Events, in which an
//! Anthropic model reads and changes the notebook through tools executed by its room.
//!
//! `anthropic` speaks the Messages API (streaming), `prompt` describes the notebook to the
//! model, `tools` defines and runs the tools, `agent` runs the tool loop and emits [`ChatEvent`]s,
//! and [`SseBody`] turns those events into the response body.

pub mod agent;
pub mod anthropic;
pub mod prompt;
pub mod tools;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Most model calls one chat request makes.
pub const MAX_TURNS: usize = 10;

/// One message of the conversation the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Validates a chat request body `{"messages":[{"role","content"}]}`; the error says what is wrong.
pub fn parse_messages(body: &Value) -> Result<Vec<ChatMessage>, String> {
    let list = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("'messages' must be a list of {\"role\", \"content\"} objects")?;
    if list.is_empty() {
        return Err("'messages' must not be empty".into());
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str);
            let role = match role {
                Some(r @ ("user" | "assistant")) => r.to_string(),
                _ => return Err(format!("messages[{i}].role must be 'user' or 'assistant'")),
            };
            let content = m
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("messages[{i}].content must be a string"))?;
            if content.trim().is_empty() {
                return Err(format!("messages[{i}].content must not be empty"));
            }
            Ok(ChatMessage {
                role,
                content: content.to_string(),
            })
        })
        .collect()
}

/// An event of the chat stream, sent as `data: {"event": ..., "data": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A model call starts (1-based).
    TurnStart {
        /// This turn's number.
        turn: usize,
        /// The limit.
        max_turns: usize,
    },
    /// A text block starts.
    TextStart,
    /// More text of the current block.
    TextDelta {
        /// The text to append.
        text: String,
    },
    /// The model starts a tool call (its input streams next).
    ToolStart {
        /// The model's id for the call.
        tool_id: String,
        /// The tool.
        tool_name: String,
    },
    /// A content block (text or tool call) is complete.
    ContentBlockStop,
    /// A tool is about to run with this input.
    ToolExecute {
        /// The model's id for the call.
        tool_id: String,
        /// The tool.
        tool_name: String,
        /// The input the model gave.
        tool_input: Value,
    },
    /// A tool finished.
    ToolResult {
        /// The model's id for the call.
        tool_id: String,
        /// The tool.
        tool_name: String,
        /// What it returned (or `{"error": ...}`).
        result: Value,
        /// Whether it failed.
        is_error: bool,
    },
    /// Something went wrong; the stream ends after `done`.
    Error {
        /// What happened (never contains the API key).
        error: String,
    },
    /// The last event.
    Done,
}

impl ChatEvent {
    /// The event's wire name.
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::TurnStart { .. } => "turn_start",
            ChatEvent::TextStart => "text_start",
            ChatEvent::TextDelta { .. } => "text_delta",
            ChatEvent::ToolStart { .. } => "tool_start",
            ChatEvent::ContentBlockStop => "content_block_stop",
            ChatEvent::ToolExecute { .. } => "tool_execute",
            ChatEvent::ToolResult { .. } => "tool_result",
            ChatEvent::Error { .. } => "error",
            ChatEvent::Done => "done",
        }
    }

    /// `{"event": name, "data": {...}}`.
    pub fn to_json(&self) -> Value {
        let data = match self {
            ChatEvent::TurnStart { turn, max_turns } => {
                json!({"turn": turn, "max_turns": max_turns})
            }
            ChatEvent::TextStart | ChatEvent::ContentBlockStop | ChatEvent::Done => json!({}),
            ChatEvent::TextDelta { text } => json!({ "text": text }),
            ChatEvent::ToolStart { tool_id, tool_name } => {
                json!({"tool_id": tool_id, "tool_name": tool_name})
            }
            ChatEvent::ToolExecute {
                tool_id,
                tool_name,
                tool_input,
            } => json!({"tool_id": tool_id, "tool_name": tool_name, "tool_input": tool_input}),
            ChatEvent::ToolResult {
                tool_id,
                tool_name,
                result,
                is_error,
            } => json!({
                "tool_id": tool_id, "tool_name": tool_name, "result": result, "is_error": is_error,
            }),
            ChatEvent::Error { error } => json!({ "error": error }),
        };
        json!({"event": self.name(), "data": data})
    }

    /// The SSE frame: `data: {...}\n\n`.
    pub fn to_sse(&self) -> Bytes {
        Bytes::from(format!("data: {}\n\n", self.to_json()))
    }
}

/// Replaces every occurrence of `secret` in `text` (a no-op for an empty secret).
pub fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "[redacted]")
    }
}

/// How long the body may stay silent before it sends an SSE comment. Besides keeping proxies
/// from timing the stream out, the write is how a vanished client is noticed (the server only
/// learns of a closed connection when writing to it fails).
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// The response body of a chat: frames from the agent task, which is aborted when the body
/// is dropped (the client went away), so the upstream request stops with it.
pub struct SseBody {
    rx: mpsc::Receiver<ChatEvent>,
    task: tokio::task::JoinHandle<()>,
    keep_alive: Pin<Box<tokio::time::Sleep>>,
}

impl SseBody {
    /// A body reading `rx`, owning the task that feeds it.
    pub fn new(rx: mpsc::Receiver<ChatEvent>, task: tokio::task::JoinHandle<()>) -> SseBody {
        SseBody {
            rx,
            task,
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        }
    }
}

impl futures_util::Stream for SseBody {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let frame = match self.rx.poll_recv(cx) {
            Poll::Ready(Some(event)) => event.to_sse(),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => match self.keep_alive.as_mut().poll(cx) {
                Poll::Ready(()) => Bytes::from_static(b": keep-alive\n\n"),
                Poll::Pending => return Poll::Pending,
            },
        };
        let next = tokio::time::Instant::now() + KEEP_ALIVE;
        self.keep_alive.as_mut().reset(next);
        Poll::Ready(Some(Ok(frame)))
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_messages() {
        let ok = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(parse_messages(&ok).map(|m| m.len()), Ok(1));
        for bad in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"role": "system", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": 3}]}),
            json!({"messages": [{"role": "user"}]}),
            json!({"messages": "hi"}),
        ] {
            assert!(parse_messages(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_events() {
        let frame = ChatEvent::TextDelta {
            text: "a\nb".into(),
        }
        .to_sse();
        assert_eq!(
            &frame[..],
            b"data: {\"data\":{\"text\":\"a\\nb\"},\"event\":\"text_delta\"}\n\n"
        );
        assert_eq!(redact("key sk-1 here", "sk-1"), "key [redacted] here");
    }
}
