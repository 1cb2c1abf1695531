//! SQL cells: `{name}` placeholders are reads of Python names.
//!
//! Rules: a placeholder is a Python identifier (not a keyword) in braces, optionally padded
//! with spaces or tabs: `{x}`, `{ my_var }`. `{{` and `}}` are escaped literal braces.
//! Anything else in braces (`{x.y}`, `{}`) is left as literal text. Nothing inside `'...'`
//! strings (with `''` escapes, `E'...'` backslash escapes), `"..."` quoted identifiers,
//! `$tag$...$tag$` dollar-quoted strings, `--` line comments or (nested) `/* */` block
//! comments is a placeholder or an escape: literals are passed through verbatim.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::sql_tables::table_reads;
use super::{is_private, line_col, CellNames, KEYWORDS};

/// One significant piece of SQL text found outside literals and comments.
enum Piece {
    /// `{name}` at this byte range.
    Placeholder(Range<usize>, String),
    /// `{{` or `}}` at this byte range, standing for one literal brace.
    Escape(Range<usize>, char),
}

struct Scan {
    pieces: Vec<Piece>,
    /// Byte offset and kind of a literal or comment that never ends.
    unterminated: Option<(usize, &'static str)>,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn scan(code: &str) -> Scan {
    let b = code.as_bytes();
    let mut pieces = Vec::new();
    let mut unterminated = None;
    let mut i = 0;
    // All delimiters are ASCII and UTF-8 continuation bytes are >= 0x80, so a byte scan
    // only ever stops on character boundaries.
    while i < b.len() {
        let next = b.get(i + 1).copied();
        match b[i] {
            q @ (b'\'' | b'"') => {
                let backslash = q == b'\''
                    && i > 0
                    && matches!(b[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_byte(b[i - 2]));
                match skip_quoted(b, i, q, backslash) {
                    Some(end) => i = end,
                    None => {
                        let what = if q == b'\'' {
                            "string literal"
                        } else {
                            "quoted identifier"
                        };
                        unterminated.get_or_insert((i, what));
                        i = b.len();
                    }
                }
            }
            b'-' if next == Some(b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'/' if next == Some(b'*') => match skip_block_comment(b, i) {
                Some(end) => i = end,
                None => {
                    unterminated.get_or_insert((i, "block comment"));
                    i = b.len();
                }
            },
            b'$' if i == 0 || !is_ident_byte(b[i - 1]) => match dollar_tag(b, i) {
                Some(tag) => {
                    let body = i + tag.len();
                    match find(b, body, tag) {
                        Some(p) => i = p + tag.len(),
                        None => {
                            unterminated.get_or_insert((i, "dollar-quoted string"));
                            i = b.len();
                        }
                    }
                }
                None => i += 1,
            },
            b'{' if next == Some(b'{') => {
                pieces.push(Piece::Escape(i..i + 2, '{'));
                i += 2;
            }
            b'}' if next == Some(b'}') => {
                pieces.push(Piece::Escape(i..i + 2, '}'));
                i += 2;
            }
            b'{' => match placeholder(code, i) {
                Some((end, name)) => {
                    pieces.push(Piece::Placeholder(i..end, name));
                    i = end;
                }
                None => i += 1,
            },
            _ => i += 1,
        }
    }
    Scan {
        pieces,
        unterminated,
    }
}

/// End (exclusive) of the quoted run starting at `start`, or None if unterminated.
fn skip_quoted(b: &[u8], start: usize, q: u8, backslash: bool) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        if backslash && b[i] == b'\\' {
            i += 2;
        } else if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2; // doubled quote is an escaped quote
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// End of a `/* ... */` comment; PostgreSQL lets them nest.
fn skip_block_comment(b: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// `$$` or `$tag$` at `start` (tags never start with a digit, so `$1` is not one).
fn dollar_tag(b: &[u8], start: usize) -> Option<&[u8]> {
    let mut i = start + 1;
    if b.get(i).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    while i < b.len() && is_ident_byte(b[i]) {
        i += 1;
    }
    (b.get(i) == Some(&b'$')).then(|| &b[start..=i])
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Parse `{ name }` at `start`; returns the end offset and the name.
fn placeholder(code: &str, start: usize) -> Option<(usize, String)> {
    let rest = code.get(start + 1..)?;
    let inner_start = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    let after_ws = &rest[inner_start..];
    let mut chars = after_ws.char_indices();
    let (_, first) = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let name_len = after_ws
        .char_indices()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_'))
        .map_or(after_ws.len(), |(p, _)| p);
    let name = &after_ws[..name_len];
    let tail = &after_ws[name_len..];
    let trimmed = tail.trim_start_matches([' ', '\t']);
    if !trimmed.starts_with('}') || KEYWORDS.contains(&name) {
        return None;
    }
    let end = start + 1 + inner_start + name_len + (tail.len() - trimmed.len()) + 1;
    Some((end, name.to_string()))
}

/// Byte range and name of every `{name}` placeholder outside literals and comments, in order.
pub fn sql_placeholders(code: &str) -> Vec<(Range<usize>, String)> {
    scan(code)
        .pieces
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(r, n) => Some((r, n)),
            Piece::Escape(..) => None,
        })
        .collect()
}

/// Rewrite placeholders to `$1..$n` (one number per distinct name, numbered by first use)
/// and `{{`/`}}` to single braces; returns the SQL and the names in parameter order.
pub fn sql_to_positional(code: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(code.len());
    let mut names: Vec<String> = Vec::new();
    let mut numbers: HashMap<String, usize> = HashMap::new();
    let mut last = 0;
    for piece in scan(code).pieces {
        let (range, replacement) = match piece {
            Piece::Escape(r, c) => (r, c.to_string()),
            Piece::Placeholder(r, name) => {
                let n = match numbers.get(&name) {
                    Some(n) => *n,
                    None => {
                        names.push(name.clone());
                        numbers.insert(name, names.len());
                        names.len()
                    }
                };
                (r, format!("${n}"))
            }
        };
        out.push_str(code.get(last..range.start).unwrap_or(""));
        out.push_str(&replacement);
        last = range.end;
    }
    out.push_str(code.get(last..).unwrap_or(""));
    (out, names)
}

/// Compute the names a SQL cell reads: its placeholders and the single-identifier tables it
/// reads (which may be DataFrames). What it writes (its `result_name`) is the cell's, not the
/// code's, so the caller adds it.
pub fn analyze_sql(code: &str) -> CellNames {
    let scanned = scan(code);
    if let Some((at, what)) = scanned.unterminated {
        let (line, col) = line_col(code, at);
        return CellNames::error(format!(
            "syntax error at line {line}, column {col}: unterminated {what}"
        ));
    }
    let mut reads: BTreeSet<String> = scanned
        .pieces
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(_, n) if !is_private(&n) => Some(n),
            _ => None,
        })
        .collect();
    let (positional, _) = sql_to_positional(code);
    reads.extend(
        table_reads(&positional)
            .into_iter()
            .filter(|t| !is_private(t)),
    );
    CellNames {
        writes: Vec::new(),
        reads: reads.into_iter().collect(),
        syntax_error: None,
    }
}
