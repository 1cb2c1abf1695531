//! Recorded runs of a notebook: the history (any member), one run's snapshot (any member),
//! and starting a run now (editor).

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::api::body::JsonBody;
use crate::api::members::require;
use crate::api::openapi::schemas::ErrorBody;
use crate::api::schedules::timestamp;
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::notebook::io::{self, Format};
use crate::schedule::snapshot;
use crate::schedule::store::{self, Recorded, RunStatus, RunSummary, Trigger};
use crate::server::AppState;

/// Body of `POST /api/notebooks/{id}/runs` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct StartRun {
    /// `api` (the default) or `manual` (the web UI's "Run now" button).
    pub trigger: Option<String>,
}

/// Answer of `POST /api/notebooks/{id}/runs`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunStarted {
    /// The new run's id.
    pub run_id: String,
}

/// A recorded run as the history lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// Its id.
    pub id: String,
    /// `schedule`, `manual` or `api`.
    pub trigger: String,
    /// The schedule that fired it (absent for other triggers or once it is deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The fire time it was run for (schedule runs; RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<String>,
    /// When it started, or was skipped (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended (null while running).
    pub finished_at: Option<String>,
    /// `running`, `success`, `error`, `failed` or `skipped`.
    pub status: String,
    /// The first failed cell's id (status `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_cell: Option<String>,
    /// Why it was skipped or failed; for `error`, the failed cell's last error line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<RunSummary> for RunView {
    fn from(row: RunSummary) -> Self {
        RunView {
            id: row.id,
            trigger: row.trigger_kind,
            schedule_id: row.schedule_id,
            scheduled_for: row.scheduled_for.map(timestamp),
            started_at: timestamp(row.started_at),
            finished_at: row.finished_at.map(timestamp),
            status: row.status,
            failed_cell: row.failed_cell,
            detail: row.detail,
        }
    }
}

/// Query of `GET /api/notebooks/{id}/runs/{run_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// `ipynb` (default: the nbformat JSON) or `html` (a standalone read-only page).
    pub format: Option<String>,
}

/// Lists the notebook's runs, newest first (at most `RUN_HISTORY` finished ones are kept).
#[utoipa::path(
    operation_id = "list_runs",
    tag = "runs",
    params(("id" = String, Path, description = "Notebook id")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 200, description = "The runs, newest first", body = [RunView]),
        (status = 404, description = "No such notebook (or not yours)", body = ErrorBody),
    )
)]
#[get("/api/notebooks/{id}/runs")]
pub async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &user, &path, Role::Viewer).await?;
    // Running rows are not trimmed, so a few more than the history may exist for a moment.
    let limit = i64::try_from(state.config.run_history.saturating_add(10)).unwrap_or(i64::MAX);
    let rows = store::list_runs(state.store.db(), &path, limit)
        .await
        .map_err(StoreError::Db)?;
    let views: Vec<RunView> = rows.into_iter().map(RunView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// One run's snapshot: the notebook with that run's outputs, as an `.ipynb` document
/// (`?format=html`: as the HTML export renders it).
#[utoipa::path(
    operation_id = "get_run",
    tag = "runs",
    params(
        ("id" = String, Path, description = "Notebook id"),
        ("run_id" = String, Path, description = "Run id"),
        SnapshotQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 200, description = "The nbformat 4.5 document (or an HTML page)", body = serde_json::Value),
        (status = 404, description = "No such notebook or run, or the run was skipped and has no snapshot", body = ErrorBody),
        (status = 409, description = "The run is still going", body = ErrorBody),
        (status = 422, description = "Unknown format", body = ErrorBody),
    )
)]
#[get("/api/notebooks/{id}/runs/{run_id}")]
pub async fn get(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, run_id) = path.into_inner();
    let query = web::Query::<SnapshotQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let format = match query.format.as_deref() {
        None | Some("ipynb") => Format::Ipynb,
        Some("html") => Format::Html,
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "unknown format {other:?}: expected ipynb or html"
            )))
        }
    };
    require(&state, &user, &notebook_id, Role::Viewer).await?;
    let (run, text) = store::get_run(state.store.db(), &notebook_id, &run_id)
        .await
        .map_err(StoreError::Db)?
        .ok_or_else(|| ApiError::NotFound("Run not found".into()))?;
    let Some(text) = text else {
        return Err(if run.status == RunStatus::Running.as_str() {
            ApiError::Conflict(format!(
                "run {run_id} is still running; its snapshot is stored when it ends"
            ))
        } else {
            ApiError::NotFound(format!(
                "run {run_id} has no snapshot (it {}: {})",
                run.status,
                run.detail.as_deref().unwrap_or("no cell ran")
            ))
        });
    };
    let notebook = snapshot::from_text(&text).map_err(|e| {
        ApiError::Internal(format!("stored snapshot of run {run_id} unreadable: {e}"))
    })?;
    match format {
        Format::Html => {
            let page = io::render(Format::Html, &notebook)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            // Should the page ever be opened on its own, it gets an opaque origin and no
            // scripts (the UI shows it in a sandboxed frame anyway).
            Ok(HttpResponse::Ok()
                .content_type(Format::Html.content_type())
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .insert_header((
                    header::CONTENT_SECURITY_POLICY,
                    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-src 'self'",
                ))
                .body(page))
        }
        _ => Ok(HttpResponse::Ok().json(io::ipynb::export(&notebook))),
    }
}

/// Starts a recorded run of the whole notebook now, in a fresh kernel; answers 202 at once.
/// 409 while another run of the notebook is going.
#[utoipa::path(
    operation_id = "start_run",
    tag = "runs",
    params(("id" = String, Path, description = "Notebook id")),
    request_body(content = StartRun, description = "Optional: {\"trigger\": \"manual\"} from the web UI"),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 202, description = "Started", body = RunStarted),
        (status = 403, description = "A viewer may not start runs", body = ErrorBody),
        (status = 404, description = "No such notebook (or not yours)", body = ErrorBody),
        (status = 409, description = "A run of this notebook is still going", body = ErrorBody),
        (status = 422, description = "Unknown trigger", body = ErrorBody),
        (status = 503, description = "The server is shutting down", body = ErrorBody),
    )
)]
#[post("/api/notebooks/{id}/runs")]
pub async fn start(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<StartRun>,
) -> Result<HttpResponse, ApiError> {
    let notebook_id = path.into_inner();
    let trigger = match body.0.trigger.as_deref() {
        None | Some("api") => Trigger::Api,
        Some("manual") => Trigger::Manual,
        Some(other) => {
            return Err(ApiError::Unprocessable(format!(
                "trigger must be 'manual' or 'api', not {other:?}"
            )))
        }
    };
    require(&state, &user, &notebook_id, Role::Editor).await?;
    if state.runs.stopping() {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    let now = Utc::now().naive_utc();
    let recorded = store::start_run(
        state.store.db(),
        &notebook_id,
        trigger,
        now,
        state.config.run_history,
    )
    .await
    .map_err(StoreError::Db)?;
    match recorded {
        Recorded::Started(run_id) => {
            log::info!(
                "user {} started run {run_id} of notebook {notebook_id} ({})",
                user.user_id,
                trigger.as_str()
            );
            state.runs.spawn(run_id.clone(), notebook_id);
            Ok(HttpResponse::Accepted().json(RunStarted { run_id }))
        }
        Recorded::Busy(running) | Recorded::Skipped { running, .. } => Err(ApiError::Conflict(
            format!("run {running} of this notebook is still going; start another when it ends"),
        )),
    }
}
