//! The server's reader of a kernel's protocol pipe (its fd 4).
//!
//! Cell code can write to fd 4 itself, so every line is hostile input: a line longer than
//! [`MAX_LINE_BYTES`], one that is not JSON, or one of an unknown type ends the stream, and
//! the kernel is killed at once. Parsed messages wait in a queue bounded both in count and
//! in bytes, so a kernel that writes faster than the server consumes is simply blocked on
//! its pipe instead of growing the server's memory.

use std::sync::Arc;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::caps::{human_bytes, MAX_OUTPUT_BYTES};
use super::introspect::{self, Replies};
use super::protocol::{DriverMsg, Incoming};
use super::Interrupter;

/// Room for a message's envelope (type, id, MIME type, metadata) around a maximal output.
const LINE_MARGIN: usize = 64 * 1024;
/// Longest accepted message line, newline included; a longer one is a protocol violation.
pub(crate) const MAX_LINE_BYTES: usize = MAX_OUTPUT_BYTES + LINE_MARGIN;
/// Capacity of the line buffer kept between lines.
const LINE_BUFFER_KEPT: usize = 64 * 1024;
/// Lines up to this size are parsed in place; longer ones on the blocking pool.
const PARSE_INLINE_BYTES: usize = 64 * 1024;
/// Most messages waiting for the kernel's consumer.
const QUEUE_MESSAGES: usize = 64;
/// Most line bytes of messages waiting for the kernel's consumer.
const QUEUE_BYTES: usize = 2 * MAX_LINE_BYTES;

/// The sending half of the bounded queue from the reader to the kernel.
pub(crate) struct QueueTx {
    tx: mpsc::Sender<Incoming>,
    bytes: Arc<Semaphore>,
}

/// A bounded queue (count and bytes) for the reader's messages.
pub(crate) fn queue() -> (QueueTx, mpsc::Receiver<Incoming>) {
    let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
    let bytes = Arc::new(Semaphore::new(QUEUE_BYTES));
    (QueueTx { tx, bytes }, rx)
}

impl QueueTx {
    /// Waits until a `len`-byte line fits in the byte budget. (The budget is never closed;
    /// if the kernel side is gone, dropping its queued messages frees room, and the next
    /// send fails instead.)
    async fn reserve(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(len.min(QUEUE_BYTES)).unwrap_or(u32::MAX);
        self.bytes.clone().acquire_many_owned(n).await.ok()
    }
}

/// Just the `type` of a line that did not parse, to name an unknown type.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

/// Why a line breaks the protocol.
fn describe_bad_line(line: &[u8], err: &serde_json::Error) -> String {
    if let Ok(TypeOnly {
        kind: Some(serde_json::Value::String(kind)),
    }) = serde_json::from_slice::<TypeOnly>(line)
    {
        // serde's words for a tag that names no message type.
        if err
            .to_string()
            .starts_with(&format!("unknown variant `{kind}`"))
        {
            let shown: String = kind.chars().take(40).collect();
            return format!("unknown protocol message type {shown:?}");
        }
    }
    format!("malformed protocol message: {err}")
}

/// Parses one line; a big one on the blocking pool, so that a kernel writing large outputs
/// (even ones about to be dropped) does not stall the thread that also serves HTTP requests.
/// Hands the buffer back for reuse.
async fn parse(line: Vec<u8>) -> (serde_json::Result<DriverMsg>, Vec<u8>) {
    if line.len() <= PARSE_INLINE_BYTES {
        return (serde_json::from_slice(&line), line);
    }
    match tokio::task::spawn_blocking(move || (serde_json::from_slice(&line), line)).await {
        Ok(done) => done,
        Err(e) => (
            Err(serde::de::Error::custom(format!("parser task failed: {e}"))),
            Vec::new(),
        ),
    }
}

/// Read protocol lines, forwarding parsed messages; ends with exactly one `Closed`.
/// On a protocol violation the kernel is killed (through `killer`) and reading stops.
pub(crate) async fn read_messages(
    rx: pipe::Receiver,
    queue: QueueTx,
    pid: u32,
    killer: Interrupter,
    replies: Replies,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, rx);
    let mut buf = Vec::new();
    let end = loop {
        buf.clear();
        // Do not keep a big line's buffer for the kernel's whole life.
        buf.shrink_to(LINE_BUFFER_KEPT);
        match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => break None,
            Ok(_) if !buf.ends_with(b"\n") => {
                if buf.len() >= MAX_LINE_BYTES {
                    break Some(format!(
                        "a protocol message longer than {} + {}",
                        human_bytes(MAX_OUTPUT_BYTES as u64),
                        human_bytes(LINE_MARGIN as u64)
                    ));
                }
                // Partial line then EOF: the child died mid-write.
                break None;
            }
            Ok(_) => {
                let Some(permit) = queue.reserve(buf.len()).await else {
                    return;
                };
                let parsed;
                (parsed, buf) = parse(buf).await;
                match parsed {
                    // Answered to whoever asked, not queued: the kernel's consumer may be
                    // busy awaiting a cell, or idle and not reading at all.
                    Ok(DriverMsg::Introspected { id, result }) => {
                        drop(permit);
                        introspect::deliver(&replies, id, result);
                    }
                    Ok(msg) => {
                        let incoming = Incoming::Msg(msg, buf.len(), permit);
                        if queue.tx.send(incoming).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let preview: String =
                            String::from_utf8_lossy(&buf).chars().take(200).collect();
                        log::error!("kernel {pid}: bad protocol line ({e}): {preview}");
                        break Some(describe_bad_line(&buf, &e));
                    }
                }
            }
            Err(e) => {
                log::error!("kernel {pid}: error reading protocol pipe: {e}");
                break Some(format!("protocol read error: {e}"));
            }
        }
    };
    if let Some(reason) = &end {
        log::error!("kernel {pid} broke the protocol ({reason}); killing it");
        // Kill now, not when the kernel next reads a message: the cell may be idle.
        killer.kill();
    }
    introspect::fail_all(&replies);
    // Release what the buffers hold before possibly waiting for room in the queue.
    drop(reader);
    drop(buf);
    let _ = queue.tx.send(Incoming::Closed(end)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(line: &str) -> String {
        match serde_json::from_str::<DriverMsg>(line) {
            Ok(m) => panic!("parsed {m:?}"),
            Err(e) => describe_bad_line(line.as_bytes(), &e),
        }
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            why(r#"{"type":"bogus","id":1}"#),
            r#"unknown protocol message type "bogus""#
        );
        assert!(why("not json").starts_with("malformed protocol message: "));
        assert!(why(r#"{"type":"done","id":1,"status":"bogus"}"#)
            .starts_with("malformed protocol message: unknown variant"));
        assert!(why(r#"{"type":"output","id":1}"#).contains("missing field"));
    }
}
