//! Schedules and recorded runs in the database, for both backends.
//!
//! Exactly-once firing rests on one statement: `UPDATE schedules SET next_fire_at = <next>
//! WHERE id = $1 AND next_fire_at = <the due time read>`. Instances that read the same due
//! time race on that row; PostgreSQL lets one update win and re-checks the others' WHERE
//! against the committed row, where the time has moved on, so they update nothing. Only the
//! instance whose update touched one row records the run, in the same transaction. SQLite is
//! single-instance and its one-connection pool runs transactions one at a time.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::scoped_futures::ScopedFutureExt;
use diesel_async::{AsyncConnection, RunQueryDsl};

use crate::db::advisory::KeyLock;
use crate::db::models::CellRow;
use crate::db::schema::{cells, notebooks, runs, schedules};
use crate::db::{Db, DbError};
use crate::db_run;

/// A row of `schedules`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedules)]
pub struct ScheduleRow {
    /// A UUID.
    pub id: String,
    /// The notebook it runs.
    pub notebook_id: String,
    /// The cron expression as given.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// When it fires next (UTC); moved on by whoever claims a fire.
    pub next_fire_at: NaiveDateTime,
    /// When it was created (UTC).
    pub created_at: NaiveDateTime,
    /// The user who created it.
    pub created_by: String,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A schedule fired.
    Schedule,
    /// Someone pressed "Run now" in the web UI.
    Manual,
    /// `POST /api/notebooks/{id}/runs` from another client.
    Api,
}

impl Trigger {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Api => "api",
        }
    }
}

/// Where a run is, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Started and not finished.
    Running,
    /// Every cell ran without error.
    Success,
    /// A cell failed (`failed_cell` names the first, in notebook order).
    Error,
    /// The run itself broke: the kernel could not start, the server stopped, the notebook
    /// was gone.
    Failed,
    /// Not run: the previous run was still going, or the owner was at a kernel limit.
    Skipped,
}

impl RunStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Error => "error",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// A run as listed (everything but its snapshot).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = runs)]
pub struct RunSummary {
    /// A UUID.
    pub id: String,
    /// The schedule that fired it (None for other triggers, or once the schedule is deleted).
    pub schedule_id: Option<String>,
    /// `schedule`, `manual` or `api`.
    pub trigger_kind: String,
    /// The fire time a schedule's run was claimed for (UTC).
    pub scheduled_for: Option<NaiveDateTime>,
    /// See [`RunStatus`].
    pub status: String,
    /// When it started, or was skipped (UTC).
    pub started_at: NaiveDateTime,
    /// When it ended (UTC).
    pub finished_at: Option<NaiveDateTime>,
    /// Id of the first failed cell, for `error`.
    pub failed_cell: Option<String>,
    /// Why it was skipped or failed.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = runs)]
struct NewRun<'a> {
    id: &'a str,
    notebook_id: &'a str,
    schedule_id: Option<&'a str>,
    trigger_kind: &'a str,
    scheduled_for: Option<NaiveDateTime>,
    status: &'a str,
    started_at: NaiveDateTime,
    finished_at: Option<NaiveDateTime>,
    detail: Option<&'a str>,
    heartbeat_at: NaiveDateTime,
}

/// How a run ended, as recorded.
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// Success, error, failed or skipped.
    pub status: RunStatus,
    /// The first failed cell.
    pub failed_cell: Option<String>,
    /// Why (for failed and skipped runs, or a note).
    pub detail: Option<String>,
    /// The notebook with its outputs, as stored JSON text.
    pub snapshot: Option<String>,
}

/// A run just recorded by a claim or a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded as running: the caller runs it.
    Started(String),
    /// Recorded as skipped, because this run of the notebook was still going.
    Skipped {
        /// The skipped run's id.
        run_id: String,
        /// The run still going.
        running: String,
    },
    /// Nothing recorded: this run of the notebook is still going (a start asked not to
    /// record skips).
    Busy(String),
}

/// What is needed to run a notebook: its owner (charged for the kernel), name and cells.
#[derive(Debug, Clone)]
pub struct RunnableNotebook {
    /// The owner's user id.
    pub owner: String,
    /// Display name.
    pub name: String,
    /// Cells in order.
    pub cells: Vec<CellRow>,
}

/// Lock class of "runs of a notebook": two starts (a fire and a `POST /runs`, or two
/// instances) cannot both see "nothing running".
const RUN_LOCK_CLASS: i32 = 0x6e62_7275;

/// Inside the caller's transaction (taking the run lock): records a run of `notebook_id`,
/// as running, or, when another run of it is still going, as skipped (`$record_skip`) or
/// not at all; then trims the notebook's history to `keep` finished runs.
macro_rules! record_run {
    ($c:ident, $notebook_id:expr, $schedule_id:expr, $fire:expr, $trigger:expr, $now:expr, $keep:expr, $record_skip:expr) => {{
        $c.lock_key(RUN_LOCK_CLASS, $notebook_id).await?;
        let running: Option<String> = runs::table
            .filter(runs::notebook_id.eq($notebook_id))
            .filter(runs::status.eq(RunStatus::Running.as_str()))
            .order(runs::started_at.asc())
            .select(runs::id)
            .first::<String>($c)
            .await
            .optional()?;
        if let (Some(running), false) = (&running, $record_skip) {
            return Ok(Recorded::Busy(running.clone()));
        }
        let run_id = uuid::Uuid::new_v4().to_string();
        let detail = running
            .as_ref()
            .map(|r| format!("skipped: run {r} of this notebook was still running"));
        diesel::insert_into(runs::table)
            .values(NewRun {
                id: &run_id,
                notebook_id: $notebook_id,
                schedule_id: $schedule_id,
                trigger_kind: $trigger.as_str(),
                scheduled_for: $fire,
                status: if running.is_some() {
                    RunStatus::Skipped.as_str()
                } else {
                    RunStatus::Running.as_str()
                },
                started_at: $now,
                finished_at: running.as_ref().map(|_| $now),
                detail: detail.as_deref(),
                heartbeat_at: $now,
            })
            .execute($c)
            .await?;
        // Newest first; running rows are never trimmed (their runner still writes to them).
        let finished: Vec<String> = runs::table
            .filter(runs::notebook_id.eq($notebook_id))
            .filter(runs::status.ne(RunStatus::Running.as_str()))
            .order((runs::started_at.desc(), runs::id.desc()))
            .select(runs::id)
            .load::<String>($c)
            .await?;
        let old: Vec<&String> = finished.iter().skip($keep).collect();
        if !old.is_empty() {
            diesel::delete(runs::table.filter(runs::id.eq_any(old)))
                .execute($c)
                .await?;
        }
        Ok(match running {
            None => Recorded::Started(run_id),
            Some(running) => Recorded::Skipped { run_id, running },
        })
    }};
}

/// Lock class of "schedules of a notebook": two creates cannot both see room for one more.
const SCHEDULE_LOCK_CLASS: i32 = 0x6e62_7363;

/// Inserts a schedule unless its notebook already has `max` of them; answers whether it did.
pub async fn create_schedule(db: &Db, row: &ScheduleRow, max: usize) -> Result<bool, DbError> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let mut conn = db.get().await?;
    let created = db_run!(conn, |c| {
        c.transaction::<_, diesel::result::Error, _>(|c| {
            async move {
                c.lock_key(SCHEDULE_LOCK_CLASS, &row.notebook_id).await?;
                let existing: i64 = schedules::table
                    .filter(schedules::notebook_id.eq(&row.notebook_id))
                    .count()
                    .get_result(c)
                    .await?;
                if existing >= max {
                    return Ok(false);
                }
                diesel::insert_into(schedules::table)
                    .values(row)
                    .execute(c)
                    .await?;
                Ok(true)
            }
            .scope_boxed()
        })
        .await
    })?;
    Ok(created)
}

/// A notebook's schedules, oldest first.
pub async fn list_schedules(db: &Db, notebook_id: &str) -> Result<Vec<ScheduleRow>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        schedules::table
            .filter(schedules::notebook_id.eq(notebook_id))
            .order((schedules::created_at.asc(), schedules::id.asc()))
            .select(ScheduleRow::as_select())
            .load::<ScheduleRow>(c)
            .await
    })?;
    Ok(rows)
}

/// Deletes one schedule of a notebook; false when the notebook has no such schedule.
pub async fn delete_schedule(
    db: &Db,
    notebook_id: &str,
    schedule_id: &str,
) -> Result<bool, DbError> {
    let mut conn = db.get().await?;
    let deleted = db_run!(conn, |c| {
        diesel::delete(
            schedules::table
                .filter(schedules::id.eq(schedule_id))
                .filter(schedules::notebook_id.eq(notebook_id)),
        )
        .execute(c)
        .await
    })?;
    Ok(deleted == 1)
}

/// Schedules due at `now` (at most `limit`, the longest overdue first).
pub async fn due_schedules(
    db: &Db,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<ScheduleRow>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        schedules::table
            .filter(schedules::next_fire_at.le(now))
            .order((schedules::next_fire_at.asc(), schedules::id.asc()))
            .limit(limit)
            .select(ScheduleRow::as_select())
            .load::<ScheduleRow>(c)
            .await
    })?;
    Ok(rows)
}

/// Claims the fire of `due` (read with its `next_fire_at`) by moving it on to `next`, and
/// records its run in the same transaction. None when another instance claimed it first.
pub async fn claim_fire(
    db: &Db,
    due: &ScheduleRow,
    next: NaiveDateTime,
    now: NaiveDateTime,
    keep: usize,
) -> Result<Option<Recorded>, DbError> {
    let mut conn = db.get().await?;
    let recorded = db_run!(conn, |c| {
        c.transaction::<_, diesel::result::Error, _>(|c| {
            async move {
                let claimed = diesel::update(
                    schedules::table
                        .filter(schedules::id.eq(&due.id))
                        .filter(schedules::next_fire_at.eq(due.next_fire_at)),
                )
                .set(schedules::next_fire_at.eq(next))
                .execute(c)
                .await?;
                if claimed != 1 {
                    return Ok(None);
                }
                // Its own block, so the macro's early answers stay inside it.
                let recorded: QueryResult<Recorded> = async {
                    record_run!(
                        c,
                        &due.notebook_id,
                        Some(due.id.as_str()),
                        Some(due.next_fire_at),
                        Trigger::Schedule,
                        now,
                        keep,
                        true
                    )
                }
                .await;
                recorded.map(Some)
            }
            .scope_boxed()
        })
        .await
    })?;
    Ok(recorded)
}

/// Records a run started now by `trigger` (manual or API), unless one is going (`Busy`).
pub async fn start_run(
    db: &Db,
    notebook_id: &str,
    trigger: Trigger,
    now: NaiveDateTime,
    keep: usize,
) -> Result<Recorded, DbError> {
    let mut conn = db.get().await?;
    let recorded = db_run!(conn, |c| {
        c.transaction::<_, diesel::result::Error, _>(|c| {
            async move {
                record_run!(
                    c,
                    notebook_id,
                    None::<&str>,
                    None,
                    trigger,
                    now,
                    keep,
                    false
                )
            }
            .scope_boxed()
        })
        .await
    })?;
    Ok(recorded)
}

/// Records how a running run ended (a run already marked finished, e.g. by the sweep of a
/// dead instance's runs, is left as it is).
pub async fn finish_run(
    db: &Db,
    run_id: &str,
    end: &RunEnd,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    let mut conn = db.get().await?;
    db_run!(conn, |c| {
        diesel::update(
            runs::table
                .filter(runs::id.eq(run_id))
                .filter(runs::status.eq(RunStatus::Running.as_str())),
        )
        .set((
            runs::status.eq(end.status.as_str()),
            runs::finished_at.eq(Some(now)),
            runs::failed_cell.eq(end.failed_cell.as_deref()),
            runs::detail.eq(end.detail.as_deref()),
            runs::snapshot.eq(end.snapshot.as_deref()),
        ))
        .execute(c)
        .await
    })?;
    Ok(())
}

/// Marks runs this instance is still running as alive.
pub async fn heartbeat(db: &Db, run_ids: &[String], now: NaiveDateTime) -> Result<(), DbError> {
    if run_ids.is_empty() {
        return Ok(());
    }
    let mut conn = db.get().await?;
    db_run!(conn, |c| {
        diesel::update(
            runs::table
                .filter(runs::id.eq_any(run_ids))
                .filter(runs::status.eq(RunStatus::Running.as_str())),
        )
        .set(runs::heartbeat_at.eq(now))
        .execute(c)
        .await
    })?;
    Ok(())
}

/// Marks as failed every running run whose instance stopped beating before `stale_before`
/// (it crashed or was killed); answers how many.
pub async fn fail_stale(
    db: &Db,
    stale_before: NaiveDateTime,
    now: NaiveDateTime,
    detail: &str,
) -> Result<usize, DbError> {
    let mut conn = db.get().await?;
    let n = db_run!(conn, |c| {
        diesel::update(
            runs::table
                .filter(runs::status.eq(RunStatus::Running.as_str()))
                .filter(runs::heartbeat_at.lt(stale_before)),
        )
        .set((
            runs::status.eq(RunStatus::Failed.as_str()),
            runs::finished_at.eq(Some(now)),
            runs::detail.eq(detail),
        ))
        .execute(c)
        .await
    })?;
    Ok(n)
}

/// A notebook's runs, newest first, at most `limit`.
pub async fn list_runs(db: &Db, notebook_id: &str, limit: i64) -> Result<Vec<RunSummary>, DbError> {
    let mut conn = db.get().await?;
    let rows = db_run!(conn, |c| {
        runs::table
            .filter(runs::notebook_id.eq(notebook_id))
            .order((runs::started_at.desc(), runs::id.desc()))
            .limit(limit)
            .select(RunSummary::as_select())
            .load::<RunSummary>(c)
            .await
    })?;
    Ok(rows)
}

/// One run of a notebook with its snapshot text; None when the notebook has no such run.
pub async fn get_run(
    db: &Db,
    notebook_id: &str,
    run_id: &str,
) -> Result<Option<(RunSummary, Option<String>)>, DbError> {
    let mut conn = db.get().await?;
    let row = db_run!(conn, |c| {
        runs::table
            .filter(runs::id.eq(run_id))
            .filter(runs::notebook_id.eq(notebook_id))
            .select((RunSummary::as_select(), runs::snapshot))
            .first::<(RunSummary, Option<String>)>(c)
            .await
            .optional()
    })?;
    Ok(row)
}

/// The notebook as a run needs it, read in one transaction; None when it is gone.
pub async fn runnable_notebook(
    db: &Db,
    notebook_id: &str,
) -> Result<Option<RunnableNotebook>, DbError> {
    let mut conn = db.get().await?;
    let found = db_run!(conn, |c| {
        c.transaction::<_, diesel::result::Error, _>(|c| {
            async move {
                let notebook = notebooks::table
                    .find(notebook_id)
                    .select((notebooks::owner_id, notebooks::name))
                    .first::<(String, String)>(c)
                    .await
                    .optional()?;
                let Some((owner, name)) = notebook else {
                    return Ok(None);
                };
                let cells = cells::table
                    .filter(cells::notebook_id.eq(notebook_id))
                    .order(cells::position.asc())
                    .select(CellRow::as_select())
                    .load::<CellRow>(c)
                    .await?;
                Ok(Some(RunnableNotebook { owner, name, cells }))
            }
            .scope_boxed()
        })
        .await
    })?;
    Ok(found)
}
