//! Pauses and opt-outs: reminders a customer or an operator asked to hold.
//!
//! A pause holds every reminder of one customer (all invoices) or of one invoice for
//! the run dates `starts_on..=until`. An opt-out stops one channel for a customer
//! until an opt-in. The scheduler does not queue what they cover
//! ([`crate::scheduling`]); the worker reads the same rule ([`hold_sql`]) right
//! before a send, for a hold set after queuing.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date as SqlDate, Nullable, Text, Timestamptz};
use time::{Date, Duration, OffsetDateTime};

use dunning_core::Channel;

use crate::Result;
use crate::rows::Id;

/// The SQL expression normalising the phone column `col` to the form Fonnte
/// writes senders in (`628…`, digits only).
pub(crate) fn normalized_phone(col: &str) -> String {
    let d = format!("regexp_replace(coalesce({col}, ''), '[^0-9]', '', 'g')");
    format!(
        "(CASE WHEN {d} LIKE '0%' THEN '62' || substr({d}, 2) WHEN {d} LIKE '8%' THEN '62' || {d} ELSE {d} END)"
    )
}

/// Why a reminder is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldReason {
    /// A pause of the customer or the invoice covers today.
    Paused { until: Date, reason: String },
    /// The customer opted out of this channel.
    OptedOut { reason: String },
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldReason::Paused { until, reason } => write!(f, "paused until {until}: {reason}"),
            HoldReason::OptedOut { reason } => write!(f, "opted out: {reason}"),
        }
    }
}

/// The hold (if any) of a reminder, as SQL: a subquery of one row (`kind`, `until`,
/// `reason`) or none, for the invoice, customer, channel and local day given as SQL
/// expressions. An opt-out wins over a pause; of several pauses, the one lasting
/// longest is named. One text for [`hold_for`] and the worker's pre-send read
/// (`queue::sql::RECHECK`), which asks it for the ledger row it reads.
macro_rules! hold_sql {
    ($invoice:literal, $customer:literal, $channel:literal, $day:literal) => {
        concat!(
            "SELECT kind, until, reason FROM (
                 SELECT 1 AS o, 'opt_out' AS kind, NULL::date AS until, reason
                 FROM opt_outs WHERE customer_id = ",
            $customer,
            " AND channel = ",
            $channel,
            "
                 UNION ALL
                 SELECT 2, 'pause', until, reason FROM pauses
                 WHERE (customer_id = ",
            $customer,
            " OR invoice_id = ",
            $invoice,
            ")
                   AND starts_on <= ",
            $day,
            " AND until >= ",
            $day,
            "
             ) h ORDER BY o, until DESC LIMIT 1"
        )
    };
}
pub(crate) use hold_sql;

/// A hold as read by [`hold_sql`]: `kind` NULL means none.
pub(crate) fn hold_from(
    kind: Option<&str>,
    until: Option<Date>,
    reason: Option<String>,
) -> Option<HoldReason> {
    let reason = reason.unwrap_or_default();
    match (kind?, until) {
        ("pause", Some(until)) => Some(HoldReason::Paused { until, reason }),
        _ => Some(HoldReason::OptedOut { reason }),
    }
}

#[derive(QueryableByName)]
struct HoldRow {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<SqlDate>)]
    until: Option<Date>,
    #[diesel(sql_type = Text)]
    reason: String,
}

/// Is a reminder of `invoice_id` (of `customer_id`) on `channel` held on `today`
/// (local date)? The same rule the worker applies right before a send.
pub fn hold_for(
    conn: &mut PgConnection,
    invoice_id: i64,
    customer_id: i64,
    channel: Channel,
    today: Date,
) -> Result<Option<HoldReason>> {
    let row: Option<HoldRow> = diesel::sql_query(hold_sql!("$1", "$2", "$3", "$4"))
        .bind::<BigInt, _>(invoice_id)
        .bind::<BigInt, _>(customer_id)
        .bind::<Text, _>(channel.as_str())
        .bind::<SqlDate, _>(today)
        .get_result(conn)
        .optional()?;
    Ok(row.and_then(|r| hold_from(Some(&r.kind), r.until, Some(r.reason))))
}

/// A customer found by external id or phone number.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CustomerRef {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub external_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub name: String,
}

/// Customers whose external id is `key`, or (when none) whose phone number is the
/// same number as `key` (`0812…`, `+62 812…` and `62812…` are one number).
pub fn find_customers(conn: &mut PgConnection, key: &str) -> Result<Vec<CustomerRef>> {
    let by_id: Vec<CustomerRef> = diesel::sql_query(
        "SELECT id, external_id, name FROM customers WHERE external_id = $1 ORDER BY id",
    )
    .bind::<Text, _>(key.trim())
    .load(conn)?;
    if !by_id.is_empty() {
        return Ok(by_id);
    }
    customers_by_phone(conn, key)
}

/// Customers whose phone number is the same number as `phone`.
pub fn customers_by_phone(conn: &mut PgConnection, phone: &str) -> Result<Vec<CustomerRef>> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 6 {
        return Ok(Vec::new());
    }
    let wanted = match dunning_core::contact::normalize_phone(phone) {
        Ok(n) => n,
        Err(_) => digits,
    };
    let sql = format!(
        "SELECT id, external_id, name FROM customers WHERE {} = $1 ORDER BY id",
        normalized_phone("phone")
    );
    Ok(diesel::sql_query(sql).bind::<Text, _>(wanted).load(conn)?)
}

/// An invoice found by number.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct InvoiceRef {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = BigInt)]
    pub customer_id: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
}

/// The invoice numbered `number`.
pub fn find_invoice(conn: &mut PgConnection, number: &str) -> Result<Option<InvoiceRef>> {
    Ok(
        diesel::sql_query("SELECT id, number, customer_id, status FROM invoices WHERE number = $1")
            .bind::<Text, _>(number.trim())
            .get_result(conn)
            .optional()?,
    )
}

/// What a pause covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Customer(i64),
    Invoice(i64),
}

impl Target {
    fn ids(self) -> (Option<i64>, Option<i64>) {
        match self {
            Target::Customer(c) => (Some(c), None),
            Target::Invoice(i) => (None, Some(i)),
        }
    }
}

/// Holds `target`'s reminders on the run dates `starts_on..=until`. Returns the pause id.
pub fn pause(
    conn: &mut PgConnection,
    target: Target,
    starts_on: Date,
    until: Date,
    reason: &str,
    created_by: &str,
) -> Result<i64> {
    let (customer, invoice) = target.ids();
    let id: Id = diesel::sql_query(
        "INSERT INTO pauses (customer_id, invoice_id, starts_on, until, reason, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind::<Nullable<BigInt>, _>(customer)
    .bind::<Nullable<BigInt>, _>(invoice)
    .bind::<SqlDate, _>(starts_on)
    .bind::<SqlDate, _>(until)
    .bind::<Text, _>(reason)
    .bind::<Text, _>(created_by)
    .get_result(conn)?;
    Ok(id.id)
}

/// Ends `target`'s pauses that cover `today` or later: they now end yesterday, so a
/// scheduler run today queues what is due. Returns how many pauses ended.
pub fn unpause(conn: &mut PgConnection, target: Target, today: Date) -> Result<usize> {
    let (customer, invoice) = target.ids();
    Ok(diesel::sql_query(
        "UPDATE pauses SET until = $3 - 1
         WHERE (customer_id = $1 OR invoice_id = $2) AND until >= $3",
    )
    .bind::<Nullable<BigInt>, _>(customer)
    .bind::<Nullable<BigInt>, _>(invoice)
    .bind::<SqlDate, _>(today)
    .execute(conn)?)
}

/// Opts a customer out of `channel`. Returns false when already opted out.
pub fn opt_out(
    conn: &mut PgConnection,
    customer_id: i64,
    channel: Channel,
    reason: &str,
    created_by: &str,
) -> Result<bool> {
    Ok(diesel::sql_query(
        "INSERT INTO opt_outs (customer_id, channel, reason, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind::<BigInt, _>(customer_id)
    .bind::<Text, _>(channel.as_str())
    .bind::<Text, _>(reason)
    .bind::<Text, _>(created_by)
    .execute(conn)?
        > 0)
}

/// Ends a customer's opt-out of `channel`. Returns false when there was none.
pub fn opt_in(conn: &mut PgConnection, customer_id: i64, channel: Channel) -> Result<bool> {
    Ok(
        diesel::sql_query("DELETE FROM opt_outs WHERE customer_id = $1 AND channel = $2")
            .bind::<BigInt, _>(customer_id)
            .bind::<Text, _>(channel.as_str())
            .execute(conn)?
            > 0,
    )
}

/// A pause or opt-out in force, for `pauses` (and the dashboard).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct HoldListing {
    /// `pause` or `opt_out`.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// `customer <external id or #id> (<name>)` or `invoice <number>`.
    #[diesel(sql_type = Text)]
    pub target: String,
    /// The channel of an opt-out; `all` for a pause.
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Nullable<SqlDate>)]
    pub until: Option<Date>,
    #[diesel(sql_type = Text)]
    pub reason: String,
    #[diesel(sql_type = Text)]
    pub created_by: String,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: OffsetDateTime,
    /// The customer paused or opted out (none for an invoice's pause).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub customer_id: Option<i64>,
    /// The invoice paused (none for a customer's pause or an opt-out).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub invoice_id: Option<i64>,
}

/// Pauses covering `today` or later, then opt-outs, newest first.
pub fn current(conn: &mut PgConnection, today: Date) -> Result<Vec<HoldListing>> {
    Ok(diesel::sql_query(
        "SELECT 'pause' AS kind,
                CASE WHEN p.invoice_id IS NOT NULL THEN 'invoice ' || i.number
                     ELSE 'customer ' || COALESCE(c.external_id, '#' || c.id) || ' (' || c.name || ')' END AS target,
                'all' AS channel, p.until, p.reason, p.created_by, p.created_at,
                p.customer_id, p.invoice_id
         FROM pauses p
         LEFT JOIN invoices i ON i.id = p.invoice_id
         LEFT JOIN customers c ON c.id = p.customer_id
         WHERE p.until >= $1
         UNION ALL
         SELECT 'opt_out', 'customer ' || COALESCE(c.external_id, '#' || c.id) || ' (' || c.name || ')',
                o.channel, NULL, o.reason, o.created_by, o.created_at,
                o.customer_id, NULL
         FROM opt_outs o JOIN customers c ON c.id = o.customer_id
         ORDER BY kind DESC, created_at DESC",
    )
    .bind::<SqlDate, _>(today)
    .load(conn)?)
}

/// Unpaid invoices a scheduler run on `today` would hold, by reason, for `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldCounts {
    /// Unpaid invoices covered by a pause today.
    pub paused_invoices: i64,
    /// Customers opted out of WhatsApp.
    pub whatsapp_opt_outs: i64,
    /// Customers opted out of email.
    pub email_opt_outs: i64,
}

/// Counts what is held today.
pub fn held_counts(conn: &mut PgConnection, today: Date) -> Result<HeldCounts> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = BigInt)]
        paused: i64,
        #[diesel(sql_type = BigInt)]
        wa: i64,
        #[diesel(sql_type = BigInt)]
        email: i64,
    }
    let r: R = diesel::sql_query(
        "SELECT
           (SELECT count(*) FROM invoices i WHERE i.status = 'unpaid' AND EXISTS (
              SELECT 1 FROM pauses p WHERE (p.invoice_id = i.id OR p.customer_id = i.customer_id)
                AND p.starts_on <= $1 AND p.until >= $1)) AS paused,
           (SELECT count(*) FROM opt_outs WHERE channel = 'whatsapp') AS wa,
           (SELECT count(*) FROM opt_outs WHERE channel = 'email') AS email",
    )
    .bind::<SqlDate, _>(today)
    .get_result(conn)?;
    Ok(HeldCounts {
        paused_invoices: r.paused,
        whatsapp_opt_outs: r.wa,
        email_opt_outs: r.email,
    })
}

/// The latest date a pause may end (a typo such as `2062-01-01` is refused).
pub fn max_until(today: Date) -> Date {
    today + Duration::days(366)
}
