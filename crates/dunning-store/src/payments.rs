//! Payments reported by the gateways' callbacks, and the hosted payment pages
//! (payment links) created for invoices.
//!
//! The gateway order id (Xendit `external_id`, Midtrans `order_id`, Tripay
//! `merchant_ref`) is the invoice number; a page created again after the previous one
//! expired gets `NUMBER~2`, `NUMBER~3`, … because Midtrans refuses an order id twice.
//! [`record_payment`] maps an order id back through `payment_links`, then the number,
//! then the number before the last `~`.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use time::OffsetDateTime;

use crate::ops::search::{INVOICE_COLUMNS, InvoiceRow};
use crate::{Result, StoreError};

/// The invoice a payment is for, as the callback's judgement needs it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PaymentInvoice {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub number: String,
    /// Whole rupiah.
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    /// `unpaid`, `paid` or `void`.
    #[diesel(sql_type = Text)]
    pub status: String,
}

/// A verified payment, as the callback reported it.
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    /// `xendit`, `midtrans` or `tripay`.
    pub gateway: &'a str,
    /// The gateway's id of the payment; the idempotency key with `gateway`.
    pub reference: &'a str,
    /// The order id we gave the gateway.
    pub order_id: &'a str,
    /// Whole rupiah paid.
    pub amount: i64,
    /// ISO 4217 code, e.g. `IDR`.
    pub currency: &'a str,
    pub paid_at: OffsetDateTime,
    /// The callback body.
    pub raw: &'a serde_json::Value,
}

/// What [`record_payment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new payment row. `marked_paid` is true when this payment turned the invoice
    /// from `unpaid` to `paid` (then `flag` is `None`).
    New {
        payment_id: i64,
        invoice: Option<PaymentInvoice>,
        flag: Option<String>,
        marked_paid: bool,
    },
    /// The same gateway and reference were recorded before: nothing changed.
    Replay {
        payment_id: i64,
        flag: Option<String>,
    },
}

#[derive(QueryableByName)]
struct IdFlag {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    flag: Option<String>,
}

/// The invoice an order id names (see the module doc), locked `FOR UPDATE` until the
/// end of the caller's transaction so that two payments for one invoice are judged
/// one after the other.
fn invoice_for_order(conn: &mut PgConnection, order_id: &str) -> Result<Option<PaymentInvoice>> {
    let by_link: Option<PaymentInvoice> = diesel::sql_query(
        "SELECT i.id, i.number, i.amount, i.status FROM invoices i
         JOIN payment_links l ON l.invoice_id = i.id WHERE l.order_id = $1 FOR UPDATE OF i",
    )
    .bind::<Text, _>(order_id)
    .get_result(conn)
    .optional()?;
    if by_link.is_some() {
        return Ok(by_link);
    }
    let mut numbers = vec![order_id];
    if let Some((number, generation)) = order_id.rsplit_once('~')
        && !number.is_empty()
        && generation.parse::<u32>().is_ok()
    {
        numbers.push(number);
    }
    for number in numbers {
        let found: Option<PaymentInvoice> = diesel::sql_query(
            "SELECT id, number, amount, status FROM invoices WHERE number = $1 FOR UPDATE",
        )
        .bind::<Text, _>(number)
        .get_result(conn)
        .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Records a verified payment and, when `judge` finds nothing wrong, marks its
/// invoice `paid` (with the payment's `paid_at`), all in one transaction.
///
/// `judge` gets the invoice the order id names (or `None`) and returns the flag that
/// keeps the invoice from being marked paid (`unknown_invoice`, `underpaid`, …), or
/// `None`. A second call with the same gateway and reference changes nothing and
/// returns [`Recorded::Replay`].
pub fn record_payment(
    conn: &mut PgConnection,
    p: &NewPayment<'_>,
    judge: impl FnOnce(Option<&PaymentInvoice>) -> Option<&'static str>,
) -> Result<Recorded> {
    conn.transaction(|conn| {
        let existing = |conn: &mut PgConnection| -> Result<Option<IdFlag>> {
            Ok(diesel::sql_query(
                "SELECT id, flag FROM payments WHERE gateway = $1 AND reference = $2",
            )
            .bind::<Text, _>(p.gateway)
            .bind::<Text, _>(p.reference)
            .get_result(conn)
            .optional()?)
        };
        if let Some(old) = existing(conn)? {
            return Ok(Recorded::Replay {
                payment_id: old.id,
                flag: old.flag,
            });
        }
        let invoice = invoice_for_order(conn, p.order_id)?;
        let flag = judge(invoice.as_ref());
        let inserted: Option<IdFlag> = diesel::sql_query(
            "INSERT INTO payments (gateway, reference, order_id, invoice_id, amount, currency,
                                   paid_at, raw, flag)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (gateway, reference) DO NOTHING
             RETURNING id, flag",
        )
        .bind::<Text, _>(p.gateway)
        .bind::<Text, _>(p.reference)
        .bind::<Text, _>(p.order_id)
        .bind::<Nullable<BigInt>, _>(invoice.as_ref().map(|i| i.id))
        .bind::<BigInt, _>(p.amount)
        .bind::<Text, _>(p.currency)
        .bind::<Timestamptz, _>(p.paid_at)
        .bind::<Jsonb, _>(p.raw)
        .bind::<Nullable<Text>, _>(flag)
        .get_result(conn)
        .optional()?;
        let Some(row) = inserted else {
            // A concurrent delivery of the same callback won the insert.
            let old = existing(conn)?
                .ok_or_else(|| StoreError::Query(diesel::result::Error::NotFound))?;
            return Ok(Recorded::Replay {
                payment_id: old.id,
                flag: old.flag,
            });
        };
        let mut marked_paid = false;
        if flag.is_none()
            && let Some(inv) = &invoice
        {
            marked_paid = diesel::sql_query(
                "UPDATE invoices SET status = 'paid', paid_at = $2, updated_at = now()
                 WHERE id = $1 AND status = 'unpaid'",
            )
            .bind::<BigInt, _>(inv.id)
            .bind::<Timestamptz, _>(p.paid_at)
            .execute(conn)?
                == 1;
        }
        Ok(Recorded::New {
            payment_id: row.id,
            invoice,
            flag: row.flag,
            marked_paid,
        })
    })
}

/// A payment that did not mark its invoice paid, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct FlaggedPayment {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub gateway: String,
    #[diesel(sql_type = Text)]
    pub reference: String,
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub invoice_number: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = Text)]
    pub flag: String,
    #[diesel(sql_type = Timestamptz)]
    pub received_at: OffsetDateTime,
}

/// Flagged payments, newest first (for `doctor`, `stats` and the dashboard).
pub fn flagged_payments(conn: &mut PgConnection, limit: i64) -> Result<Vec<FlaggedPayment>> {
    Ok(diesel::sql_query(
        "SELECT p.id, p.gateway, p.reference, p.order_id, i.number AS invoice_number, p.amount,
                p.currency, p.flag, p.received_at
         FROM payments p LEFT JOIN invoices i ON i.id = p.invoice_id
         WHERE p.flag IS NOT NULL ORDER BY p.received_at DESC, p.id DESC LIMIT $1",
    )
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// Flagged payments (not marked paid) by flag, for `stats`.
pub fn flagged_counts(conn: &mut PgConnection) -> Result<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Text)]
        flag: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<R> = diesel::sql_query(
        "SELECT flag, count(*) AS n FROM payments WHERE flag IS NOT NULL GROUP BY flag ORDER BY flag",
    )
    .load(conn)?;
    Ok(rows.into_iter().map(|r| (r.flag, r.n)).collect())
}

/// An invoice a gateway payment marked paid, from a billing source.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct GatewayPaid {
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub gateway: String,
    #[diesel(sql_type = Timestamptz)]
    pub paid_at: OffsetDateTime,
}

/// Invoices of the billing mirror (`from_billing`) that a gateway payment received
/// since `since` marked paid, newest first, at most `limit`: the ones to ask billing
/// about ("paid at the gateway, not yet in billing").
pub fn gateway_paid_from_billing(
    conn: &mut PgConnection,
    since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<GatewayPaid>> {
    Ok(diesel::sql_query(
        "SELECT number, gateway, paid_at FROM (
             SELECT DISTINCT ON (i.id) i.number, p.gateway, p.paid_at, p.received_at
             FROM payments p JOIN invoices i ON i.id = p.invoice_id
             WHERE p.flag IS NULL AND i.status = 'paid' AND i.from_billing AND p.received_at >= $1
             ORDER BY i.id, p.received_at DESC
         ) x ORDER BY received_at DESC LIMIT $2",
    )
    .bind::<Timestamptz, _>(since)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// What a payment page is created for: the invoice with its customer, and the link
/// billing wrote for it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LinkInvoice {
    #[diesel(embed)]
    pub invoice: InvoiceRow,
    /// A payment link billing wrote into `invoices` (or the source query returned).
    #[diesel(sql_type = Nullable<Text>)]
    pub payment_url: Option<String>,
}

/// The invoice with id `invoice_id`, its customer's contacts and billing's link.
pub fn link_invoice(conn: &mut PgConnection, invoice_id: i64) -> Result<Option<LinkInvoice>> {
    Ok(diesel::sql_query(format!(
        "SELECT {INVOICE_COLUMNS}, NULLIF(btrim(i.payment_url), '') AS payment_url
         FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE i.id = $1"
    ))
    .bind::<BigInt, _>(invoice_id)
    .get_result(conn)
    .optional()?)
}

/// A hosted payment page of one invoice on one gateway.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct PaymentLink {
    #[diesel(sql_type = Text)]
    pub order_id: String,
    #[diesel(sql_type = Text)]
    pub reference: String,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: OffsetDateTime,
    /// 1 for the first page, 2 for the one created after it expired, …
    #[diesel(sql_type = Integer)]
    pub generation: i32,
}

/// A page the gateway just created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedLink {
    pub reference: String,
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// Why [`payment_link_for`] has no link.
#[derive(Debug, thiserror::Error)]
pub enum LinkStoreError<E> {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gateway did not create the page (the caller's error).
    #[error("{0}")]
    Create(E),
}

enum TxError<E> {
    Store(StoreError),
    Create(E),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Store(StoreError::Query(e))
    }
}

impl<E> From<StoreError> for TxError<E> {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

/// The payment page of `invoice` on `gateway`: the stored one while it stays valid
/// past `valid_until`, else a new one from `create(order_id)` (the first time, and
/// once the stored one expires), stored before it is returned.
///
/// Callers for one invoice are serialised by an advisory lock held for the
/// transaction, so two reminders of one invoice sent at once create one page.
/// No row lock is held while `create` talks to the gateway.
pub fn payment_link_for<E>(
    conn: &mut PgConnection,
    invoice: &InvoiceRow,
    gateway: &str,
    valid_until: OffsetDateTime,
    create: impl FnOnce(&str) -> Result<CreatedLink, E>,
) -> Result<PaymentLink, LinkStoreError<E>> {
    let outcome = conn.transaction::<_, TxError<E>, _>(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(727275, hashint8($1))")
            .bind::<BigInt, _>(invoice.id)
            .execute(conn)?;
        let current: Option<PaymentLink> = diesel::sql_query(
            "SELECT order_id, reference, url, expires_at, generation FROM payment_links
             WHERE invoice_id = $1 AND gateway = $2",
        )
        .bind::<BigInt, _>(invoice.id)
        .bind::<Text, _>(gateway)
        .get_result(conn)
        .optional()?;
        if let Some(link) = &current
            && link.expires_at > valid_until
        {
            return Ok(link.clone());
        }
        let generation = current.map_or(1, |l| l.generation + 1);
        let order_id = if generation == 1 {
            invoice.number.clone()
        } else {
            format!("{}~{generation}", invoice.number)
        };
        let created = create(&order_id).map_err(TxError::Create)?;
        Ok(diesel::sql_query(
            "INSERT INTO payment_links (invoice_id, gateway, order_id, reference, url, expires_at,
                                        generation)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (invoice_id, gateway) DO UPDATE SET
                 order_id = EXCLUDED.order_id, reference = EXCLUDED.reference,
                 url = EXCLUDED.url, expires_at = EXCLUDED.expires_at,
                 generation = EXCLUDED.generation, created_at = now()
             RETURNING order_id, reference, url, expires_at, generation",
        )
        .bind::<BigInt, _>(invoice.id)
        .bind::<Text, _>(gateway)
        .bind::<Text, _>(&order_id)
        .bind::<Text, _>(&created.reference)
        .bind::<Text, _>(&created.url)
        .bind::<Timestamptz, _>(created.expires_at)
        .bind::<Integer, _>(generation)
        .get_result(conn)?)
    });
    outcome.map_err(|e| match e {
        TxError::Store(s) => LinkStoreError::Store(s),
        TxError::Create(c) => LinkStoreError::Create(c),
    })
}

/// Records on ledger row `notification_id` why its reminder goes out without a
/// payment link; `None` clears an earlier error (a retry that got its link).
pub fn note_link_error(
    conn: &mut PgConnection,
    notification_id: i64,
    error: Option<&str>,
) -> Result<()> {
    // Named (prepared once per connection): it runs for every reminder with a link.
    crate::named(
        "UPDATE notifications SET link_error = $2
         WHERE id = $1 AND link_error IS DISTINCT FROM $2",
    )
    .bind::<BigInt, _>(notification_id)
    .bind::<Nullable<Text>, _>(error)
    .execute(conn)?;
    Ok(())
}

/// Reminders sent without their payment link since `since`: how many, and the
/// latest error (for `stats` and `failed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, QueryableByName)]
pub struct MissingLinks {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub latest_error: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub latest_invoice: Option<String>,
}

/// See [`MissingLinks`]; only rows that were sent count (a failed one is in `failed`).
pub fn missing_links(conn: &mut PgConnection, since: OffsetDateTime) -> Result<MissingLinks> {
    Ok(diesel::sql_query(
        "SELECT count(*) AS count,
                (array_agg(n.link_error ORDER BY n.created_at DESC, n.id DESC))[1] AS latest_error,
                (array_agg(i.number ORDER BY n.created_at DESC, n.id DESC))[1] AS latest_invoice
         FROM notifications n JOIN invoices i ON i.id = n.invoice_id
         WHERE n.link_error IS NOT NULL AND n.created_at >= $1 AND n.status = 'sent'",
    )
    .bind::<Timestamptz, _>(since)
    .get_result(conn)?)
}

/// Whether the database answers (`GET /healthz`).
pub fn ping(conn: &mut PgConnection) -> Result<()> {
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}
