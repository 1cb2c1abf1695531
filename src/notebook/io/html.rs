//! Standalone HTML export: one page with inline CSS and no scripts.
//!
//! Every string from the notebook is HTML-escaped; markdown is rendered with raw HTML shown as
//! text and links limited to safe schemes; `text/html` outputs go into sandboxed iframes
//! (`srcdoc`, `sandbox=""`); images are inline data URIs; a Content-Security-Policy forbids
//! scripts anyway, so an exported page can never run code from the notebook.

use std::fmt::Write as _;

use base64::Engine as _;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};
use serde_json::Value;

use super::{ExportCell, ExportNotebook, MARKDOWN};

/// The custom MIME type under which a table output keeps its original JSON.
pub const TABLE_MIME: &str = "application/vnd.reactive-notebook.table+json";

const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
                   frame-src 'self'; base-uri 'none'; form-action 'none'";

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:960px;margin:0 auto;padding:24px}
h1.title{font-size:1.6em;margin:0 0 16px}
.cell{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:0 0 14px;overflow:hidden}
.cell.markdown{background:transparent;border:none;padding:0 4px}
.label{font-size:12px;color:#5b6475;padding:4px 10px;border-bottom:1px solid #eef0f3;background:#fafbfc}
pre{margin:0;padding:10px;overflow-x:auto;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word}
pre.code{background:#fbfcfd}
.outputs{border-top:1px solid #eef0f3}
.outputs>*{margin:6px 10px}
pre.stdout{background:#f7f7f2;padding:6px}
pre.error{background:#fff0f0;color:#a31515;padding:6px}
img{max-width:100%}
iframe{width:100%;min-height:160px;border:1px solid #eef0f3;background:#fff}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #dde1e7;padding:3px 8px;text-align:left}
th{background:#f2f4f7}
.note{color:#5b6475;font-style:italic;font-size:13px}
";

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `data` is plain base64 (so it cannot break out of a data URI).
fn is_base64(data: &str) -> bool {
    !data.is_empty()
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r'))
}

/// A data URI for base64 image data, or None when the data is not base64.
pub(crate) fn image_data_uri(mime: &str, data: &str) -> Option<String> {
    is_base64(data).then(|| format!("data:{mime};base64,{}", data.replace(['\n', '\r'], "")))
}

/// A link target kept in rendered markdown: web, mail, in-page and relative links, and
/// (for images) inline raster images; anything else (`javascript:`...) becomes `#`.
fn safe_url(url: &str, image: bool) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let path_start = lower.find(['/', '?', '#']).unwrap_or(lower.len());
    let relative = scheme_end.is_none_or(|i| i > path_start);
    relative
        || ["http://", "https://", "mailto:"]
            .iter()
            .any(|p| lower.starts_with(p))
        || (image
            && [
                "data:image/png;",
                "data:image/jpeg;",
                "data:image/gif;",
                "data:image/webp;",
            ]
            .iter()
            .any(|p| lower.starts_with(p)))
}

/// Renders markdown to HTML: raw HTML in it is shown as text, unsafe link targets dropped.
pub fn render_markdown(text: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url, false) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url, true) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// One table cell value as text.
fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether an output's data is a table (`{"type":"table","columns","rows"}`).
pub(crate) fn is_table(data: &Value) -> bool {
    data.get("type").and_then(Value::as_str) == Some("table") && data.get("columns").is_some()
}

fn table_parts(data: &Value) -> (Vec<String>, Vec<Vec<String>>, Option<String>) {
    let columns = data
        .get("columns")
        .and_then(Value::as_array)
        .map(|c| c.iter().map(value_text).collect())
        .unwrap_or_default();
    let rows = data
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|cells| cells.iter().map(value_text).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    let note = data
        .get("truncated")
        .and_then(Value::as_str)
        .map(str::to_string);
    (columns, rows, note)
}

/// A table output as an HTML table (escaped).
pub fn table_html(data: &Value) -> String {
    let (columns, rows, note) = table_parts(data);
    let mut html = String::from("<table><thead><tr>");
    for c in &columns {
        let _ = write!(html, "<th>{}</th>", escape(c));
    }
    html.push_str("</tr></thead><tbody>");
    for row in &rows {
        html.push_str("<tr>");
        for v in row {
            let _ = write!(html, "<td>{}</td>", escape(v));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    let count = match &note {
        Some(note) => note.clone(),
        None => format!("{} rows", rows.len()),
    };
    let _ = write!(html, "<p class=\"note\">{}</p>", escape(&count));
    html
}

/// A table output as tab-separated text (the `text/plain` fallback).
pub fn table_text(data: &Value) -> String {
    let (columns, rows, note) = table_parts(data);
    let mut lines = vec![columns.join("\t")];
    lines.extend(rows.iter().map(|r| r.join("\t")));
    if let Some(note) = note {
        lines.push(format!("({note})"));
    }
    lines.join("\n")
}

/// The HTML of one rich output.
fn output_html(output: &Value) -> String {
    let mime = output
        .get("mime_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let data = output.get("data").unwrap_or(&Value::Null);
    let text = data.as_str();
    match (mime, text) {
        ("application/json", _) if is_table(data) => table_html(data),
        ("text/plain", Some(t)) => format!("<pre>{}</pre>", escape(t)),
        ("text/markdown", Some(t)) => format!("<div class=\"md\">{}</div>", render_markdown(t)),
        ("text/html", Some(t)) => format!(
            "<iframe sandbox=\"\" referrerpolicy=\"no-referrer\" title=\"HTML output\" \
             srcdoc=\"{}\"></iframe>",
            escape(t)
        ),
        ("image/png" | "image/jpeg" | "image/gif" | "image/webp", Some(t)) => {
            match image_data_uri(mime, t) {
                Some(uri) => format!("<img alt=\"image output\" src=\"{}\">", escape(&uri)),
                None => note("an image output that is not valid base64"),
            }
        }
        ("image/svg+xml", Some(t)) => {
            // As an <img>, an SVG cannot run scripts or load anything.
            let b64 = base64::engine::general_purpose::STANDARD.encode(t);
            format!("<img alt=\"SVG output\" src=\"data:image/svg+xml;base64,{b64}\">")
        }
        (m, _) if m.contains("plotly") || m.contains("vegalite") || m.contains("vega") => {
            note(&format!(
                "An interactive chart ({m}) is not shown: this page runs no scripts. \
                 Export as .ipynb to keep it."
            ))
        }
        (m, _) if m == "application/json" || m.ends_with("+json") => format!(
            "<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(data).unwrap_or_default())
        ),
        (m, _) => note(&format!("An output of type {m} is not shown.")),
    }
}

fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>", escape(text))
}

fn cell_html(index: usize, cell: &ExportCell) -> String {
    if cell.cell_type == MARKDOWN {
        return format!(
            "<section class=\"cell markdown\">{}</section>\n",
            render_markdown(&cell.code)
        );
    }
    let label = match (cell.cell_type.as_str(), cell.result_name.as_deref()) {
        ("sql", Some(name)) => format!("[{}] SQL → {name}", index + 1),
        ("sql", None) => format!("[{}] SQL", index + 1),
        _ => format!("[{}] Python", index + 1),
    };
    let mut html = format!(
        "<section class=\"cell {}\"><div class=\"label\">{}</div><pre class=\"code\"><code>{}</code></pre>",
        escape(&cell.cell_type),
        escape(&label),
        escape(&cell.code)
    );
    let has_outputs = !cell.stdout.is_empty() || !cell.outputs.is_empty() || cell.error.is_some();
    if has_outputs {
        html.push_str("<div class=\"outputs\">");
        if !cell.stdout.is_empty() {
            let _ = write!(html, "<pre class=\"stdout\">{}</pre>", escape(&cell.stdout));
        }
        for output in &cell.outputs {
            html.push_str(&output_html(output));
        }
        if let Some(error) = &cell.error {
            let _ = write!(html, "<pre class=\"error\">{}</pre>", escape(error));
        }
        html.push_str("</div>");
    }
    html.push_str("</section>\n");
    html
}

/// The notebook as a standalone HTML page.
pub fn export(notebook: &ExportNotebook) -> String {
    let name = escape(&notebook.name);
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"reactive-notebook\">\n\
         <title>{name}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <h1 class=\"title\">{name}</h1>\n"
    );
    for (index, cell) in notebook.cells.iter().enumerate() {
        html.push_str(&cell_html(index, cell));
    }
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_raw_html_and_script_links_are_defused() {
        let html = render_markdown(
            "<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://e.org) <b>z</b>",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://e.org\""), "{html}");
    }

    #[test]
    fn escape_covers_attribute_quotes() {
        assert_eq!(
            escape("<a href='x' \"y\">&"),
            "&lt;a href=&#39;x&#39; &quot;y&quot;&gt;&amp;"
        );
    }
}
