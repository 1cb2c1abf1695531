//! JSON Schemas of the messages that do not travel as REST bodies: the WebSocket messages of
//! `GET /api/ws/notebooks/{id}` both ways, and the frames of the chat's event stream.
//!
//! The server builds most of these messages with `json!`, so these types describe that JSON;
//! the tests below (and tests/openapi.rs, with real sessions) check that the real messages
//! read back into them and serialize to the very same JSON, so a field the server sends but
//! the schema lacks (or gets wrong) fails a test.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::notebook::cell::{Cell, CellStatus};

/// A message the server sends on a notebook's WebSocket. Room broadcasts carry `seq`, the
/// room's event counter; replies to the session itself (`authenticated`, `auth_refreshed`,
/// `error`) and relayed cursors do not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsServerMessage {
    /// The `authenticate` message was accepted and the session joined the notebook.
    Authenticated {
        /// The token's subject.
        user_id: String,
    },
    /// A `refresh_auth` token was accepted.
    AuthRefreshed {
        /// When the new token expires (Unix seconds).
        expires_at: i64,
    },
    /// A message was refused (the session may close after it).
    Error {
        /// What was wrong.
        message: String,
    },
    /// A cell's status changed.
    CellStatus {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// Its new status.
        status: CellStatus,
        /// Room event counter.
        seq: u64,
    },
    /// A running cell printed to stdout or stderr.
    CellStdout {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The text to append.
        data: String,
        /// Room event counter.
        seq: u64,
    },
    /// A running cell produced a rich output.
    CellOutput {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// `{"mime_type", "data", "metadata"}`.
        output: Value,
        /// Room event counter.
        seq: u64,
    },
    /// A cell's run failed.
    CellError {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The error text.
        error: String,
        /// Room event counter.
        seq: u64,
    },
    /// A cell changed (code, result name, analysis); the whole cell follows.
    CellUpdated {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The cell as `GET /api/notebooks/{id}` shows it.
        cell: Cell,
        /// Room event counter.
        seq: u64,
    },
    /// A cell was added at `index`.
    CellCreated {
        /// The new cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The cell.
        cell: Cell,
        /// Its 0-based position.
        index: usize,
        /// Room event counter.
        seq: u64,
    },
    /// A cell was deleted.
    CellDeleted {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// Room event counter.
        seq: u64,
    },
    /// A cell moved to `index`.
    CellMoved {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// Its new 0-based position.
        index: usize,
        /// Room event counter.
        seq: u64,
    },
    /// The notebook was renamed or its lazy mode changed.
    NotebookUpdated {
        /// The notebook's name.
        name: String,
        /// Lazy mode (sent when it changed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lazy: Option<bool>,
        /// Room event counter.
        seq: u64,
    },
    /// The notebook was deleted; the socket closes.
    NotebookDeleted {
        /// Room event counter.
        seq: u64,
    },
    /// Who is in the notebook, one entry per user.
    Presence {
        /// The users, in order of first join.
        users: Vec<PresenceUser>,
        /// Room event counter.
        seq: u64,
    },
    /// Another session's selection in a cell (`cellId: null`: it left every cell).
    Cursor {
        /// The room's id of that session (a user may have several tabs).
        session: u64,
        /// Its user.
        user_id: String,
        /// The user's colour (CSS).
        color: String,
        /// The user's display name, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The cell, or null.
        #[serde(rename = "cellId")]
        cell_id: Option<String>,
        /// Where the selection starts (a Yjs relative position); absent with `cellId: null`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anchor: Option<Value>,
        /// Where it ends (the caret); absent with `cellId: null`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<Value>,
    },
    /// A Yjs v1 update to a cell's text.
    Yjs {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The update, base64.
        update: String,
        /// Room event counter.
        seq: u64,
    },
    /// Progress of a package install (`POST /api/notebooks/{id}/packages`).
    PackageInstall {
        /// The normalized package name.
        name: String,
        /// The version specifiers asked for, if any.
        version: Option<String>,
        /// `installing`, `installed` or `failed`.
        state: PackageState,
        /// Why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// A line of pip's output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        line: Option<String>,
        /// Room event counter.
        seq: u64,
    },
    /// The kernel's variables after a run.
    Variables {
        /// The variables, sorted by name.
        variables: Vec<Variable>,
        /// Room event counter.
        seq: u64,
    },
}

/// One user in a `presence` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PresenceUser {
    /// The user.
    pub user_id: String,
    /// Their colour (CSS).
    pub color: String,
    /// Their display name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The cell they are in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_id: Option<String>,
}

/// Where a package install stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageState {
    /// Queued or running.
    Installing,
    /// Done.
    Installed,
    /// pip failed.
    Failed,
}

/// A notebook package, as `POST /api/notebooks/{id}/packages` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PackageEntry {
    /// The normalized package name.
    pub name: String,
    /// The version specifiers asked for, if any.
    pub version: Option<String>,
    /// Where its install stands.
    pub state: PackageState,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A variable of the kernel's namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Variable {
    /// Its name.
    pub name: String,
    /// Its Python type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// A short rendering of its value.
    pub summary: String,
    /// The cell that defines it.
    pub cell_id: String,
}

/// A message a client sends on a notebook's WebSocket; the first must be `authenticate`.
/// The server reads these with `crate::ws::protocol::ClientMessage`, whose shape this is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WsClientMessage {
    /// The first message: prove who you are.
    Authenticate {
        /// A session JWT.
        token: String,
    },
    /// Run a cell and its descendants (editors and owners).
    RunCell {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
    },
    /// Interrupt the running cell.
    Interrupt {},
    /// The cursor moved into a cell, or out of every cell (`null`).
    Focus {
        /// The cell, or null.
        #[serde(rename = "cellId", default)]
        cell_id: Option<String>,
    },
    /// The selection in a cell's text (Yjs relative positions), or `cellId: null` when it
    /// left the cell (editors and owners).
    Cursor {
        /// The cell, or null.
        #[serde(rename = "cellId", default)]
        cell_id: Option<String>,
        /// Where the selection starts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anchor: Option<Value>,
        /// Where it ends (the caret).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        head: Option<Value>,
    },
    /// Replace the session's token with a fresher one of the same user.
    RefreshAuth {
        /// The new JWT.
        token: String,
    },
    /// A Yjs v1 update to a cell's text (editors and owners).
    Yjs {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: String,
        /// The update, base64.
        update: String,
    },
}

/// A frame of the chat's event stream (`POST /api/chat/{notebook_id}`), sent as
/// `data: <this JSON>\n\n`; the stream ends after `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum ChatFrame {
    /// A model call starts (1-based).
    TurnStart {
        /// This turn's number.
        turn: usize,
        /// The limit.
        max_turns: usize,
    },
    /// A text block starts.
    TextStart {},
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
    ContentBlockStop {},
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
    /// Something went wrong; `done` follows.
    Error {
        /// What happened.
        error: String,
    },
    /// The last frame.
    Done {},
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;
    use crate::assistant::ChatEvent;

    /// `value` reads as a `T` that serializes back to exactly `value`.
    fn round_trips<T: DeserializeOwned + Serialize>(value: &Value) {
        let parsed: T = match serde_json::from_value(value.clone()) {
            Ok(parsed) => parsed,
            Err(e) => panic!("{value} does not match the schema: {e}"),
        };
        let back = serde_json::to_value(&parsed).expect("serializes");
        assert_eq!(&back, value, "the schema loses or changes fields");
    }

    #[test]
    fn every_chat_event_matches_chat_frame() {
        let events = [
            ChatEvent::TurnStart {
                turn: 1,
                max_turns: 10,
            },
            ChatEvent::TextStart,
            ChatEvent::TextDelta { text: "hi".into() },
            ChatEvent::ToolStart {
                tool_id: "t1".into(),
                tool_name: "run_cell".into(),
            },
            ChatEvent::ContentBlockStop,
            ChatEvent::ToolExecute {
                tool_id: "t1".into(),
                tool_name: "run_cell".into(),
                tool_input: json!({"cell_id": "c"}),
            },
            ChatEvent::ToolResult {
                tool_id: "t1".into(),
                tool_name: "run_cell".into(),
                result: json!({"status": "success"}),
                is_error: false,
            },
            ChatEvent::Error {
                error: "boom".into(),
            },
            ChatEvent::Done,
        ];
        for event in &events {
            round_trips::<ChatFrame>(&event.to_json());
        }
    }

    #[test]
    fn session_replies_match_ws_server_message() {
        use crate::ws::protocol;
        for text in [
            protocol::error("nope"),
            protocol::authenticated("alice"),
            protocol::auth_refreshed(1_700_000_000),
        ] {
            let value: Value = serde_json::from_str(&text).expect("json");
            round_trips::<WsServerMessage>(&value);
        }
    }

    #[test]
    fn cursor_events_match_ws_server_message() {
        use crate::collab::cursor::{event, CursorOwner, Selection};
        let owner = CursorOwner {
            session_id: 3,
            user_id: "alice",
            name: Some("Alice"),
        };
        round_trips::<WsServerMessage>(&event(&owner, None));
        let anchor = json!({"item": {"client": 1, "clock": 2}, "assoc": 0});
        let head = json!({"tname": "code", "assoc": -1});
        let selection = Selection::parse(&anchor, &head).expect("selection");
        round_trips::<WsServerMessage>(&event(&owner, Some(("c1", &selection))));
    }

    #[test]
    fn client_examples_read_as_the_server_reads_them() {
        let examples = [
            json!({"type": "authenticate", "token": "t"}),
            json!({"type": "run_cell", "cellId": "c1"}),
            json!({"type": "interrupt"}),
            json!({"type": "focus", "cellId": null}),
            json!({"type": "cursor", "cellId": "c1", "anchor": {"assoc": 0}, "head": {"assoc": 0}}),
            json!({"type": "refresh_auth", "token": "t"}),
            json!({"type": "yjs", "cellId": "c1", "update": "AAA="}),
        ];
        for example in &examples {
            let ours: WsClientMessage =
                serde_json::from_value(example.clone()).expect("matches WsClientMessage");
            let text = serde_json::to_string(&ours).expect("serializes");
            assert!(
                crate::ws::protocol::parse(&text).is_ok(),
                "the server refuses {text}"
            );
        }
    }
}
