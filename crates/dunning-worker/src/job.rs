//! One claimed job taken to its next state: re-check, send, record. A job carries
//! one ledger row, or (`DUNNING_GROUP=customer`) the rows of one customer's message
//! ([`crate::group`]); either way its outcome is recorded on every row it carries,
//! together with the job's deletion, in one statement.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_channels::{Delivered, OutgoingMessage, SendError, fix};
use dunning_core::mask::mask_recipient;
use dunning_store::StoreError;
use dunning_store::queue::{ClaimedJob, Final, SenderLock, Slot};
use log::{error, info, warn};
use time::OffsetDateTime;

use crate::Worker;
use crate::recheck::{Ready, Verdict};

/// One log line per job outcome; the recipient only ever appears masked.
pub(crate) struct Trace {
    pub(crate) started: Instant,
    pub(crate) recipient: Option<String>,
    pub(crate) reference: Option<String>,
}

impl Trace {
    pub(crate) fn log(&self, job: &ClaimedJob, outcome: &str) {
        let masked = self.recipient.as_deref().map(mask_recipient);
        // Provider errors may quote the recipient ("0812… is not a valid number").
        let outcome = match (&self.recipient, &masked) {
            (Some(raw), Some(m)) if !raw.is_empty() => outcome.replace(raw.as_str(), m),
            _ => outcome.to_owned(),
        };
        info!(
            "job={} notification={} reminder={} channel={} to={} attempt={} outcome={} duration={}ms",
            job.id,
            job.notification_id,
            self.reference.as_deref().unwrap_or("-"),
            job.channel,
            masked.as_deref().unwrap_or("-"),
            job.attempts,
            outcome,
            self.started.elapsed().as_millis()
        );
    }
}

/// A send and what it returned, to be recorded.
struct Sent<'a> {
    job: &'a ClaimedJob,
    /// The ledger rows the message carried.
    rows: &'a [i64],
    ready: &'a Ready,
    result: Result<Delivered, SendError>,
    trace: &'a Trace,
}

impl Worker {
    /// Takes `job` (and the WhatsApp send `slot` it holds, if any) to its next
    /// state: the re-check, then the send and its outcome, or the skip, hold or
    /// failure the re-check decided. A slot not used for a send is given back.
    pub(crate) fn work(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        let mut trace = Trace {
            started: Instant::now(),
            recipient: None,
            reference: None,
        };
        // The verdict, and the ledger rows it is recorded on.
        let (verdict, rows) = if job.grouped {
            self.recheck_group(conn, job, &trace)?
        } else if job.attempts > self.cfg.tries as i32 {
            (self.gave_up(job), vec![job.notification_id])
        } else {
            (self.recheck(conn, job)?, vec![job.notification_id])
        };
        log::debug!(
            "job={} notification={} channel={} attempt={} re-check: {}",
            job.id,
            job.notification_id,
            job.channel,
            job.attempts,
            verdict.summary()
        );
        if let (Some(slot), false) = (slot, matches!(verdict, Verdict::Send(_))) {
            self.queue.return_slot(conn, slot)?;
        }
        let done = match verdict {
            Verdict::Send(ready) => {
                trace.recipient = Some(ready.recipient.clone());
                trace.reference = Some(ready.reference.clone());
                self.send(conn, job, &rows, &ready, &trace)
            }
            Verdict::Skip(reason) => {
                self.settle(conn, job, &rows, Final::Skipped { reason }, &trace)
            }
            Verdict::Fail(error) => self.settle(conn, job, &rows, Final::Failed { error }, &trace),
            Verdict::Hold {
                reason,
                retry_in,
                quiet,
            } => {
                self.hold(conn, job, &reason, retry_in, quiet, &trace)?;
                Ok(())
            }
        };
        done.and(self.unlock_senders(conn, job))
    }

    /// Hands `job` back for `retry_in`, its attempt not counted; logged unless
    /// `quiet`.
    fn hold(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        reason: &str,
        retry_in: Duration,
        quiet: bool,
        trace: &Trace,
    ) -> Result<(), StoreError> {
        self.queue
            .release(conn, job, OffsetDateTime::now_utc() + retry_in)?;
        self.stats.released.fetch_add(1, Ordering::Relaxed);
        if !quiet {
            trace.log(job, &format!("held {}s ({reason})", retry_in.as_secs()));
        }
        Ok(())
    }

    /// Ends the sender locks of `job`'s claim, once its outcome is recorded (or the
    /// job handed back).
    fn unlock_senders(&self, conn: &mut PgConnection, job: &ClaimedJob) -> Result<(), StoreError> {
        match job.sender {
            SenderLock::NoInvoice => Ok(()),
            SenderLock::Taken | SenderLock::Busy => self.queue.unlock_senders(conn),
        }
    }

    /// The verdict on a job whose earlier attempt never recorded its outcome and
    /// that has no attempt left.
    pub(crate) fn gave_up(&self, job: &ClaimedJob) -> Verdict {
        Verdict::Fail(format!(
            "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
            job.attempts - 1,
            self.cfg.tries
        ))
    }

    /// Records a final state on the job's `rows` and deletes the job.
    fn settle(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        rows: &[i64],
        outcome: Final,
        trace: &Trace,
    ) -> Result<(), StoreError> {
        self.queue.finish(conn, job, rows, &outcome)?;
        let (counter, line) = match &outcome {
            Final::Skipped { reason } => (&self.stats.skipped, format!("skipped ({reason})")),
            Final::Failed { error } => (&self.stats.failed, format!("failed ({error})")),
            Final::Sent { .. } => (&self.stats.sent, "sent".to_owned()),
        };
        counter.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let line = match rows.len() {
            0 | 1 => line,
            n => format!("{line} ({n} reminders in one message)"),
        };
        trace.log(job, &line);
        Ok(())
    }

    /// Sends `ready` and records what happened on the `rows` it carries.
    fn send(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        rows: &[i64],
        ready: &Ready,
        trace: &Trace,
    ) -> Result<(), StoreError> {
        let msg = OutgoingMessage {
            recipient: &ready.recipient,
            subject: &ready.rendered.subject,
            body: &ready.rendered.body,
            reference: &ready.reference,
        };
        let sent = Sent {
            job,
            rows,
            ready,
            result: self.senders.get(job.channel).send(&msg),
            trace,
        };
        self.record(conn, &sent)
    }

    /// Records what a send did, retrying the write until the database takes it:
    /// the message is out, and its outcome must not be lost.
    fn record(&self, conn: &mut PgConnection, sent: &Sent<'_>) -> Result<(), StoreError> {
        let job = sent.job;
        match self.record_once(conn, sent) {
            Err(e) if e.is_connection_problem() => {}
            other => return other,
        }
        // The thread's connection is gone (database restart?): keep trying on fresh
        // connections for as long as nobody else may take the job over.
        let deadline = Instant::now() + self.cfg.retry_after;
        let mut wait = Duration::from_millis(200);
        loop {
            warn!(
                "job={} outcome not recorded yet (database unavailable); retrying in {}ms",
                job.id,
                wait.as_millis()
            );
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(5));
            let attempt = self
                .pool
                .get()
                .map_err(StoreError::from)
                .and_then(|mut c| self.record_once(&mut c, sent));
            match attempt {
                Ok(()) => {
                    return Err(StoreError::ConnectionLost(
                        "the worker's connection was lost (the outcome was recorded on a new one)"
                            .to_owned(),
                    ));
                }
                Err(e) if e.is_connection_problem() && Instant::now() < deadline => {}
                Err(e) => {
                    error!("job={} outcome could not be recorded: {e}", job.id);
                    return Err(e);
                }
            }
        }
    }

    fn record_once(&self, conn: &mut PgConnection, sent: &Sent<'_>) -> Result<(), StoreError> {
        let Sent {
            job,
            rows,
            ready,
            result,
            trace,
        } = sent;
        let (job, rows, trace) = (*job, *rows, *trace);
        match result {
            Ok(delivered) => {
                let sent = Final::Sent {
                    recipient: ready.recipient.clone(),
                    provider_message_id: delivered.provider_message_id.clone(),
                };
                self.settle(conn, job, rows, sent, trace)
            }
            Err(SendError::Permanent(e)) => {
                let failed = Final::Failed { error: e.clone() };
                self.settle(conn, job, rows, failed, trace)
            }
            Err(SendError::Transient(e)) if job.attempts < self.cfg.tries as i32 => {
                let backoff = self.backoff(job.attempts);
                let at = OffsetDateTime::now_utc() + backoff;
                self.queue.retry_later(conn, job, rows, at, e)?;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                trace.log(job, &format!("retry in {}s ({e})", backoff.as_secs()));
                Ok(())
            }
            Err(SendError::Transient(e)) => {
                let error = format!("{e} (gave up after {} attempts)", job.attempts);
                self.settle(conn, job, rows, Final::Failed { error }, trace)
            }
            Err(wide @ SendError::ChannelWide { kind, reason, .. }) => {
                let until = OffsetDateTime::now_utc() + self.pause_for(*kind);
                let paused = dunning_store::queue::pause_channel(conn, job.channel, until, reason)?;
                // The job waits for the pause's end (or an operator's `resume`).
                self.queue.release(conn, job, paused.until)?;
                self.pauses.forget();
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                if paused.started {
                    error!(
                        "{} paused for all workers until {}: {reason}. Fix: {}",
                        job.channel,
                        crate::idle::local_time(&self.cfg.zone, paused.until),
                        fix::for_error(job.channel, wide)
                    );
                }
                trace.log(job, &format!("paused ({reason})"));
                Ok(())
            }
        }
    }

    /// The wait before attempt `attempts + 1` (the last `--backoff` value repeats).
    pub(crate) fn backoff(&self, attempts: i32) -> Duration {
        let idx = (attempts as usize).saturating_sub(1);
        let b = &self.cfg.backoff;
        b.get(idx).or(b.last()).copied().unwrap_or_default()
    }

    /// How long a channel-wide failure of `kind` pauses the channel: an hour at
    /// least for a used-up quota, which does not come back in minutes.
    pub(crate) fn pause_for(&self, kind: dunning_channels::PauseKind) -> Duration {
        match kind {
            dunning_channels::PauseKind::Quota => {
                self.cfg.channel_pause.max(Duration::from_secs(3600))
            }
            _ => self.cfg.channel_pause,
        }
    }
}
