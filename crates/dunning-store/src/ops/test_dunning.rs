//! `dunning-schedule test-dunning` and `test-whatsapp`: a test customer and invoice,
//! queued like the scheduler queues a real one, and the ledger row of a test WhatsApp
//! message (so it counts against the monthly quota like a reminder).

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date as SqlDate, Nullable, Text};
use time::Date;

use crate::rows::Id;
use crate::{Result, StoreError};

/// What to create.
#[derive(Debug, Clone)]
pub struct TestRequest<'a> {
    /// Name for a customer that has to be created.
    pub customer_name: &'a str,
    pub email: &'a str,
    /// As typed (stored so); `phone_forms` are the digit strings it may be stored as.
    pub phone: &'a str,
    pub phone_forms: &'a [String],
    pub stage: &'a str,
    /// Today's local date: the ledger rows' run date.
    pub run_date: Date,
    pub due_date: Date,
    pub amount: i64,
    /// `INV-YYYYMMDD-`; six digits are appended.
    pub number_prefix: &'a str,
    pub queue: &'a str,
}

/// What was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDunning {
    pub customer_id: i64,
    pub customer_name: String,
    /// False when an existing customer (same email and phone) was used.
    pub customer_created: bool,
    pub invoice_id: i64,
    pub invoice_number: String,
    /// Notification ids, email first.
    pub notification_ids: Vec<i64>,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    name: String,
}

/// A number in `0..1_000_000` that differs between calls and processes.
fn six_digits(attempt: u32) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mixed = nanos
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(u128::from(std::process::id()) << 20)
        .wrapping_add(u128::from(attempt) * 7_919);
    u32::try_from((mixed >> 17) % 1_000_000).unwrap_or(0)
}

/// In one transaction: finds the customer with this email and phone (or creates it),
/// creates an unpaid invoice with a fresh number, and queues one delivery per channel
/// with the scheduler's rows (a `queued` ledger row for today and a job on `queue`).
///
/// The invoice is marked `is_test`: the worker delivers these two reminders like any
/// other, but the daily run never selects the invoice, so no later stage (T-1, T+3…)
/// is ever sent for it.
///
/// Both contacts must match: the worker sends to the customer's contacts on file, so
/// reusing a customer found by email alone could send the test WhatsApp to a real
/// customer's phone.
pub fn create(conn: &mut PgConnection, req: &TestRequest<'_>) -> Result<TestDunning> {
    conn.transaction(|conn| {
        let found: Option<Found> = diesel::sql_query(
            "SELECT id, name FROM customers
             WHERE lower(btrim(email)) = lower($1)
               AND regexp_replace(COALESCE(phone, ''), '[^0-9]', '', 'g') = ANY($2)
             ORDER BY id
             LIMIT 1",
        )
        .bind::<Text, _>(req.email)
        .bind::<Array<Text>, _>(req.phone_forms)
        .get_result(conn)
        .optional()?;
        let (customer_id, customer_name, customer_created) = match found {
            Some(f) => (f.id, f.name, false),
            None => {
                let id: Id = diesel::sql_query(
                    "INSERT INTO customers (name, email, phone) VALUES ($1, $2, $3) RETURNING id",
                )
                .bind::<Text, _>(req.customer_name)
                .bind::<Text, _>(req.email)
                .bind::<Text, _>(req.phone)
                .get_result(conn)?;
                (id.id, req.customer_name.to_owned(), true)
            }
        };
        let mut invoice = None;
        for attempt in 0..50 {
            let number = format!("{}{:06}", req.number_prefix, six_digits(attempt));
            let id: Option<Id> = diesel::sql_query(
                "INSERT INTO invoices (number, customer_id, amount, due_date, is_test)
                 VALUES ($1, $2, $3, $4, true) ON CONFLICT (number) DO NOTHING RETURNING id",
            )
            .bind::<Text, _>(&number)
            .bind::<BigInt, _>(customer_id)
            .bind::<BigInt, _>(req.amount)
            .bind::<SqlDate, _>(req.due_date)
            .get_result(conn)
            .optional()?;
            if let Some(id) = id {
                invoice = Some((id.id, number));
                break;
            }
        }
        let Some((invoice_id, invoice_number)) = invoice else {
            return Err(StoreError::Query(diesel::result::Error::NotFound));
        };
        let ids: Vec<Id> = diesel::sql_query(
            "WITH ins AS (
                 INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date, recipient, status)
                 SELECT $1, $2, $3, ch.channel, $4, i.due_date, ch.recipient, 'queued'
                 FROM (VALUES ('email', $5), ('whatsapp', $6)) AS ch(channel, recipient)
                 JOIN invoices i ON i.id = $1
                 RETURNING id, channel
             ), queued AS (
                 INSERT INTO jobs (queue, notification_id, channel)
                 SELECT $7, id, channel FROM ins
                 RETURNING notification_id
             )
             SELECT ins.id FROM ins JOIN queued q ON q.notification_id = ins.id ORDER BY ins.channel",
        )
        .bind::<BigInt, _>(invoice_id)
        .bind::<BigInt, _>(customer_id)
        .bind::<Text, _>(req.stage)
        .bind::<SqlDate, _>(req.run_date)
        .bind::<Nullable<Text>, _>(Some(req.email))
        .bind::<Nullable<Text>, _>(Some(req.phone))
        .bind::<Text, _>(req.queue)
        .load(conn)?;
        Ok(TestDunning {
            customer_id,
            customer_name,
            customer_created,
            invoice_id,
            invoice_number,
            notification_ids: ids.into_iter().map(|i| i.id).collect(),
        })
    })
}

/// A WhatsApp test message that was sent.
#[derive(Debug, Clone)]
pub struct TestWhatsApp<'a> {
    /// As typed (stored so for a new customer); `phone_forms` are the digit strings
    /// it may be stored as.
    pub phone: &'a str,
    pub phone_forms: &'a [String],
    /// Name for a customer that has to be created.
    pub customer_name: &'a str,
    /// Today's local date.
    pub run_date: Date,
    /// `TEST-WA-YYYYMMDD-`; six digits are appended.
    pub number_prefix: &'a str,
    pub provider_message_id: Option<&'a str>,
}

/// Records a sent `test-whatsapp` message in the ledger as a `sent` WhatsApp row, so
/// that the monthly quota (`FONNTE_MONTHLY_QUOTA`, counted from the ledger by the
/// worker, `stats`, `doctor` and `--dry-run`) counts it like a reminder.
///
/// Every ledger row belongs to an invoice, and one invoice gets one WhatsApp row per
/// day, so each test message gets its own invoice: amount 0, `void` and `is_test`, so
/// nothing ever reminds it. It belongs to the customer with this phone number, or to
/// a new customer without email. Returns the ledger row's id.
pub fn record_whatsapp(conn: &mut PgConnection, t: &TestWhatsApp<'_>) -> Result<i64> {
    conn.transaction(|conn| {
        let found: Option<Found> = diesel::sql_query(
            "SELECT id, name FROM customers
             WHERE regexp_replace(COALESCE(phone, ''), '[^0-9]', '', 'g') = ANY($1)
             ORDER BY id
             LIMIT 1",
        )
        .bind::<Array<Text>, _>(t.phone_forms)
        .get_result(conn)
        .optional()?;
        let customer_id = match found {
            Some(f) => f.id,
            None => {
                let id: Id = diesel::sql_query(
                    "INSERT INTO customers (name, phone) VALUES ($1, $2) RETURNING id",
                )
                .bind::<Text, _>(t.customer_name)
                .bind::<Text, _>(t.phone)
                .get_result(conn)?;
                id.id
            }
        };
        for attempt in 0..50 {
            let number = format!("{}{:06}", t.number_prefix, six_digits(attempt));
            let id: Option<Id> = diesel::sql_query(
                "WITH inv AS (
                     INSERT INTO invoices (number, customer_id, amount, due_date, status, is_test)
                     VALUES ($1, $2, 0, $3, 'void', true)
                     ON CONFLICT (number) DO NOTHING RETURNING id, due_date
                 )
                 INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date,
                                            recipient, status, attempts, provider_message_id, sent_at)
                 SELECT inv.id, $2, 'test', 'whatsapp', $3, inv.due_date, $4, 'sent', 1, $5, now()
                 FROM inv
                 RETURNING id",
            )
            .bind::<Text, _>(&number)
            .bind::<BigInt, _>(customer_id)
            .bind::<SqlDate, _>(t.run_date)
            .bind::<Text, _>(t.phone)
            .bind::<Nullable<Text>, _>(t.provider_message_id)
            .get_result(conn)
            .optional()?;
            if let Some(id) = id {
                return Ok(id.id);
            }
        }
        Err(StoreError::Query(diesel::result::Error::NotFound))
    })
}
