//! The live re-check against the billing source (`BILLING_DATABASE_URL`): right
//! before a reminder of an invoice that came from billing goes out, the source is
//! asked whether that one invoice is still unpaid.
//!
//! The rule when the source cannot be asked is [`dunning_source::decide`]'s: the
//! mirror (already checked) is trusted for `BILLING_MAX_STALENESS` after the last
//! successful sync, and no longer; past that the job is held and retried, never sent
//! on older state. A hold is logged once when it starts and once when it ends
//! ([`HoldLog`]), not once per job.

use std::sync::Mutex;
use std::time::Duration;

use diesel::pg::PgConnection;
use dunning_source::{Decision, HoldLog, Recheck, SourceConfig, decide};
use dunning_store::StoreError;
use dunning_store::ops::mirror;
use time::{OffsetDateTime, UtcOffset};

/// How long a reminder held for an unreachable source waits before it is tried again.
pub const HOLD_RETRY: Duration = Duration::from_secs(60);

/// What the source said about one invoice, for the re-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceVerdict {
    /// Unpaid in billing (or the source is down and the mirror fresh enough).
    Send,
    /// Paid, void or gone in billing.
    Skip(&'static str),
    /// The source is down and the mirror older than `BILLING_MAX_STALENESS`.
    Hold,
}

/// The billing source of one worker process, shared by its threads. One connection,
/// opened on first use and again after a failure; threads take turns (a re-check
/// is one indexed query, and sends are paced far slower than that).
pub(crate) struct BillingCheck {
    recheck: Mutex<Recheck>,
    holds: Mutex<HoldLog>,
    max_staleness: Duration,
}

impl BillingCheck {
    pub(crate) fn new(cfg: SourceConfig, offset: UtcOffset) -> Self {
        BillingCheck {
            max_staleness: cfg.max_staleness,
            recheck: Mutex::new(Recheck::new(cfg, offset)),
            holds: Mutex::new(HoldLog::default()),
        }
    }

    /// Asks the source about invoice `number`; on an error, reads when the last
    /// successful sync ended from `conn` and applies the staleness rule.
    pub(crate) fn check(
        &self,
        conn: &mut PgConnection,
        number: &str,
    ) -> Result<SourceVerdict, StoreError> {
        let answer = self
            .recheck
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .invoice_status(number);
        let last_ok = match &answer {
            Ok(_) => None,
            Err(e) => {
                log::debug!("billing re-check of invoice {number} failed: {e}");
                mirror::last_success(conn, false)?.and_then(|r| r.finished_at)
            }
        };
        let decision = decide(
            &answer,
            last_ok,
            OffsetDateTime::now_utc(),
            self.max_staleness,
        );
        self.holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(decision, answer.as_ref().err());
        Ok(match decision {
            Decision::Send => SourceVerdict::Send,
            Decision::Skip(reason) => SourceVerdict::Skip(reason),
            Decision::Hold => SourceVerdict::Hold,
        })
    }
}
