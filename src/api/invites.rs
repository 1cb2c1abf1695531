//! Invites: the owner creates, lists and revokes them; any signed-in user accepts one.

use actix_web::http::header;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::body::JsonBody;
use crate::api::members::{audit, require, tell_room};
use crate::api::openapi::schemas::{ErrorBody, InviteAccepted, InviteCreated, Invites, StatusOk};
use crate::auth::AuthUser;
use crate::collab::{invites, members, Role};
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::server::AppState;

/// Longest code accepted in a path (ours are 43 characters).
const MAX_CODE_CHARS: usize = 128;

/// Body of `POST /api/notebooks/{id}/invites`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateInvite {
    /// The role it grants: `editor` or `viewer`.
    role: String,
}

fn timestamp(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A code as it may appear in a path: base64url characters only, bounded length.
fn plausible_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn invite_not_found() -> ApiError {
    ApiError::NotFound("Invite not found or expired".into())
}

/// Creates an invite for `editor` or `viewer`; 201 with the code (shown only now) and a link.
#[utoipa::path(
    operation_id = "create_invite",
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook")),
    request_body = CreateInvite,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the code is shown only now", body = InviteCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may do this", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body or role", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/{id}/invites")]
pub async fn create(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<CreateInvite>,
) -> Result<HttpResponse, ApiError> {
    let notebook_id = path.into_inner();
    require(&state, &user, &notebook_id, Role::Owner).await?;
    let role = Role::parse_grantable(&body.0.role)?;
    let (row, code) = invites::create(
        state.store.db(),
        &notebook_id,
        role,
        &user.user_id,
        state.config.invite_ttl_secs,
    )
    .await
    .map_err(StoreError::Db)?;
    let url = {
        let info = req.connection_info();
        format!("{}://{}/invite/{code}", info.scheme(), info.host())
    };
    let input = json!({ "invite_id": row.id, "role": role.as_str() });
    audit(&state, &user.user_id, &notebook_id, "invite_created", input).await;
    Ok(HttpResponse::Created().json(json!({
        "id": row.id,
        "code": code,
        "url": url,
        "role": role.as_str(),
        "expires_at": timestamp(row.expires_at),
    })))
}

/// Lists the notebook's invites that still work (without their codes).
#[utoipa::path(
    operation_id = "list_invites",
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The invites that still work, without codes", body = Invites),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may do this", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}/invites")]
pub async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &user, &path, Role::Owner).await?;
    let rows = invites::list_active(state.store.db(), &path)
        .await
        .map_err(StoreError::Db)?;
    let list: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.id,
                "role": row.role,
                "created_by": row.created_by,
                "created_at": timestamp(row.created_at),
                "expires_at": timestamp(row.expires_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "invites": list })))
}

/// Revokes an invite: its code stops working at once (members who joined stay members).
#[utoipa::path(
    tag = "sharing",
    params(("id" = String, Path, description = "The notebook"), ("invite_id" = String, Path, description = "The invite")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Revoked", body = StatusOk),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may do this", body = ErrorBody),
        (status = 404, description = "No such notebook (or not shared with the caller) or invite", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[delete("/api/notebooks/{id}/invites/{invite_id}")]
pub async fn revoke(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, invite_id) = path.into_inner();
    require(&state, &user, &notebook_id, Role::Owner).await?;
    if !invites::revoke(state.store.db(), &notebook_id, &invite_id)
        .await
        .map_err(StoreError::Db)?
    {
        return Err(ApiError::NotFound("Invite not found".into()));
    }
    let input = json!({ "invite_id": invite_id });
    audit(&state, &user.user_id, &notebook_id, "invite_revoked", input).await;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

/// Accepts an invite: the caller becomes a member with its role (a higher role already held
/// is kept; the owner stays owner). Unknown, revoked or expired codes get 404.
#[utoipa::path(
    tag = "sharing",
    params(("code" = String, Path, description = "The invite's code")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller is a member now", body = InviteAccepted),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "Unknown, revoked or expired code", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/invites/{code}/accept")]
pub async fn accept(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let code = path.into_inner();
    if !plausible_code(&code) {
        return Err(invite_not_found());
    }
    let (notebook_id, role) = invites::find_valid(state.store.db(), &code)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(invite_not_found)?;
    let (owner, _) = members::access(state.store.db(), &user.user_id, &notebook_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(invite_not_found)?;
    let held = if owner == user.user_id {
        Role::Owner
    } else {
        let held = members::grant(state.store.db(), &notebook_id, &user.user_id, role)
            .await
            .map_err(StoreError::Db)?;
        let input = json!({ "user_id": user.user_id, "role": held.as_str() });
        audit(&state, &user.user_id, &notebook_id, "member_joined", input).await;
        tell_room(&state, &notebook_id, &user.user_id, Some(held)).await;
        held
    };
    log::info!(
        "user {} accepted an invite to notebook {notebook_id} as {}",
        user.user_id,
        held.as_str()
    );
    Ok(HttpResponse::Ok().json(json!({ "notebook_id": notebook_id, "role": held.as_str() })))
}

/// `GET /invite/{code}`: the link an invite hands out; sends the browser to the UI, which
/// signs in and accepts it.
#[utoipa::path(
    tag = "sharing",
    params(("code" = String, Path, description = "The invite's code")),
    responses(
        (status = 302, description = "To the web UI (`/#invite=<code>`), which signs in and accepts it", headers(("Location" = String, description = "Where to go")))
    )
)]
#[get("/invite/{code}")]
pub async fn link(path: web::Path<String>) -> HttpResponse {
    let code = path.into_inner();
    let target = if plausible_code(&code) {
        format!("/#invite={code}")
    } else {
        "/".to_string()
    };
    HttpResponse::Found()
        .insert_header((header::LOCATION, target))
        .finish()
}
