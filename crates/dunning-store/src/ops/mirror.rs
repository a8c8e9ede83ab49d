//! The mirror of a billing source (`dunning-schedule sync`): `customers` and
//! `invoices` written from the ISP's billing database, with `import`'s rules.
//!
//! A sync runs in one transaction: [`begin`] makes two temporary key tables, the
//! caller streams validated rows in chunks through [`mark_seen`],
//! [`upsert_customers`] and [`upsert_invoices`], and a full sync ends with
//! [`void_missing`]. Memory stays bounded by the chunk: the keys seen so far live
//! in PostgreSQL, not in the process. A failure rolls the whole sync back, so the
//! mirror is always the state of one complete read of the source.
//!
//! [`start`], [`finish`], [`last`] and [`last_success`] keep the `billing_sync`
//! record that `stats`, `doctor` and the worker's staleness rule read.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Bool, Date as SqlDate, Integer, Nullable, Text, Timestamptz,
};
use time::{Date, OffsetDateTime};

use super::import::{self, Counts, CustomerRow};
use crate::Result;

/// A validated invoice row from the billing source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInvoice {
    pub number: String,
    pub customer_external_id: String,
    /// Whole rupiah.
    pub amount: i64,
    pub due_date: Date,
    /// `unpaid`, `paid` or `void`.
    pub status: String,
    /// The payment link the source returned, if it has a `payment_url` column.
    pub payment_url: Option<String>,
}

/// Which key table [`mark_seen`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Customers' external ids.
    Customers,
    /// Invoice numbers.
    Invoices,
}

/// Creates this transaction's key tables (dropped at commit or rollback).
pub fn begin(conn: &mut PgConnection) -> Result<()> {
    diesel::sql_query(
        "CREATE TEMP TABLE dunning_sync_customers (k text PRIMARY KEY) ON COMMIT DROP",
    )
    .execute(conn)?;
    diesel::sql_query(
        "CREATE TEMP TABLE dunning_sync_invoices (k text PRIMARY KEY) ON COMMIT DROP",
    )
    .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    k: String,
}

/// Records `keys` as read in this sync; returns, for each, whether it is the
/// first time (false: a duplicate of a row read earlier, to be rejected).
pub fn mark_seen(conn: &mut PgConnection, which: Keys, keys: &[&str]) -> Result<Vec<bool>> {
    let table = match which {
        Keys::Customers => "dunning_sync_customers",
        Keys::Invoices => "dunning_sync_invoices",
    };
    let fresh: Vec<Key> = diesel::sql_query(format!(
        "INSERT INTO {table} (k) SELECT DISTINCT unnest($1::text[])
         ON CONFLICT (k) DO NOTHING RETURNING k"
    ))
    .bind::<Array<Text>, _>(keys)
    .load(conn)?;
    let mut fresh: std::collections::HashSet<String> = fresh.into_iter().map(|r| r.k).collect();
    // The first occurrence within the chunk is the fresh one; later ones are duplicates.
    Ok(keys.iter().map(|k| fresh.remove(*k)).collect())
}

/// Upserts customers by external id (every row must have one); `import`'s rule:
/// a row changes only when a value differs.
pub fn upsert_customers(conn: &mut PgConnection, rows: &[CustomerRow]) -> Result<Counts> {
    import::upsert_customers(conn, rows, &mut |_| {})
}

#[derive(QueryableByName)]
struct Upserted {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// Upserts invoices by number with `import`'s rules (a `paid` or `void` invoice
/// stays so when the source still says `unpaid`: a payment Dunning recorded is
/// never reopened). Returns the counts and the numbers whose customer is not in
/// the mirror (not written: the caller rejects them).
pub fn upsert_invoices(
    conn: &mut PgConnection,
    rows: &[SourceInvoice],
) -> Result<(Counts, Vec<String>)> {
    let ext: Vec<&str> = rows
        .iter()
        .map(|r| r.customer_external_id.as_str())
        .collect();
    let known = import::existing_external_ids(
        conn,
        &ext.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
    )?;
    let (ok, orphans): (Vec<&SourceInvoice>, Vec<&SourceInvoice>) = rows
        .iter()
        .partition(|r| known.contains(&r.customer_external_id));
    let numbers: Vec<&str> = ok.iter().map(|r| r.number.as_str()).collect();
    let ext: Vec<&str> = ok.iter().map(|r| r.customer_external_id.as_str()).collect();
    let amounts: Vec<i64> = ok.iter().map(|r| r.amount).collect();
    let dues: Vec<Date> = ok.iter().map(|r| r.due_date).collect();
    let statuses: Vec<&str> = ok.iter().map(|r| r.status.as_str()).collect();
    let urls: Vec<Option<&str>> = ok.iter().map(|r| r.payment_url.as_deref()).collect();
    let done: Vec<Upserted> = diesel::sql_query(
        "INSERT INTO invoices AS i (number, customer_id, amount, due_date, status, paid_at, payment_url, from_billing)
         SELECT v.number, c.id, v.amount, v.due_date, v.status,
                CASE WHEN v.status = 'paid' THEN now() END, v.payment_url, true
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::date[], $5::text[], $6::text[])
              AS v(number, ext, amount, due_date, status, payment_url)
         JOIN customers c ON c.external_id = v.ext
         ON CONFLICT (number) DO UPDATE SET
             customer_id = EXCLUDED.customer_id,
             amount = EXCLUDED.amount,
             due_date = EXCLUDED.due_date,
             status = CASE WHEN EXCLUDED.status = 'unpaid' THEN i.status ELSE EXCLUDED.status END,
             paid_at = CASE
                 WHEN EXCLUDED.status = 'paid' AND i.status = 'paid' THEN i.paid_at
                 WHEN EXCLUDED.status = 'paid' THEN now()
                 WHEN EXCLUDED.status = 'unpaid' THEN i.paid_at
             END,
             payment_url = EXCLUDED.payment_url,
             from_billing = true,
             updated_at = now()
         WHERE (i.customer_id, i.amount, i.due_date, i.payment_url)
               IS DISTINCT FROM (EXCLUDED.customer_id, EXCLUDED.amount, EXCLUDED.due_date, EXCLUDED.payment_url)
            OR (EXCLUDED.status <> 'unpaid' AND i.status <> EXCLUDED.status)
            OR NOT i.from_billing
         RETURNING (xmax = 0) AS inserted",
    )
    .bind::<Array<Text>, _>(&numbers)
    .bind::<Array<Text>, _>(&ext)
    .bind::<Array<BigInt>, _>(&amounts)
    .bind::<Array<SqlDate>, _>(&dues)
    .bind::<Array<Text>, _>(&statuses)
    .bind::<Array<Nullable<Text>>, _>(&urls)
    .load(conn)?;
    let created = done.iter().filter(|r| r.inserted).count();
    Ok((
        Counts {
            created,
            updated: done.len() - created,
            unchanged: ok.len() - done.len(),
            // An invoice Dunning marked paid that billing still has unpaid is kept
            // paid and counted as unchanged here (billing has not caught up yet).
            conflicts: 0,
        },
        orphans.into_iter().map(|r| r.number.clone()).collect(),
    ))
}

/// After a full sync: marks `void` every unpaid invoice that an earlier sync wrote
/// and this one did not read (deleted or cancelled in billing). Returns how many.
pub fn void_missing(conn: &mut PgConnection) -> Result<usize> {
    Ok(diesel::sql_query(
        "UPDATE invoices i SET status = 'void', updated_at = now()
         WHERE i.from_billing AND i.status = 'unpaid'
           AND NOT EXISTS (SELECT 1 FROM dunning_sync_invoices s WHERE s.k = i.number)",
    )
    .execute(conn)?)
}

/// What one sync did, row by row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncCounts {
    pub customers_new: i32,
    pub customers_changed: i32,
    pub customers_unchanged: i32,
    pub customers_rejected: i32,
    pub invoices_new: i32,
    pub invoices_changed: i32,
    pub invoices_unchanged: i32,
    pub invoices_void: i32,
    pub invoices_rejected: i32,
}

/// A row of `billing_sync`.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct SyncRecord {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub started_at: OffsetDateTime,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<OffsetDateTime>,
    /// `full` or `incremental`.
    #[diesel(sql_type = Text)]
    pub mode: String,
    /// None while running (or when the process died during the sync).
    #[diesel(sql_type = Nullable<Bool>)]
    pub ok: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Integer)]
    pub customers_new: i32,
    #[diesel(sql_type = Integer)]
    pub customers_changed: i32,
    #[diesel(sql_type = Integer)]
    pub customers_unchanged: i32,
    #[diesel(sql_type = Integer)]
    pub customers_rejected: i32,
    #[diesel(sql_type = Integer)]
    pub invoices_new: i32,
    #[diesel(sql_type = Integer)]
    pub invoices_changed: i32,
    #[diesel(sql_type = Integer)]
    pub invoices_unchanged: i32,
    #[diesel(sql_type = Integer)]
    pub invoices_void: i32,
    #[diesel(sql_type = Integer)]
    pub invoices_rejected: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub customers_watermark: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub invoices_watermark: Option<String>,
}

impl SyncRecord {
    /// The counts of this sync.
    pub fn counts(&self) -> SyncCounts {
        SyncCounts {
            customers_new: self.customers_new,
            customers_changed: self.customers_changed,
            customers_unchanged: self.customers_unchanged,
            customers_rejected: self.customers_rejected,
            invoices_new: self.invoices_new,
            invoices_changed: self.invoices_changed,
            invoices_unchanged: self.invoices_unchanged,
            invoices_void: self.invoices_void,
            invoices_rejected: self.invoices_rejected,
        }
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Records the start of a sync (outside the sync's transaction, so that a failed
/// sync stays on record); returns its id. Records older than 30 days are deleted.
pub fn start(conn: &mut PgConnection, mode: &str) -> Result<i64> {
    diesel::sql_query("DELETE FROM billing_sync WHERE started_at < now() - interval '30 days'")
        .execute(conn)?;
    let row: Id = diesel::sql_query("INSERT INTO billing_sync (mode) VALUES ($1) RETURNING id")
        .bind::<Text, _>(mode)
        .get_result(conn)?;
    Ok(row.id)
}

/// Records how a sync ended: its counts and watermarks, or its error.
pub fn finish(
    conn: &mut PgConnection,
    id: i64,
    mode: &str,
    outcome: std::result::Result<(&SyncCounts, Option<&str>, Option<&str>), &str>,
) -> Result<()> {
    let (ok, error, c, cw, iw) = match outcome {
        Ok((c, cw, iw)) => (true, None, *c, cw, iw),
        Err(e) => (false, Some(e), SyncCounts::default(), None, None),
    };
    diesel::sql_query(
        "UPDATE billing_sync SET finished_at = now(), ok = $2, error = $3,
             customers_new = $4, customers_changed = $5, customers_unchanged = $6,
             customers_rejected = $7, invoices_new = $8, invoices_changed = $9,
             invoices_unchanged = $10, invoices_void = $11, invoices_rejected = $12,
             customers_watermark = $13, invoices_watermark = $14, mode = $15
         WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Bool, _>(ok)
    .bind::<Nullable<Text>, _>(error)
    .bind::<Integer, _>(c.customers_new)
    .bind::<Integer, _>(c.customers_changed)
    .bind::<Integer, _>(c.customers_unchanged)
    .bind::<Integer, _>(c.customers_rejected)
    .bind::<Integer, _>(c.invoices_new)
    .bind::<Integer, _>(c.invoices_changed)
    .bind::<Integer, _>(c.invoices_unchanged)
    .bind::<Integer, _>(c.invoices_void)
    .bind::<Integer, _>(c.invoices_rejected)
    .bind::<Nullable<Text>, _>(cw)
    .bind::<Nullable<Text>, _>(iw)
    .bind::<Text, _>(mode)
    .execute(conn)?;
    Ok(())
}

const RECORD: &str = "SELECT id, started_at, finished_at, mode, ok, error, customers_new,
    customers_changed, customers_unchanged, customers_rejected, invoices_new, invoices_changed,
    invoices_unchanged, invoices_void, invoices_rejected, customers_watermark, invoices_watermark
    FROM billing_sync";

/// The latest sync that has ended, successful or not.
pub fn last(conn: &mut PgConnection) -> Result<Option<SyncRecord>> {
    Ok(diesel::sql_query(format!(
        "{RECORD} WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1"
    ))
    .get_result(conn)
    .optional()?)
}

/// The latest successful sync (`full` only when `full_only`): its end is how
/// fresh the mirror is, its watermarks are where an incremental sync starts.
pub fn last_success(conn: &mut PgConnection, full_only: bool) -> Result<Option<SyncRecord>> {
    let filter = if full_only { " AND mode = 'full'" } else { "" };
    Ok(diesel::sql_query(format!(
        "{RECORD} WHERE ok{filter} ORDER BY finished_at DESC, id DESC LIMIT 1"
    ))
    .get_result(conn)
    .optional()?)
}
