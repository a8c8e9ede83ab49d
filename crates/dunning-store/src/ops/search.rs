//! The dashboard's search: invoices by number, customer name, phone or email, and
//! the timeline of one invoice or customer read from the ledger, the queue and the
//! invoices.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Integer, Nullable, Text, Timestamptz};
use time::{Date, OffsetDateTime};

use crate::Result;
use crate::rows::CustomerContact;

/// An invoice with its customer.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct InvoiceRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = SqlDate)]
    pub due_date: Date,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub paid_at: Option<OffsetDateTime>,
    #[diesel(embed)]
    pub customer: CustomerContact,
}

/// The columns of an [`InvoiceRow`], over `invoices i JOIN customers c`.
pub(crate) const INVOICE_COLUMNS: &str =
    "i.id, i.number, i.amount, i.due_date, i.status, i.paid_at,
    c.id AS customer_id, c.name AS customer_name, c.email, c.phone";

/// Invoices whose number is `query` (or starts with it), or whose customer's name or
/// email contains it, or whose customer's phone ends with its digits (`0857…`,
/// `+62 857…` and `62857…` find the same customer). Newest due date first.
pub fn search(conn: &mut PgConnection, query: &str, limit: i64) -> Result<Vec<InvoiceRow>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    // The national part of a phone number: without the leading 0 or 62.
    let national = digits
        .strip_prefix("62")
        .or_else(|| digits.strip_prefix('0'))
        .unwrap_or(&digits);
    let phone = (national.len() >= 6 && digits.len() * 2 >= query.len()).then_some(national);
    // LIKE patterns with the query's own `%`, `_` and `\` taken literally; each
    // branch is answered by its trigram index (migration dashboard_speed), which
    // one query joining them with OR could not use.
    let escaped = query
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Ok(diesel::sql_query(format!(
        "WITH hits AS (
             SELECT id FROM invoices WHERE number LIKE $1 || '%'
             UNION
             SELECT i.id FROM invoices i WHERE i.customer_id IN (
                 SELECT id FROM customers WHERE lower(name) LIKE '%' || lower($1) || '%'
                 UNION
                 SELECT id FROM customers WHERE lower(email) LIKE '%' || lower($1) || '%'
                 UNION
                 SELECT id FROM customers
                 WHERE $2::text IS NOT NULL AND regexp_replace(phone, '[^0-9]', '', 'g') LIKE '%' || $2))
         SELECT {INVOICE_COLUMNS} FROM invoices i JOIN customers c ON c.id = i.customer_id
         WHERE i.id IN (SELECT id FROM hits)
         ORDER BY i.due_date DESC, i.id DESC LIMIT $3"
    ))
    .bind::<Text, _>(escaped)
    .bind::<Nullable<Text>, _>(phone)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// One invoice by id.
pub fn invoice_by_id(conn: &mut PgConnection, id: i64) -> Result<Option<InvoiceRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN customers c ON c.id = i.customer_id
         WHERE i.id = $1"
    ))
    .bind::<BigInt, _>(id)
    .get_result(conn)
    .optional()?)
}

/// A customer's invoices, newest due date first.
pub fn customer_invoices(conn: &mut PgConnection, customer_id: i64) -> Result<Vec<InvoiceRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN customers c ON c.id = i.customer_id
         WHERE i.customer_id = $1 ORDER BY i.due_date DESC, i.id DESC"
    ))
    .bind::<BigInt, _>(customer_id)
    .load(conn)?)
}

/// One thing that happened to an invoice.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Event {
    #[diesel(sql_type = Timestamptz)]
    pub at: OffsetDateTime,
    #[diesel(sql_type = Text)]
    pub invoice_number: String,
    /// `invoice`, `queued`, `waiting`, `sent`, `failed`, `skipped` or `paid`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub stage: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub channel: Option<String>,
    /// Unmasked: callers mask it before showing it.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    /// The error, skip reason, provider message id or job attempts.
    #[diesel(sql_type = Nullable<Text>)]
    pub detail: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub attempts: Option<i32>,
}

/// Whose timeline.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Invoice(i64),
    Customer(i64),
}

/// Everything the ledger, the queue and the invoice say happened, oldest first:
/// the invoice's creation, each reminder queued, sent, failed or skipped, a job
/// still waiting (with its attempts and last error), and the payment.
pub fn timeline(conn: &mut PgConnection, scope: Scope) -> Result<Vec<Event>> {
    let (filter, id) = match scope {
        Scope::Invoice(id) => ("i.id = $1", id),
        Scope::Customer(id) => ("i.customer_id = $1", id),
    };
    Ok(diesel::sql_query(format!(
        "WITH i AS (SELECT id, number, created_at, paid_at, status FROM invoices i WHERE {filter}),
              n AS (SELECT n.*, i.number FROM notifications n JOIN i ON i.id = n.invoice_id)
         SELECT * FROM (
             SELECT created_at AS at, number AS invoice_number, 'invoice' AS kind, NULL::text AS stage,
                    NULL::text AS channel, NULL::text AS recipient, NULL::text AS detail,
                    NULL::integer AS attempts FROM i
             UNION ALL
             SELECT paid_at, number, 'paid', NULL, NULL, NULL, NULL, NULL FROM i
             WHERE status = 'paid' AND paid_at IS NOT NULL
             UNION ALL
             SELECT created_at, number, 'queued', stage, channel, recipient, NULL, NULL FROM n
             UNION ALL
             SELECT sent_at, number, 'sent', stage, channel, recipient, provider_message_id, attempts
             FROM n WHERE status = 'sent' AND sent_at IS NOT NULL
             UNION ALL
             SELECT updated_at, number, status, stage, channel, recipient, error, attempts
             FROM n WHERE status IN ('failed', 'skipped')
             UNION ALL
             SELECT j.available_at, n.number, 'waiting', n.stage, n.channel, n.recipient,
                    j.last_error, j.attempts
             FROM n JOIN jobs j ON j.notification_id = n.id
         ) e
         ORDER BY at, CASE kind WHEN 'invoice' THEN 0 WHEN 'queued' THEN 1 WHEN 'waiting' THEN 2
                                WHEN 'paid' THEN 4 ELSE 3 END, stage, channel"
    ))
    .bind::<BigInt, _>(id)
    .load(conn)?)
}
