//! The scheduler loop: every `SCHEDULE_TICK_SECS` it keeps this instance's runs alive in the
//! database, fails runs whose instance died, and fires every due schedule it can claim.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use tokio::sync::watch;

use super::cron::CronSchedule;
use super::runner::Runs;
use super::store::{self, Recorded};
use crate::db::DbError;
use crate::headless::StopSignal;

/// Most due schedules looked at in one tick (the rest wait for the next).
const DUE_PER_TICK: i64 = 200;

/// Seconds without a heartbeat after which a running run counts as dead: four ticks, and
/// never less than a minute, so a slow database does not fail live runs.
pub fn stale_after(tick_secs: u64) -> u64 {
    tick_secs.saturating_mul(4).max(60)
}

/// Ticks until `shutdown` says stop.
pub async fn run(runs: Runs, mut shutdown: watch::Receiver<Option<StopSignal>>) {
    let tick = Duration::from_secs(runs.config().schedule_tick_secs.max(1));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait_for(Option::is_some) => break,
        }
        if let Err(e) = once(&runs).await {
            log::warn!("scheduler tick failed: {e}");
        }
    }
}

/// One tick.
async fn once(runs: &Runs) -> Result<(), DbError> {
    let now = Utc::now();
    let naive = now.naive_utc();
    let db = runs.db();
    store::heartbeat(db, &runs.active(), naive).await?;
    let stale = stale_after(runs.config().schedule_tick_secs);
    let stale_before = naive - chrono::Duration::seconds(i64::try_from(stale).unwrap_or(60));
    let detail = format!(
        "failed: the server running it stopped (no heartbeat for {stale} s); it did not finish"
    );
    let failed = store::fail_stale(db, stale_before, naive, &detail).await?;
    if failed > 0 {
        log::warn!("marked {failed} run(s) of stopped servers as failed");
    }
    for due in store::due_schedules(db, naive, DUE_PER_TICK).await? {
        if runs.stopping() {
            break;
        }
        // Fires missed while no server ran collapse into this one: the next is after now.
        let Some(next) = next_fire(&due.cron, &due.timezone, now) else {
            continue;
        };
        let keep = runs.config().run_history;
        match store::claim_fire(db, &due, next, naive, keep).await? {
            Some(Recorded::Started(run_id)) => {
                log::info!(
                    "schedule {} fired: run {run_id} of notebook {}",
                    due.id,
                    due.notebook_id
                );
                runs.spawn(run_id, due.notebook_id.clone());
            }
            Some(Recorded::Skipped { run_id, running }) => log::info!(
                "schedule {} fired while run {running} was going: run {run_id} recorded as skipped",
                due.id
            ),
            // Another instance claimed this fire (a claim always records, never `Busy`).
            None | Some(Recorded::Busy(_)) => {}
        }
    }
    Ok(())
}

/// The next fire after `now` of a stored schedule; None (logged) when it cannot fire again.
fn next_fire(cron: &str, timezone: &str, now: chrono::DateTime<Utc>) -> Option<NaiveDateTime> {
    // Seconds are accepted here whatever the setting says: the schedule was valid when made.
    match CronSchedule::parse(cron, timezone, true) {
        Ok(schedule) => schedule.next_after(now),
        Err(e) => {
            log::error!("stored schedule cannot be read: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_runs_wait_at_least_a_minute() {
        assert_eq!(stale_after(1), 60);
        assert_eq!(stale_after(15), 60);
        assert_eq!(stale_after(30), 120);
    }
}
