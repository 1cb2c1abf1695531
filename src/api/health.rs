//! Liveness and readiness probes (no auth).

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::api::openapi::schemas::{Health, Readiness};
use crate::server::AppState;

/// The process is up.
#[utoipa::path(
    tag = "probes",
    responses((status = 200, description = "The process is up", body = Health))
)]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can serve requests: the database answers.
#[utoipa::path(
    tag = "probes",
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness)
    )
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.store.db().ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ok", "database": "ok"})),
        Err(e) => {
            log::warn!("readiness check failed: {e}");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "unavailable", "detail": "database unavailable"}))
        }
    }
}
