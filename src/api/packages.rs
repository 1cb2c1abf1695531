//! Per-notebook packages: install one into the notebook's layer.

use actix_web::{post, web, HttpResponse};
use serde::Deserialize;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::openapi::schemas::ErrorBody;
use crate::api::openapi::wire::PackageEntry;
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::error::ApiError;
use crate::pyenv::packages::Requirement;
use crate::room::packages::InstallPackage;
use crate::server::AppState;

/// Body of `POST /api/notebooks/{id}/packages`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct InstallBody {
    /// The package's name on PyPI.
    name: String,
    /// A version (`1.2.0`) or specifiers (`>=1.2,<2`).
    version: Option<String>,
}

/// Installs a package for this notebook: 202 at once with `{"name","version","state"}`; pip's
/// output streams to every tab as `package_install` events.
#[utoipa::path(
    tag = "packages",
    params(("id" = String, Path, description = "The notebook")),
    request_body = InstallBody,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued; pip's output streams as `package_install` WebSocket messages", body = PackageEntry),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Viewers may not install packages", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 409, description = "The package is already being installed", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body, name or version", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
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
