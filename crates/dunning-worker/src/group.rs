//! One message for several reminders of one customer (`DUNNING_GROUP=customer`):
//! the job names the group's lead row ([`dunning_store::queue::Member`]). Right
//! before the send every row is re-checked like a reminder of its own; rows that
//! must not go out are skipped, each for good; the rest go out as one message and
//! are recorded together with the job's deletion in one statement (the same path as
//! a single reminder, [`crate::job`]), so a crash or a retry never sends a part of
//! the message twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use diesel::pg::PgConnection;
use dunning_core::message::{GroupItem, InvoiceFacts};
use dunning_store::StoreError;
use dunning_store::queue::{ClaimedJob, Delivery, SenderLock};
use time::OffsetDateTime;

use crate::Worker;
use crate::billing::{HOLD_RETRY, SourceVerdict};
use crate::job::Trace;
use crate::recheck::{Ready, Verdict};

/// How long a group waits when another worker is sending to one of its invoices.
const BUSY_RETRY: Duration = Duration::from_secs(2);

impl Worker {
    /// The pre-send re-check of a grouped `job`: every row is re-checked, the rows
    /// dropped from the message are recorded (skipped) at once, and what is left is
    /// rendered as one message. Returns the verdict and the rows it is recorded on
    /// (none when nothing is left: the dropped rows are recorded already).
    pub(crate) fn recheck_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        trace: &Trace,
    ) -> Result<(Verdict, Vec<i64>), StoreError> {
        if job.sender != SenderLock::Taken {
            let hold = Verdict::Hold {
                reason: "another worker is sending to an invoice of this group on this channel"
                    .into(),
                retry_in: BUSY_RETRY,
                quiet: false,
            };
            return Ok((hold, Vec::new()));
        }
        let now = OffsetDateTime::now_utc();
        let today = self.cfg.zone.date_at(now);
        let members: Vec<Delivery> = self
            .queue
            .recheck(conn, job, today, self.cfg.zone.day_bounds(now))?
            .into_iter()
            // Rows already final (a duplicate job) are neither sent nor touched.
            .filter(|d| d.ledger_status == "queued")
            .collect();
        if job.attempts > self.cfg.tries as i32 {
            let ids = members.iter().map(|d| d.notification_id).collect();
            return Ok((self.gave_up(job), ids));
        }
        let mut kept = Vec::new();
        for m in members {
            match self.check_member(conn, job, &m, now)? {
                MemberCheck::Send => kept.push(m),
                MemberCheck::Drop(reason) => self.drop_member(conn, job, &m, &reason, trace)?,
                MemberCheck::HoldAll(hold) => return Ok((hold, Vec::new())),
            }
        }
        if kept.is_empty() {
            let none_left =
                Verdict::Skip("nothing left to send: no reminder of the group is left".into());
            return Ok((none_left, Vec::new()));
        }
        let ids = kept.iter().map(|m| m.notification_id).collect();
        Ok((self.render_group(conn, job, &kept)?, ids))
    }

    /// The re-check of one row of a group, as of a reminder of its own (and the
    /// billing source's answer for an invoice from billing).
    fn check_member(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        m: &Delivery,
        now: OffsetDateTime,
    ) -> Result<MemberCheck, StoreError> {
        let reason = self
            .reason_not_to_send(m, &member_job(job, m), now)
            .or_else(|| m.hold().map(|h| h.to_string()));
        if let Some(reason) = reason {
            return Ok(MemberCheck::Drop(reason));
        }
        let Some(billing) = self.billing.as_ref().filter(|_| m.from_billing) else {
            return Ok(MemberCheck::Send);
        };
        Ok(match billing.check(conn, &m.invoice_number)? {
            SourceVerdict::Send => MemberCheck::Send,
            SourceVerdict::Skip(r) => MemberCheck::Drop(r.to_owned()),
            SourceVerdict::Hold => MemberCheck::HoldAll(Verdict::Hold {
                reason: "billing source unreachable and the last successful sync is older than BILLING_MAX_STALENESS".into(),
                retry_in: HOLD_RETRY,
                quiet: true,
            }),
        })
    }

    /// Records row `m` skipped for `reason` at once, dropped from the group's message.
    fn drop_member(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        m: &Delivery,
        reason: &str,
        trace: &Trace,
    ) -> Result<(), StoreError> {
        self.queue
            .skip_member(conn, job, m.notification_id, reason)?;
        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        let member = Trace {
            started: trace.started,
            recipient: None,
            reference: Some(m.invoice_number.clone()),
        };
        member.log(
            job,
            &format!("dropped from the message: skipped ({reason})"),
        );
        Ok(())
    }

    /// The one message for `kept` (each reminder with its payment link); a group of
    /// one is the reminder's own message.
    fn render_group(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
        kept: &[Delivery],
    ) -> Result<Verdict, StoreError> {
        let mut items = Vec::new();
        for d in kept {
            let stage = match d.stage() {
                Ok(stage) => stage,
                Err(e) => return Ok(Verdict::Fail(e.to_string())),
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
            Err(e) => return Ok(Verdict::Fail(format!("template error: {e}"))),
        };
        let reference = items
            .iter()
            .map(|it| format!("{}/{}", it.facts.invoice_number, it.stage))
            .collect::<Vec<_>>()
            .join("+");
        Ok(Verdict::Send(Ready {
            recipient: kept[0].recipient.clone().unwrap_or_default(),
            rendered,
            reference,
        }))
    }
}

/// What the re-check of one row of a group decided.
enum MemberCheck {
    Send,
    /// Skipped for good, for this reason.
    Drop(String),
    /// The whole group waits.
    HoldAll(Verdict),
}

/// `job` as it would be for one row of its group (links and logs name the row).
fn member_job(job: &ClaimedJob, d: &Delivery) -> ClaimedJob {
    ClaimedJob {
        notification_id: d.notification_id,
        ..job.clone()
    }
}
