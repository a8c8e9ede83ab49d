//! Receipts: "Terima kasih, pembayaran … telah kami terima", once per invoice and
//! channel, when an invoice turns from unpaid to paid.
//!
//! A trigger on `invoices` (migration 000015) records every such change in
//! `paid_events`, whoever made it: a gateway callback, `invoice paid`, a sync or
//! import, or billing writing `invoices` itself. The worker turns those events into
//! ledger rows of stage [`RECEIPT_STAGE`] and jobs ([`queue_pending`]), so receipts
//! are paced, counted against the quota, retried and listed like reminders. The
//! unique index `notifications_one_receipt` makes a second receipt for the same
//! invoice and channel impossible.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Date as SqlDate, Text};
use time::Date;

use crate::Result;

/// The ledger's stage of a receipt.
pub const RECEIPT_STAGE: &str = "paid";

/// Takes every pending paid event and, when `enabled` (`DUNNING_RECEIPTS`), queues
/// one receipt on `queue` for each channel the customer can be reached on and has
/// not opted out of, dated `today`. An invoice that is no longer paid by now gets
/// none. Returns how many receipts were queued. Safe to run from many workers at
/// once: each event is taken by one.
pub fn queue_pending(
    conn: &mut PgConnection,
    queue: &str,
    today: Date,
    enabled: bool,
) -> Result<usize> {
    Ok(diesel::sql_query(
        "WITH ev AS (
             DELETE FROM paid_events RETURNING invoice_id
         ), cand AS (
             SELECT i.id AS invoice_id, i.customer_id, i.due_date, ch.channel, ch.recipient
             FROM ev
             JOIN invoices i ON i.id = ev.invoice_id AND i.status = 'paid'
             JOIN customers cu ON cu.id = i.customer_id
             CROSS JOIN LATERAL (VALUES ('email', NULLIF(btrim(cu.email), '')),
                                        ('whatsapp', NULLIF(btrim(cu.phone), ''))) AS ch(channel, recipient)
             WHERE $3 AND ch.recipient IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM opt_outs o
                               WHERE o.customer_id = i.customer_id AND o.channel = ch.channel)
         ), ins AS (
             INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date,
                                        recipient, status)
             SELECT invoice_id, customer_id, $4, channel, $2, due_date, recipient, 'queued' FROM cand
             ON CONFLICT DO NOTHING
             RETURNING id, channel
         )
         INSERT INTO jobs (queue, notification_id, channel) SELECT $1, id, channel FROM ins",
    )
    .bind::<Text, _>(queue)
    .bind::<SqlDate, _>(today)
    .bind::<Bool, _>(enabled)
    .bind::<Text, _>(RECEIPT_STAGE)
    .execute(conn)?)
}
