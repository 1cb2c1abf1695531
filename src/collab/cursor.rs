//! Remote cursors: where in a cell's text each session's selection is.
//!
//! A client reports its selection as two Yjs relative positions (`Y.relativePositionToJSON`),
//! which stay put while others type. The room relays them to the other sessions with the
//! sender's identity; nothing is stored. A position is checked and rebuilt field by field
//! before it is relayed, because every receiving editor resolves it against its document:
//! a hostile one must not name another shared type (`tname` would create it) or carry
//! numbers JavaScript cannot hold exactly.

use serde::Deserialize;
use serde_json::{json, Value};

use super::yjs::TEXT_NAME;

/// Largest integer JavaScript holds exactly (2^53 - 1): Yjs client ids and clocks fit in it.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a cursor was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CursorError {
    /// Not the shape `Y.relativePositionToJSON` produces for a cell's text.
    #[error("invalid cursor: {0}")]
    Invalid(String),
}

/// A Yjs item id as JSON.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct ItemId {
    client: u64,
    clock: u64,
}

/// `Y.relativePositionToJSON` of a position in a cell's root text.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RelativePosition {
    /// Only the cell's own text: a relative position at the end of a root type names it.
    tname: Option<String>,
    /// The item the position sticks to.
    item: Option<ItemId>,
    /// Which side it sticks to.
    assoc: Option<i64>,
}

impl RelativePosition {
    fn parse(value: &Value) -> Result<RelativePosition, CursorError> {
        let pos: RelativePosition = serde_json::from_value(value.clone())
            .map_err(|e| CursorError::Invalid(e.to_string()))?;
        if let Some(name) = &pos.tname {
            if name != TEXT_NAME {
                return Err(CursorError::Invalid(format!(
                    "a cursor may only point into '{TEXT_NAME}'"
                )));
            }
        }
        if pos.tname.is_none() && pos.item.is_none() {
            return Err(CursorError::Invalid("needs an item or tname".into()));
        }
        if let Some(item) = pos.item {
            if item.client > MAX_SAFE_INTEGER || item.clock > MAX_SAFE_INTEGER {
                return Err(CursorError::Invalid("item id out of range".into()));
            }
        }
        Ok(pos)
    }

    fn to_json(&self) -> Value {
        let mut out = json!({});
        if let Some(name) = &self.tname {
            out["tname"] = json!(name);
        }
        if let Some(item) = self.item {
            out["item"] = json!({"client": item.client, "clock": item.clock});
        }
        // Yjs only looks at the sign (>= 0 sticks right, < 0 left).
        out["assoc"] = json!(if self.assoc.unwrap_or(0) < 0 { -1 } else { 0 });
        out
    }
}

/// A checked selection: anchor and head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    anchor: RelativePosition,
    head: RelativePosition,
}

impl Selection {
    /// Checks a client's `anchor` and `head`.
    pub fn parse(anchor: &Value, head: &Value) -> Result<Selection, CursorError> {
        Ok(Selection {
            anchor: RelativePosition::parse(anchor)?,
            head: RelativePosition::parse(head)?,
        })
    }
}

/// Who a relayed cursor belongs to.
pub struct CursorOwner<'a> {
    /// The room's session id (one user may have several tabs, each its own cursor).
    pub session_id: u64,
    /// The user.
    pub user_id: &'a str,
    /// Their display name, when the token had one.
    pub name: Option<&'a str>,
}

/// The `cursor` event: a session's selection in a cell, or (`None`) that it left every cell.
pub fn event(owner: &CursorOwner, at: Option<(&str, &Selection)>) -> Value {
    let mut event = json!({
        "type": "cursor",
        "session": owner.session_id,
        "user_id": owner.user_id,
        "color": super::presence::color_for(owner.user_id),
        "cellId": Value::Null,
    });
    if let Some(name) = owner.name {
        event["name"] = json!(name);
    }
    if let Some((cell_id, selection)) = at {
        event["cellId"] = json!(cell_id);
        event["anchor"] = selection.anchor.to_json();
        event["head"] = selection.head.to_json();
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_yjs_produces_and_rebuilds_it() {
        let anchor = json!({"item": {"client": 12345, "clock": 7}, "assoc": 0});
        let head = json!({"tname": "code", "assoc": -1});
        let selection = Selection::parse(&anchor, &head).unwrap();
        let owner = CursorOwner {
            session_id: 3,
            user_id: "alice",
            name: Some("Alice"),
        };
        let event = event(&owner, Some(("c1", &selection)));
        assert_eq!(event["anchor"], anchor);
        assert_eq!(event["head"], head);
        assert_eq!(event["session"], 3);
        assert_eq!(event["name"], "Alice");
        assert_eq!(event["color"], super::super::presence::color_for("alice"));
    }

    #[test]
    fn refuses_other_types_extra_fields_and_unsafe_numbers() {
        let ok = json!({"tname": "code"});
        for bad in [
            json!({"tname": "__proto__"}),
            json!({"type": {"client": 1, "clock": 2}}),
            json!({"item": {"client": 1u64 << 60, "clock": 0}}),
            json!({"item": {"client": -1, "clock": 0}}),
            json!({"item": {"client": 1, "clock": 0}, "evil": true}),
            json!({}),
            json!("code"),
            json!(null),
        ] {
            assert!(Selection::parse(&bad, &ok).is_err(), "{bad}");
            assert!(Selection::parse(&ok, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn leaving_names_no_cell() {
        let owner = CursorOwner {
            session_id: 1,
            user_id: "bob",
            name: None,
        };
        let event = event(&owner, None);
        assert_eq!(event["cellId"], Value::Null);
        assert!(event.get("name").is_none() && event.get("anchor").is_none());
    }
}
