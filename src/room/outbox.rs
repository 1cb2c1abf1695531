//! A session's bounded outgoing queue.
//!
//! The room never writes into a session's actor mailbox per event: `do_send` ignores mailbox
//! capacity, and a WebSocket actor whose client stopped reading is not even polled (its
//! context runs inside the response stream, which the HTTP dispatcher stops polling under
//! backpressure). Instead the room appends to this queue and sends at most one wake-up while
//! one is pending; past the limits the queue is dropped and the session told to close (1013),
//! so a stalled client costs a bounded amount of memory and never delays anyone else.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most events queued for one session.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Most bytes queued for one session.
pub const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;

/// Why and how a session must close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseOrder {
    /// WebSocket close code.
    pub code: u16,
    /// Short reason.
    pub reason: String,
}

/// What [`Outbox::push`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Queued; the session must be woken (no wake-up is pending yet).
    Wake,
    /// Queued; a wake-up is already pending.
    Queued,
    /// The session is closing or over its limits; it was told to close and must be removed.
    Dropped,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Arc<String>>,
    bytes: usize,
    wake_pending: bool,
    close: Option<CloseOrder>,
}

/// Events waiting to be written to one session.
#[derive(Default)]
pub struct Outbox {
    inner: Mutex<Inner>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Arc<Outbox> {
        Arc::new(Outbox::default())
    }

    /// Queues an event, enforcing the limits.
    pub fn push(&self, event: Arc<String>) -> Pushed {
        let Ok(mut inner) = self.inner.lock() else {
            return Pushed::Dropped;
        };
        if inner.close.is_some() {
            return Pushed::Dropped;
        }
        if inner.queue.len() >= MAX_QUEUED_EVENTS || inner.bytes + event.len() > MAX_QUEUED_BYTES {
            crate::metrics::ws_slow_client(inner.queue.len() + 1);
            inner.queue.clear();
            inner.bytes = 0;
            inner.close = Some(CloseOrder {
                code: 1013,
                reason: "too slow: reconnect and re-fetch".into(),
            });
            return wake_once(&mut inner, Pushed::Dropped);
        }
        inner.bytes += event.len();
        inner.queue.push_back(event);
        crate::metrics::ws_message_queued();
        wake_once(&mut inner, Pushed::Queued)
    }

    /// Orders the session to close after what is already queued.
    pub fn close(&self, order: CloseOrder) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        if inner.close.is_none() {
            inner.close = Some(order);
        }
        !std::mem::replace(&mut inner.wake_pending, true)
    }

    /// Takes everything queued (and the close order, if any); the next push wakes again.
    pub fn drain(&self) -> (Vec<Arc<String>>, Option<CloseOrder>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (
                Vec::new(),
                Some(CloseOrder {
                    code: 1011,
                    reason: "internal error".into(),
                }),
            );
        };
        inner.wake_pending = false;
        inner.bytes = 0;
        let events = inner.queue.drain(..).collect();
        (events, inner.close.clone())
    }
}

fn wake_once(inner: &mut Inner, otherwise: Pushed) -> Pushed {
    if std::mem::replace(&mut inner.wake_pending, true) {
        otherwise
    } else if otherwise == Pushed::Dropped {
        Pushed::Dropped
    } else {
        Pushed::Wake
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_until_drained() {
        let outbox = Outbox::new();
        assert_eq!(outbox.push(Arc::new("a".into())), Pushed::Wake);
        assert_eq!(outbox.push(Arc::new("b".into())), Pushed::Queued);
        let (events, close) = outbox.drain();
        assert_eq!(events.len(), 2);
        assert!(close.is_none());
        assert_eq!(outbox.push(Arc::new("c".into())), Pushed::Wake);
    }

    #[test]
    fn overflow_drops_the_queue_and_orders_1013() {
        let outbox = Outbox::new();
        for _ in 0..MAX_QUEUED_EVENTS {
            assert_ne!(outbox.push(Arc::new("x".into())), Pushed::Dropped);
        }
        assert_eq!(outbox.push(Arc::new("x".into())), Pushed::Dropped);
        let (events, close) = outbox.drain();
        assert!(events.is_empty());
        assert_eq!(close.map(|c| c.code), Some(1013));
        assert_eq!(outbox.push(Arc::new("late".into())), Pushed::Dropped);
    }
}
