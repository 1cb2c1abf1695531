//! The API's OpenAPI 3.1 description, generated with `utoipa` from the handlers' own
//! annotations and types, served at `GET /api/openapi.json` and shown by the vendored Swagger
//! UI at `GET /api/docs`.
//!
//! Its paths come from `crate::api::RoutePaths`, which the route table in `crate::api`
//! derives from the same list `routes()` registers, so the two cannot drift.

pub mod schemas;
pub mod wire;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::server::AppState;

/// Name of the bearer security scheme the operations refer to.
pub const BEARER: &str = "bearer";

/// Parts of the document that are not paths: info, tags, the security scheme, and the
/// WebSocket and chat stream message schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reactive notebook API",
        description = "REST API of the reactive notebook server. Errors answer \
            `{\"detail\": string}` (schema `ErrorBody`). Operations with a `bearer` security \
            requirement need `Authorization: Bearer <token>`; the others need none. Live \
            results travel over the WebSocket `GET /api/ws/notebooks/{id}`, whose messages are \
            the schemas `WsClientMessage` (client to server) and `WsServerMessage` (server to \
            client); the chat answers a `text/event-stream` of `ChatFrame`s."
    ),
    components(schemas(
        schemas::ErrorBody,
        wire::WsClientMessage,
        wire::WsServerMessage,
        wire::ChatFrame
    )),
    modifiers(&BearerScheme),
    tags(
        (name = "probes", description = "Liveness, readiness and metrics"),
        (name = "config", description = "What clients need to know about this server"),
        (name = "environment", description = "The kernels' Python environment"),
        (name = "notebooks", description = "Notebooks"),
        (name = "transfer", description = "Import and export"),
        (name = "cells", description = "Cells"),
        (name = "execution", description = "Running cells and the kernel"),
        (name = "packages", description = "Per-notebook Python packages"),
        (name = "introspection", description = "Completion, inspection, variables"),
        (name = "assistant", description = "The AI assistant"),
        (name = "sharing", description = "Members, invites and the audit log"),
        (name = "live", description = "The notebook's WebSocket"),
        (name = "api description", description = "This document and its viewer")
    )
)]
struct DocBase;

/// Adds the `Authorization: Bearer <token>` scheme.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "A session token: `Authorization: Bearer <token>` (for `/metrics`, the \
                 METRICS_TOKEN when it is set)",
            ))
            .build();
        components.add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = DocBase::openapi();
    doc.merge(crate::api::RoutePaths::openapi());
    doc
}

/// The document as JSON, built once.
fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| match document().to_json() {
        Ok(json) => json,
        Err(e) => {
            // Serializing plain data structures cannot fail in practice; answer an empty object
            // rather than panic, and say why in the log.
            log::error!("could not serialize the OpenAPI document: {e}");
            "{}".to_string()
        }
    })
}

/// This document: the API's OpenAPI 3.1 description (no auth).
#[utoipa::path(
    tag = "api description",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Value))
)]
#[get("/api/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

/// The API's documentation page (Swagger UI, vendored under `static/swagger-ui/`; no auth).
#[utoipa::path(
    tag = "api description",
    responses(
        (status = 200, description = "An HTML page rendering this document", content_type = "text/html", body = String),
        (status = 404, description = "The page is missing from `STATIC_DIR`", body = schemas::ErrorBody)
    )
)]
#[get("/api/docs")]
pub async fn docs(state: web::Data<AppState>) -> HttpResponse {
    match crate::api::static_files::load(&state, "swagger-ui/index.html") {
        Some((bytes, _)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(bytes),
        None => HttpResponse::NotFound().json(serde_json::json!({"detail": "Not Found"})),
    }
}
