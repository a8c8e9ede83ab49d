//! One claimed job taken to its next state: re-check, send, record.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_channels::{Delivered, OutgoingMessage, SendError, fix};
use dunning_core::mask::mask_recipient;
use dunning_store::StoreError;
use dunning_store::queue::{ClaimedJob, Final, Slot};
use log::{error, info, warn};
use time::OffsetDateTime;

use crate::Worker;
use crate::recheck::{Ready, Verdict};

/// One log line per job outcome; the recipient only ever appears masked.
struct Trace {
    started: Instant,
    recipient: Option<String>,
    reference: Option<String>,
}

impl Trace {
    fn log(&self, job: &ClaimedJob, outcome: &str) {
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
        let verdict = if job.attempts > self.cfg.tries as i32 {
            Verdict::Fail(format!(
                "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
                job.attempts - 1,
                self.cfg.tries
            ))
        } else {
            self.recheck(conn, job)?
        };
        // What the re-check decided, for RUST_LOG=debug (no recipient, no text).
        log::debug!(
            "job={} notification={} channel={} attempt={} re-check: {}",
            job.id,
            job.notification_id,
            job.channel,
            job.attempts,
            match &verdict {
                Verdict::Send(_) => "send".to_owned(),
                Verdict::Skip(reason) => format!("skip ({reason})"),
                Verdict::Fail(error) => format!("fail ({error})"),
                Verdict::Hold { reason, .. } => format!("hold ({reason})"),
            }
        );
        if let (Some(slot), false) = (slot, matches!(verdict, Verdict::Send(_))) {
            self.queue.return_slot(conn, slot)?;
        }
        let done = match verdict {
            Verdict::Send(ready) => {
                trace.recipient = Some(ready.recipient.clone());
                trace.reference = Some(ready.reference.clone());
                self.send(conn, job, &ready, &trace)
            }
            Verdict::Skip(reason) => self.settle(conn, job, Final::Skipped { reason }, &trace),
            Verdict::Fail(error) => self.settle(conn, job, Final::Failed { error }, &trace),
            Verdict::Hold {
                reason,
                retry_in,
                quiet,
            } => {
                self.queue
                    .release(conn, job, OffsetDateTime::now_utc() + retry_in)?;
                self.stats.released.fetch_add(1, Ordering::Relaxed);
                if !quiet {
                    trace.log(job, &format!("held {}s ({reason})", retry_in.as_secs()));
                }
                Ok(())
            }
        };
        let unlocked = self.queue.unlock_senders(conn);
        done.and(unlocked)
    }

    /// Records a final state decided without a send.
    fn settle(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        outcome: Final,
        trace: &Trace,
    ) -> Result<(), StoreError> {
        self.queue.finish(conn, job, &outcome)?;
        let (counter, line) = match &outcome {
            Final::Skipped { reason } => (&self.stats.skipped, format!("skipped ({reason})")),
            Final::Failed { error } => (&self.stats.failed, format!("failed ({error})")),
            Final::Sent { .. } => (&self.stats.sent, "sent".to_owned()),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        trace.log(job, &line);
        Ok(())
    }

    /// Sends `ready` and records what happened.
    fn send(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
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
            ready,
            result,
            trace,
        } = sent;
        let (job, trace) = (*job, *trace);
        match result {
            Ok(delivered) => {
                let sent = Final::Sent {
                    recipient: ready.recipient.clone(),
                    provider_message_id: delivered.provider_message_id.clone(),
                };
                self.settle(conn, job, sent, trace)
            }
            Err(SendError::Permanent(e)) => {
                let failed = Final::Failed { error: e.clone() };
                self.settle(conn, job, failed, trace)
            }
            Err(SendError::Transient(e)) if job.attempts < self.cfg.tries as i32 => {
                let backoff = self.backoff(job.attempts);
                let at = OffsetDateTime::now_utc() + backoff;
                self.queue.retry_later(conn, job, at, e)?;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                trace.log(job, &format!("retry in {}s ({e})", backoff.as_secs()));
                Ok(())
            }
            Err(SendError::Transient(e)) => {
                let error = format!("{e} (gave up after {} attempts)", job.attempts);
                self.settle(conn, job, Final::Failed { error }, trace)
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
    fn pause_for(&self, kind: dunning_channels::PauseKind) -> Duration {
        match kind {
            dunning_channels::PauseKind::Quota => {
                self.cfg.channel_pause.max(Duration::from_secs(3600))
            }
            _ => self.cfg.channel_pause,
        }
    }
}
