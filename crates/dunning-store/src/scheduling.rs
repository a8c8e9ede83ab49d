//! The scheduler's one statement: select due invoices, write ledger rows and jobs.
//!
//! Exactly-once is the database's job, not ours: every candidate is inserted with
//! `ON CONFLICT DO NOTHING` against two unique indexes (invoice·stage·channel·day and
//! invoice·channel·day), so reruns, overlapping cron runs and runs on two hosts at
//! once can only ever create each reminder once. There is no check-then-insert.

use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Date as SqlDate, Integer, Nullable, Text};
use time::{Date, Duration};

use dunning_core::Stage;
use dunning_core::config::Grouping;

use crate::Result;
use crate::schema::schedule_runs;

/// What the scheduler did (or, in a dry run, would do) with one invoice on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A job was queued.
    Dispatched,
    /// This stage was already sent on this channel (an earlier run).
    AlreadySent,
    /// This stage is already waiting in the queue.
    AlreadyQueued,
    /// This stage already failed for good; `dunning-schedule retry` re-sends it.
    AlreadyFailed,
    /// This stage was already skipped (paid meanwhile, no contact, …).
    AlreadySkipped,
    /// Another stage already reminded this invoice on this channel today.
    RemindedToday,
    /// A concurrent run inserted the same reminder a moment earlier.
    TakenByConcurrentRun,
    /// The customer has neither an email address nor a phone number (recorded as skipped).
    NoContact,
    /// A pause of the customer or the invoice covers the run date (nothing recorded).
    HeldPaused,
    /// The customer opted out of this channel (nothing recorded).
    HeldOptedOut,
}

impl Outcome {
    fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "dispatched" => Outcome::Dispatched,
            "already_sent" => Outcome::AlreadySent,
            "already_queued" => Outcome::AlreadyQueued,
            "already_failed" => Outcome::AlreadyFailed,
            "already_skipped" => Outcome::AlreadySkipped,
            "reminded_today" => Outcome::RemindedToday,
            "no_contact" => Outcome::NoContact,
            "held_paused" => Outcome::HeldPaused,
            "held_opted_out" => Outcome::HeldOptedOut,
            "concurrent" => Outcome::TakenByConcurrentRun,
            // `already_<status>` of a ledger status this version does not know.
            other => {
                return Err(crate::StoreError::UnknownValue {
                    column: "notifications.status",
                    value: other.trim_start_matches("already_").to_owned(),
                });
            }
        })
    }

    /// The reason shown after "Skipped", as in the seed's `(already sent)`.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Dispatched => "dispatched",
            Outcome::AlreadySent => "already sent",
            Outcome::AlreadyQueued => "already queued",
            Outcome::AlreadyFailed => "already failed; use `dunning-schedule retry` to send again",
            Outcome::AlreadySkipped => "already skipped",
            Outcome::RemindedToday => "already reminded today",
            Outcome::TakenByConcurrentRun => "already queued by a concurrent run",
            Outcome::NoContact => "customer has no email address and no phone number",
            Outcome::HeldPaused => "paused; `dunning-schedule pauses` lists pauses",
            Outcome::HeldOptedOut => "customer opted out of this channel",
        }
    }
}

/// One invoice, as the scheduler saw it: the outcome on each channel it was
/// considered for (`None`: the customer has no contact for that channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stage: Stage,
    /// The day this stage fell on (the run date, or a missed day for catch-up).
    pub stage_date: Date,
    pub due_date: Date,
    pub invoice_number: String,
    pub customer_name: String,
    pub email: Option<Outcome>,
    pub whatsapp: Option<Outcome>,
}

impl Line {
    /// True when at least one channel got a job.
    pub fn dispatched(&self) -> bool {
        self.email == Some(Outcome::Dispatched) || self.whatsapp == Some(Outcome::Dispatched)
    }
}

/// How many invoices of one stage day ended with one combination of channel outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub stage: Stage,
    pub stage_date: Date,
    pub email: Option<Outcome>,
    pub whatsapp: Option<Outcome>,
    pub invoices: i64,
}

impl Group {
    /// True when at least one channel got a job.
    pub fn dispatched(&self) -> bool {
        self.email == Some(Outcome::Dispatched) || self.whatsapp == Some(Outcome::Dispatched)
    }
}

/// What to schedule.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The local date of this run.
    pub run_date: Date,
    pub stages: &'a [Stage],
    /// Days before `run_date` on which a run that did not happen is caught up.
    pub catch_up_days: u32,
    pub queue: &'a str,
    /// Do everything, then roll back: the report shows what a real run would do.
    pub dry_run: bool,
    /// Return one [`Line`] per invoice and channel (otherwise only [`Count`]s).
    pub lines: bool,
    /// Recorded in `schedule_runs`.
    pub host: &'a str,
    /// A run for another day than the local today (`--date`): recorded with
    /// `schedule_runs.backfill`, so it never counts as the day's cron run.
    pub backfill: bool,
    /// One job per ledger row, or one per customer and channel (`DUNNING_GROUP`).
    pub group: Grouping,
}

/// The scheduler's result.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Days in the catch-up window on which no run happened.
    pub missed_days: Vec<Date>,
    /// Quiet days in the catch-up window caught up by this run.
    pub quiet_days: Vec<Date>,
    /// Per-invoice lines (when requested), ordered by stage day, stage, number.
    pub lines: Vec<Line>,
    /// Invoice counts per stage day and outcome combination (always filled).
    pub groups: Vec<Group>,
    /// Messages queued (jobs) per channel: one per invoice, or one per customer
    /// with `DUNNING_GROUP=customer`. What the WhatsApp quota is counted in.
    pub messages: Messages,
    /// The same messages per stage day: a message carrying reminders of several
    /// stages counts for the stage of its job's (lead) row, so these add up to
    /// [`Report::messages`].
    pub stage_messages: Vec<StageMessages>,
}

/// Messages a run queued (or, dry, would queue) per channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Messages {
    pub email: i64,
    pub whatsapp: i64,
}

/// Messages queued for one stage day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageMessages {
    pub stage: Stage,
    pub stage_date: Date,
    pub messages: Messages,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Integer)]
    off: i32,
    #[diesel(sql_type = SqlDate)]
    stage_date: Date,
    #[diesel(sql_type = SqlDate)]
    due_date: Date,
    #[diesel(sql_type = Text)]
    number: String,
    #[diesel(sql_type = Text)]
    customer_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    whatsapp: Option<String>,
}

#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = Integer)]
    off: i32,
    #[diesel(sql_type = SqlDate)]
    stage_date: Date,
    #[diesel(sql_type = Nullable<Text>)]
    email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    whatsapp: Option<String>,
    #[diesel(sql_type = BigInt)]
    invoices: i64,
}

#[derive(QueryableByName)]
struct DateRow {
    #[diesel(sql_type = Nullable<SqlDate>)]
    d: Option<Date>,
}

/// The candidates, written into a temporary table before anything is inserted.
/// `$1..$3` the plan (stage label, offset, stage day), `$4` the run date, `$5` per
/// plan row: true for a day that is neither missed nor the run date, planned only
/// for invoices whose pause covered that day and has ended (catch-up after a pause).
///
/// - `ended`: the customers and invoices whose pause covered a day planned only for
///   them (a pause that has ended).
/// - `hits`: unpaid invoices whose stage falls on a planned day; a "will be due"
///   stage (offset ≤ 0) is never sent once the due date has passed. Invoices made
///   by `test-dunning` / `test-whatsapp` (`is_test`) are never selected.
/// - `chosen`: per invoice, only the newest applicable stage (catch-up sends one
///   reminder, not a backlog).
/// - `cand`: one row per channel the customer can be reached on; a customer with
///   neither contact gets rows with a NULL recipient, recorded as skipped.
/// - the columns: what the ledger already holds for this invoice, stage and channel
///   (any day), or for this invoice and channel today; and whether an opt-out of the
///   channel or a pause covering the run date holds it (`hold`: nothing is written).
///   `inserted` is filled by [`INSERT`].
///
/// Why a table and not one statement: the ledger look-ups must not run while the
/// same statement inserts into the ledger. Earlier this was one statement, and with
/// fresh statistics the planner checked each candidate by scanning `notifications`,
/// whose heap grew with every row the statement inserted (quadratic: 200,000
/// invoices took 91 s instead of 7 s), which took planner switches to avoid.
const CANDIDATES: &str = "
CREATE TEMPORARY TABLE schedule_candidates ON COMMIT DROP AS
WITH plan AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::date[], $5::bool[]) AS p(stage, off, stage_date, after_pause)
), ended AS (
    SELECT ps.customer_id, ps.invoice_id, p.stage_date
    FROM plan p
    JOIN pauses ps ON ps.starts_on <= p.stage_date AND ps.until >= p.stage_date AND ps.until < $4
    WHERE p.after_pause
), hits AS (
    SELECT i.id AS invoice_id, i.customer_id, i.number, i.due_date, p.stage, p.off, p.stage_date
    FROM plan p
    JOIN invoices i ON i.status = 'unpaid' AND i.due_date = p.stage_date - p.off AND NOT i.is_test
    WHERE NOT (p.off <= 0 AND i.due_date < $4)
      AND (NOT p.after_pause
           OR (i.customer_id, p.stage_date) IN (SELECT customer_id, stage_date FROM ended)
           OR (i.id, p.stage_date) IN (SELECT invoice_id, stage_date FROM ended))
), chosen AS (
    SELECT DISTINCT ON (invoice_id) * FROM hits ORDER BY invoice_id, stage_date DESC
), cand AS (
    SELECT h.*, cu.name AS customer_name, ch.channel, ch.recipient
    FROM chosen h
    JOIN customers cu ON cu.id = h.customer_id
    CROSS JOIN LATERAL (VALUES ('email', NULLIF(btrim(cu.email), '')),
                               ('whatsapp', NULLIF(btrim(cu.phone), ''))) AS ch(channel, recipient)
    WHERE ch.recipient IS NOT NULL
       OR (NULLIF(btrim(cu.email), '') IS NULL AND NULLIF(btrim(cu.phone), '') IS NULL)
)
SELECT c.*,
    (SELECT n.status FROM notifications n
      WHERE n.invoice_id = c.invoice_id AND n.stage = c.stage AND n.channel = c.channel
        AND (n.due_date IS NULL OR n.due_date = c.due_date)
      ORDER BY n.run_date DESC LIMIT 1) AS prev_status,
    EXISTS (SELECT 1 FROM notifications n
      WHERE n.invoice_id = c.invoice_id AND n.channel = c.channel AND n.run_date = $4) AS today,
    CASE WHEN (c.customer_id, c.channel) IN (SELECT customer_id, channel FROM opt_outs) THEN 'opted_out'
         WHEN c.customer_id IN (SELECT customer_id FROM pauses WHERE starts_on <= $4 AND until >= $4)
           OR c.invoice_id IN (SELECT invoice_id FROM pauses WHERE starts_on <= $4 AND until >= $4)
         THEN 'paused'
    END AS hold,
    NULL::text AS inserted, NULL::bigint AS notification_id
FROM cand c
";

/// The ledger rows and jobs for the candidates nothing holds back (`$1` the run date,
/// `$2` the queue; `$3` true: no jobs, [`GROUP_JOBS`] queues them per customer).
/// `ON CONFLICT DO NOTHING` makes a concurrent run's rows win; each candidate that
/// got a row is marked with its status and the row's id.
const INSERT: &str = "
WITH ins AS (
    INSERT INTO notifications (invoice_id, customer_id, stage, channel, run_date, due_date, recipient, status, error)
    SELECT invoice_id, customer_id, stage, channel, $1, due_date, recipient,
           CASE WHEN recipient IS NULL THEN 'skipped' ELSE 'queued' END,
           CASE WHEN recipient IS NULL THEN 'customer has no email address and no phone number' END
    FROM schedule_candidates
    WHERE prev_status IS NULL AND NOT today AND hold IS NULL
    ON CONFLICT DO NOTHING
    RETURNING id, invoice_id, channel, status
), queued AS (
    INSERT INTO jobs (queue, notification_id, channel)
    SELECT $2, id, channel FROM ins WHERE status = 'queued' AND NOT $3
)
UPDATE schedule_candidates c SET inserted = ins.status, notification_id = ins.id
FROM ins WHERE ins.invoice_id = c.invoice_id AND ins.channel = c.channel
";

/// `DUNNING_GROUP=customer`: the rows this run queued, per customer and channel, go
/// out as one message. Each group of two or more is linked to its lead row (the
/// lowest id, which points at itself) and one job per group names the lead (`$1` the
/// queue). Rows of one customer queued by an earlier run today stay in their own
/// message: a row is never moved into another message once its job exists.
const GROUP_JOBS: &str = "
WITH g AS (
    SELECT notification_id AS id, channel,
           min(notification_id) OVER w AS lead, count(*) OVER w AS size
    FROM schedule_candidates
    WHERE inserted = 'queued'
    WINDOW w AS (PARTITION BY customer_id, channel)
), linked AS (
    UPDATE notifications n SET group_id = g.lead FROM g WHERE n.id = g.id AND g.size > 1
)
INSERT INTO jobs (queue, notification_id, channel)
SELECT $1, id, channel FROM g WHERE id = lead
";

#[derive(QueryableByName)]
struct MessagesRow {
    #[diesel(sql_type = Integer)]
    off: i32,
    #[diesel(sql_type = SqlDate)]
    stage_date: Date,
    #[diesel(sql_type = BigInt)]
    email: i64,
    #[diesel(sql_type = BigInt)]
    whatsapp: i64,
}

/// The messages queued per stage day and channel (`$1` true: one per customer and
/// channel, counted at the stage of its lead row, the one the job points at).
const MESSAGES: &str = "
SELECT off, stage_date,
       count(*) FILTER (WHERE channel = 'email') AS email,
       count(*) FILTER (WHERE channel = 'whatsapp') AS whatsapp
FROM (SELECT off, stage_date, channel, notification_id,
             min(notification_id) OVER (
                 PARTITION BY CASE WHEN $1 THEN customer_id ELSE invoice_id END, channel) AS lead
      FROM schedule_candidates WHERE inserted = 'queued') q
WHERE notification_id = lead
GROUP BY off, stage_date ORDER BY stage_date, off
";

/// One row per invoice with the outcome on each channel; finished by the caller's
/// `SELECT … FROM per_invoice`.
const OUTCOMES: &str = "
WITH result AS (
    SELECT off, stage_date, due_date, number, customer_name, channel, invoice_id,
        CASE
            WHEN inserted = 'queued' THEN 'dispatched'
            WHEN inserted = 'skipped' THEN 'no_contact'
            WHEN prev_status IS NOT NULL THEN 'already_' || prev_status
            WHEN today THEN 'reminded_today'
            WHEN hold IS NOT NULL THEN 'held_' || hold
            ELSE 'concurrent'
        END AS outcome
    FROM schedule_candidates
), per_invoice AS (
    SELECT off, stage_date, due_date, number, customer_name,
        max(outcome) FILTER (WHERE channel = 'email') AS email,
        max(outcome) FILTER (WHERE channel = 'whatsapp') AS whatsapp
    FROM result
    GROUP BY invoice_id, off, stage_date, due_date, number, customer_name
)
";

fn outcome(s: Option<String>) -> Result<Option<Outcome>> {
    s.as_deref().map(Outcome::from_db).transpose()
}

/// Days in `[run_date - n, run_date)` with no recorded run, ignoring days before the
/// first regular (not backfill) run ever recorded: a new installation has nothing to
/// catch up, and neither has one whose only runs were backfills. A day that was
/// backfilled counts as run.
pub fn missed_days(conn: &mut PgConnection, run_date: Date, n: u32) -> Result<Vec<Date>> {
    Ok(catch_up(conn, run_date, n, &[])?.missed)
}

/// The days of a catch-up window to plan again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    /// Working days with no recorded run (a run was expected: `doctor` reports them).
    pub missed: Vec<Date>,
    /// Quiet days with no recorded run that no regular run has followed yet: no run
    /// was expected, and the first working day after them catches them up.
    pub quiet: Vec<Date>,
}

/// Splits the days of `[run_date - n, run_date)` without a recorded run into
/// missed working days and quiet days still to catch up. `quiet_days` are the
/// quiet days the caller's calendar has in the window. Days before the first
/// regular (not backfill) run ever recorded are ignored: a new installation has
/// nothing to catch up, and neither has one whose only runs were backfills. A day
/// that was backfilled counts as run.
pub fn catch_up(
    conn: &mut PgConnection,
    run_date: Date,
    n: u32,
    quiet_days: &[Date],
) -> Result<CatchUp> {
    if n == 0 {
        return Ok(CatchUp::default());
    }
    let first: DateRow = diesel::sql_query(
        "SELECT min(run_date) AS d FROM schedule_runs WHERE finished_at IS NOT NULL AND NOT backfill",
    )
    .get_result(conn)?;
    let Some(first) = first.d else {
        return Ok(CatchUp::default());
    };
    let Some(from) = run_date.checked_sub(Duration::days(i64::from(n))) else {
        return Ok(CatchUp::default());
    };
    let runs: Vec<(Date, bool)> = schedule_runs::table
        .filter(schedule_runs::run_date.ge(from))
        .filter(schedule_runs::run_date.lt(run_date))
        .filter(schedule_runs::finished_at.is_not_null())
        .select((schedule_runs::run_date, schedule_runs::backfill))
        .distinct()
        .load(conn)?;
    let mut out = CatchUp::default();
    let mut d = from.max(first);
    while d < run_date {
        if !runs.iter().any(|(r, _)| *r == d) {
            if !quiet_days.contains(&d) {
                out.missed.push(d);
            } else if !runs.iter().any(|(r, backfill)| !backfill && *r > d) {
                // A regular run after the quiet day caught it up already.
                out.quiet.push(d);
            }
        }
        d = d.next_day().expect("date in range");
    }
    Ok(out)
}

/// Days of the catch-up window that were not missed but on which a pause that has
/// since ended held reminders: their stages are planned for the paused invoices
/// only, so catch-up picks the newest due stage once the pause is over. Empty (and
/// the plan unchanged) when no pause ended within the window.
fn days_after_pause(
    conn: &mut PgConnection,
    run_date: Date,
    n: u32,
    missed: &[Date],
) -> Result<Vec<Date>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let from = run_date - Duration::days(i64::from(n));
    let ended: DateRow = diesel::sql_query(
        "SELECT min(starts_on) AS d FROM pauses WHERE until >= $1 AND until < $2",
    )
    .bind::<SqlDate, _>(from)
    .bind::<SqlDate, _>(run_date)
    .get_result(conn)?;
    let Some(first) = ended.d else {
        return Ok(Vec::new());
    };
    let mut days = Vec::new();
    let mut d = from.max(first);
    while d < run_date {
        if !missed.contains(&d) {
            days.push(d);
        }
        d = d.next_day().expect("date in range");
    }
    Ok(days)
}

/// Runs the scheduler for one day, in one transaction (rolled back for a dry run).
pub fn schedule(conn: &mut PgConnection, req: &Request<'_>) -> Result<Report> {
    schedule_around(conn, req, &[])
}

/// [`schedule`] with the quiet days (quiet weekdays, holidays) of the catch-up
/// window: no run is expected on them, and each one that no regular run has
/// followed yet is caught up like a missed day (see [`catch_up`]), under the same
/// rule: per invoice only the newest due stage.
pub fn schedule_around(
    conn: &mut PgConnection,
    req: &Request<'_>,
    quiet_days: &[Date],
) -> Result<Report> {
    let outcome = conn.transaction::<_, DryRun, _>(|conn| {
        // The one setting kept: JIT compilation. The statements' estimated costs
        // pass `jit_above_cost` from about 100,000 invoices, and compiling them with
        // LLVM (where the server has JIT) costs ~250 ms that an index-driven run of
        // a second never earns back (200,000 invoices, EXPLAIN ANALYZE of the
        // candidates: 1,248 ms with JIT, of which 238 ms compiling; 925 ms without).
        // It changes no plan; the plans need no switch (docs/benchmarks.md).
        diesel::sql_query("SET LOCAL jit = off").execute(conn)?;
        let window = catch_up(conn, req.run_date, req.catch_up_days, quiet_days)?;
        let mut again: Vec<Date> = window.missed.iter().chain(&window.quiet).copied().collect();
        again.sort();
        let after_pause = days_after_pause(conn, req.run_date, req.catch_up_days, &again)?;
        let mut labels = Vec::new();
        let mut offsets = Vec::new();
        let mut days = Vec::new();
        let mut extra = Vec::new();
        let planned = again.iter().map(|d| (*d, false));
        let planned = planned.chain(after_pause.iter().map(|d| (*d, true)));
        for (day, is_extra) in planned.chain(std::iter::once((req.run_date, false))) {
            for stage in req.stages {
                labels.push(stage.to_string());
                offsets.push(stage.offset_days());
                days.push(day);
                extra.push(is_extra);
            }
        }
        let mut report = Report {
            missed_days: window.missed,
            quiet_days: window.quiet,
            ..Report::default()
        };
        diesel::sql_query(CANDIDATES)
            .bind::<Array<Text>, _>(labels)
            .bind::<Array<Integer>, _>(offsets)
            .bind::<Array<SqlDate>, _>(days)
            .bind::<SqlDate, _>(req.run_date)
            .bind::<Array<diesel::sql_types::Bool>, _>(extra)
            .execute(conn)?;
        // One candidate per invoice and channel. The index also lets `INSERT` find
        // each candidate it marks without depending on the planner's guess of the
        // size of a table that has no statistics (a join it guesses wrong is quadratic).
        diesel::sql_query("CREATE UNIQUE INDEX ON schedule_candidates (invoice_id, channel)")
            .execute(conn)?;
        let grouped = req.group == Grouping::Customer;
        diesel::sql_query(INSERT)
            .bind::<SqlDate, _>(req.run_date)
            .bind::<Text, _>(req.queue.to_owned())
            .bind::<diesel::sql_types::Bool, _>(grouped)
            .execute(conn)?;
        if grouped {
            diesel::sql_query(GROUP_JOBS)
                .bind::<Text, _>(req.queue.to_owned())
                .execute(conn)?;
        }
        let per_stage: Vec<MessagesRow> = diesel::sql_query(MESSAGES)
            .bind::<diesel::sql_types::Bool, _>(grouped)
            .load(conn)?;
        for m in per_stage {
            report.messages.email += m.email;
            report.messages.whatsapp += m.whatsapp;
            report.stage_messages.push(StageMessages {
                stage: Stage::from_offset(m.off),
                stage_date: m.stage_date,
                messages: Messages {
                    email: m.email,
                    whatsapp: m.whatsapp,
                },
            });
        }
        let statement = |tail: &str| diesel::sql_query(format!("{OUTCOMES} {tail}"));
        if req.lines {
            let rows: Vec<Row> = statement(
                "SELECT off, stage_date, due_date, number, customer_name, email, whatsapp
                 FROM per_invoice ORDER BY stage_date, off, number",
            )
            .load(conn)?;
            report.lines = rows
                .into_iter()
                .map(|r| {
                    Ok(Line {
                        stage: Stage::from_offset(r.off),
                        stage_date: r.stage_date,
                        due_date: r.due_date,
                        invoice_number: r.number,
                        customer_name: r.customer_name,
                        email: outcome(r.email)?,
                        whatsapp: outcome(r.whatsapp)?,
                    })
                })
                .collect::<Result<_>>()?;
            report.groups = group_lines(&report.lines);
        } else {
            let rows: Vec<GroupRow> = statement(
                "SELECT off, stage_date, email, whatsapp, count(*) AS invoices
                 FROM per_invoice GROUP BY 1, 2, 3, 4 ORDER BY 2, 1",
            )
            .load(conn)?;
            report.groups = rows
                .into_iter()
                .map(|r| {
                    Ok(Group {
                        stage: Stage::from_offset(r.off),
                        stage_date: r.stage_date,
                        email: outcome(r.email)?,
                        whatsapp: outcome(r.whatsapp)?,
                        invoices: r.invoices,
                    })
                })
                .collect::<Result<_>>()?;
        }
        if req.dry_run {
            return Err(DryRun::RollBack(Box::new(report)));
        }
        let sum = |f: &dyn Fn(&Group) -> bool| -> i64 {
            report
                .groups
                .iter()
                .filter(|g| f(g))
                .map(|g| g.invoices)
                .sum()
        };
        let dispatched = sum(&|g| g.dispatched());
        let skipped = sum(&|g| !g.dispatched());
        let caught_up = sum(&|g| g.dispatched() && g.stage_date != req.run_date);
        diesel::insert_into(schedule_runs::table)
            .values((
                schedule_runs::run_date.eq(req.run_date),
                schedule_runs::host.eq(req.host),
                schedule_runs::finished_at.eq(diesel::dsl::now),
                schedule_runs::dispatched.eq(i32::try_from(dispatched).unwrap_or(i32::MAX)),
                schedule_runs::skipped.eq(i32::try_from(skipped).unwrap_or(i32::MAX)),
                schedule_runs::caught_up.eq(i32::try_from(caught_up).unwrap_or(i32::MAX)),
                schedule_runs::backfill.eq(req.backfill),
            ))
            .execute(conn)?;
        Ok(report)
    });
    match outcome {
        Ok(report) => Ok(report),
        Err(DryRun::RollBack(report)) => Ok(*report),
        Err(DryRun::Store(e)) => Err(e),
    }
}

fn group_lines(lines: &[Line]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for l in lines {
        match groups.iter_mut().find(|g| {
            g.stage == l.stage
                && g.stage_date == l.stage_date
                && g.email == l.email
                && g.whatsapp == l.whatsapp
        }) {
            Some(g) => g.invoices += 1,
            None => groups.push(Group {
                stage: l.stage,
                stage_date: l.stage_date,
                email: l.email,
                whatsapp: l.whatsapp,
                invoices: 1,
            }),
        }
    }
    groups
}

/// Lets a dry run leave the transaction through its error path (rollback) while
/// still carrying the report out.
enum DryRun {
    RollBack(Box<Report>),
    Store(crate::StoreError),
}

impl From<diesel::result::Error> for DryRun {
    fn from(e: diesel::result::Error) -> Self {
        DryRun::Store(e.into())
    }
}

impl From<crate::StoreError> for DryRun {
    fn from(e: crate::StoreError) -> Self {
        DryRun::Store(e)
    }
}

/// The number of WhatsApp messages (not ledger rows) sent in the local calendar month containing
/// `today` (`offset` is the zone's UTC offset), for the monthly quota.
pub fn whatsapp_sent_this_month(
    conn: &mut PgConnection,
    today: Date,
    offset: time::UtcOffset,
) -> Result<i64> {
    let (from, to) = dunning_core::zone::month_bounds(today, offset);
    use crate::schema::notifications::dsl as n;
    // One message may carry several rows (`DUNNING_GROUP=customer`): count messages.
    // A row of its own (no group_id) is one message; the rows of a grouped message
    // share group_id, the id of the group's lead row (which points at itself, so no
    // row of its own has an id that is some group's id). The same number as
    // `count(DISTINCT COALESCE(group_id, id))`, read from the index of sent rows alone
    // (it includes group_id, not id) and without sorting every row of the month.
    Ok(n::notifications
        .filter(n::channel.eq("whatsapp"))
        .filter(n::status.eq("sent"))
        .filter(n::sent_at.ge(from))
        .filter(n::sent_at.lt(to))
        .select(diesel::dsl::sql::<BigInt>(
            "count(*) FILTER (WHERE group_id IS NULL) + count(DISTINCT group_id)",
        ))
        .get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_the_statement_writes_is_known_and_nothing_else_is_guessed() {
        for (db, want) in [
            ("dispatched", Outcome::Dispatched),
            ("already_sent", Outcome::AlreadySent),
            ("already_queued", Outcome::AlreadyQueued),
            ("already_failed", Outcome::AlreadyFailed),
            ("already_skipped", Outcome::AlreadySkipped),
            ("reminded_today", Outcome::RemindedToday),
            ("no_contact", Outcome::NoContact),
            ("held_paused", Outcome::HeldPaused),
            ("held_opted_out", Outcome::HeldOptedOut),
            ("concurrent", Outcome::TakenByConcurrentRun),
        ] {
            assert_eq!(Outcome::from_db(db).unwrap(), want, "{db}");
        }
        let err = Outcome::from_db("already_delivered")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"delivered\"") && err.contains("upgrade"),
            "{err}"
        );
    }
}
