//! Running cells: run (with everything downstream), interrupt, restart the kernel.

use actix_web::{post, web, HttpResponse};
use serde_json::json;

use crate::api::{ask, tell};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::room::messages::{Interrupt, Restart, RunCell};
use crate::server::AppState;

/// Runs a cell and its descendants; answers 202 at once, results arrive over the WebSocket
/// and through `GET /api/notebooks/{id}`.
#[post("/api/notebooks/{id}/cells/{cell_id}/run")]
pub async fn run(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, cell_id) = path.into_inner();
    let room = state
        .rooms
        .open(&user.user_id, &notebook_id, Role::Editor)
        .await?;
    ask(&room, RunCell { cell_id }).await?;
    Ok(HttpResponse::Accepted().json(json!({ "status": "accepted" })))
}

/// Interrupts the running cell; the rest of that run is dropped.
#[post("/api/notebooks/{id}/interrupt")]
pub async fn interrupt(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.rooms.open(&user.user_id, &path, Role::Editor).await?;
    tell(&room, Interrupt).await?;
    Ok(HttpResponse::Accepted().json(json!({ "status": "accepted" })))
}

/// Restarts the notebook's kernel; every cell's values are gone.
#[post("/api/notebooks/{id}/restart")]
pub async fn restart(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.rooms.open(&user.user_id, &path, Role::Editor).await?;
    tell(&room, Restart).await?;
    log::info!(
        "user {} restarted the kernel of {}",
        user.user_id,
        path.as_str()
    );
    Ok(HttpResponse::Accepted().json(json!({ "status": "accepted" })))
}
