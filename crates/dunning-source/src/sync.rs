//! `dunning-schedule sync`: the source's rows into Dunning's mirror.
//!
//! Full or incremental:
//! - **full** reads every row of both queries and voids the invoices an earlier
//!   sync wrote that the source no longer returns;
//! - **incremental** (when the invoices query returns `updated_at` and a full
//!   sync succeeded in the last 24 hours) reads only rows whose `updated_at` is at
//!   or after the last sync's newest one, less 5 minutes for transactions that
//!   committed late. It cannot see deleted rows: the daily full sync and the live
//!   re-check before each send cover those.
//!
//! Each row is checked in Rust ([`crate::rows`]) as it is read, the rows are
//! streamed into staging tables with `COPY`, and merged set-based at the end
//! ([`mirror`]): duplicates and unknown customers are found there and reported
//! with the rows rejected by the checks.
//!
//! The mirror is written in one transaction: a sync that fails half way (source
//! gone, bad query) changes nothing, and the failure is recorded in `billing_sync`.

use diesel::Connection;
use diesel::pg::PgConnection;
use dunning_store::ops::import::{CustomerRow, InvoiceRow};
use dunning_store::ops::mirror::{self, LeftOut, Origin, ReadInvoice, SyncCounts};
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use crate::client::{Header, Row, Source, Which};
use crate::error::SourceError;
use crate::rows;

/// Rows per chunk read from the source and written to the mirror.
pub const CHUNK: usize = 5_000;
/// Rejected rows kept for the report (the count covers all of them).
pub const KEEP_REJECTED: usize = 1_000;
/// Rows written from which the sync refreshes the mirror's planner statistics
/// (a first sync): the daily run that follows plans on them.
const ANALYZE_AFTER: i64 = 10_000;
/// How far back an incremental sync starts before the last watermark.
const LOOKBACK: Duration = Duration::minutes(5);
/// How old the last full sync may be for an incremental one.
const FULL_EVERY: Duration = Duration::hours(24);

/// Full or incremental.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Full,
    Incremental,
}

impl Mode {
    /// `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
        }
    }
}

/// A row left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// `customers` or `invoices`.
    pub query: &'static str,
    /// External id, invoice number, or `row N`.
    pub key: String,
    pub reason: String,
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SyncReport {
    pub mode: Mode,
    #[serde(flatten)]
    pub counts: SyncCounts,
    /// The first [`KEEP_REJECTED`] rejected rows.
    pub rejected: Vec<Rejected>,
    pub seconds: f64,
}

/// Syncs the source into the mirror and records the outcome in `billing_sync`.
/// `full` forces a full sync. `progress` is told the query and the rows read so far.
pub fn sync(
    src: &mut Source,
    conn: &mut PgConnection,
    full: bool,
    progress: &mut dyn FnMut(Which, u64),
) -> Result<SyncReport, SourceError> {
    let started = std::time::Instant::now();
    let id = mirror::start(conn, Mode::Full.as_str())?;
    match run(src, conn, full, progress) {
        Ok((mode, run, cw, iw)) => {
            mirror::finish(
                conn,
                id,
                mode.as_str(),
                Ok((&run.counts, cw.as_deref(), iw.as_deref())),
            )?;
            Ok(SyncReport {
                mode,
                counts: run.counts,
                rejected: run.rejected,
                seconds: started.elapsed().as_secs_f64(),
            })
        }
        Err((mode, e)) => {
            if let Err(record) = mirror::finish(conn, id, mode.as_str(), Err(&e.to_string())) {
                log::warn!("could not record the failed sync {id}: {record}");
            }
            Err(e)
        }
    }
}

/// Records a sync that could not even start (source unreachable, bad queries
/// file), so that `stats` and `doctor` show it.
pub fn record_failure(conn: &mut PgConnection, error: &str) -> Result<(), SourceError> {
    let id = mirror::start(conn, Mode::Full.as_str())?;
    mirror::finish(conn, id, Mode::Full.as_str(), Err(error))?;
    Ok(())
}

type Done = (Mode, Run, Option<String>, Option<String>);

fn run(
    src: &mut Source,
    conn: &mut PgConnection,
    full: bool,
    progress: &mut dyn FnMut(Which, u64),
) -> Result<Done, (Mode, SourceError)> {
    let now = OffsetDateTime::now_utc();
    let fail = |mode: Mode| move |e: SourceError| (mode, e);
    let previous = mirror::last_success(conn, false)
        .map_err(SourceError::from)
        .map_err(fail(Mode::Full))?;
    let last_full = mirror::last_success(conn, true)
        .map_err(SourceError::from)
        .map_err(fail(Mode::Full))?;
    let customers_h = src
        .checked_header(Which::Customers)
        .map_err(fail(Mode::Full))?;
    let invoices_h = src
        .checked_header(Which::Invoices)
        .map_err(fail(Mode::Full))?;
    let recent_full = last_full
        .as_ref()
        .and_then(|r| r.finished_at)
        .is_some_and(|t| now - t < FULL_EVERY);
    let mode = if !full && recent_full && invoices_h.has("updated_at") {
        Mode::Incremental
    } else {
        Mode::Full
    };
    let since = |h: &Header, mark: Option<&String>| -> Option<String> {
        if mode == Mode::Full || !h.has("updated_at") {
            return None;
        }
        let t = rows::date_time(mark?).ok()?;
        Some(rows::watermark_text(t - LOOKBACK))
    };
    let customers_since = since(
        &customers_h,
        previous
            .as_ref()
            .and_then(|p| p.customers_watermark.as_ref()),
    );
    let invoices_since = since(
        &invoices_h,
        previous
            .as_ref()
            .and_then(|p| p.invoices_watermark.as_ref()),
    );
    let run = conn
        .transaction::<_, SourceError, _>(|conn| {
            mirror::begin(conn)?;
            let mut run = Run {
                counts: SyncCounts::default(),
                rejected: Vec::new(),
                customers_mark: None,
                invoices_mark: None,
            };
            let customers = Query {
                which: Which::Customers,
                header: &customers_h,
                since: customers_since.as_deref(),
            };
            let mut r = Reading {
                src: &mut *src,
                conn,
                progress: &mut *progress,
            };
            run.customers(&mut r, &customers)?;
            let invoices = Query {
                which: Which::Invoices,
                header: &invoices_h,
                since: invoices_since.as_deref(),
            };
            run.invoices(&mut r, &invoices)?;
            let conn = r.conn;
            let t = std::time::Instant::now();
            if mode == Mode::Full {
                run.counts.invoices_void = count(mirror::void_missing(conn)?);
            }
            let c = &run.counts;
            let written = [
                c.customers_new,
                c.customers_changed,
                c.invoices_new,
                c.invoices_changed,
                c.invoices_void,
            ];
            if written.iter().map(|&n| i64::from(n)).sum::<i64>() >= ANALYZE_AFTER {
                mirror::analyze(conn)?;
            }
            log::debug!(
                "sync: void and statistics in {:.2}s",
                t.elapsed().as_secs_f64()
            );
            Ok(run)
        })
        .map_err(fail(mode))?;
    // A watermark carries over when this sync read nothing newer.
    let keep = |new: Option<PrimitiveDateTime>, old: Option<&String>, h: &Header| {
        if !h.has("updated_at") {
            return None;
        }
        let old = old.and_then(|o| rows::date_time(o).ok());
        new.max(old).map(rows::watermark_text)
    };
    let cw = keep(
        run.customers_mark,
        previous
            .as_ref()
            .and_then(|p| p.customers_watermark.as_ref()),
        &customers_h,
    );
    let iw = keep(
        run.invoices_mark,
        previous
            .as_ref()
            .and_then(|p| p.invoices_watermark.as_ref()),
        &invoices_h,
    );
    Ok((mode, run, cw, iw))
}

/// A count for `billing_sync` (saturating).
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// One of the two queries, as this sync reads it: its columns, and the
/// incremental start (None: every row).
struct Query<'a> {
    which: Which,
    header: &'a Header,
    since: Option<&'a str>,
}

/// What every read of a sync goes through: the source, the mirror's connection
/// (in the sync's transaction) and the progress callback.
struct Reading<'a> {
    src: &'a mut Source,
    conn: &'a mut PgConnection,
    progress: &'a mut dyn FnMut(Which, u64),
}

/// Checks one chunk of rows (the first at the given position) and stages them.
type Stage<'a> = dyn FnMut(&mut PgConnection, &[Row], u64) -> Result<(), SourceError> + 'a;

struct Run {
    counts: SyncCounts,
    rejected: Vec<Rejected>,
    customers_mark: Option<PrimitiveDateTime>,
    invoices_mark: Option<PrimitiveDateTime>,
}

impl Run {
    fn reject(&mut self, query: &'static str, key: String, reason: String) {
        if self.rejected.len() < KEEP_REJECTED {
            self.rejected.push(Rejected { query, key, reason });
        }
    }

    /// Reads the query chunk by chunk into `stage` (each row with its position,
    /// 1-based), telling `progress`; then logs how long reading and `merge` took.
    fn read_then_merge<M>(
        r: &mut Reading<'_>,
        q: &Query<'_>,
        stage: &mut Stage<'_>,
        merge: impl FnOnce(&mut PgConnection) -> Result<M, SourceError>,
    ) -> Result<M, SourceError> {
        let (which, started) = (q.which, std::time::Instant::now());
        let mut read: u64 = 0;
        let Reading {
            src,
            conn,
            progress,
        } = r;
        src.read(which, q.header, q.since, CHUNK, &mut |chunk: &[Row]| {
            stage(conn, chunk, read + 1)?;
            read += chunk.len() as u64;
            progress(which, read);
            Ok(())
        })?;
        let staged = started.elapsed();
        let merged = merge(conn)?;
        log::debug!(
            "sync: {read} {} rows read, checked and staged in {:.2}s, merged in {:.2}s",
            which.name(),
            staged.as_secs_f64(),
            (started.elapsed() - staged).as_secs_f64()
        );
        Ok(merged)
    }

    /// Rejects the rows a merge left out because an earlier row had their key.
    fn reject_duplicates(&mut self, query: &'static str, key: &str, rows: Vec<LeftOut>) {
        for d in rows {
            let reason = format!(
                "duplicate {key} {:?}: the query returns it more than once (the first row is used)",
                d.key
            );
            self.reject(query, d.key, reason);
        }
    }

    fn customers(&mut self, r: &mut Reading<'_>, q: &Query<'_>) -> Result<(), SourceError> {
        let h = q.header;
        let stage = &mut |conn: &mut PgConnection, chunk: &[Row], first: u64| {
            let mut good: Vec<(u64, CustomerRow)> = Vec::with_capacity(chunk.len());
            for (ord, row) in (first..).zip(chunk) {
                if let Some(t) = rows::updated_at(h, row) {
                    self.customers_mark = self.customers_mark.max(Some(t));
                }
                match rows::customer(h, row, ord) {
                    Ok(c) => good.push((ord, c)),
                    Err(bad) => {
                        self.counts.customers_rejected += 1;
                        self.reject("customers", bad.key, bad.reasons.join("; "));
                    }
                }
            }
            let staged: Vec<(u64, &CustomerRow)> = good.iter().map(|(n, c)| (*n, c)).collect();
            Ok(mirror::stage_customers(conn, &staged)?)
        };
        let m = Self::read_then_merge(r, q, stage, |conn| {
            Ok(mirror::merge_customers(conn, KEEP_REJECTED)?)
        })?;
        self.counts.customers_new += count(m.counts.created);
        self.counts.customers_changed += count(m.counts.updated);
        self.counts.customers_unchanged += count(m.counts.unchanged);
        self.counts.customers_rejected += count(m.duplicates_total);
        self.reject_duplicates("customers", "external_id", m.duplicates);
        Ok(())
    }

    fn invoices(&mut self, r: &mut Reading<'_>, q: &Query<'_>) -> Result<(), SourceError> {
        let h = q.header;
        let stage = &mut |conn: &mut PgConnection, chunk: &[Row], first: u64| {
            let mut checked: Vec<(u64, Option<&str>, Option<InvoiceRow>)> =
                Vec::with_capacity(chunk.len());
            for (ord, row) in (first..).zip(chunk) {
                // Every number read counts as present in the source, even on a
                // rejected row: a malformed amount must not void the invoice.
                let number = h
                    .get(row, "number")
                    .map(str::trim)
                    .filter(|n| !n.is_empty());
                match rows::invoice(h, row, ord) {
                    Ok((inv, updated)) => {
                        self.invoices_mark = self.invoices_mark.max(updated);
                        checked.push((ord, number, Some(inv)));
                    }
                    Err(bad) => {
                        self.counts.invoices_rejected += 1;
                        self.reject("invoices", bad.key, bad.reasons.join("; "));
                        checked.push((ord, number, None));
                    }
                }
            }
            let staged: Vec<ReadInvoice<'_>> = checked
                .iter()
                .filter_map(|(ord, number, valid)| {
                    Some(ReadInvoice {
                        ord: *ord,
                        number: (*number)?,
                        valid: valid.as_ref(),
                    })
                })
                .collect();
            Ok(mirror::stage_invoices(conn, &staged)?)
        };
        let m = Self::read_then_merge(r, q, stage, |conn| {
            Ok(mirror::merge_invoices(
                conn,
                KEEP_REJECTED,
                Origin::Billing,
            )?)
        })?;
        self.counts.invoices_new += count(m.counts.created);
        self.counts.invoices_changed += count(m.counts.updated);
        self.counts.invoices_unchanged += count(m.counts.unchanged);
        self.counts.invoices_rejected += count(m.duplicates_total + m.orphans_total);
        self.reject_duplicates("invoices", "number", m.duplicates);
        for o in m.orphans {
            let ext = o.detail.unwrap_or_default();
            self.reject(
                "invoices",
                o.key,
                format!("unknown customer {ext:?}: the customers query returns no valid row with this external_id"),
            );
        }
        Ok(())
    }
}
