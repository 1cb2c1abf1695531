//! Notebooks: create, list, read, rename, set the SQL connection, delete.

use actix_web::{delete, get, post, put, web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::api::ask;
use crate::api::body::JsonBody;
use crate::api::openapi::schemas::{
    ErrorBody, NotebookCreated, NotebookList, NotebookSnapshot, Renamed, StatusOk,
};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::db::models::NotebookRow;
use crate::db::store::NewCell;
use crate::error::ApiError;
use crate::notebook::{demo, CellType};
use crate::room::messages;
use crate::server::AppState;
use crate::sql::conn_string;
use crate::sql::destination::check_without_dns;
use crate::sql::host_policy::HostPolicy;

const MAX_NAME_CHARS: usize = 200;

/// Body of `POST /api/notebooks`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateNotebook {
    /// The name (default `Untitled notebook`), trimmed: 1 to 200 characters.
    name: Option<String>,
}

/// Body of `PUT /api/notebooks/{id}/name`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenameBody {
    /// The new name, trimmed: 1 to 200 characters.
    name: String,
}

/// Body of `PUT /api/notebooks/{id}/db`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SetDbBody {
    /// The PostgreSQL connection string; an empty string clears it.
    connection_string: String,
}

/// Checks a notebook name (trimmed, not empty, at most 200 characters).
pub(crate) fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::Unprocessable("name must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::Unprocessable(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// Creates a notebook with one empty Python cell.
#[utoipa::path(
    operation_id = "create_notebook",
    tag = "notebooks",
    request_body = CreateNotebook,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Created, with one empty Python cell", body = NotebookCreated),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "`NOTEBOOKS_PER_USER` is reached", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body or name (empty, over 200 characters)", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[post("/api/notebooks")]
pub async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    body: JsonBody<CreateNotebook>,
) -> Result<HttpResponse, ApiError> {
    let name = match body.0.name {
        Some(name) => valid_name(&name)?,
        None => "Untitled notebook".to_string(),
    };
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
    // A new notebook starts with one empty Python cell to type into (if cells are allowed).
    let first_cells: Vec<NewCell> = (state.config.quotas.cells_per_notebook > 0)
        .then(|| NewCell {
            id: uuid::Uuid::new_v4().to_string(),
            cell_type: CellType::Python.as_str().to_string(),
            code: String::new(),
            result_name: None,
        })
        .into_iter()
        .collect();
    let row = state
        .store
        .create_notebook(row, state.config.quotas.notebooks_per_user, first_cells)
        .await?;
    log::info!("user {} created notebook {}", user.user_id, row.id);
    // Open its room now, in the background: its kernel starts while the client adds cells,
    // so the first run does not wait for Python.
    let (rooms, owner, id) = (state.rooms.clone(), user.user_id.clone(), row.id.clone());
    actix_web::rt::spawn(async move {
        if let Err(e) = rooms.open(&owner, &id, Role::Owner).await {
            log::debug!("opening new notebook {id} ahead of use: {e}");
        }
    });
    Ok(HttpResponse::Ok().json(json!({ "notebook_id": row.id })))
}

/// Lists the notebooks the caller owns, then those shared with them, each with the caller's
/// role; a first-time caller gets the demo notebook.
#[utoipa::path(
    operation_id = "list_notebooks",
    tag = "notebooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The notebooks", body = NotebookList),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "A first-time caller's demo notebook exceeds `NOTEBOOKS_PER_USER`", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks")]
pub async fn list(user: AuthUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let demo = demo::demo_notebook(&user.user_id);
    let demo_id = demo.0.id.clone();
    if state
        .store
        .register_user(
            &user.user_id,
            state.config.quotas.notebooks_per_user,
            move || demo,
        )
        .await?
    {
        log::info!("new user {}: created the demo notebook", user.user_id);
        state.rooms.run_on_first_open(&demo_id);
    }
    let rows = state.store.list_notebooks(&user.user_id).await?;
    let shared = crate::collab::members::shared_with(state.store.db(), &user.user_id)
        .await
        .map_err(crate::db::store::StoreError::Db)?;
    let notebooks: Vec<_> = rows
        .iter()
        .map(|n| (n, Role::Owner))
        .chain(shared.iter().map(|(n, role)| (n, *role)))
        .map(|(n, role)| json!({ "id": n.id, "name": n.name, "role": role.as_str() }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "notebooks": notebooks })))
}

/// One notebook with its cells.
#[utoipa::path(
    operation_id = "get_notebook",
    tag = "notebooks",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The notebook with its cells", body = NotebookSnapshot),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[get("/api/notebooks/{id}")]
pub async fn get(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (room, role) = state
        .rooms
        .open_as(&user.user_id, &path, Role::Viewer)
        .await?;
    let mut snapshot = ask(&room, messages::Snapshot).await?;
    snapshot["role"] = json!(role.as_str());
    if role < Role::Editor {
        // Viewers never learn the database, not even with its password masked.
        if let Some(fields) = snapshot.as_object_mut() {
            fields.remove("db_conn_string");
        }
    }
    Ok(HttpResponse::Ok().json(snapshot))
}

/// Renames a notebook.
#[utoipa::path(
    tag = "notebooks",
    params(("id" = String, Path, description = "The notebook")),
    request_body = RenameBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Renamed", body = Renamed),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may rename", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body or name", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[put("/api/notebooks/{id}/name")]
pub async fn rename(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<RenameBody>,
) -> Result<HttpResponse, ApiError> {
    let name = valid_name(&body.0.name)?;
    let room = state.rooms.open(&user.user_id, &path, Role::Owner).await?;
    ask(&room, messages::Rename { name: name.clone() }).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok", "name": name })))
}

/// Sets the notebook's PostgreSQL connection string (an empty string clears it).
#[utoipa::path(
    tag = "notebooks",
    params(("id" = String, Path, description = "The notebook")),
    request_body = SetDbBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Set (or cleared)", body = StatusOk),
        (status = 400, description = "Malformed JSON, or a connection string that is invalid or refused by `SQL_ALLOWED_HOSTS`", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may set it", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[put("/api/notebooks/{id}/db")]
pub async fn set_db(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<SetDbBody>,
) -> Result<HttpResponse, ApiError> {
    let conn = body.0.connection_string.trim().to_string();
    let conn = if conn.is_empty() {
        None
    } else {
        conn_string::validate(&conn).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        // Early feedback for what is refused without DNS; every connection is checked again.
        let policy = HostPolicy::from_settings(&state.config.sql_hosts)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        check_without_dns(&policy, &conn)
            .map_err(|e| ApiError::BadRequest(format!("connection_string refused: {e}")))?;
        Some(conn)
    };
    let room = state.rooms.open(&user.user_id, &path, Role::Owner).await?;
    ask(&room, messages::SetDb { conn_string: conn }).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

/// Deletes a notebook and its cells.
#[utoipa::path(
    operation_id = "delete_notebook",
    tag = "notebooks",
    params(("id" = String, Path, description = "The notebook")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deleted", body = StatusOk),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Only the owner may delete", body = ErrorBody),
        (status = 404, description = "No such notebook, or not shared with the caller", body = ErrorBody),
        (status = 503, description = "The database is unavailable, or the notebook was closing", body = ErrorBody)
    )
)]
#[delete("/api/notebooks/{id}")]
pub async fn delete(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let room = state.rooms.open(&user.user_id, &path, Role::Owner).await?;
    ask(&room, messages::DeleteNotebook).await?;
    log::info!("user {} deleted notebook {}", user.user_id, path.as_str());
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}
