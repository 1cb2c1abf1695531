//! Cells: create, update code, delete.

use actix_web::{delete, post, put, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{CellCreated, ErrorBody, Revised};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::notebook::cell::validate_result_name;
use crate::notebook::CellType;
use crate::room::messages::{
    CreateCell as CreateMsg, DeleteCell as DeleteMsg, MoveCell as MoveMsg, UpdateCell as UpdateMsg,
};
use crate::server::AppState;

/// Body of `POST /api/notebooks/{id}/cells`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateCell {
    /// `python` (the default), `sql` or `markdown`.
    #[serde(rename = "type", default = "default_type")]
    cell_type: String,
    /// Insert after this cell (default: at the end).
    after_cell_id: Option<String>,
    /// Insert before this cell (not with `after_cell_id`).
    before_cell_id: Option<String>,
    /// The cell's code (empty by default).
    #[serde(default)]
    code: String,
}

fn default_type() -> String {
    "python".into()
}

/// Body of `PUT /api/notebooks/{id}/cells/{cell_id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateCell {
    /// The new code.
    code: Option<String>,
    /// A SQL cell's result name (a Python identifier).
    result_name: Option<String>,
    /// Refuse (409) if the cell changed after this revision.
    expected_revision: Option<i64>,
}

/// Adds a cell at the end, after `after_cell_id` or before `before_cell_id`.
#[utoipa::path(
    operation_id = "create_cell",
    tag = "cells",
    params(("id" = String, Path, description = "The notebook")),
    request_body = CreateCell,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Created", body = CellCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not change cells", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller), or no such `after_cell_id` / `before_cell_id`", body = ErrorBody),
        (status = 409, description = "`CELLS_PER_NOTEBOOK` is reached", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body, unknown type, or both `after_cell_id` and `before_cell_id`", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/{id}/cells")]
pub async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<CreateCell>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let cell_type = CellType::parse(&body.cell_type).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "unknown cell type '{}': expected 'python', 'sql' or 'markdown'",
            body.cell_type
        ))
    })?;
    if body.after_cell_id.is_some() && body.before_cell_id.is_some() {
        return Err(ApiError::Unprocessable(
            "give after_cell_id or before_cell_id, not both".into(),
        ));
    }
    let room = state.rooms.open(&user.user_id, &path, Role::Editor).await?;
    let cell_id = ask(
        &room,
        CreateMsg {
            cell_type,
            code: body.code,
            after_cell_id: body.after_cell_id,
            before_cell_id: body.before_cell_id,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "cell_id": cell_id })))
}

/// Replaces a cell's code and/or a SQL cell's result name (409 when it changed after
/// `expected_revision`; 422 for an invalid result name).
#[utoipa::path(
    tag = "cells",
    params(("id" = String, Path, description = "The notebook"), ("cell_id" = String, Path, description = "The cell")),
    request_body = UpdateCell,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = Revised),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not change cells", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or cell", body = ErrorBody),
        (status = 409, description = "The cell changed after `expected_revision`", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body, neither field given, or an invalid result name", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[put("/api/notebooks/{id}/cells/{cell_id}")]
pub async fn update(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateCell>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, cell_id) = path.into_inner();
    let body = body.0;
    if body.code.is_none() && body.result_name.is_none() {
        return Err(ApiError::Unprocessable(
            "give code and/or result_name".into(),
        ));
    }
    if let Some(name) = &body.result_name {
        validate_result_name(name).map_err(ApiError::Unprocessable)?;
    }
    let room = state
        .rooms
        .open(&user.user_id, &notebook_id, Role::Editor)
        .await?;
    let revision = ask(
        &room,
        UpdateMsg {
            cell_id,
            code: body.code,
            result_name: body.result_name,
            expected_revision: body.expected_revision,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "revision": revision })))
}

/// Deletes a cell.
#[utoipa::path(
    operation_id = "delete_cell",
    tag = "cells",
    params(("id" = String, Path, description = "The notebook"), ("cell_id" = String, Path, description = "The cell")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = Revised),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not change cells", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or cell", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[delete("/api/notebooks/{id}/cells/{cell_id}")]
pub async fn delete(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, cell_id) = path.into_inner();
    let room = state
        .rooms
        .open(&user.user_id, &notebook_id, Role::Editor)
        .await?;
    let revision = ask(&room, DeleteMsg { cell_id }).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "revision": revision })))
}

/// Body of `POST /api/notebooks/{id}/cells/{cell_id}/move`: exactly one of the two.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MoveCell {
    /// Put the cell right before this one.
    before_cell_id: Option<String>,
    /// Put the cell right after this one.
    after_cell_id: Option<String>,
}

/// Moves a cell before or after another one (404 for an unknown cell or target, 422 for
/// both, neither, or the cell itself as target). Order never changes what runs.
#[utoipa::path(
    tag = "cells",
    params(("id" = String, Path, description = "The notebook"), ("cell_id" = String, Path, description = "The cell")),
    request_body = MoveCell,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Moved", body = Revised),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not change cells", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller), cell or target", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Both targets, neither, or the cell itself", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/{id}/cells/{cell_id}/move")]
pub async fn move_cell(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<MoveCell>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, cell_id) = path.into_inner();
    let (target_id, after) = match body.0 {
        MoveCell {
            before_cell_id: Some(target),
            after_cell_id: None,
        } => (target, false),
        MoveCell {
            before_cell_id: None,
            after_cell_id: Some(target),
        } => (target, true),
        _ => {
            return Err(ApiError::Unprocessable(
                "give before_cell_id or after_cell_id (exactly one)".into(),
            ))
        }
    };
    if target_id == cell_id {
        return Err(ApiError::Unprocessable(
            "a cell cannot move next to itself".into(),
        ));
    }
    let room = state
        .rooms
        .open(&user.user_id, &notebook_id, Role::Editor)
        .await?;
    let revision = ask(
        &room,
        MoveMsg {
            cell_id,
            target_id,
            after,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "revision": revision })))
}
