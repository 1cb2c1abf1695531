//! Introspection requests (completion, inspection, variable summaries) that reach a kernel
//! while a cell runs.
//!
//! The driver reads its command pipe on a thread of its own and answers these on helper
//! threads (`introspect.py`), so they need neither the kernel's main thread nor the executor,
//! which is busy awaiting the running cell. An [`Introspector`] therefore writes to the
//! command pipe directly (sharing the kernel's writer, one whole line at a time), and the
//! reader task routes each `introspected` answer to the request waiting for it by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use super::protocol::Command;

/// The kernel's command pipe, shared by the kernel and its introspectors.
pub(crate) type SharedWriter = Arc<tokio::sync::Mutex<pipe::Sender>>;

/// Most requests whose line is not yet written; past that the kernel is not reading its pipe
/// (stuck in C code holding the GIL, say) and new requests fail at once instead of queueing.
const MAX_UNWRITTEN: usize = 16;

/// Requests waiting for their answer, by id.
pub(crate) type Replies = Arc<Mutex<Waiting>>;

/// The requests waiting for an answer, and whether answers can still come.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    by_id: HashMap<u64, oneshot::Sender<Value>>,
    /// The kernel's message pipe ended: nothing will be answered any more.
    closed: bool,
}

/// What to ask the kernel.
#[derive(Debug, Clone)]
pub enum IntrospectRequest {
    /// Completions at `cursor` (a code point offset into `code`).
    Complete {
        /// The cell's code.
        code: String,
        /// Code point offset, at most the code's length.
        cursor: usize,
    },
    /// Signature and docstring of what is at `cursor`.
    Inspect {
        /// The cell's code.
        code: String,
        /// Code point offset, at most the code's length.
        cursor: usize,
    },
    /// Type and summary of each defined name among `names`.
    Variables {
        /// The names.
        names: Vec<String>,
    },
}

/// Why an introspection request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum IntrospectError {
    /// The kernel is gone (or died while the request waited).
    #[error("the kernel is gone")]
    Gone,
    /// No answer within the time limit (the kernel is busy or its helpers are stuck).
    #[error("the kernel did not answer in time")]
    TimedOut,
}

/// A handle that sends introspection requests to a live kernel; cheap to clone.
#[derive(Clone, Debug)]
pub struct Introspector {
    /// Weak, so the pipe still closes (EOF for the driver) when the kernel lets it go.
    writer: Weak<tokio::sync::Mutex<pipe::Sender>>,
    replies: Replies,
    next_id: Arc<AtomicU64>,
    unwritten: Arc<AtomicUsize>,
}

impl Introspector {
    pub(crate) fn new(writer: &SharedWriter, replies: &Replies) -> Introspector {
        Introspector {
            writer: Arc::downgrade(writer),
            replies: replies.clone(),
            next_id: Arc::new(AtomicU64::new(0)),
            unwritten: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sends `request` and waits at most `limit` for the kernel's answer (its JSON result,
    /// unchecked: the kernel is untrusted, callers validate the shape and cap the sizes).
    pub async fn request(
        &self,
        request: &IntrospectRequest,
        limit: Duration,
    ) -> Result<Value, IntrospectError> {
        let writer = self.writer.upgrade().ok_or(IntrospectError::Gone)?;
        if self.unwritten.load(Ordering::Relaxed) >= MAX_UNWRITTEN {
            return Err(IntrospectError::TimedOut);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let command = match request {
            IntrospectRequest::Complete { code, cursor } => Command::Complete {
                id,
                code,
                cursor: *cursor,
            },
            IntrospectRequest::Inspect { code, cursor } => Command::Inspect {
                id,
                code,
                cursor: *cursor,
            },
            IntrospectRequest::Variables { names } => Command::Variables { id, names },
        };
        let line = command.to_line().map_err(|e| {
            log::warn!("introspection request could not be encoded: {e}");
            IntrospectError::Gone
        })?;
        let (tx, rx) = oneshot::channel();
        match self.replies.lock() {
            Ok(mut waiting) if !waiting.closed => {
                waiting.by_id.insert(id, tx);
            }
            _ => return Err(IntrospectError::Gone),
        }
        // The write runs to its end in a task of its own, so giving up on the answer below
        // never leaves half a command line in the pipe.
        let unwritten = self.unwritten.clone();
        unwritten.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut pipe = writer.lock().await;
            if let Err(e) = pipe.write_all(&line).await {
                log::debug!("introspection request not written: {e}");
            }
            unwritten.fetch_sub(1, Ordering::Relaxed);
        });
        let answer = tokio::time::timeout(limit, rx).await;
        if let Ok(mut waiting) = self.replies.lock() {
            waiting.by_id.remove(&id);
        }
        match answer {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(IntrospectError::Gone),
            Err(_) => Err(IntrospectError::TimedOut),
        }
    }
}

/// Hands an `introspected` message to the request waiting for it (if any still waits).
pub(crate) fn deliver(replies: &Replies, id: Option<u64>, result: Value) {
    let waiting = id.and_then(|id| replies.lock().ok().and_then(|mut w| w.by_id.remove(&id)));
    if let Some(tx) = waiting {
        let _ = tx.send(result);
    }
}

/// Fails every waiting request at once (the kernel's message pipe ended).
pub(crate) fn fail_all(replies: &Replies) {
    if let Ok(mut waiting) = replies.lock() {
        waiting.closed = true;
        waiting.by_id.clear();
    }
}
