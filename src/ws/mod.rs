//! WebSocket sessions: one actor per connection, joined to its notebook's room.

pub mod protocol;
pub mod session;

use actix_web::{get, web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use crate::auth::Verifier;
use crate::server::AppState;

/// Largest accepted client message.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// `GET /api/ws/notebooks/{id}`: upgrades to a [`session::WsSession`].
#[utoipa::path(
    tag = "live",
    description = "Upgrades to a WebSocket. The socket itself needs no `Authorization` header: \
        its first message must be `authenticate` with a token. Client messages are \
        `WsClientMessage`s, server messages `WsServerMessage`s (see `components.schemas`). \
        A session that is refused gets an `error` message and a close frame.",
    params(("id" = String, Path, description = "The notebook")),
    responses(
        (status = 101, description = "Switching protocols: the socket is open; messages are `WsServerMessage` (server to client) and `WsClientMessage` (client to server)"),
        (status = 400, description = "Not a WebSocket handshake", content_type = "text/plain", body = String)
    )
)]
#[get("/api/ws/notebooks/{id}")]
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
    verifier: web::Data<Verifier>,
) -> Result<HttpResponse, actix_web::Error> {
    let session = session::WsSession::new(
        path.into_inner(),
        verifier.into_inner(),
        state.rooms.clone(),
        &state.config,
    );
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_MESSAGE_BYTES)
        .start()
}
