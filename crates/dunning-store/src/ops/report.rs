//! The one read of the daily report (`dunning-schedule report`) that no other
//! command had: gateway payments on invoices mirrored from billing. Every other
//! number of the report comes from the reads of `stats`, `failed`, `replies`,
//! `doctor` and the dashboard.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz};
use time::OffsetDateTime;

use crate::Result;

/// A gateway payment that marked an invoice from the billing source paid.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct GatewayPaid {
    #[diesel(sql_type = Text)]
    pub invoice_number: String,
    #[diesel(sql_type = Text)]
    pub gateway: String,
    #[diesel(sql_type = Text)]
    pub reference: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Timestamptz)]
    pub paid_at: OffsetDateTime,
}

/// Gateway payments received since `since` (not flagged: they marked the invoice
/// paid) for invoices mirrored from the billing source, oldest first. Billing learns
/// of them only when someone enters them there: the caller asks billing which ones
/// it still has unpaid.
pub fn gateway_paid_billing_invoices(
    conn: &mut PgConnection,
    since: OffsetDateTime,
) -> Result<Vec<GatewayPaid>> {
    Ok(diesel::sql_query(
        "SELECT i.number AS invoice_number, p.gateway, p.reference, p.amount, p.paid_at
         FROM payments p JOIN invoices i ON i.id = p.invoice_id
         WHERE p.flag IS NULL AND i.from_billing AND i.status = 'paid' AND p.received_at >= $1
         ORDER BY p.received_at, p.id",
    )
    .bind::<Timestamptz, _>(since)
    .load(conn)?)
}
