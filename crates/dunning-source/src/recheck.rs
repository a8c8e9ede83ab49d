//! The live re-check right before a send: is this invoice still unpaid in billing?
//!
//! [`Recheck::invoice_status`] asks the source (the invoices query as a subquery
//! filtered by number, short timeouts); [`decide`] turns its answer and the time
//! of the last successful sync into send, skip or hold.
//!
//! The rule when the source cannot be asked: the mirror (already checked by the
//! worker) is trusted for `BILLING_MAX_STALENESS` after the last successful sync,
//! and no longer. Past that the job is held and retried: a reminder is never sent
//! on state older than that. A customer who paid at 07:59 is thus never reminded
//! at 08:05 unless both the source and every sync since 07:50 failed.

use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

use crate::client::{Source, Timeouts};
use crate::config::SourceConfig;
use crate::error::SourceError;

/// An invoice's status in the billing source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unpaid,
    Paid,
    Void,
}

impl Status {
    /// `unpaid`, `paid` or `void` (any case); None for anything else.
    pub fn parse(s: &str) -> Option<Status> {
        match s.trim().to_ascii_lowercase().as_str() {
            "unpaid" => Some(Status::Unpaid),
            "paid" => Some(Status::Paid),
            "void" => Some(Status::Void),
            _ => None,
        }
    }
}

/// What the worker does with a reminder after the re-check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Still unpaid (or the source is down and the mirror fresh enough): send.
    Send,
    /// Paid, void or gone from the source: skip it, with this reason.
    Skip(&'static str),
    /// The source is down and the mirror too old: keep the job, retry later.
    Hold,
}

/// Decides from the source's answer; `last_sync_ok` is when the last successful
/// sync ended (`mirror::last_success`), `max_staleness` is `BILLING_MAX_STALENESS`.
pub fn decide(
    answer: &Result<Option<Status>, SourceError>,
    last_sync_ok: Option<OffsetDateTime>,
    now: OffsetDateTime,
    max_staleness: Duration,
) -> Decision {
    match answer {
        Ok(Some(Status::Unpaid)) => Decision::Send,
        Ok(Some(Status::Paid)) => Decision::Skip("paid in billing"),
        Ok(Some(Status::Void)) => Decision::Skip("void in billing"),
        Ok(None) => Decision::Skip("no longer in billing"),
        Err(_) => match last_sync_ok {
            Some(t) if now - t <= max_staleness && t <= now => Decision::Send,
            _ => Decision::Hold,
        },
    }
}

/// A re-checker: one connection, opened on first use and again after a failure.
pub struct Recheck {
    cfg: SourceConfig,
    offset: UtcOffset,
    conn: Option<Source>,
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recheck")
            .field("target", &self.cfg.target)
            .finish_non_exhaustive()
    }
}

impl Recheck {
    /// A re-checker for this source; connects on first use.
    pub fn new(cfg: SourceConfig, offset: UtcOffset) -> Recheck {
        Recheck {
            cfg,
            offset,
            conn: None,
        }
    }

    /// The invoice's status in billing now: `Ok(None)` when the source has no such
    /// invoice; `Err` when it could not be asked within the timeouts (or the
    /// queries file is wrong). A status the query returns that is not unpaid,
    /// paid or void counts as an error: never send on a value not understood.
    pub fn invoice_status(&mut self, number: &str) -> Result<Option<Status>, SourceError> {
        if self.conn.is_none() {
            let queries = self.cfg.queries().map_err(|e| SourceError::Query {
                query: "invoices",
                file: self.cfg.queries_file.display().to_string(),
                target: self.cfg.target.clone(),
                reason: e.to_string(),
            })?;
            self.conn = Some(Source::connect(
                &self.cfg,
                queries,
                self.offset,
                Timeouts::RECHECK,
            )?);
        }
        let Some(src) = self.conn.as_mut() else {
            unreachable!("connected above")
        };
        match src.status_of(number) {
            Ok(None) => Ok(None),
            Ok(Some(s)) => Status::parse(&s).map(Some).ok_or_else(|| SourceError::Query {
                query: "invoices",
                file: self.cfg.queries_file.display().to_string(),
                target: self.cfg.target.clone(),
                reason: format!(
                    "invoice {number} has status {s:?}; the query must return unpaid, paid or void"
                ),
            }),
            Err(e) => {
                // Reconnect next time: the connection may be dead.
                self.conn = None;
                Err(e)
            }
        }
    }
}

/// Logs a hold once when the source goes away and once when it is back, not
/// once per job.
#[derive(Debug, Default)]
pub struct HoldLog {
    holding: bool,
}

impl HoldLog {
    /// Notes a decision; logs only the changes between holding and not.
    pub fn note(&mut self, decision: Decision, error: Option<&SourceError>) {
        match (decision, self.holding) {
            (Decision::Hold, false) => {
                self.holding = true;
                log::warn!(
                    "billing source unreachable and the last successful sync is older than BILLING_MAX_STALENESS: reminders are held until it answers{}",
                    error.map_or(String::new(), |e| format!(" ({e})"))
                );
            }
            (Decision::Send | Decision::Skip(_), true) => {
                self.holding = false;
                log::warn!("billing source answers again: held reminders go out");
            }
            _ => {}
        }
    }

    /// True while reminders are held.
    pub fn holding(&self) -> bool {
        self.holding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Result<Option<Status>, SourceError> {
        Err(SourceError::Unreachable {
            target: "h:1/b".into(),
            reason: "refused".into(),
        })
    }

    #[test]
    fn the_answer_of_the_source_wins() {
        let now = OffsetDateTime::now_utc();
        let m = Duration::from_secs(900);
        assert_eq!(
            decide(&Ok(Some(Status::Unpaid)), None, now, m),
            Decision::Send
        );
        assert!(matches!(
            decide(&Ok(Some(Status::Paid)), Some(now), now, m),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(&Ok(Some(Status::Void)), Some(now), now, m),
            Decision::Skip(_)
        ));
        assert!(matches!(
            decide(&Ok(None), Some(now), now, m),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn source_down_sends_only_within_max_staleness_of_the_last_sync() {
        let now = OffsetDateTime::now_utc();
        let m = Duration::from_secs(900);
        let ago = |s: i64| Some(now - time::Duration::seconds(s));
        assert_eq!(decide(&down(), ago(60), now, m), Decision::Send);
        assert_eq!(decide(&down(), ago(900), now, m), Decision::Send);
        assert_eq!(decide(&down(), ago(901), now, m), Decision::Hold);
        assert_eq!(decide(&down(), None, now, m), Decision::Hold);
        // A sync "in the future" (clock skew) is not trusted.
        assert_eq!(decide(&down(), ago(-60), now, m), Decision::Hold);
    }

    #[test]
    fn holds_are_logged_once() {
        let mut h = HoldLog::default();
        h.note(Decision::Hold, None);
        assert!(h.holding());
        h.note(Decision::Hold, None);
        h.note(Decision::Send, None);
        assert!(!h.holding());
    }

    #[test]
    fn statuses() {
        assert_eq!(Status::parse(" PAID "), Some(Status::Paid));
        assert_eq!(Status::parse("lunas"), None);
    }
}
