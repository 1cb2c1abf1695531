//! The WebSocket bridge: a tab connected to an instance that does not own its notebook is
//! relayed, frame by frame, to a session on the owner's room over the internal channel
//! ([`super::internal`]), which is authenticated with the signed identity of the user.
//!
//! What the owner sends goes through the tab's own bounded outbox, so a slow tab is closed
//! with 1013 exactly as it would be on the owner. When the owner goes away the tab is closed
//! with 1012 and reconnects (landing on the new owner, or bridging again).

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use super::identity::IDENTITY_HEADER;
use super::Cluster;
use crate::room::outbox::{CloseOrder, Outbox, Pushed};
use crate::room::Wake;

/// The internal path of a notebook's socket on its owner.
pub const INTERNAL_WS_PATH: &str = "/internal/cluster/ws/notebooks";

/// How long connecting to the owner may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Close code telling the tab to reconnect because the server side moved (RFC 6455 1012).
pub const CLOSE_RESTART: u16 = 1012;

/// The owner's end of a bridge.
pub struct OwnerEnd {
    /// Its internal socket URL ([`owner_socket_url`]).
    pub url: String,
    /// The user's identity, signed with the cluster secret.
    pub proof: String,
    /// The notebook.
    pub notebook_id: String,
    /// The owning instance's id, as the lease named it when the bridge opened.
    pub owner_id: String,
    /// This instance's cluster (lease look-ups, shutdown).
    pub cluster: Cluster,
}

/// Where the relay delivers to: the tab's session.
pub struct TabEnd {
    /// The session's outbox (bounded; a close order ends the session).
    pub outbox: Arc<Outbox>,
    /// Wakes the session to write what was queued.
    pub wake: Recipient<Wake>,
    /// The outbox's event limit (see [`crate::room::outbox::max_events`]), sized for the largest notebook allowed
    /// since the notebook's own size is not known here.
    pub max_events: usize,
}

impl TabEnd {
    /// Queues one frame from the owner; false when the tab is over its limits or closing.
    fn deliver(&self, text: String) -> bool {
        match self.outbox.push(Arc::new(text), self.max_events) {
            Pushed::Wake => {
                self.wake.do_send(Wake);
                true
            }
            Pushed::Queued => true,
            Pushed::Dropped => {
                self.wake.do_send(Wake);
                false
            }
        }
    }

    /// Closes the tab with `code` after what is already queued.
    fn close(&self, code: u16, reason: &str) {
        let order = CloseOrder {
            code,
            reason: reason.to_string(),
        };
        if self.outbox.close(order) {
            self.wake.do_send(Wake);
        }
    }
}

/// The owner's internal socket URL for a notebook, from its `INSTANCE_URL` (always
/// `http://`: the setting refuses anything else).
pub fn owner_socket_url(instance_url: &str, notebook_id: &str) -> Option<String> {
    let host = instance_url.trim_end_matches('/').strip_prefix("http://")?;
    Some(format!("ws://{host}{INTERNAL_WS_PATH}/{notebook_id}"))
}

/// Relays until either side ends: `from_tab` carries the tab's frames (closed when the tab
/// goes), and the owner's frames are queued on `tab`.
pub async fn relay(owner: OwnerEnd, mut from_tab: mpsc::UnboundedReceiver<String>, tab: TabEnd) {
    let OwnerEnd {
        url,
        proof,
        notebook_id,
        owner_id,
        cluster,
    } = owner;
    let mut stopping = cluster.stopping();
    let gone = "lost the server instance that has this notebook open; reconnect";
    let mut request = match url.as_str().into_client_request() {
        Ok(request) => request,
        Err(e) => {
            log::error!("bridge: bad owner URL {url}: {e}");
            tab.close(CLOSE_RESTART, gone);
            return;
        }
    };
    match HeaderValue::from_str(&proof) {
        Ok(value) => {
            request.headers_mut().insert(IDENTITY_HEADER, value);
        }
        Err(e) => {
            log::error!("bridge: identity proof is not a header value: {e}");
            tab.close(CLOSE_RESTART, gone);
            return;
        }
    }
    let connected =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request)).await;
    let stream = match connected {
        Ok(Ok((stream, _))) => stream,
        Ok(Err(e)) => {
            log::warn!("bridge: connecting to the owner at {url} failed: {e}");
            tab.close(CLOSE_RESTART, gone);
            return;
        }
        Err(_) => {
            log::warn!("bridge: connecting to the owner at {url} timed out");
            tab.close(CLOSE_RESTART, gone);
            return;
        }
    };
    let (mut to_owner, mut from_owner) = stream.split();
    // A frozen or cut-off owner sends nothing, not even a close: the lease tells.
    let mut check = tokio::time::interval(cluster.renew_every());
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = check.tick() => {
                let moved = match cluster.remote_owner(&notebook_id).await {
                    Ok(Some(holder)) => holder.instance_id != owner_id,
                    // Expired (the owner is gone) or now held here.
                    Ok(None) => true,
                    // The database is away: keep relaying while the owner does.
                    Err(_) => false,
                };
                if moved {
                    log::info!("bridge: notebook {notebook_id} left instance {owner_id}; closing the tab");
                    tab.close(CLOSE_RESTART, gone);
                    let _ = to_owner.close().await;
                    return;
                }
            },
            // This instance is stopping: the tab reconnects elsewhere, as a local one would.
            // (A dropped sender means the server is gone: stopping too.)
            _ = async { stopping.wait_for(|stopping| *stopping).await.is_ok() } => {
                tab.close(1001, "server shutting down");
                let _ = to_owner.close().await;
                return;
            },
            frame = from_tab.recv() => match frame {
                Some(text) => {
                    if to_owner.send(Message::Text(text)).await.is_err() {
                        tab.close(CLOSE_RESTART, gone);
                        return;
                    }
                }
                // The tab went away: end the owner's session too.
                None => {
                    let _ = to_owner.close().await;
                    return;
                }
            },
            frame = from_owner.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if !tab.deliver(text) {
                        let _ = to_owner.close().await;
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((CLOSE_RESTART, gone.to_string()));
                    tab.close(code, &reason);
                    return;
                }
                // The owner pings to see the bridge is alive: the queued pong goes out now.
                Some(Ok(Message::Ping(_))) => {
                    if to_owner.flush().await.is_err() {
                        tab.close(CLOSE_RESTART, gone);
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    log::warn!("bridge: the owner's socket failed: {e}");
                    tab.close(CLOSE_RESTART, gone);
                    return;
                }
                None => {
                    tab.close(CLOSE_RESTART, gone);
                    return;
                }
            },
        }
    }
}
