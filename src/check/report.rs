//! The result of `check`: items, their levels, and the text and JSON renderings.

use serde::Serialize;

/// How an item went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Works.
    Ok,
    /// Works, but something is missing or worth a look.
    Warn,
    /// Does not work; the server will not (fully) run.
    Fail,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One checked item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Short stable name (`config`, `database`, ...).
    pub name: &'static str,
    /// The verdict.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do about it (absent when there is nothing to do).
    pub hint: Option<String>,
}

impl Item {
    /// A passing item.
    pub fn ok(name: &'static str, detail: String) -> Item {
        Item {
            name,
            level: Level::Ok,
            detail,
            hint: None,
        }
    }

    /// A warning with a hint.
    pub fn warn(name: &'static str, detail: String, hint: &str) -> Item {
        Item {
            name,
            level: Level::Warn,
            detail,
            hint: Some(hint.to_string()),
        }
    }

    /// A failure with a hint.
    pub fn fail(name: &'static str, detail: String, hint: &str) -> Item {
        Item {
            name,
            level: Level::Fail,
            detail,
            hint: Some(hint.to_string()),
        }
    }
}

/// Every item of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// In the order they were checked.
    pub items: Vec<Item>,
}

impl Report {
    /// Whether any item failed (the process then exits non-zero).
    pub fn failed(&self) -> bool {
        self.items.iter().any(|i| i.level == Level::Fail)
    }

    /// One line per item: `level  name  detail | hint: ...`.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            // Details may quote multi-line errors; an item stays on one line.
            let detail = one_line(&item.detail);
            out.push_str(&format!(
                "{:<4}  {:<9}  {detail}",
                item.level.label(),
                item.name
            ));
            if let Some(hint) = &item.hint {
                out.push_str(&format!(" | hint: {}", one_line(hint)));
            }
            out.push('\n');
        }
        out
    }

    /// `{"ok": bool, "items": [{"name","level","detail","hint"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": !self.failed(), "items": self.items })
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
