//! Per-cell Yjs documents (`yrs`): each cell's code is the `Y.Text` named `code` in its own
//! `Y.Doc`, kept by the notebook's room. Clients exchange Yjs v1 updates with the room over the
//! WebSocket (`{"type":"yjs","cellId","update": base64}`); the merged text is the cell's code.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, TextRef, Transact, Update};

/// Name of the shared text in every cell's document.
pub const TEXT_NAME: &str = "code";
/// Largest accepted update (decoded bytes); typing sends a few dozen bytes per keystroke.
pub const MAX_UPDATE_BYTES: usize = 256 * 1024;
/// Largest cell text an update may grow (the REST body limit).
pub const MAX_TEXT_BYTES: usize = 1024 * 1024;
/// Largest encoded document (text plus what deletions and formatting leave behind).
pub const MAX_STATE_BYTES: usize = 4 * MAX_TEXT_BYTES;

/// Why an update was refused; the document is unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum YjsError {
    /// The `update` field is not base64.
    #[error("malformed yjs update: not base64")]
    Base64,
    /// Over [`MAX_UPDATE_BYTES`].
    #[error("yjs update larger than {MAX_UPDATE_BYTES} bytes refused")]
    TooLarge,
    /// Could grow the text past [`MAX_TEXT_BYTES`] (or the document past [`MAX_STATE_BYTES`]).
    #[error("yjs update refused: the cell's code may hold at most {MAX_TEXT_BYTES} bytes")]
    TextTooLong,
    /// Not a Yjs v1 update, or one that cannot be integrated.
    #[error("malformed yjs update: {0}")]
    Malformed(String),
}

/// Decodes the wire form (base64) of an update, enforcing the size cap.
pub fn decode_wire(update: &str) -> Result<Vec<u8>, YjsError> {
    // base64 is 4/3 of the bytes: refuse before decoding anything oversized.
    if update.len() > MAX_UPDATE_BYTES / 3 * 4 + 4 {
        return Err(YjsError::TooLarge);
    }
    let bytes = BASE64.decode(update).map_err(|_| YjsError::Base64)?;
    if bytes.len() > MAX_UPDATE_BYTES {
        return Err(YjsError::TooLarge);
    }
    Ok(bytes)
}

/// The `yjs` event carrying `update` for `cell_id`.
pub fn event(cell_id: &str, update: &[u8]) -> Value {
    json!({"type": "yjs", "cellId": cell_id, "update": BASE64.encode(update)})
}

/// One cell's document.
pub struct CellDoc {
    doc: Doc,
    text: TextRef,
}

impl CellDoc {
    /// A document whose text is `code` (written by the server's own client id).
    pub fn new(code: &str) -> CellDoc {
        let doc = Doc::new();
        let text = doc.get_or_insert_text(TEXT_NAME);
        if !code.is_empty() {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, code);
        }
        CellDoc { doc, text }
    }

    /// The merged text.
    pub fn text(&self) -> String {
        self.text.get_string(&self.doc.transact())
    }

    /// The whole document as one update (what a joining client starts from).
    pub fn full_state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// Applies a client's update; answers the merged text. A refused update leaves the
    /// document exactly as it was.
    pub fn apply(&mut self, update: &[u8]) -> Result<String, YjsError> {
        if update.len() > MAX_UPDATE_BYTES {
            return Err(YjsError::TooLarge);
        }
        // An update inserts at most its own size in text.
        let before = self.text();
        if before.len().saturating_add(update.len()) > MAX_TEXT_BYTES {
            return Err(YjsError::TextTooLong);
        }
        // yrs panics on some hostile input (while decoding and while integrating): contain it.
        let decoded = catch_unwind(|| Update::decode_v1(update))
            .map_err(|_| YjsError::Malformed("not a Yjs v1 update".into()))?
            .map_err(|e| YjsError::Malformed(e.to_string()))?;
        // Keep the last good state to fall back to if integrating fails halfway.
        let snapshot = self.full_state();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let mut txn = self.doc.transact_mut();
            txn.apply_update(decoded)
        }));
        match outcome {
            // Content outside the text (other root types) must not grow the document forever.
            Ok(Ok(())) if self.full_state().len() > MAX_STATE_BYTES => {
                self.restore(&snapshot);
                Err(YjsError::TextTooLong)
            }
            Ok(Ok(())) => Ok(self.text()),
            Ok(Err(e)) => {
                self.restore(&snapshot);
                Err(YjsError::Malformed(e.to_string()))
            }
            Err(_) => {
                self.restore(&snapshot);
                Err(YjsError::Malformed(
                    "the update could not be integrated".into(),
                ))
            }
        }
    }

    /// Makes the text `code` with the smallest single change (common prefix and suffix kept,
    /// so concurrent edits elsewhere in the text survive); answers the update, if any.
    pub fn replace(&mut self, code: &str) -> Option<Vec<u8>> {
        let current = self.text();
        if current == code {
            return None;
        }
        let (start, old_end, new_end) = middle(&current, code);
        let mut txn = self.doc.transact_mut();
        // yrs counts offsets in UTF-8 bytes by default; `middle` keeps char boundaries.
        let removed = u32::try_from(old_end - start).ok()?;
        let at = u32::try_from(start).ok()?;
        if removed > 0 {
            self.text.remove_range(&mut txn, at, removed);
        }
        if new_end > start {
            self.text.insert(&mut txn, at, &code[start..new_end]);
        }
        Some(txn.encode_update_v1())
    }

    /// Rebuilds the document from `snapshot` (its own earlier full state).
    fn restore(&mut self, snapshot: &[u8]) {
        let doc = Doc::new();
        let text = doc.get_or_insert_text(TEXT_NAME);
        if let Ok(update) = Update::decode_v1(snapshot) {
            if let Err(e) = doc.transact_mut().apply_update(update) {
                log::error!("restoring a cell document failed: {e}");
            }
        }
        self.doc = doc;
        self.text = text;
    }
}

/// Byte offsets `(start, old_end, new_end)` of the part of `old` replaced to make `new`:
/// `old[..start] == new[..start]` and `old[old_end..] == new[new_end..]`, on char boundaries.
fn middle(old: &str, new: &str) -> (usize, usize, usize) {
    let start = old
        .char_indices()
        .zip(new.chars())
        .find(|((_, a), b)| a != b)
        .map_or(old.len().min(new.len()), |((i, _), _)| i);
    // Never let the suffix overlap the prefix.
    let room = old.len().min(new.len()) - start;
    let suffix = old[start..]
        .chars()
        .rev()
        .zip(new[start..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(c, _)| c.len_utf8())
        .scan(0usize, |sum, n| {
            *sum += n;
            Some(*sum)
        })
        .take_while(|sum| *sum <= room)
        .last()
        .unwrap_or(0);
    (start, old.len() - suffix, new.len() - suffix)
}

/// The documents of one notebook's cells, created on first use from the cell's code.
#[derive(Default)]
pub struct CellDocs {
    docs: HashMap<String, CellDoc>,
}

impl CellDocs {
    /// The document of `cell_id`, created from `code` if the cell has none yet.
    pub fn get_or_create(&mut self, cell_id: &str, code: &str) -> &mut CellDoc {
        self.docs
            .entry(cell_id.to_string())
            .or_insert_with(|| CellDoc::new(code))
    }

    /// Forgets a deleted cell's document.
    pub fn remove(&mut self, cell_id: &str) {
        self.docs.remove(cell_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_a_minimal_change_that_merges() {
        let mut server = CellDoc::new("x = 1\ny = 2\n");
        let mut client = CellDoc::new("");
        client.apply(&server.full_state()).unwrap();
        // The client types at the end while the server replaces the first line.
        let typed = {
            let mut txn = client.doc.transact_mut();
            client.text.insert(&mut txn, 12, "z = 3\n");
            txn.encode_update_v1()
        };
        let replaced = server.replace("x = 10\ny = 2\n").unwrap();
        server.apply(&typed).unwrap();
        client.apply(&replaced).unwrap();
        assert_eq!(server.text(), "x = 10\ny = 2\nz = 3\n");
        assert_eq!(client.text(), server.text());
        assert!(server.replace("x = 10\ny = 2\nz = 3\n").is_none());
    }

    #[test]
    fn middle_keeps_char_boundaries() {
        assert_eq!(middle("aéb", "aüb"), (1, 3, 3));
        assert_eq!(middle("aaa", "aa"), (2, 3, 2));
        assert_eq!(middle("", "abc"), (0, 0, 3));
        let mut doc = CellDoc::new("héllo wörld");
        doc.replace("héllo, wörld!").unwrap();
        assert_eq!(doc.text(), "héllo, wörld!");
    }

    #[test]
    fn garbage_is_refused_and_the_document_survives() {
        let mut doc = CellDoc::new("keep me");
        let mut seed = 7u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len % 64)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as u8
                })
                .collect();
            let before = doc.text();
            if doc.apply(&bytes).is_err() {
                assert_eq!(doc.text(), before, "a refused update changed the text");
            }
        }
        // Whatever garbage was accepted, the document still takes ordinary edits.
        let text = doc.text();
        doc.replace(&format!("{text}!")).unwrap();
        assert_eq!(doc.text(), format!("{text}!"));
        assert_eq!(decode_wire("!!!"), Err(YjsError::Base64));
    }
}
