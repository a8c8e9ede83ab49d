//! Receipts in the worker: queueing them for invoices that were just paid, and the
//! re-check of one right before it goes out.

use dunning_core::message::InvoiceFacts;
use dunning_store::StoreError;
use dunning_store::holds::HoldReason;
use dunning_store::queue::{ClaimedJob, Delivery};

use crate::Worker;
use crate::every::Sweep;
use crate::recheck::{Ready, Verdict};

/// Turns paid events into queued receipts ([`dunning_store::receipts::queue_pending`]).
/// With `DUNNING_RECEIPTS=off` (`enabled` false) the events are dropped and nothing
/// is queued.
pub(crate) fn receipt_sweep(enabled: bool) -> Sweep<bool> {
    Sweep::new(
        enabled,
        "receipt(s) queued for invoices just paid",
        |conn, enabled, queue, today| {
            dunning_store::receipts::queue_pending(conn, queue, today, *enabled)
        },
    )
}

impl Worker {
    /// The re-check of a receipt: it goes out while its invoice is still paid, to the
    /// customer's current contact, unless they opted out of the channel. Unlike a
    /// reminder it is not stopped by the invoice being paid, by a reminder sent today,
    /// or by a pause (a pause holds reminders), and the billing source is not asked.
    pub(crate) fn recheck_receipt(
        &self,
        d: &Delivery,
        job: &ClaimedJob,
    ) -> Result<Verdict, StoreError> {
        if d.ledger_status != "queued" {
            return Ok(Verdict::Skip(format!("already {}", d.ledger_status)));
        }
        if d.invoice_status != "paid" {
            return Ok(Verdict::Skip(format!(
                "invoice is {} again: no receipt",
                d.invoice_status
            )));
        }
        let Some(recipient) = d.recipient.clone() else {
            return Ok(Verdict::Skip(format!(
                "customer has no {} contact",
                job.channel
            )));
        };
        if let Some(hold @ HoldReason::OptedOut { .. }) = d.hold() {
            return Ok(Verdict::Skip(hold.to_string()));
        }
        let facts = InvoiceFacts {
            customer_name: d.customer_name.clone(),
            invoice_number: d.invoice_number.clone(),
            amount: d.amount,
            due_date: d.due_date,
        };
        Ok(match self.templates.render_receipt(job.channel, &facts) {
            Ok(rendered) => Verdict::Send(Ready {
                recipient,
                rendered,
                reference: format!(
                    "{}/{}",
                    d.invoice_number,
                    dunning_store::receipts::RECEIPT_STAGE
                ),
            }),
            Err(e) => Verdict::Fail(format!("template error: {e}")),
        })
    }
}
