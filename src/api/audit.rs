//! `GET /api/notebooks/{id}/audit`: the assistant's tool calls on a notebook, newest first.

use actix_web::{get, web, HttpResponse};
use serde_json::{json, Value};

use crate::api::openapi::schemas::{AuditLog, ErrorBody};
use crate::auth::AuthUser;
use crate::db::audit::{self, AuditRow};
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::server::AppState;

/// Most entries listed.
pub const AUDIT_LIMIT: i64 = 500;

/// Lists the notebook's audit entries (owner only: 403 for other members, 404 for anyone else).
#[utoipa::path(
    operation_id = "list_audit",
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entries, newest first", body = AuditLog),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may read the audit log", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}/audit")]
pub async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let notebook_id = path.into_inner();
    let access = crate::collab::members::access(state.store.db(), &user.user_id, &notebook_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(ApiError::notebook_not_found)?;
    crate::collab::roles::require(access.1, crate::collab::Role::Owner)?;
    let rows = audit::list(state.store.db(), &notebook_id, AUDIT_LIMIT)
        .await
        .map_err(StoreError::Db)?;
    let entries: Vec<Value> = rows.iter().map(entry).collect();
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}

fn stored_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn entry(row: &AuditRow) -> Value {
    json!({
        "id": row.id,
        "created_at": row.created_at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "user_id": row.user_id,
        "notebook_id": row.notebook_id,
        "tool": row.tool,
        "input": stored_json(&row.input),
        "outcome": stored_json(&row.outcome),
        "ok": row.ok,
    })
}
