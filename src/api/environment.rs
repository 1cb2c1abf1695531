//! The kernels' Python environment: its provisioning state, and a retry after a failure.

use actix_web::{get, post, web, HttpResponse};

use crate::api::openapi::schemas::ErrorBody;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::pyenv::status::Status as EnvironmentStatus;
use crate::pyenv::RetryError;
use crate::server::AppState;

/// `{"state", "python", "managed", "progress": {"done", "total", "current"}, "error"?}`.
#[utoipa::path(
    tag = "environment",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The environment's state", body = EnvironmentStatus),
        (status = 401, description = "Missing or invalid token", body = ErrorBody)
    )
)]
#[get("/api/environment")]
pub async fn status(_user: AuthUser, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.environment.status())
}

/// Starts provisioning again after a failure: 202 (also while it runs), 409 when the
/// environment is ready or not managed by the server.
#[utoipa::path(
    tag = "environment",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Provisioning (re)started", body = EnvironmentStatus),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "The environment is ready, or not managed by the server", body = ErrorBody)
    )
)]
#[post("/api/environment/retry")]
pub async fn retry(user: AuthUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.environment.retry() {
        Ok(()) => {
            log::info!(
                "python environment provisioning retried by {}",
                user.user_id
            );
            Ok(HttpResponse::Accepted().json(state.environment.status()))
        }
        Err(e @ (RetryError::NotManaged | RetryError::AlreadyReady)) => {
            Err(ApiError::Conflict(e.to_string()))
        }
    }
}
