//! The notebook's variable table: what the kernel last reported about the names cells define.
//!
//! The kernel's answers are untrusted: only names that were asked for are kept, and the type
//! and summary texts are cut to fixed lengths here, whatever the driver sent.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

/// Longest type name kept (characters).
pub const MAX_TYPE_CHARS: usize = 100;
/// Longest summary kept (characters).
pub const MAX_SUMMARY_CHARS: usize = 120;

#[derive(Debug, Clone)]
struct Entry {
    type_name: String,
    summary: String,
    /// The cell whose run reported it.
    cell_id: String,
}

/// The latest known variables of a notebook's kernel.
#[derive(Debug, Default)]
pub struct Variables {
    entries: BTreeMap<String, Entry>,
    /// Refreshes are numbered; an answer older than the last one applied for its cell, or
    /// than the last time the values were all gone, is dropped.
    next: u64,
    applied: HashMap<String, u64>,
    floor: u64,
    /// Cells that ran since the refresh in flight was sent (one request at a time, so a run of
    /// many quick cells does not pile up requests in the kernel).
    pending: Vec<String>,
    /// The cells of `pending`, so noting a run does not scan it.
    pending_set: HashSet<String>,
    in_flight: bool,
}

impl Variables {
    /// Notes that `cell_id` ran and needs a refresh; true when none is in flight, so the
    /// caller should start one now with [`Variables::start_refresh`].
    pub fn ran(&mut self, cell_id: &str) -> bool {
        if self.pending_set.insert(cell_id.to_string()) {
            self.pending.push(cell_id.to_string());
        }
        !self.in_flight
    }

    /// Takes the cells waiting for a refresh and numbers the refresh (`None` if none wait).
    pub fn start_refresh(&mut self) -> Option<(u64, Vec<String>)> {
        if self.pending.is_empty() || self.in_flight {
            return None;
        }
        self.in_flight = true;
        self.pending_set.clear();
        Some((self.begin(), std::mem::take(&mut self.pending)))
    }

    /// The refresh in flight ended (answered or not).
    pub fn refresh_ended(&mut self) {
        self.in_flight = false;
    }

    /// Starts a refresh of a cell's names; the number identifies its answer.
    pub fn begin(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Applies the kernel's answer to refresh `generation` of `cell_id`, which asked about
    /// `names` (the cell's current definitions): names the answer lists are set, the others
    /// removed. False (nothing changed) if the answer is outdated or has no list.
    pub fn apply(
        &mut self,
        cell_id: &str,
        generation: u64,
        names: &[String],
        answer: &Value,
    ) -> bool {
        self.apply_all(&[(cell_id, names.to_vec())], generation, answer)
    }

    /// [`Self::apply`] for every cell of one refresh, looking each name up in the answer
    /// once (a refresh may cover thousands of cells).
    pub fn apply_all(
        &mut self,
        cells: &[(&str, Vec<String>)],
        generation: u64,
        answer: &Value,
    ) -> bool {
        // A busy or failed kernel answers without a list: keep what is known.
        let Some(listed) = answer.get("variables").and_then(Value::as_array) else {
            return false;
        };
        let by_name: HashMap<&str, &Value> = listed
            .iter()
            .filter_map(|item| Some((item.get("name")?.as_str()?, item)))
            .collect();
        let mut changed = false;
        for (cell_id, names) in cells {
            let outdated = generation <= self.floor
                || self.applied.get(*cell_id).is_some_and(|g| *g > generation);
            if outdated {
                continue;
            }
            changed = true;
            self.applied.insert(cell_id.to_string(), generation);
            for name in names {
                self.entries.remove(name);
                let Some(item) = by_name.get(name.as_str()) else {
                    continue;
                };
                let text = |key: &str, max: usize| {
                    cut(item.get(key).and_then(Value::as_str).unwrap_or(""), max)
                };
                self.entries.insert(
                    name.to_string(),
                    Entry {
                        type_name: text("type", MAX_TYPE_CHARS),
                        summary: text("summary", MAX_SUMMARY_CHARS),
                        cell_id: cell_id.to_string(),
                    },
                );
            }
        }
        changed
    }

    /// Removes names deleted from the kernel; true if any was listed.
    pub fn forget(&mut self, names: &[String]) -> bool {
        let before = self.entries.len();
        self.entries.retain(|name, _| !names.contains(name));
        before != self.entries.len()
    }

    /// Empties the table (the kernel's values are gone); true if it held anything.
    pub fn clear(&mut self) -> bool {
        self.floor = self.next;
        self.applied.clear();
        let had = !self.entries.is_empty();
        self.entries.clear();
        had
    }

    /// `[{"name","type","summary","cell_id"}]` sorted by name; `definer` names the cell that
    /// defines a name now (the reporting cell when it no longer knows one).
    pub fn to_json(&self, definer: impl Fn(&str) -> Option<String>) -> Value {
        let list: Vec<Value> = self
            .entries
            .iter()
            .map(|(name, e)| {
                json!({
                    "name": name,
                    "type": e.type_name,
                    "summary": e.summary,
                    "cell_id": definer(name).unwrap_or_else(|| e.cell_id.clone()),
                })
            })
            .collect();
        Value::Array(list)
    }
}

/// At most `max` characters of `s`, marked with an ellipsis when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('\u{2026}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_asked_names_and_cuts_texts() {
        let mut v = Variables::default();
        let g = v.begin();
        let long = "x".repeat(500);
        let answer = json!({"variables": [
            {"name": "a", "type": "int", "summary": long},
            {"name": "secret", "type": "str", "summary": "not asked"},
        ]});
        assert!(v.apply("c1", g, &["a".into(), "b".into()], &answer));
        let list = v.to_json(|_| None);
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert_eq!(list[0]["cell_id"], "c1");
        let summary = list[0]["summary"].as_str().unwrap_or_default();
        assert_eq!(summary.chars().count(), MAX_SUMMARY_CHARS);
        assert!(summary.ends_with('\u{2026}'));
    }

    #[test]
    fn outdated_answers_are_dropped() {
        let mut v = Variables::default();
        let old = v.begin();
        let new = v.begin();
        let a = json!({"variables": [{"name": "a", "type": "int", "summary": "2"}]});
        assert!(v.apply("c1", new, &["a".into()], &a));
        assert!(!v.apply("c1", old, &["a".into()], &a));
        let g = v.begin();
        assert!(v.clear());
        assert!(!v.apply("c1", g, &["a".into()], &a));
        assert_eq!(v.to_json(|_| None), json!([]));
    }
}
