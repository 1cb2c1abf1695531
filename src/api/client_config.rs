//! `GET /api/config`: what the web UI needs to know to sign in (no auth).

use actix_web::{get, web, HttpResponse};
use serde_json::json;

use crate::api::openapi::schemas::ClientConfig;
use crate::auth::{AuthMode, Verifier};
use crate::server::AppState;

/// The auth mode, Clerk's publishable key in Clerk mode, and the kernel sandbox's layers.
#[utoipa::path(
    tag = "config",
    responses((status = 200, description = "How to sign in, and the sandbox in force", body = ClientConfig))
)]
#[get("/api/config")]
pub async fn client_config(
    state: web::Data<AppState>,
    verifier: web::Data<Verifier>,
) -> HttpResponse {
    let mode = match verifier.mode() {
        AuthMode::Local => "local",
        AuthMode::Clerk => "clerk",
    };
    HttpResponse::Ok().json(json!({
        "auth_mode": mode,
        "clerk_publishable_key": state.config.auth.publishable_key,
        "assistant_enabled": state.config.anthropic_api_key.is_some(),
        "sandbox": crate::kernel::sandbox::report(&state.config.kernel_limits),
    }))
}
