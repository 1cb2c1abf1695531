//! Cron expressions and time zones: parsing (with messages a user can act on) and the next
//! fire time. Parsing is `croner`'s (POSIX/Vixie cron with `L`, `W`, `#` and `@daily`-style
//! nicknames); time zones are IANA names from `chrono-tz`, so "09:00 in Europe/Paris" stays
//! 09:00 across daylight-saving changes.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// The time zone a schedule uses when none is given.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Longest cron expression accepted (a real one is a few dozen characters).
const MAX_CRON_CHARS: usize = 200;

/// Why a schedule's cron expression or time zone cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression has the wrong number of fields, or one that does not parse.
    #[error("invalid cron expression {expr:?}: {reason}")]
    Cron {
        /// The expression as given.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The expression parses but matches no time in the future (e.g. 30 February).
    #[error("cron expression {0:?} never fires")]
    Never(String),
    /// Not an IANA time zone name.
    #[error("unknown timezone {0:?}: expected an IANA name such as \"UTC\" or \"Europe/Paris\"")]
    Timezone(String),
}

/// A parsed cron expression in its time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
}

/// Fields of a standard expression, for the messages.
const FIVE_FIELDS: &str = "minute hour day-of-month month day-of-week";

impl CronSchedule {
    /// Parses `expr` in the IANA time zone `timezone`. Five fields (minute resolution) are
    /// always accepted; six, with a leading seconds field, only with `allow_seconds`.
    pub fn parse(
        expr: &str,
        timezone: &str,
        allow_seconds: bool,
    ) -> Result<CronSchedule, ScheduleError> {
        let tz = Tz::from_str(timezone.trim())
            .map_err(|_| ScheduleError::Timezone(timezone.to_string()))?;
        let bad = |reason: String| ScheduleError::Cron {
            expr: expr.to_string(),
            reason,
        };
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(bad(format!(
                "it is empty; expected 5 fields ({FIVE_FIELDS})"
            )));
        }
        if trimmed.chars().count() > MAX_CRON_CHARS {
            return Err(bad(format!("longer than {MAX_CRON_CHARS} characters")));
        }
        // Nicknames (`@hourly`, `@daily`, ...) are one word and croner reads them itself.
        if !trimmed.starts_with('@') {
            match trimmed.split_whitespace().count() {
                5 => {}
                6 if allow_seconds => {}
                6 => {
                    return Err(bad(format!(
                        "it has 6 fields, but a seconds field is not enabled on this server \
                         (SCHEDULE_ALLOW_SECONDS); use 5 fields ({FIVE_FIELDS})"
                    )))
                }
                n => {
                    let expected = if allow_seconds {
                        format!("5 fields ({FIVE_FIELDS}) or 6 with seconds first")
                    } else {
                        format!("5 fields ({FIVE_FIELDS})")
                    };
                    return Err(bad(format!("it has {n} fields; expected {expected}")));
                }
            }
        }
        let cron = Cron::new(trimmed)
            .with_seconds_optional()
            .parse()
            .map_err(|e| bad(e.to_string()))?;
        let schedule = CronSchedule { cron, tz };
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::Never(expr.to_string()));
        }
        Ok(schedule)
    }

    /// The first fire time strictly after `after`, as naive UTC (how the store keeps times);
    /// None when the expression never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<NaiveDateTime> {
        let local = after.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc).naive_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(text: &str) -> DateTime<Utc> {
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("time");
        Utc.from_utc_datetime(&naive)
    }

    #[test]
    fn every_minute_fires_at_the_next_minute() {
        let s = CronSchedule::parse("* * * * *", "UTC", false).expect("parses");
        let next = s.next_after(at("2026-12-06 03:04:05")).expect("fires");
        assert_eq!(next.to_string(), "2026-12-06 03:05:00");
    }

    #[test]
    fn time_zones_shift_the_fire_time() {
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        let s = CronSchedule::parse("0 9 * * *", "Europe/Paris", false).expect("parses");
        let winter = s.next_after(at("2026-12-06 10:00:00")).expect("fires");
        assert_eq!(winter.to_string(), "2026-12-07 08:00:00");
        let summer = s.next_after(at("2026-07-01 10:00:00")).expect("fires");
        assert_eq!(summer.to_string(), "2026-07-02 07:00:00");
    }

    #[test]
    fn seconds_need_the_setting() {
        let err = CronSchedule::parse("*/5 * * * * *", "UTC", false).expect_err("refused");
        assert!(err.to_string().contains("SCHEDULE_ALLOW_SECONDS"), "{err}");
        let s = CronSchedule::parse("*/5 * * * * *", "UTC", true).expect("parses");
        let next = s.next_after(at("2026-12-06 03:04:06")).expect("fires");
        assert_eq!(next.to_string(), "2026-12-06 03:04:10");
    }

    #[test]
    fn bad_input_is_named() {
        let err = CronSchedule::parse("* * *", "UTC", false).expect_err("refused");
        assert!(err.to_string().contains("3 fields"), "{err}");
        let err = CronSchedule::parse("61 * * * *", "UTC", false).expect_err("refused");
        assert!(matches!(err, ScheduleError::Cron { .. }), "{err}");
        let err = CronSchedule::parse("* * * * *", "Mars/Olympus", false).expect_err("refused");
        assert_eq!(err, ScheduleError::Timezone("Mars/Olympus".into()));
        let err = CronSchedule::parse("0 0 30 2 *", "UTC", false).expect_err("refused");
        assert!(matches!(err, ScheduleError::Never(_)), "{err}");
        assert!(CronSchedule::parse("@daily", "UTC", false).is_ok());
    }
}
