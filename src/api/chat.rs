//! `POST /api/chat/{notebook_id}`: a chat with the AI assistant about a notebook, answered as
//! a `text/event-stream` of `{"event", "data"}` frames.

use actix_web::http::header;
use actix_web::{post, web, HttpResponse};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{ChatRequest, ErrorBody};
use crate::api::openapi::wire::ChatFrame;
use crate::assistant::agent::Agent;
use crate::assistant::anthropic::AnthropicClient;
use crate::assistant::tools::Toolbox;
use crate::assistant::{parse_messages, prompt, SseBody};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::room::messages::Snapshot;
use crate::server::AppState;

/// Frames buffered between the agent and a slow client.
const EVENT_BUFFER: usize = 64;

/// Streams the assistant's answer; its tools change the notebook through its room.
#[utoipa::path(
    tag = "assistant",
    params(("notebook_id" = String, Path, description = "The notebook")),
    request_body = ChatRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A `text/event-stream`: each event is `data: <ChatFrame JSON>`, the last one `done`", content_type = "text/event-stream", body = ChatFrame),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not use the assistant", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "`messages` missing, empty, or with an invalid role or content", body = ErrorBody),
        (status = 503, description = "The assistant is not configured (`ANTHROPIC_API_KEY`), the database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/chat/{notebook_id}")]
pub async fn chat(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let notebook_id = path.into_inner();
    let config = &state.config;
    let api_key = config
        .anthropic_api_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| {
            ApiError::Unavailable("The assistant is not configured (set ANTHROPIC_API_KEY)".into())
        })?;
    let messages = parse_messages(&body.0).map_err(ApiError::Unprocessable)?;
    let room = state
        .rooms
        .open(&user.user_id, &notebook_id, Role::Editor)
        .await?;
    let snapshot = ask(&room, Snapshot).await?;
    let client = AnthropicClient::new(&config.anthropic_base_url, api_key, &config.anthropic_model)
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let toolbox = Toolbox::new(
        state.rooms.clone(),
        state.store.db().clone(),
        &user.user_id,
        &notebook_id,
    );
    let agent = Agent::new(
        client,
        toolbox,
        prompt::system_prompt(&snapshot),
        &user.user_id,
        &notebook_id,
    );
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let task = actix_web::rt::spawn(agent.run(messages, tx));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(SseBody::new(rx, task)))
}
