//! Members of a notebook: list (any member), change a role or remove (owner only).

use actix_web::{delete, get, put, web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{ErrorBody, Members, RoleChanged, StatusOk};
use crate::auth::AuthUser;
use crate::collab::{members, roles, Role};
use crate::db::audit::{self, AuditRow};
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::room::actor::collab::MemberChanged;
use crate::server::AppState;

/// Body of `PUT /api/notebooks/{id}/members/{user_id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetRole {
    /// The new role: `editor` or `viewer`.
    role: String,
}

/// Checks the caller's role on a notebook without opening its room; answers the owner's id.
pub async fn require(
    state: &AppState,
    user: &AuthUser,
    notebook_id: &str,
    needs: Role,
) -> Result<String, ApiError> {
    let (owner, role) = members::access(state.store.db(), &user.user_id, notebook_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(ApiError::notebook_not_found)?;
    roles::require(role, needs)?;
    Ok(owner)
}

/// Records a membership change in the notebook's audit log (a failure is logged, not fatal:
/// the change itself is already committed).
pub async fn audit(state: &AppState, actor: &str, notebook_id: &str, action: &str, input: Value) {
    let row = AuditRow::new(actor, notebook_id, action, &input, &json!("ok"), true);
    if let Err(e) = audit::record(state.store.db(), &row).await {
        log::error!("could not audit {action} on notebook {notebook_id}: {e}");
    }
}

/// Tells the notebook's live room (if any) about a membership change.
pub async fn tell_room(state: &AppState, notebook_id: &str, user_id: &str, role: Option<Role>) {
    if let Some(room) = state.rooms.live(notebook_id).await {
        let _ = room
            .send(MemberChanged {
                user_id: user_id.to_string(),
                role,
            })
            .await;
    }
}

/// Lists the owner and the members with their roles.
#[utoipa::path(
    operation_id = "list_members",
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The owner, then the members", body = Members),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}/members")]
pub async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let owner = require(&state, &user, &path, Role::Viewer).await?;
    let rows = members::list(state.store.db(), &path)
        .await
        .map_err(StoreError::Db)?;
    let members: Vec<Value> = std::iter::once((owner, Role::Owner))
        .chain(rows)
        .map(|(user_id, role)| json!({ "user_id": user_id, "role": role.as_str() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "members": members })))
}

/// Changes a member's role (`editor` or `viewer`); the owner's role cannot change.
#[utoipa::path(
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook"), ("user_id" = String, Path, description = "The member")),
    request_body = SetRole,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = RoleChanged),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may do this", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or member", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body or role, or the owner's role", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[put("/api/notebooks/{id}/members/{user_id}")]
pub async fn set_role(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<SetRole>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, member) = path.into_inner();
    let owner = require(&state, &user, &notebook_id, Role::Owner).await?;
    let role = Role::parse_grantable(&body.0.role)?;
    if member == owner {
        return Err(ApiError::Unprocessable(
            "the owner's role cannot be changed".into(),
        ));
    }
    if !members::set_role(state.store.db(), &notebook_id, &member, role)
        .await
        .map_err(StoreError::Db)?
    {
        return Err(ApiError::NotFound("Member not found".into()));
    }
    let input = json!({ "user_id": member, "role": role.as_str() });
    audit(
        &state,
        &user.user_id,
        &notebook_id,
        "member_role_changed",
        input,
    )
    .await;
    tell_room(&state, &notebook_id, &member, Some(role)).await;
    Ok(
        HttpResponse::Ok()
            .json(json!({ "status": "ok", "user_id": member, "role": role.as_str() })),
    )
}

/// Removes a member; their open sockets on the notebook close. The owner cannot be removed.
#[utoipa::path(
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook"), ("user_id" = String, Path, description = "The member")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed; their sockets on the notebook close", body = StatusOk),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may do this", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or member", body = ErrorBody),
        (status = 422, description = "The owner cannot be removed", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[delete("/api/notebooks/{id}/members/{user_id}")]
pub async fn remove(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, member) = path.into_inner();
    let owner = require(&state, &user, &notebook_id, Role::Owner).await?;
    if member == owner {
        return Err(ApiError::Unprocessable(
            "the owner cannot be removed".into(),
        ));
    }
    if !members::remove(state.store.db(), &notebook_id, &member)
        .await
        .map_err(StoreError::Db)?
    {
        return Err(ApiError::NotFound("Member not found".into()));
    }
    audit(
        &state,
        &user.user_id,
        &notebook_id,
        "member_removed",
        json!({ "user_id": member }),
    )
    .await;
    tell_room(&state, &notebook_id, &member, None).await;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}
