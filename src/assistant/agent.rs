//! The agentic loop: call the model, stream its text and tool calls out as [`ChatEvent`]s,
//! run the tools it asks for, send their results back, at most [`MAX_TURNS`] times.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::anthropic::{AnthropicClient, BlockKind, StreamEvent, UpstreamError};
use super::tools::{ToolOutcome, Toolbox};
use super::{redact, ChatEvent, ChatMessage, MAX_TURNS};

/// Why the loop stopped early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    /// The client went away; nothing more can be sent.
    #[error("client disconnected")]
    Disconnected,
    /// The model call failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

/// Sends events to the response body.
struct Sink {
    tx: mpsc::Sender<ChatEvent>,
    secret: String,
}

impl Sink {
    async fn send(&self, event: ChatEvent) -> Result<(), Stop> {
        let event = match event {
            ChatEvent::Error { error } => ChatEvent::Error {
                error: redact(&error, &self.secret),
            },
            other => other,
        };
        self.tx.send(event).await.map_err(|_| Stop::Disconnected)
    }
}

/// A content block of the model's answer as it streams in.
#[derive(Debug)]
enum Block {
    Text(String),
    Tool {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

/// One tool call the model asked for.
#[derive(Debug, Clone)]
struct ToolCall {
    id: String,
    name: String,
    /// The parsed input, or the raw text when it is not a JSON object.
    input: Result<Value, String>,
}

/// A complete model answer.
#[derive(Debug, Default)]
struct Answer {
    blocks: BTreeMap<usize, Block>,
    stop_reason: Option<String>,
}

impl Answer {
    fn tool_calls(&self) -> Vec<ToolCall> {
        self.blocks
            .values()
            .filter_map(|b| match b {
                Block::Tool { id, name, json } => Some(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    input: parse_input(json),
                }),
                _ => None,
            })
            .collect()
    }

    /// The answer as an assistant message's content (empty text blocks are not allowed).
    fn content(&self) -> Vec<Value> {
        self.blocks
            .values()
            .filter_map(|b| match b {
                Block::Text(text) if !text.is_empty() => {
                    Some(json!({"type": "text", "text": text}))
                }
                Block::Tool { id, name, json } => Some(json!({
                    "type": "tool_use",
                    "id": id,
                    "name": name,
                    "input": parse_input(json).unwrap_or_else(|_| json!({})),
                })),
                _ => None,
            })
            .collect()
    }
}

fn parse_input(json: &str) -> Result<Value, String> {
    if json.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(json) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(json.to_string()),
    }
}

/// What one chat did, logged when it ends (however it ends) without contents or keys.
struct RunLog {
    user_id: String,
    notebook_id: String,
    turns: usize,
    tools: Vec<String>,
    outcome: Option<String>,
}

impl Drop for RunLog {
    fn drop(&mut self) {
        log::info!(
            "chat on notebook {} for user {}: {} turn(s), tools [{}], {}",
            self.notebook_id,
            self.user_id,
            self.turns,
            self.tools.join(", "),
            self.outcome
                .as_deref()
                .unwrap_or("cancelled (client disconnected)")
        );
    }
}

/// One chat request's agent.
pub struct Agent {
    client: AnthropicClient,
    toolbox: Toolbox,
    system: String,
    user_id: String,
    notebook_id: String,
}

impl Agent {
    /// An agent calling `client` with `system` as its prompt and acting through `toolbox`.
    pub fn new(
        client: AnthropicClient,
        toolbox: Toolbox,
        system: String,
        user_id: &str,
        notebook_id: &str,
    ) -> Agent {
        Agent {
            client,
            toolbox,
            system,
            user_id: user_id.to_string(),
            notebook_id: notebook_id.to_string(),
        }
    }

    /// Runs the conversation to its end, sending events to `tx`; the last one is `done`
    /// unless the client went away.
    pub async fn run(self, messages: Vec<ChatMessage>, tx: mpsc::Sender<ChatEvent>) {
        let sink = Sink {
            tx,
            secret: self.client.api_key().to_string(),
        };
        let mut log = RunLog {
            user_id: self.user_id.clone(),
            notebook_id: self.notebook_id.clone(),
            turns: 0,
            tools: Vec::new(),
            outcome: None,
        };
        let result = self.converse(messages, &sink, &mut log).await;
        match result {
            Ok(()) => {}
            Err(Stop::Disconnected) => {
                log.outcome = Some("cancelled (client disconnected)".into());
                return;
            }
            Err(Stop::Upstream(e)) => {
                log.outcome = Some(format!("upstream error: {}", upstream_kind(&e)));
                let error = ChatEvent::Error {
                    error: e.to_string(),
                };
                if sink.send(error).await.is_err() {
                    return;
                }
            }
        }
        let _ = sink.send(ChatEvent::Done).await;
    }

    async fn converse(
        &self,
        messages: Vec<ChatMessage>,
        sink: &Sink,
        log: &mut RunLog,
    ) -> Result<(), Stop> {
        let tools = super::tools::definitions();
        let mut conversation: Vec<Value> = messages
            .into_iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        for turn in 1..=MAX_TURNS {
            log.turns = turn;
            sink.send(ChatEvent::TurnStart {
                turn,
                max_turns: MAX_TURNS,
            })
            .await?;
            let body = self
                .client
                .request_body(&self.system, &conversation, &tools);
            let answer = self.answer(&body, sink).await?;
            let calls = answer.tool_calls();
            let stop_reason = answer.stop_reason.clone().unwrap_or_default();
            if stop_reason != "tool_use" || calls.is_empty() {
                log.outcome = Some(format!("completed ({stop_reason})"));
                return Ok(());
            }
            conversation.push(json!({"role": "assistant", "content": answer.content()}));
            if turn == MAX_TURNS {
                for call in calls {
                    sink.send(ChatEvent::ToolResult {
                        tool_id: call.id,
                        tool_name: call.name,
                        result: json!({"error": "not run: the assistant reached its turn limit"}),
                        is_error: true,
                    })
                    .await?;
                }
                log.outcome = Some("stopped at the turn limit".into());
                sink.send(ChatEvent::Error {
                    error: format!(
                        "The assistant stopped after reaching its limit of {MAX_TURNS} turns."
                    ),
                })
                .await?;
                return Ok(());
            }
            let mut results = Vec::new();
            for call in calls {
                sink.send(ChatEvent::ToolExecute {
                    tool_id: call.id.clone(),
                    tool_name: call.name.clone(),
                    tool_input: match &call.input {
                        Ok(v) => v.clone(),
                        Err(raw) => Value::String(raw.clone()),
                    },
                })
                .await?;
                log.tools.push(call.name.clone());
                let outcome = self.run_tool(&call).await;
                sink.send(ChatEvent::ToolResult {
                    tool_id: call.id.clone(),
                    tool_name: call.name.clone(),
                    result: outcome.result.clone(),
                    is_error: outcome.is_error,
                })
                .await?;
                results.push(json!({
                    "type": "tool_result",
                    "tool_use_id": call.id,
                    "content": outcome.result.to_string(),
                    "is_error": outcome.is_error,
                }));
            }
            conversation.push(json!({"role": "user", "content": results}));
        }
        Ok(())
    }

    /// Runs a tool in its own task, so a client leaving mid-call cannot cut the notebook
    /// change from its audit record.
    async fn run_tool(&self, call: &ToolCall) -> ToolOutcome {
        let toolbox = self.toolbox.clone();
        let (name, input) = (call.name.clone(), call.input.clone());
        let task = actix_web::rt::spawn(async move { toolbox.execute(&name, input).await });
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                log::error!("tool {} failed: {e}", call.name);
                ToolOutcome {
                    result: json!({"error": "the tool failed unexpectedly"}),
                    is_error: true,
                }
            }
        }
    }

    /// One model call, streaming its text and tool calls out as they arrive.
    async fn answer(&self, body: &Value, sink: &Sink) -> Result<Answer, Stop> {
        let mut stream = self.client.stream(body).await?;
        let mut answer = Answer::default();
        while let Some(event) = stream.next().await? {
            match event {
                StreamEvent::BlockStart { index, kind } => {
                    let block = match kind {
                        BlockKind::Text => {
                            sink.send(ChatEvent::TextStart).await?;
                            Block::Text(String::new())
                        }
                        BlockKind::ToolUse { id, name } => {
                            sink.send(ChatEvent::ToolStart {
                                tool_id: id.clone(),
                                tool_name: name.clone(),
                            })
                            .await?;
                            Block::Tool {
                                id,
                                name,
                                json: String::new(),
                            }
                        }
                        BlockKind::Other(_) => Block::Other,
                    };
                    answer.blocks.insert(index, block);
                }
                StreamEvent::TextDelta { index, text } => {
                    if let Some(Block::Text(buf)) = answer.blocks.get_mut(&index) {
                        buf.push_str(&text);
                        sink.send(ChatEvent::TextDelta { text }).await?;
                    }
                }
                StreamEvent::InputJsonDelta {
                    index,
                    partial_json,
                } => {
                    if let Some(Block::Tool { json, .. }) = answer.blocks.get_mut(&index) {
                        json.push_str(&partial_json);
                    }
                }
                StreamEvent::BlockStop { index } => {
                    if matches!(
                        answer.blocks.get(&index),
                        Some(Block::Text(_) | Block::Tool { .. })
                    ) {
                        sink.send(ChatEvent::ContentBlockStop).await?;
                    }
                }
                StreamEvent::MessageDelta { stop_reason } => {
                    if stop_reason.is_some() {
                        answer.stop_reason = stop_reason;
                    }
                }
                StreamEvent::MessageStart
                | StreamEvent::OtherDelta
                | StreamEvent::MessageStop
                | StreamEvent::Ping
                | StreamEvent::Unknown(_) => {}
            }
        }
        Ok(answer)
    }
}

fn upstream_kind(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Connect(_) => "unreachable".into(),
        UpstreamError::Status { status, .. } => format!("status {status}"),
        UpstreamError::Broken(_) => "stream broken".into(),
        UpstreamError::Api { kind, .. } => format!("api error {kind}"),
        UpstreamError::Protocol(_) => "protocol".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_messages() {
        let mut answer = Answer::default();
        answer.blocks.insert(0, Block::Text(String::new()));
        answer.blocks.insert(
            1,
            Block::Tool {
                id: "t1".into(),
                name: "run_cell".into(),
                json: "{\"cell_id\": \"c\"}".into(),
            },
        );
        answer.blocks.insert(
            2,
            Block::Tool {
                id: "t2".into(),
                name: "get_notebook_state".into(),
                json: String::new(),
            },
        );
        answer.blocks.insert(
            3,
            Block::Tool {
                id: "t3".into(),
                name: "create_cell".into(),
                json: "{\"type\": ".into(),
            },
        );
        let content = answer.content();
        assert_eq!(content.len(), 3, "the empty text block is dropped");
        assert_eq!(content[0]["input"], json!({"cell_id": "c"}));
        assert_eq!(content[1]["input"], json!({}));
        assert_eq!(content[2]["input"], json!({}));
        let calls = answer.tool_calls();
        assert!(calls[2].input.is_err());
    }
}
