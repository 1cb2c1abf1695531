//! Caps on what one cell may send back, enforced by the server on every message from the
//! kernel. The driver has its own per-output cap to save pipe traffic, but it runs inside the
//! kernel, so nothing here relies on it.
//!
//! Everything past a cap is dropped as it arrives (never buffered), and the cell gets one
//! `text/plain` marker at its end that says what was dropped and why.

use serde_json::json;

use super::Output;

/// Largest single output. An output's size is the length of the protocol line that carried
/// it: its serialized JSON (data, MIME type, metadata and a small envelope), never less than
/// what the server keeps of it, and known without serializing it again.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;
/// Most output bytes one cell keeps, all its outputs together.
pub const MAX_CELL_OUTPUT_BYTES: usize = 32 * 1024 * 1024;
/// Most stdout/stderr text one cell keeps.
pub const MAX_STREAM_BYTES: usize = 1024 * 1024;

/// Counts one cell's outputs and stream text against the caps.
#[derive(Debug, Default)]
pub(crate) struct CellBudget {
    output_bytes: usize,
    stream_bytes: usize,
    too_large: u64,
    over_total: u64,
    dropped_bytes: u64,
}

impl CellBudget {
    /// The output (`size` bytes on the wire) if it fits, or `None` (counted for the marker).
    pub(crate) fn admit_output(&mut self, output: Output, size: usize) -> Option<Output> {
        if size > MAX_OUTPUT_BYTES {
            self.too_large += 1;
            self.dropped_bytes = self.dropped_bytes.saturating_add(size as u64);
            return None;
        }
        if self.output_bytes + size > MAX_CELL_OUTPUT_BYTES {
            self.over_total += 1;
            self.dropped_bytes = self.dropped_bytes.saturating_add(size as u64);
            return None;
        }
        self.output_bytes += size;
        Some(output)
    }

    /// Records an output the driver dropped itself for being too large. The claim is not
    /// trusted for anything but the marker's wording.
    pub(crate) fn note_dropped_by_kernel(&mut self, bytes: u64) {
        self.too_large += 1;
        self.dropped_bytes = self.dropped_bytes.saturating_add(bytes);
    }

    /// The stream text to forward, or `None` once the cell is past the stream cap.
    ///
    /// One byte past the cap is let through so the room, which cuts the text exactly and
    /// appends its own truncation notice, sees that there was more.
    pub(crate) fn admit_stream(&mut self, mut text: String) -> Option<String> {
        if self.stream_bytes > MAX_STREAM_BYTES {
            return None;
        }
        let room = MAX_STREAM_BYTES + 1 - self.stream_bytes;
        if text.len() > room {
            let cut = (room..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
            text.truncate(cut);
        }
        self.stream_bytes += text.len();
        Some(text)
    }

    /// The one marker output for everything this cell had dropped, if anything was.
    pub(crate) fn marker(&self) -> Option<Output> {
        let dropped = self.too_large + self.over_total;
        if dropped == 0 {
            return None;
        }
        let what = if dropped == 1 {
            format!("1 output of {}", human_bytes(self.dropped_bytes))
        } else {
            format!(
                "{dropped} outputs totalling {}",
                human_bytes(self.dropped_bytes)
            )
        };
        let mut why = Vec::new();
        if self.too_large > 0 {
            why.push(format!(
                "{} too large: the limit is {} per output",
                count_phrase(self.too_large, dropped),
                human_bytes(MAX_OUTPUT_BYTES as u64)
            ));
        }
        if self.over_total > 0 {
            why.push(format!(
                "{} past the limit of {} for all of one cell's outputs",
                count_phrase(self.over_total, dropped),
                human_bytes(MAX_CELL_OUTPUT_BYTES as u64)
            ));
        }
        Some(Output {
            mime_type: "text/plain".into(),
            data: json!(format!(
                "[output truncated: dropped {what}; {}]",
                why.join("; ")
            )),
            metadata: json!({
                "output_truncated": {
                    "dropped_outputs": dropped,
                    "dropped_bytes": self.dropped_bytes,
                    "max_output_bytes": MAX_OUTPUT_BYTES,
                    "max_cell_output_bytes": MAX_CELL_OUTPUT_BYTES,
                }
            }),
        })
    }
}

/// "it was" when it is the only kind of drop, else "N were"/"1 was".
fn count_phrase(n: u64, of: u64) -> String {
    match (n == of, n) {
        (true, 1) => "it was".into(),
        (true, _) => "they were".into(),
        (false, 1) => "1 was".into(),
        (false, _) => format!("{n} were"),
    }
}

/// `20.0 MiB`, `64 KiB`, `12 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        if n.is_multiple_of(MIB) {
            format!("{} MiB", n / MIB)
        } else {
            format!("{:.1} MiB", n as f64 / MIB as f64)
        }
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else if n >= KIB {
        format!("{:.1} KiB", n as f64 / KIB as f64)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> Output {
        Output {
            mime_type: "text/plain".into(),
            data: json!("x"),
            metadata: json!({}),
        }
    }

    #[test]
    fn outputs_past_either_cap_are_dropped_with_one_marker() {
        let mut b = CellBudget::default();
        assert!(b.marker().is_none());
        let over = MAX_OUTPUT_BYTES + 1;
        assert!(b.admit_output(text(), over).is_none(), "too large");
        assert!(
            b.admit_output(text(), MAX_OUTPUT_BYTES).is_some(),
            "at the cap"
        );
        let mut kept = 0;
        for _ in 0..33 {
            if b.admit_output(text(), 1024 * 1024).is_some() {
                kept += 1;
            }
        }
        assert_eq!(kept, 24);
        assert!(
            b.admit_output(text(), 0).is_some(),
            "what still fits is kept"
        );
        let marker = b.marker().expect("marker");
        let s = marker.data.as_str().unwrap_or_default();
        assert!(s.contains("dropped 10 outputs totalling 17.0 MiB"), "{s}");
        assert!(
            s.contains("1 was too large: the limit is 8 MiB per output"),
            "{s}"
        );
        assert!(s.contains("9 were past the limit of 32 MiB"), "{s}");
        assert_eq!(marker.metadata["output_truncated"]["dropped_outputs"], 10);
    }

    #[test]
    fn stream_lets_one_byte_past_the_cap_then_nothing() {
        let mut b = CellBudget::default();
        assert_eq!(
            b.admit_stream("é".repeat(MAX_STREAM_BYTES))
                .map(|t| t.len()),
            Some(MAX_STREAM_BYTES + 2)
        );
        assert_eq!(b.admit_stream("more".into()), None);
        let mut b = CellBudget::default();
        let exact = b.admit_stream("a".repeat(MAX_STREAM_BYTES));
        assert_eq!(exact.map(|t| t.len()), Some(MAX_STREAM_BYTES));
        assert_eq!(b.admit_stream("bc".into()).as_deref(), Some("b"));
        assert_eq!(b.admit_stream("d".into()), None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(8 * 1024 * 1024), "8 MiB");
        assert_eq!(human_bytes(20 * 1024 * 1024 + 1), "20.0 MiB");
        assert_eq!(human_bytes(64 * 1024), "64 KiB");
        assert_eq!(human_bytes(12), "12 bytes");
    }
}
