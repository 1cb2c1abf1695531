//! `WsSession`: the actor behind one WebSocket connection.
//!
//! States: `AwaitingAuth` (only `authenticate` is accepted, within a deadline) ->
//! `Authenticated` (token verified; joining the room) -> `Joined` (runs, interrupts, token
//! refreshes; room events flow out through the session's bounded outbox).
//!
//! With several instances, a session whose notebook is owned by another instance goes from
//! `Authenticated` to `Bridged`: its frames are relayed to a session on the owner (see
//! [`crate::cluster::bridge`]), which starts `Authenticated` as the user this one verified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web_actors::ws::{self, CloseCode, CloseReason};
use tokio::sync::mpsc;

use super::protocol::{self, ClientMessage};
use crate::auth::Verifier;
use crate::cluster::bridge;
use crate::cluster::identity::Vouched;
use crate::cluster::Holder;
use crate::collab::cursor::Selection;
use crate::collab::{Role, SessionRole};
use crate::config::Config;
use crate::error::ApiError;
use crate::room::actor::collab::{Focus, MoveCursor};
use crate::room::messages::{Interrupt, Join, Joined, Leave, RunCell, YjsUpdate};
use crate::room::outbox::{max_events, Outbox};
use crate::room::{NotebookRoom, RoomRegistry, Wake};

/// Why a tab is not relayed to its notebook's owner (a close reason: under 123 bytes).
const NOT_FORWARDED: &str =
    "This notebook is open on another server instance and forwarding is not configured";

/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(10);
/// A client silent for this long is dropped.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often token expiry is checked.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_millis(500);

/// Where the session is in its life.
enum Phase {
    /// Waiting for `authenticate`.
    AwaitingAuth,
    /// Token verified; joining the notebook's room.
    Authenticated { user_id: String },
    /// Joined: receiving the room's events.
    Joined {
        user_id: String,
        room: Addr<NotebookRoom>,
        session_id: u64,
    },
    /// Relayed to a session on the instance owning the notebook.
    Bridged {
        user_id: String,
        /// The tab's frames, on their way to the owner (dropping it ends the relay).
        to_owner: mpsc::UnboundedSender<String>,
    },
    /// Closing; nothing more is accepted.
    Closed,
}

/// One WebSocket connection on one notebook.
pub struct WsSession {
    phase: Phase,
    notebook_id: String,
    verifier: Arc<Verifier>,
    rooms: RoomRegistry,
    outbox: Arc<Outbox>,
    /// The room joined and the id it gave us, kept apart from `phase` so that leaving works
    /// from any state the session ends in.
    membership: Option<(Addr<NotebookRoom>, u64)>,
    last_heard: Instant,
    auth_timeout: Duration,
    grace_secs: i64,
    expires_at: i64,
    /// Display name from the token, for presence.
    name: Option<String>,
    /// The user's role on the notebook, set on join (the room updates it on member changes).
    role: Arc<SessionRole>,
    /// Set on the owner's end of a bridge: the user the bridging instance verified, joined
    /// as the session starts. Such a session never bridges again.
    relayed_for: Option<Vouched>,
    /// Whether this is the owner's end of a bridge (then it never bridges itself).
    relayed: bool,
    /// The event limit of a bridged tab's outbox (the largest notebook's).
    bridge_max_events: usize,
    /// Counts the connection in `ws_sessions` until the session is dropped.
    _live: crate::metrics::GaugeGuard,
}

/// How joining the notebook came out.
enum JoinOutcome {
    /// Joined the local room.
    Joined(Addr<NotebookRoom>, Joined),
    /// Another live instance owns the notebook.
    Bridge(Holder),
    /// Not now (the reason says why); the tab should retry.
    Retry(String),
    /// Missing, or not the user's to open.
    NotFound,
}

impl WsSession {
    /// A session for `notebook_id`, not yet authenticated.
    pub fn new(
        notebook_id: String,
        verifier: Arc<Verifier>,
        rooms: RoomRegistry,
        config: &Config,
    ) -> WsSession {
        WsSession {
            phase: Phase::AwaitingAuth,
            notebook_id,
            verifier,
            rooms,
            outbox: Outbox::new(),
            membership: None,
            last_heard: Instant::now(),
            auth_timeout: Duration::from_secs(config.ws_auth_timeout_secs),
            grace_secs: i64::try_from(config.ws_auth_grace_secs).unwrap_or(i64::MAX),
            expires_at: i64::MAX,
            name: None,
            role: Arc::new(SessionRole::new(Role::Viewer)),
            relayed_for: None,
            relayed: false,
            bridge_max_events: max_events(
                usize::try_from(config.quotas.cells_per_notebook).unwrap_or(usize::MAX),
            ),
            _live: crate::metrics::ws_session_opened(),
        }
    }

    /// The owner's end of a bridge: authenticated as `user` (whom another instance verified
    /// and vouched for), joined as it starts; that instance enforces the token's expiry.
    pub fn relayed_for(mut self, user: Vouched) -> WsSession {
        self.relayed_for = Some(user);
        self.relayed = true;
        self
    }

    /// The session's role on its notebook (viewer until it has joined).
    pub fn role(&self) -> Role {
        self.role.get()
    }

    /// Whether the session may change the notebook (cells, runs, kernel): editor or owner.
    pub fn can_edit(&self) -> bool {
        matches!(self.phase, Phase::Joined { .. }) && self.role.get().can_edit()
    }

    /// Answers `error` unless the session may edit; true when it may.
    fn require_edit(&self, what: &str, ctx: &mut ws::WebsocketContext<Self>) -> bool {
        if self.can_edit() {
            return true;
        }
        ctx.text(protocol::error(&format!(
            "{what} needs the editor role on this notebook; you are a {}",
            self.role.get().as_str()
        )));
        false
    }

    /// Sends `error {message}` then closes with `code`.
    fn fail(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, message: &str) {
        ctx.text(protocol::error(message));
        self.close(ctx, code, message);
    }

    fn close(&mut self, ctx: &mut ws::WebsocketContext<Self>, code: CloseCode, reason: &str) {
        self.phase = Phase::Closed;
        ctx.close(Some(CloseReason {
            code,
            description: Some(reason.to_string()),
        }));
        ctx.stop();
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if let Phase::Bridged { user_id, to_owner } = &self.phase {
            // Token refreshes are this instance's business (it verified the token); the rest
            // is the owner's, which answers errors itself.
            match protocol::parse(text) {
                Ok(ClientMessage::RefreshAuth { token }) => {
                    self.refresh_auth(token, user_id.clone(), ctx)
                }
                // A send fails only once the relay ended; its close order is on the way.
                _ => {
                    let _ = to_owner.send(text.to_string());
                }
            }
            return;
        }
        let message = protocol::parse(text);
        match (&self.phase, message) {
            (Phase::AwaitingAuth, Ok(ClientMessage::Authenticate { token: Some(token) })) => {
                self.authenticate(token, ctx)
            }
            (Phase::AwaitingAuth, Ok(ClientMessage::Authenticate { token: None })) => {
                crate::metrics::auth_failure("ws_missing_token");
                self.fail(
                    ctx,
                    CloseCode::Policy,
                    "authentication failed: missing token",
                )
            }
            (Phase::AwaitingAuth, Ok(_)) => {
                crate::metrics::auth_failure("ws_not_authenticated");
                self.fail(
                    ctx,
                    CloseCode::Policy,
                    "not authenticated: send {\"type\":\"authenticate\",\"token\":...} first",
                )
            }
            (Phase::AwaitingAuth, Err(e)) => {
                crate::metrics::auth_failure("ws_not_authenticated");
                self.fail(ctx, CloseCode::Policy, &format!("not authenticated: {e}"))
            }
            (Phase::Joined { .. }, Ok(message)) => self.on_joined(message, ctx),
            (Phase::Joined { .. }, Err(e)) => ctx.text(protocol::error(&e)),
            // Joining runs inside `ctx.wait`, so frames only arrive here after it settled.
            (Phase::Authenticated { user_id }, _) => {
                log::debug!("frame from {user_id} while joining ignored");
            }
            (Phase::Closed, _) | (Phase::Bridged { .. }, _) => {}
        }
    }

    fn authenticate(&mut self, token: String, ctx: &mut ws::WebsocketContext<Self>) {
        let verifier = self.verifier.clone();
        // `wait` holds further frames until this is settled, so the state machine stays linear.
        ctx.wait(
            async move { verifier.verify(&token).await }
                .into_actor(self)
                .map(|result, session, ctx| match result {
                    Ok(verified) => {
                        log::info!("websocket authenticated as {}", verified.user_id);
                        session.expires_at = verified.expires_at;
                        session.name = verified.name.clone();
                        session.phase = Phase::Authenticated {
                            user_id: verified.user_id.clone(),
                        };
                        session.join(verified.user_id, ctx);
                    }
                    Err(e) => {
                        log::info!("websocket authentication failed: {e}");
                        session.fail(
                            ctx,
                            CloseCode::Policy,
                            &format!("authentication failed: {e}"),
                        );
                    }
                }),
        );
    }

    fn join(&mut self, user_id: String, ctx: &mut ws::WebsocketContext<Self>) {
        let rooms = self.rooms.clone();
        let notebook_id = self.notebook_id.clone();
        let outbox = self.outbox.clone();
        let wake = ctx.address().recipient::<Wake>();
        let user = user_id.clone();
        let name = self.name.clone();
        let shared_role = self.role.clone();
        let may_bridge = !self.relayed;
        ctx.wait(
            async move {
                if may_bridge {
                    match rooms.cluster().remote_owner(&notebook_id).await {
                        Ok(Some(holder)) => return JoinOutcome::Bridge(holder),
                        Ok(None) => {}
                        // Opening locally meets the same failure and answers it.
                        Err(e) => log::warn!("looking up the owner of {notebook_id} failed: {e}"),
                    }
                }
                let (room, role) = match rooms.open_as(&user, &notebook_id, Role::Viewer).await {
                    Ok(opened) => opened,
                    // Owned elsewhere (taken over meanwhile), or the database is away.
                    Err(ApiError::Unavailable(reason)) => return JoinOutcome::Retry(reason),
                    Err(_) => return JoinOutcome::NotFound,
                };
                shared_role.set(role);
                let join = Join {
                    outbox,
                    wake,
                    user_id: user,
                    name,
                    role: shared_role,
                };
                match room.send(join).await {
                    Ok(joined) => JoinOutcome::Joined(room, joined),
                    Err(_) => JoinOutcome::Retry("the notebook was closing; try again".into()),
                }
            }
            .into_actor(self)
            .map(move |outcome, session, ctx| {
                if let JoinOutcome::Bridge(holder) = outcome {
                    // The owner's session says `authenticated` once it has joined.
                    return session.bridge(user_id, holder, ctx);
                }
                // Sent only once the join has settled, so every broadcast after it reaches
                // this session: a client that acts on `authenticated` never misses its echo.
                ctx.text(protocol::authenticated(&user_id));
                session.on_join_settled(user_id, outcome, ctx)
            }),
        );
    }

    /// Enters `Joined`; or closes with "Notebook not found" when the join was refused, or with
    /// 1013 (try again) and the reason when the notebook cannot be opened here right now.
    fn on_join_settled(
        &mut self,
        user_id: String,
        outcome: JoinOutcome,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        match outcome {
            JoinOutcome::Joined(room, joined) => {
                self.membership = Some((room.clone(), joined.session_id));
                self.phase = Phase::Joined {
                    user_id,
                    room,
                    session_id: joined.session_id,
                };
            }
            JoinOutcome::Retry(reason) => self.fail(ctx, CloseCode::Again, &reason),
            // Same answer whether the notebook is missing or someone else's.
            JoinOutcome::NotFound | JoinOutcome::Bridge(_) => {
                self.fail(ctx, CloseCode::Policy, "Notebook not found")
            }
        }
    }

    /// Relays this tab to a session on `holder`, the notebook's owner.
    fn bridge(&mut self, user_id: String, holder: Holder, ctx: &mut ws::WebsocketContext<Self>) {
        let vouched = Vouched {
            user_id: user_id.clone(),
            name: self.name.clone(),
        };
        let proof = match self.rooms.cluster().sign_identity(&vouched) {
            Ok(proof) => proof,
            Err(e) => {
                log::error!(
                    "notebook {} is open on instance {} ({}) but this tab cannot be bridged \
                     there: {e}; set the same CLUSTER_SECRET on every instance",
                    self.notebook_id,
                    holder.instance_id,
                    holder.url
                );
                return self.fail(ctx, CloseCode::Again, NOT_FORWARDED);
            }
        };
        let Some(url) = bridge::owner_socket_url(&holder.url, &self.notebook_id) else {
            log::error!(
                "instance {} has an unusable INSTANCE_URL {}",
                holder.instance_id,
                holder.url
            );
            return self.fail(ctx, CloseCode::Again, NOT_FORWARDED);
        };
        log::info!(
            "websocket on {} bridged to instance {} ({})",
            self.notebook_id,
            holder.instance_id,
            holder.url
        );
        let (to_owner, from_tab) = mpsc::unbounded_channel();
        let tab = bridge::TabEnd {
            outbox: self.outbox.clone(),
            wake: ctx.address().recipient(),
            max_events: self.bridge_max_events,
        };
        let owner = bridge::OwnerEnd {
            url,
            proof,
            notebook_id: self.notebook_id.clone(),
            owner_id: holder.instance_id.clone(),
            cluster: self.rooms.cluster().clone(),
        };
        tokio::spawn(bridge::relay(owner, from_tab, tab));
        self.phase = Phase::Bridged { user_id, to_owner };
    }

    /// Replaces the session's token with a fresher one of the same user.
    fn refresh_auth(
        &self,
        token: Option<String>,
        expected: String,
        ctx: &mut ws::WebsocketContext<Self>,
    ) {
        let Some(token) = token else {
            return ctx.text(protocol::error("refresh_auth needs a token"));
        };
        let verifier = self.verifier.clone();
        ctx.wait(
            async move { verifier.verify(&token).await }
                .into_actor(self)
                .map(move |result, session, ctx| match result {
                    Ok(verified) if verified.user_id == expected => {
                        session.expires_at = verified.expires_at;
                        ctx.text(protocol::auth_refreshed(verified.expires_at));
                    }
                    Ok(_) => {
                        log::warn!("websocket refresh_auth with another user's token refused");
                        ctx.text(protocol::error(
                            "refresh_auth refused: the token belongs to another user",
                        ));
                    }
                    Err(e) => ctx.text(protocol::error(&format!("refresh_auth refused: {e}"))),
                }),
        );
    }

    fn on_joined(&mut self, message: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
        let Phase::Joined {
            user_id,
            room,
            session_id,
        } = &self.phase
        else {
            return;
        };
        let session_id = *session_id;
        match message {
            ClientMessage::Authenticate { .. } => ctx.text(protocol::error(
                "already authenticated; use refresh_auth to replace the token",
            )),
            ClientMessage::RunCell { cell_id: None } => {
                ctx.text(protocol::error("run_cell needs a cellId"))
            }
            ClientMessage::RunCell {
                cell_id: Some(cell_id),
            } => {
                if !self.require_edit("run_cell", ctx) {
                    return;
                }
                let room = room.clone();
                ctx.spawn(
                    async move { room.send(RunCell { cell_id }).await }
                        .into_actor(self)
                        .map(|result, _, ctx| match result {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => ctx.text(protocol::error(&e.to_string())),
                            Err(_) => ctx.text(protocol::error("the notebook is closing")),
                        }),
                );
            }
            ClientMessage::Interrupt => {
                if self.require_edit("interrupt", ctx) {
                    room.do_send(Interrupt);
                }
            }
            ClientMessage::Focus { cell_id } => {
                // Sent now (not when first polled), so it reaches the room before a cursor
                // report that follows it.
                let request = room.send(Focus {
                    session_id,
                    cell_id,
                });
                ctx.spawn(request.into_actor(self).map(|result, _, ctx| match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => ctx.text(protocol::error(&format!("focus: {e}"))),
                    Err(_) => ctx.text(protocol::error("the notebook is closing")),
                }));
            }
            ClientMessage::Cursor { .. } if !self.can_edit() => {
                ctx.text(protocol::error("cursor refused: viewers cannot edit cells"))
            }
            ClientMessage::Cursor {
                cell_id,
                anchor,
                head,
            } => {
                let at = match (cell_id, anchor, head) {
                    (None, _, _) => None,
                    (Some(cell_id), Some(anchor), Some(head)) => {
                        match Selection::parse(&anchor, &head) {
                            Ok(selection) => Some((cell_id, selection)),
                            Err(e) => return ctx.text(protocol::error(&e.to_string())),
                        }
                    }
                    (Some(_), _, _) => {
                        return ctx.text(protocol::error("cursor needs an anchor and a head"))
                    }
                };
                let request = room.send(MoveCursor { session_id, at });
                ctx.spawn(request.into_actor(self).map(|result, _, ctx| match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => ctx.text(protocol::error(&format!("cursor: {e}"))),
                    Err(_) => ctx.text(protocol::error("the notebook is closing")),
                }));
            }
            ClientMessage::Yjs { .. } if !self.can_edit() => {
                ctx.text(protocol::error("yjs refused: viewers cannot edit cells"))
            }
            ClientMessage::Yjs {
                cell_id: Some(cell_id),
                update: Some(update),
            } => {
                // Sent now, not when the future is first polled, so a run_cell that follows
                // reaches the room after this edit.
                let request = room.send(YjsUpdate { cell_id, update });
                ctx.spawn(request.into_actor(self).map(|result, _, ctx| match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => ctx.text(protocol::error(&e)),
                    Err(_) => ctx.text(protocol::error("the notebook is closing")),
                }));
            }
            ClientMessage::Yjs { .. } => {
                ctx.text(protocol::error("yjs needs a cellId and an update"))
            }
            ClientMessage::RefreshAuth { token } => {
                let expected = user_id.clone();
                self.refresh_auth(token, expected, ctx);
            }
        }
    }

    /// Writes what the room queued; obeys a close order.
    fn flush_outbox(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let (events, close) = self.outbox.drain();
        for event in events {
            ctx.text(event.as_str());
        }
        if let Some(order) = close {
            if order.code == 1013 {
                log::warn!(
                    "websocket on {} too slow; closing it (1013)",
                    self.notebook_id
                );
            }
            self.close(ctx, CloseCode::from(order.code), &order.reason);
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(user) = self.relayed_for.take() {
            log::info!("bridged websocket joining as {}", user.user_id);
            self.name = user.name;
            self.phase = Phase::Authenticated {
                user_id: user.user_id.clone(),
            };
            self.join(user.user_id, ctx);
        }
        ctx.run_later(self.auth_timeout, |session, ctx| {
            if matches!(session.phase, Phase::AwaitingAuth) {
                crate::metrics::auth_failure("ws_timeout");
                session.fail(ctx, CloseCode::Policy, "authentication timed out");
            }
        });
        ctx.run_interval(PING_EVERY, |session, ctx| {
            if session.last_heard.elapsed() > CLIENT_TIMEOUT {
                log::info!("websocket client silent for {CLIENT_TIMEOUT:?}; dropping it");
                session.phase = Phase::Closed;
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
        ctx.run_interval(EXPIRY_CHECK_EVERY, |session, ctx| {
            if matches!(session.phase, Phase::Joined { .. } | Phase::Bridged { .. })
                && chrono::Utc::now().timestamp()
                    > session.expires_at.saturating_add(session.grace_secs)
            {
                session.fail(
                    ctx,
                    CloseCode::Other(4001),
                    "token expired: reconnect with a fresh token",
                );
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Ends a bridge's relay, which closes the owner's end too.
        self.phase = Phase::Closed;
        if let Some((room, session_id)) = self.membership.take() {
            room.do_send(Leave { session_id });
        }
    }
}

impl Handler<Wake> for WsSession {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        if !matches!(self.phase, Phase::Closed) {
            self.flush_outbox(ctx);
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) if matches!(self.phase, Phase::AwaitingAuth) => {
                crate::metrics::auth_failure("ws_not_authenticated");
                self.fail(
                    ctx,
                    CloseCode::Policy,
                    "not authenticated: send {\"type\":\"authenticate\",\"token\":...} first",
                )
            }
            Ok(ws::Message::Binary(_)) => {
                ctx.text(protocol::error("binary messages are not supported"))
            }
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Continuation(_)) => self.fail(
                ctx,
                CloseCode::Unsupported,
                "fragmented messages are not supported",
            ),
            Ok(ws::Message::Close(_)) => {
                self.close(ctx, CloseCode::Normal, "bye");
            }
            Err(ws::ProtocolError::Overflow) => {
                self.fail(ctx, CloseCode::Size, "message larger than 1 MiB refused")
            }
            Err(ws::ProtocolError::Io(e)) if is_invalid_utf8(&e) => {
                self.fail(ctx, CloseCode::Invalid, "text frame is not valid UTF-8")
            }
            Err(e) => {
                log::info!("websocket protocol error: {e}");
                self.phase = Phase::Closed;
                ctx.stop();
            }
        }
    }
}

/// Whether a stream error is a text frame that is not UTF-8 (actix reports it as an I/O error
/// carrying the `Utf8Error` text, the only frame error it words that way).
fn is_invalid_utf8(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().contains("utf-8")
}
