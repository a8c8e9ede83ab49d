//! The pre-send re-check: right before a send, is this reminder still right?

use std::time::Duration;

use diesel::pg::PgConnection;
use dunning_core::message::{InvoiceFacts, Rendered};
use dunning_store::StoreError;
use dunning_store::queue::{ClaimedJob, Delivery, SenderLock};
use time::OffsetDateTime;

use crate::Worker;
use crate::billing::{HOLD_RETRY, SourceVerdict};

/// How long a job waits when another worker is sending to its invoice on its channel.
const BUSY_RETRY: Duration = Duration::from_secs(2);

/// What the re-check decided.
#[derive(Debug)]
pub enum Verdict {
    /// Send this message now.
    Send(Ready),
    /// Do not send it, ever: the ledger row becomes `skipped` with this reason.
    Skip(String),
    /// Do not send it now; take the job again after `retry_in`, attempt not
    /// counted (e.g. another worker is sending to this invoice, or a billing source
    /// cannot say right now whether the invoice is paid).
    /// `quiet`: logged per job at debug only (the cause is logged once elsewhere).
    Hold {
        reason: String,
        retry_in: Duration,
        quiet: bool,
    },
    /// It can never be sent as it is (bad data): the ledger row becomes `failed`.
    Fail(String),
}

impl Verdict {
    /// The decision without recipient or text, for RUST_LOG=debug.
    pub(crate) fn summary(&self) -> String {
        match self {
            Verdict::Send(_) => "send".to_owned(),
            Verdict::Skip(reason) => format!("skip ({reason})"),
            Verdict::Fail(error) => format!("fail ({error})"),
            Verdict::Hold { reason, .. } => format!("hold ({reason})"),
        }
    }
}

/// A reminder that passed the re-check, rendered.
#[derive(Debug)]
pub struct Ready {
    /// The customer's current contact on the job's channel.
    pub recipient: String,
    pub rendered: Rendered,
    /// `INV-…/T-3`, for logs and message ids.
    pub reference: String,
}

impl Worker {
    /// The pre-send re-check, one step: reads the ledger row, the invoice, the
    /// customer's current contact and any pause or opt-out right before the send,
    /// without locking any invoice (billing never waits on Dunning), and decides.
    /// The only lock is the sender lock the claim took ([`SenderLock`]), which lets
    /// one worker at a time send to an invoice on a channel; the caller ends it once
    /// the outcome is recorded.
    ///
    /// A payment committed after this read and before the provider took the message
    /// is not seen: that message goes out (the documented race; the payment's
    /// receipt follows it).
    pub(crate) fn recheck(
        &self,
        conn: &mut PgConnection,
        job: &ClaimedJob,
    ) -> Result<Verdict, StoreError> {
        match job.sender {
            // An answer to a customer's reply has no invoice to re-check.
            SenderLock::NoInvoice => {
                return Ok(match self.queue.answer(conn, job)? {
                    Some(answer) => crate::answer::verdict(answer),
                    None => Verdict::Skip("the ledger row is gone".into()),
                });
            }
            SenderLock::Busy => {
                return Ok(Verdict::Hold {
                    reason: "another worker is sending to this invoice on this channel".into(),
                    retry_in: BUSY_RETRY,
                    quiet: false,
                });
            }
            SenderLock::Taken => {}
        }
        let now = OffsetDateTime::now_utc();
        let today = self.cfg.zone.date_at(now);
        let Some(d) = self
            .queue
            .recheck(conn, job, today, self.cfg.zone.day_bounds(now))?
            .into_iter()
            .find(|d| d.notification_id == job.notification_id)
        else {
            return Ok(Verdict::Skip("the ledger row is gone".into()));
        };
        if d.is_receipt() {
            return self.recheck_receipt(&d, job);
        }
        if let Some(reason) = self.reason_not_to_send(&d, job, now) {
            return Ok(Verdict::Skip(reason));
        }
        if let Some(hold) = d.hold() {
            return Ok(Verdict::Skip(hold.to_string()));
        }
        // Last, as it is the only question asked over the network: is the invoice
        // still unpaid in billing right now?
        if d.from_billing
            && let Some(billing) = &self.billing
        {
            match billing.check(conn, &d.invoice_number)? {
                SourceVerdict::Send => {}
                SourceVerdict::Skip(reason) => return Ok(Verdict::Skip(reason.into())),
                SourceVerdict::Hold => {
                    return Ok(Verdict::Hold {
                        reason: "billing source unreachable and the last successful sync is older than BILLING_MAX_STALENESS".into(),
                        retry_in: HOLD_RETRY,
                        quiet: true,
                    });
                }
            }
        }
        self.render(conn, &d, job)
    }

    /// Why `d` must not go out, if it must not: the invoice is settled, the row is
    /// final already, the channel had a reminder today, the due date passed a
    /// "will be due" reminder, the customer has no contact.
    pub(crate) fn reason_not_to_send(
        &self,
        d: &Delivery,
        job: &ClaimedJob,
        now: OffsetDateTime,
    ) -> Option<String> {
        if d.invoice_status != "unpaid" {
            return Some(format!("invoice is {}", d.invoice_status));
        }
        if d.ledger_status != "queued" {
            return Some(format!("already {}", d.ledger_status));
        }
        if d.sent_today {
            return Some("already reminded on this channel today".into());
        }
        // A "will be due on …" reminder that waited past the due date (quota, a long
        // pause, a late retry) would now be wrong: the overdue stage follows.
        let stage = d.stage().ok()?;
        if stage.offset_days() <= 0 && d.due_date < self.cfg.zone.date_at(now) {
            return Some(format!(
                "stale: the due date {} passed before this {stage} reminder could be sent",
                d.due_date
            ));
        }
        if d.recipient.is_none() {
            return Some(format!("customer has no {} contact", job.channel));
        }
        None
    }

    /// The message for `d` (with its payment link, if it has one), or why it cannot
    /// be made.
    fn render(
        &self,
        conn: &mut PgConnection,
        d: &Delivery,
        job: &ClaimedJob,
    ) -> Result<Verdict, StoreError> {
        let stage = match d.stage() {
            Ok(stage) => stage,
            Err(e) => return Ok(Verdict::Fail(e.to_string())),
        };
        let link = self.payment_link(conn, d, job)?;
        let facts = InvoiceFacts {
            customer_name: d.customer_name.clone(),
            invoice_number: d.invoice_number.clone(),
            amount: d.amount,
            due_date: d.due_date,
        };
        Ok(
            match self
                .templates
                .render_with_link(stage, job.channel, &facts, link.as_deref())
            {
                Ok(rendered) => Verdict::Send(Ready {
                    recipient: d.recipient.clone().unwrap_or_default(),
                    rendered,
                    reference: format!("{}/{stage}", d.invoice_number),
                }),
                Err(e) => Verdict::Fail(format!("template error: {e}")),
            },
        )
    }

    /// The payment link for `d`'s reminder (`PAYMENT_LINK`), if it has one. A link
    /// that cannot be had costs the reminder its link, never the reminder: the error
    /// is kept on the ledger row (`link_error`, counted by `stats` and `failed`) and
    /// logged; a later attempt that gets its link clears it.
    pub(crate) fn payment_link(
        &self,
        conn: &mut PgConnection,
        d: &Delivery,
        job: &ClaimedJob,
    ) -> Result<Option<String>, StoreError> {
        let Some(links) = &self.links else {
            return Ok(None);
        };
        let (url, error) = match links.link_for(conn, d.invoice_id) {
            Ok(url) => (url, None),
            Err(e) => (None, Some(e.to_string())),
        };
        if error != d.link_error {
            dunning_store::payments::note_link_error(conn, job.notification_id, error.as_deref())?;
        }
        if let Some(e) = error {
            log::warn!(
                "job={} invoice {}: sending without a payment link: {e}",
                job.id,
                d.invoice_number
            );
        }
        Ok(url)
    }
}
