//! The mirror of a billing source (`dunning-schedule sync`): `customers` and
//! `invoices` written from the ISP's billing database, with `import`'s rules.
//!
//! A sync runs in one transaction. [`begin`] makes two temporary staging tables;
//! the caller checks each row in Rust and streams the rows, chunk by chunk, into
//! them with `COPY FROM STDIN` ([`stage_customers`], [`stage_invoices`]); then a
//! few set-based statements merge them ([`merge_customers`], [`merge_invoices`])
//! and a full sync ends with [`void_missing`]. Memory stays bounded by the chunk:
//! the rows read so far live in PostgreSQL, not in the process. A failure rolls
//! the whole sync back, so the mirror is always the state of one complete read of
//! the source.
//!
//! Why staging and not one upsert per chunk: an `INSERT … ON CONFLICT` over
//! `unnest`ed arrays costs an index probe, a row lock (even when nothing changes)
//! and a round trip per chunk; `COPY` plus a hash join per step does the same work
//! at the speed of `COPY` (figures in docs/benchmarks.md).
//!
//! [`start`], [`finish`], [`last`] and [`last_success`] keep the `billing_sync`
//! record that `stats`, `doctor` and the worker's staleness rule read.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use time::{Date, OffsetDateTime};

use super::import::{Conflict, Counts, CustomerRow, InvoiceRow};
use crate::Result;

diesel::table! {
    /// This sync's valid customer rows, `ord` being the position read (1-based).
    dunning_stage_customers (ord) {
        ord -> BigInt,
        external_id -> Text,
        name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
    }
}

diesel::table! {
    /// Every invoice row read that has a number; `ok` is false for a rejected one
    /// (it still counts as present in the source: it must not be voided).
    dunning_stage_invoices (ord) {
        ord -> BigInt,
        number -> Text,
        ok -> Bool,
        customer_external_id -> Nullable<Text>,
        amount -> Nullable<BigInt>,
        due_date -> Nullable<Date>,
        status -> Nullable<Text>,
        payment_url -> Nullable<Text>,
    }
}

#[derive(Insertable)]
#[diesel(table_name = dunning_stage_customers, treat_none_as_default_value = false)]
struct StagedCustomer<'a> {
    ord: i64,
    external_id: &'a str,
    name: &'a str,
    email: Option<&'a str>,
    phone: Option<&'a str>,
}

#[derive(Insertable)]
#[diesel(table_name = dunning_stage_invoices, treat_none_as_default_value = false)]
struct StagedInvoice<'a> {
    ord: i64,
    number: &'a str,
    ok: bool,
    customer_external_id: Option<&'a str>,
    amount: Option<i64>,
    due_date: Option<Date>,
    status: Option<&'a str>,
    payment_url: Option<&'a str>,
}

/// An invoice row as read: its position (1-based), its number, and the row when
/// it passed the checks (`None`: rejected, but its number is present in the source).
#[derive(Debug, Clone, Copy)]
pub struct ReadInvoice<'a> {
    pub ord: u64,
    pub number: &'a str,
    pub valid: Option<&'a InvoiceRow>,
}

/// Starts a sync inside the caller's transaction: waits for any other sync to end
/// (two syncs at once would insert the same new rows), then creates this
/// transaction's staging tables (dropped at commit or rollback).
pub fn begin(conn: &mut PgConnection) -> Result<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(727276, 1)").execute(conn)?;
    diesel::sql_query(
        "CREATE TEMP TABLE dunning_stage_customers (ord bigint NOT NULL, external_id text NOT NULL,
             name text NOT NULL, email text, phone text) ON COMMIT DROP",
    )
    .execute(conn)?;
    diesel::sql_query(
        "CREATE TEMP TABLE dunning_stage_invoices (ord bigint NOT NULL, number text NOT NULL,
             ok bool NOT NULL, customer_external_id text, amount bigint, due_date date,
             status text, payment_url text) ON COMMIT DROP",
    )
    .execute(conn)?;
    Ok(())
}

fn ord(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Streams valid customer rows (with their positions; every row must have an
/// external id) into the staging table.
pub fn stage_customers(conn: &mut PgConnection, rows: &[(u64, &CustomerRow)]) -> Result<()> {
    let staged: Vec<StagedCustomer<'_>> = rows
        .iter()
        .filter_map(|(n, c)| {
            Some(StagedCustomer {
                ord: ord(*n),
                external_id: c.external_id.as_deref()?,
                name: &c.name,
                email: c.email.as_deref(),
                phone: c.phone.as_deref(),
            })
        })
        .collect();
    diesel::copy_from(dunning_stage_customers::table)
        .from_insertable(&staged)
        .execute(conn)?;
    Ok(())
}

/// Streams invoice rows, valid or not, into the staging table.
pub fn stage_invoices(conn: &mut PgConnection, rows: &[ReadInvoice<'_>]) -> Result<()> {
    let staged: Vec<StagedInvoice<'_>> = rows
        .iter()
        .map(|r| StagedInvoice {
            ord: ord(r.ord),
            number: r.number,
            ok: r.valid.is_some(),
            customer_external_id: r.valid.map(|v| v.customer_external_id.as_str()),
            amount: r.valid.map(|v| v.amount),
            due_date: r.valid.map(|v| v.due_date),
            status: r.valid.map(|v| v.status.as_str()),
            payment_url: r.valid.and_then(|v| v.payment_url.as_deref()),
        })
        .collect();
    diesel::copy_from(dunning_stage_invoices::table)
        .from_insertable(&staged)
        .execute(conn)?;
    Ok(())
}

/// A staged row the merge left out: its key, a detail (the unknown customer's
/// external id), and how many such rows there are in all.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct LeftOut {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub detail: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub total: i64,
}

/// What a merge did, and the rows it left out (the first `keep` of each kind,
/// in the order read, with the total count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Every valid row is counted once (conflicts: see [`Origin`]).
    pub counts: Counts,
    /// Valid rows whose key an earlier row already had (the first row is used).
    pub duplicates: Vec<LeftOut>,
    pub duplicates_total: usize,
    /// Invoices whose customer is not in the mirror (`detail`: its external id).
    pub orphans: Vec<LeftOut>,
    pub orphans_total: usize,
    /// [`Origin::File`] only: invoices the file says are unpaid that are paid or
    /// void here (kept so), in file order.
    pub conflicts: Vec<Conflict>,
}

/// Where the staged invoices come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The billing source (`sync`): its payment links are mirrored, its invoices
    /// are marked `from_billing` (voided when they disappear), and an invoice kept
    /// paid against the source counts as unchanged (billing has not caught up yet).
    Billing,
    /// A CSV file (`import`): payment links and `from_billing` are left alone, and
    /// an invoice kept paid against the file is a conflict, listed for the operator.
    File,
}

fn total(rows: &[LeftOut]) -> usize {
    rows.first()
        .map_or(0, |r| usize::try_from(r.total).unwrap_or(0))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count_of(conn: &mut PgConnection, sql: &str) -> Result<usize> {
    let c: Count = diesel::sql_query(sql).get_result(conn)?;
    Ok(usize::try_from(c.n).unwrap_or(0))
}

#[derive(QueryableByName)]
struct SecondaryIndex {
    #[diesel(sql_type = Text)]
    drop: String,
    #[diesel(sql_type = Text)]
    create: String,
}

/// Runs `insert` into `table` (`customers` or `invoices`). Into an empty table (a
/// first sync or import) it drops the table's secondary indexes first and builds
/// them again after, as `pg_restore` does: building an index once over a million
/// rows costs a fraction of updating it a million times, the trigram indexes most
/// (figures in docs/benchmarks.md). The unique indexes stay: the merge's key
/// lookups use them. `DROP INDEX` locks the table exclusively until the sync's
/// transaction ends; on an empty mirror only the dashboard's pages wait for it.
/// Everything is in the caller's transaction: a failed sync keeps every index.
fn insert_in_bulk(
    conn: &mut PgConnection,
    // A name written in this file, never input: it is formatted into the SQL.
    table: &'static str,
    insert: impl FnOnce(&mut PgConnection) -> Result<usize>,
) -> Result<usize> {
    let empty = count_of(
        conn,
        &format!("SELECT count(*) AS n FROM (SELECT 1 FROM {table} LIMIT 1) t"),
    )? == 0;
    if !empty {
        return insert(conn);
    }
    let indexes: Vec<SecondaryIndex> = diesel::sql_query(
        "SELECT format('DROP INDEX %I.%I', n.nspname, c.relname) AS drop,
                pg_get_indexdef(i.indexrelid) AS create
         FROM pg_index i
         JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE i.indrelid = $1::regclass AND NOT i.indisunique
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
         ORDER BY c.relname",
    )
    .bind::<Text, _>(table)
    .load(conn)?;
    for index in &indexes {
        diesel::sql_query(&index.drop).execute(conn)?;
    }
    let inserted = insert(conn)?;
    let started = std::time::Instant::now();
    for index in &indexes {
        diesel::sql_query(&index.create).execute(conn)?;
    }
    log::debug!(
        "sync: {inserted} rows into an empty {table}, {} indexes built in {:.2}s",
        indexes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(inserted)
}

/// Merges the staged customers by external id (`import`'s rule: a row changes
/// only when a value differs). Rows with an external id an earlier row had are
/// left out as duplicates.
pub fn merge_customers(conn: &mut PgConnection, keep: usize) -> Result<Merged> {
    diesel::sql_query("ANALYZE dunning_stage_customers").execute(conn)?;
    let duplicates: Vec<LeftOut> = diesel::sql_query(
        "WITH d AS (
             DELETE FROM dunning_stage_customers s USING dunning_stage_customers f
             WHERE f.external_id = s.external_id AND f.ord < s.ord
             RETURNING s.ord, s.external_id)
         SELECT external_id AS key, NULL::text AS detail, count(*) OVER () AS total
         FROM d ORDER BY ord LIMIT $1",
    )
    .bind::<BigInt, _>(ord(keep as u64))
    .load(conn)?;
    let rows = count_of(conn, "SELECT count(*) AS n FROM dunning_stage_customers")?;
    let updated = diesel::sql_query(
        "UPDATE customers c SET name = s.name, email = s.email, phone = s.phone, updated_at = now()
         FROM dunning_stage_customers s
         WHERE c.external_id = s.external_id
           AND (c.name, c.email, c.phone) IS DISTINCT FROM (s.name, s.email, s.phone)",
    )
    .execute(conn)?;
    let created = insert_in_bulk(conn, "customers", |conn| {
        Ok(diesel::sql_query(
            "INSERT INTO customers (external_id, name, email, phone)
             SELECT s.external_id, s.name, s.email, s.phone FROM dunning_stage_customers s
             WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.external_id = s.external_id)",
        )
        .execute(conn)?)
    })?;
    Ok(Merged {
        counts: Counts {
            created,
            updated,
            unchanged: rows.saturating_sub(created + updated),
            conflicts: 0,
        },
        duplicates_total: total(&duplicates),
        duplicates,
        ..Merged::default()
    })
}

#[derive(QueryableByName)]
struct Updated {
    #[diesel(sql_type = BigInt)]
    n: i64,
    /// Of which the status was kept against the row (conflicts).
    #[diesel(sql_type = BigInt)]
    kept: i64,
}

/// Merges the staged invoices by number with `import`'s rules: a `paid` or `void`
/// invoice stays so when the row still says `unpaid` (a payment Dunning recorded
/// is never reopened); a row changes only when a value differs. Left out: later
/// rows with a number an earlier row had (duplicates) and rows whose customer is
/// not in the mirror (orphans).
pub fn merge_invoices(conn: &mut PgConnection, keep: usize, origin: Origin) -> Result<Merged> {
    diesel::sql_query("ANALYZE dunning_stage_invoices").execute(conn)?;
    let billing = origin == Origin::Billing;
    let keep = ord(keep as u64);
    let duplicates: Vec<LeftOut> = diesel::sql_query(
        "WITH d AS (
             DELETE FROM dunning_stage_invoices s USING dunning_stage_invoices f
             WHERE f.number = s.number AND f.ord < s.ord
             RETURNING s.ord, s.number, s.ok)
         SELECT number AS key, NULL::text AS detail, count(*) OVER () AS total
         FROM d WHERE ok ORDER BY ord LIMIT $1",
    )
    .bind::<BigInt, _>(keep)
    .load(conn)?;
    let orphans: Vec<LeftOut> = diesel::sql_query(
        "SELECT s.number AS key, s.customer_external_id AS detail, count(*) OVER () AS total
         FROM dunning_stage_invoices s
         WHERE s.ok AND NOT EXISTS (
             SELECT 1 FROM customers c WHERE c.external_id = s.customer_external_id)
         ORDER BY s.ord LIMIT $1",
    )
    .bind::<BigInt, _>(keep)
    .load(conn)?;
    let conflicts: Vec<Conflict> = if billing {
        Vec::new()
    } else {
        diesel::sql_query(
            "SELECT i.number, i.status
             FROM dunning_stage_invoices s JOIN invoices i ON i.number = s.number
             WHERE s.ok AND s.status = 'unpaid' AND i.status <> 'unpaid'
             ORDER BY s.ord",
        )
        .load(conn)?
    };
    let orphans_total = total(&orphans);
    let rows = count_of(
        conn,
        "SELECT count(*) AS n FROM dunning_stage_invoices WHERE ok",
    )?
    .saturating_sub(orphans_total);
    // In RETURNING, i.status is the new status: still paid or void on a row that
    // said unpaid means the status was kept.
    let updated: Updated = diesel::sql_query(
        "WITH u AS (
             UPDATE invoices i SET
                 customer_id = c.id,
                 amount = s.amount,
                 due_date = s.due_date,
                 status = CASE WHEN s.status = 'unpaid' THEN i.status ELSE s.status END,
                 paid_at = CASE
                     WHEN s.status = 'paid' AND i.status = 'paid' THEN i.paid_at
                     WHEN s.status = 'paid' THEN now()
                     WHEN s.status = 'unpaid' THEN i.paid_at
                 END,
                 payment_url = CASE WHEN $1 THEN s.payment_url ELSE i.payment_url END,
                 from_billing = i.from_billing OR $1,
                 updated_at = now()
             FROM dunning_stage_invoices s
             JOIN customers c ON c.external_id = s.customer_external_id
             WHERE s.ok AND i.number = s.number
               AND ((i.customer_id, i.amount, i.due_date)
                        IS DISTINCT FROM (c.id, s.amount, s.due_date)
                    OR (s.status <> 'unpaid' AND i.status <> s.status)
                    OR ($1 AND (i.payment_url IS DISTINCT FROM s.payment_url
                                OR NOT i.from_billing)))
             RETURNING s.status = 'unpaid' AND i.status <> 'unpaid' AS kept)
         SELECT count(*) AS n, count(*) FILTER (WHERE kept) AS kept FROM u",
    )
    .bind::<Bool, _>(billing)
    .get_result(conn)?;
    let created = insert_in_bulk(conn, "invoices", |conn| {
        Ok(diesel::sql_query(
            "INSERT INTO invoices (number, customer_id, amount, due_date, status, paid_at, payment_url, from_billing)
             SELECT s.number, c.id, s.amount, s.due_date, s.status,
                    CASE WHEN s.status = 'paid' THEN now() END, s.payment_url, $1
             FROM dunning_stage_invoices s JOIN customers c ON c.external_id = s.customer_external_id
             WHERE s.ok AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.number = s.number)",
        )
        .bind::<Bool, _>(billing)
        .execute(conn)?)
    })?;
    let all_updated = usize::try_from(updated.n).unwrap_or(0);
    let counts = if billing {
        Counts {
            created,
            updated: all_updated,
            unchanged: rows.saturating_sub(created + all_updated),
            conflicts: 0,
        }
    } else {
        // A conflict counts once, as a conflict, whether its other columns changed or not.
        let kept_updated = usize::try_from(updated.kept).unwrap_or(0);
        Counts {
            created,
            updated: all_updated.saturating_sub(kept_updated),
            unchanged: rows.saturating_sub(
                created + all_updated + conflicts.len().saturating_sub(kept_updated),
            ),
            conflicts: conflicts.len(),
        }
    };
    Ok(Merged {
        counts,
        duplicates_total: total(&duplicates),
        duplicates,
        orphans_total,
        orphans,
        conflicts,
    })
}

/// After a full sync: marks `void` every unpaid invoice that an earlier sync wrote
/// and this one did not read (deleted or cancelled in billing). Returns how many.
pub fn void_missing(conn: &mut PgConnection) -> Result<usize> {
    Ok(diesel::sql_query(
        "UPDATE invoices i SET status = 'void', updated_at = now()
         WHERE i.from_billing AND i.status = 'unpaid'
           AND NOT EXISTS (SELECT 1 FROM dunning_stage_invoices s WHERE s.number = i.number)",
    )
    .execute(conn)?)
}

/// After a sync that wrote many rows (a first sync): fresh planner statistics for
/// the mirror, so that the run that follows does not plan on an empty table's.
pub fn analyze(conn: &mut PgConnection) -> Result<()> {
    diesel::sql_query("ANALYZE customers, invoices").execute(conn)?;
    Ok(())
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
