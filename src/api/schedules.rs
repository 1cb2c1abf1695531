//! Schedules of a notebook: create (editor), list (any member), delete (editor).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::body::JsonBody;
use crate::api::members::require;
use crate::api::openapi::schemas::{ErrorBody, StatusOk};
use crate::auth::AuthUser;
use crate::collab::Role;
use crate::db::store::StoreError;
use crate::error::ApiError;
use crate::schedule::cron::DEFAULT_TIMEZONE;
use crate::schedule::store::{self, ScheduleRow};
use crate::schedule::{CronSchedule, ScheduleError};
use crate::server::AppState;

/// Most schedules one notebook may have.
pub const MAX_SCHEDULES_PER_NOTEBOOK: usize = 20;

/// Body of `POST /api/notebooks/{id}/schedules`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewSchedule {
    /// A cron expression: 5 fields (minute hour day-of-month month day-of-week), or 6 with
    /// seconds first when `SCHEDULE_ALLOW_SECONDS` is on; `@hourly`-style nicknames too.
    pub cron: String,
    /// An IANA time zone name the expression is read in (default "UTC").
    pub timezone: Option<String>,
}

/// A schedule as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Its id.
    pub id: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone.
    pub timezone: String,
    /// When it fires next (RFC 3339, UTC).
    pub next_fire_at: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
}

/// RFC 3339 in UTC with milliseconds, as the API shows every time.
pub fn timestamp(at: chrono::NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl From<ScheduleRow> for ScheduleView {
    fn from(row: ScheduleRow) -> Self {
        ScheduleView {
            id: row.id,
            cron: row.cron,
            timezone: row.timezone,
            next_fire_at: timestamp(row.next_fire_at),
            created_at: timestamp(row.created_at),
            created_by: row.created_by,
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        ApiError::Unprocessable(e.to_string())
    }
}

/// Creates a schedule; a bad cron expression or time zone is 422 and stores nothing.
#[utoipa::path(
    operation_id = "create_schedule",
    tag = "schedules",
    params(("id" = String, Path, description = "Notebook id")),
    request_body = NewSchedule,
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 201, description = "The schedule", body = ScheduleView),
        (status = 403, description = "A viewer may not schedule runs", body = ErrorBody),
        (status = 404, description = "No such notebook (or not yours)", body = ErrorBody),
        (status = 409, description = "The notebook has the most schedules allowed", body = ErrorBody),
        (status = 422, description = "Bad cron expression or time zone", body = ErrorBody),
    )
)]
#[post("/api/notebooks/{id}/schedules")]
pub async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<NewSchedule>,
) -> Result<HttpResponse, ApiError> {
    let notebook_id = path.into_inner();
    require(&state, &user, &notebook_id, Role::Editor).await?;
    let body = body.0;
    let timezone = body
        .timezone
        .as_deref()
        .map(str::trim)
        .unwrap_or(DEFAULT_TIMEZONE)
        .to_string();
    let schedule = CronSchedule::parse(&body.cron, &timezone, state.config.schedule_allow_seconds)?;
    let now = Utc::now();
    let next_fire_at = schedule
        .next_after(now)
        .ok_or_else(|| ScheduleError::Never(body.cron.clone()))?;
    let row = ScheduleRow {
        id: uuid::Uuid::new_v4().to_string(),
        notebook_id: notebook_id.clone(),
        cron: body.cron.trim().to_string(),
        timezone,
        next_fire_at,
        created_at: now.naive_utc(),
        created_by: user.user_id.clone(),
    };
    // Counted and inserted under one lock, so simultaneous creates cannot pass the limit.
    let created = store::create_schedule(state.store.db(), &row, MAX_SCHEDULES_PER_NOTEBOOK)
        .await
        .map_err(StoreError::Db)?;
    if !created {
        return Err(ApiError::Conflict(format!(
            "Schedule limit reached: a notebook may have at most {MAX_SCHEDULES_PER_NOTEBOOK} \
             schedules; delete one to add another"
        )));
    }
    log::info!(
        "user {} scheduled notebook {notebook_id}: {:?} in {} (schedule {})",
        user.user_id,
        row.cron,
        row.timezone,
        row.id
    );
    Ok(HttpResponse::Created().json(ScheduleView::from(row)))
}

/// Lists a notebook's schedules, oldest first.
#[utoipa::path(
    operation_id = "list_schedules",
    tag = "schedules",
    params(("id" = String, Path, description = "Notebook id")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 200, description = "The schedules", body = [ScheduleView]),
        (status = 404, description = "No such notebook (or not yours)", body = ErrorBody),
    )
)]
#[get("/api/notebooks/{id}/schedules")]
pub async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require(&state, &user, &path, Role::Viewer).await?;
    let rows = store::list_schedules(state.store.db(), &path)
        .await
        .map_err(StoreError::Db)?;
    let views: Vec<ScheduleView> = rows.into_iter().map(ScheduleView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Deletes a schedule (its past runs stay in the history).
#[utoipa::path(
    operation_id = "delete_schedule",
    tag = "schedules",
    params(
        ("id" = String, Path, description = "Notebook id"),
        ("schedule_id" = String, Path, description = "Schedule id"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 200, description = "Deleted", body = StatusOk),
        (status = 403, description = "A viewer may not delete schedules", body = ErrorBody),
        (status = 404, description = "No such notebook or schedule", body = ErrorBody),
    )
)]
#[delete("/api/notebooks/{id}/schedules/{schedule_id}")]
pub async fn remove(
    user: AuthUser,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (notebook_id, schedule_id) = path.into_inner();
    require(&state, &user, &notebook_id, Role::Editor).await?;
    let deleted = store::delete_schedule(state.store.db(), &notebook_id, &schedule_id)
        .await
        .map_err(StoreError::Db)?;
    if !deleted {
        return Err(ApiError::NotFound("Schedule not found".into()));
    }
    log::info!(
        "user {} deleted schedule {schedule_id} of notebook {notebook_id}",
        user.user_id
    );
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}
