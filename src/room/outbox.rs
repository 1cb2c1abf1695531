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

/// Most events queued for one session, plus [`EVENTS_PER_CELL`] per cell of the notebook.
pub const MAX_QUEUED_EVENTS: usize = 4096;
/// Extra queue room per cell: starting a run queues a status for every cell of its plan in
/// one go (and a failure blocks every dependant at once), so a big notebook's run is a burst
/// that scales with the notebook, not a sign of a slow client.
pub const EVENTS_PER_CELL: usize = 2;

/// The event limit of a session's queue in a notebook of `cells` cells.
pub fn max_events(cells: usize) -> usize {
    MAX_QUEUED_EVENTS.saturating_add(cells.saturating_mul(EVENTS_PER_CELL))
}
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
    /// Of the queued events, how many (and how many bytes) are a join's welcome: they are
    /// bounded by the notebook itself, not by how fast the client reads, so they never count
    /// towards the limits (else a notebook of more than `MAX_QUEUED_EVENTS` cells could not
    /// be joined at all).
    welcome: usize,
    welcome_bytes: usize,
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

    /// Queues an event, enforcing the limits (`max_events` from [`max_events`]).
    pub fn push(&self, event: Arc<String>, max_events: usize) -> Pushed {
        let Ok(mut inner) = self.inner.lock() else {
            return Pushed::Dropped;
        };
        if inner.close.is_some() {
            return Pushed::Dropped;
        }
        let queued = inner.queue.len() - inner.welcome;
        let bytes = inner.bytes - inner.welcome_bytes;
        if queued >= max_events || bytes + event.len() > MAX_QUEUED_BYTES {
            crate::metrics::ws_slow_client(inner.queue.len() + 1);
            inner.queue.clear();
            inner.bytes = 0;
            inner.welcome = 0;
            inner.welcome_bytes = 0;
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

    /// Queues a joining session's welcome (the notebook's current state), exempt from the
    /// limits.
    pub fn push_welcome(&self, events: impl IntoIterator<Item = Arc<String>>) -> Pushed {
        let Ok(mut inner) = self.inner.lock() else {
            return Pushed::Dropped;
        };
        if inner.close.is_some() {
            return Pushed::Dropped;
        }
        let mut any = false;
        for event in events {
            any = true;
            inner.welcome += 1;
            inner.welcome_bytes += event.len();
            inner.bytes += event.len();
            inner.queue.push_back(event);
        }
        if !any {
            return Pushed::Queued;
        }
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
        inner.welcome = 0;
        inner.welcome_bytes = 0;
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
        assert_eq!(
            outbox.push(Arc::new("a".into()), MAX_QUEUED_EVENTS),
            Pushed::Wake
        );
        assert_eq!(
            outbox.push(Arc::new("b".into()), MAX_QUEUED_EVENTS),
            Pushed::Queued
        );
        let (events, close) = outbox.drain();
        assert_eq!(events.len(), 2);
        assert!(close.is_none());
        assert_eq!(
            outbox.push(Arc::new("c".into()), MAX_QUEUED_EVENTS),
            Pushed::Wake
        );
    }

    #[test]
    fn a_welcome_larger_than_the_limits_does_not_count_towards_them() {
        let outbox = Outbox::new();
        let welcome = (0..MAX_QUEUED_EVENTS * 2).map(|i| Arc::new(format!("cell {i}")));
        assert_eq!(outbox.push_welcome(welcome), Pushed::Wake);
        for _ in 0..MAX_QUEUED_EVENTS - 1 {
            assert_eq!(
                outbox.push(Arc::new("x".into()), MAX_QUEUED_EVENTS),
                Pushed::Queued
            );
        }
        let (events, close) = outbox.drain();
        assert_eq!(events.len(), MAX_QUEUED_EVENTS * 3 - 1);
        assert_eq!(close, None);
        // Broadcasts alone still hit the limit.
        for _ in 0..MAX_QUEUED_EVENTS {
            outbox.push(Arc::new("x".into()), MAX_QUEUED_EVENTS);
        }
        assert_eq!(
            outbox.push(Arc::new("x".into()), MAX_QUEUED_EVENTS),
            Pushed::Dropped
        );
    }

    #[test]
    fn a_bigger_notebook_allows_a_bigger_burst() {
        let outbox = Outbox::new();
        let limit = max_events(10_000);
        assert_eq!(limit, MAX_QUEUED_EVENTS + 20_000);
        for _ in 0..limit {
            assert_ne!(outbox.push(Arc::new("x".into()), limit), Pushed::Dropped);
        }
        assert_eq!(outbox.push(Arc::new("x".into()), limit), Pushed::Dropped);
    }

    #[test]
    fn overflow_drops_the_queue_and_orders_1013() {
        let outbox = Outbox::new();
        for _ in 0..MAX_QUEUED_EVENTS {
            assert_ne!(
                outbox.push(Arc::new("x".into()), MAX_QUEUED_EVENTS),
                Pushed::Dropped
            );
        }
        assert_eq!(
            outbox.push(Arc::new("x".into()), MAX_QUEUED_EVENTS),
            Pushed::Dropped
        );
        let (events, close) = outbox.drain();
        assert!(events.is_empty());
        assert_eq!(close.map(|c| c.code), Some(1013));
        assert_eq!(
            outbox.push(Arc::new("late".into()), MAX_QUEUED_EVENTS),
            Pushed::Dropped
        );
    }
}
