//! Per-notebook packages: install one into the notebook's layer.

use actix_web::{post, web, HttpResponse};
use serde::Deserialize;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::pyenv::packages::Requirement;
use crate::room::packages::InstallPackage;
use crate::server::AppState;

/// Body of `POST /api/notebooks/{id}/packages`.
#[derive(Deserialize)]
pub struct InstallBody {
    name: String,
    version: Option<String>,
}

/// Installs a package for this notebook: 202 at once with `{"name","version","state"}`; pip's
/// output streams to every tab as `package_install` events.
#[post("/api/notebooks/{id}/packages")]
pub async fn install(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<InstallBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let requirement = Requirement::parse(&body.name, body.version.as_deref())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let room = state
        .rooms
        .open(&user.user_id, &path.into_inner(), Role::Editor)
        .await?;
    let entry = ask(&room, InstallPackage(requirement)).await?;
    Ok(HttpResponse::Accepted().json(entry))
}
