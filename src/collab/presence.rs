//! Presence: who has a notebook open and which cell each of them is in.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Avatar and cell-edge colours, told apart on light and dark backgrounds.
const PALETTE: [&str; 10] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324",
    "#469990", "#808000",
];

/// A user's colour: stable for a user id across sessions and servers (FNV-1a of the id).
pub fn color_for(user_id: &str) -> &'static str {
    let hash = user_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let index = usize::try_from(hash % PALETTE.len() as u64).unwrap_or(0);
    PALETTE[index]
}

/// One joined session as presence sees it.
#[derive(Debug, Clone)]
struct Entry {
    user_id: String,
    name: Option<String>,
    cell_id: Option<String>,
    /// When the focus last changed (a counter), so a user with several tabs shows the latest.
    focused_at: u64,
    /// Whether others were last told of a cursor of this session's.
    cursor_shown: bool,
}

/// The presence of a room's sessions.
#[derive(Debug, Default)]
pub struct Presence {
    sessions: BTreeMap<u64, Entry>,
    clock: u64,
}

impl Presence {
    /// A session joined.
    pub fn join(&mut self, session_id: u64, user_id: &str, name: Option<String>) {
        self.sessions.insert(
            session_id,
            Entry {
                user_id: user_id.to_string(),
                name,
                cell_id: None,
                focused_at: 0,
                cursor_shown: false,
            },
        );
    }

    /// A joined session's user id and display name.
    pub fn identity(&self, session_id: u64) -> Option<(&str, Option<&str>)> {
        self.sessions
            .get(&session_id)
            .map(|e| (e.user_id.as_str(), e.name.as_deref()))
    }

    /// Records whether others now see a cursor of the session's; answers whether they did.
    pub fn note_cursor(&mut self, session_id: u64, shown: bool) -> bool {
        self.sessions
            .get_mut(&session_id)
            .map(|e| std::mem::replace(&mut e.cursor_shown, shown))
            .unwrap_or(false)
    }

    /// A session left; true if it was present.
    pub fn leave(&mut self, session_id: u64) -> bool {
        self.sessions.remove(&session_id).is_some()
    }

    /// A session moved into a cell (or out of every cell); true if anything changed.
    pub fn focus(&mut self, session_id: u64, cell_id: Option<String>) -> bool {
        self.clock += 1;
        let clock = self.clock;
        match self.sessions.get_mut(&session_id) {
            Some(entry) if entry.cell_id != cell_id => {
                entry.cell_id = cell_id;
                entry.focused_at = clock;
                true
            }
            _ => false,
        }
    }

    /// Clears focus on a cell that is gone; true if any session was in it.
    pub fn cell_gone(&mut self, cell_id: &str) -> bool {
        let mut changed = false;
        for entry in self.sessions.values_mut() {
            if entry.cell_id.as_deref() == Some(cell_id) {
                entry.cell_id = None;
                changed = true;
            }
        }
        changed
    }

    /// The `presence` broadcast: one entry per user, in order of first join.
    pub fn message(&self) -> Value {
        let mut users: Vec<&Entry> = Vec::new();
        for entry in self.sessions.values() {
            match users.iter_mut().find(|u| u.user_id == entry.user_id) {
                Some(seen) if entry.focused_at > seen.focused_at => *seen = entry,
                Some(_) => {}
                None => users.push(entry),
            }
        }
        let users: Vec<Value> = users
            .into_iter()
            .map(|entry| {
                let mut user = json!({
                    "user_id": entry.user_id,
                    "color": color_for(&entry.user_id),
                });
                if let Some(name) = &entry.name {
                    user["name"] = json!(name);
                }
                if let Some(cell_id) = &entry.cell_id {
                    user["cell_id"] = json!(cell_id);
                }
                user
            })
            .collect();
        json!({"type": "presence", "users": users})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_user_with_latest_focus() {
        let mut presence = Presence::default();
        presence.join(1, "alice", Some("Alice".into()));
        presence.join(2, "alice", None);
        presence.join(3, "bob", None);
        assert!(presence.focus(2, Some("c1".into())));
        assert!(!presence.focus(2, Some("c1".into())));
        let users = presence.message()["users"].clone();
        assert_eq!(users.as_array().map(Vec::len), Some(2));
        assert_eq!(users[0]["cell_id"], "c1");
        assert_eq!(users[1]["user_id"], "bob");
        assert!(users[1].get("cell_id").is_none());
        assert_eq!(color_for("bob"), color_for("bob"));
        assert!(presence.cell_gone("c1"));
        assert!(presence.leave(3));
    }
}
