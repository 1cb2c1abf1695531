//! Running cells: run one (with everything downstream), run all or the stale ones, lazy
//! mode, interrupt, restart the kernel.

use actix_web::{post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::body::JsonBody;
use crate::api::{ask, tell};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::room::messages::{Interrupt, Restart, RunAll, RunCell, SetLazy};
use crate::server::AppState;

/// Query of `POST /api/notebooks/{id}/run`.
#[derive(Deserialize)]
struct RunAllQuery {
    only: Option<String>,
}

/// Body of `PUT /api/notebooks/{id}/lazy`.
#[derive(Deserialize)]
pub struct LazyBody {
    lazy: bool,
}

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

/// Runs every cell (`?only=stale`: the stale ones, with the stale ancestors they need and,
/// unless the notebook is lazy, their descendants); answers 202 at once.
#[post("/api/notebooks/{id}/run")]
pub async fn run_all(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<RunAllQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let only_stale = match query.only.as_deref() {
        None => false,
        Some("stale") => true,
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "only must be 'stale' (got {other:?})"
            )))
        }
    };
    let room = state.rooms.open(&user.user_id, &path, Role::Editor).await?;
    ask(&room, RunAll { only_stale }).await?;
    Ok(HttpResponse::Accepted().json(json!({ "status": "accepted" })))
}

/// Turns lazy mode on or off: when on, running or editing a cell marks its descendants
/// stale instead of running them.
#[put("/api/notebooks/{id}/lazy")]
pub async fn set_lazy(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<LazyBody>,
) -> Result<HttpResponse, ApiError> {
    let lazy = body.0.lazy;
    let room = state.rooms.open(&user.user_id, &path, Role::Editor).await?;
    ask(&room, SetLazy { lazy }).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "lazy": lazy })))
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
