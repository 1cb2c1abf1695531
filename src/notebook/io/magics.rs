//! IPython-only syntax in imported code: magics (`%line`, `%%cell`) and shell escapes (`!cmd`).
//!
//! Such lines are not Python, and this notebook runs plain Python: they are kept (the user's
//! code is never silently rewritten) but the cell gets a visible flag comment, and the kernel
//! refuses them with an error that names the line (see `explain_ipython_syntax` in driver.py).
//! For the percent format they are commented out the way jupytext does it, so the script stays
//! valid Python, and restored on import.

/// First line of the flag comment the importer puts on a cell using IPython syntax.
pub const FLAG_PREFIX: &str = "# [import] ";

/// Most magic lines listed in a flag comment.
const MAX_LISTED: usize = 3;

/// Whether a line (without its indentation) is IPython syntax: `%magic`, `%%magic`, `!shell`.
fn is_magic(trimmed: &str) -> bool {
    (trimmed.starts_with('%') || trimmed.starts_with('!')) && !trimmed.starts_with("!=")
}

/// Tracks whether a line starts inside a triple-quoted string (naively: quotes are toggled by
/// every `"""` / `'''`, which is right for the code people write around magics).
struct StringTracker {
    open: Option<&'static str>,
}

impl StringTracker {
    fn new() -> StringTracker {
        StringTracker { open: None }
    }

    /// Whether this line starts inside a string; then advances past it.
    fn step(&mut self, line: &str) -> bool {
        let inside = self.open.is_some();
        let mut rest = line;
        loop {
            match self.open {
                Some(q) => match rest.find(q) {
                    Some(i) => {
                        rest = &rest[i + q.len()..];
                        self.open = None;
                    }
                    None => break,
                },
                None => {
                    let next = ["\"\"\"", "'''"]
                        .into_iter()
                        .filter_map(|q| rest.find(q).map(|i| (i, q)))
                        .min_by_key(|(i, _)| *i);
                    match next {
                        Some((i, q)) if !rest[..i].contains('#') => {
                            rest = &rest[i + q.len()..];
                            self.open = Some(q);
                        }
                        _ => break,
                    }
                }
            }
        }
        inside
    }
}

/// The IPython-only lines of Python code, trimmed, in order.
pub fn find(code: &str) -> Vec<String> {
    let mut strings = StringTracker::new();
    code.lines()
        .filter(|line| !strings.step(line))
        .map(str::trim)
        .filter(|t| is_magic(t))
        .map(str::to_string)
        .collect()
}

/// Flags a Python cell that uses IPython syntax: (re)writes the flag comment on its first line
/// and returns the warning for the user; a cell without such syntax loses a stale flag.
pub fn flag_cell(code: &mut String) -> Option<String> {
    if code.starts_with(FLAG_PREFIX) {
        let rest = code.split_once('\n').map_or("", |(_, rest)| rest);
        *code = rest.to_string();
    }
    let found = find(code);
    if found.is_empty() {
        return None;
    }
    let mut listed: Vec<String> = found
        .iter()
        .take(MAX_LISTED)
        .map(|m| m.chars().take(60).collect())
        .collect();
    if found.len() > MAX_LISTED {
        listed.push(format!("and {} more", found.len() - MAX_LISTED));
    }
    let listed = listed.join(", ");
    *code = format!(
        "{FLAG_PREFIX}IPython magics and !shell lines do not run here (plain Python); \
         remove or rewrite: {listed}\n{code}"
    );
    Some(format!(
        "uses IPython-only syntax that this notebook does not run: {listed}"
    ))
}

/// Comments every line out (`# text`, `#` for an empty line).
pub fn comment_out(text: &str) -> String {
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "#".to_string()
            } else {
                format!("# {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Removes one level of `# ` / `#` from each line (the inverse of [`comment_out`]).
pub fn uncomment(text: &str) -> String {
    text.lines()
        .map(|line| {
            line.strip_prefix("# ")
                .or_else(|| line.strip_prefix('#'))
                .unwrap_or(line)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Splits a line into its indentation and the rest.
fn split_indent(line: &str) -> (&str, &str) {
    let rest = line.trim_start_matches([' ', '\t']);
    (&line[..line.len() - rest.len()], rest)
}

/// Whether a comment's text would read back as a commented magic (`# %x`, `# !x`) or as a
/// cell marker, and so must be escaped with one more `# `.
fn looks_commented_magic(rest: &str) -> bool {
    rest.strip_prefix("# ")
        .map(|inner| is_magic(inner) || looks_commented_magic(inner))
        .unwrap_or(false)
}

/// Python code as a percent-format script holds it: magic lines commented out (`# %time`),
/// comments that would be mistaken for them escaped (`# # %time`), as jupytext writes it.
pub fn escape_for_script(code: &str) -> String {
    let mut strings = StringTracker::new();
    code.lines()
        .map(|line| {
            if strings.step(line) {
                return line.to_string();
            }
            let (indent, rest) = split_indent(line);
            if is_magic(rest) || looks_commented_magic(rest) {
                format!("{indent}# {rest}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The inverse of [`escape_for_script`]: `# %time` becomes `%time`, `# # %x` becomes `# %x`.
pub fn unescape_from_script(code: &str) -> String {
    let mut strings = StringTracker::new();
    code.lines()
        .map(|line| {
            if strings.step(line) {
                return line.to_string();
            }
            let (indent, rest) = split_indent(line);
            match rest.strip_prefix("# ") {
                Some(inner) if is_magic(inner) || looks_commented_magic(inner) => {
                    format!("{indent}{inner}")
                }
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_magics_outside_strings() {
        let code = "%matplotlib inline\nx = 1 != 2\ns = \"\"\"\n!not shell\n\"\"\"\n  !ls\n";
        assert_eq!(find(code), vec!["%matplotlib inline", "!ls"]);
    }

    #[test]
    fn flag_is_idempotent() {
        let mut code = "%time x = 1".to_string();
        assert!(flag_cell(&mut code).is_some());
        let once = code.clone();
        assert!(flag_cell(&mut code).is_some());
        assert_eq!(code, once);
        let mut clean = format!("{FLAG_PREFIX}old\nx = 1");
        assert!(flag_cell(&mut clean).is_none());
        assert_eq!(clean, "x = 1");
    }

    #[test]
    fn script_escaping_round_trips() {
        let code = "# %time is a comment\n# # ! deeper\n%matplotlib inline\n  !ls\nx = 1\n# plain";
        let escaped = escape_for_script(code);
        assert_eq!(
            escaped,
            "# # %time is a comment\n# # # ! deeper\n# %matplotlib inline\n  # !ls\nx = 1\n# plain"
        );
        assert_eq!(unescape_from_script(&escaped), code);
    }
}
