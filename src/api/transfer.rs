//! Export a notebook as a file (ipynb, percent-format py, html) and import one (ipynb, py).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::notebooks::valid_name;
use crate::api::openapi::schemas::{ErrorBody, Imported};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::db::models::NotebookRow;
use crate::db::store::NewCell;
use crate::error::ApiError;
use crate::notebook::io::{self, ExportNotebook, Format, MARKDOWN};
use crate::notebook::CellType;
use crate::room::messages;
use crate::server::AppState;

/// Largest accepted import request (a notebook with images in its outputs is often several MiB).
pub const MAX_IMPORT_BYTES: usize = 16 * 1024 * 1024;

/// Longest file name stem in `Content-Disposition`.
const MAX_FILE_STEM_CHARS: usize = 100;

/// Query of `GET /api/notebooks/{id}/export`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `ipynb`, `py` or `html` (required).
    format: Option<String>,
}

/// Body of `POST /api/notebooks/import`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ImportBody {
    /// The file's format: `ipynb` or `py`.
    format: String,
    /// The file's text.
    content: String,
    /// The notebook's name (default `Imported notebook`).
    name: Option<String>,
}

fn export_format(format: Option<&str>) -> Result<Format, ApiError> {
    let format = format
        .ok_or_else(|| ApiError::Unprocessable("format is required: ipynb, py or html".into()))?;
    Format::parse(format).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "unknown format {format:?}: expected ipynb, py or html"
        ))
    })
}

/// A file name stem from a notebook name: ASCII letters, digits, `-`, `_`, `.` and spaces.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_FILE_STEM_CHARS)
        .collect();
    let stem = stem.trim_matches(|c: char| c == '.' || c == ' ' || c == '_');
    if stem.is_empty() {
        "notebook".into()
    } else {
        stem.to_string()
    }
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266 / 5987).
fn content_disposition(name: &str, ext: &str) -> Result<HeaderValue, ApiError> {
    let full: String = name.trim().chars().take(MAX_FILE_STEM_CHARS).collect();
    let mut encoded = String::new();
    for b in format!("{full}.{ext}").bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let value = format!(
        "attachment; filename=\"{}.{ext}\"; filename*=UTF-8''{encoded}",
        file_stem(name)
    );
    HeaderValue::from_str(&value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Downloads the notebook as `ipynb`, `py` or `html` (`?format=`); 422 for another format.
#[utoipa::path(
    tag = "transfer",
    params(("id" = String, Path, description = "The notebook"), ExportQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The file, as an attachment", content((String = "application/x-ipynb+json"), (String = "text/x-python"), (String = "text/html"))),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 422, description = "Missing or unknown `format`", body = ErrorBody),
        (status = 500, description = "The notebook could not be rendered", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}/export")]
pub async fn export(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = export_format(query.format.as_deref())?;
    let room = state.rooms.open(&user.user_id, &path, Role::Viewer).await?;
    let snapshot = ask(&room, messages::Snapshot).await?;
    let notebook = ExportNotebook::from_snapshot(snapshot)
        .map_err(|e| ApiError::Internal(format!("snapshot does not read as a notebook: {e}")))?;
    let body = io::render(format, &notebook).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            content_disposition(&notebook.name, format.extension())?,
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body))
}

/// Creates a notebook from an `.ipynb` or percent-format `.py` file, cells included, in one
/// transaction. A malformed file is 400 and creates nothing.
#[utoipa::path(
    tag = "transfer",
    request_body = ImportBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Created with its cells", body = Imported),
        (status = 400, description = "Malformed JSON, or a file that does not parse", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "Over `CELLS_PER_NOTEBOOK` or `NOTEBOOKS_PER_USER`", body = ErrorBody),
        (status = 413, description = "The body is over 16 MiB", body = ErrorBody),
        (status = 422, description = "Invalid body, unknown format or invalid name", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks/import")]
pub async fn import(
    user: AuthUser,
    state: web::Data<AppState>,
    body: JsonBody<ImportBody, MAX_IMPORT_BYTES>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let format = match Format::parse(&body.format) {
        Some(f @ (Format::Ipynb | Format::Py)) => f,
        _ => {
            return Err(ApiError::Unprocessable(format!(
                "unknown import format {:?}: expected ipynb or py",
                body.format
            )))
        }
    };
    let name = match body.name {
        Some(name) => valid_name(&name)?,
        None => "Imported notebook".to_string(),
    };
    let parsed = io::parse(format, &body.content).map_err(|e| ApiError::BadRequest(e.0))?;
    let limit = state.config.quotas.cells_per_notebook;
    if u64::try_from(parsed.len()).unwrap_or(u64::MAX) > limit {
        return Err(ApiError::Conflict(format!(
            "Cell limit reached: the file has {} cells and a notebook may hold at most {limit} \
             (CELLS_PER_NOTEBOOK)",
            parsed.len()
        )));
    }
    let imported = io::prepare(parsed, CellType::parse(MARKDOWN).is_some());
    let cells: Vec<NewCell> = imported
        .cells
        .into_iter()
        .map(|c| NewCell {
            id: uuid::Uuid::new_v4().to_string(),
            cell_type: c.kind.as_str().to_string(),
            code: c.code,
            result_name: c.result_name,
        })
        .collect();
    let count = cells.len();
    let now = chrono::Utc::now().naive_utc();
    let row = NotebookRow {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: user.user_id.clone(),
        name,
        db_conn_string: None,
        revision: 0,
        created_at: now,
        updated_at: now,
    };
    let row = state
        .store
        .import_notebook(row, cells, state.config.quotas.notebooks_per_user)
        .await?;
    log::info!(
        "user {} imported notebook {} ({count} cells, {})",
        user.user_id,
        row.id,
        format.extension()
    );
    Ok(HttpResponse::Ok().json(json!({
        "notebook_id": row.id,
        "cells": count,
        "warnings": imported.warnings,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_ascii_with_utf8_fallback() {
        let v = content_disposition("Ventes \"2024\" é/x", "py").expect("header");
        let v = v.to_str().expect("ascii");
        assert!(
            v.starts_with("attachment; filename=\"Ventes _2024_ __x.py\""),
            "{v}"
        );
        assert!(
            v.contains("filename*=UTF-8''Ventes%20%222024%22%20%C3%A9%2Fx.py"),
            "{v}"
        );
        assert_eq!(file_stem("../.."), "notebook");
    }
}
