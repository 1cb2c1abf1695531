//! The WebSocket messages clients send, and the replies the session itself sends.

use serde::Deserialize;
use serde_json::{json, Value};

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message: prove who you are.
    Authenticate {
        /// A session JWT.
        token: Option<String>,
    },
    /// Run a cell and its descendants.
    RunCell {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: Option<String>,
    },
    /// Interrupt the running cell.
    Interrupt,
    /// The client's cursor moved into a cell (`cellId`), or out of every cell (`null`).
    Focus {
        /// The cell, or None.
        #[serde(rename = "cellId", default)]
        cell_id: Option<String>,
    },
    /// The client's selection in a cell's text (Yjs relative positions), or `cellId: null`
    /// when it left the cell.
    Cursor {
        /// The cell, or None.
        #[serde(rename = "cellId", default)]
        cell_id: Option<String>,
        /// Where the selection starts.
        #[serde(default)]
        anchor: Option<Value>,
        /// Where it ends (the caret).
        #[serde(default)]
        head: Option<Value>,
    },
    /// Replace the session's token with a fresher one (same user).
    RefreshAuth {
        /// The new JWT.
        token: Option<String>,
    },
    /// A Yjs v1 update to a cell's text.
    Yjs {
        /// The cell.
        #[serde(rename = "cellId")]
        cell_id: Option<String>,
        /// The update, base64.
        update: Option<String>,
    },
}

/// Parses a client frame; the error text says what was wrong.
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("malformed message: {e}"))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or("malformed message: missing \"type\"")?
        .to_string();
    serde_json::from_value(value).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            format!("unknown message type '{kind}'")
        } else {
            format!("invalid '{kind}' message: {e}")
        }
    })
}

/// `{"type":"error","message":...}`
pub fn error(message: &str) -> String {
    json!({"type": "error", "message": message}).to_string()
}

/// `{"type":"authenticated","user_id":...}`
pub fn authenticated(user_id: &str) -> String {
    json!({"type": "authenticated", "user_id": user_id}).to_string()
}

/// `{"type":"auth_refreshed"}`
pub fn auth_refreshed(expires_at: i64) -> String {
    json!({"type": "auth_refreshed", "expires_at": expires_at}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains() {
        assert!(matches!(
            parse(r#"{"type":"run_cell","cellId":"c1"}"#),
            Ok(ClientMessage::RunCell { cell_id: Some(id) }) if id == "c1"
        ));
        assert!(matches!(
            parse(r#"{"type":"interrupt"}"#),
            Ok(ClientMessage::Interrupt)
        ));
        assert!(parse("{nope").unwrap_err().starts_with("malformed"));
        assert_eq!(
            parse(r#"{"type":"dance"}"#).unwrap_err(),
            "unknown message type 'dance'"
        );
        assert!(parse(r#"{"cellId":"x"}"#).unwrap_err().contains("type"));
    }
}
