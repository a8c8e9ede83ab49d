//! The job queue: claim, and the final steps (sent, failed, skipped, retry later).
//!
//! Jobs are claimed in batches by setting their reservation in a short transaction of
//! their own, with `FOR UPDATE SKIP LOCKED`, so any number of workers on any number of
//! hosts never take the same job. The attempt is counted at claim time: a job that kills
//! its worker is not retried forever. A reservation older than `retry_after` is taken
//! as abandoned (the worker died) and the job can be claimed again.

use std::collections::HashMap;
use std::time::Duration;

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{
    Array, BigInt, Date as SqlDate, Double, Integer, Nullable, Text, Timestamptz,
};
use time::{Date, OffsetDateTime};

use dunning_core::{Channel, Stage};

use crate::Result;
use crate::prepared::cached;

/// A job this worker holds, with everything needed to send it.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedJob {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(sql_type = Text)]
    pub channel: String,
    /// Attempts including this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// The ledger row with its invoice and customer, read by the claim itself.
    #[diesel(embed)]
    pub delivery: Delivery,
}

impl ClaimedJob {
    /// The job's channel.
    pub fn channel(&self) -> Channel {
        self.channel.parse().unwrap_or(Channel::Email)
    }
}

/// A claim statement: the jobs whose ids the CTE `picked` (the argument) selects
/// are reserved for worker `$2` with the attempt counted, and returned with their
/// ledger row, invoice and customer in one round trip. One projection for fresh and
/// abandoned claims, so both send to the same contact.
macro_rules! claim_sql {
    ($picked:literal) => {
        concat!(
            "WITH picked AS (",
            $picked,
            "), claimed AS (
         UPDATE jobs j SET reserved_at = now(), reserved_by = $2, attempts = j.attempts + 1
         FROM picked p WHERE j.id = p.id
         RETURNING j.id, j.notification_id, j.channel, j.attempts
     )
     SELECT c.id, c.notification_id, c.channel, c.attempts,
            i.id AS invoice_id, i.number AS invoice_number, i.amount, i.due_date,
            cu.name AS customer_name, n.stage,
            -- the customer's current contact, so a corrected number is used on retry
            COALESCE(CASE c.channel WHEN 'email' THEN NULLIF(btrim(cu.email), '')
                                    ELSE NULLIF(btrim(cu.phone), '') END, n.recipient) AS recipient,
            n.status, n.run_date
     FROM claimed c
     JOIN notifications n ON n.id = c.notification_id
     JOIN invoices i ON i.id = n.invoice_id
     JOIN customers cu ON cu.id = i.customer_id"
        )
    };
}

/// Fresh jobs of each channel in `$3`, at most `$4` per channel, oldest first:
/// [`claim_batch`] for [`Pick::Fresh`]. One plain statement kept prepared (the
/// PL/pgSQL function of migration 000004 ran one statement per channel, each with
/// its own executor start, and saved and restored its settings on every call). Its
/// plan is made once per connection, as an ordered scan of `jobs_ready_channel` per
/// channel that stops after `$4` unlocked ready jobs (see
/// [`crate::db::QUEUE_SESSION_SETTINGS`]).
const CLAIM_FRESH: &str = claim_sql!(
    "SELECT r.id
         FROM unnest($3::text[]) AS ch(name)
         CROSS JOIN LATERAL (
             SELECT j.id FROM jobs j
             WHERE j.queue = $1 AND j.channel = ch.name AND j.available_at <= now()
               AND j.reserved_at IS NULL
             ORDER BY j.available_at, j.id
             LIMIT $4
             FOR UPDATE SKIP LOCKED
         ) r"
);

/// One job whose reservation is older than `$4` seconds (its worker died), from the
/// first channel of `$3` that has one: [`claim_batch`] for [`Pick::Abandoned`].
///
/// A reservation is never older than its job's availability (a claim needs
/// `available_at <= now()` and sets `reserved_at = now()`; whatever moves
/// `available_at` also clears the reservation), so only jobs available for longer
/// than `$4` are read: an index range that is empty while a fresh queue drains
/// (migration 000006). No `ORDER BY` outside: the channels are tried in order and
/// the outer `LIMIT` stops at the first found, before the next channel is read or
/// locked.
const CLAIM_ABANDONED: &str = claim_sql!(
    "SELECT r.id
         FROM unnest($3::text[]) AS ch(name)
         CROSS JOIN LATERAL (
             SELECT j.id FROM jobs j
             WHERE j.queue = $1 AND j.channel = ch.name
               AND j.available_at < now() - make_interval(secs => $4)
               AND j.reserved_at < now() - make_interval(secs => $4)
             ORDER BY j.available_at, j.id
             LIMIT 1
             FOR UPDATE SKIP LOCKED
         ) r
         LIMIT 1"
);

/// Limits that apply to WhatsApp claims, shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct WhatsAppLimits {
    /// At most one WhatsApp claim per interval, all workers together.
    pub min_interval: Duration,
    /// Messages allowed per local calendar month (sent plus in flight); `None`: no limit.
    pub monthly_quota: Option<u32>,
    /// The UTC instants where the current local month starts and ends.
    pub month: (OffsetDateTime, OffsetDateTime),
}

impl WhatsAppLimits {
    /// Whether WhatsApp claims must pass the shared gate (pacing or a quota), one
    /// job at a time. Without either, WhatsApp jobs are claimed in batches like email.
    pub fn gated(&self) -> bool {
        !(self.min_interval.is_zero() && self.monthly_quota.is_none())
    }
}

/// Why ready WhatsApp jobs were held back by a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The shared send slot is taken for `wait` more (measured on the database's
    /// clock, so the hosts' clocks need not agree).
    Paced { wait: Duration },
    /// This month's quota is used up (`used` sent or in flight).
    Quota { used: i64 },
}

/// What a WhatsApp claim found.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The job reserved for this worker, if one was ready and got through the gate.
    pub job: Option<ClaimedJob>,
    /// Set when a ready WhatsApp job had to wait.
    pub whatsapp_held: Option<Held>,
}

/// Which jobs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Up to this many jobs never reserved before, oldest first, split evenly between
    /// the channels asked for.
    Fresh(u32),
    /// One job whose reservation is older than `retry_after` (its worker died). It is
    /// taken back alone: it may be the job that killed its worker, and the jobs that
    /// shared its batch must not share its fate again.
    Abandoned,
}

/// Reserves ready jobs of `queue` on `channels` for `worker`, in one statement
/// (`FOR UPDATE SKIP LOCKED`: any number of workers never take the same job). The
/// attempt is counted now. Returns the jobs oldest first.
///
/// WhatsApp under pacing or a quota must go through [`claim_whatsapp`] instead.
pub fn claim_batch(
    conn: &mut PgConnection,
    queue: &str,
    worker: &str,
    retry_after: Duration,
    channels: &[Channel],
    pick: Pick,
) -> Result<Vec<ClaimedJob>> {
    let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let (limit, abandoned) = match pick {
        Pick::Fresh(n) => (n, false),
        Pick::Abandoned => (1, true),
    };
    if names.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let mut jobs: Vec<ClaimedJob> = if abandoned {
        cached(CLAIM_ABANDONED)
            .bind::<Text, _>(queue)
            .bind::<Text, _>(worker)
            .bind::<Array<Text>, _>(&names)
            .bind::<Double, _>(retry_after.as_secs_f64())
            .load(conn)?
    } else {
        // Split evenly between the channels.
        let each = limit.div_ceil(names.len() as u32).max(1);
        cached(CLAIM_FRESH)
            .bind::<Text, _>(queue)
            .bind::<Text, _>(worker)
            .bind::<Array<Text>, _>(&names)
            .bind::<Integer, _>(i32::try_from(each).unwrap_or(i32::MAX))
            .load(conn)?
    };
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

/// Claims one WhatsApp job through the shared gate: it must get the send slot
/// (`channel_state.next_send_at` moves `min_interval` ahead) and fit in this month's
/// quota (sent plus in flight). Slot, count and claim happen in one short
/// transaction that holds the slot row's lock throughout, so WhatsApp claims are
/// serialised and every job in flight has passed the gate: concurrent workers can
/// overrun neither pacing nor quota, and never hold each other back by counting a
/// job that has not passed yet. Nobody sleeps while holding a job. `whatsapp_held`
/// is set only when a WhatsApp job is ready but must wait.
pub fn claim_whatsapp(
    conn: &mut PgConnection,
    queue: &str,
    worker: &str,
    retry_after: Duration,
    wa: &WhatsAppLimits,
    pick: Pick,
) -> Result<Claim> {
    let pick = match pick {
        Pick::Fresh(_) => Pick::Fresh(1),
        Pick::Abandoned => Pick::Abandoned,
    };
    let claim_one = |conn: &mut PgConnection| -> Result<Option<ClaimedJob>> {
        Ok(
            claim_batch(conn, queue, worker, retry_after, &[Channel::WhatsApp], pick)?
                .into_iter()
                .next(),
        )
    };
    if !wa.gated() {
        return Ok(Claim {
            job: claim_one(conn)?,
            whatsapp_held: None,
        });
    }
    #[derive(QueryableByName)]
    struct Slot {
        #[diesel(sql_type = Double)]
        wait_secs: f64,
    }
    conn.transaction::<Claim, crate::StoreError, _>(|conn| {
        // Lock the slot row: WhatsApp claims are serialised from here to commit.
        diesel::sql_query(
            "SELECT 1 FROM channel_state WHERE channel = 'whatsapp' FOR UPDATE",
        )
        .execute(conn)?;
        // A new statement after taking the lock sees the last holder's slot. The
        // slot is compared with the clock now, not with now() (this transaction's
        // start): a claim that waited for the lock must not count its wait as
        // spacing, and must not see a zero interval as a slot taken in the future.
        let slot: Slot = diesel::sql_query(
            "SELECT CASE WHEN next_send_at <= c.t THEN 0
                         ELSE extract(epoch FROM LEAST(next_send_at, c.t + interval '1 hour') - c.t)
                    END::float8 AS wait_secs
             FROM channel_state CROSS JOIN (SELECT clock_timestamp() AS t) c
             WHERE channel = 'whatsapp'",
        )
        .get_result(conn)?;
        let mut held = None;
        if slot.wait_secs > 0.0 {
            held = Some(Held::Paced {
                wait: Duration::from_secs_f64(slot.wait_secs.clamp(0.0, 3600.0)),
            });
        } else if let Some(quota) = wa.monthly_quota {
            let used = whatsapp_used(conn, wa.month, retry_after)?;
            if used >= i64::from(quota) {
                held = Some(Held::Quota { used });
            }
        }
        if held.is_some() {
            let ready = whatsapp_ready(conn, queue, retry_after, pick)?;
            return Ok(Claim {
                job: None,
                whatsapp_held: held.filter(|_| ready),
            });
        }
        let job = claim_one(conn)?;
        if job.is_some() {
            // The next slot opens an interval after this claim, as the clock says
            // now (the claim itself may have waited for row locks).
            diesel::sql_query(
                "UPDATE channel_state SET next_send_at = clock_timestamp() + make_interval(secs => $1),
                        updated_at = now()
                 WHERE channel = 'whatsapp'",
            )
            .bind::<Double, _>(wa.min_interval.as_secs_f64())
            .execute(conn)?;
        }
        Ok(Claim {
            job,
            whatsapp_held: None,
        })
    })
}

/// Whether a WhatsApp job of `queue` is ready for a claim of kind `pick`.
fn whatsapp_ready(
    conn: &mut PgConnection,
    queue: &str,
    retry_after: Duration,
    pick: Pick,
) -> Result<bool> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ready: bool,
    }
    let query = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE queue = $1 AND channel = 'whatsapp'
             AND available_at <= now()
             AND CASE WHEN $2 THEN available_at < now() - make_interval(secs => $3)
                                   AND reserved_at < now() - make_interval(secs => $3)
                      ELSE reserved_at IS NULL END) AS ready",
    )
    .bind::<Text, _>(queue)
    .bind::<diesel::sql_types::Bool, _>(pick == Pick::Abandoned)
    .bind::<Double, _>(retry_after.as_secs_f64());
    let r: R = query.get_result(conn)?;
    Ok(r.ready)
}

/// WhatsApp messages that count against this month's quota: sent in the month, plus
/// jobs reserved by live workers right now (all of them passed the gate; a
/// reservation older than `retry_after` is counted again when it is taken back).
fn whatsapp_used(
    conn: &mut PgConnection,
    month: (OffsetDateTime, OffsetDateTime),
    retry_after: Duration,
) -> Result<i64, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT (SELECT count(*) FROM notifications
                  WHERE channel = 'whatsapp' AND status = 'sent' AND sent_at >= $1 AND sent_at < $2)
              + (SELECT count(*) FROM jobs
                  WHERE channel = 'whatsapp'
                    AND reserved_at >= now() - make_interval(secs => $3)) AS n",
    )
    .bind::<Timestamptz, _>(month.0)
    .bind::<Timestamptz, _>(month.1)
    .bind::<Double, _>(retry_after.as_secs_f64())
    .get_result(conn)?;
    Ok(n.n)
}

/// Everything needed to render and send one reminder.
#[derive(Debug, Clone, QueryableByName)]
pub struct Delivery {
    #[diesel(sql_type = BigInt)]
    pub notification_id: i64,
    #[diesel(sql_type = BigInt)]
    pub invoice_id: i64,
    #[diesel(sql_type = Text)]
    pub invoice_number: String,
    #[diesel(sql_type = BigInt)]
    pub amount: i64,
    #[diesel(sql_type = SqlDate)]
    pub due_date: Date,
    #[diesel(sql_type = Text)]
    pub customer_name: String,
    #[diesel(sql_type = Text)]
    pub stage: String,
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = SqlDate)]
    pub run_date: Date,
}

impl Delivery {
    /// The stage, parsed.
    pub fn stage(&self) -> Option<Stage> {
        self.stage.parse().ok()
    }
}

/// Why a reminder must not go out, checked right before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The invoice is no longer unpaid (`paid` or `void`).
    InvoiceSettled(String),
    /// The invoice already got a reminder on this channel today.
    AlreadyRemindedToday,
    /// This ledger row is already final (a duplicate job).
    AlreadyFinal(String),
    /// Another worker is sending to this invoice on this channel right now: try
    /// again in a moment (not a final state).
    Busy,
}

impl Hold {
    /// The reason recorded in the ledger.
    pub fn reason(&self) -> String {
        match self {
            Hold::InvoiceSettled(s) => format!("invoice is {s}"),
            Hold::AlreadyRemindedToday => "already reminded on this channel today".to_owned(),
            Hold::AlreadyFinal(s) => format!("already {s}"),
            Hold::Busy => "another worker is sending to this invoice on this channel".to_owned(),
        }
    }
}

/// Locks the invoices of a batch of ledger rows (`FOR SHARE`, in invoice order) and
/// says, per ledger row (by id), whether its reminder may go out.
///
/// Call inside a transaction on a connection of its own and keep it open while the
/// batch is sent (recording each outcome on another connection, so that every send
/// is durable at once): meanwhile a billing application's `UPDATE invoices SET
/// status = 'paid'` waits, so a payment committed before this check stops the
/// message and one committed after it comes after the message was handed over:
/// never a reminder after a committed payment. Keep such a transaction short (the
/// worker ends it after about a second and checks the rest of its batch anew).
pub fn hold_batch(
    conn: &mut PgConnection,
    notifications: &[i64],
    today_start: OffsetDateTime,
    today_end: OffsetDateTime,
) -> Result<HashMap<i64, Option<Hold>>> {
    #[derive(QueryableByName)]
    struct S {
        #[diesel(sql_type = BigInt)]
        notification_id: i64,
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Text)]
        own: String,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        sent_today: bool,
        #[diesel(sql_type = diesel::sql_types::Bool)]
        busy: bool,
    }
    let rows: Vec<S> = cached(
        "SELECT notification_id, status, own, sent_today, busy FROM dunning_hold_batch($1, $2, $3)",
    )
    .bind::<Array<BigInt>, _>(notifications)
    .bind::<Timestamptz, _>(today_start)
    .bind::<Timestamptz, _>(today_end)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|s| {
            let hold = if s.status != "unpaid" {
                Some(Hold::InvoiceSettled(s.status))
            } else if s.own != "queued" {
                Some(Hold::AlreadyFinal(s.own))
            } else if s.sent_today {
                Some(Hold::AlreadyRemindedToday)
            } else if s.busy {
                Some(Hold::Busy)
            } else {
                None
            };
            (s.notification_id, hold)
        })
        .collect())
}

/// Backends waiting for a lock this session holds (a billing `UPDATE invoices` held
/// up by [`hold_batch`]'s locks). Call it before ending a lock span that the same
/// worker follows with another one: see [`let_waiters_in`].
pub fn lock_waiters(conn: &mut PgConnection) -> Result<Vec<i32>> {
    #[derive(QueryableByName)]
    struct W {
        #[diesel(sql_type = Array<Integer>)]
        pids: Vec<i32>,
    }
    let w: W = cached(
        "SELECT COALESCE(array_agg(DISTINCT pid), '{}') AS pids FROM pg_locks
         WHERE NOT granted AND pg_backend_pid() = ANY (pg_blocking_pids(pid))",
    )
    .get_result(conn)?;
    Ok(w.pids)
}

/// After a lock span ended with `waiters` queued behind it: waits (at most
/// `limit`) until they got their rows, before the worker locks the next span.
///
/// A released row lock is not handed to the longest waiter: the waiter is only
/// woken, and a new `FOR SHARE` that comes first takes the row again. A worker that
/// starts its next span at once wins that race whenever its machine is busy, and a
/// payment could wait for a whole batch instead of one span.
///
/// A waiter counts as through when it waits for no lock and holds no row's tuple
/// lock (held from the moment it queued until its own update is done), on three
/// looks in a row: a woken waiter was once seen clear for a moment and then holding
/// the tuple lock again (a retried update). Best effort by design: the worst case
/// is the old one, the payment waits for the next span too.
pub fn let_waiters_in(conn: &mut PgConnection, waiters: &[i32], limit: Duration) -> Result<()> {
    if waiters.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct B {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        waiting: bool,
    }
    let started = std::time::Instant::now();
    let mut clear = 0;
    loop {
        let b: B = cached(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                            WHERE pid = ANY ($1) AND (NOT granted OR locktype = 'tuple')) AS waiting",
        )
        .bind::<Array<Integer>, _>(waiters)
        .get_result(conn)?;
        clear = if b.waiting { 0 } else { clear + 1 };
        if clear >= 3 || started.elapsed() >= limit {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The final state of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Sent { provider_message_id: Option<String> },
    Failed { error: String },
    Skipped { reason: String },
}

/// Records a final state in the ledger and deletes the job, atomically (one
/// statement, so it needs no transaction of its own).
pub fn finish(conn: &mut PgConnection, job: &ClaimedJob, outcome: &Final) -> Result<()> {
    finish_many(conn, &[Finished::of(job, outcome.clone())])
}

/// One job's final state, for [`finish_many`].
#[derive(Debug, Clone)]
pub struct Finished {
    pub notification_id: i64,
    pub job_id: i64,
    pub attempts: i32,
    pub outcome: Final,
}

impl Finished {
    /// The final state `outcome` of `job`.
    pub fn of(job: &ClaimedJob, outcome: Final) -> Self {
        Finished {
            notification_id: job.notification_id,
            job_id: job.id,
            attempts: job.attempts,
            outcome,
        }
    }
}

/// [`finish`] for several jobs in one statement: all are recorded, or none.
pub fn finish_many(conn: &mut PgConnection, items: &[Finished]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut notifications = Vec::with_capacity(items.len());
    let mut jobs = Vec::with_capacity(items.len());
    let mut statuses = Vec::with_capacity(items.len());
    let mut provider_ids: Vec<Option<&str>> = Vec::with_capacity(items.len());
    let mut errors: Vec<Option<&str>> = Vec::with_capacity(items.len());
    let mut attempts = Vec::with_capacity(items.len());
    for f in items {
        let (status, provider_id, error) = final_columns(&f.outcome);
        notifications.push(f.notification_id);
        jobs.push(f.job_id);
        statuses.push(status);
        provider_ids.push(provider_id);
        errors.push(error);
        attempts.push(f.attempts);
    }
    cached(FINISH_MANY)
        .bind::<Array<BigInt>, _>(&notifications)
        .bind::<Array<BigInt>, _>(&jobs)
        .bind::<Array<Text>, _>(&statuses)
        .bind::<Array<Nullable<Text>>, _>(&provider_ids)
        .bind::<Array<Nullable<Text>>, _>(&errors)
        .bind::<Array<Integer>, _>(&attempts)
        .execute(conn)?;
    Ok(())
}

/// [`finish_many`]: each ledger row updated and its job deleted, in one statement
/// (all or nothing). A plain statement kept prepared, not a PL/pgSQL call: the
/// function call, its settings and SPI cost more than the work. The data-modifying
/// CTE always runs to completion, whatever the outer statement reads.
const FINISH_MANY: &str = "WITH f AS (
         SELECT * FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::int[])
                    AS f(id, status, provider_message_id, error, attempts)
     ), done AS (
         UPDATE notifications n
            SET status = f.status, provider_message_id = f.provider_message_id,
                error = f.error, attempts = f.attempts, updated_at = now(),
                sent_at = CASE WHEN f.status = 'sent' THEN now() ELSE n.sent_at END
           FROM f
          WHERE n.id = f.id
     )
     DELETE FROM jobs WHERE id = ANY ($2)";

/// The ledger columns of a final state: status, provider message id, error.
fn final_columns(outcome: &Final) -> (&'static str, Option<&str>, Option<&str>) {
    match outcome {
        Final::Sent {
            provider_message_id,
        } => ("sent", provider_message_id.as_deref(), None),
        Final::Failed { error } => ("failed", None, Some(error.as_str())),
        Final::Skipped { reason } => ("skipped", None, Some(reason.as_str())),
    }
}

/// The UTC instants where the local calendar month containing `today` starts and
/// ends, for a zone at `offset`.
pub fn month_bounds(today: Date, offset: time::UtcOffset) -> (OffsetDateTime, OffsetDateTime) {
    let start = today.replace_day(1).expect("day 1 exists");
    let next = if start.month() == time::Month::December {
        Date::from_calendar_date(start.year() + 1, time::Month::January, 1)
    } else {
        Date::from_calendar_date(start.year(), start.month().next(), 1)
    }
    .expect("valid date");
    (
        start.midnight().assume_offset(offset),
        next.midnight().assume_offset(offset),
    )
}

/// Puts a job back for another attempt at `available_at`, keeping the error.
pub fn retry_later(
    conn: &mut PgConnection,
    job: &ClaimedJob,
    available_at: OffsetDateTime,
    error: &str,
) -> Result<()> {
    cached(
        "WITH noted AS (
             UPDATE notifications SET attempts = $4, error = $3, updated_at = now() WHERE id = $5
         )
         UPDATE jobs SET reserved_at = NULL, reserved_by = NULL, available_at = $2, last_error = $3
         WHERE id = $1",
    )
    .bind::<BigInt, _>(job.id)
    .bind::<Timestamptz, _>(available_at)
    .bind::<Text, _>(error)
    .bind::<Integer, _>(job.attempts)
    .bind::<BigInt, _>(job.notification_id)
    .execute(conn)?;
    Ok(())
}

/// Hands a job back without counting the attempt (its channel is paused, or the
/// worker is shutting down before it started).
pub fn release(
    conn: &mut PgConnection,
    job: &ClaimedJob,
    available_at: OffsetDateTime,
) -> Result<()> {
    release_many(conn, &[job.id], available_at)
}

/// [`release`] for several jobs at once (a batch cut short by a stop or a pause).
pub fn release_many(
    conn: &mut PgConnection,
    job_ids: &[i64],
    available_at: OffsetDateTime,
) -> Result<()> {
    if job_ids.is_empty() {
        return Ok(());
    }
    cached(
        "UPDATE jobs SET reserved_at = NULL, reserved_by = NULL, available_at = $2,
                attempts = GREATEST(attempts - 1, 0)
         WHERE id = ANY ($1)",
    )
    .bind::<Array<BigInt>, _>(job_ids)
    .bind::<Timestamptz, _>(available_at)
    .execute(conn)?;
    Ok(())
}

/// Shared state of one channel.
#[derive(Debug, Clone, QueryableByName)]
pub struct ChannelState {
    #[diesel(sql_type = Text)]
    pub channel: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub paused_until: Option<OffsetDateTime>,
    #[diesel(sql_type = Nullable<Text>)]
    pub pause_reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub paused: bool,
}

/// Both channels' state.
pub fn channel_states(conn: &mut PgConnection) -> Result<Vec<ChannelState>> {
    Ok(cached(
        "SELECT channel, paused_until, pause_reason, COALESCE(paused_until > now(), false) AS paused
         FROM channel_state ORDER BY channel",
    )
    .load(conn)?)
}

/// Pauses a channel for every worker until `until`. Returns true when this call
/// started the pause (so exactly one worker logs the error).
pub fn pause_channel(
    conn: &mut PgConnection,
    channel: Channel,
    until: OffsetDateTime,
    reason: &str,
) -> Result<bool> {
    let n = diesel::sql_query(
        "UPDATE channel_state SET paused_until = $2, pause_reason = $3, updated_at = now()
         WHERE channel = $1 AND (paused_until IS NULL OR paused_until <= now())",
    )
    .bind::<Text, _>(channel.as_str())
    .bind::<Timestamptz, _>(until)
    .bind::<Text, _>(reason)
    .execute(conn)?;
    Ok(n > 0)
}

/// Ends a channel's pause now (the operator fixed the cause). Returns the reason
/// the channel was paused for, or `None` when it was not paused.
pub fn resume_channel(conn: &mut PgConnection, channel: Channel) -> Result<Option<String>> {
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = Nullable<Text>)]
        reason: Option<String>,
    }
    let r: Option<R> = diesel::sql_query(
        "UPDATE channel_state c SET paused_until = NULL, updated_at = now()
         FROM (SELECT channel, pause_reason FROM channel_state WHERE channel = $1 FOR UPDATE) old
         WHERE c.channel = old.channel AND c.paused_until > now()
         RETURNING old.pause_reason AS reason",
    )
    .bind::<Text, _>(channel.as_str())
    .get_result(conn)
    .optional()?;
    Ok(r.map(|r| r.reason.unwrap_or_default()))
}

/// Registers or refreshes a worker's heartbeat.
pub fn heartbeat(
    conn: &mut PgConnection,
    id: &str,
    hostname: &str,
    pid: i32,
    queue: &str,
    jobs_done: i64,
) -> Result<()> {
    diesel::sql_query(
        "INSERT INTO workers (id, hostname, pid, queue, jobs_done) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET last_seen_at = now(), jobs_done = EXCLUDED.jobs_done, stopped_at = NULL",
    )
    .bind::<Text, _>(id)
    .bind::<Text, _>(hostname)
    .bind::<Integer, _>(pid)
    .bind::<Text, _>(queue)
    .bind::<BigInt, _>(jobs_done)
    .execute(conn)?;
    Ok(())
}

/// Marks a worker as stopped.
pub fn worker_stopped(conn: &mut PgConnection, id: &str, jobs_done: i64) -> Result<()> {
    diesel::sql_query(
        "UPDATE workers SET stopped_at = now(), last_seen_at = now(), jobs_done = $2 WHERE id = $1",
    )
    .bind::<Text, _>(id)
    .bind::<BigInt, _>(jobs_done)
    .execute(conn)?;
    Ok(())
}

/// The earliest time a job of `queue` becomes ready, if any job is waiting.
pub fn next_available(conn: &mut PgConnection, queue: &str) -> Result<Option<OffsetDateTime>> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        t: Option<OffsetDateTime>,
    }
    let n: N = diesel::sql_query(
        "SELECT min(available_at) AS t FROM jobs WHERE queue = $1 AND reserved_at IS NULL",
    )
    .bind::<Text, _>(queue)
    .get_result(conn)?;
    Ok(n.t)
}

/// Jobs of `channel` in `queue` that are ready now (not reserved or abandoned).
pub fn ready_count(
    conn: &mut PgConnection,
    queue: &str,
    channel: Channel,
    retry_after: Duration,
) -> Result<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT count(*) AS n FROM jobs WHERE queue = $1 AND channel = $2 AND available_at <= now()
           AND (reserved_at IS NULL OR reserved_at < now() - make_interval(secs => $3))",
    )
    .bind::<Text, _>(queue)
    .bind::<Text, _>(channel.as_str())
    .bind::<Double, _>(retry_after.as_secs_f64())
    .get_result(conn)?;
    Ok(n.n)
}
