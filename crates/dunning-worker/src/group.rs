//! One message for several reminders of one customer (`DUNNING_GROUP=customer`):
//! the job names the group's lead row ([`dunning_store::queue::Member`]). Right
//! before the send every row is re-checked like a reminder of its own; rows that
//! must not go out are skipped, each for good; the rest go out as one message and
//! are recorded together with the job's deletion in one statement, so a crash or a
//! retry never sends a part of the message twice.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use dunning_channels::{Delivered, OutgoingMessage, SendError, fix};
use dunning_core::mask::mask_recipient;
use dunning_core::message::{GroupItem, InvoiceFacts, Rendered};
use dunning_store::StoreError;
use dunning_store::queue::{ClaimedJob, Delivery, Final, SenderLock, Slot};
use log::{error, info, warn};
use time::OffsetDateTime;

use crate::Worker;
use crate::billing::{HOLD_RETRY, SourceVerdict};

/// How long a group waits when another worker is sending to one of its invoices.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// The rows one message carries, rendered.
struct Carried {
    ids: Vec<i64>,
    recipient: String,
    rendered: Rendered,
    /// `INV-…/T-3+INV-…/T+3`, for logs and message ids.
    reference: String,
}

impl Worker {
    /// Takes a grouped `job` to its next state; the claim locked every invoice of
    /// the group for this channel, or found one busy ([`SenderLock`]). The caller
    /// ends the locks.
    pub(crate) fn work_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        slot: Option<Slot>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let carried = if job.sender == SenderLock::Taken {
            self.group_recheck(conn, job)?
        } else {
            Err(Hold::Busy)
        };
        let carried = match carried {
            Ok(Some(c)) => c,
            other => {
                if let Some(slot) = slot {
                    self.queue.return_slot(conn, slot)?;
                }
                return match other {
                    Ok(_) => Ok(()),
                    Err(hold) => {
                        let retry_in = match hold {
                            Hold::Busy => BUSY_RETRY,
                            Hold::Billing => HOLD_RETRY,
                        };
                        self.queue
                            .release(conn, job, OffsetDateTime::now_utc() + retry_in)?;
                        self.stats.released.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                };
            }
        };
        let msg = OutgoingMessage {
            recipient: &carried.recipient,
            subject: &carried.rendered.subject,
            body: &carried.rendered.body,
            reference: &carried.reference,
        };
        let result = self.senders.get(job.channel).send(&msg);
        let line = self.record_group(conn, job, &carried, &result)?;
        self.log_group(
            job,
            &carried.reference,
            Some(&carried.recipient),
            &line,
            started,
        );
        Ok(())
    }

    /// Re-checks every row of the group, records the rows dropped from it, and
    /// renders what is left. `Ok(None)`: nothing is sent (all dropped, or gave up),
    /// and all is recorded.
    fn group_recheck(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
    ) -> Result<Result<Option<Carried>, Hold>, StoreError> {
        let started = Instant::now();
        let now = OffsetDateTime::now_utc();
        let today = self.cfg.zone.date_at(now);
        let members: Vec<Delivery> = self
            .queue
            .recheck(conn, job, today, self.cfg.zone.day_bounds(now))?
            .into_iter()
            // Rows already final (a duplicate job) are neither sent nor touched.
            .filter(|d| d.ledger_status == "queued")
            .collect();
        let ids: Vec<i64> = members.iter().map(|d| d.notification_id).collect();
        if job.attempts > self.cfg.tries as i32 {
            let error = format!(
                "gave up: the worker holding attempt {} of {} stopped before recording it (crash or kill)",
                job.attempts - 1,
                self.cfg.tries
            );
            self.queue.finish_group(
                conn,
                job,
                &ids,
                &Final::Failed {
                    error: error.clone(),
                },
            )?;
            self.stats
                .failed
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            self.log_group(job, "-", None, &format!("failed ({error})"), started);
            return Ok(Ok(None));
        }
        let mut kept = Vec::new();
        for m in members {
            let mjob = member_job(job, &m);
            let d = &m;
            let reason = self
                .reason_not_to_send(d, &mjob, now)
                .or_else(|| d.hold().map(|h| h.to_string()));
            let mut reason = reason;
            if reason.is_none()
                && d.from_billing
                && let Some(billing) = &self.billing
            {
                match billing.check(conn, &d.invoice_number)? {
                    SourceVerdict::Send => {}
                    SourceVerdict::Skip(r) => reason = Some(r.to_owned()),
                    SourceVerdict::Hold => return Ok(Err(Hold::Billing)),
                }
            }
            match reason {
                Some(reason) => {
                    self.queue
                        .skip_member(conn, job, m.notification_id, &reason)?;
                    self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                    self.log_group(
                        job,
                        &d.invoice_number,
                        None,
                        &format!("dropped from the message: skipped ({reason})"),
                        started,
                    );
                }
                None => kept.push(m),
            }
        }
        if kept.is_empty() {
            self.queue.finish_group(
                conn,
                job,
                &[],
                &Final::Skipped {
                    reason: "nothing left to send".into(),
                },
            )?;
            self.log_group(
                job,
                "-",
                None,
                "nothing sent: no reminder of the group is left",
                started,
            );
            return Ok(Ok(None));
        }
        match self.render_group(conn, job, &kept)? {
            Ok(c) => Ok(Ok(Some(c))),
            Err(error) => {
                let ids: Vec<i64> = kept.iter().map(|m| m.notification_id).collect();
                let n = ids.len() as u64;
                self.queue.finish_group(
                    conn,
                    job,
                    &ids,
                    &Final::Failed {
                        error: error.clone(),
                    },
                )?;
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                self.log_group(job, "-", None, &format!("failed ({error})"), started);
                Ok(Ok(None))
            }
        }
    }

    /// The one message for `kept` (each reminder with its payment link); a group of
    /// one is the reminder's own message. `Err`: why it cannot be made.
    fn render_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        kept: &[Delivery],
    ) -> Result<Result<Carried, String>, StoreError> {
        let mut items = Vec::new();
        for d in kept {
            let stage = match d.stage() {
                Ok(stage) => stage,
                Err(e) => return Ok(Err(e.to_string())),
            };
            items.push(GroupItem {
                stage,
                facts: InvoiceFacts {
                    customer_name: d.customer_name.clone(),
                    invoice_number: d.invoice_number.clone(),
                    amount: d.amount,
                    due_date: d.due_date,
                },
                payment_url: self.payment_link(conn, d, &member_job(job, d))?,
            });
        }
        let rendered = match items.as_slice() {
            [one] => self.templates.render_with_link(
                one.stage,
                job.channel,
                &one.facts,
                one.payment_url.as_deref(),
            ),
            _ => self
                .templates
                .render_group(job.channel, &kept[0].customer_name, &items),
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("template error: {e}"))),
        };
        let reference = items
            .iter()
            .map(|it| format!("{}/{}", it.facts.invoice_number, it.stage))
            .collect::<Vec<_>>()
            .join("+");
        Ok(Ok(Carried {
            ids: kept.iter().map(|m| m.notification_id).collect(),
            recipient: kept[0].recipient.clone().unwrap_or_default(),
            rendered,
            reference,
        }))
    }

    /// Records what the send did on every row carried, retrying the write on fresh
    /// connections while the database is away (the message is out). Returns the
    /// outcome for the log.
    fn record_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &Carried,
        result: &Result<Delivered, SendError>,
    ) -> Result<String, StoreError> {
        match self.record_group_once(conn, job, carried, result) {
            Err(e) if e.is_connection_problem() => {}
            other => return other,
        }
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
                .and_then(|mut c| self.record_group_once(&mut c, job, carried, result));
            match attempt {
                Ok(_) => {
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

    fn record_group_once(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        carried: &Carried,
        result: &Result<Delivered, SendError>,
    ) -> Result<String, StoreError> {
        let n = carried.ids.len() as u64;
        let ids = carried.ids.as_slice();
        let (outcome, counter, line) = match result {
            Ok(delivered) => (
                Final::Sent {
                    recipient: carried.recipient.clone(),
                    provider_message_id: delivered.provider_message_id.clone(),
                },
                &self.stats.sent,
                format!("sent ({n} reminders in one message)"),
            ),
            Err(SendError::Permanent(e)) => (
                Final::Failed { error: e.clone() },
                &self.stats.failed,
                format!("failed ({e})"),
            ),
            Err(SendError::Transient(e)) if job.attempts < self.cfg.tries as i32 => {
                let backoff = self.backoff(job.attempts);
                let at = OffsetDateTime::now_utc() + backoff;
                self.queue.retry_group_later(conn, job, ids, at, e)?;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                return Ok(format!("retry in {}s ({e})", backoff.as_secs()));
            }
            Err(SendError::Transient(e)) => {
                let error = format!("{e} (gave up after {} attempts)", job.attempts);
                (
                    Final::Failed {
                        error: error.clone(),
                    },
                    &self.stats.failed,
                    format!("failed ({error})"),
                )
            }
            Err(wide @ SendError::ChannelWide { kind, reason, .. }) => {
                let until = OffsetDateTime::now_utc() + self.pause_for(*kind);
                let paused = dunning_store::queue::pause_channel(conn, job.channel, until, reason)?;
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
                return Ok(format!("paused ({reason})"));
            }
        };
        self.queue.finish_group(conn, job, ids, &outcome)?;
        counter.fetch_add(n, Ordering::Relaxed);
        Ok(line)
    }

    /// One log line per group outcome; the recipient only ever appears masked.
    fn log_group(
        &self,
        job: &ClaimedJob,
        reference: &str,
        recipient: Option<&str>,
        outcome: &str,
        started: Instant,
    ) {
        let masked = recipient.map(mask_recipient);
        let outcome = match (recipient, &masked) {
            (Some(raw), Some(m)) if !raw.is_empty() => outcome.replace(raw, m),
            _ => outcome.to_owned(),
        };
        info!(
            "job={} group={} reminder={} channel={} to={} attempt={} outcome={} duration={}ms",
            job.id,
            job.notification_id,
            reference,
            job.channel,
            masked.as_deref().unwrap_or("-"),
            job.attempts,
            outcome,
            started.elapsed().as_millis()
        );
    }
}

/// Why a group waits without counting its attempt.
enum Hold {
    /// Another worker is sending to one of its invoices on this channel.
    Busy,
    /// The billing source cannot say whether one of its invoices is paid.
    Billing,
}

/// `job` as it would be for one row of its group (links and logs name the row).
fn member_job(job: &ClaimedJob, d: &Delivery) -> ClaimedJob {
    ClaimedJob {
        notification_id: d.notification_id,
        ..job.clone()
    }
}
