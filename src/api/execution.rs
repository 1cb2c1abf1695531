//! Running cells: run one (with everything downstream), run all or the stale ones, lazy
//! mode, interrupt, restart the kernel.

use actix_web::{post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{Accepted, ErrorBody, LazySet};
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
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LazyBody {
    /// The mode to set.
    lazy: bool,
}

/// Runs a cell and its descendants; answers 202 at once, results arrive over the WebSocket
/// and through `GET /api/notebooks/{id}`.
#[utoipa::path(
    tag = "execution",
    params(("id" = String, Path, description = "The notebook"), ("cell_id" = String, Path, description = "The cell")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued; results arrive over the WebSocket", body = Accepted),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not run cells or control the kernel", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or cell", body = ErrorBody),
        (status = 429, description = "A kernel quota is used up", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
#[utoipa::path(
    tag = "execution",
    params(("id" = String, Path, description = "The notebook"), ("only" = Option<String>, Query, description = "`stale`: run only the stale cells (with the stale ancestors they need)")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued; results arrive over the WebSocket", body = Accepted),
        (status = 400, description = "Unreadable query", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not run cells or control the kernel", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 422, description = "`only` is not `stale`", body = ErrorBody),
        (status = 429, description = "A kernel quota is used up", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
#[utoipa::path(
    tag = "execution",
    params(("id" = String, Path, description = "The notebook")),
    request_body = LazyBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Set", body = LazySet),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not run cells or control the kernel", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
#[utoipa::path(
    tag = "execution",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Interrupt sent", body = Accepted),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not run cells or control the kernel", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
#[utoipa::path(
    tag = "execution",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Restarting", body = Accepted),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not run cells or control the kernel", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
