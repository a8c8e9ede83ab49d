//! Idempotent upserts for `dunning-schedule import`.
//!
//! Rows with a key (a customer's external id, an invoice number) go the way of the
//! billing sync: streamed into the staging tables with `COPY`, then merged
//! set-based ([`super::mirror`]), so both follow one set of rules. An update only
//! happens when a value differs (`IS DISTINCT FROM`), so importing the same file
//! twice changes nothing, not even `updated_at`. Customers without an external id
//! are matched by email or phone, a batch of `unnest`ed arrays at a time.

use std::collections::HashSet;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use time::Date;

use super::mirror::{self, Origin, ReadInvoice};
use crate::Result;

/// Rows per statement.
pub const BATCH: usize = 5_000;

/// A validated customer row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRow {
    /// The billing system's id: the upsert key when present.
    pub external_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    /// Normalised (`628…`).
    pub phone: Option<String>,
}

/// A validated invoice row (from a CSV file or the billing source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    pub number: String,
    pub customer_external_id: String,
    /// Whole rupiah.
    pub amount: i64,
    pub due_date: Date,
    /// `unpaid`, `paid` or `void`.
    pub status: String,
    /// The payment link the billing source returned (sync only).
    pub payment_url: Option<String>,
}

/// What an upsert did. Every row is counted once: `created + updated + unchanged +
/// conflicts` is the number of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Rows whose status the database keeps against the file (see [`Conflict`]).
    pub conflicts: usize,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.conflicts += o.conflicts;
    }
}

/// An invoice the file says is `unpaid` while the database has it `paid` or `void`:
/// the database's status is kept (a payment recorded since the export, or an
/// operator's `invoice paid`, must not restart reminders). Its other columns are
/// updated from the file as usual.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Conflict {
    #[diesel(sql_type = Text)]
    pub number: String,
    /// `paid` or `void`: the status kept.
    #[diesel(sql_type = Text)]
    pub status: String,
}

/// Ids, names, emails and phones of customer rows, column by column.
type Columns<'a> = (
    Vec<i64>,
    Vec<&'a str>,
    Vec<Option<&'a str>>,
    Vec<Option<&'a str>>,
);

#[derive(QueryableByName)]
struct ExtId {
    #[diesel(sql_type = Text)]
    external_id: String,
}

#[derive(QueryableByName)]
struct Match {
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// The external ids among `ids` that some customer already has.
pub fn existing_external_ids(conn: &mut PgConnection, ids: &[String]) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(50_000) {
        let rows: Vec<ExtId> =
            diesel::sql_query("SELECT external_id FROM customers WHERE external_id = ANY($1)")
                .bind::<Array<Text>, _>(chunk)
                .load(conn)?;
        found.extend(rows.into_iter().map(|r| r.external_id));
    }
    Ok(found)
}

/// Upserts customers: by external id when the row has one (through the mirror's
/// staging and merge: the caller's transaction must have called
/// [`mirror::begin`]), otherwise onto an existing customer with the same email
/// address (any case) or phone number, else as a new customer. The rows must not
/// repeat a key. `progress` is told how many rows each batch finished.
pub fn upsert_customers(
    conn: &mut PgConnection,
    rows: &[CustomerRow],
    progress: &mut dyn FnMut(usize),
) -> Result<Counts> {
    let (keyed, loose): (Vec<&CustomerRow>, Vec<&CustomerRow>) =
        rows.iter().partition(|r| r.external_id.is_some());
    for (i, chunk) in keyed.chunks(BATCH).enumerate() {
        let staged: Vec<(u64, &CustomerRow)> = chunk
            .iter()
            .enumerate()
            .map(|(j, r)| ((i * BATCH + j + 1) as u64, *r))
            .collect();
        mirror::stage_customers(conn, &staged)?;
        progress(chunk.len());
    }
    let mut total = if keyed.is_empty() {
        Counts::default()
    } else {
        mirror::merge_customers(conn, 0)?.counts
    };
    for chunk in loose.chunks(BATCH) {
        let names: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
        let emails: Vec<Option<&str>> = chunk.iter().map(|r| r.email.as_deref()).collect();
        let phones: Vec<Option<&str>> = chunk.iter().map(|r| r.phone.as_deref()).collect();
        let matches: Vec<Match> = diesel::sql_query(
            "SELECT v.ord, m.id
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS v(email, phone, ord)
             CROSS JOIN LATERAL (
                 SELECT c.id FROM customers c
                 WHERE (v.email IS NOT NULL AND lower(btrim(c.email)) = lower(v.email))
                    OR (v.phone IS NOT NULL AND c.phone = v.phone)
                 ORDER BY c.id LIMIT 1
             ) m",
        )
        .bind::<Array<Nullable<Text>>, _>(&emails)
        .bind::<Array<Nullable<Text>>, _>(&phones)
        .load(conn)?;
        let mut matched: Vec<Option<i64>> = vec![None; chunk.len()];
        for m in matches {
            if let Some(slot) = usize::try_from(m.ord - 1)
                .ok()
                .and_then(|i| matched.get_mut(i))
            {
                *slot = Some(m.id);
            }
        }
        let pick = |want: bool| -> Columns<'_> {
            let mut out: Columns<'_> = Default::default();
            for (i, id) in matched.iter().enumerate() {
                if id.is_some() == want {
                    out.0.push(id.unwrap_or(0));
                    out.1.push(names[i]);
                    out.2.push(emails[i]);
                    out.3.push(phones[i]);
                }
            }
            out
        };
        let (ids, n, e, p) = pick(true);
        let updated = diesel::sql_query(
            "UPDATE customers c SET name = v.name, email = v.email, phone = v.phone, updated_at = now()
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(id, name, email, phone)
             WHERE c.id = v.id
               AND (c.name, c.email, c.phone) IS DISTINCT FROM (v.name, v.email, v.phone)",
        )
        .bind::<Array<BigInt>, _>(&ids)
        .bind::<Array<Text>, _>(&n)
        .bind::<Array<Nullable<Text>>, _>(&e)
        .bind::<Array<Nullable<Text>>, _>(&p)
        .execute(conn)?;
        let (_, n2, e2, p2) = pick(false);
        let created = diesel::sql_query(
            "INSERT INTO customers (name, email, phone)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
        )
        .bind::<Array<Text>, _>(&n2)
        .bind::<Array<Nullable<Text>>, _>(&e2)
        .bind::<Array<Nullable<Text>>, _>(&p2)
        .execute(conn)?;
        total += Counts {
            created,
            updated,
            unchanged: ids.len() - updated,
            conflicts: 0,
        };
        progress(chunk.len());
    }
    Ok(total)
}

/// Upserts invoices by number (through the mirror's staging and merge: the
/// caller's transaction must have called [`mirror::begin`]); the customer is
/// found by its external id (callers check beforehand that every one exists, and
/// that no number repeats). An invoice that is `paid` or `void` in the database
/// stays so when the file still says `unpaid`: an operator's `invoice paid` or a
/// payment recorded since the export must not restart reminders. Those rows are
/// returned as conflicts, so the operator hears about them.
pub fn upsert_invoices(
    conn: &mut PgConnection,
    rows: &[InvoiceRow],
    progress: &mut dyn FnMut(usize),
) -> Result<(Counts, Vec<Conflict>)> {
    if rows.is_empty() {
        return Ok((Counts::default(), Vec::new()));
    }
    for (i, chunk) in rows.chunks(BATCH).enumerate() {
        let staged: Vec<ReadInvoice<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(j, r)| ReadInvoice {
                ord: (i * BATCH + j + 1) as u64,
                number: &r.number,
                valid: Some(r),
            })
            .collect();
        mirror::stage_invoices(conn, &staged)?;
        progress(chunk.len());
    }
    let m = mirror::merge_invoices(conn, 0, Origin::File)?;
    Ok((m.counts, m.conflicts))
}
