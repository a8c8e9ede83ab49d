//! Dunning stages (`T-7`, `T-3`, `T-1`, `T+3`, …) and their date arithmetic.

use std::fmt;
use std::str::FromStr;

use time::{Date, Duration};

/// A reminder stage: a signed number of days relative to the invoice's due date.
///
/// `T-7` has offset −7 (seven days before due), `T+3` has offset +3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stage {
    offset_days: i32,
}

/// The stages used when `DUNNING_STAGES` is not set.
pub const DEFAULT_STAGES: &str = "T-7,T-3,T-1,T+3";

/// A stage string that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid stage {input:?}: expected T-<days>, T+<days> or T+0 (e.g. T-7, T+3)")]
pub struct StageError {
    input: String,
}

impl Stage {
    /// Builds a stage from its offset in days (negative: before the due date).
    pub const fn from_offset(offset_days: i32) -> Self {
        Self { offset_days }
    }

    /// Days relative to the due date (negative before, positive after).
    pub const fn offset_days(self) -> i32 {
        self.offset_days
    }

    /// True for stages on or after the due date: their message is an overdue warning
    /// (T+0 is "due today", which is still a reminder, not a warning).
    pub const fn is_overdue(self) -> bool {
        self.offset_days > 0
    }

    /// The due date of invoices that this stage reminds on `run_date`.
    ///
    /// Run on 2025-11-15: `T-7` targets invoices due 2025-11-22, `T+3` those due 2025-11-12.
    pub fn target_due_date(self, run_date: Date) -> Date {
        run_date - Duration::days(i64::from(self.offset_days))
    }

    /// The day on which this stage falls for an invoice due on `due_date`.
    pub fn stage_date(self, due_date: Date) -> Date {
        due_date + Duration::days(i64::from(self.offset_days))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.offset_days < 0 {
            write!(f, "T-{}", -self.offset_days)
        } else {
            write!(f, "T+{}", self.offset_days)
        }
    }
}

impl FromStr for Stage {
    type Err = StageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || StageError {
            input: s.to_owned(),
        };
        let t = s.trim();
        let rest = t
            .strip_prefix('T')
            .or_else(|| t.strip_prefix('t'))
            .ok_or_else(err)?;
        let (sign, digits) = match rest.as_bytes().first() {
            Some(b'-') => (-1, &rest[1..]),
            Some(b'+') => (1, &rest[1..]),
            _ => return Err(err()),
        };
        if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err());
        }
        let days: i32 = digits.parse().map_err(|_| err())?;
        if sign < 0 && days == 0 {
            // "T-0" is accepted as a spelling of T+0.
            return Ok(Stage::from_offset(0));
        }
        Ok(Stage::from_offset(sign * days))
    }
}

/// Parses a comma-separated stage list such as `T-7,T-3,T-1,T+3`.
///
/// Duplicates are rejected; the result is ordered earliest stage first.
pub fn parse_stages(list: &str) -> Result<Vec<Stage>, StageError> {
    let mut stages = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let stage: Stage = part.parse()?;
        if stages.contains(&stage) {
            return Err(StageError {
                input: format!("{} (listed twice)", part.trim()),
            });
        }
        stages.push(stage);
    }
    if stages.is_empty() {
        return Err(StageError {
            input: list.to_owned(),
        });
    }
    stages.sort();
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_and_displays_default_stages() {
        let stages = parse_stages(DEFAULT_STAGES).unwrap();
        let shown: Vec<String> = stages.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["T-7", "T-3", "T-1", "T+3"]);
    }

    #[test]
    fn seed_example_target_dates() {
        let run = date!(2025 - 11 - 15);
        let due = |s: &str| s.parse::<Stage>().unwrap().target_due_date(run);
        assert_eq!(due("T-7"), date!(2025 - 11 - 22));
        assert_eq!(due("T-3"), date!(2025 - 11 - 18));
        assert_eq!(due("T-1"), date!(2025 - 11 - 16));
        assert_eq!(due("T+3"), date!(2025 - 11 - 12));
    }

    #[test]
    fn dates_cross_month_and_year_ends() {
        let t7: Stage = "T-7".parse().unwrap();
        let t3p: Stage = "T+3".parse().unwrap();
        for (stage, run_date, due_date) in [
            (t7, date!(2025 - 12 - 28), date!(2026 - 01 - 04)),
            (t3p, date!(2026 - 01 - 02), date!(2025 - 12 - 30)),
            (t7, date!(2028 - 02 - 25), date!(2028 - 03 - 03)),
            (t3p, date!(2028 - 03 - 01), date!(2028 - 02 - 27)),
        ] {
            assert_eq!(
                stage.target_due_date(run_date),
                due_date,
                "{stage:?} {run_date}"
            );
        }
        assert_eq!(t7.stage_date(date!(2026 - 01 - 04)), date!(2025 - 12 - 28));
    }

    #[test]
    fn rejects_malformed_stages() {
        for bad in ["", "T", "T7", "-7", "T-x", "T+", "X-1", "T-1000", "T-7,T-7"] {
            assert!(parse_stages(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn custom_stage_list_is_sorted() {
        let stages = parse_stages("T+7, T-14,T+0,T-1").unwrap();
        let shown: Vec<String> = stages.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["T-14", "T-1", "T+0", "T+7"]);
        assert!(!"T+0".parse::<Stage>().unwrap().is_overdue());
        assert!("T+3".parse::<Stage>().unwrap().is_overdue());
    }
}
