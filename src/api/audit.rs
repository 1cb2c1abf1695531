//! `GET /api/notebooks/{id}/audit`: the assistant's tool calls on a notebook, newest first.

use actix_web::{get, web, HttpResponse};
use serde_json::{json, Value};

use crate::auth::AuthUser;
use crate::db::audit::{self, AuditRow};
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::server::AppState;

/// Most entries listed.
pub const AUDIT_LIMIT: i64 = 500;

/// Lists the notebook's audit entries (owner only: 403 for other members, 404 for anyone else).
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
